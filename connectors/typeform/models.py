"""What the Typeform connector reads from each answer, and nothing more.

Every body goes through one of these models (``HttpClient.json(parse=...)``): an
answer without what the connector relies on is a ``BadResponse`` (retried for
reads), never "no responses", never "already deleted".

The honest empty (reference §C.3): ``{"total_items": 0, "page_count": 0, "items": []}``.
A list page past the last one may also be ``items: []`` while ``total_items`` counts
the whole result; only a *first* page that is empty while claiming items is a lie
(``FirstFormsPage``, ``FirstResponsesPage``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Me(_Model):
    """``GET /me``: the check reads that the token belongs to an account."""

    account_id: str


class Form(_Model):
    id: str
    title: str | None = None


class FormsPage(_Model):
    """``GET /forms``: a page of forms and how many pages there are."""

    items: list[Form]
    page_count: int
    total_items: int


class FirstFormsPage(FormsPage):
    """The first page of ``GET /forms``: empty only when there are no forms."""

    @model_validator(mode="after")
    def _consistent(self) -> FirstFormsPage:
        _first_page_consistent(len(self.items), self.total_items)
        return self


class FieldRef(_Model):
    id: str | None = None
    type: str | None = None
    ref: str | None = None


class Answer(_Model):
    """One answer: the field it answers and its typed value (``text``, ``email``,
    ``phone_number``, ``choice``...; the value key depends on ``type``)."""

    field: FieldRef
    type: str
    text: str | None = None
    email: str | None = None
    phone_number: str | None = None


class Variable(_Model):
    key: str | None = None
    type: str | None = None
    text: str | None = None


class Response(_Model):
    """One response. ``token`` (or ``response_id``) identifies it within its form;
    ``answers`` may be absent on a response that answered nothing."""

    token: str | None = None
    response_id: str | None = None
    submitted_at: str | None = None
    answers: list[Answer] | None = None
    hidden: dict[str, Any] | None = None
    variables: list[Variable] | None = None

    @model_validator(mode="after")
    def _identified(self) -> Response:
        if not (self.token or self.response_id):
            raise ValueError("a response without token or response_id")
        return self

    @property
    def id(self) -> str:
        return self.token or self.response_id or ""


class ResponsesPage(_Model):
    """``GET /forms/{id}/responses``: the page's items and the total for the query."""

    items: list[Response]
    total_items: int


class FirstResponsesPage(ResponsesPage):
    """The first page of a responses query: empty only when nothing matches."""

    @model_validator(mode="after")
    def _consistent(self) -> FirstResponsesPage:
        _first_page_consistent(len(self.items), self.total_items)
        return self


def _first_page_consistent(items: int, total: int) -> None:
    """A page past the last one may be empty while ``total_items`` counts the whole
    result, but a first page may not: "no items, 3 in total" is not an answer."""
    if items == 0 and total > 0:
        raise ValueError("the first page is empty but total_items is not 0")


class FormField(_Model):
    """A question of a form definition; groups nest theirs in ``properties.fields``."""

    id: str
    ref: str | None = None
    title: str | None = None
    type: str | None = None
    properties: dict[str, Any] | None = None


class Definition(_Model):
    """``GET /forms/{id}``: the title and the questions (a form may have none)."""

    id: str
    title: str | None = None
    fields: list[FormField] = []


def dump(model: BaseModel) -> dict[str, Any]:
    """The object as Typeform sent it (extras included, no defaults added)."""
    return model.model_dump(mode="json", exclude_unset=True)
