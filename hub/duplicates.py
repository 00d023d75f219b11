"""Open requests a new one would duplicate.

A subject who writes twice, or two operators who file the same letter, should not
get two erasures running side by side for one person: the second is refused with
the open request named, unless the operator says it is meant (`--allow-duplicate`).
The match is by the identifiers' keyed hashes, so it also finds requests whose
plaintext has already been scrubbed.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.domain import Identifier
from hub.hashing import Hasher
from hub.ledger import OPEN_REQUEST_STATES, RequestKind
from hub.models import RequestIdentifierRow, SubjectRequestRow


def open_duplicates(session: Session, hasher: Hasher, kind: RequestKind,
                    identifiers: Sequence[Identifier]) -> list[str]:
    """Ids of open requests of `kind` sharing any of these identifiers, oldest first."""
    hashes = [hasher.identifier(i) for i in identifiers]
    if not hashes:
        return []
    query = (
        select(SubjectRequestRow.id)
        .join(RequestIdentifierRow, RequestIdentifierRow.request_id == SubjectRequestRow.id)
        .where(SubjectRequestRow.kind == kind.value,
               SubjectRequestRow.state.in_([s.value for s in OPEN_REQUEST_STATES]),
               RequestIdentifierRow.hash.in_(hashes))
        .group_by(SubjectRequestRow.id, SubjectRequestRow.received_at)
        .order_by(SubjectRequestRow.received_at, SubjectRequestRow.id)
    )
    return list(session.execute(query).scalars())
