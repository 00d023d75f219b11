"""What the Mailchimp connector reads from each answer the SDK hands back.

The SDK returns whatever it parsed (a dict, a list, the text of an HTML page) or a
bare ``requests.Response``; :meth:`MailchimpApi.read` puts every read through one of
these models with :func:`connectors.http.validate`, so an answer without what the
connector relies on is a ``BadResponse`` (retried like a 5xx), never "not a member".

Honest empties (reference §B.3, §B.5): ``{"lists": [], "total_items": 0}``,
``{"members": [], "total_items": 0}``, ``{"merge_fields": [], "total_items": 0}`` and
an empty ``tags``/``notes``/``activity``/``events``/``goals`` array. "Not a member" is
only ever a 404.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Audience(_Model):
    id: str
    name: str | None = None


class AudiencePage(_Model):
    """``GET /lists``: the audiences and the total, for offset paging."""

    lists: list[Audience]
    total_items: int


class Member(_Model):
    """A list member as find, sync and export read it: who it is and its status.

    ``merge_fields`` holds FNAME/LNAME/PHONE (and ADDRESS, which may be an object or
    ``""``); it is optional because an audience can define none."""

    id: str
    email_address: str
    status: str
    contact_id: str | None = None
    full_name: str | None = None
    merge_fields: dict[str, Any] = {}
    sms_phone_number: str | None = None
    last_changed: str | None = None


class FoundMember(Member):
    """A member as ``find`` reads it: with the ``contact_id`` its ref carries, the
    opaque pointer that is not a hash of the e-mail (``id`` is its MD5)."""

    contact_id: str


class MemberKey(_Model):
    """A member read by its contact id with ``fields=id``: the subscriber hash, which
    delete-permanent, tags and notes take as their only address."""

    id: str


class MemberIds(_Model):
    """A member read by its subscriber hash with ``fields=id,contact_id``: whether the
    member an e-mail names is the contact a ref means."""

    id: str
    contact_id: str


class MemberStatus(_Model):
    """A member read back with ``fields=status``: what erase and opt-out check."""

    status: str


class PagedMember(Member):
    """A member as the sync reads it from a page: the same fields, the rest of the
    member's thirty-odd ignored rather than kept (nothing dumps a synced member, and
    keeping them was a third of validating a page)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class MemberPage(_Model):
    """``GET /lists/{id}/members``: a page of members and the total."""

    members: list[PagedMember]
    total_items: int


class Tags(_Model):
    tags: list[dict[str, Any]]
    total_items: int


class Notes(_Model):
    notes: list[dict[str, Any]]
    total_items: int


class ActivityFeedPage(_Model):
    """``GET …/members/{hash}/activity-feed``: a page of the member's whole history
    (the paged successor of ``/activity``, which gives only the last 50)."""

    activity: list[dict[str, Any]]
    total_items: int


class Goals(_Model):
    """``GET …/members/{hash}/goals``: pages of the site the member visited."""

    goals: list[dict[str, Any]]


class MergeField(_Model):
    """One merge field of an audience: the ``tag`` a member's ``merge_fields`` is keyed
    by (``FNAME``, ``MMERGE6``) and the ``name`` a person reads (``Etunimi``)."""

    tag: str
    name: str


class MergeFieldPage(_Model):
    """``GET /lists/{id}/merge-fields``: a page of the audience's merge fields."""

    merge_fields: list[MergeField]
    total_items: int


class Events(_Model):
    events: list[dict[str, Any]]
    total_items: int


class Ping(_Model):
    health_status: str


def dump(model: BaseModel) -> dict[str, Any]:
    """The object as Mailchimp sent it (extras included, no defaults added)."""
    return model.model_dump(mode="json", exclude_unset=True)
