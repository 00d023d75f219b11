"""Legal holds: records an erasure kept at a vendor by law (DESIGN.md rule 5).

A hold is a pointer (system, record id), the legal basis and the date it ends,
written from a retained task's evidence when the request settles. The
reconciliation leaves held records alone, and the end date says when the record
becomes erasable.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import audit
from hub.models import LegalHoldRow, TaskRow


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
