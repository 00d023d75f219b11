"""The Pipedrive emulator over HTTP (reference §A.13)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from sandbox import Sandbox
from sandbox.pipedrive.state import SETTINGS_ENV

AINO = "aino.virtanen@example.fi"


def all_persons(pd: httpx.Client, **params: object) -> list[dict]:
    out, cursor, pages = [], None, 0
    while True:
        q = {**params, **({"cursor": cursor} if cursor else {})}
        body = pd.get("/api/v2/persons", params=q).json()
        assert body["success"] is True
        out += body["data"]
        pages += 1
        cursor = body["additional_data"]["next_cursor"]
        if cursor is None:
            return out
        assert pages < 1000


def test_auth_header_query_and_gateway_401(sb: Sandbox, pd: httpx.Client) -> None:
    base, token = sb.urls["pipedrive"], sb.env["PIPEDRIVE_API_TOKEN"]
    assert httpx.get(f"{base}/api/v2/persons/1", params={"api_token": token}).status_code == 200
    # An API token is not an OAuth access token: sent as a Bearer, Pipedrive refuses it.
    for r in (httpx.get(f"{base}/api/v2/persons/1",
                        headers={"Authorization": f"Bearer {token}"}),
              httpx.get(f"{base}/api/v2/persons/1"),
              httpx.get(f"{base}/api/v2/persons/1", headers={"x-api-token": "wrong"}),
              pd.get("/api/v2/nonsense"), pd.put("/api/v2/persons")):
        assert r.status_code == 401
        assert r.json() == {"success": False, "error": "unauthorized access",
                            "errorCode": 401,
                            "error_info": "Please check developers.pipedrive.com"}


def test_cursor_paging_to_the_end(pd: httpx.Client) -> None:
    first = pd.get("/api/v2/persons").json()
    assert len(first["data"]) == 100 or first["additional_data"]["next_cursor"] is None
    people = all_persons(pd, limit=7)
    ids = [p["id"] for p in people]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    assert people == all_persons(pd, limit=500)
    assert len(pd.get("/api/v2/persons", params={"limit": 5000}).json()["data"]) <= 500
    desc = all_persons(pd, limit=13, sort_by="update_time", sort_direction="desc")
    times = [p["update_time"] for p in desc]
    assert times == sorted(times, reverse=True) and len(desc) == len(people)
    assert pd.get("/api/v2/persons", params={"cursor": "!!"}).status_code == 400
    time_cursor = pd.get("/api/v2/persons", params={"sort_by": "update_time", "limit": 1}
                         ).json()["additional_data"]["next_cursor"]
    assert pd.get("/api/v2/persons", params={"cursor": time_cursor}).status_code == 400
    assert pd.get("/api/v2/deals", params={"cursor": time_cursor}).status_code == 400
    assert pd.get("/api/v2/persons", params={"sort_by": "name"}).status_code == 400
    aino = people[0]
    assert aino["emails"][0]["value"] == "Aino.Virtanen@Example.fi"
    assert aino["phones"][0]["value"] == "040 123 4567"
    assert aino["add_time"].endswith("Z") and "T" in aino["add_time"]
    assert "marketing_status" not in aino
    some = pd.get("/api/v2/persons", params={"ids": "1,2,999999"}).json()["data"]
    assert [p["id"] for p in some] == [1, 2]


def test_updated_since_and_until(pd: httpx.Client) -> None:
    everyone = all_persons(pd, limit=500)
    pivot = sorted(p["update_time"] for p in everyone)[len(everyone) // 2]
    newer = all_persons(pd, updated_since=pivot, sort_by="update_time", limit=9)
    older = all_persons(pd, updated_until=pivot, limit=9)
    assert all(p["update_time"] >= pivot for p in newer)
    assert all(p["update_time"] < pivot for p in older)
    assert len(newer) + len(older) == len(everyone)
    pd.patch("/api/v2/persons/2", json={"name": "Mikko Häkkinen-Testi"})
    changed = all_persons(pd, updated_since="2026-01-01T00:00:00Z")
    assert 2 in [p["id"] for p in changed]
    assert pd.get("/api/v2/persons", params={"updated_since": "yesterday"}).status_code == 400


def test_get_404_and_envelope(pd: httpx.Client) -> None:
    r = pd.get("/api/v2/persons/999999")
    assert r.status_code == 404
    body = r.json()
    assert body["success"] is False and body["error"] == "Person not found"
    assert "error_info" in body


def test_search_rules(pd: httpx.Client) -> None:
    def search(**q: object) -> httpx.Response:
        return pd.get("/api/v2/persons/search", params=q)

    assert search(term="a").status_code == 400
    r = search(term=AINO.upper(), fields="email", exact_match="true")
    items = r.json()["data"]["items"]
    assert [i["item"]["id"] for i in items] == [1]
    assert items[0]["result_score"] > 0 and items[0]["item"]["type"] == "person"
    assert items[0]["item"]["emails"] == ["Aino.Virtanen@Example.fi"]
    assert search(term="040 123 4567", fields="phone", exact_match="true").json()[
        "data"]["items"][0]["item"]["id"] == 1
    partial = search(term="virtanen", fields="email").json()["data"]["items"]
    assert 1 in [i["item"]["id"] for i in partial]
    assert search(term="x", fields="email", exact_match="true").status_code == 200
    assert search(term="aino", fields="bogus").status_code == 400


def test_create_patch_strict_validation(pd: httpx.Client, inspect_pd: httpx.Client) -> None:
    assert pd.post("/api/v2/persons", json={}).json()["error"] == "Name must be given."
    r = pd.post("/api/v2/persons", json={"name": "Uusi Henkilö",
                                         "emails": [{"value": "uusi@example.com"}]})
    assert r.status_code == 200
    new = r.json()["data"]
    assert new["emails"] == [{"value": "uusi@example.com", "primary": True, "label": "work"}]
    pid = new["id"]
    for bad in ({"org_id": "1"}, {"visible_to": "3"}, {"emails": [{"value": "a@example.com",
                                                                   "primary": 1}]},
                {"label_ids": ["1"]}, {"unknown": 1}):
        assert pd.patch(f"/api/v2/persons/{pid}", json=bad).status_code == 400, bad
    before = new["update_time"]
    patched = pd.patch(f"/api/v2/persons/{pid}", json={"phones": [{"value": "+358401111111"}]})
    assert patched.json()["data"]["update_time"] >= before
    found = inspect_pd.get("/find", params={"phone": "+358401111111"}).json()["records"]
    assert found == [{"kind": "person", "id": pid, "state": "active"}]


def test_marketing_status_rules(pd: httpx.Client) -> None:
    r = pd.get("/api/v2/persons/1", params={"include_fields": "marketing_status"})
    assert r.json()["data"]["marketing_status"] == "subscribed"
    pd.patch("/api/v2/persons/1", json={"marketing_status": "unsubscribed"})
    pd.patch("/api/v2/persons/1", json={"marketing_status": "subscribed"})  # 2nd change ignored
    r = pd.get("/api/v2/persons/1", params={"include_fields": "marketing_status"})
    assert r.json()["data"]["marketing_status"] == "unsubscribed"
    created = pd.post("/api/v2/persons", json={"name": "Ei Sähköpostia",
                                               "marketing_status": "subscribed"}).json()
    assert created["data"]["marketing_status"] == "no_consent"
    flow = pd.get("/v1/persons/1/flow").json()["data"]
    assert any(f["object"] == "marketing_status_change" for f in flow)


def test_soft_delete_no_cascade(pd: httpx.Client, inspect_pd: httpx.Client) -> None:
    deals = pd.get("/api/v2/deals", params={"person_id": 1}).json()["data"]
    notes = pd.get("/v1/notes", params={"person_id": 1}).json()["data"]
    acts = pd.get("/api/v2/activities", params={"person_id": 1}).json()["data"]
    assert deals and notes and acts
    r = pd.delete("/api/v2/persons/1")
    assert r.json() == {"success": True, "data": {"id": 1}, "additional_data": None}
    assert pd.get("/api/v2/persons/1").status_code == 404
    assert pd.delete("/api/v2/persons/1").status_code == 404
    assert 1 not in [p["id"] for p in all_persons(pd, limit=500)]
    rec = inspect_pd.get("/records/person/1").json()
    assert rec["is_deleted"] is True
    assert inspect_pd.get("/find", params={"email": AINO}).json()["records"][0] == {
        "kind": "person", "id": 1, "state": "deleted"}
    assert pd.get("/api/v2/deals", params={"person_id": 1}).json()["data"] == deals
    assert pd.get("/v1/notes", params={"person_id": 1}).json()["data"] == notes
    assert inspect_pd.get("/records/person/999999").status_code == 404


def test_v1_endpoints_and_offset_paging(pd: httpx.Client) -> None:
    r = pd.get("/v1/persons", params={"start": 0, "limit": 3}).json()
    pag = r["additional_data"]["pagination"]
    assert pag["more_items_in_collection"] is True and pag["next_start"] == 3
    p = r["data"][0]
    assert p["active_flag"] is True and p["visible_to"] == "3"
    assert p["add_time"][10] == " " and isinstance(p["owner_id"], dict)
    start, seen = 0, 0
    while True:
        body = pd.get("/v1/notes", params={"start": start, "limit": 10}).json()
        seen += len(body["data"])
        pag = body["additional_data"]["pagination"]
        if not pag["more_items_in_collection"]:
            assert "next_start" not in pag
            break
        start = pag["next_start"]
    assert seen > 0
    mails = pd.get("/v1/persons/1/mailMessages").json()["data"]
    assert mails[0]["object"] == "mailMessage"
    assert pd.get("/v1/persons/1/files").json()["data"]
    assert pd.get("/v1/leads", params={"person_id": 1}).json()["data"]
    for pid in range(1, 8):
        pd.patch(f"/api/v2/persons/{pid}", json={"job_title": "Testaaja"})
    recents = pd.get("/v1/recents", params={"since_timestamp": "2000-01-01 00:00:00",
                                            "items": "person", "limit": 5}).json()
    assert recents["data"][0]["item"] == "person"
    assert recents["additional_data"]["pagination"]["more_items_in_collection"] is True
    assert pd.get("/v1/recents").status_code == 400


def test_merge_repoints_related(pd: httpx.Client) -> None:
    deals_of_2 = pd.get("/api/v2/deals", params={"person_id": 2}).json()["data"]
    r = pd.put("/v1/persons/2/merge", json={"merge_with_id": 3})
    assert r.status_code == 200 and r.json()["data"]["id"] == 3
    assert pd.get("/api/v2/persons/2").status_code == 404
    moved = pd.get("/api/v2/deals", params={"person_id": 3}).json()["data"]
    assert {d["id"] for d in deals_of_2} <= {d["id"] for d in moved}
    emails = [e["value"] for e in pd.get("/api/v2/persons/3").json()["data"]["emails"]]
    assert "mikko.hakkinen@example.fi" in emails


def test_rate_limit_headers_burst_and_budget(sb: Sandbox, pd: httpx.Client,
                                             inspect_pd: httpx.Client) -> None:
    r = pd.get("/api/v2/persons/1")
    for h in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
              "x-daily-requests-left"):
        assert h in r.headers
    assert pd.get("/api/v2/persons/999999").headers["x-ratelimit-limit"]
    inspect_pd.put("/settings", json={"burst_limit": 3, "burst_window_s": 60})
    codes = [pd.get("/api/v2/persons/1") for _ in range(5)]
    burst = [r for r in codes if r.status_code == 429]
    assert burst and burst[0].headers["x-ratelimit-remaining"] == "0"
    assert burst[0].headers["retry-after"] == burst[0].headers["x-ratelimit-reset"]
    assert burst[0].json()["success"] is False
    inspect_pd.post("/reset")
    inspect_pd.put("/settings", json={"daily_budget": 25})
    r1 = pd.get("/api/v2/persons")  # costs 10 of the 25
    assert int(r1.headers["x-daily-requests-left"]) == 10_000  # POST/PUT left today
    w = pd.patch("/api/v2/persons/2", json={"name": "Mikko Häkkinen"})  # costs 5
    assert int(w.headers["x-daily-requests-left"]) == 9_999
    assert pd.get("/api/v2/persons").status_code == 200  # 10 + 5 + 10: all spent
    r3 = pd.get("/api/v2/persons/1")
    assert r3.status_code == 429
    assert int(r3.headers["x-ratelimit-remaining"]) > 0
    inspect_pd.put("/settings", json={"cloudflare_after": 1})
    pd.get("/api/v2/persons")
    blocked = pd.get("/api/v2/persons")
    assert blocked.status_code == 403 and "Cloudflare" in blocked.text
    assert inspect_pd.put("/settings", json={"nope": 1}).status_code == 400


def test_maintenance_503(pd: httpx.Client, inspect_pd: httpx.Client) -> None:
    inspect_pd.put("/settings", json={"maintenance": True})
    r = pd.get("/api/v2/persons/1")
    assert r.status_code == 503 and r.json()["success"] is False
    inspect_pd.put("/settings", json={"maintenance": False})
    assert pd.get("/api/v2/persons/1").status_code == 200


def test_inspection_find_is_generous_and_search_lag(pd: httpx.Client,
                                                    inspect_pd: httpx.Client) -> None:
    found = inspect_pd.get("/find", params={"phone": "+358401234567"}).json()["records"]
    kinds = {(r["kind"], r["id"]) for r in found}
    assert ("person", 1) in kinds and any(k == "note" for k, _ in kinds)
    inspect_pd.put("/settings", json={"search_lag_s": 30})
    pd.post("/api/v2/persons", json={"name": "Viive Testi",
                                     "emails": [{"value": "viive@example.com"}]})
    hits = pd.get("/api/v2/persons/search", params={"term": "viive@example.com",
                                                    "exact_match": "true"}).json()
    assert hits["data"]["items"] == []


def test_archived_deals_listed_apart(pd: httpx.Client) -> None:
    pid = pd.get("/api/v2/persons/search", params={"term": AINO, "fields": "email",
                                                   "exact_match": "true"}
                 ).json()["data"]["items"][0]["item"]["id"]
    deals = pd.get("/api/v2/deals", params={"person_id": pid}).json()["data"]
    assert deals and pd.get("/api/v2/deals/archived",
                            params={"person_id": pid}).json()["data"] == []
    did = deals[0]["id"]
    assert pd.patch(f"/api/v2/deals/{did}", json={"is_archived": True}).status_code == 200
    listed = [d["id"] for d in pd.get("/api/v2/deals", params={"person_id": pid}).json()["data"]]
    archived = pd.get("/api/v2/deals/archived", params={"person_id": pid}).json()["data"]
    assert did not in listed and [d["id"] for d in archived] == [did]
    assert pd.get(f"/api/v2/deals/{did}").json()["data"]["is_archived"] is True
    assert pd.patch(f"/api/v2/deals/{did}", json={"is_archived": False}).status_code == 200


def test_real_limits_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the suite's relaxed settings the emulator has Pipedrive's own limits:
    20 per 2 s with an API token (Essential/Lite), search 10 per 2 s, and a burst over
    the window shut for a 10-second penalty that Retry-After announces."""
    monkeypatch.delenv(SETTINGS_ENV, raising=False)
    with Sandbox(people=10, seed=42, vendors=("pipedrive",)) as box, \
            httpx.Client(base_url=box.urls["pipedrive"], timeout=10,
                         headers={"x-api-token": box.env["PIPEDRIVE_API_TOKEN"]}) as pd:
        first = pd.get("/api/v2/persons/1")
        assert first.headers["x-ratelimit-limit"] == "20"
        assert first.headers["x-daily-requests-left"] == "10000"
        searches = [pd.get("/api/v2/persons/search", params={"term": AINO,
                                                              "exact_match": "true"})
                    for _ in range(11)]
        assert [r.status_code for r in searches] == [200] * 10 + [429]
        assert searches[0].headers["x-ratelimit-limit"] == "10"
        assert searches[-1].headers["retry-after"] == "10"
        answers = [pd.get("/api/v2/persons/1") for _ in range(20)]
        assert [r.status_code for r in answers] == [200] * 19 + [429]
        shut = answers[-1]
        assert shut.headers["x-ratelimit-remaining"] == "0"
        assert shut.headers["x-ratelimit-reset"] == shut.headers["retry-after"] == "10"


def test_bearer_never_authenticates_an_api_token(sb: Sandbox) -> None:
    r = httpx.get(f"{sb.urls['pipedrive']}/v1/leads",
                  headers={"Authorization": f"Bearer {sb.env['PIPEDRIVE_API_TOKEN']}"})
    assert r.status_code == 401 and r.json()["error"] == "unauthorized access"


def test_archived_leads_only_from_the_archived_list(pd: httpx.Client) -> None:
    listed = pd.get("/v1/leads", params={"person_id": 1}).json()["data"]
    archived = pd.get("/v1/leads/archived", params={"person_id": 1}).json()["data"]
    assert listed and archived
    assert all(x["is_archived"] is False for x in listed)
    assert all(x["is_archived"] is True for x in archived)
    everything = pd.get("/v1/leads", params={"person_id": 1, "archived_status": "all"}
                        ).json()["data"]
    assert {x["id"] for x in everything} == {x["id"] for x in listed + archived}
    lid = listed[0]["id"]
    assert pd.patch(f"/v1/leads/{lid}", json={"is_archived": 1}).status_code == 400
    assert pd.patch(f"/v1/leads/{lid}", json={"is_archived": True}).status_code == 200
    assert lid not in [x["id"] for x in pd.get("/v1/leads").json()["data"]]
    assert lid in [x["id"] for x in pd.get("/v1/leads/archived").json()["data"]]
    assert pd.get(f"/v1/leads/{lid}").json()["data"]["is_archived"] is True


def test_person_contact_sync_and_custom_fields(pd: httpx.Client) -> None:
    aino = pd.get("/api/v2/persons/1").json()["data"]
    for key in ("postal_address", "birthday", "job_title", "notes", "im"):
        assert aino[key], key
    assert aino["postal_address"]["value"] and aino["im"][0]["value"]
    keys = list(aino["custom_fields"])
    assert keys and all(len(k) == 40 for k in keys)
    for bad in ({"birthday": "27.11.1967"}, {"custom_fields": {"nope": "x"}},
                {"postal_address": "Katu 1"}, {"job_title": 3},
                {"im": [{"value": "x", "primary": "yes"}]}):
        assert pd.patch("/api/v2/persons/1", json=bad).status_code == 400, bad
    blank = {"postal_address": None, "birthday": None, "job_title": None, "notes": None,
             "im": [], "custom_fields": {keys[0]: None}}
    assert pd.patch("/api/v2/persons/1", json=blank).status_code == 200
    after = pd.get("/api/v2/persons/1").json()["data"]
    assert all(after[k] in (None, []) for k in ("postal_address", "birthday", "job_title",
                                                "notes", "im"))
    assert keys[0] not in after["custom_fields"]
    assert set(after["custom_fields"]) == set(keys[1:])  # only the keys sent change


def test_person_fields_name_the_custom_field_keys(pd: httpx.Client) -> None:
    aino = pd.get("/api/v2/persons/1").json()["data"]
    first = pd.get("/api/v2/personFields", params={"limit": 3}).json()
    assert len(first["data"]) == 3 and first["additional_data"]["next_cursor"]
    fields = pd.get("/api/v2/personFields", params={"limit": 500}).json()["data"]
    custom = {f["field_code"]: f["field_name"] for f in fields if f["is_custom_field"]}
    assert set(aino["custom_fields"]) <= set(custom)
    assert "LinkedIn" in custom.values()
    assert {f["field_code"] for f in fields} >= {"name", "postal_address", "birthday"}


def test_activity_participant_is_not_its_person(pd: httpx.Client) -> None:
    """Aino is only a participant and attendee of a meeting: person_id finds it for its
    main person, never for her; its participants and attendees name her."""
    mine = pd.get("/api/v2/activities", params={"person_id": 1}).json()["data"]
    everything = pd.get("/api/v2/activities", params={"limit": 500}).json()["data"]
    theirs = [a for a in everything
              if any(x["person_id"] == 1 for x in a["participants"]) and a["person_id"] != 1]
    assert theirs and not {a["id"] for a in theirs} & {a["id"] for a in mine}
    meeting = theirs[0]
    assert any(x["person_id"] == 1 for x in meeting["attendees"])
    assert pd.patch(f"/api/v2/activities/{meeting['id']}",
                    json={"participants": [{"person_id": "1"}]}).status_code == 400
    kept = [x for x in meeting["participants"] if x["person_id"] != 1]
    r = pd.patch(f"/api/v2/activities/{meeting['id']}",
                 json={"participants": kept, "attendees": []})
    assert r.status_code == 200
    again = pd.get(f"/api/v2/activities/{meeting['id']}").json()["data"]
    assert again["participants"] == kept and again["attendees"] == []


def test_head_never_writes(pd: httpx.Client) -> None:
    for path in ("/api/v2/deals/1", "/api/v2/organizations/1", "/api/v2/activities/1"):
        head = pd.head(path)
        assert head.status_code == 200 and head.content == b"", path
        got = pd.get(path)
        assert got.status_code == 200 and got.json()["data"]["is_deleted"] is False, path


def test_recents_hold_one_month(pd: httpx.Client) -> None:
    """A since_timestamp older than a month is capped: the seeded 2024-25 history is
    gone, a change made now is there."""
    pd.patch("/api/v2/persons/2", json={"name": "Mikko Häkkinen-Testi"})
    body = pd.get("/v1/recents", params={"since_timestamp": "2000-01-01 00:00:00",
                                         "items": "person"}).json()
    assert [row["id"] for row in body["data"]] == [2]
    capped = datetime.fromisoformat(body["additional_data"]["since_timestamp"])
    assert capped.replace(tzinfo=UTC) > datetime.now(UTC) - timedelta(days=32)
