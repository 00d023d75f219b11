"""The action journal of a task: what it set out to act on, and what the vendor confirmed.

A retry must resume from what was done, not look the person up afresh and find
nothing (DESIGN.md rule 3). Found the hard way: with the hub's database locked
mid-run, a Netvisor customer retained under the Accounting Act (its e-mail already
blanked by the first attempt) was "not found" by the retry, no hold was recorded,
and the request completed; a delete whose answer was lost on the wire turned into
"not found" the same way. So each record a task is about to act on is journalled
before the first action (``plan``), each action the vendor confirms before the
next one (``record``), and the outcome of a later attempt is read together with
the journal (``merge``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.domain import Action, Outcome, RecordOutcome, RecordRef
from hub.models import TaskActionRow

PLANNED = "planned"
# A later look that finds nothing does not undo what an earlier attempt did.
_WEAK = frozenset({Action.NOT_FOUND, Action.NOTHING_TO_DO})

Key = tuple[str, str, str]  # kind, container, record id


def _key(ref: RecordRef) -> Key:
    return (ref.kind, ref.container or "", ref.record_id)


def _rows(session: Session, request_id: str, system: str) -> list[TaskActionRow]:
    return list(session.execute(
        select(TaskActionRow).where(TaskActionRow.request_id == request_id,
                                    TaskActionRow.system == system)
        .order_by(TaskActionRow.pk)).scalars())


def planned(session: Session, request_id: str, system: str) -> list[RecordRef]:
    """The records earlier attempts set out to act on, in the order they were planned."""
    seen: dict[Key, RecordRef] = {}
    for row in _rows(session, request_id, system):
        if row.action == PLANNED:
            seen.setdefault((row.kind, row.container, row.record_id), RecordRef(
                system, row.kind, row.record_id, container=row.container or None,
                label=f"{row.kind} {row.record_id}"))
    return list(seen.values())


def planned_systems(session: Session, request_id: str) -> set[str]:
    """The systems in which records are journalled for the request: for one filed for a
    record rather than a person (a kept record whose hold ended, hub/retention.py), the
    only systems it has anything to act on."""
    return set(session.scalars(select(TaskActionRow.system).where(
        TaskActionRow.request_id == request_id).distinct()))


def plan(session: Session, request_id: str, system: str, refs: Sequence[RecordRef], *,
         attempt: int, now: datetime | None = None) -> int:
    """Journal the records this attempt is about to act on (those not journalled yet)."""
    now = now or datetime.now(UTC)
    known = {_key(r) for r in planned(session, request_id, system)}
    added = 0
    for ref in refs:
        if _key(ref) in known:
            continue
        known.add(_key(ref))
        session.add(TaskActionRow(request_id=request_id, system=system, kind=ref.kind,
                                  container=ref.container or "", record_id=ref.record_id,
                                  action=PLANNED, detail="", attempt=attempt, at=now))
        added += 1
    session.flush()
    return added


def record(session: Session, request_id: str, outcome: RecordOutcome, *, attempt: int,
           now: datetime | None = None) -> None:
    """Journal one action the vendor confirmed."""
    ref = outcome.ref
    session.add(TaskActionRow(
        request_id=request_id, system=ref.system, kind=ref.kind,
        container=ref.container or "", record_id=ref.record_id, action=outcome.action.value,
        detail=outcome.detail, status_code=outcome.status_code,
        vendor_request_id=outcome.vendor_request_id, legal_basis=outcome.legal_basis,
        retained_until=outcome.retained_until, attempt=attempt, at=now or datetime.now(UTC)))
    session.flush()


def actions(session: Session, request_id: str, system: str) -> list[RecordOutcome]:
    """Every confirmed action so far, oldest first."""
    return [RecordOutcome(
        RecordRef(system, r.kind, r.record_id, container=r.container or None,
                  label=f"{r.kind} {r.record_id}"),
        Action(r.action), r.detail, status_code=r.status_code,
        vendor_request_id=r.vendor_request_id, legal_basis=r.legal_basis,
        retained_until=r.retained_until)
        for r in _rows(session, request_id, system) if r.action != PLANNED]


def unanswered(outcome: Outcome, targets: Sequence[RecordRef]) -> Outcome:
    """The outcome with a record for every target the connector said nothing about:
    a planned record it silently dropped was not acted on, which is no answer (rule 2),
    so the outcome is not verified and says which record.

    Found in review: a ref the own-database connector did not know (a kept child row
    the retention sweep named) vanished from the outcome; an empty outcome reads as
    not_found, and the row stayed at the vendor for good."""
    answered = {_key(r.ref) for r in outcome.records}
    missing = {_key(t): t for t in targets
               if t.system == outcome.system and _key(t) not in answered}
    if not missing:
        return outcome
    return replace(outcome, verified=False, records=(*outcome.records, *(
        RecordOutcome(ref, Action.KEPT, "the connector gave no outcome for this record: "
                                        "nothing was done to it")
        for ref in missing.values())))


def merge(outcome: Outcome, done_before: Sequence[RecordOutcome],
          seen_before: Sequence[RecordRef], *, erasure: bool) -> Outcome:
    """This attempt's outcome read together with the journal.

    An action an earlier attempt (or this one) journalled stands: finding the record
    gone now does not turn "deleted" into "not found". A record the lookup saw and
    that is gone when the erasure reached it was deleted: by an attempt whose answer
    was lost, or at the vendor meanwhile; the read-back proves it absent.
    """
    seen = {_key(r) for r in seen_before}
    merged: dict[Key, RecordOutcome] = {}
    for done in done_before:
        merged[_key(done.ref)] = done
    for rec in outcome.records:
        key = _key(rec.ref)
        earlier = merged.get(key)
        if rec.action in _WEAK and earlier is not None:
            continue
        if erasure and rec.action == Action.NOT_FOUND and key in seen:
            rec = replace(rec, action=Action.DELETED, detail=(
                "found by this request's lookup and gone when the erasure reached it: "
                "deleted (by an attempt whose answer was lost, or at the vendor meanwhile); "
                "read back: gone"))
        merged[key] = rec
    return replace(outcome, records=tuple(merged.values()))
