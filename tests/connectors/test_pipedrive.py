"""Pipedrive connector against an injected transport (respx): every documented error path."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from connectors.errors import AuthError, BadResponse, ConfigError, RateLimited
from connectors.http import RetryPolicy
from connectors.pipedrive import PipedriveConnector
from hub.domain import Action, Identifier, IdentifierKind, RecordRef
from hub.policy import DealsMode, EraseMode, SystemPolicy

BASE = "http://pipedrive.test"
TOKEN = "t" * 40


def ok(data, additional=None, status=200, **headers):
    return httpx.Response(status, json={"success": True, "data": data,
                                        "additional_data": additional}, headers=headers)


def fail(status, error, **headers):
    return httpx.Response(status, json={"success": False, "error": error,
                                        "error_info": "Please check developers.pipedrive.com",
                                        "data": None, "additional_data": None},
                          headers=headers)


def person(pid, email="Aino.Virtanen@Example.fi", phone="040 123 4567", **extra):
    return {"id": pid, "name": "Aino Virtanen", "emails": [{"value": email, "primary": True,
                                                            "label": "work"}],
            "phones": [{"value": phone, "primary": True, "label": "work"}],
            "update_time": "2026-01-02T03:04:05Z", "is_deleted": False, "org_id": None,
            "marketing_status": "subscribed", **extra}


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def pd(sleeps):
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        conn = PipedriveConnector(BASE, TOKEN, retry=RetryPolicy(sleep=sleeps.append,
                                                                 jitter=lambda: 0.0))
        conn.router = router  # type: ignore[attr-defined]
        yield conn
        conn.close()


def email(v):
    return Identifier(IdentifierKind.EMAIL, v)


def phone(v):
    return Identifier(IdentifierKind.PHONE, v)


def test_token_sent_as_header_never_in_query(pd):
    route = pd.router.get("/api/v2/persons").mock(return_value=ok([]))
    pd.check()
    request = route.calls.last.request
    assert request.headers["x-api-token"] == TOKEN
    assert "api_token" not in str(request.url)


def test_check_with_bad_token_is_auth_error(pd):
    pd.router.get("/api/v2/persons").mock(return_value=fail(401, "unauthorized access"))
    with pytest.raises(AuthError) as info:
        pd.check()
    assert TOKEN not in str(info.value)


def test_missing_settings_name_the_variable(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.delenv("PIPEDRIVE_BASE_URL", raising=False)
    monkeypatch.setenv("PIPEDRIVE_API_TOKEN", "sekrit-value")
    with pytest.raises(ConfigError) as info:
        PipedriveConnector.from_env()
    assert "PIPEDRIVE_BASE_URL" in str(info.value)
    assert "sekrit" not in str(info.value)


def test_sync_pages_by_cursor_and_reports_the_last_update_time(pd):
    route = pd.router.get("/api/v2/persons").mock(side_effect=[
        ok([person(1, update_time="2026-01-01T00:00:00Z"),
            person(2, email="b@x.fi", update_time="2026-01-03T00:00:00Z")],
           {"next_cursor": "c2"}),
        ok([person(3, email="c@x.fi", update_time="2026-01-05T00:00:00Z")],
           {"next_cursor": None}),
    ])
    pages = list(pd.sync(None))
    assert [r.record_id for p in pages for r in p.records] == ["1", "2", "3"]
    assert [p.cursor for p in pages] == ["2026-01-03T00:00:00Z", "2026-01-05T00:00:00Z"]
    first, second = (c.request.url.params for c in route.calls)
    assert first["limit"] == "500" and first["sort_by"] == "update_time"
    assert "updated_since" not in first and "cursor" not in first
    assert second["cursor"] == "c2"
    rec = pages[0].records[0]
    assert rec.emails == ("Aino.Virtanen@Example.fi",) and rec.phones == ("040 123 4567",)
    assert rec.display_name == "Aino Virtanen" and rec.updated_at.year == 2026


def test_incremental_sync_sends_updated_since(pd):
    route = pd.router.get("/api/v2/persons").mock(return_value=ok([], {"next_cursor": None}))
    pages = list(pd.sync("2026-02-01T00:00:00Z"))
    assert route.calls.last.request.url.params["updated_since"] == "2026-02-01T00:00:00Z"
    assert pages[-1].cursor == "2026-02-01T00:00:00Z"  # nothing new: resume from the same


def test_sync_stops_when_next_cursor_is_missing(pd):
    route = pd.router.get("/api/v2/persons").mock(return_value=ok([person(1)], {}))
    pages = list(pd.sync(None))
    assert len(pages) == 1 and route.call_count == 1


def test_sync_ignores_unexpected_new_fields(pd):
    p = person(1, brand_new_field={"x": 1}, custom_fields={"abc": "zz"})
    pd.router.get("/api/v2/persons").mock(return_value=ok([p], {"next_cursor": None,
                                                                 "surprise": True}))
    (page,) = list(pd.sync(None))
    assert page.records[0].record_id == "1"


def test_sync_reports_deleted_persons_as_gone(pd):
    pd.router.get("/api/v2/persons").mock(return_value=ok([person(1), person(
        2, is_deleted=True)]))
    (page,) = list(pd.sync(None))
    assert [r.record_id for r in page.records] == ["1"] and page.gone == ("2",)


def test_sync_garbage_body_is_bad_response(pd):
    pd.router.get("/api/v2/persons").mock(return_value=httpx.Response(
        200, content=b"<html>maintenance</html>", headers={"content-type": "text/html"}))
    with pytest.raises(BadResponse):
        list(pd.sync(None))


def test_sync_wrong_shape_is_bad_response(pd):
    pd.router.get("/api/v2/persons").mock(return_value=ok({"not": "a list"}))
    with pytest.raises(BadResponse):
        list(pd.sync(None))


def test_daily_budget_429_is_reported_not_retried(pd, sleeps):
    route = pd.router.get("/api/v2/persons").mock(
        return_value=fail(429, "Request over limit", **{"x-ratelimit-remaining": "120",
                                                        "x-ratelimit-reset": "1"}))
    with pytest.raises(RateLimited) as info:
        list(pd.sync(None))
    assert info.value.daily_budget_exhausted
    assert route.call_count == 1 and sleeps == []


def test_burst_429_waits_the_reset_then_succeeds(pd, sleeps):
    pd.router.get("/api/v2/persons").mock(side_effect=[
        fail(429, "Request over limit", **{"x-ratelimit-remaining": "0",
                                           "x-ratelimit-reset": "2"}),
        ok([person(1)], {"next_cursor": None}),
    ])
    (page,) = list(pd.sync(None))
    assert len(page.records) == 1
    assert 2.0 in sleeps


def test_5xx_then_success(pd):
    pd.router.get("/api/v2/persons").mock(side_effect=[
        fail(500, "Internal server error"), fail(503, "Maintenance"),
        ok([person(1)], {"next_cursor": None})])
    assert len(list(pd.sync(None))[0].records) == 1
    assert pd.api_calls == 3


def search_result(*persons):
    return ok({"items": [{"result_score": 1.0, "item": {
        "id": p["id"], "type": "person", "name": p["name"],
        "emails": [e["value"] for e in p["emails"]],
        "phones": [x["value"] for x in p["phones"]]}} for p in persons]},
        {"next_cursor": None})


def test_find_by_email_any_case_and_phone_any_format(pd):
    def search(request):
        term = request.url.params["term"]
        assert request.url.params["exact_match"] == "true"
        if request.url.params["fields"] == "email" and term == "aino.virtanen@example.fi":
            return search_result(person(7))
        if request.url.params["fields"] == "phone" and term in ("040 123 4567", "0401234567"):
            return search_result(person(7), person(8, email="other@x.fi",
                                                   phone="+358401234567"))
        return search_result()

    pd.router.get("/api/v2/persons/search").mock(side_effect=search)
    refs = pd.find([email("Aino.Virtanen@EXAMPLE.fi"), phone("+358401234567")])
    assert sorted(r.record_id for r in refs) == ["7", "8"]
    assert all(r.kind == "person" and r.system == "pipedrive" for r in refs)


def test_find_filters_out_vendor_fuzzy_hits(pd):
    # a vendor that returns a near miss must not make it a match
    pd.router.get("/api/v2/persons/search").mock(
        return_value=search_result(person(9, email="aino.virtanen@example.fi.evil",
                                          phone="040 123 4568")))
    assert pd.find([email("aino.virtanen@example.fi"), phone("0401234567")]) == []


def test_find_nothing_is_empty_not_error(pd):
    pd.router.get("/api/v2/persons/search").mock(return_value=search_result())
    assert pd.find([email("nobody@example.fi")]) == []


REF = RecordRef("pipedrive", "person", "7")


def test_erase_not_found_is_success(pd):
    pd.router.get("/api/v2/persons/7").mock(return_value=fail(404, "Person not found"))
    out = pd.erase([REF], SystemPolicy())
    assert [r.action for r in out.records] == [Action.NOT_FOUND]
    assert out.verified and out.not_found


class FakeAccount:
    """Just enough state to check erase/opt-out effects and read-back."""

    def __init__(self):
        self.person = person(7, org_id=None, job_title="Toimitusjohtaja",
                             birthday="1967-11-27", notes="Soita syksyllä",
                             postal_address={"value": "Katu 1, 00100 Helsinki"},
                             im=[{"value": "aino.0", "primary": True, "label": "skype"}],
                             custom_fields={"a" * 40: "AS-10000", "b" * 40: None})
        self.deals = {50: {"id": 50, "person_id": 7, "title": "Koulutus", "status": "open"}}
        self.notes = {60: {"id": 60, "person_id": 7, "content": "soitti"}}
        self.leads = {"l-1": {"id": "l-1", "person_id": 7, "title": "Lead",
                              "is_archived": False},
                      "l-2": {"id": "l-2", "person_id": 7, "title": "Old lead",
                              "is_archived": True}}
        self.activities = {
            70: {"id": 70, "type": "call", "person_id": 7, "subject": "Soitto Ainolle",
                 "participants": [{"person_id": 7, "primary": True}]},
            71: {"id": 71, "type": "meeting", "person_id": 8, "subject": "Palaveri",
                 "participants": [{"person_id": 8, "primary": True},
                                  {"person_id": 7, "primary": False}],
                 "attendees": [{"email": "aino.virtanen@example.fi", "person_id": None,
                                "name": "Aino"},
                               {"email": "mikko@example.fi", "person_id": 8}]},
            72: {"id": 72, "type": "call", "person_id": 8, "subject": "Mikko",
                 "participants": [{"person_id": 8, "primary": True}]},
        }
        self.files = {80: {"id": 80, "person_id": 7, "name": "sopimus_aino.pdf"}}
        self.mails = {90: {"id": 90, "subject": "Hei Aino"}}

    def handle(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        params = request.url.params
        if path == "/api/v2/persons/7":
            if self.person is None:
                return fail(404, "Person not found")
            if method == "GET":
                return ok(self.person)
            if method == "DELETE":
                self.person = None
                return ok({"id": 7}, **{"x-request-id": "rq-del-7"})
            if method == "PATCH":
                body = json.loads(request.content)
                if "marketing_status" in body:
                    self.person["marketing_status"] = body["marketing_status"]
                else:
                    self.person.update(body)
                return ok(self.person)
        if path == "/api/v2/deals" and method == "GET":
            pid = int(params["person_id"])
            return ok([d for d in self.deals.values() if d["person_id"] == pid],
                      {"next_cursor": None})
        if path == "/api/v2/deals/archived":
            return fail(404, "Deal not found")
        if path.startswith("/api/v2/deals/"):
            did = int(path.rsplit("/", 1)[1])
            if did not in self.deals:
                return fail(404, "Deal not found")
            if method == "GET":
                return ok(self.deals[did])
            if method == "PATCH":
                self.deals[did].update(json.loads(request.content))
                return ok(self.deals[did])
            if method == "DELETE":
                del self.deals[did]
                return ok({"id": did})
        if path == "/api/v2/activities" and method == "GET":
            assert "person_id" not in params  # it would miss participants and attendees
            return ok(list(self.activities.values()), {"next_cursor": None})
        if path.startswith("/api/v2/activities/") and method == "PATCH":
            aid = int(path.rsplit("/", 1)[1])
            self.activities[aid].update(json.loads(request.content))
            return ok(self.activities[aid])
        v1_end = {"pagination": {"more_items_in_collection": False}}
        if path == "/v1/persons/7/files":
            return ok(list(self.files.values()) or None, v1_end)
        if path == "/v1/persons/7/mailMessages":
            return ok([{"object": "mailMessage", "data": m} for m in self.mails.values()]
                      or None, v1_end)
        if path in ("/v1/leads", "/v1/leads/archived"):  # archived leads only from the latter
            archived = path.endswith("/archived")
            return ok([x for x in self.leads.values() if x["is_archived"] == archived
                       and x["person_id"] == int(params["person_id"])], v1_end)
        for prefix, table in (("/v1/notes", self.notes), ("/v1/leads", self.leads)):
            if path == prefix:
                pid = int(params["person_id"])
                return ok([x for x in table.values() if x["person_id"] == pid],
                          {"pagination": {"more_items_in_collection": False}})
            if path.startswith(prefix + "/") and method == "DELETE":
                key = path.rsplit("/", 1)[1]
                key = int(key) if key.isdigit() else key
                if table.pop(key, None) is None:
                    return fail(404, "not found")
                return ok({"id": key})
        return fail(401, "unauthorized access")  # gateway answer for unknown routes


@pytest.fixture
def account(pd):
    acc = FakeAccount()
    pd.router.route().mock(side_effect=acc.handle)
    return acc


def test_erase_keeps_deals_unlinked_deletes_notes_leads_person_and_verifies(pd, account):
    out = pd.erase([REF], SystemPolicy(deals=DealsMode.KEEP))
    by_kind = {(r.ref.kind, r.ref.record_id): r for r in out.records}
    assert by_kind[("deal", "50")].action == Action.UNLINKED
    assert by_kind[("note", "60")].action == Action.DELETED
    assert by_kind[("lead", "l-1")].action == Action.DELETED
    assert by_kind[("lead", "l-2")].action == Action.DELETED  # the archived one too
    assert by_kind[("person", "7")].action == Action.DELETED
    assert by_kind[("person", "7")].vendor_request_id == "rq-del-7"
    assert by_kind[("person", "7")].status_code == 200
    assert out.verified
    assert account.person is None and account.notes == {} and account.leads == {}
    assert account.deals[50]["person_id"] is None  # the deal is kept, unlinked


def test_erase_reports_what_it_leaves_as_kept_without_personal_data(pd, account):
    out = pd.erase([REF], SystemPolicy(deals=DealsMode.KEEP))
    kept = {(r.ref.kind, r.ref.record_id): r.detail for r in out.records
            if r.action == Action.KEPT}
    assert set(kept) == {("activity", "70"), ("file", "80"), ("mailMessage", "90")}
    assert ("activity", "72") not in {(r.ref.kind, r.ref.record_id) for r in out.records}
    assert "activity 70 (call)" in kept[("activity", "70")]
    assert "file 80" in kept[("file", "80")] and "mail message 90" in kept[("mailMessage", "90")]
    for detail in kept.values():
        assert "Pipedrive" in detail  # says where the operator acts
        assert "Aino" not in detail and "sopimus" not in detail and "Soitto" not in detail
    assert out.verified  # what it did is done; what it left is reported, not hidden
    assert account.activities and account.files  # left for the operator, not touched


def test_every_action_is_journalled_before_the_next(pd, account):
    journal = []
    pd.journal = journal.append
    out = pd.erase([REF], SystemPolicy(deals=DealsMode.KEEP))
    acted = [r for r in out.records if r.action not in (Action.KEPT, Action.NOT_FOUND)]
    assert [(r.ref.kind, r.action) for r in journal] == [
        ("deal", Action.UNLINKED), ("note", Action.DELETED), ("lead", Action.DELETED),
        ("lead", Action.DELETED), ("activity", Action.UNLINKED), ("person", Action.DELETED)]
    assert journal == acted


def test_a_failing_journal_stops_before_the_next_action(pd, account):
    def journal(outcome):
        raise RuntimeError("hub database down")

    pd.journal = journal
    with pytest.raises(RuntimeError):
        pd.erase([REF], SystemPolicy(deals=DealsMode.KEEP))
    assert account.deals[50]["person_id"] is None  # the first action happened ...
    assert account.notes and account.person is not None  # ... and nothing after it


def test_erase_deletes_deals_when_policy_says_so(pd, account):
    out = pd.erase([REF], SystemPolicy(deals=DealsMode.DELETE))
    deal = next(r for r in out.records if r.ref.kind == "deal")
    assert deal.action == Action.DELETED and account.deals == {} and out.verified


def test_erase_twice_is_harmless(pd, account):
    pd.erase([REF], SystemPolicy())
    again = pd.erase([REF], SystemPolicy())
    assert [r.action for r in again.records] == [Action.NOT_FOUND] and again.verified


def test_erase_anonymise_blanks_identifiers(pd, account):
    out = pd.erase([REF], SystemPolicy(erase=EraseMode.ANONYMISE))
    person_out = next(r for r in out.records if r.ref.kind == "person")
    assert person_out.action == Action.ANONYMISED
    assert account.person["emails"] == [] and "Aino" not in account.person["name"]
    for key in ("job_title", "birthday", "notes", "postal_address"):
        assert account.person[key] is None, key
    assert account.person["im"] == []
    assert account.person["custom_fields"] == {"a" * 40: None}  # only what it held
    assert "Toimitusjohtaja" not in person_out.detail and "birthday" in person_out.detail
    assert out.verified


def test_anonymise_read_back_names_a_field_still_held(pd, account):
    real = account.handle

    def ignores_job_title(request):
        if request.method == "PATCH" and request.url.path == "/api/v2/persons/7":
            body = json.loads(request.content)
            body.pop("job_title", None)
            account.person.update(body)
            return ok(account.person)
        return real(request)

    pd.router.route().mock(side_effect=ignores_job_title)
    out = pd.erase([REF], SystemPolicy(erase=EraseMode.ANONYMISE))
    person_out = next(r for r in out.records if r.ref.kind == "person")
    assert not out.verified and "job_title" in person_out.detail


def test_erase_takes_a_participant_off_another_persons_activity(pd, account):
    out = pd.erase([REF], SystemPolicy())
    meeting = next(r for r in out.records if (r.ref.kind, r.ref.record_id) == ("activity", "71"))
    assert meeting.action == Action.UNLINKED and out.verified
    assert account.activities[71]["participants"] == [{"person_id": 8, "primary": True}]
    assert account.activities[71]["attendees"] == [{"email": "mikko@example.fi",
                                                    "person_id": 8}]
    assert account.activities[71]["person_id"] == 8  # Mikko's meeting is kept


def test_erase_read_back_fails_while_an_activity_still_names_the_person(pd, account):
    real = account.handle

    def patch_ignored(request):
        if request.method == "PATCH" and request.url.path == "/api/v2/activities/71":
            return ok(account.activities[71])
        return real(request)

    pd.router.route().mock(side_effect=patch_ignored)
    out = pd.erase([REF], SystemPolicy())
    meeting = next(r for r in out.records if r.ref.kind == "activity"
                   and r.ref.record_id == "71")
    assert not out.verified and "still names the person" in meeting.detail


def test_opt_out_patches_marketing_status_and_reads_back(pd, account):
    out = pd.opt_out([REF])
    assert [r.action for r in out.records] == [Action.UNSUBSCRIBED]
    assert account.person["marketing_status"] == "unsubscribed" and out.verified
    again = pd.opt_out([REF])
    assert again.records[0].action == Action.UNSUBSCRIBED
    assert "already" in again.records[0].detail


def test_opt_out_not_found_is_success(pd):
    pd.router.get("/api/v2/persons/7").mock(return_value=fail(404, "Person not found"))
    out = pd.opt_out([REF])
    assert out.not_found and out.records[0].action == Action.NOT_FOUND


def test_export_gathers_sections_with_vendor_field_names(pd):
    pd.router.get("/api/v2/persons/7").mock(return_value=ok(person(7, org_id=3)))
    pd.router.get("/api/v2/organizations/3").mock(return_value=ok({"id": 3, "name": "Oy"}))
    pd.router.get("/api/v2/deals").mock(return_value=ok([{"id": 50, "person_id": 7,
                                                          "title": "Koulutus"}]))
    pd.router.get("/api/v2/deals/archived").mock(return_value=fail(404, "Deal not found"))
    pd.router.get("/api/v2/activities").mock(return_value=ok([
        {"id": 1, "subject": "Soitto", "person_id": 7},
        {"id": 2, "subject": "Palaveri", "person_id": 8,
         "participants": [{"person_id": 8, "primary": True}, {"person_id": 7}]},
        {"id": 3, "subject": "Muiden", "person_id": 8, "attendees": [{"email": "x@y.fi"}]}]))
    v1_empty = ok([], {"pagination": {"more_items_in_collection": False}})
    pd.router.get("/v1/notes").mock(side_effect=[
        ok([{"id": 60, "content": "a"}], {"pagination": {"more_items_in_collection": True,
                                                         "next_start": 100}}),
        ok([{"id": 61, "content": "b"}], {"pagination": {"more_items_in_collection": False}}),
    ])
    pd.router.get("/v1/leads").mock(return_value=v1_empty)
    pd.router.get("/v1/leads/archived").mock(return_value=ok(
        [{"id": "l-2", "title": "Old", "is_archived": True}],
        {"pagination": {"more_items_in_collection": False}}))
    pd.router.get("/v1/persons/7/mailMessages").mock(return_value=v1_empty)
    pd.router.get("/v1/persons/7/files").mock(return_value=v1_empty)
    export = pd.export([REF])
    sections = {s.label: s for s in export.sections}
    assert sections["Pipedrive person"].items[0]["emails"][0]["value"] == \
        "Aino.Virtanen@Example.fi"
    assert sections["Organisation the person is linked to"].items[0]["name"] == "Oy"
    assert [d["title"] for d in sections["Deals"].items] == ["Koulutus"]
    assert [n["id"] for n in sections["Notes"].items] == [60, 61]
    assert [a["subject"] for a in sections["Activities"].items] == ["Soitto", "Palaveri"]
    # another person's meeting: only the subject's own place in it is exported
    assert sections["Activities"].items[1]["participants"] == [{"person_id": 7}]
    assert [x["id"] for x in sections["Leads"].items] == ["l-2"]  # archived leads too


def test_registry_builds_pipedrive_from_env_with_an_injected_client(monkeypatch, tmp_path):
    from connectors.base import Connector
    from connectors.registry import build_connector

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PIPEDRIVE_BASE_URL", BASE)
    monkeypatch.setenv("PIPEDRIVE_API_TOKEN", TOKEN)
    seen = []

    def handler(request):
        seen.append(request)
        return ok([])

    client = httpx.Client(transport=httpx.MockTransport(handler))
    with build_connector("pipedrive", client=client) as conn:
        assert isinstance(conn, Connector)
        conn.check()
    assert str(seen[0].url).startswith(BASE + "/api/v2/persons")
    assert seen[0].headers["x-api-token"] == TOKEN


def test_registry_unknown_system_names_the_known_ones():
    from connectors.registry import build_connector

    with pytest.raises(KeyError, match="pipedrive"):
        build_connector("salesforce")
