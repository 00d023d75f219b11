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

from hub import index
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


def same_subject(session: Session, identifiers: Sequence[Identifier]) -> list[Identifier]:
    """The subject's identifiers and the variants the index knows for them.

    A subject who wrote from their work address last spring and from their private one
    now is one person in the index (linked by their own mobile); counting their access
    requests by the new address alone would miss the first. Only identifiers nobody
    else holds reach the index person, and only when they reach exactly one: a shared
    switchboard number must not make a colleague's request this subject's.
    """
    shared = index.shared_identifiers(session, identifiers)
    own = [i for i in identifiers if i not in shared]
    persons = index.persons_holding(session, own)
    if len(persons) != 1:
        return list(dict.fromkeys(identifiers))
    variants = index.identifiers_of_person(session, persons[0])
    shared = index.shared_identifiers(session, variants)  # the person's, not only the given
    return list(dict.fromkeys([*identifiers, *(v for v in variants if v not in shared)]))
