"""Whose records are whose: the linking rule of the index and of every request.

Two colleagues who share their company's phone are two people. A hub that merges
them hands one colleague's data to the other and erases the wrong person, which is
itself a data breach (DESIGN.md rule 9). So linking is conservative, and the rule
lives here, in one place, for the nightly index and for each request's live lookup.

The linking rule
----------------
Names compare by their words: case, accents' composition, order, hyphens and dots
do not matter, and a name *agrees* with another when the words of one are all
among the words of the other ("Aino" ~ "Aino Virtanen" ~ "Virtanen Aino",
"Aino Virtanen" ~ "Aino Virtanen-Korhonen"; "Aino Virtanen" !~ "Aino Korhonen").
A record without a name agrees with every name.

1. An e-mail links the records holding it unless their names disagree: then it is
   a shared address (info@company.fi) and links nobody.
2. A phone links the records holding it unless their names disagree, or it would
   join two different e-mail addresses of which one has no name beside it. Two
   addresses are joined through a phone only when names on both sides say it is
   one human (one person with a work and a private address, linked by their own
   mobile number); otherwise the phone is a switchboard and links nobody.
3. Links are applied e-mails first, then phones, each in a fixed order, and an
   identifier whose link would put disagreeing records into one person (also
   through a chain of other records) links nobody.

A false split costs an operator a review; a false merge is a breach. Every rule
above trades the first for the second.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from hub.domain import Identifier, IdentifierKind
from hub.identity import mask_email, mask_phone

EMAIL, PHONE = IdentifierKind.EMAIL.value, IdentifierKind.PHONE.value
_WORD_SPLIT = re.compile(r"[\s\-‐‑.,]+")


@lru_cache(maxsize=8192)
def name_words(name: str | None) -> frozenset[str] | None:
    """The words of a name, case-folded and NFC; None for no name at all."""
    if not name:
        return None
    text = unicodedata.normalize("NFC", name).casefold()
    words = frozenset(w for w in _WORD_SPLIT.split(text) if w)
    return words or None


def names_agree(a: frozenset[str] | None, b: frozenset[str] | None) -> bool:
    """One name's words are all among the other's, or either is missing."""
    return a is None or b is None or a <= b or b <= a


def all_agree(names: Iterable[frozenset[str] | None]) -> bool:
    """Every pair of these names agrees (agreement is not transitive: check all pairs)."""
    present = list({n for n in names if n is not None})
    return all(names_agree(present[i], present[j])
               for i in range(len(present)) for j in range(i + 1, len(present)))


@dataclass(frozen=True)
class Holder:
    """One record as the rule sees it: its key, name words and normalised identifiers."""

    key: int
    name: frozenset[str] | None
    emails: frozenset[str] = frozenset()
    phones: frozenset[str] = frozenset()
    mentions: frozenset[str] = frozenset()  # named only in free text: never links


@dataclass
class _Group:
    """A person being built: its names, and its parts that e-mails alone hold together."""

    names: set[frozenset[str]]
    mail_parts: int  # parts holding an e-mail address, joined to the rest by phones
    unnamed_mail_parts: int  # of those, parts where no record carries a name
    members: list[int]

    @classmethod
    def of(cls, holder: Holder) -> _Group:
        has_mail = bool(holder.emails)
        return cls({holder.name} if holder.name else set(), int(has_mail),
                   int(has_mail and holder.name is None), [holder.key])


def _may_join(groups: Sequence[_Group], kind: str) -> bool:
    """Whether joining these groups through one identifier of `kind` keeps the rule."""
    if not all_agree(n for g in groups for n in g.names):
        return False
    if kind == PHONE:
        parts = sum(g.mail_parts for g in groups)
        return parts <= 1 or not any(g.unnamed_mail_parts for g in groups)
    return True


def _join(into: _Group, other: _Group, kind: str) -> None:
    into.names |= other.names
    into.members += other.members
    if kind == EMAIL:  # one address: the parts become one part, named if any name is known
        into.mail_parts = 1
        into.unnamed_mail_parts = 0 if into.names else 1
    else:
        into.mail_parts += other.mail_parts
        into.unnamed_mail_parts += other.unnamed_mail_parts


def resolve(holders: Sequence[Holder]) -> dict[int, int]:
    """Partition records into people by the linking rule: record key → smallest key of its person.

    Deterministic: the order of `holders` does not matter.
    """
    parent = {h.key: h.key for h in holders}
    groups = {h.key: _Group.of(h) for h in holders}

    def root(key: int) -> int:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    holding: dict[tuple[str, str], list[int]] = defaultdict(list)
    for h in sorted(holders, key=lambda h: h.key):
        for value in h.emails:
            holding[(EMAIL, value)].append(h.key)
        for value in h.phones:
            holding[(PHONE, value)].append(h.key)
    # e-mails before phones; within a kind, by value: a fixed order
    for kind, value in sorted(holding, key=lambda kv: (kv[0] != EMAIL, kv[1])):
        roots = sorted({root(k) for k in holding[(kind, value)]})
        if len(roots) < 2 or not _may_join([groups[r] for r in roots], kind):
            continue
        keep = roots[0]
        for other in roots[1:]:
            parent[other] = keep
            _join(groups[keep], groups.pop(other), kind)
    return {h.key: min(groups[root(h.key)].members) for h in holders}


# --------------------------------------------------------------- a request's records


@dataclass(frozen=True)
class Subject:
    """What a request knows of whose data it is after.

    ``emails``/``phones``: the subject's own identifiers, given and verified
    (normalised). ``names``: the name they gave and the names the index holds on
    records reached by their own unshared identifiers. ``shared``: own identifiers
    the index knows several different people use.
    """

    emails: frozenset[str]
    phones: frozenset[str]
    names: frozenset[frozenset[str]] = frozenset()
    shared: frozenset[Identifier] = frozenset()


@dataclass(frozen=True)
class Verdict:
    """Whether a found record is the subject's (act) or a candidate, and why (masked)."""

    subject: bool
    reason: str


def _confirmed(name: frozenset[str] | None, names: frozenset[frozenset[str]]) -> bool:
    return name is not None and bool(names) and all(names_agree(name, n) for n in names)


def judge(subject: Subject, holder: Holder, *,
          live_shared: frozenset[Identifier] = frozenset()) -> Verdict:
    """Rule 9 for one record found live: the subject's own, or a candidate for review.

    ``live_shared``: own identifiers that, in this very lookup, reached records whose
    names disagree: shared at the vendor even if the index has not seen it yet.
    The reason names identifiers masked only, never a name.
    """
    shared = subject.shared | live_shared
    name_ok = holder.name is None or all(names_agree(holder.name, n) for n in subject.names)
    confirmed = _confirmed(holder.name, subject.names)
    own_emails = holder.emails & subject.emails
    own_phones = holder.phones & subject.phones
    if not own_emails and not own_phones:
        mentioned = holder.mentions & (subject.emails | subject.phones)
        if mentioned:
            value = min(mentioned)
            shown = mask_email(value) if "@" in value else mask_phone(value)
            return Verdict(False, f"names {shown} only in free text: it may be about the "
                                  "subject, written by someone else")
        return Verdict(False, "reached only through the index: it shares an identifier with "
                              "another record of the subject, not one the subject gave")
    unshared_emails = {e for e in own_emails if Identifier(IdentifierKind.EMAIL, e) not in shared}
    if unshared_emails:
        if name_ok:
            return Verdict(True, f"e-mail {mask_email(min(unshared_emails))} is the subject's")
        return Verdict(False, f"e-mail {mask_email(min(unshared_emails))} matches but the name on "
                              "the record differs from the subject's")
    if own_emails:
        if confirmed:
            return Verdict(True, f"shared e-mail {mask_email(min(own_emails))} and the same name")
        return Verdict(False, f"e-mail {mask_email(min(own_emails))} is shared by several people")
    phone = min(own_phones)
    if any(Identifier(IdentifierKind.PHONE, p) in shared for p in own_phones):
        if confirmed:
            return Verdict(True, f"shared phone {mask_phone(phone)} and the same name")
        return Verdict(False, f"phone {mask_phone(phone)} is shared by several people")
    if not name_ok:
        return Verdict(False, f"phone {mask_phone(phone)} matches but the name on the record "
                              "differs from the subject's")
    if holder.emails and subject.emails and not confirmed:
        return Verdict(False, f"phone {mask_phone(phone)} matches but the record has another "
                              "e-mail address")
    return Verdict(True, f"phone {mask_phone(phone)} is the subject's")


def shared_in(holders: Sequence[Holder], subject: Subject) -> frozenset[Identifier]:
    """Own identifiers that reach, in one lookup, records whose names disagree."""
    out = set()
    for kind, own, attr in ((IdentifierKind.EMAIL, subject.emails, "emails"),
                            (IdentifierKind.PHONE, subject.phones, "phones")):
        for value in own:
            names = [h.name for h in holders if value in getattr(h, attr)]
            if not all_agree(names):
                out.add(Identifier(kind, value))
    return frozenset(out)
