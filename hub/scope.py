"""Which records a request may act on (DESIGN.md rules 4 and 9).

A request looks the subject up live by their own identifiers and by the other
identifiers of their index person (rule 4). What comes back is split here: the
subject's own records are acted on; the rest are candidates that wait for an
operator (hub.review), unless one already approved or excluded them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from hub import index, ledger, linking, review
from hub.domain import Identifier, IdentifierKind, RecordRef
from hub.identity import identifiers_of
from hub.review import Decision


@dataclass(frozen=True)
class Scope:
    """A lookup's records, split: act on these; these wait; these an operator excluded."""

    act: list[RecordRef] = field(default_factory=list)
    candidates: list[tuple[RecordRef, str]] = field(default_factory=list)
    excluded: list[RecordRef] = field(default_factory=list)
    shared: set[Identifier] = field(default_factory=set)
    """The subject's own identifiers that reached someone else's record."""


def _own(session: Session, request_id: str
         ) -> tuple[list[Identifier], set[Identifier], list[str]]:
    """The subject's own identifiers, those of them the index knows are shared, and the
    index persons their unshared ones reach."""
    own = ledger.identifiers_of(session, request_id)
    shared = index.shared_identifiers(session, own)
    return own, shared, index.persons_holding(session, [i for i in own if i not in shared])


def subject_of(session: Session, request_id: str) -> linking.Subject:
    """The subject as the request knows them: own identifiers, names, shared identifiers."""
    own, shared, persons = _own(session, request_id)
    row = ledger.get_request(session, request_id)
    names = {row.subject_name} if row.subject_name else set()
    for person in persons:
        names |= index.names_of_person(session, person)
    return linking.Subject(
        emails=frozenset(i.value for i in own if i.kind == IdentifierKind.EMAIL),
        phones=frozenset(i.value for i in own if i.kind == IdentifierKind.PHONE),
        names=frozenset(w for w in map(linking.name_words, names) if w),
        shared=frozenset(shared),
    )


def search_identifiers(session: Session, request_id: str) -> list[Identifier]:
    """What the live lookup searches by: the subject's own, then their index person's."""
    own, _, persons = _own(session, request_id)
    found: dict[Identifier, None] = dict.fromkeys(own)
    for person in persons:
        found.update(dict.fromkeys(index.identifiers_of_person(session, person)))
    return list(found)


def holder(ref: RecordRef, key: int) -> linking.Holder:
    """A found record as the linking rule sees it, from what the connector read."""
    facts = ref.facts
    if facts is None:
        return linking.Holder(key, None)
    idents = identifiers_of(facts.emails, facts.phones)
    mentioned = identifiers_of([m for m in facts.mentions if "@" in m],
                               [m for m in facts.mentions if "@" not in m])
    return linking.Holder(
        key, linking.name_words(facts.name),
        frozenset(i.value for i in idents if i.kind == IdentifierKind.EMAIL),
        frozenset(i.value for i in idents if i.kind == IdentifierKind.PHONE),
        frozenset(i.value for i in mentioned),
    )


def split(subject: linking.Subject, refs: Sequence[RecordRef],
          decided: dict[review.RecordKey, Decision]) -> Scope:
    """Judge each found record; an operator's earlier decision stands."""
    holders = [holder(ref, n) for n, ref in enumerate(refs)]
    live_shared = linking.shared_in(holders, subject)
    scope = Scope()
    for ref, who in zip(refs, holders, strict=True):
        if ref.facts is None:
            verdict = linking.Verdict(False, "the connector did not say whose record it is")
        else:
            verdict = linking.judge(subject, who, live_shared=live_shared)
        decision = decided.get(review.key_of(ref), Decision.PENDING)
        if not verdict.subject:
            scope.shared.update(_own_hits(subject, who))
        if verdict.subject or decision == Decision.APPROVED:
            scope.act.append(ref)
        elif decision == Decision.EXCLUDED:
            scope.excluded.append(ref)
        else:
            scope.candidates.append((ref, verdict.reason))
    return scope


def _own_hits(subject: linking.Subject, who: linking.Holder) -> list[Identifier]:
    return [*(Identifier(IdentifierKind.EMAIL, e) for e in who.emails & subject.emails),
            *(Identifier(IdentifierKind.PHONE, p) for p in who.phones & subject.phones)]


def found_identifiers(session: Session, refs: Sequence[RecordRef]) -> list[Identifier]:
    """Every identifier read on these records, except those the index knows are shared.

    These join the suppression list when an erasure settles (rule 6); a shared one
    (the switchboard on the subject's CRM record) would flag a colleague as an
    erased person reappearing.
    """
    found: dict[Identifier, None] = {}
    for ref in refs:
        if ref.facts is not None:
            found.update(dict.fromkeys(
                i for i in identifiers_of(ref.facts.emails, ref.facts.phones)
                if i.kind != IdentifierKind.PHONE_RAW))
    shared = index.shared_identifiers(session, list(found))
    return [i for i in found if i not in shared]
