"""Record ids that are personal data themselves, minimised once an erasure settles.

A vendor's record id is a number or an opaque key: a pointer the hub may keep (rule
6). A network drive's record id is a file's path, and a file is often named after the
person in it ("Aino Virtanen - sopimus.docx"). A connector whose ids may name people
says so in its outcome's evidence (``NAME_PEOPLE``); once an erasure of the subject
has settled, every such id in the task's evidence and journal is replaced by a keyed
hash (HMAC with the deployment's secret: proof of which file it was, for anyone who
holds the path, and nothing readable), and the list of paths by its count.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.hashing import Hasher
from hub.models import TaskActionRow, TaskRow

NAME_PEOPLE = "pointers_name_people"
"""Outcome evidence key: True when this system's record ids may name people."""
PATH_LISTS = ("unreadable_paths",)
"""Evidence lists of such ids, kept as counts only."""
PREFIX = "hmac:"


def keyed(hasher: Hasher, system: str, record_id: str) -> str:
    """The id as the hub keeps it after the erasure (idempotent: a hash stays)."""
    if record_id.startswith(PREFIX):
        return record_id
    return PREFIX + hasher.text(f"record_id:{system}", record_id)[:40]


def minimise(session: Session, hasher: Hasher, tasks: list[TaskRow]) -> int:
    """Hash the record ids of the tasks whose system said its ids name people, in their
    evidence and in their journal; returns the ids replaced."""
    replaced = 0
    for task in tasks:
        evidence: dict[str, Any] = dict(task.evidence or {})
        vendor = dict(evidence.get("vendor") or {})
        if not vendor.get(NAME_PEOPLE):
            continue
        records = []
        for rec in evidence.get("records", []):
            hashed = keyed(hasher, task.system, rec["record_id"])
            replaced += hashed != rec["record_id"]
            records.append({**rec, "record_id": hashed})
        for name in PATH_LISTS:
            if name in vendor:
                vendor[name] = len(vendor[name]) if isinstance(vendor[name], list) else vendor[name]
        task.evidence = {**evidence, "records": records, "vendor": vendor}
        for row in session.execute(select(TaskActionRow).where(
                TaskActionRow.request_id == task.request_id,
                TaskActionRow.system == task.system)).scalars():
            hashed = keyed(hasher, task.system, row.record_id)
            replaced += hashed != row.record_id
            row.record_id = hashed
    session.flush()
    return replaced
