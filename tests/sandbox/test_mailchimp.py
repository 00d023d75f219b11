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
