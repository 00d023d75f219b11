"""The Mailchimp emulator over HTTP (reference §B.9)."""

from __future__ import annotations

import base64
import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

import httpx

from sandbox import Sandbox

AINO = "aino.virtanen@example.fi"
MIKKO = "mikko.hakkinen@example.fi"


def md5(email: str) -> str:
    return hashlib.md5(email.lower().encode()).hexdigest()


def lists(mc: httpx.Client) -> dict[str, str]:
    return {a["name"]: a["id"] for a in mc.get("/lists").json()["lists"]}


def assert_problem(r: httpx.Response, status: int, title: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json; charset=utf-8"
    assert r.headers["x-request-id"]
    assert 'rel="describedBy"' in r.headers["link"]
    body = r.json()
    assert {"type", "title", "status", "detail", "instance"} <= set(body)
    assert body["title"] == title and body["status"] == status
    return body


def test_auth_and_ping(sb: Sandbox, mc: httpx.Client) -> None:
    base, key = sb.env["MAILCHIMP_BASE_URL"], sb.env["MAILCHIMP_API_KEY"]
    assert mc.get("/ping").json() == {"health_status": "Everything's Chimpy!"}
    assert_problem(httpx.get(base + "/ping"), 401, "API Key Missing")
    assert_problem(httpx.get(base + "/ping", auth=("u", "0" * 32 + "-us21")), 401,
                   "API Key Invalid")
    assert_problem(httpx.get(base + "/ping", auth=("u", key.replace("-us21", "-us6"))), 403,
                   "Wrong Datacenter")
    bearer = httpx.get(base + "/ping", headers={"Authorization": f"Bearer {key}"})
    assert bearer.status_code == 200
    token = base64.b64encode(f"anystring:{key}".encode()).decode()
    assert httpx.get(base + "/lists", headers={"Authorization": f"Basic {token}"}).json()[
        "total_items"] == 2


def test_audiences_and_every_status(mc: httpx.Client) -> None:
    ids = lists(mc)
    assert set(ids) == {"Uutiskirje", "Kurssit"}
    seen = set()
    for status in ("subscribed", "unsubscribed", "cleaned", "pending", "transactional",
                   "archived"):
        r = mc.get(f"/lists/{ids['Uutiskirje']}/members", params={"status": status}).json()
        if r["total_items"]:
            seen.add(status)
            assert all(m["status"] == status for m in r["members"])
    assert seen == {"subscribed", "unsubscribed", "cleaned", "pending", "transactional",
                    "archived"}
    for name in ("Uutiskirje", "Kurssit"):
        m = mc.get(f"/lists/{ids[name]}/members/{md5(MIKKO)}").json()
        assert m["status"] == "subscribed"


def test_paging_to_the_end_and_fields(mc: httpx.Client) -> None:
    lid = lists(mc)["Uutiskirje"]
    first = mc.get(f"/lists/{lid}/members").json()
    assert len(first["members"]) == 10
    total = first["total_items"]
    seen, offset = [], 0
    while offset < total:
        page = mc.get(f"/lists/{lid}/members", params={
            "count": 17, "offset": offset, "exclude_fields": "members._links"}).json()
        assert all("_links" not in m for m in page["members"])
        seen += [m["id"] for m in page["members"]]
        offset += 17
    assert len(seen) == len(set(seen)) == total
    assert "_links" in first["members"][0]
    assert_problem(mc.get(f"/lists/{lid}/members", params={"count": 1001}), 400,
                   "Invalid Resource")
    slim = mc.get(f"/lists/{lid}/members", params={
        "fields": "members.email_address,members.status,total_items"}).json()
    assert set(slim) == {"members", "total_items"}
    assert set(slim["members"][0]) == {"email_address", "status"}
    by_changed = mc.get(f"/lists/{lid}/members", params={
        "sort_field": "last_changed", "sort_dir": "DESC", "count": 50}).json()["members"]
    stamps = [m["last_changed"] for m in by_changed]
    assert stamps == sorted(stamps, reverse=True)


def test_member_lookup_and_since_last_changed(mc: httpx.Client) -> None:
    lid = lists(mc)["Uutiskirje"]
    by_hash = mc.get(f"/lists/{lid}/members/{md5(AINO)}").json()
    by_email = mc.get(f"/lists/{lid}/members/{AINO.upper()}").json()
    by_contact = mc.get(f"/lists/{lid}/members/{by_hash['contact_id']}").json()
    assert by_hash["id"] == by_email["id"] == by_contact["id"] == md5(AINO)
    assert by_hash["merge_fields"]["FNAME"] == "Aino"
    assert_problem(mc.get(f"/lists/{lid}/members/{md5('nobody@example.com')}"), 404,
                   "Resource Not Found")
    assert_problem(mc.get("/lists/nope/members"), 404, "Resource Not Found")
    r = mc.patch(f"/lists/{lid}/members/{md5(AINO)}", json={"merge_fields": {"LNAME": "V."}})
    changed = r.json()["last_changed"]
    assert changed > by_hash["last_changed"]
    recent = mc.get(f"/lists/{lid}/members", params={"since_last_changed": changed}).json()
    assert [m["id"] for m in recent["members"]] == [md5(AINO)]


def test_add_upsert_and_member_exists(mc: httpx.Client) -> None:
    lid = lists(mc)["Kurssit"]
    new = {"email_address": "Uusi.Tilaaja@Example.com", "status": "subscribed",
           "merge_fields": {"FNAME": "Uusi", "LNAME": "Tilaaja"}}
    r = mc.post(f"/lists/{lid}/members", json=new)
    assert r.status_code == 200 and r.json()["id"] == md5("uusi.tilaaja@example.com")
    body = assert_problem(mc.post(f"/lists/{lid}/members", json=new), 400, "Member Exists")
    assert "Use PUT" in body["detail"]
    assert_problem(mc.post(f"/lists/{lid}/members",
                           json={"email_address": "not-an-email", "status": "subscribed"}),
                   400, "Invalid Resource")
    h = md5("toinen@example.net")
    assert_problem(mc.put(f"/lists/{lid}/members/{h}",
                          json={"email_address": "toinen@example.net"}), 400,
                   "Invalid Resource")
    r = mc.put(f"/lists/{lid}/members/{h}", json={"email_address": "toinen@example.net",
                                                  "status_if_new": "pending"})
    assert r.json()["status"] == "pending"


def test_unsubscribe_and_compliance_state(mc: httpx.Client) -> None:
    lid = lists(mc)["Uutiskirje"]
    r = mc.patch(f"/lists/{lid}/members/{md5(AINO)}", json={"status": "unsubscribed"})
    assert r.json()["status"] == "unsubscribed"
    body = assert_problem(mc.patch(f"/lists/{lid}/members/{md5(AINO)}",
                                   json={"status": "subscribed"}), 400,
                          "Member In Compliance State")
    assert AINO in body["detail"]
    assert mc.patch(f"/lists/{lid}/members/{md5(AINO)}",
                    json={"status": "pending"}).json()["status"] == "pending"


def test_archive_and_405(mc: httpx.Client, inspect_mc: httpx.Client) -> None:
    lid = lists(mc)["Uutiskirje"]
    r = mc.delete(f"/lists/{lid}/members/{md5(AINO)}")
    assert r.status_code == 204 and r.content == b""
    assert mc.get(f"/lists/{lid}/members/{md5(AINO)}").json()["status"] == "archived"
    body = assert_problem(mc.delete(f"/lists/{lid}/members/{md5(AINO)}"), 405,
                          "Method Not Allowed")
    assert "Can not archive" in body["detail"]
    assert mc.delete(f"/lists/{lid}/members/{md5(AINO)}").headers["allow"] == "GET, PUT"
    pending = mc.get(f"/lists/{lid}/members", params={"status": "pending"}).json()["members"]
    assert mc.delete(f"/lists/{lid}/members/{pending[0]['id']}").status_code == 405
    restored = mc.put(f"/lists/{lid}/members/{md5(AINO)}",
                      json={"email_address": AINO, "status_if_new": "subscribed"})
    assert restored.json()["status"] == "subscribed"
    assert inspect_mc.get(f"/records/member/{lid}:{AINO}").json()["status"] == "subscribed"


def test_permanent_delete_tombstones(mc: httpx.Client, inspect_mc: httpx.Client) -> None:
    lid = lists(mc)["Kurssit"]
    url = f"/lists/{lid}/members/{md5(MIKKO)}"
    r = mc.post(url + "/actions/delete-permanent", content=b"null",
                headers={"content-type": "application/json"})
    assert r.status_code == 204 and r.content == b""
    assert_problem(mc.get(url), 404, "Resource Not Found")
    body = assert_problem(mc.post(f"/lists/{lid}/members", json={
        "email_address": MIKKO, "status": "subscribed"}), 400, "Forgotten Email Not Subscribed")
    assert MIKKO in body["detail"]
    assert_problem(mc.put(url, json={"email_address": MIKKO, "status_if_new": "subscribed"}),
                   400, "Forgotten Email Not Subscribed")
    assert inspect_mc.get("/find", params={"phone": "050 111 2233"}).json()["records"]
    records = inspect_mc.get("/find", params={"email": MIKKO.upper()}).json()["records"]
    assert [rec["id"].split(":")[0] for rec in records] == [lists(mc)["Uutiskirje"]]
    tomb = inspect_mc.get(f"/records/member/{lid}:{md5(MIKKO)}").json()
    assert tomb["status"] == "deleted_permanently" and tomb["email_address"] is None
    assert "Mikko" not in json.dumps(tomb)


def test_tags_notes_activity_events_search(mc: httpx.Client) -> None:
    lid = lists(mc)["Uutiskirje"]
    url = f"/lists/{lid}/members/{md5(AINO)}"
    before = mc.get(url).json()["last_changed"]
    r = mc.post(url + "/tags", json={"tags": [{"name": "vip", "status": "active"}]})
    assert r.status_code == 204 and r.content == b""
    assert "vip" in [t["name"] for t in mc.get(url + "/tags").json()["tags"]]
    assert mc.get(url).json()["last_changed"] > before
    note = mc.post(url + "/notes", json={"note": "Soitettu."}).json()
    notes = mc.get(url + "/notes").json()
    assert note["id"] in [n["id"] for n in notes["notes"]] and notes["total_items"] >= 1
    assert mc.delete(url + f"/notes/{note['id']}").status_code == 204
    acts = mc.get(url + "/activity").json()["activity"]
    assert len(acts) <= 50
    assert mc.post(url + "/events", json={"name": "kurssi_valmis"}).status_code == 204
    assert "kurssi_valmis" in [e["name"] for e in mc.get(url + "/events").json()["events"]]
    found = mc.get("/search-members", params={"query": AINO}).json()
    assert found["exact_matches"]["total_items"] >= 1
    assert found["exact_matches"]["members"][0]["email_address"].lower() == AINO
    assert "full_search" in found
    by_name = mc.get("/search-members", params={"query": "aino virtanen",
                                                "list_id": lid}).json()
    assert by_name["exact_matches"]["total_items"] == 1


def test_batch_subscribe(mc: httpx.Client) -> None:
    lid = lists(mc)["Kurssit"]
    r = mc.post(f"/lists/{lid}", json={"members": [
        {"email_address": "eka@example.com", "status": "subscribed"},
        {"email_address": MIKKO, "status": "subscribed"},
        {"email_address": "bad", "status": "subscribed"}], "update_existing": False}).json()
    assert r["total_created"] == 1 and r["error_count"] == 2


def test_more_than_ten_in_flight_is_429_without_rate_headers(
        sb: Sandbox, mc: httpx.Client, inspect_mc: httpx.Client) -> None:
    inspect_mc.put("/settings", json={"request_delay_ms": 1500})
    base, key = sb.env["MAILCHIMP_BASE_URL"], sb.env["MAILCHIMP_API_KEY"]

    def call(_: int) -> httpx.Response:
        return httpx.get(base + "/ping", auth=("u", key), timeout=10)

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(call, range(20)))
    limited = [r for r in responses if r.status_code == 429]
    assert limited and any(r.status_code == 200 for r in responses)
    body = assert_problem(limited[0], 429, "Too Many Requests")
    assert "10 simultaneous connections" in body["detail"]
    assert not any(h.lower().startswith("x-ratelimit") or h.lower() == "retry-after"
                   for h in limited[0].headers)
    inspect_mc.put("/settings", json={"throttle_mode": "bare403"})
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(call, range(20)))
    bare = [r for r in responses if r.status_code == 403]
    assert bare and bare[0].content == b""


def test_patch_email_moves_the_member(mc: httpx.Client, inspect_mc: httpx.Client) -> None:
    lid = lists(mc)["Uutiskirje"]
    r = mc.patch(f"/lists/{lid}/members/{md5(AINO)}",
                 json={"email_address": "poistettu.1@example.invalid"})
    assert r.status_code == 200 and r.json()["id"] == md5("poistettu.1@example.invalid")
    assert mc.get(f"/lists/{lid}/members/{md5(AINO)}").status_code == 404
    assert inspect_mc.get("/find", params={"email": AINO}).json()["records"] == []


def test_archive_and_delete_permanent_take_only_the_subscriber_hash(
        mc: httpx.Client, inspect_mc: httpx.Client) -> None:
    """Both address a member by the MD5 hash alone (Corrections, checked 2026-12): the
    e-mail or the contact_id in that place names no member, and nothing is deleted."""
    lid = lists(mc)["Uutiskirje"]
    contact = mc.get(f"/lists/{lid}/members/{md5(AINO)}").json()["contact_id"]
    for ident in (AINO, AINO.upper(), contact):
        url = f"/lists/{lid}/members/{ident}"
        assert_problem(mc.post(url + "/actions/delete-permanent", content=b"null"), 404,
                       "Resource Not Found")
        assert_problem(mc.delete(url), 404, "Resource Not Found")
    assert inspect_mc.get(f"/records/member/{lid}:{AINO}").json()["status"] == "subscribed"
    r = mc.post(f"/lists/{lid}/members/{md5(AINO).upper()}/actions/delete-permanent")
    assert r.status_code == 204
    tomb = inspect_mc.get(f"/records/member/{lid}:{md5(AINO)}").json()
    assert tomb["status"] == "deleted_permanently"


def test_head_on_a_member_answers_like_get_without_a_body(mc: httpx.Client) -> None:
    lid = lists(mc)["Uutiskirje"]
    url = f"/lists/{lid}/members/{md5(AINO)}"
    got = mc.get(url)
    head = mc.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["x-request-id"]
    missing = mc.head(f"/lists/{lid}/members/{md5('nobody@example.com')}")
    assert missing.status_code == 404 and missing.content == b""
    assert missing.headers["content-type"] == "application/problem+json; charset=utf-8"
    note = mc.get(url + "/notes").json()["notes"][0]
    assert mc.head(url + f"/notes/{note['id']}").status_code == 200  # a read, not a delete
    assert mc.get(url + f"/notes/{note['id']}").json()["note"] == note["note"]


def test_unknown_list_or_member_is_404_everywhere(mc: httpx.Client) -> None:
    """Nothing is made up for ids that were never seeded: every read and write on an
    unknown audience or member is Mailchimp's 404 problem document."""
    lid = lists(mc)["Uutiskirje"]
    nobody = md5("ei.koskaan@example.com")
    calls = [("GET", "/lists/0000000000"), ("GET", "/lists/0000000000/members"),
             ("GET", "/lists/0000000000/merge-fields"),
             ("POST", "/lists/0000000000/members"),
             ("GET", f"/lists/0000000000/members/{md5(AINO)}")]
    for tail in ("", "/activity", "/activity-feed", "/goals", "/tags", "/notes", "/events"):
        calls.append(("GET", f"/lists/{lid}/members/{nobody}{tail}"))
    calls += [("PATCH", f"/lists/{lid}/members/{nobody}"),
              ("DELETE", f"/lists/{lid}/members/{nobody}"),
              ("POST", f"/lists/{lid}/members/{nobody}/actions/delete-permanent"),
              ("GET", f"/lists/{lid}/members/{nobody}/notes/1")]
    for method, path in calls:
        body = {"email_address": "ei.koskaan@example.com", "status": "subscribed"}
        r = mc.request(method, path, json=body if method in ("POST", "PATCH") else None)
        assert_problem(r, 404, "Resource Not Found")


def test_member_list_filters_never_answer_other_members(mc: httpx.Client) -> None:
    """`unique_email_id` names one member (or none); the list never pads the answer
    with members that do not match it."""
    lid = lists(mc)["Uutiskirje"]
    aino = mc.get(f"/lists/{lid}/members/{md5(AINO)}").json()
    one = mc.get(f"/lists/{lid}/members",
                 params={"unique_email_id": aino["unique_email_id"]}).json()
    assert [m["id"] for m in one["members"]] == [md5(AINO)] and one["total_items"] == 1
    none = mc.get(f"/lists/{lid}/members", params={"unique_email_id": "0000000000"}).json()
    assert none["members"] == [] and none["total_items"] == 0
    assert mc.get(f"/lists/{lid}/members", params={"vip_only": "true"}).json()[
        "total_items"] == 0  # nobody is seeded as a VIP
    mc.patch(f"/lists/{lid}/members/{md5(AINO)}", json={"vip": True})
    vips = mc.get(f"/lists/{lid}/members", params={"vip_only": "true"}).json()
    assert [m["id"] for m in vips["members"]] == [md5(AINO)]


def test_activity_feed_pages_the_whole_history(mc: httpx.Client) -> None:
    """activity-feed, the paged successor of /activity: more than the last 50, with
    count/offset, total_items and activity_filters."""
    lid = lists(mc)["Uutiskirje"]
    url = f"/lists/{lid}/members/{md5(AINO)}"
    assert len(mc.get(url + "/activity").json()["activity"]) == 50
    first = mc.get(url + "/activity-feed").json()
    assert first["email_id"] == md5(AINO) and first["list_id"] == lid
    assert len(first["activity"]) == 10  # Mailchimp's default page
    total = first["total_items"]
    assert total > 50
    feed, offset = [], 0
    while offset < total:
        page = mc.get(url + "/activity-feed", params={"count": 30, "offset": offset}).json()
        assert page["total_items"] == total
        feed += page["activity"]
        offset += 30
    assert len(feed) == total
    stamps = [a["created_at_timestamp"] for a in feed]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    types = {a["activity_type"] for a in feed}
    assert {"generic_signup", "sent", "open", "note", "event"} <= types
    assert all(a["campaign_title"] for a in feed if a["activity_type"] == "sent")
    only = mc.get(url + "/activity-feed", params={"activity_filters": "note,event"}).json()
    assert {a["activity_type"] for a in only["activity"]} == {"note", "event"}
    assert only["total_items"] == len(only["activity"]) == 2
    assert_problem(mc.get(url + "/activity-feed", params={"count": 1001}), 400,
                   "Invalid Resource")
    note = mc.post(url + "/notes", json={"note": "Pyysi tietonsa."}).json()
    newest = mc.get(url + "/activity-feed", params={"count": 1}).json()["activity"][0]
    assert newest["activity_type"] == "note" and newest["note_id"] == note["id"]


def test_merge_fields_name_every_tag_and_page(mc: httpx.Client) -> None:
    ids = lists(mc)
    url = f"/lists/{ids['Kurssit']}/merge-fields"
    first = mc.get(url).json()
    assert first["list_id"] == ids["Kurssit"] and first["total_items"] > 10
    assert len(first["merge_fields"]) == 10
    every = mc.get(url, params={"count": 1000}).json()["merge_fields"]
    assert len(every) == first["total_items"]
    by_tag = {f["tag"]: f for f in every}
    assert by_tag["FNAME"]["name"] == "Etunimi" and by_tag["ADDRESS"]["type"] == "address"
    assert by_tag["MMERGE6"]["name"] == "Yritys"
    assert all({"merge_id", "tag", "name", "type", "required", "default_value", "public",
                "display_order", "options", "help_text", "list_id"} <= set(f) for f in every)
    second = mc.get(url, params={"count": 4, "offset": 4}).json()["merge_fields"]
    assert [f["tag"] for f in second] == [f["tag"] for f in every[4:8]]
    addresses = mc.get(url, params={"type": "address"}).json()
    assert [f["tag"] for f in addresses["merge_fields"]] == ["ADDRESS"]
    member = mc.get(f"/lists/{ids['Kurssit']}/members/{md5(MIKKO)}").json()
    assert set(member["merge_fields"]) == set(by_tag)  # every value has a named field


def test_member_goals_are_pages_visited(mc: httpx.Client) -> None:
    lid = lists(mc)["Uutiskirje"]
    url = f"/lists/{lid}/members/{md5(AINO)}"
    goals = mc.get(url + "/goals").json()
    assert goals["email_id"] == md5(AINO) and goals["list_id"] == lid
    assert goals["total_items"] == len(goals["goals"]) > 0
    visit = goals["goals"][0]
    assert set(visit) == {"goal_id", "event", "last_visited_at", "data"}
    assert visit["event"].startswith("/")
    new = mc.post(f"/lists/{lid}/members", json={"email_address": "uusi@example.com",
                                                "status": "subscribed"}).json()
    none = mc.get(f"/lists/{lid}/members/{new['id']}/goals").json()
    assert none["goals"] == [] and none["total_items"] == 0
    mc.post(url + "/actions/delete-permanent")
    assert_problem(mc.get(url + "/goals"), 404, "Resource Not Found")
