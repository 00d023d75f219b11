"""Legal holds: records an erasure kept at a vendor by law (DESIGN.md rule 5).

A hold is a pointer (system, record id), the legal basis and the date it ends,
written from a retained task's evidence when the request settles. The
reconciliation leaves held records alone, and the end date says when the record
becomes erasable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import audit
from hub.models import LegalHoldRow, RequestIdentifierRow, TaskRow


def record_from_tasks(session: Session, tasks: list[TaskRow], *,
                      now: datetime | None = None) -> int:
    """One hold per retained record in the tasks' evidence; idempotent on re-runs."""
    now = now or datetime.now(UTC)
    added = 0
    for task in tasks:
        for rec in (task.evidence or {}).get("records", []):
            if not rec.get("retained_until"):
                continue
            key = (task.system, rec["record_id"], task.request_id)
            if session.get(LegalHoldRow, key) is not None:
                continue
            until = date.fromisoformat(rec["retained_until"])
            session.add(LegalHoldRow(system=task.system, record_id=rec["record_id"],
                                     request_id=task.request_id,
                                     legal_basis=rec.get("legal_basis") or "",
                                     held_until=until, created_at=now))
            audit.append(session, "hold.recorded", {
                "system": task.system, "record_id": rec["record_id"],
                "held_until": until.isoformat(), "legal_basis": rec.get("legal_basis"),
            }, request_id=task.request_id, now=now)
            added += 1
    session.flush()
    return added


def held_records(session: Session, today: date) -> set[tuple[str, str]]:
    """(system, record id) of every hold still running on `today`."""
    return {(s, r) for s, r in session.execute(
        select(LegalHoldRow.system, LegalHoldRow.record_id)
        .where(LegalHoldRow.held_until >= today))}


@dataclass(frozen=True)
class SubjectHold:
    """A record kept at a vendor by law after one of the subject's erasures."""

    system: str
    record_id: str
    legal_basis: str
    held_until: date
    request_id: str
    """The erasure request that placed the hold (an id, never personal data)."""


def holds_of_subject(session: Session, request_id: str, today: date) -> list[SubjectHold]:
    """The holds still running on `today` that the same subject's erasures placed.

    An access request after an erasure must show what is kept and why (DESIGN.md
    rule 5), but the live lookup cannot find a minimised record: its e-mail is gone.
    The hub recognises the subject instead by the keyed hashes that
    `request_identifiers` keeps of every request's identifiers forever: a hold
    belongs to this subject when its erasure request shares an identifier hash with
    `request_id`. One row per record, the latest end first wins.
    """
    mine = select(RequestIdentifierRow.hash).where(
        RequestIdentifierRow.request_id == request_id)
    same_subject = select(RequestIdentifierRow.request_id).where(
        RequestIdentifierRow.hash.in_(mine))
    rows = session.execute(
        select(LegalHoldRow)
        .where(LegalHoldRow.request_id.in_(same_subject), LegalHoldRow.held_until >= today)
        .order_by(LegalHoldRow.system, LegalHoldRow.record_id,
                  LegalHoldRow.held_until.desc(), LegalHoldRow.request_id)
    ).scalars()
    out: dict[tuple[str, str], SubjectHold] = {}
    for row in rows:
        out.setdefault((row.system, row.record_id), SubjectHold(
            row.system, row.record_id, row.legal_basis, row.held_until, row.request_id))
    return list(out.values())
