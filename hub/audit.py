"""The append-only audit trail, chained with a keyed MAC so nobody can rebuild it.

Each event carries the MAC of the one before it (HMAC-SHA256 over canonical JSON),
and the chain's tip is kept in `audit_head`: editing, deleting or reordering any
event, including the last, breaks a link that `verify` names.

The MAC's key is derived from HUB_SECRET with its own label (`chain_key`), so it is
never in the database: someone who can write to the database but does not hold the
secret cannot recompute the chain after an edit (a plain SHA-256 chain they could).
One thing no key inside the deployment can show is that events were cut from the
end and the head rewritten to match (or an old backup restored): for that, write
down `tip` somewhere else now and then (`hub audit tip`), and `verify` with it later
proves the chain still reaches that recorded event unchanged.

Events never carry plaintext personal data; `append` refuses an unmasked e-mail
address as a last line of defence.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.models import AuditEventRow, AuditHeadRow
from hub.settings import SettingsError

GENESIS = "0" * 64
# The derivation label: the chain key differs from every identifier hash made with the
# same secret (those are HMACs of "email:..." / "phone:..."), so none of them, all of
# which are stored in the database, is the chain key.
CHAIN_LABEL = b"hub/audit-chain/v1"
# Where a session finds its key (bytes, or a function returning them): Store sets it.
KEY_INFO = "hub.audit_key"
_PLAIN_EMAIL = re.compile(r"[^\s@*]+@[^\s@]+\.[a-z]{2,}", re.IGNORECASE)
_TIP = re.compile(r"(\d+):([0-9a-f]{64})")


class PersonalDataInAudit(ValueError):
    """An audit payload held what looks like a plaintext e-mail address."""


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def chain_key(secret: bytes) -> bytes:
    """The chain's MAC key: derived from the deployment's secret, never stored."""
    if not secret:
        raise SettingsError("the audit trail needs HUB_SECRET (its key is derived from it)")
    return hmac.new(secret, CHAIN_LABEL, hashlib.sha256).digest()


def session_key(session: Session) -> bytes:
    """The key the store bound to this session; a SettingsError when there is none."""
    key: bytes | Callable[[], bytes] | None = session.info.get(KEY_INFO)
    if key is None:
        raise SettingsError("this session has no audit key: open it through hub.store")
    return key() if callable(key) else key


def _event_mac(key: bytes, seq: int, at: str, actor: str, action: str,
               request_id: str | None, payload: str, prev_hash: str) -> str:
    body = canonical({"seq": seq, "at": at, "actor": actor, "action": action,
                      "request_id": request_id, "payload": payload, "prev": prev_hash})
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def append(session: Session, action: str, payload: dict[str, Any] | None = None, *,
           request_id: str | None = None, actor: str = "hub",
           now: datetime | None = None) -> AuditEventRow:
    """Add one event at the tip of the chain, in the caller's transaction."""
    text = canonical(payload or {})
    if _PLAIN_EMAIL.search(text):
        raise PersonalDataInAudit(f"audit event {action!r} holds an unmasked e-mail address")
    key = session_key(session)
    head = session.execute(
        select(AuditHeadRow).where(AuditHeadRow.id == 1).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        head = AuditHeadRow(id=1, seq=0, hash=GENESIS)
        session.add(head)
    seq = head.seq + 1
    at = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds")
    digest = _event_mac(key, seq, at, actor, action, request_id, text, head.hash)
    row = AuditEventRow(seq=seq, at=at, actor=actor, action=action, request_id=request_id,
                        payload=text, prev_hash=head.hash, hash=digest)
    session.add(row)
    head.seq, head.hash = seq, digest
    session.flush()
    return row


@dataclass(frozen=True)
class Tip:
    """An event of the chain as written down elsewhere: its position and its MAC."""

    seq: int
    mac: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.mac}"


def parse_tip(text: str) -> Tip:
    """`SEQ:MAC` as printed by `hub audit tip`; ValueError for anything else."""
    match = _TIP.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError("a tip is SEQ:MAC as printed by `hub audit tip` "
                         "(a number, a colon, 64 hex digits)")
    return Tip(int(match.group(1)), match.group(2))


def tip(session: Session) -> Tip:
    """The chain's current tip as recorded in the head (verify the chain before trusting it)."""
    head = session.get(AuditHeadRow, 1)
    return Tip(head.seq, head.hash) if head else Tip(0, GENESIS)


@dataclass(frozen=True)
class AuditReport:
    ok: bool
    events: int
    problem: str | None = None
    seq: int | None = None


def verify(session: Session, batch: int = 5000, *, recorded: Tip | None = None
           ) -> AuditReport:
    """Walk the chain in order; the first broken link is reported with its position.

    With `recorded` (a tip written down earlier), also prove the chain still holds that
    event unchanged: the only check that finds events cut from the end.
    """
    key = session_key(session)
    prev_hash, expected_seq, count = GENESIS, 1, 0
    last_seq = 0
    seen_at_tip = GENESIS if recorded is not None and recorded.seq == 0 else None
    while True:
        rows = session.execute(
            select(AuditEventRow).where(AuditEventRow.seq > last_seq)
            .order_by(AuditEventRow.seq).limit(batch)
        ).scalars().all()
        if not rows:
            break
        for row in rows:
            broken = _broken_link(key, row, expected_seq, prev_hash, count)
            if broken is not None:
                return broken
            if recorded is not None and row.seq == recorded.seq:
                seen_at_tip = row.hash
            prev_hash, expected_seq, count = row.hash, expected_seq + 1, count + 1
            last_seq = row.seq
    return _check_head(session, count, prev_hash) or _check_recorded(recorded, seen_at_tip,
                                                                       count)


def _broken_link(key: bytes, row: AuditEventRow, expected_seq: int, prev_hash: str,
                 count: int) -> AuditReport | None:
    if row.seq != expected_seq:
        return AuditReport(False, count, f"event {expected_seq} is missing "
                           f"(next present is {row.seq})", expected_seq)
    if row.prev_hash != prev_hash:
        return AuditReport(False, count, f"event {row.seq} does not follow event "
                           f"{row.seq - 1} (deleted, inserted or reordered)", row.seq)
    digest = _event_mac(key, row.seq, row.at, row.actor, row.action, row.request_id,
                        row.payload, row.prev_hash)
    if not hmac.compare_digest(digest, row.hash):
        return AuditReport(False, count, f"event {row.seq} was edited or forged "
                           "(its content no longer matches its keyed MAC)", row.seq)
    return None


def _check_head(session: Session, count: int, prev_hash: str) -> AuditReport | None:
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
    return None


def _check_recorded(recorded: Tip | None, seen: str | None, count: int) -> AuditReport:
    if recorded is None:
        return AuditReport(True, count)
    if seen is None:
        return AuditReport(False, count, f"the trail ends at event {count} but the tip "
                           f"written down was event {recorded.seq} (events were removed "
                           "from the end, or an older copy restored)", count + 1)
    if not hmac.compare_digest(seen, recorded.mac):
        return AuditReport(False, count, f"event {recorded.seq} is not the one written down "
                           "(the trail was replaced or rebuilt)", recorded.seq)
    return AuditReport(True, count)
