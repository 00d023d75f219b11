"""re-key the audit chain with an HMAC whose key is derived from HUB_SECRET

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 09:00:00

The chain was plain SHA-256: anyone who could write to the database could edit an
event and recompute every later hash. From here on each event's MAC is keyed with a
key derived from HUB_SECRET (hub.audit.chain_key), which is not in the database.

The hub is pre-release, so this is a clean break instead of two verifiers: the
existing events are first verified with the old unkeyed algorithm (frozen below),
then every MAC is recomputed with the key, and an `audit.rekeyed` event records how
many events the keyed chain took over. A broken old chain is refused, never
re-keyed: re-keying would vouch for whatever was forged before. Without events there
is nothing to do and no key is needed.
"""

import hashlib
import hmac
import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from hub.db import DatabaseUnavailable
from hub.settings import SettingsError

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

GENESIS = "0" * 64
events = sa.table("audit_events", sa.column("seq", sa.Integer), sa.column("at", sa.String),
                  sa.column("actor", sa.String), sa.column("action", sa.String),
                  sa.column("request_id", sa.String), sa.column("payload", sa.Text),
                  sa.column("prev_hash", sa.String), sa.column("hash", sa.String))
head = sa.table("audit_head", sa.column("id", sa.Integer), sa.column("seq", sa.Integer),
                sa.column("hash", sa.String))


def _body(seq, at, actor, action, request_id, payload, prev) -> bytes:
    return json.dumps({"seq": seq, "at": at, "actor": actor, "action": action,
                       "request_id": request_id, "payload": payload, "prev": prev},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()


def _plain(row, prev: str) -> str:
    return hashlib.sha256(_body(row.seq, row.at, row.actor, row.action, row.request_id,
                                row.payload, prev)).hexdigest()


def _keyed(key: bytes, seq, at, actor, action, request_id, payload, prev: str) -> str:
    return hmac.new(key, _body(seq, at, actor, action, request_id, payload, prev),
                    hashlib.sha256).hexdigest()


def _refuse(seq: int, why: str) -> None:
    raise DatabaseUnavailable(
        f"the audit trail cannot be re-keyed: its unkeyed chain is broken at event {seq} "
        f"({why}); re-keying would vouch for it. Restore a backup from before the break, "
        "or move this database aside and start a new one")


def _check_plain(rows, head_row) -> None:
    prev = GENESIS
    for expected, row in enumerate(rows, start=1):
        if row.seq != expected:
            _refuse(expected, "missing")
        if row.prev_hash != prev or _plain(row, prev) != row.hash:
            _refuse(row.seq, "edited, inserted or reordered")
        prev = row.hash
    if head_row is None or head_row.seq != len(rows) or head_row.hash != prev:
        _refuse(len(rows), "the recorded tip does not match the last event")


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(events).order_by(events.c.seq)).all()
    if not rows:
        return
    config = op.get_context().config
    key_of = config.attributes.get("audit_key") if config is not None else None
    if key_of is None:
        raise SettingsError("HUB_SECRET is needed once to re-key the existing audit trail")
    key = key_of()
    head_row = conn.execute(sa.select(head).where(head.c.id == 1)).first()
    _check_plain(rows, head_row)
    prev = GENESIS
    for row in rows:
        mac = _keyed(key, row.seq, row.at, row.actor, row.action, row.request_id,
                     row.payload, prev)
        conn.execute(events.update().where(events.c.seq == row.seq)
                     .values(prev_hash=prev, hash=mac))
        prev = mac
    seq = len(rows) + 1
    at = datetime.now(UTC).isoformat(timespec="microseconds")
    payload = json.dumps({"events": len(rows), "from": "sha256", "to": "hmac-sha256"},
                         sort_keys=True, separators=(",", ":"))
    mac = _keyed(key, seq, at, "hub", "audit.rekeyed", None, payload, prev)
    conn.execute(events.insert().values(seq=seq, at=at, actor="hub", action="audit.rekeyed",
                                        request_id=None, payload=payload, prev_hash=prev,
                                        hash=mac))
    conn.execute(head.update().where(head.c.id == 1).values(seq=seq, hash=mac))


def downgrade() -> None:
    # A keyed chain cannot be turned back into an unkeyed one without weakening it;
    # the events stay, and an older hub reports them as edited.
    pass
