"""Pipedrive against a hostile vendor on a real socket: wrong-shaped 200s are protocol
errors (never "not found", never an empty list), and a read-back that still shows the
record makes the outcome unverified, with what it saw on the record."""

from __future__ import annotations

import pytest

from connectors.errors import BadResponse, RequestRejected
from connectors.pipedrive import PipedriveConnector
from hub.domain import Action, Identifier, IdentifierKind, RecordRef
from hub.policy import DealsMode, SystemPolicy
from tests.hostile import Answer, HostileVendor, Seen, TruncatedOnce

TOKEN = "t" * 40
REF = RecordRef("pipedrive", "person", "7")
EMAIL = Identifier(IdentifierKind.EMAIL, "aino.virtanen@example.fi")

WRONG_SHAPES = {
    "empty object": {},
    "success without data": {"success": True},
    "html page": "<html><body>Pipedrive is down for maintenance</body></html>",
    "list for object": [{"success": True, "data": {"id": 7}}],
    "data is a string": {"success": True, "data": "x"},
}


def ok(data, additional=None):
    return Answer(200, {"success": True, "data": data, "additional_data": additional})


def person(**extra):
    return {"id": 7, "name": "Aino Virtanen",
            "emails": [{"value": "Aino.Virtanen@Example.fi", "primary": True}],
            "phones": [{"value": "040 123 4567", "primary": True}],
            "is_deleted": False, "marketing_status": "subscribed", **extra}


def empty_list(req: Seen) -> Answer:
    """Every related list of the person, empty, as Pipedrive answers "nothing"."""
    if req.path.startswith("/api/v2/"):
        return ok([], {"next_cursor": None})
    return ok(None, {"pagination": {"more_items_in_collection": False}})


def connector(vendor: HostileVendor, fast_retry) -> PipedriveConnector:
    return PipedriveConnector(vendor.url, TOKEN, retry=fast_retry)


@pytest.mark.parametrize("body", WRONG_SHAPES.values(), ids=WRONG_SHAPES.keys())
def test_wrong_shaped_search_is_bad_response_after_retries(body, fast_retry):
    with HostileVendor(lambda req: Answer(200, body)) as vendor, \
            connector(vendor, fast_retry) as pd, pytest.raises(BadResponse):
        pd.find([EMAIL])
    assert len(vendor.seen) == fast_retry.max_attempts  # a read: retried like a 5xx


@pytest.mark.parametrize("body", [{"success": True, "data": {}},
                                  {"success": True, "data": {"items": None}},
                                  {"success": True, "data": {"items": [{"item": {"id": 7}}]}},
                                  {"success": False, "data": {"items": []}}],
                         ids=["no items", "items null", "item without emails", "not success"])
def test_search_without_what_find_reads_is_bad_response(body, fast_retry):
    with HostileVendor(lambda req: Answer(200, body)) as vendor, \
            connector(vendor, fast_retry) as pd, pytest.raises(BadResponse):
        pd.find([EMAIL])


def test_search_with_no_items_is_an_honest_empty_result(fast_retry):
    with HostileVendor(lambda req: ok({"items": []}, {"next_cursor": None})) as vendor, \
            connector(vendor, fast_retry) as pd:
        assert pd.find([EMAIL]) == []


@pytest.mark.parametrize("body", WRONG_SHAPES.values(), ids=WRONG_SHAPES.keys())
def test_wrong_shaped_person_is_never_not_found(body, fast_retry):
    with HostileVendor(lambda req: Answer(200, body)) as vendor, \
            connector(vendor, fast_retry) as pd:
        with pytest.raises(BadResponse):
            pd.erase([REF], SystemPolicy())
        with pytest.raises(BadResponse):
            pd.opt_out([REF])
    assert {s.method for s in vendor.seen} == {"GET"}  # nothing acted on


@pytest.mark.parametrize("body", WRONG_SHAPES.values(), ids=WRONG_SHAPES.keys())
def test_wrong_shaped_read_back_is_bad_response(body, fast_retry):
    reads = []

    def handler(req: Seen) -> Answer:
        if req.path == "/api/v2/persons/7" and req.method == "GET":
            reads.append(req)
            return ok(person()) if len(reads) == 1 else Answer(200, body)
        if req.method == "DELETE":
            return ok({"id": 7})
        return empty_list(req)

    journal = []
    with HostileVendor(handler) as vendor, connector(vendor, fast_retry) as pd:
        pd.journal = journal.append
        with pytest.raises(BadResponse):
            pd.erase([REF], SystemPolicy())
    assert [(r.ref.kind, r.action) for r in journal] == [("person", Action.DELETED)]
    assert len(reads) == 1 + fast_retry.max_attempts


@pytest.mark.parametrize("body", WRONG_SHAPES.values(), ids=WRONG_SHAPES.keys())
def test_wrong_shaped_related_list_is_bad_response_not_nothing_linked(body, fast_retry):
    def handler(req: Seen) -> Answer:
        if req.path == "/api/v2/persons/7":
            return ok(person())
        if req.path == "/v1/notes":
            return Answer(200, body)
        return empty_list(req)

    with HostileVendor(handler) as vendor, connector(vendor, fast_retry) as pd, \
            pytest.raises(BadResponse):
        pd.erase([REF], SystemPolicy())
    assert "DELETE" not in {s.method for s in vendor.seen}


def test_delete_answered_without_confirmation_is_not_journalled(fast_retry):
    def handler(req: Seen) -> Answer:
        if req.path == "/api/v2/persons/7" and req.method == "GET":
            return ok(person())
        if req.method == "DELETE":
            return Answer(200, {"success": True})
        return empty_list(req)

    journal = []
    with HostileVendor(handler) as vendor, connector(vendor, fast_retry) as pd:
        pd.journal = journal.append
        with pytest.raises(BadResponse):
            pd.erase([REF], SystemPolicy())
    assert journal == []
    assert sum(1 for s in vendor.seen if s.method == "DELETE") == 1  # a write is not repeated


def test_read_back_still_showing_the_person_is_unverified(fast_retry):
    def handler(req: Seen) -> Answer:
        if req.path == "/api/v2/persons/7" and req.method == "GET":
            return ok(person())  # the lie: still there after the DELETE
        if req.method == "DELETE":
            return ok({"id": 7})
        return empty_list(req)

    journal = []
    with HostileVendor(handler) as vendor, connector(vendor, fast_retry) as pd:
        pd.journal = journal.append
        out = pd.erase([REF], SystemPolicy())
    assert out.verified is False
    (record,) = out.records
    assert record.action == Action.DELETED and "read back: the person is still there" in \
        record.detail
    assert [r.action for r in journal] == [Action.DELETED]  # the action, as confirmed


def test_read_back_still_showing_a_linked_deal_and_note_is_unverified(fast_retry):
    state = {"person_reads": 0}

    def handler(req: Seen) -> Answer:
        if req.path == "/api/v2/persons/7" and req.method == "GET":
            state["person_reads"] += 1
            if state["person_reads"] > 1:
                return Answer(404, {"success": False, "error": "Person not found"})
            return ok(person())
        if req.path == "/api/v2/deals" and req.method == "GET":
            return ok([{"id": 50, "person_id": 7, "status": "open"}], {"next_cursor": None})
        if req.path == "/api/v2/deals/50":
            return ok({"id": 50, "person_id": 7, "status": "open"})  # PATCH "accepted"
        if req.path == "/v1/notes" and req.method == "GET":
            return ok([{"id": 60, "person_id": 7}],
                      {"pagination": {"more_items_in_collection": False}})
        if req.method == "DELETE":
            return ok({"id": 0})
        return empty_list(req)

    with HostileVendor(handler) as vendor, connector(vendor, fast_retry) as pd:
        out = pd.erase([REF], SystemPolicy(deals=DealsMode.KEEP))
    assert out.verified is False
    by_kind = {r.ref.kind: r for r in out.records}
    assert "still linked to the person" in by_kind["deal"].detail
    assert "read back: note still linked" in by_kind["note"].detail
    assert "read back" not in by_kind["person"].detail  # the person itself is gone


def test_opt_out_read_back_still_subscribed_is_unverified(fast_retry):
    def handler(req: Seen) -> Answer:
        return ok(person())  # PATCH accepted, but the person stays subscribed

    journal = []
    with HostileVendor(handler) as vendor, connector(vendor, fast_retry) as pd:
        pd.journal = journal.append
        out = pd.opt_out([REF])
    assert out.verified is False
    (record,) = out.records
    assert record.action == Action.UNSUBSCRIBED
    assert "read back: marketing_status is still subscribed" in record.detail
    assert [r.action for r in journal] == [Action.UNSUBSCRIBED]


@pytest.mark.parametrize("name", ["Aino Virtanen", "Mikko Häkkinen", "Eeva Mäkelä"])
def test_a_400_echoing_the_subjects_name_leaves_no_name_in_the_error(name, fast_retry):
    """Found: a Pipedrive 400 that echoed the subject's name landed in Dagster's storage
    (the error's message and evidence are what the task failure records)."""
    body = {"success": False, "error": f"Person '{name}' could not be found by term",
            "error_info": "Please check developers.pipedrive.com", "data": None}
    with HostileVendor(lambda req: Answer(400, body)) as vendor, \
            connector(vendor, fast_retry) as pd, pytest.raises(RequestRejected) as info:
        pd.find([EMAIL])
    recorded = f"{info.value} {info.value.evidence()}"
    for part in name.split():
        assert part not in recorded
    assert "could not be found by term" in recorded and "HTTP 400" in recorded


def test_a_truncated_read_is_retried_and_then_succeeds(fast_retry):
    """Garbage on a read (a body cut mid-way) follows the one retry rule: read again."""
    search = "/api/v2/persons/search"
    handler = TruncatedOnce(search, lambda req: ok(
        {"items": [{"item": {"id": 7, "name": "Aino Virtanen",
                             "emails": ["aino.virtanen@example.fi"], "phones": []}}]},
        {"next_cursor": None}))
    with HostileVendor(handler) as vendor, connector(vendor, fast_retry) as pd:
        (ref,) = pd.find([EMAIL])
    assert ref.record_id == "7" and handler.cut == 1
    assert [s.path for s in vendor.seen] == [search, search]
