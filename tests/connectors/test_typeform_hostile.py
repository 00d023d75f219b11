"""Typeform against a hostile vendor on a real socket: wrong-shaped 200s are protocol
errors (never "no responses", never "already deleted"), and a read-back that still
shows a deleted response makes the outcome unverified, with what it saw."""

from __future__ import annotations

import pytest

from connectors.errors import BadResponse
from connectors.http import Limiter
from connectors.typeform import TypeformConnector, TypeformSettings
from hub.domain import Action, Identifier, IdentifierKind, RecordRef
from hub.policy import SystemPolicy
from tests.hostile import Answer, HostileVendor, Seen, TruncatedOnce

AINO = "aino.virtanen@example.fi"
FORM = "formA"
RESPONSES = f"/forms/{FORM}/responses"
REF = RecordRef("typeform", "response", f"{FORM}:t1", container=FORM)
FORMS = Answer(200, {"total_items": 1, "page_count": 1, "items": [{"id": FORM, "title": "K"}]})
DEFINITION = Answer(200, {"id": FORM, "title": "K", "fields": [
    {"id": "f_name", "ref": "name", "title": "Nimi", "type": "short_text"}]})

WRONG_SHAPES = {
    "empty object": {},
    "items missing": {"total_items": 1, "page_count": 1},
    "html page": "<html><body>Typeform is down for maintenance</body></html>",
    "list for object": [{"token": "t1"}],
    "items is a string": {"total_items": 1, "page_count": 1, "items": "x"},
    "empty first page claiming items": {"total_items": 3, "page_count": 1, "items": []},
}


def response(token: str = "t1") -> dict:
    return {"token": token, "response_id": token, "submitted_at": "2026-03-01T10:00:00Z",
            "hidden": {}, "answers": [
                {"field": {"id": "f_name", "type": "short_text"}, "type": "text",
                 "text": "Aino Virtanen"},
                {"field": {"id": "f_mail", "type": "email"}, "type": "email", "email": AINO}]}


def page(*items: dict) -> Answer:
    return Answer(200, {"total_items": len(items), "page_count": 1 if items else 0,
                        "items": list(items)})


def connector(vendor: HostileVendor, fast_retry) -> TypeformConnector:
    settings = TypeformSettings(_env_file=None, base_url=vendor.url, token="tfp_x",
                                delete_poll_interval=0, delete_max_polls=3)
    return TypeformConnector(settings, retry=fast_retry, limiter=Limiter(),
                             sleep=lambda _s: None)


def count(vendor: HostileVendor, method: str, path: str) -> int:
    return sum(1 for s in vendor.seen if s.method == method and s.path == path)


@pytest.mark.parametrize("body", WRONG_SHAPES.values(), ids=WRONG_SHAPES.keys())
def test_wrong_shaped_responses_on_find_are_bad_response_not_nobody(body, fast_retry):
    def handler(req: Seen) -> Answer:
        return FORMS if req.path == "/forms" else Answer(200, body)

    with HostileVendor(handler) as vendor, connector(vendor, fast_retry) as tf, \
            pytest.raises(BadResponse):
        tf.find([Identifier(IdentifierKind.EMAIL, AINO)])
    assert count(vendor, "GET", RESPONSES) == fast_retry.max_attempts  # a read: retried


@pytest.mark.parametrize("body", WRONG_SHAPES.values(), ids=WRONG_SHAPES.keys())
def test_wrong_shaped_form_list_is_bad_response_not_no_forms(body, fast_retry):
    with HostileVendor(lambda req: Answer(200, body)) as vendor, \
            connector(vendor, fast_retry) as tf, pytest.raises(BadResponse):
        tf.find([Identifier(IdentifierKind.EMAIL, AINO)])


def test_no_responses_is_an_honest_empty_result(fast_retry):
    def handler(req: Seen) -> Answer:
        return FORMS if req.path == "/forms" else page()

    with HostileVendor(handler) as vendor, connector(vendor, fast_retry) as tf:
        assert tf.find([Identifier(IdentifierKind.EMAIL, AINO)]) == []


@pytest.mark.parametrize("body", WRONG_SHAPES.values(), ids=WRONG_SHAPES.keys())
def test_wrong_shaped_answer_before_erasing_is_never_not_found(body, fast_retry):
    with HostileVendor(lambda req: Answer(200, body)) as vendor, \
            connector(vendor, fast_retry) as tf, pytest.raises(BadResponse):
        tf.erase([REF], SystemPolicy())
    assert count(vendor, "DELETE", RESPONSES) == 0


@pytest.mark.parametrize("body", WRONG_SHAPES.values(), ids=WRONG_SHAPES.keys())
def test_wrong_shaped_read_back_is_bad_response_not_gone(body, fast_retry):
    def handler(req: Seen) -> Answer:
        if req.method == "DELETE":
            return Answer(200, b"")
        return page(response()) if count(vendor, "DELETE", RESPONSES) == 0 else Answer(200, body)

    journal = []
    with HostileVendor(handler) as vendor, connector(vendor, fast_retry) as tf:
        tf.journal = journal.append
        with pytest.raises(BadResponse):
            tf.erase([REF], SystemPolicy())
    assert [(r.ref, r.action) for r in journal] == [(REF, Action.DELETED)]
    assert count(vendor, "DELETE", RESPONSES) == 1


def test_read_back_still_showing_the_response_is_unverified(fast_retry):
    def handler(req: Seen) -> Answer:
        return Answer(200, b"") if req.method == "DELETE" else page(response())

    journal = []
    with HostileVendor(handler) as vendor, connector(vendor, fast_retry) as tf:
        tf.journal = journal.append
        out = tf.erase([REF], SystemPolicy())
    assert out.verified is False
    (record,) = out.records
    assert record.action == Action.DELETED
    assert "read back: still present after 3 polls" in record.detail
    assert [r.action for r in journal] == [Action.DELETED]
    assert count(vendor, "GET", RESPONSES) == 1 + 3  # found once, read back three times


def test_find_fills_facts_from_the_response(fast_retry):
    def handler(req: Seen) -> Answer:
        if req.path == "/forms":
            return FORMS
        return DEFINITION if req.path == f"/forms/{FORM}" else page(response())

    with HostileVendor(handler) as vendor, connector(vendor, fast_retry) as tf:
        (ref,) = tf.find([Identifier(IdentifierKind.EMAIL, AINO)])
    assert ref.facts.emails == (AINO,) and ref.facts.name == "Aino Virtanen"
    assert ref.facts.phones == ()


def test_a_truncated_read_is_retried_and_then_succeeds(fast_retry):
    """Garbage on a read (a body cut mid-way) follows the one retry rule: read again."""
    def answer(req: Seen) -> Answer:
        if req.path == "/forms":
            return FORMS
        return DEFINITION if req.path == f"/forms/{FORM}" else page(response())

    handler = TruncatedOnce(RESPONSES, answer)
    with HostileVendor(handler) as vendor, connector(vendor, fast_retry) as tf:
        (ref,) = tf.find([Identifier(IdentifierKind.EMAIL, AINO)])
    assert ref.record_id == f"{FORM}:t1" and handler.cut == 1
    assert count(vendor, "GET", RESPONSES) == 2
