"""The append-only audit trail, hash-chained so any edit shows.

Each event carries the hash of the one before it (canonical JSON, SHA-256), and
the chain's tip is kept in `audit_head`: editing, deleting or reordering any event,
including the last, breaks a link that `verify` names. Events never carry
plaintext personal data; `append` refuses an unmasked e-mail address as a last
line of defence.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.models import AuditEventRow, AuditHeadRow

GENESIS = "0" * 64
_PLAIN_EMAIL = re.compile(r"[^\s@*]+@[^\s@]+\.[a-z]{2,}", re.IGNORECASE)


class PersonalDataInAudit(ValueError):
    """An audit payload held what looks like a plaintext e-mail address."""


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def _event_hash(seq: int, at: str, actor: str, action: str, request_id: str | None,
                payload: str, prev_hash: str) -> str:
    body = canonical({"seq": seq, "at": at, "actor": actor, "action": action,
                      "request_id": request_id, "payload": payload, "prev": prev_hash})
    return hashlib.sha256(body.encode()).hexdigest()


def append(session: Session, action: str, payload: dict[str, Any] | None = None, *,
           request_id: str | None = None, actor: str = "hub",
           now: datetime | None = None) -> AuditEventRow:
    """Add one event at the tip of the chain, in the caller's transaction."""
    text = canonical(payload or {})
    if _PLAIN_EMAIL.search(text):
        raise PersonalDataInAudit(f"audit event {action!r} holds an unmasked e-mail address")
    head = session.execute(
        select(AuditHeadRow).where(AuditHeadRow.id == 1).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        head = AuditHeadRow(id=1, seq=0, hash=GENESIS)
        session.add(head)
    seq = head.seq + 1
    at = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")
    digest = _event_hash(seq, at, actor, action, request_id, text, head.hash)
    row = AuditEventRow(seq=seq, at=at, actor=actor, action=action, request_id=request_id,
                        payload=text, prev_hash=head.hash, hash=digest)
    session.add(row)
    head.seq, head.hash = seq, digest
    session.flush()
    return row


@dataclass(frozen=True)
class AuditReport:
    ok: bool
    events: int
    problem: str | None = None
    seq: int | None = None


def verify(session: Session, batch: int = 5000) -> AuditReport:
    """Walk the chain in order; the first broken link is reported with its position."""
    prev_hash, expected_seq, count = GENESIS, 1, 0
    last_seq = 0
    while True:
        rows = session.execute(
            select(AuditEventRow).where(AuditEventRow.seq > last_seq)
            .order_by(AuditEventRow.seq).limit(batch)
        ).scalars().all()
        if not rows:
            break
        for row in rows:
            if row.seq != expected_seq:
                return AuditReport(False, count, f"event {expected_seq} is missing "
                                   f"(next present is {row.seq})", expected_seq)
            if row.prev_hash != prev_hash:
                return AuditReport(False, count, f"event {row.seq} does not follow event "
                                   f"{row.seq - 1} (deleted, inserted or reordered)", row.seq)
            digest = _event_hash(row.seq, row.at, row.actor, row.action, row.request_id,
                                 row.payload, row.prev_hash)
            if digest != row.hash:
                return AuditReport(False, count, f"event {row.seq} was edited "
                                   "(its content no longer matches its hash)", row.seq)
            prev_hash, expected_seq, count = row.hash, expected_seq + 1, count + 1
            last_seq = row.seq
    head = session.get(AuditHeadRow, 1)
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    if head_seq > count:
        return AuditReport(False, count, f"the trail ends at event {count} but its recorded "
                           f"tip is event {head_seq} (events were removed from the end)",
                           count + 1)
    if head_seq < count:
        return AuditReport(False, count, f"event {head_seq + 1} was added after the recorded "
                           f"tip (event {head_seq})", head_seq + 1)
    if head_hash != prev_hash:
        # Same length, different tip: the last event was rewritten with a new hash.
        return AuditReport(False, count, f"event {count} was edited (it no longer matches "
                           "the recorded tip of the trail)", count)
    return AuditReport(True, count)
