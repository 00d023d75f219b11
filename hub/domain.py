"""Domain types shared by the hub and its connectors.

Connectors import these and nothing else from the hub, so the hub can change its
storage freely while the contract with the outside world stays here, small and
typed. Everything is a frozen dataclass: records cross threads and processes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any


class IdentifierKind(StrEnum):
    EMAIL = "email"
    PHONE = "phone"
    # A phone number phonenumbers could not parse: kept as written, never matched.
    PHONE_RAW = "phone_raw"


@dataclass(frozen=True, slots=True)
class Identifier:
    """One normalised identifier of a subject (see hub.identity for normalising)."""

    kind: IdentifierKind
    value: str


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record that holds personal data in one system, as the index keeps it.

    Identifiers, a display name and a pointer only: never the vendor payload
    (DESIGN.md rule 6). Connectors may pass identifiers as the vendor wrote
    them; the index normalises.
    """

    system: str
    record_id: str
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    display_name: str | None = None
    updated_at: datetime | None = None
    subscribed: bool | None = None
    """Whether the record receives direct marketing; None where the system sends none."""
    categories: tuple[str, ...] = ()
    """Special categories (art. 9) the record hints at (hub.categories), by name only."""


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """What a vendor record itself says about whose it is, as read live by ``find``.

    The hub decides from these whether a record belongs to the subject or is only a
    candidate (DESIGN.md rule 9): a phone shared with a colleague, an info@ address.
    Values are as the vendor wrote them; the hub normalises. Never stored, never
    put into evidence.
    """

    name: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    """Identifiers searched for that appear only in the record's free text (a feedback
    answer naming an address): it may be about the subject, not by them."""


@dataclass(frozen=True, slots=True)
class RecordRef:
    """A pointer to a record found live in a system during a request.

    ``container`` scopes the id where the vendor does (a Mailchimp audience, a
    Typeform form); ``kind`` names the vendor object ("person", "member",
    "response", "customer", "contact_person").
    """

    system: str
    kind: str
    record_id: str
    container: str | None = None
    label: str | None = None
    facts: RecordFacts | None = field(default=None, compare=False, repr=False)
    """Filled by ``find``; not part of the record's identity (equality, hashing)."""


class Action(StrEnum):
    """What was done to one record; the vocabulary of evidence (DESIGN.md rule 3)."""

    DELETED = "deleted"
    PERMANENTLY_DELETED = "permanently_deleted"
    ANONYMISED = "anonymised"
    DEACTIVATED = "deactivated"
    UNSUBSCRIBED = "unsubscribed"
    EXPORTED = "exported"
    RETAINED = "retained"
    NOT_FOUND = "not_found"
    NOTHING_TO_DO = "nothing_to_do"
    UNLINKED = "unlinked"
    KEPT = "kept"
    # Rectification (art. 16): the corrected values were written and read back.
    RECTIFIED = "rectified"
    # Restriction (art. 18): the record carries the system's "restricted" mark, and
    # the mark was taken off again when the restriction was lifted.
    RESTRICTED = "restricted"
    LIFTED = "lifted"


@dataclass(frozen=True, slots=True)
class Address:
    """A postal address as a rectification carries it: street, postcode, city, country."""

    street: str
    postcode: str
    city: str
    country: str = "FI"

    def line(self) -> str:
        """One line, as a CRM's free-text address field holds it."""
        return f"{self.street}, {self.postcode} {self.city}"


@dataclass(frozen=True, slots=True)
class Corrections:
    """The corrected values of a rectification request (GDPR art. 16).

    Personal data like the identifiers: the hub keeps them with the request until it
    settles, then drops them; Dagster never sees them (rule 7). A field left None is
    not corrected. ``email`` and ``phone`` are normalised (as the identifiers are).
    """

    email: str | None = None
    phone: str | None = None
    name: str | None = None
    address: Address | None = None

    def fields(self) -> tuple[str, ...]:
        """The names of the fields this request corrects (safe for evidence and logs)."""
        return tuple(f for f in ("email", "phone", "name", "address")
                     if getattr(self, f) is not None)

    def split_name(self) -> tuple[str, str]:
        """(first name, last name) for systems that keep them apart: the last word is
        the last name, as the seeded data and Finnish custom have it."""
        words = (self.name or "").split()
        if len(words) < 2:
            return (" ".join(words), "")
        return (" ".join(words[:-1]), words[-1])


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """The action taken on one record, with what the vendor answered."""

    ref: RecordRef
    action: Action
    detail: str = ""
    status_code: int | None = None
    vendor_request_id: str | None = None
    legal_basis: str | None = None
    retained_until: date | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """A system's result for one request: the per-record actions and the proof.

    ``verified`` is True once the connector read the vendor back and saw the
    intended state (gone, unsubscribed). ``evidence`` is free-form JSON-safe
    detail (counts, job ids, status codes) with no personal data in it.
    """

    system: str
    records: tuple[RecordOutcome, ...] = ()
    verified: bool = False
    evidence: dict[str, Any] = field(default_factory=dict)
    at: datetime | None = None

    @property
    def not_found(self) -> bool:
        return not self.records or all(r.action == Action.NOT_FOUND for r in self.records)

    @property
    def retained(self) -> tuple[RecordOutcome, ...]:
        return tuple(r for r in self.records if r.action == Action.RETAINED)


@dataclass(frozen=True, slots=True)
class ExportSection:
    """One labelled part of an access export, vendor field names kept as they are.

    ``label`` is the English title (and the CSV's section column); ``titles`` the same
    in the other languages a subject may read (``fi``, ``sv``), worded by the connector,
    which knows what the part is. The bundle's page shows ``title(language)``.
    """

    label: str
    source: str
    items: tuple[dict[str, Any], ...]
    titles: Mapping[str, str] = field(default_factory=dict, hash=False)

    def title(self, language: str) -> str:
        return self.titles.get(language) or self.label


@dataclass(frozen=True, slots=True)
class Export:
    """Everything one system holds on a subject, gathered live."""

    system: str
    sections: tuple[ExportSection, ...]
    evidence: dict[str, Any] = field(default_factory=dict)
    unsearched: tuple[RecordOutcome, ...] = ()
    """What the system could not search (a file it cannot read), each ``Action.KEPT``
    for a person to look at: the export is not complete without them, so the task
    waits for an operator instead of ending done or not found."""


@dataclass(frozen=True, slots=True)
class SyncPage:
    """What a connector's sync yields: records seen and records known to be gone.

    ``cursor`` is the value to resume from next time; the hub stores it only
    after the whole page has been indexed, so a crash re-reads, never skips.
    """

    records: tuple[SourceRecord, ...] = ()
    gone: tuple[str, ...] = ()
    cursor: str | None = None
