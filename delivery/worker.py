"""One pass over the outbox: queue the ops staff's alerts and digest, deliver what is due.

Called by the `letter_outbox` sensor every 30 seconds and by `hub letters send`.
Each due letter is claimed (compare-and-set, committed), then sent in its own
transaction and marked sent or failed: a crash between sending and marking leaves
it `sending`, and it is sent again once stale (at least once beats never). Waits
between attempts are the outbox's backoff (HUB_LETTER_RETRY_SECONDS, doubling), with
the clock injectable; nothing here sleeps.
"""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from mimetypes import guess_type
from pathlib import Path

from delivery.post import write_pdf
from delivery.slack import Poster, SlackPoster, SlackRefused, fit
from delivery.smtp import NotConfigured, SmtpTransport, Transport, describe
from hub import alerts, deadlines, outbox
from hub.letters import as_text
from hub.models import LetterRow
from hub.outbox import Channel
from hub.store import Store


@dataclass
class Report:
    """What one pass did: letter ids only, safe for Dagster's logs (rule 7)."""

    queued: list[int] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    # Why each failed letter failed, as the outbox keeps it: masked, no secret.
    errors: dict[int, str] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """For Dagster's logs: each failed letter's channel and the kind of failure only.

        The outbox's text is masked for e-mail addresses, but a server's reply can echo
        a name or a phone number; `hub letters list` shows the whole of it to the ops
        staff, who may see it."""
        return [f"letter {i}: {_kind_of(self.errors.get(i, '?'))}" for i in self.failed]

    def summary(self) -> str:
        return (f"{len(self.queued)} queued for ops, {len(self.sent)} sent, "
                f"{len(self.failed)} failed")


def _kind_of(error: str) -> str:
    """"email: recipient refused: 550 <m***@x.fi> ..." -> "email: recipient refused"."""
    channel, _, rest = error.partition(": ")
    return f"{channel}: {rest.split(':', 1)[0].strip()}" if rest else channel


def build_message(letter: LetterRow, *, sender: str, home: Path) -> EmailMessage:
    """The e-mail: plain text and HTML of the same body, the bundle's files attached."""
    message = EmailMessage()
    message["Subject"] = letter.subject
    message["From"] = sender
    message["To"] = letter.recipient or ""
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip(">") or None)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(as_text(letter.body or ""))
    message.add_alternative(
        f"<!doctype html><html lang='{letter.language}'><meta charset='utf-8'>"
        f"<body>{letter.body or ''}</body></html>", subtype="html")
    for rel in letter.attachments or []:
        path = home / rel
        kind = (guess_type(path.name)[0] or "application/octet-stream").split("/")
        message.add_attachment(path.read_bytes(), maintype=kind[0], subtype=kind[1],
                               filename=path.name)
    return message


def _unreachable(exc: BaseException) -> bool:
    """The server (or its configuration), not this letter: the next letter would fail
    the same way, so e-mail waits for the next pass instead of burning their attempts."""
    if isinstance(exc, smtplib.SMTPConnectError | smtplib.SMTPServerDisconnected
                  | smtplib.SMTPNotSupportedError | smtplib.SMTPAuthenticationError):
        return True
    if isinstance(exc, smtplib.SMTPException):  # an answer about this message (550 ...)
        return False
    return isinstance(exc, NotConfigured | OSError)  # refused, timed out, DNS, TLS


def _down(channel: str, exc: BaseException) -> bool:
    """Whether the letter's way out, not the letter, failed: skip the channel this pass."""
    if channel == Channel.SLACK:
        return not isinstance(exc, SlackRefused) or exc.down
    return channel == Channel.EMAIL and _unreachable(exc)


def _send_one(store: Store, letter_id: int, email: Callable[[], Transport],
              slack: Callable[[], Poster], now: datetime) -> tuple[str | None, bool]:
    """Deliver one claimed letter; (the error kept if it failed, its channel is down)."""
    settings = store.settings
    with store.session() as session:
        letter = session.get(LetterRow, letter_id)
        document = None
        try:
            if letter.channel == Channel.POST:
                today = deadlines.local_date(now, settings.timezone)
                sender = "\n".join(x for x in (settings.controller_name,
                                               settings.controller_contact) if x)
                document = write_pdf(settings.home, letter, sender=sender or None, today=today)
            elif letter.channel == Channel.SLACK:
                slack().post(letter.recipient or "", fit(letter.subject, as_text(letter.body)))
            elif not settings.mail_from:
                raise NotConfigured("HUB_MAIL_FROM is not set: e-mail has no sender")
            else:
                email().send(build_message(letter, sender=settings.mail_from,
                                           home=settings.home))
        except Exception as exc:  # noqa: BLE001 - any failure is recorded, never lost
            outbox.mark_failed(session, letter, describe(exc),
                               retry_seconds=settings.letter_retry_seconds,
                               max_attempts=settings.letter_max_attempts, now=now)
            return f"{letter.channel}: {letter.last_error}", _down(letter.channel, exc)
        outbox.mark_sent(session, letter, document=document, now=now)
        return None, False


def deliver_due(store: Store, *, email: Callable[[], Transport] | None = None,
                slack: Callable[[], Poster] | None = None, now: datetime | None = None,
                limit: int = 20, budget_seconds: float = 20.0,
                clock: Callable[[], float] = time.monotonic) -> Report:
    """Claim and deliver due letters one at a time; a failure is recorded on its letter.

    A pass starts no letter after ``limit`` letters or ``budget_seconds``, so with the
    connection's own timeout (HUB_SMTP_TIMEOUT, 30 s) a sensor tick ends within
    Dagster's 60 s evaluation timeout; and it stops using a channel (e-mail, Slack) once
    its server is unreachable: one letter records why, the others stay queued for the
    next pass, and the other channels go on (Slack down never holds back the e-mail).
    """
    now = now or datetime.now(UTC)
    email = email or (lambda: SmtpTransport.from_settings(store.settings))
    slack = slack or (lambda: SlackPoster.from_settings(store.settings))
    channels = set(Channel)
    started, report = clock(), Report()
    while (channels and len(report.sent) + len(report.failed) < limit
           and clock() - started < budget_seconds):
        with store.session() as session:
            claimed = [(x.id, x.channel) for x in outbox.claim_due(
                session, max_attempts=store.settings.letter_max_attempts, limit=1,
                channels=sorted(channels), now=now)]
        if not claimed:
            break
        [(letter_id, channel)] = claimed
        error, down = _send_one(store, letter_id, email, slack, now)
        (report.failed if error else report.sent).append(letter_id)
        if error:
            report.errors[letter_id] = error
        if down:
            channels.discard(Channel(channel))
    return report


def tick(store: Store, *, email: Callable[[], Transport] | None = None,
         slack: Callable[[], Poster] | None = None, now: datetime | None = None) -> Report:
    """Queue alerts for newly failed tasks and the day's digest, then deliver."""
    now = now or datetime.now(UTC)
    with store.session() as session:
        queued = alerts.queue_task_alerts(session, store.hasher, store.settings, now=now)
        queued += alerts.queue_digest(session, store.hasher, store.settings, now=now)
    report = deliver_due(store, email=email, slack=slack, now=now)
    report.queued = queued
    return report
