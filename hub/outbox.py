"""The outbox: every letter the hub sends, with its delivery state (DESIGN.md, Dagster shape).

A letter is queued in the same transaction as the step it reports (a request filed,
extended, rejected, completed), so a letter is never promised without the step or the
step done without its letter. Delivery happens elsewhere (`delivery/`, run by the
`letter_outbox` sensor or `hub letters send`): it claims due letters with a
compare-and-set, sends, and records `sent` or `failed` with the error, the attempt
count and when to try again. A letter given up on stays `failed` and visible.

The recipient and the body are personal data. They stay in plain text only while the
letter is undelivered, then only a masked recipient and keyed hashes remain (rule 6):
what was sent can be proven (the hash), not read back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub import audit
from hub.hashing import Hasher
from hub.identity import mask_emails_in
from hub.models import LetterRow, RequestIdentifierRow

# An SMTP server's refusal often quotes the address ("550 <m@x.fi>: no such user").


class LetterState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class Channel(StrEnum):
    """How a letter leaves: by e-mail, as a printable PDF for the post, or (the ops
    staff's alerts and digest only) as a message in their Slack channel."""

    EMAIL = "email"
    POST = "post"
    SLACK = "slack"


# A letter left `sending` this long by a worker that died is claimed again: sending it
# twice is better than never (the subject is owed the answer).
STALE_SENDING = timedelta(minutes=15)


@dataclass(frozen=True)
class Draft:
    """A rendered letter ready to queue; ``key`` makes queuing it twice harmless."""

    key: str
    kind: str
    language: str
    channel: Channel
    recipient: str
    recipient_masked: str
    subject: str
    body: str
    request_id: str | None = None
    attachments: tuple[str, ...] = field(default=())


def enqueue(session: Session, hasher: Hasher, draft: Draft, *,
            now: datetime | None = None) -> LetterRow:
    """Queue the letter once: a second call with the same key returns the first letter."""
    existing = by_key(session, draft.key)
    if existing is not None:
        return existing
    now = now or datetime.now(UTC)
    row = LetterRow(
        key=draft.key, kind=draft.kind, request_id=draft.request_id, language=draft.language,
        channel=draft.channel.value, recipient=draft.recipient,
        recipient_masked=draft.recipient_masked,
        recipient_hash=hasher.text("recipient", draft.recipient), subject=draft.subject,
        body=draft.body, body_hash=hasher.text("letter", draft.body),
        attachments=list(draft.attachments) or None, state=LetterState.QUEUED.value,
        attempts=0, created_at=now, updated_at=now,
    )
    try:
        with session.begin_nested():  # a concurrent writer of the same key wins cleanly
            session.add(row)
    except IntegrityError:
        found = by_key(session, draft.key)
        if found is None:
            raise
        return found
    audit.append(session, "letter.queued", {
        "letter": row.id, "kind": row.kind, "channel": row.channel,
        "to": row.recipient_masked}, request_id=row.request_id, now=now)
    return row


def by_key(session: Session, key: str) -> LetterRow | None:
    return session.execute(select(LetterRow).where(LetterRow.key == key)).scalar_one_or_none()


def get(session: Session, letter_id: int) -> LetterRow | None:
    return session.get(LetterRow, letter_id)


def letters_of(session: Session, request_id: str | None = None, *,
               limit: int = 200) -> list[LetterRow]:
    """A request's letters (or the latest of all), oldest first."""
    query = select(LetterRow).order_by(LetterRow.id.desc()).limit(limit)
    if request_id is not None:
        query = query.where(LetterRow.request_id == request_id)
    return sorted(session.execute(query).scalars(), key=lambda r: r.id)


def claim_due(session: Session, *, max_attempts: int, limit: int = 20,
              channels: Sequence[Channel] = tuple(Channel),
              now: datetime | None = None) -> list[LetterRow]:
    """Move due letters to `sending`, each in one compare-and-set, and return them.

    Due: queued, or failed with its next attempt time reached and attempts left, or
    `sending` for longer than `STALE_SENDING` (its worker died). Two workers never
    claim the same letter: the UPDATE succeeds for one of them only. ``channels``
    leaves out a channel that is down for this pass.
    """
    now = now or datetime.now(UTC)
    candidates = session.execute(
        select(LetterRow.id, LetterRow.state).where(or_(
            LetterRow.state == LetterState.QUEUED.value,
            (LetterRow.state == LetterState.FAILED.value)
            & (LetterRow.next_attempt_at.is_not(None)) & (LetterRow.next_attempt_at <= now)
            & (LetterRow.attempts < max_attempts),
            (LetterRow.state == LetterState.SENDING.value)
            & (LetterRow.updated_at < now - STALE_SENDING),
        ), LetterRow.channel.in_([Channel(c).value for c in channels]))
        .order_by(LetterRow.id).limit(limit)
    ).all()
    claimed = []
    for letter_id, state in candidates:
        done = session.execute(
            update(LetterRow).where(LetterRow.id == letter_id, LetterRow.state == state)
            .values(state=LetterState.SENDING.value, attempts=LetterRow.attempts + 1,
                    updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if done == 1:
            row = session.get(LetterRow, letter_id)
            session.refresh(row)
            claimed.append(row)
    return claimed


def mark_sent(session: Session, letter: LetterRow, *, document: str | None = None,
              now: datetime | None = None) -> None:
    """Sent: the plaintext recipient and body go, the masked recipient and hashes stay."""
    now = now or datetime.now(UTC)
    letter.state, letter.sent_at, letter.updated_at = LetterState.SENT.value, now, now
    letter.last_error, letter.next_attempt_at = None, None
    if document is not None:
        letter.document = document
    letter.recipient, letter.body = None, None
    audit.append(session, "letter.sent", {
        "letter": letter.id, "kind": letter.kind, "channel": letter.channel,
        "to": letter.recipient_masked, "attempts": letter.attempts,
        "body_hash": letter.body_hash}, request_id=letter.request_id, now=now)


def mark_failed(session: Session, letter: LetterRow, error: str, *, retry_seconds: float,
                max_attempts: int, now: datetime | None = None) -> None:
    """Failed: the error kept (without the recipient), the next try backed off, doubling.

    After ``max_attempts`` the letter stays failed with no next attempt: given up, and
    shown in the ops digest until someone runs `hub letters retry`.
    """
    now = now or datetime.now(UTC)
    if letter.recipient:
        error = error.replace(letter.recipient, letter.recipient_masked)
    error = mask_emails_in(error)
    letter.state, letter.updated_at = LetterState.FAILED.value, now
    letter.last_error = error[:2000]
    letter.next_attempt_at = (now + timedelta(seconds=retry_seconds * 2 ** (letter.attempts - 1))
                              if letter.attempts < max_attempts else None)
    audit.append(session, "letter.failed", {
        "letter": letter.id, "kind": letter.kind, "attempts": letter.attempts,
        "error": letter.last_error, "gave_up": letter.next_attempt_at is None,
    }, request_id=letter.request_id, now=now)


def retry(session: Session, letter_ids: Sequence[int], *, now: datetime | None = None
          ) -> list[int]:
    """Queue failed letters again now, with a fresh count of attempts (an operator's call)."""
    now = now or datetime.now(UTC)
    again = []
    for letter_id in letter_ids:
        letter = session.get(LetterRow, letter_id)
        if (letter is None or LetterState(letter.state) != LetterState.FAILED
                or letter.recipient is None):  # scrubbed after an erasure: nothing to send
            continue
        letter.state, letter.attempts = LetterState.QUEUED.value, 0
        letter.next_attempt_at, letter.updated_at = None, now
        again.append(letter_id)
        audit.append(session, "letter.retry", {"letter": letter_id},
                     request_id=letter.request_id, now=now)
    return again


def failed(session: Session) -> list[LetterRow]:
    """Letters not delivered (retrying or given up): what the ops digest lists."""
    return list(session.execute(select(LetterRow).where(
        LetterRow.state == LetterState.FAILED.value).order_by(LetterRow.id)).scalars())


def awaiting_post(session: Session) -> list[LetterRow]:
    """Letters by post whose PDF is written but not yet marked as posted."""
    return list(session.execute(select(LetterRow).where(
        LetterRow.channel == Channel.POST.value, LetterRow.state == LetterState.SENT.value,
        LetterRow.document.is_not(None)).order_by(LetterRow.id)).scalars())


def _remove_document(session: Session, home: Path, letter: LetterRow, action: str,
                     now: datetime | None, actor: str = "hub") -> None:
    (home / letter.document).unlink(missing_ok=True)
    letter.document = None
    audit.append(session, action, {"letter": letter.id}, actor=actor,
                 request_id=letter.request_id, now=now)


def posted(session: Session, home: Path, letter_ids: Sequence[int], *, actor: str,
           now: datetime | None = None) -> list[int]:
    """The operator printed and posted these letters: their PDFs, copies of personal
    data, are deleted (rule 6); the audit trail keeps who said so and when."""
    done = []
    for letter in awaiting_post(session):
        if letter.id in letter_ids:
            _remove_document(session, home, letter, "letter.posted", now,
                             actor=actor or "operator")
            done.append(letter.id)
    return done


def forget_subject(session: Session, home: Path, request_id: str, *,
                   now: datetime | None = None) -> list[int]:
    """What the outbox holds of the subject of the erasure `request_id` once it settles
    (rule 6): the PDFs of their earlier letters are deleted, and letters given up on
    (failed, no attempt left) lose their plaintext, as they will never be sent.

    The subject is recognised by identifier hash, as with their bundles. The erasure's
    own letters that are still to be sent or posted stay: the subject is owed them.
    Returns the ids of the letters touched.
    """
    mine = select(RequestIdentifierRow.hash).where(
        RequestIdentifierRow.request_id == request_id)
    same_subject = select(RequestIdentifierRow.request_id).where(
        RequestIdentifierRow.hash.in_(mine))
    touched = []
    for letter in session.execute(select(LetterRow).where(
            LetterRow.request_id.in_(same_subject)).order_by(LetterRow.id)).scalars():
        if letter.document is not None and letter.request_id != request_id:
            _remove_document(session, home, letter, "letter.document_erased", now)
            touched.append(letter.id)
        elif (LetterState(letter.state) == LetterState.FAILED
              and letter.next_attempt_at is None and letter.recipient is not None):
            letter.recipient, letter.body = None, None
            audit.append(session, "letter.scrubbed", {"letter": letter.id},
                         request_id=letter.request_id, now=now)
            touched.append(letter.id)
    return touched
