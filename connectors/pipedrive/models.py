"""What the Pipedrive connector reads from each answer, and nothing more.

Every body goes through one of these models (``HttpClient.json(parse=...)``), so an
answer without what the connector relies on is a ``BadResponse`` (a protocol error,
retried for reads), never "not found" or "nothing linked". Fields the connector does
not read are allowed through untouched (exports keep vendor field names).

Where Pipedrive legitimately answers "nothing" (reference §A.3, §A.6):

- v2 lists answer ``data: []``; search answers ``data: {"items": []}``;
- v1 lists answer ``data: null`` when empty (the sandbox does the same);

so those stay empty results. A missing ``data``, ``success`` other than true, or a
scalar where an object or list belongs is never read as "nothing".
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Cursor(_Model):
    """v2 ``additional_data``: the next page's cursor, null/absent on the last page."""

    next_cursor: str | None = None


class Pagination(_Model):
    more_items_in_collection: bool = False
    next_start: int | None = None


class V1Additional(_Model):
    pagination: Pagination | None = None


class ContactValue(_Model):
    """An item of a v2 person's ``emails``/``phones``: only ``value`` is required."""

    value: str


class Person(_Model):
    """A v2 PersonItem. ``emails``/``phones`` are required: erasure's read-back and the
    sync's identifiers rely on them, and an absent list must not read as "blanked".
    The Contact Sync fields and ``custom_fields`` are personal data too: anonymising
    blanks those the person holds (absent means the account has no such field)."""

    id: int
    name: str | None = None
    emails: list[ContactValue]
    phones: list[ContactValue]
    is_deleted: bool = False
    org_id: int | None = None
    update_time: str | None = None
    marketing_status: str | None = None
    postal_address: dict[str, Any] | str | None = None
    birthday: str | None = None
    job_title: str | None = None
    notes: str | None = None
    im: list[ContactValue] | None = None
    custom_fields: dict[str, Any] | None = None
    label_ids: list[int] | None = None


class Item(_Model):
    """Any other object the connector only needs to address (deal, activity, note, lead,
    file, organization): its id, the rest kept as the vendor sent it."""

    id: int | str


class Deal(Item):
    person_id: int | None = None
    status: str | None = None
    is_deleted: bool | None = None


class Participant(_Model):
    """An activity's participant: a person, the main one marked ``primary``."""

    person_id: int | None = None
    primary: bool = False


class Attendee(_Model):
    """An activity's attendee, by e-mail; ``person_id`` when Pipedrive knows them."""

    email: str | None = None
    person_id: int | None = None


class Activity(Item):
    type: str | None = None
    person_id: int | None = None
    participants: list[Participant] | None = None
    attendees: list[Attendee] | None = None


class MailMessage(_Model):
    """A ``/v1/persons/{id}/mailMessages`` item: the message is wrapped in ``data``."""

    data: Item


class SearchPerson(_Model):
    """A person as search shows it: e-mails and phones as plain strings (§A.7)."""

    id: int
    name: str | None = None
    emails: list[str]
    phones: list[str]


class SearchResult(_Model):
    item: SearchPerson


class SearchData(_Model):
    items: list[SearchResult]


class _Envelope(_Model):
    success: Literal[True]


class PersonEnvelope(_Envelope):
    data: Person


class PersonPage(_Envelope):
    data: list[Person]
    additional_data: Cursor | None = None


class SearchPage(_Envelope):
    data: SearchData
    additional_data: Cursor | None = None


class ItemEnvelope(_Envelope):
    data: Item


class DealEnvelope(_Envelope):
    data: Deal


class DealPage(_Envelope):
    data: list[Deal]
    additional_data: Cursor | None = None


class FieldOption(_Model):
    """An option of a set/enum field (a person label is one of ``label_ids``)."""

    id: int
    label: str


class PersonField(_Model):
    """A ``/api/v2/personFields`` item: the key persons use, and its name."""

    field_code: str
    field_name: str | None = None
    is_custom_field: bool | None = None
    options: list[FieldOption] | None = None


class PersonFieldPage(_Envelope):
    data: list[PersonField]
    additional_data: Cursor | None = None


class ActivityEnvelope(_Envelope):
    data: Activity


class ActivityPage(_Envelope):
    data: list[Activity]
    additional_data: Cursor | None = None


class V1Page(_Envelope):
    """A v1 start/limit list of plain items (notes, leads, files)."""

    data: list[Item] | None
    additional_data: V1Additional | None = None


class MailPage(_Envelope):
    data: list[MailMessage] | None
    additional_data: V1Additional | None = None


class Deleted(_Envelope):
    """A DELETE's answer: ``data`` is ``{"id": …}`` (v2, leads, files) or ``true`` (v1
    notes). A 200 without it is not a confirmation."""

    data: Item | Literal[True]


def dump(model: BaseModel) -> dict[str, Any]:
    """The object as the vendor sent it (extras included), for exports."""
    return model.model_dump(mode="json", exclude_unset=True)
