"""What an operator decides for a request: candidate records, and leftovers to confirm.

A request acts only on the records that match the subject's own identifiers
(DESIGN.md rule 9). Whatever else its live lookup reached (through the index
cluster, a shared phone, an info@ address) is a candidate: listed here with why it
matched (masked), and acted on only once approved. A task whose action left
something the vendor's API cannot remove waits for an operator's confirmation.
When nothing is left to decide the request runs again, in a new round; every
decision is in the audit trail with who made it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub import audit, deadlines, ledger, manual, pointers
from hub.domain import RecordRef
from hub.ledger import LedgerError, RequestState, TaskState
from hub.models import ReviewItemRow, SubjectRequestRow, TaskRow


class Decision(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    EXCLUDED = "excluded"


RecordKey = tuple[str, str, str, str]  # system, kind, container, record id


def key_of(ref: RecordRef) -> RecordKey:
    return (ref.system, ref.kind, ref.container or "", ref.record_id)


@dataclass(frozen=True)
class Item:
    """One candidate as an operator sees it: a number to decide by, nothing personal."""

    number: int
    system: str
    kind: str
    record: str
    reason: str
    decision: str
    decided_by: str | None
    decided_at: datetime | None


def register(session: Session, request_id: str, candidates: Iterable[tuple[RecordRef, str]],
             *, now: datetime | None = None) -> int:
    """Record candidates a lookup reached; a record already listed keeps its decision."""
    now = now or datetime.now(UTC)
    known = {(r.system, r.kind, r.container, r.record_id) for r in _rows(session, request_id)}
    added = 0
    for ref, reason in candidates:
        key = key_of(ref)
        if key in known:
            continue
        known.add(key)
        session.add(ReviewItemRow(request_id=request_id, system=key[0], kind=key[1],
                                  container=key[2], record_id=key[3], reason=reason,
                                  decision=Decision.PENDING.value, created_at=now))
        added += 1
    if added:
        session.flush()
        audit.append(session, "review.candidates", {"added": added}, request_id=request_id,
                     now=now)
    return added


def decisions(session: Session, request_id: str, system: str) -> dict[RecordKey, Decision]:
    return {(r.system, r.kind, r.container, r.record_id): Decision(r.decision)
            for r in _rows(session, request_id) if r.system == system}


def pending_count(session: Session, request_id: str, system: str | None = None) -> int:
    query = select(func.count()).select_from(ReviewItemRow).where(
        ReviewItemRow.request_id == request_id,
        ReviewItemRow.decision == Decision.PENDING.value)
    if system is not None:
        query = query.where(ReviewItemRow.system == system)
    return int(session.execute(query).scalar_one())


def items(session: Session, request_id: str) -> list[Item]:
    ledger.get_request(session, request_id)
    return [Item(n, r.system, r.kind,
                 f"{r.container}/{r.record_id}" if r.container else r.record_id, r.reason,
                 r.decision, r.decided_by, r.decided_at)
            for n, r in enumerate(_rows(session, request_id), start=1)]


def decide(session: Session, request_id: str, numbers: Sequence[int], decision: Decision, *,
           actor: str, now: datetime | None = None) -> list[Item]:
    """Approve or exclude candidates by their numbers in `items`; a decision is final.

    Raises LedgerError, changing nothing, for an unknown number or one already decided
    otherwise, so a typo never half-applies.
    """
    if decision == Decision.PENDING:
        raise LedgerError("a decision is approve or exclude")
    if not actor.strip():
        raise LedgerError("a decision needs the name of who made it")
    now = now or datetime.now(UTC)
    row = ledger.lock_request(session, request_id)
    rows = _rows(session, request_id)
    chosen = []
    for number in dict.fromkeys(numbers):
        if not 1 <= number <= len(rows):
            raise LedgerError(f"request {request_id} has no candidate {number} "
                              f"(it has {len(rows)}); see hub request review {request_id}")
        item = rows[number - 1]
        if item.decision not in (Decision.PENDING.value, decision.value):
            raise LedgerError(f"candidate {number} was already {item.decision} by "
                              f"{item.decided_by}; a decision is not changed")
        chosen.append((number, item))
    naming = {t.system for t in ledger.tasks_of(session, request_id) if pointers.names_people(t)}
    for number, item in chosen:
        if item.decision == decision.value:
            continue
        item.decision, item.decided_by, item.decided_at = decision.value, actor, now
        audit.append(session, f"review.{decision.value}", {
            "candidate": number, "system": item.system, "kind": item.kind,
            # the trail is never rewritten: a path that may name someone stays out of it
            "record_id": None if item.system in naming else item.record_id,
            "reason": item.reason,
        }, request_id=request_id, actor=actor, now=now)
    session.flush()
    resume_if_decided(session, row, now=now)
    return [i for i in items(session, request_id) if i.number in dict(chosen)]


def confirm_task(session: Session, request_id: str, system: str, outcome: TaskState, *,
                 note: str, actor: str, held_until: date | None = None,
                 legal_basis: str | None = None, timezone: str = "Europe/Helsinki",
                 now: datetime | None = None) -> TaskRow:
    """An operator confirms what a task left for them (who, when, outcome, note).

    ``retained`` is a legal hold like any other (rule 5): it needs the date the hold
    ends and its basis, and is recorded as a hold when the request settles.
    """
    if outcome not in ledger.FINISHED_TASK_STATES:
        raise LedgerError("the outcome is done, not_found or retained")
    if not note.strip():
        raise LedgerError("a confirmation needs a note saying what was done")
    if not actor.strip():
        raise LedgerError("a confirmation needs the name of who did it")
    now = now or datetime.now(UTC)
    if outcome == TaskState.RETAINED and (held_until is None or not (legal_basis or "").strip()):
        raise LedgerError("retained needs the date the hold ends (--until) and its legal "
                          "basis (--basis): a hold without an end is no hold")
    if outcome != TaskState.RETAINED and (held_until or legal_basis):
        raise LedgerError("--until and --basis are for a retained outcome")
    if held_until is not None and held_until < deadlines.local_date(now, timezone):
        raise LedgerError(f"the hold would have ended on {held_until}: a hold whose end has "
                          "passed is no hold")
    row = ledger.lock_request(session, request_id)  # first: the completion check waits
    task = ledger.get_task(session, request_id, system)
    if TaskState(task.state) != TaskState.MANUAL_PENDING:
        raise LedgerError(f"task {request_id}/{system} is {task.state}; only a task waiting "
                          "for an operator (manual_pending) is confirmed")
    evidence = dict(task.evidence or {})
    evidence["confirmed"] = {"by": actor, "at": now.isoformat(), "outcome": outcome.value,
                             "note": note.strip()}
    if held_until is not None:
        evidence["records"] = [*evidence.get("records", []), {
            "kind": manual.HOLD_KIND, "record_id": f"{system}:{request_id}", "action": "retained",
            "legal_basis": (legal_basis or "").strip(),
            "retained_until": held_until.isoformat()}]
    # A connector that can read the operator's work back (it said so: `recheck`) runs
    # again: the task is pending, and only what the next search shows settles it.
    recheck = outcome == TaskState.DONE and bool((evidence.get("vendor") or {}).get("recheck"))
    if recheck and RequestState(row.state) != RequestState.AWAITING_REVIEW:
        # Pending again while its run is still going, the task would be left for no run
        # to pick up, and the request stuck in progress.
        raise LedgerError(f"request {request_id} is still running; confirm {system} once it "
                          "waits for an operator")
    if recheck:
        ledger.move_task(session, task, TaskState.PENDING, evidence=evidence, now=now)
    else:
        # A connector's task keeps its own action (what it did); a manual one gets this.
        action = None if task.action else _confirmed_action(outcome)
        ledger.move_task(session, task, outcome, action=action, evidence=evidence, now=now)
    audit.append(session, "task.confirmed", {
        "system": system, "outcome": outcome.value, "note": note.strip(), "recheck": recheck,
        "held_until": held_until.isoformat() if held_until else None,
        "legal_basis": (legal_basis or "").strip() or None,
    }, request_id=request_id, actor=actor, now=now)
    resume_if_decided(session, row, now=now)
    return task


def _confirmed_action(outcome: TaskState) -> str:
    return {TaskState.DONE: "done_by_hand", TaskState.NOT_FOUND: "not_found",
            TaskState.RETAINED: "retained"}[outcome]


def resume_if_decided(session: Session, row: SubjectRequestRow, *,
                      now: datetime | None = None) -> bool:
    """Once nothing waits for an operator, the request runs again (a new round).

    Verified again, with the round in the run key, so the sensor launches it and the
    job acts on the approved candidates and settles the request like any other run.
    """
    if RequestState(row.state) != RequestState.AWAITING_REVIEW:
        return False
    waiting = session.execute(
        select(func.count()).select_from(TaskRow).where(
            TaskRow.request_id == row.id,
            TaskRow.state == TaskState.MANUAL_PENDING.value)).scalar_one()
    if waiting or pending_count(session, row.id):
        return False
    row.run_round = (row.run_round or 0) + 1
    ledger.transition(session, row, RequestState.VERIFIED, now=now,
                      reason=f"every decision made; round {row.run_round} runs")
    return True


def _rows(session: Session, request_id: str) -> list[ReviewItemRow]:
    return list(session.execute(
        select(ReviewItemRow).where(ReviewItemRow.request_id == request_id)
        .order_by(ReviewItemRow.pk)).scalars())
