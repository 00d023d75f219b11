"""Telling the ops staff: an alert when a task or a nightly check fails, and a daily
digest, by e-mail and, when configured, in Slack.

Both go through the outbox like any letter, to HUB_OPS_EMAIL and to HUB_SLACK_CHANNEL
(one letter per channel, so Slack being down never holds back the e-mail, and each is
retried and visible on its own), and carry request ids, systems, states and masked
values only (m***@example.fi): an inbox or a channel is another copy nobody erases.
An alert is queued once per failed attempt of a task (its key holds the attempt
count), so a task that fails again after a retry alerts again; a digest once per
local day, after HUB_DIGEST_HOUR.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub import ledger, manual, outbox
from hub.hashing import Hasher
from hub.identity import mask_email, mask_emails_in
from hub.letters import render
from hub.models import ReviewItemRow, TaskRow
from hub.outbox import Channel, Draft
from hub.settings import Settings

# Failed tasks older than this were told of already (or predate the alerts): the
# digest lists them, no alert is sent.
ALERT_WINDOW = timedelta(days=1)
# The subject lines, in the ops staff's language (HUB_OPS_LANGUAGE); the bodies are the
# templates under templates/ops/<language>/.
SUBJECTS = {
    "en": {"alert": "[hub] {system} failed for request {request_id}",
           "digest": "[hub] digest {today}: {open} open, {overdue} overdue, {failed} failed",
           "check": "[hub] nightly check {check} failed",
           "left": "{days} days left", "over": "{days} days overdue"},
    "fi": {"alert": "[hub] {system} epäonnistui pyynnössä {request_id}",
           "digest": "[hub] kooste {today}: {open} avointa, {overdue} myöhässä, "
                     "{failed} epäonnistunutta",
           "check": "[hub] yöllinen tarkistus {check} epäonnistui",
           "left": "{days} päivää jäljellä", "over": "{days} päivää myöhässä"},
}
def _safe(text: str | None) -> str:
    """Errors are scrubbed where they arise; mask any address that slipped through."""
    return mask_emails_in(text)


def _say(settings: Settings, key: str, **values: object) -> str:
    return SUBJECTS[settings.ops_language][key].format(**values)


def _template(settings: Settings, name: str) -> str:
    return f"ops/{settings.ops_language}/{name}.html"


def _told(settings: Settings) -> bool:
    return bool(settings.ops_email) or settings.slack_configured


def _queue(session: Session, hasher: Hasher, settings: Settings, key: str, kind: str,
           subject: str, body: str, *, request_id: str | None = None,
           now: datetime | None = None) -> list[int]:
    """Queue the message once per configured channel; the ids of those new this time."""
    drafts = []
    if settings.ops_email:
        drafts.append(Draft(key=key, kind=kind, language=settings.ops_language,
                            channel=Channel.EMAIL, recipient=settings.ops_email,
                            recipient_masked=mask_email(settings.ops_email), subject=subject,
                            body=body, request_id=request_id))
    if settings.slack_configured:
        drafts.append(Draft(key=f"{key}:slack", kind=kind, language=settings.ops_language,
                            channel=Channel.SLACK, recipient=settings.slack_channel,
                            recipient_masked=settings.slack_channel, subject=subject,
                            body=body, request_id=request_id))
    return [outbox.enqueue(session, hasher, d, now=now).id for d in drafts
            if outbox.by_key(session, d.key) is None]


def _told_already(session: Session, key: str) -> bool:
    """Queued before on either channel (one configured later does not repeat it)."""
    return bool(outbox.by_key(session, key) or outbox.by_key(session, f"{key}:slack"))


def queue_task_alerts(session: Session, hasher: Hasher, settings: Settings, *,
                      now: datetime | None = None) -> list[int]:
    """One alert per task that failed within the last day and was not alerted yet."""
    if not _told(settings):
        return []
    now = now or datetime.now(UTC)
    queued: list[int] = []
    for task in session.execute(select(TaskRow).where(
            TaskRow.state == ledger.TaskState.FAILED.value,
            TaskRow.updated_at >= now - ALERT_WINDOW).order_by(TaskRow.pk)).scalars():
        key = f"alert:{task.request_id}:{task.system}:{task.attempts}"
        if _told_already(session, key):
            continue
        row = ledger.get_request(session, task.request_id)
        body = render(_template(settings, "alert"), settings.ops_language,
                      request_id=task.request_id, kind=row.kind, system=task.system,
                      attempts=task.attempts, error=_safe(task.error),
                      due=ledger.effective_due(row))
        queued += _queue(session, hasher, settings, key, "ops_alert",
                         _say(settings, "alert", system=task.system,
                              request_id=task.request_id), body,
                         request_id=task.request_id, now=now)
    return queued


@dataclass(frozen=True)
class Line:
    request_id: str
    kind: str
    state: str
    due: str
    subject: str
    note: str = ""


def _lines(session: Session, rows: list, today, settings: Settings) -> list[Line]:
    out = []
    for row in rows:
        shown = ledger.view(session, row)
        out.append(Line(row.id, row.kind, row.state, shown.due_on.isoformat(),
                        ", ".join(v for _, v in shown.identifiers) or "(scrubbed)",
                        _say(settings, "left", days=(shown.due_on - today).days)
                        if shown.due_on >= today
                        else _say(settings, "over", days=(today - shown.due_on).days)))
    return out


def queue_digest(session: Session, hasher: Hasher, settings: Settings, *,
                 now: datetime | None = None) -> list[int]:
    """The day's digest, once, after the digest hour; nothing when not due or not set up."""
    if not _told(settings):
        return []
    now = now or datetime.now(UTC)
    local = now.astimezone(ZoneInfo(settings.timezone))
    if local.hour < settings.digest_hour:
        return []
    key = f"digest:{local.date().isoformat()}"
    if _told_already(session, key):
        return []
    today = local.date()
    open_rows = ledger.list_requests(session, today=today, due_within=36500)
    overdue = [r for r in open_rows if ledger.effective_due(r) < today]
    soon = [r for r in open_rows if today <= ledger.effective_due(r)
            <= today + timedelta(days=settings.due_soon_days)]
    failed_tasks = list(session.execute(select(TaskRow).where(
        TaskRow.state == ledger.TaskState.FAILED.value).order_by(TaskRow.request_id,
                                                                 TaskRow.system)).scalars())
    candidates = list(session.execute(
        select(ReviewItemRow.request_id, func.count()).where(
            ReviewItemRow.decision == "pending").group_by(ReviewItemRow.request_id)
        .order_by(ReviewItemRow.request_id)).all())
    waiting_manual = [t for t in session.execute(select(TaskRow).where(
        TaskRow.state == ledger.TaskState.MANUAL_PENDING.value).order_by(TaskRow.request_id)
    ).scalars()]
    lines = {line.request_id: line for line in _lines(session, open_rows, today, settings)}
    dues = {t.pk: manual.of(t) for t in waiting_manual}
    body = render(
        _template(settings, "digest"), settings.ops_language, today=today,
        open=list(lines.values()), overdue=[lines[r.id] for r in overdue],
        soon=[lines[r.id] for r in soon],
        failed=[(t.request_id, t.system, t.attempts, _safe(t.error)) for t in failed_tasks],
        candidates=candidates,
        manual=[(t.request_id, t.system, dues[t.pk].due.isoformat() if dues[t.pk] else "")
                for t in waiting_manual],
        letters=[(x.id, x.kind, x.request_id or "-", x.attempts, _safe(x.last_error))
                 for x in outbox.failed(session)],
        to_post=[(x.id, x.kind, x.request_id or "-", x.document)
                 for x in outbox.awaiting_post(session)],
        due_soon_days=settings.due_soon_days)
    subject = _say(settings, "digest", today=today.isoformat(), open=len(open_rows),
                   overdue=len(overdue), failed=len(failed_tasks))
    return _queue(session, hasher, settings, key, "ops_digest", subject, body, now=now)


def queue_check_alert(session: Session, hasher: Hasher, settings: Settings, *, check: str,
                      run_id: str, now: datetime | None = None) -> list[int]:
    """One alert per failed run of a nightly check (a suppressed person present, an
    opted-out person subscribed, a deadline passed, something stuck). The check's own
    page in Dagster says what it found, with masked values; the mail says where."""
    if not _told(settings):
        return []
    key = f"check:{check}:{run_id}"
    if _told_already(session, key):
        return []
    body = render(_template(settings, "check"), settings.ops_language, check=check,
                  run_id=run_id)
    return _queue(session, hasher, settings, key, "ops_alert",
                  _say(settings, "check", check=check), body, now=now)
