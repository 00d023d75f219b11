"""Restricted processing (GDPR art. 18): the index records the sync leaves alone.

While a person's processing is restricted the hub only stores their data: it does
not let the nightly sync rewrite their index records (a vendor edit made meanwhile
would otherwise flow in and be processed), and they receive no marketing (the
request unsubscribes them at the vendors, `index.mark_unsubscribed` here).

A restriction is kept as pointers to index records, like a legal hold
(`hub/holds.py`), not as keyed hashes of identifiers: the index writer knows records
by (system, record id), so it needs no hashing per synced record, and a pointer
holds no personal data. Written when a restriction request settles, for the records
holding the subject's identifiers; dropped when a lift request (or an erasure)
settles. The index writer reads them itself (`index._frozen_records`). A record the
index did not hold yet (the person restricted before their first sync) is not frozen:
the next sync adds it as it would anyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from hub import index
from hub.domain import Identifier
from hub.models import RestrictedRecordRow, SourceRecordRow


def _pointers(session: Session, identifiers: Sequence[Identifier]) -> list[tuple[str, str]]:
    pks = index.records_holding(session, identifiers)
    if not pks:
        return []
    return [(s, r) for s, r in session.execute(
        select(SourceRecordRow.system, SourceRecordRow.record_id)
        .where(SourceRecordRow.pk.in_(pks)))]


def freeze(session: Session, request_id: str, identifiers: Sequence[Identifier], *,
           now: datetime | None = None) -> int:
    """Freeze the index records holding these identifiers; idempotent. Returns how many
    records were newly frozen."""
    now = now or datetime.now(UTC)
    added = 0
    for system, record_id in _pointers(session, identifiers):
        if session.get(RestrictedRecordRow, (system, record_id)) is None:
            session.add(RestrictedRecordRow(system=system, record_id=record_id,
                                            request_id=request_id, created_at=now))
            added += 1
    session.flush()
    return added


def lift(session: Session, identifiers: Sequence[Identifier]) -> int:
    """Thaw the index records holding these identifiers; returns how many were frozen."""
    lifted = 0
    for system, record_id in _pointers(session, identifiers):
        lifted += session.execute(delete(RestrictedRecordRow).where(
            RestrictedRecordRow.system == system,
            RestrictedRecordRow.record_id == record_id)).rowcount
    session.flush()
    return lifted
