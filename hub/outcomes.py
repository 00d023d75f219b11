"""Turning what a connector did into task state and evidence (DESIGN.md rules 1–3, 8).

The orchestration layer calls `begin`, then `record` or `record_failure`, per
(request × system). `begin` skips a task that already finished, so re-running a
request (op retry, run re-execution) redoes only the systems that did not.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from hub import ledger
from hub.domain import Action, Outcome
from hub.ledger import TaskState
from hub.models import TaskRow

# The action that best summarises a system's result, most significant first.
_SUMMARY_ORDER = (
    Action.RETAINED, Action.PERMANENTLY_DELETED, Action.DELETED, Action.ANONYMISED,
    Action.DEACTIVATED, Action.RECTIFIED, Action.RESTRICTED, Action.LIFTED,
    Action.UNSUBSCRIBED, Action.EXPORTED, Action.UNLINKED, Action.KEPT,
    Action.NOTHING_TO_DO, Action.NOT_FOUND,
)


def begin(session: Session, request_id: str, system: str, *, take_over: bool = False,
          now: datetime | None = None) -> TaskRow | None:
    """Claim the task for this worker; None when it already finished or another worker
    holds it (nothing to do here).

    The claim is a compare-and-set in the database (`ledger.claim_task`), so two
    workers never run one task at once, with or without Dagster's pools.
    ``take_over`` is for a caller that knows the worker holding a running task is dead.
    """
    # The compare-and-set comes first: a read before it would let SQLite refuse the
    # write of the second worker ("database is locked") instead of answering "taken".
    return ledger.claim_task(session, request_id, system, take_over=take_over, now=now)


def state_for(outcome: Outcome, *, candidates: int = 0) -> TaskState:
    """The task's state from what was done; waiting for a person comes first.

    Candidates to review keep the task open (rule 9); so does anything the vendor's
    API could not remove (``Action.KEPT``: a synced mail, an activity that names the
    person), which an operator must deal with and confirm. The caller has already
    failed the task when the read-back did not show the intended state (rule 3).
    """
    if candidates:
        return TaskState.REVIEW
    if any(r.action == Action.KEPT for r in outcome.records):
        return TaskState.MANUAL_PENDING
    if outcome.not_found:
        return TaskState.NOT_FOUND
    if outcome.retained:
        return TaskState.RETAINED
    return TaskState.DONE


def summary_action(outcome: Outcome) -> Action:
    present = {r.action for r in outcome.records}
    for action in _SUMMARY_ORDER:
        if action in present:
            return action
    return Action.NOT_FOUND


def evidence_of(outcome: Outcome, *, now: datetime | None = None) -> dict[str, Any]:
    """JSON-safe evidence: per-record actions with the vendor's answer; no identifiers."""
    at = outcome.at or now or datetime.now(UTC)
    return {
        "at": at.isoformat(),
        "verified": outcome.verified,
        "counts": dict(Counter(r.action.value for r in outcome.records)),
        "records": [
            {
                "kind": r.ref.kind, "record_id": r.ref.record_id, "container": r.ref.container,
                "action": r.action.value, "detail": r.detail, "status_code": r.status_code,
                "vendor_request_id": r.vendor_request_id, "legal_basis": r.legal_basis,
                "retained_until": r.retained_until.isoformat() if r.retained_until else None,
            }
            for r in outcome.records
        ],
        "vendor": outcome.evidence,
    }


def record(session: Session, request_id: str, outcome: Outcome, *, candidates: int = 0,
           excluded: Sequence[tuple[str, str, str, str]] = (),
           now: datetime | None = None) -> TaskRow:
    """Finish a running task from the connector's outcome (or leave it for an operator)."""
    task = ledger.get_task(session, request_id, outcome.system)
    evidence = evidence_of(outcome, now=now)
    if candidates:
        evidence["candidates_pending"] = candidates
    if excluded:
        evidence["excluded_by_operator"] = [
            {"kind": kind, "container": container or None, "record_id": record_id}
            for _system, kind, container, record_id in excluded]
    left = [r for r in evidence["records"] if r["action"] == Action.KEPT.value]
    if left:
        evidence["follow_up"] = (f"{len(left)} record(s) the API cannot act on: deal with "
                                 f"them, then hub task confirm {request_id} {outcome.system}"
                                 + ("; the next run reads them back"
                                    if outcome.evidence.get("recheck") else ""))
    if "confirmed" in (task.evidence or {}):  # what an operator did, before this read-back
        evidence["confirmed"] = task.evidence["confirmed"]
    ledger.move_task(session, task, state_for(outcome, candidates=candidates),
                     action=summary_action(outcome).value, evidence=evidence, now=now)
    return task


def record_failure(session: Session, request_id: str, system: str, error: str,
                   evidence: dict[str, Any] | None = None, *,
                   now: datetime | None = None) -> TaskRow:
    """A task that could not finish: failed, with the vendor's answer, retryable alone."""
    task = ledger.get_task(session, request_id, system)
    ledger.move_task(session, task, TaskState.FAILED, error=error, evidence=evidence or {},
                     now=now)
    return task


def describe(evidence: dict[str, Any] | None) -> str:
    """One line of evidence for people: counts, read-back, holds, the vendor's status.

    Built from the evidence dict alone, which holds no identifiers, so the line is
    safe for Dagster's UI and a terminal alike.
    """
    evidence = evidence or {}
    parts = []
    if evidence.get("counts"):
        parts.append(", ".join(f"{k} {v}" for k, v in sorted(evidence["counts"].items())))
    if evidence.get("verified"):
        parts.append("read back")
    for rec in evidence.get("records", []):
        if rec.get("retained_until"):
            parts.append(f"held until {rec['retained_until']} ({rec.get('legal_basis')})")
    if evidence.get("candidates_pending"):
        parts.append(f"{evidence['candidates_pending']} candidate(s) to review")
    if evidence.get("excluded_by_operator"):
        parts.append(f"{len(evidence['excluded_by_operator'])} excluded by an operator")
    if evidence.get("follow_up"):
        parts.append(evidence["follow_up"])
    if evidence.get("confirmed"):
        parts.append(f"confirmed by {evidence['confirmed']['by']}")
    if evidence.get("status_code"):
        parts.append(f"HTTP {evidence['status_code']}")
    return "; ".join(parts) or "-"


def text_table(tasks: Sequence[TaskRow], indent: str = "") -> str:
    """The per-system outcome table for a terminal (`hub request run`, `make demo`)."""
    lines = [f"{indent}{'system':<10} {'outcome':<10} {'action':<20} {'tries':>5}  evidence"]
    for t in tasks:
        detail = t.error if t.error else describe(t.evidence)
        lines.append(f"{indent}{t.system:<10} {t.state:<10} {t.action or '-':<20} "
                     f"{t.attempts:>5}  {detail}")
    return "\n".join(lines)
