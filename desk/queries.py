"""What the desk's pages read: the dashboard's lists, search by keyed hash, the audit page.

Reads only; every change goes through the hub's own functions (ledger, review,
intake), so the desk and the CLI cannot disagree about a rule.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub import bundle, ledger, manual
from hub.ledger import OPEN_REQUEST_STATES, TaskState
from hub.models import (
    AuditEventRow,
    RequestIdentifierRow,
    ReviewItemRow,
    SubjectRequestRow,
    TaskRow,
)


@dataclass(frozen=True)
class Listed:
    """A request as a line in a list: nothing personal but its masked identifiers."""

    id: str
    kind: str
    state: str
    due_on: date
    days_left: int
    subject: str


def listed(session: Session, rows: list[SubjectRequestRow], today: date) -> list[Listed]:
    out = []
    for row in rows:
        shown = ledger.view(session, row)
        out.append(Listed(row.id, row.kind, row.state, shown.due_on,
                          (shown.due_on - today).days,
                          ", ".join(v for _, v in shown.identifiers)))
    return out


def open_requests(session: Session, today: date) -> list[SubjectRequestRow]:
    rows = [r for state in OPEN_REQUEST_STATES
            for r in ledger.list_requests(session, today=today, state=state)]
    return sorted(rows, key=lambda r: (ledger.effective_due(r), r.received_at))


def due_soon(session: Session, today: date, days: int) -> list[SubjectRequestRow]:
    """Open requests due within `days`, not yet overdue (those have their own list)."""
    return [r for r in ledger.list_requests(session, today=today, due_within=days)
            if ledger.effective_due(r) >= today]


def failed_tasks(session: Session) -> list[TaskRow]:
    return list(session.execute(select(TaskRow).where(TaskRow.state == TaskState.FAILED.value)
                                .order_by(TaskRow.updated_at)).scalars())


def candidates_waiting(session: Session) -> list[tuple[str, int]]:
    """(request id, candidate records not yet decided), oldest request first."""
    return [(rid, int(n)) for rid, n in session.execute(
        select(ReviewItemRow.request_id, func.count())
        .where(ReviewItemRow.decision == "pending")
        .group_by(ReviewItemRow.request_id).order_by(ReviewItemRow.request_id))]


def manual_waiting(session: Session) -> list[manual.ManualTask | TaskRow]:
    """Tasks waiting for a person: a manual system's (with its instructions) or a
    connector's leftover to confirm."""
    rows = session.execute(select(TaskRow).where(
        TaskRow.state == TaskState.MANUAL_PENDING.value).order_by(TaskRow.request_id))
    return [manual.of(task) or task for task in rows.scalars()]


def requests_with(session: Session, hashes: list[str]) -> list[SubjectRequestRow]:
    """Requests holding any of these identifier hashes, newest first; also scrubbed ones."""
    if not hashes:
        return []
    ids = select(RequestIdentifierRow.request_id).where(RequestIdentifierRow.hash.in_(hashes))
    return list(session.execute(select(SubjectRequestRow).where(SubjectRequestRow.id.in_(ids))
                                .order_by(SubjectRequestRow.received_at.desc())).scalars())


def audit_page(session: Session, page: int, size: int) -> tuple[list[AuditEventRow], bool]:
    """One page of the trail, newest first, and whether an older page exists."""
    rows = list(session.execute(select(AuditEventRow).order_by(AuditEventRow.seq.desc())
                                .offset((page - 1) * size).limit(size + 1)).scalars())
    return rows[:size], len(rows) > size


def bundle_folder(home: Path, request_id: str) -> Path | None:
    """The access bundle the job wrote for this request, when it has one."""
    folder = home / bundle.EXPORTS / request_id
    return folder if folder.is_dir() and any(folder.iterdir()) else None


def zipped(folder: Path) -> bytes:
    """The bundle's files in one zip, in memory: a bundle is a handful of small files."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            if path.is_file():
                archive.write(path, arcname=f"{folder.name}/{path.name}")
    return out.getvalue()
