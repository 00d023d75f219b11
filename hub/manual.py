"""Systems without an API (architecture rule 10): the tasks a person does by hand.

A paper archive or a cabinet of contracts is declared in the policy
(``kind = "manual"``). Every request gives it a task that waits for an operator from
the start, carrying the policy's instructions for the request's kind and its own due
date, inside the request's. The operator confirms it (``hub task confirm``: who,
when, outcome, note, in the audit trail) and only then can the request complete; an
unconfirmed task past its due date is what the deadline and stuck checks report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import audit, deadlines, ledger
from hub.ledger import TaskState
from hub.models import SubjectRequestRow, TaskRow
from hub.policy import Policy

ACTOR = "hub"
# The kind of the record a hold confirmed by hand names (hub.review.confirm_task writes
# it, hub.retention ends the hold).
HOLD_KIND = "manual"


@dataclass(frozen=True)
class ManualTask:
    """What an operator reads about one manual task (nothing personal)."""

    request_id: str
    system: str
    title: str
    instructions: str
    due: date


def open_tasks(session: Session, row: SubjectRequestRow, policy: Policy, *, timezone: str,
               now: datetime | None = None) -> list[TaskRow]:
    """Give each enabled manual system's pending task to an operator, with what to do.

    Idempotent: a task already opened, confirmed or otherwise moved is left as it is,
    so a second round of the request does not reopen what a person confirmed.
    """
    now = now or datetime.now(UTC)
    opened = []
    for system in policy.manual_systems:
        task = ledger.get_task(session, row.id, system)
        if TaskState(task.state) != TaskState.PENDING:
            continue
        section = policy.for_system(system)
        due = min(deadlines.local_date(now, timezone) + timedelta(days=section.due_days),
                  ledger.effective_due(row))
        evidence = {"manual": {"title": policy.title(system),
                               "instructions": section.instructions_for(row.kind),
                               "due": due.isoformat()}}
        ledger.move_task(session, task, TaskState.MANUAL_PENDING, evidence=evidence, now=now)
        audit.append(session, "task.manual", {"system": system, "due": due.isoformat()},
                     request_id=row.id, actor=ACTOR, now=now)
        opened.append(task)
    return opened


def of(task: TaskRow) -> ManualTask | None:
    """The manual task a task row holds, or None for a system with an API."""
    manual = (task.evidence or {}).get("manual")
    if TaskState(task.state) != TaskState.MANUAL_PENDING or not manual:
        return None
    return ManualTask(request_id=task.request_id, system=task.system, title=manual["title"],
                      instructions=manual["instructions"],
                      due=date.fromisoformat(manual["due"]))


def overdue(session: Session, *, today: date) -> list[ManualTask]:
    """Unconfirmed manual tasks whose own due date has passed."""
    rows = session.execute(select(TaskRow).where(
        TaskRow.state == TaskState.MANUAL_PENDING.value).order_by(TaskRow.request_id))
    found = (of(task) for task in rows.scalars())
    return [task for task in found if task is not None and task.due < today]
