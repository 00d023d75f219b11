"""The suppression list: keyed hashes of people who were erased, opted out, restricted,
or objected to being published in lists (hub/objections.py).

Sync and import consult it so an erased person is never silently brought back and
an opted-out one never re-subscribed; the reconciliation turns a hit into action.
Only hashes are stored, so keeping the list forever keeps no personal data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.domain import Identifier
from hub.hashing import Hasher
from hub.models import SuppressionRow

# "restriction" (art. 18): no marketing while restricted; removed when it is lifted.
# "lists": an objection to being published in lists (hub/objections.py).
REASONS = ("erasure", "opt_out", "restriction", "lists")


def add_hashes(session: Session, hashes: Iterable[tuple[str, str]], *, reason: str,
               request_id: str | None, now: datetime | None = None) -> int:
    """Add (kind, hash) pairs; idempotent, so a re-run request never double-counts."""
    if reason not in REASONS:
        raise ValueError(f"unknown suppression reason {reason!r}")
    now = now or datetime.now(UTC)
    added = 0
    for kind, digest in dict.fromkeys(hashes):
        if session.get(SuppressionRow, (digest, reason)) is None:
            session.add(SuppressionRow(hash=digest, reason=reason, kind=kind,
                                       request_id=request_id, created_at=now))
            added += 1
    session.flush()
    return added


def remove_hashes(session: Session, hashes: Iterable[tuple[str, str]], *, reason: str) -> int:
    """Drop (kind, hash) pairs of one reason (a lifted restriction); returns how many."""
    removed = 0
    for _kind, digest in dict.fromkeys(hashes):
        row = session.get(SuppressionRow, (digest, reason))
        if row is not None:
            session.delete(row)
            removed += 1
    session.flush()
    return removed


def add(session: Session, hasher: Hasher, identifiers: Sequence[Identifier], *, reason: str,
        request_id: str | None, now: datetime | None = None) -> int:
    return add_hashes(session, [(i.kind.value, hasher.identifier(i)) for i in identifiers],
                      reason=reason, request_id=request_id, now=now)


def reasons_for(session: Session, hasher: Hasher, identifier: Identifier) -> set[str]:
    """Why this identifier is suppressed (empty: it is not). One primary-key lookup."""
    digest = hasher.identifier(identifier)
    rows = session.execute(select(SuppressionRow.reason).where(SuppressionRow.hash == digest))
    return {r for (r,) in rows}


def is_suppressed(session: Session, hasher: Hasher, identifier: Identifier,
                  reason: str | None = None) -> bool:
    found = reasons_for(session, hasher, identifier)
    return bool(found) if reason is None else reason in found
