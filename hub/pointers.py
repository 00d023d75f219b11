"""Record ids that are personal data themselves, minimised once a request settles.

A vendor's record id is a number or an opaque key: a pointer the hub may keep (rule
6). A network drive's record id is a file's path, and a file is often named after the
person in it ("Aino Virtanen - sopimus.docx"), or after someone else. A connector whose
ids may name people says so in its outcome's evidence (``NAME_PEOPLE``). While the task
waits, an operator needs the paths to find the files; once the request has settled
(whatever its kind), every such id in the task's evidence, its operator's exclusions,
its review candidates and its journal is replaced by a keyed hash (HMAC with the
deployment's secret: proof of which file it was, for anyone who holds the path, and
nothing readable), and each list of paths by its count. The audit trail, which is
never rewritten, does not take such an id at all (hub.review).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.hashing import Hasher
from hub.models import ReviewItemRow, TaskActionRow, TaskRow

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


def names_people(task: TaskRow | None) -> bool:
    """Whether the task's system said its record ids may name people."""
    vendor = ((task.evidence or {}).get("vendor") or {}) if task is not None else {}
    return bool(vendor.get(NAME_PEOPLE))


def minimise(session: Session, hasher: Hasher, tasks: list[TaskRow]) -> int:
    """Hash the record ids of the tasks whose system said its ids name people, in their
    evidence, exclusions, review candidates and journal; returns the ids replaced."""
    replaced = 0
    for task in tasks:
        if not names_people(task):
            continue
        evidence: dict[str, Any] = dict(task.evidence or {})
        vendor = dict(evidence.get("vendor") or {})
        lists = {}
        for name in ("records", "excluded_by_operator"):
            lists[name] = []
            for rec in evidence.get(name, []):
                hashed = keyed(hasher, task.system, rec["record_id"])
                replaced += hashed != rec["record_id"]
                lists[name].append({**rec, "record_id": hashed})
        for name in PATH_LISTS:
            if name in vendor:
                vendor[name] = len(vendor[name]) if isinstance(vendor[name], list) else vendor[name]
        task.evidence = {**evidence, "records": lists["records"], "vendor": vendor,
                         **({"excluded_by_operator": lists["excluded_by_operator"]}
                            if "excluded_by_operator" in evidence else {})}
        for row in [*session.execute(select(TaskActionRow).where(
                        TaskActionRow.request_id == task.request_id,
                        TaskActionRow.system == task.system)).scalars(),
                    *session.execute(select(ReviewItemRow).where(
                        ReviewItemRow.request_id == task.request_id,
                        ReviewItemRow.system == task.system)).scalars()]:
            hashed = keyed(hasher, task.system, row.record_id)
            replaced += hashed != row.record_id
            row.record_id = hashed
    session.flush()
    return replaced
