"""Mailchimp connector and its SDK wrapper, against a scripted local HTTP server.

The official SDK calls ``requests`` at module level, so it cannot take an httpx
transport; instead a tiny server on loopback answers with scripted responses
(real HTTP, no monkeypatching) and records what it was asked.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from mailchimp_marketing.api_client import ApiClientError

from connectors.errors import (
    AuthError,
    BadResponse,
    ConfigError,
    ConnectionFailed,
    RateLimited,
    RequestRejected,
)
from connectors.http import RetryPolicy
from connectors.mailchimp import MailchimpConnector, subscriber_hash
from connectors.mailchimp import connector as connector_module
from connectors.mailchimp.sdk import translate_error, translate_response
from hub.domain import Action, Identifier, IdentifierKind, RecordFacts, RecordRef
from hub.policy import EraseMode, SystemPolicy

KEY = "0123456789abcdef0123456789abcdef-us21"
PROBLEM = "application/problem+json; charset=utf-8"


class Reply:
    def __init__(self, status: int, body: Any = None, *, ctype: str | None = "application/json",
                 headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.ctype, self.headers = status, body, ctype, headers or {}


def problem(status: int, title: str, detail: str, instance: str = "req-123") -> Reply:
    return Reply(status, {"type": "https://mailchimp.com/developer/marketing/docs/errors/",
                          "title": title, "status": status, "detail": detail,
                          "instance": instance}, ctype=PROBLEM)


class Script:
    """Route (method, path prefix) -> list of replies (last one repeats)."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, str, list[Reply] | Callable[[str, dict], Reply]]] = []
        self.seen: list[tuple[str, str, Any]] = []
        self.auth: list[str | None] = []

    def on(self, method: str, path: str, *replies: Reply | Callable[[str, dict], Reply]
           ) -> None:
        self.routes.append((method, path, list(replies)))

    def answer(self, method: str, path: str, body: Any) -> Reply:
        for m, p, replies in self.routes:
            if m == method and path.split("?")[0] == p:
                head = replies[0]
                if len(replies) > 1:
                    replies.pop(0)
                return head(path, body) if callable(head) else head
        return problem(404, "Resource Not Found", "The requested resource could not be found.")


@pytest.fixture
def script() -> Iterator[tuple[Script, str]]:
    sc = Script()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _do(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            path = self.path.removeprefix("/3.0")
            sc.seen.append((self.command, self.path, body))
            sc.auth.append(self.headers.get("authorization"))
            reply = sc.answer(self.command, path, body)
            payload = b"" if reply.body is None else (
                reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode())
            self.send_response(reply.status)
            if reply.ctype:
                self.send_header("content-type", reply.ctype)
            for k, v in reply.headers.items():
                self.send_header(k, v)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _do

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                              daemon=True)
    thread.start()
    yield sc, f"http://127.0.0.1:{server.server_address[1]}/3.0"
    server.shutdown()
    server.server_close()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def mc(script, sleeps) -> MailchimpConnector:
    _, url = script
    return MailchimpConnector(url, KEY, retry=RetryPolicy(sleep=sleeps.append,
                                                          jitter=lambda: 0.0))


LISTS = Reply(200, {"lists": [{"id": "aud1", "name": "Uutiskirje"},
                              {"id": "aud2", "name": "Kurssit"}], "total_items": 2})
AINO = "Aino.Virtanen@Example.fi"
H = subscriber_hash(AINO)
CONTACT = "3f9a1c07be52d4e8a6c0917b2d"  # opaque, as Mailchimp's contact_id


def member(list_id: str, status: str = "subscribed", **extra: Any) -> dict[str, Any]:
    return {"id": H, "email_address": AINO.lower(), "status": status, "list_id": list_id,
            "contact_id": CONTACT,
            "full_name": "Aino Virtanen", "last_changed": "2026-01-02T03:04:05+00:00",
            "merge_fields": {"FNAME": "Aino", "LNAME": "Virtanen", "PHONE": "040 123 4567"},
            **extra}


# ----------------------------------------------------------------- pure translation


def test_problem_json_text_is_parsed():
    exc = ApiClientError(json.dumps({"title": "Member Exists", "status": 400,
                                     "detail": "aino@example.fi is already a list member.",
                                     "instance": "abc-1"}), status_code=400)
    err = translate_error(exc)
    assert isinstance(err, RequestRejected)
    assert err.vendor_request_id == "abc-1" and "Member Exists" in err.detail
    assert "aino@example.fi" not in str(err)


def test_status_none_is_connection_failed():
    err = translate_error(ApiClientError(requests.ConnectionError("refused")))
    assert isinstance(err, ConnectionFailed) and err.retryable


def test_ok_response_is_fine_and_empty_403_is_throttle():
    ok = requests.Response()
    ok.status_code, ok._content = 204, b""
    assert translate_response(ok) is None
    bare = requests.Response()
    bare.status_code, bare._content = 403, b""
    err = translate_response(bare)
    assert isinstance(err, RateLimited) and err.status_code == 403


# ------------------------------------------------------------ SDK over loopback


def test_settings_missing_key_is_named(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MAILCHIMP_BASE_URL", "http://127.0.0.1:1/3.0")
    monkeypatch.delenv("MAILCHIMP_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="MAILCHIMP_API_KEY"):
        MailchimpConnector.from_env()


def test_check_pings_the_configured_host_with_basic_auth(script, mc):
    sc, _ = script
    sc.on("GET", "/ping", Reply(200, {"health_status": "Everything's Chimpy!"}))
    mc.check()
    assert sc.seen[0][0] == "GET" and sc.seen[0][1].startswith("/3.0/ping")
    assert sc.auth[0].startswith("Basic ")
    assert mc.api_calls == 1


def test_401_problem_is_auth_error(script, mc):
    sc, _ = script
    sc.on("GET", "/ping", problem(401, "API Key Invalid", "Your API key may be invalid."))
    with pytest.raises(AuthError) as info:
        mc.check()
    assert info.value.vendor_request_id == "req-123"
    assert KEY not in str(info.value)


def test_empty_bodied_403_is_an_error_not_a_success(script, mc, sleeps):
    sc, _ = script
    sc.on("GET", "/ping", Reply(403, None, ctype=None))
    with pytest.raises(RateLimited):
        mc.check()
    assert len(sleeps) == 5  # retried as a throttle, bounded


def test_429_without_headers_then_success(script, mc, sleeps):
    sc, _ = script
    sc.on("GET", "/ping", problem(429, "TooManyRequests", "10 simultaneous connections"),
          Reply(200, {"health_status": "ok"}))
    mc.check()
    assert mc.api_calls == 2 and len(sleeps) == 1


def test_5xx_then_success(script, mc):
    sc, _ = script
    sc.on("GET", "/lists", problem(500, "Internal Server Error", "oops"),
          problem(503, "ComplianceRelated", "x"), LISTS)
    sc.on("GET", f"/lists/aud1/members/{H}", Reply(200, member("aud1")))
    sc.on("GET", f"/lists/aud2/members/{H}", problem(404, "Resource Not Found", "nope"))
    refs = mc.find([Identifier(IdentifierKind.EMAIL, AINO.lower())])
    assert [(r.container, r.record_id) for r in refs] == [("aud1", CONTACT)]


def test_find_uses_md5_of_lowercased_email_in_every_audience(script, mc):
    sc, _ = script
    sc.on("GET", "/lists", LISTS)
    sc.on("GET", f"/lists/aud1/members/{H}", Reply(200, member("aud1")))
    sc.on("GET", f"/lists/aud2/members/{H}", Reply(200, member("aud2", "archived")))
    refs = mc.find([Identifier(IdentifierKind.EMAIL, "AINO.VIRTANEN@example.fi")])
    assert {r.container for r in refs} == {"aud1", "aud2"}
    assert all(r.kind == "member" and r.record_id == CONTACT for r in refs)


def test_a_member_without_contact_id_is_bad_response_not_an_md5_pointer(script, mc):
    sc, _ = script
    sc.on("GET", "/lists", LISTS)
    without = {k: v for k, v in member("aud1").items() if k != "contact_id"}
    sc.on("GET", f"/lists/aud1/members/{H}", Reply(200, without))
    with pytest.raises(BadResponse, match="contact_id"):
        mc.find([Identifier(IdentifierKind.EMAIL, AINO)])


def test_find_not_a_member_anywhere_is_empty(script, mc):
    sc, _ = script
    sc.on("GET", "/lists", LISTS)
    assert mc.find([Identifier(IdentifierKind.EMAIL, "nobody@example.fi")]) == []


def test_garbage_body_is_bad_response(script, mc):
    sc, _ = script
    sc.on("GET", "/lists", Reply(200, b'{"lists":[{"id":"', ctype="application/json"))
    with pytest.raises(BadResponse):
        mc.find([Identifier(IdentifierKind.EMAIL, "a@example.fi")])


def test_sync_pages_every_audience_with_offset_and_cursor(script, mc):
    sc, _ = script
    sc.on("GET", "/lists", LISTS)
    page1 = Reply(200, {"members": [member("aud1", unexpected_new_field=1)],
                        "total_items": 2, "list_id": "aud1"})
    page2 = Reply(200, {"members": [member("aud1", id="h2", email_address="b@x.fi",
                                           last_changed="2026-03-01T00:00:00+00:00")],
                        "total_items": 2})
    sc.on("GET", "/lists/aud1/members", page1, page2)
    sc.on("GET", "/lists/aud2/members", Reply(200, {"members": [member(
        "aud2", status="cleaned", last_changed="2026-02-01T00:00:00+00:00")],
        "total_items": 1}))
    pages = list(mc.sync(None))
    ids = [r.record_id for p in pages for r in p.records]
    assert ids == [f"aud1:{H}", "aud1:h2", f"aud2:{H}"]  # cleaned members still indexed
    # only the last page moves the cursor: a crash in between re-reads, never skips
    assert [p.cursor for p in pages] == [None, None, "2026-03-01T00:00:00+00:00"]
    first = pages[0].records[0]
    assert first.phones == ("040 123 4567",) and first.display_name == "Aino Virtanen"
    # aud2's first page is read ahead, beside aud1's second: each audience in order
    member_calls = [path for m, path, _ in sc.seen if "/aud1/members" in path]
    assert "count=1000" in member_calls[0] and "offset=0" in member_calls[0]
    assert "offset=1" in member_calls[1]
    assert "exclude_fields=members._links" in member_calls[0]


def test_incremental_sync_sends_since_last_changed_with_lookback(script, mc):
    sc, _ = script
    sc.on("GET", "/lists", LISTS)
    sc.on("GET", "/lists/aud1/members", Reply(200, {"members": [], "total_items": 0}))
    sc.on("GET", "/lists/aud2/members", Reply(200, {"members": [], "total_items": 0}))
    pages = list(mc.sync("2026-03-01T00:00:00+00:00"))
    member_calls = [path for m, path, _ in sc.seen if "/members" in path]
    assert all("since_last_changed=2026-02-28T23%3A59%3A59" in p for p in member_calls)
    assert pages[-1].cursor == "2026-03-01T00:00:00+00:00"


def test_sync_ends_when_a_page_comes_back_short(script, mc):
    sc, _ = script
    sc.on("GET", "/lists", Reply(200, {"lists": [{"id": "aud1"}], "total_items": 1}))
    # total says 5000 but the vendor sends an empty page: stop, don't loop forever
    sc.on("GET", "/lists/aud1/members", Reply(200, {"members": [member("aud1")],
                                                    "total_items": 5000}),
          Reply(200, {"members": [], "total_items": 5000}))
    pages = list(mc.sync(None))
    assert sum(len(p.records) for p in pages) == 1


FACTS = RecordFacts(name="Aino Virtanen", emails=(AINO.lower(),))
REFS = [RecordRef("mailchimp", "member", CONTACT, container="aud1", facts=FACTS),
        RecordRef("mailchimp", "member", CONTACT, container="aud2", facts=FACTS)]

GONE = problem(404, "Resource Not Found", "gone")


def test_erase_permanent_delete_treats_204_response_as_success_and_verifies(script, mc):
    sc, _ = script
    sc.on("POST", f"/lists/aud1/members/{H}/actions/delete-permanent",
          Reply(204, None, headers={"X-Request-Id": "rq-204"}))
    sc.on("POST", f"/lists/aud2/members/{H}/actions/delete-permanent",
          problem(404, "Resource Not Found", "gone"))
    # refs not read by this op's find are looked up by their contact id, then read
    # by hash before the write: a member, then gone
    sc.on("GET", f"/lists/aud1/members/{CONTACT}", Reply(200, member("aud1")))
    sc.on("GET", f"/lists/aud2/members/{CONTACT}", Reply(200, member("aud2")))
    sc.on("GET", f"/lists/aud1/members/{H}", Reply(200, member("aud1")), GONE)
    sc.on("GET", f"/lists/aud2/members/{H}", Reply(200, member("aud2")), GONE)
    out = mc.erase(REFS, SystemPolicy(erase=EraseMode.PERMANENT_DELETE))
    assert [r.action for r in out.records] == [Action.PERMANENTLY_DELETED, Action.NOT_FOUND]
    assert out.records[0].vendor_request_id == "rq-204"
    assert out.verified  # both read back as 404 (the script's default)
    posted = [body for m, p, body in sc.seen if m == "POST"]
    assert posted == [None, None]  # the SDK sends a literal null body


def test_erase_not_verified_when_member_still_there(script, mc):
    sc, _ = script
    sc.on("POST", f"/lists/aud1/members/{H}/actions/delete-permanent", Reply(204, None))
    sc.on("GET", f"/lists/aud1/members/{H}", Reply(200, member("aud1")))
    out = mc.erase(REFS[:1], SystemPolicy(erase=EraseMode.PERMANENT_DELETE))
    assert not out.verified


def test_erase_archive_when_policy_says_delete(script, mc):
    sc, _ = script
    sc.on("DELETE", f"/lists/aud1/members/{H}", Reply(204, None))
    sc.on("GET", f"/lists/aud1/members/{H}", Reply(200, member("aud1", "archived")))
    out = mc.erase(REFS[:1], SystemPolicy(erase=EraseMode.DELETE))
    assert out.records[0].action == Action.DELETED and out.verified


def test_empty_bodied_404_on_erase_is_not_found(script, mc):
    sc, _ = script
    sc.on("POST", f"/lists/aud1/members/{H}/actions/delete-permanent", Reply(404, None,
                                                                             ctype=None))
    sc.on("GET", f"/lists/aud1/members/{CONTACT}", Reply(200, member("aud1")))
    sc.on("GET", f"/lists/aud1/members/{H}", Reply(200, member("aud1")), GONE)
    out = mc.erase(REFS[:1], SystemPolicy(erase=EraseMode.PERMANENT_DELETE))
    assert out.records[0].action == Action.NOT_FOUND
    assert [m for m, _, _ in sc.seen].count("POST") == 1


def test_erasing_a_forgotten_member_again_writes_nothing(script, mc):
    sc, _ = script  # every GET answers 404: the member is already forgotten
    out = mc.erase(REFS, SystemPolicy(erase=EraseMode.PERMANENT_DELETE))
    assert [r.action for r in out.records] == [Action.NOT_FOUND] * 2 and out.verified
    # each ref: by its contact id, then by its e-mail's hash; both 404, nothing written
    assert [m for m, _, _ in sc.seen] == ["GET"] * 4


def test_opt_out_patches_status_and_reads_back(script, mc):
    sc, _ = script
    state = {"status": "subscribed"}

    def get_member(path: str, body: Any) -> Reply:
        return Reply(200, member("aud1", state["status"]))

    def patch_member(path: str, body: Any) -> Reply:
        state.update(body)
        return Reply(200, member("aud1", state["status"]))

    sc.on("GET", f"/lists/aud1/members/{H}", get_member)
    sc.on("PATCH", f"/lists/aud1/members/{H}", patch_member)
    out = mc.opt_out(REFS)
    assert [r.action for r in out.records] == [Action.UNSUBSCRIBED, Action.NOT_FOUND]
    assert out.verified and state["status"] == "unsubscribed"
    assert [b for m, _, b in sc.seen if m == "PATCH"] == [{"status": "unsubscribed"}]


def test_export_sections_per_audience(script, mc, monkeypatch):
    sc, _ = script
    monkeypatch.setattr(connector_module, "PAGE", 2)  # pages of two, to see paging
    sc.on("GET", "/lists", LISTS)
    sc.on("GET", f"/lists/aud1/members/{H}", Reply(200, member("aud1")))
    sc.on("GET", "/lists/aud1/merge-fields",
          Reply(200, {"merge_fields": [{"tag": "FNAME", "name": "Etunimi"},
                                       {"tag": "LNAME", "name": "Sukunimi"}],
                      "total_items": 3}),
          Reply(200, {"merge_fields": [{"tag": "PHONE", "name": "Puhelinnumero"}],
                      "total_items": 3}))
    sc.on("GET", f"/lists/aud1/members/{H}/tags",
          Reply(200, {"tags": [{"id": 1, "name": "vip"}], "total_items": 1}))

    def notes(path: str, _body: Any) -> Reply:  # Mailchimp's pages: 10 by default
        offset = int(parse_qs(urlsplit(path).query)["offset"][0])
        items = [{"note": f"soitettu {i}"} for i in range(12)]
        return Reply(200, {"notes": items[offset:offset + 10], "total_items": 12})

    sc.on("GET", f"/lists/aud1/members/{H}/notes", notes)

    def feed(path: str, _body: Any) -> Reply:
        offset = int(parse_qs(urlsplit(path).query)["offset"][0])
        items = [{"activity_type": "open", "campaign_title": f"Kirje {i}"} for i in range(5)]
        return Reply(200, {"activity": items[offset:offset + 2], "total_items": 5})

    sc.on("GET", f"/lists/aud1/members/{H}/activity-feed", feed)
    sc.on("GET", f"/lists/aud1/members/{H}/events", Reply(200, {"events": [],
                                                                 "total_items": 0}))
    sc.on("GET", f"/lists/aud1/members/{H}/goals",
          Reply(200, {"goals": [{"goal_id": 1, "event": "/hinnasto"}]}))
    export = mc.export(REFS)
    labels = [s.label for s in export.sections]
    assert labels[0] == "Audience 'Uutiskirje': subscriber"
    assert export.sections[0].items[0]["merge_fields"]["FNAME"] == "Aino"
    by_label = {s.label.split(": ", 1)[1]: s.items for s in export.sections}
    assert by_label["merge fields"] == (
        {"field": "Etunimi", "tag": "FNAME", "value": "Aino"},
        {"field": "Sukunimi", "tag": "LNAME", "value": "Virtanen"},
        {"field": "Puhelinnumero", "tag": "PHONE", "value": "040 123 4567"})
    assert by_label["tags"][0]["name"] == "vip"
    assert [a["campaign_title"] for a in by_label["activity"]] == [
        f"Kirje {i}" for i in range(5)]  # every page of activity-feed
    assert by_label["goals (pages visited)"] == ({"goal_id": 1, "event": "/hinnasto"},)
    # every note, not Mailchimp's first page of ten
    assert [n["note"] for n in by_label["notes"]] == [f"soitettu {i}" for i in range(12)]
    assert not any(p.split("?")[0].endswith("/activity") for _, p, _ in sc.seen)
    assert export.evidence["not_found"] == 1  # aud2 answered 404


@pytest.mark.parametrize("path, body", [
    (f"/lists/aud1/members/{H}/activity-feed", {"activity": [{"activity_type": "open"}]}),
    ("/lists/aud1/merge-fields", {"merge_fields": [{"tag": "FNAME"}], "total_items": 1}),
    (f"/lists/aud1/members/{H}/goals", {"total_items": 0}),
])
def test_export_part_without_what_it_needs_is_a_protocol_error(script, mc, path, body):
    """A feed page without total_items (paging cannot end honestly), a merge field
    without its name, goals without the array: BadResponse, never an empty section."""
    sc, _ = script
    sc.on("GET", "/lists", LISTS)
    sc.on("GET", f"/lists/aud1/members/{H}", Reply(200, member("aud1")))
    sc.on("GET", "/lists/aud1/merge-fields",
          Reply(200, {"merge_fields": [{"tag": "FNAME", "name": "Etunimi"}],
                      "total_items": 1}))
    for tail in ("tags", "notes", "events", "goals", "activity-feed"):
        key = "activity" if tail == "activity-feed" else tail
        sc.on("GET", f"/lists/aud1/members/{H}/{tail}",
              Reply(200, {key: [], "total_items": 0}))
    sc.routes.insert(0, ("GET", path, [Reply(200, body)]))
    with pytest.raises(BadResponse):
        mc.export(REFS[:1])
