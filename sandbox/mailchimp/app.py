"""Mailchimp Marketing API v3 surface under /3.0.

Starlette's idiom: plain endpoint functions, one `routes` table at the bottom, and
`problem_handler` as the exception handler that renders a `Problem` as problem+json with
X-Request-Id and Link headers. Endpoints reach the vendor state through
`request.app.state.mailchimp` (`state(request)`).

Every endpoint is decorated with `endpoint`: Basic (or Bearer) auth checked against the
key and its data centre, and the 10-in-flight-requests limit per key (429 without rate
headers).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.mailchimp.state import (
    ERROR_TYPE,
    Audience,
    MailchimpState,
    now_mc,
    request_id,
    subscriber_hash,
)

Handler = Callable[[Request], Awaitable[Response]]
PROBLEM = "application/problem+json; charset=utf-8"
POST_STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
PATCH_STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending")
SORT_FIELDS = ("timestamp_opt", "timestamp_signup", "last_changed")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
HASH_RE = re.compile(r"[0-9a-f]{32}")
_DC = {"dc": "us21"}
BASE = "/3.0"
MEMBER = BASE + "/lists/{list_id}/members/{hash}"


class Problem(Exception):
    """An error answer in Mailchimp's problem+json shape."""

    def __init__(self, status: int, title: str, detail: str,
                 headers: dict[str, str] | None = None,
                 errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.headers = headers or {}
        self.errors = errors


def problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None,
            errors: list[dict[str, str]] | None = None) -> Response:
    """Mailchimp's error response: problem+json, X-Request-Id, Link (rel=describedBy)."""
    rid = request_id()
    body: dict[str, Any] = {"type": ERROR_TYPE, "title": title, "status": status,
                            "detail": detail, "instance": rid}
    if errors:
        body["errors"] = errors
    hdrs = {"X-Request-Id": rid,
            "Link": f'<https://{_DC["dc"]}.api.mailchimp.com/schema/3.0/Definitions/'
                    'ProblemDetailDocument.json>; rel="describedBy"',
            **(headers or {})}
    return Response(json.dumps(body, ensure_ascii=False), status_code=status,
                    media_type=PROBLEM, headers=hdrs)


def not_found() -> Problem:
    return Problem(404, "Resource Not Found", "The requested resource could not be found.")


def no_content() -> Response:
    """204 with an empty body (still with a Content-Type, as Mailchimp sends)."""
    return Response(status_code=204, headers={"content-type": "application/json; charset=utf-8",
                                              "X-Request-Id": request_id()})


def ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status,
                        headers={"X-Request-Id": request_id()},
                        media_type="application/json; charset=utf-8")


# -- fields / exclude_fields --------------------------------------------------------------
def _paths(raw: str | None) -> list[list[str]]:
    return [p.strip().split(".") for p in (raw or "").split(",") if p.strip()]


def _exclude(obj: Any, path: list[str]) -> None:
    if isinstance(obj, list):
        for item in obj:
            _exclude(item, path)
    elif isinstance(obj, dict) and path[0] in obj:
        if len(path) == 1:
            del obj[path[0]]
        else:
            _exclude(obj[path[0]], path[1:])


def _include(obj: Any, paths: list[list[str]]) -> Any:
    if isinstance(obj, list):
        return [_include(item, paths) for item in obj]
    if not isinstance(obj, dict):
        return obj
    out: dict[str, Any] = {}
    for head in dict.fromkeys(p[0] for p in paths):
        if head not in obj:
            continue
        rest = [p[1:] for p in paths if p[0] == head]
        out[head] = obj[head] if any(not r for r in rest) else _include(obj[head], rest)
    return out


def project(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    """Apply `fields` and `exclude_fields` (dot notation, CSV) to a response body."""
    inc = _paths(request.query_params.get("fields"))
    exc = _paths(request.query_params.get("exclude_fields"))
    if inc:
        data = _include(data, inc)
    for path in exc:
        _exclude(data, path)
    return data


def _parse_time(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise Problem(400, "Invalid Resource", f"The value for {name} is not a valid date",
                      errors=[{"field": name, "message": "invalid date"}]) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Problem(400, "Invalid Resource", f"{name} must be an integer") from None
    if value < 0:
        raise Problem(400, "Invalid Resource", f"{name} must not be negative")
    return value


def _count_offset(request: Request) -> tuple[int, int]:
    count = _int(request, "count", 10)
    if count > 1000:
        raise Problem(400, "Invalid Resource", "The count can not exceed 1000.",
                      errors=[{"field": "count", "message": "Must be at most 1000"}])
    return count, _int(request, "offset", 0)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise Problem(400, "JSON Parse Error",
                      "We encountered an unspecified JSON parsing error.") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise Problem(400, "JSON Parse Error", "The request body must be a JSON object.")
    return body


def state(request: Request) -> MailchimpState:
    """The vendor state of the app serving this request (set by `build_app`)."""
    return request.app.state.mailchimp


def check_key(s: MailchimpState, request: Request) -> str:
    auth = request.headers.get("authorization", "")
    key = ""
    if auth.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(auth[6:].strip()).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        key = decoded.partition(":")[2]
    elif auth.lower().startswith("bearer ") or auth.lower().startswith("oauth "):
        key = auth.split(" ", 1)[1].strip()
    if not auth or not key:
        raise Problem(401, "API Key Missing", "Your request did not include an API key.")
    if key == s.api_key:
        return key
    prefix, _, dc = key.rpartition("-")
    if prefix and prefix == s.api_key.rpartition("-")[0] and dc != s.dc:
        raise Problem(403, "Wrong Datacenter",
                      "The API key provided is linked to a different data center.")
    raise Problem(401, "API Key Invalid", "Your API key may be invalid, or you've "
                  "attempted to access the wrong data center.")


def endpoint(fn: Handler) -> Handler:
    async def handler(request: Request) -> Response:
        s = state(request)
        key = check_key(s, request)
        n = s.in_flight.get(key, 0) + 1
        s.in_flight[key] = n
        try:
            if n > int(s.settings["max_connections"]):
                if s.settings["throttle_mode"] == "bare403":
                    return Response(status_code=403, headers={"content-length": "0"})
                return problem(429, "Too Many Requests", "You have exceeded the limit of "
                               "10 simultaneous connections.")
            delay = float(s.settings["request_delay_ms"])
            if delay:
                await asyncio.sleep(delay / 1000)
            return await fn(request)
        finally:
            s.in_flight[key] -= 1

    return handler


async def problem_handler(request: Request, exc: Exception) -> Response:
    """A `Problem` raised anywhere in an endpoint, as Mailchimp's problem+json answer."""
    assert isinstance(exc, Problem)
    return problem(exc.status, exc.title, exc.detail, exc.headers, exc.errors)


def audience(request: Request) -> Audience:
    s = state(request)
    aud = s.lists.get(request.path_params["list_id"])
    if aud is None:
        raise not_found()
    return aud


def resolve(aud: Audience, ident: str) -> str:
    if "@" in ident:
        return subscriber_hash(ident)
    low = ident.lower()
    if len(low) == 32 and all(c in "0123456789abcdef" for c in low):
        return low
    return aud.by_contact.get(ident, low)


def member_of(request: Request) -> tuple[Audience, str, dict[str, Any]]:
    """The member the path names by subscriber hash, raw e-mail or contact_id; 404
    (never a made-up record) for a list or member that does not exist."""
    aud = audience(request)
    h = resolve(aud, request.path_params["hash"])
    m = aud.members.get(h)
    if m is None:
        raise not_found()
    return aud, h, m


def member_by_hash(request: Request) -> tuple[Audience, str, dict[str, Any]]:
    """The member the path names by its MD5 subscriber hash, the only address archive
    and delete-permanent take (saas-apis.md, Corrections, checked 2026-12): an e-mail
    or a contact_id there names no member, so 404."""
    aud = audience(request)
    h = request.path_params["hash"].lower()
    m = aud.members.get(h) if HASH_RE.fullmatch(h) else None
    if m is None:
        raise not_found()
    return aud, h, m


def links(s: MailchimpState, aud: Audience, h: str) -> list[dict[str, str]]:
    href = f"https://{s.dc}.api.mailchimp.com/3.0/lists/{aud.id}/members/{h}"
    return [{"rel": "self", "href": href, "method": "GET",
             "targetSchema": "https://us21.api.mailchimp.com/schema/3.0/Definitions/"
                             "Lists/Members/Response.json"},
            {"rel": "parent", "href": href.rsplit("/", 1)[0], "method": "GET"},
            {"rel": "update", "href": href, "method": "PATCH"},
            {"rel": "upsert", "href": href, "method": "PUT"},
            {"rel": "delete", "href": href, "method": "DELETE"},
            {"rel": "activity", "href": href + "/activity", "method": "GET"},
            {"rel": "activity-feed", "href": href + "/activity-feed", "method": "GET"},
            {"rel": "goals", "href": href + "/goals", "method": "GET"},
            {"rel": "notes", "href": href + "/notes", "method": "GET"}]


def render(s: MailchimpState, aud: Audience, m: dict[str, Any], with_links: bool = True,
           ) -> dict[str, Any]:
    out = dict(m)
    if with_links:
        out["_links"] = links(s, aud, m["id"])
    return out


# -- misc --------------------------------------------------------------------------------
@endpoint
async def ping(request: Request) -> Response:
    return ok({"health_status": "Everything's Chimpy!"})


@endpoint
async def root(request: Request) -> Response:
    s = state(request)
    return ok({"account_id": "sandbox", "account_name": "Hiekkalaatikko Oy",
               "email": "admin@example.com", "role": "owner",
               "total_subscribers": sum(len(a.members) for a in s.lists.values())})


def list_json(aud: Audience) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for m in aud.members.values():
        counts[m["status"]] = counts.get(m["status"], 0) + 1
    return {"id": aud.id, "web_id": aud.web_id, "name": aud.name,
            "contact": {"company": "Hiekkalaatikko Oy", "address1": "Mannerheimintie 1",
                        "city": "Helsinki", "zip": "00100", "country": "FI"},
            "permission_reminder": "Tilasit uutiskirjeemme verkkosivuiltamme.",
            "campaign_defaults": {"from_name": "Hiekkalaatikko",
                                  "from_email": "uutiset@example.com",
                                  "subject": "", "language": "fi"},
            "date_created": "2023-06-01T08:00:00+00:00", "list_rating": 3,
            "double_optin": False, "visibility": "prv",
            "stats": {"member_count": counts.get("subscribed", 0),
                      "unsubscribe_count": counts.get("unsubscribed", 0),
                      "cleaned_count": counts.get("cleaned", 0)}}


@endpoint
async def lists(request: Request) -> Response:
    s = state(request)
    count, offset = _count_offset(request)
    auds = list(s.lists.values())
    data = {"lists": [list_json(a) for a in auds[offset:offset + count]],
            "total_items": len(auds), "constraints": {}}
    return ok(project(request, data))


@endpoint
async def list_get(request: Request) -> Response:
    return ok(project(request, list_json(audience(request))))


# -- members -----------------------------------------------------------------------------
@endpoint
async def members(request: Request) -> Response:
    s = state(request)
    aud = audience(request)
    count, offset = _count_offset(request)
    status = request.query_params.get("status")
    if status and status not in (*POST_STATUSES, "archived"):
        raise Problem(400, "Invalid Resource", f"Invalid status '{status}'")
    since = _parse_time(request, "since_last_changed")
    before = _parse_time(request, "before_last_changed")
    since_opt = _parse_time(request, "since_timestamp_opt")
    before_opt = _parse_time(request, "before_timestamp_opt")
    unique = request.query_params.get("unique_email_id") or None
    vip_only = request.query_params.get("vip_only") == "true"
    sort_field = request.query_params.get("sort_field")
    sort_dir = (request.query_params.get("sort_dir") or "ASC").upper()
    if sort_field and sort_field not in SORT_FIELDS:
        raise Problem(400, "Invalid Resource", f"Invalid sort_field '{sort_field}'")
    if sort_dir not in ("ASC", "DESC"):
        raise Problem(400, "Invalid Resource", "sort_dir must be ASC or DESC")
    list_archived = bool(s.settings["list_archived"])
    key = (status, since, before, since_opt, before_opt, sort_field, sort_dir,
           list_archived, unique, vip_only)

    def build() -> list[str]:
        out = []
        for h in aud.order:
            m = aud.members[h]
            st = m["status"]
            if status and st != status:
                continue
            if unique and m["unique_email_id"] != unique:
                continue
            if vip_only and not m["vip"]:
                continue
            if not status and st == "archived" and not list_archived:
                continue
            if since and m["last_changed"] < since:
                continue
            if before and m["last_changed"] >= before:
                continue
            if since_opt and m["timestamp_opt"] < since_opt:
                continue
            if before_opt and m["timestamp_opt"] >= before_opt:
                continue
            out.append(h)
        if sort_field:
            out.sort(key=lambda x: aud.members[x][sort_field], reverse=sort_dir == "DESC")
        return out

    hashes = s.view(aud, key, build)
    exclude = request.query_params.get("exclude_fields") or ""
    fast = not request.query_params.get("fields") and exclude in ("", "members._links")
    list_links = json.dumps([{"rel": "self", "method": "GET", "href": f"https://{s.dc}"
                              f".api.mailchimp.com/3.0/lists/{aud.id}/members"}])
    if fast:
        # Pre-serialised members: a 1000-member page is a string join, not 1 MB of dumps.
        parts = []
        template = links_template(s, aud) if not exclude else None
        for h in hashes[offset:offset + count]:
            js = aud.json.get(h)
            if js is None:
                js = json.dumps(aud.members[h], ensure_ascii=False, separators=(",", ":"))
                aud.json[h] = js
            if template is not None:
                js = js[:-1] + template.replace("{h}", h) + "}"
            parts.append(js)
        body = (f'{{"members":[{",".join(parts)}],"list_id":"{aud.id}",'
                f'"total_items":{len(hashes)},"_links":{list_links}}}')
        return Response(body, media_type="application/json; charset=utf-8",
                        headers={"X-Request-Id": request_id()})
    page = [render(s, aud, aud.members[h]) for h in hashes[offset:offset + count]]
    data = {"members": page, "list_id": aud.id, "total_items": len(hashes),
            "_links": json.loads(list_links)}
    return ok(project(request, data))


def links_template(s: MailchimpState, aud: Audience) -> str:
    return ',"_links":' + json.dumps(links(s, aud, "{h}"), separators=(",", ":"))


def check_email(email: Any) -> str:
    if not isinstance(email, str) or not email:
        raise Problem(400, "Invalid Resource", "The resource submitted could not be "
                      "validated. For field-specific details, see the 'errors' array.",
                      errors=[{"field": "email_address",
                               "message": "This value should not be blank."}])
    if not EMAIL_RE.match(email):
        raise Problem(400, "Invalid Resource",
                      f"{email} looks fake or invalid, please enter a real email address.")
    return email


def check_status(value: Any, allowed: tuple[str, ...], field: str) -> str:
    if value not in allowed:
        raise Problem(400, "Invalid Resource", "The resource submitted could not be "
                      "validated. For field-specific details, see the 'errors' array.",
                      errors=[{"field": field, "message": f"Must be one of {allowed}"}])
    return value


def transition(m: dict[str, Any], new: str) -> None:
    """Status machine: no API re-subscribe from unsubscribed/cleaned (pending is ok)."""
    old = m["status"]
    if new == old:
        return
    if new == "subscribed" and old in ("unsubscribed", "cleaned"):
        raise Problem(400, "Member In Compliance State",
                      f"{m['email_address']} is in a compliance state due to unsubscribe, "
                      "bounce, or compliance review and cannot be subscribed.")
    m["status"] = new
    if new == "unsubscribed":
        m["unsubscribe_reason"] = "N/A (Unsubscribed via API)"
    if new in ("subscribed", "pending"):
        m["timestamp_opt"] = now_mc()


def apply_fields(m: dict[str, Any], body: dict[str, Any]) -> None:
    mf = body.get("merge_fields")
    if mf is not None:
        if not isinstance(mf, dict):
            raise Problem(400, "Invalid Resource", "merge_fields must be an object")
        m["merge_fields"].update(mf)
        m["full_name"] = " ".join(
            x for x in (m["merge_fields"].get("FNAME"), m["merge_fields"].get("LNAME"))
            if x)
    for key in ("email_type", "language", "vip", "interests", "ip_signup", "ip_opt",
                "timestamp_signup", "timestamp_opt", "location", "marketing_permissions"):
        if key in body:
            m[key] = body[key]


def forgotten(email: str) -> Problem:
    return Problem(400, "Forgotten Email Not Subscribed",
                   f"{email} was permanently deleted and cannot be re-imported. The "
                   "contact must re-subscribe to get back on the list.")


def add(s: MailchimpState, aud: Audience, body: dict[str, Any], upsert_status: str | None = None,
        ) -> tuple[dict[str, Any], bool]:
    email = check_email(body.get("email_address"))
    h = subscriber_hash(email)
    if h in aud.tombstones:
        raise forgotten(email)
    existing = aud.members.get(h)
    status = upsert_status or check_status(body.get("status"), POST_STATUSES, "status")
    if existing is not None and existing["status"] != "archived":
        raise Problem(400, "Member Exists", f"{email} is already a list member. Use PUT "
                      "to insert or update list members.")
    now = now_mc()
    m = s.new_member(aud, email, status, now)
    if existing is not None:  # restore from archive
        m["contact_id"] = existing["contact_id"]
        m["unique_email_id"] = existing["unique_email_id"]
    apply_fields(m, body)
    if isinstance(body.get("tags"), list):
        m["tags"] = [{"id": 2000 + i, "name": str(t)} for i, t in enumerate(body["tags"])]
        m["tags_count"] = len(m["tags"])
    s.insert(aud, m)
    return m, existing is None


@endpoint
async def member_post(request: Request) -> Response:
    s = state(request)
    aud = audience(request)
    m, _ = add(s, aud, await _body(request))
    return ok(render(s, aud, m))


@endpoint
async def member_get(request: Request) -> Response:
    s = state(request)
    aud, h, m = member_of(request)
    return ok(project(request, render(s, aud, m)))


@endpoint
async def member_put(request: Request) -> Response:
    s = state(request)
    aud = audience(request)
    body = await _body(request)
    ident = request.path_params["hash"]
    h = resolve(aud, ident)
    email = check_email(body.get("email_address"))
    if subscriber_hash(email) != h and aud.members.get(h) is None:
        raise Problem(400, "Invalid Resource",
                      "The subscriber hash does not match the email_address.")
    if h in aud.tombstones:
        raise forgotten(email)
    m = aud.members.get(h)
    if m is None or m["status"] == "archived":
        status = body.get("status_if_new") if m is None else (
            body.get("status") or body.get("status_if_new"))
        if status is None:
            raise Problem(400, "Invalid Resource", "The resource submitted could not be "
                          "validated. For field-specific details, see the 'errors' array.",
                          errors=[{"field": "status_if_new",
                                   "message": "This value should not be blank."}])
        check_status(status, POST_STATUSES, "status_if_new")
        m, _ = add(s, aud, body, upsert_status=status)
        return ok(render(s, aud, m))
    if "status" in body:
        transition(m, check_status(body["status"], POST_STATUSES, "status"))
    apply_fields(m, body)
    s.changed(aud, m)
    return ok(render(s, aud, m))


@endpoint
async def member_patch(request: Request) -> Response:
    s = state(request)
    aud, h, m = member_of(request)
    body = await _body(request)
    if "email_address" in body and subscriber_hash(check_email(body["email_address"])) != h:
        new_h = subscriber_hash(body["email_address"])
        if new_h in aud.tombstones:
            raise forgotten(body["email_address"])
        if new_h in aud.members:
            raise Problem(400, "Member Exists", f"{body['email_address']} is already a "
                          "list member.")
        # the e-mail changes, and with it the subscriber hash (the member's id)
        del aud.members[h]
        aud.order[aud.order.index(h)] = new_h
        aud.json.pop(h, None)
        for table in (aud.notes, aud.events, aud.goals, aud.campaigns):
            if h in table:
                table[new_h] = table.pop(h)
        m["id"] = new_h
        m["email_address"] = body["email_address"]
        aud.members[new_h] = m
        aud.by_contact[m["contact_id"]] = new_h
    elif "email_address" in body:
        m["email_address"] = body["email_address"]
    if "status" in body:
        transition(m, check_status(body["status"], PATCH_STATUSES, "status"))
    apply_fields(m, body)
    s.changed(aud, m)
    return ok(render(s, aud, m))


@endpoint
async def member_delete(request: Request) -> Response:
    s = state(request)
    aud, h, m = member_by_hash(request)
    if m["status"] in ("cleaned", "pending", "archived"):
        raise Problem(405, "Method Not Allowed", "This list member cannot be removed. Can "
                      "not archive a contact that is bounced, pending or archived",
                      headers={"Allow": "GET, PUT"})
    m["status"] = "archived"
    s.changed(aud, m)
    return no_content()


@endpoint
async def member_forget(request: Request) -> Response:
    s = state(request)
    aud, h, _ = member_by_hash(request)
    await request.body()  # accepts anything, including the SDK's literal `null`
    s.forget(aud, h)
    return no_content()


# -- tags, notes, activity, events ------------------------------------------------------
@endpoint
async def tags_get(request: Request) -> Response:
    _, _, m = member_of(request)
    count, offset = _count_offset(request)
    tags = [{**t, "date_added": m["last_changed"]} for t in m["tags"]]
    return ok(project(request, {"tags": tags[offset:offset + count],
                                "total_items": len(tags)}))


@endpoint
async def tags_post(request: Request) -> Response:
    s = state(request)
    aud, _, m = member_of(request)
    body = await _body(request)
    tags = body.get("tags")
    if not isinstance(tags, list):
        raise Problem(400, "Invalid Resource", "tags must be an array",
                      errors=[{"field": "tags", "message": "Must be an array"}])
    current = {t["name"]: t for t in m["tags"]}
    for t in tags:
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise Problem(400, "Invalid Resource", "each tag needs a name")
        if t.get("status", "active") == "inactive":
            current.pop(t["name"], None)
        else:
            current.setdefault(t["name"], {"id": 3000 + len(current), "name": t["name"]})
    m["tags"] = list(current.values())
    m["tags_count"] = len(m["tags"])
    s.changed(aud, m)
    return no_content()


@endpoint
async def notes_list(request: Request) -> Response:
    aud, h, _ = member_of(request)
    count, offset = _count_offset(request)
    notes = aud.notes.get(h, [])
    return ok(project(request, {"notes": notes[offset:offset + count], "email_id": h,
                                "list_id": aud.id, "total_items": len(notes)}))


@endpoint
async def notes_post(request: Request) -> Response:
    s = state(request)
    aud, h, m = member_of(request)
    body = await _body(request)
    if not isinstance(body.get("note"), str):
        raise Problem(400, "Invalid Resource", "note must be a string")
    return ok(s.add_note(aud, h, body["note"], m))


def note_of(request: Request) -> tuple[Audience, str, dict[str, Any], dict[str, Any]]:
    aud, h, m = member_of(request)
    for n in aud.notes.get(h, []):
        if str(n["id"]) == request.path_params["note_id"]:
            return aud, h, m, n
    raise not_found()


@endpoint
async def note_one(request: Request) -> Response:
    s = state(request)
    aud, h, m, n = note_of(request)
    if request.method in ("GET", "HEAD"):  # Starlette routes HEAD here too: never delete
        return ok(n)
    if request.method == "PATCH":
        body = await _body(request)
        if "note" in body:
            n["note"] = str(body["note"])
            n["updated_at"] = now_mc()
        s.changed(aud, m)
        return ok(n)
    aud.notes[h].remove(n)
    if m["last_note"] and m["last_note"]["note_id"] == n["id"]:
        m["last_note"] = None
    s.changed(aud, m)
    return no_content()


@endpoint
async def activity(request: Request) -> Response:
    s = state(request)
    aud, h, m = member_of(request)
    acts = s.activity(aud, m)
    wanted = request.query_params.get("action")
    if wanted:
        allowed = set(wanted.split(","))
        acts = [a for a in acts if a["action"] in allowed]
    return ok(project(request, {"activity": acts, "email_id": h, "list_id": aud.id,
                                "total_items": len(acts)}))


@endpoint
async def activity_feed(request: Request) -> Response:
    """The paged successor of /activity: the whole history, newest first, `count`/
    `offset`, `activity_filters` (CSV of activity types), `total_items` after the
    filter."""
    s = state(request)
    aud, h, m = member_of(request)
    count, offset = _count_offset(request)
    feed = s.activity_feed(aud, m)
    wanted = {f.strip() for f in (request.query_params.get("activity_filters") or "")
              .split(",") if f.strip()}
    if wanted:
        feed = [a for a in feed if a["activity_type"] in wanted]
    href = f"https://{s.dc}.api.mailchimp.com/3.0/lists/{aud.id}/members/{h}/activity-feed"
    return ok(project(request, {
        "activity": feed[offset:offset + count], "email_id": h, "list_id": aud.id,
        "contact_id": m["contact_id"], "total_items": len(feed),
        "_links": [{"rel": "self", "href": href, "method": "GET"}]}))


@endpoint
async def goals(request: Request) -> Response:
    """The member's last 50 goal events (pages of the site visited); not paged."""
    s = state(request)
    aud, h, _ = member_of(request)
    visits = aud.goals.get(h, [])[:50]
    href = f"https://{s.dc}.api.mailchimp.com/3.0/lists/{aud.id}/members/{h}/goals"
    return ok(project(request, {"goals": visits, "list_id": aud.id, "email_id": h,
                                "total_items": len(visits),
                                "_links": [{"rel": "self", "href": href, "method": "GET"}]}))


@endpoint
async def merge_fields(request: Request) -> Response:
    """The audience's merge fields (tag, name, type, ...), paged, `type` and
    `required` filters."""
    s = state(request)
    aud = audience(request)
    count, offset = _count_offset(request)
    fields = aud.merge_fields
    kind = request.query_params.get("type")
    if kind:
        fields = [f for f in fields if f["type"] == kind]
    required = request.query_params.get("required")
    if required in ("true", "false"):
        fields = [f for f in fields if f["required"] == (required == "true")]
    href = f"https://{s.dc}.api.mailchimp.com/3.0/lists/{aud.id}/merge-fields"
    page = [{**f, "_links": [{"rel": "self", "href": f"{href}/{f['merge_id']}",
                              "method": "GET"}]} for f in fields[offset:offset + count]]
    return ok(project(request, {"merge_fields": page, "list_id": aud.id,
                                "total_items": len(fields),
                                "_links": [{"rel": "self", "href": href, "method": "GET"}]}))


@endpoint
async def events_list(request: Request) -> Response:
    aud, h, _ = member_of(request)
    count, offset = _count_offset(request)
    events = aud.events.get(h, [])
    return ok(project(request, {"events": events[offset:offset + count],
                                "total_items": len(events)}))


@endpoint
async def events_post(request: Request) -> Response:
    s = state(request)
    aud, h, m = member_of(request)
    body = await _body(request)
    name = body.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{2,30}", name):
        raise Problem(400, "Invalid Resource", "Event name must be 2-30 characters of "
                      "letters, numbers, underscores or dashes.")
    aud.events.setdefault(h, []).append({
        "occurred_at": body.get("occurred_at") or now_mc(), "name": name,
        "properties": body.get("properties") or {}})
    s.changed(aud, m)
    return no_content()


@endpoint
async def search(request: Request) -> Response:
    s = state(request)
    query = (request.query_params.get("query") or "").strip()
    if not query:
        raise Problem(400, "Invalid Resource", "query must be given",
                      errors=[{"field": "query", "message": "This value should not be "
                               "blank."}])
    list_id = request.query_params.get("list_id")
    auds = [s.lists[list_id]] if list_id in s.lists else (
        [] if list_id else list(s.lists.values()))
    if list_id and not auds:
        raise not_found()
    low = query.lower()
    exact: list[dict[str, Any]] = []
    full: list[dict[str, Any]] = []
    for aud in auds:
        if "@" in low:
            m = aud.members.get(subscriber_hash(low))
            if m is not None:
                exact.append(render(s, aud, m, False))
            for h in aud.order:
                m2 = aud.members[h]
                if low in m2["email_address"].lower() and m2 is not m:
                    full.append(render(s, aud, m2, False))
                    if len(full) >= 100:
                        break
        else:
            for h in aud.order:
                m2 = aud.members[h]
                name = m2["full_name"].lower()
                if name == low:
                    exact.append(render(s, aud, m2, False))
                elif low in name or low in m2["email_address"].lower():
                    full.append(render(s, aud, m2, False))
    data = {"exact_matches": {"members": exact[:10], "total_items": len(exact)},
            "full_search": {"members": full[:10], "total_items": len(full)}}
    return ok(project(request, data))


@endpoint
async def batch_subscribe(request: Request) -> Response:
    s = state(request)
    aud = audience(request)
    body = await _body(request)
    items = body.get("members")
    if not isinstance(items, list) or len(items) > 500:
        raise Problem(400, "Invalid Resource", "members must be an array of at most 500")
    update_existing = body.get("update_existing") is True
    new, updated, errors = [], [], []
    for item in items:
        email = item.get("email_address") if isinstance(item, dict) else None
        try:
            h = subscriber_hash(check_email(email))
            m = aud.members.get(h)
            if m is not None and m["status"] != "archived":
                if not update_existing:
                    raise Problem(400, "Member Exists", f"{email} is already a list "
                                  "member, do you want to update? please provide "
                                  "update_existing:true in the request body")
                if "status" in item:
                    transition(m, check_status(item["status"], POST_STATUSES, "status"))
                apply_fields(m, item)
                s.changed(aud, m)
                updated.append(render(s, aud, m, False))
            else:
                m, _ = add(s, aud, item)
                new.append(render(s, aud, m, False))
        except Problem as p:
            errors.append({"email_address": email, "error": p.detail,
                           "error_code": p.title.upper().replace(" ", "_"), "field": "",
                           "field_message": ""})
    return ok({"new_members": new, "updated_members": updated, "errors": errors,
               "total_created": len(new), "total_updated": len(updated),
               "error_count": len(errors)})


async def member_dispatch(request: Request) -> Response:
    # HEAD answers as GET does; the server sends its headers without the body.
    handlers = {"GET": member_get, "HEAD": member_get, "PUT": member_put,
                "PATCH": member_patch, "DELETE": member_delete}
    return await handlers[request.method](request)


async def not_found_handler(request: Request, exc: Exception) -> Response:
    """Unknown paths answer Mailchimp's 404 problem document."""
    return problem(404, "Resource Not Found", "The requested resource could not be found.")


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    """Wrong method: 405 with an Allow header."""
    allow = getattr(exc, "headers", None) or {}
    return problem(405, "Method Not Allowed", "The requested method and resource are not "
                   "compatible. See the Allow header for this resource's available methods.",
                   headers={"Allow": allow.get("Allow", "GET")})


routes = [
    Route(BASE + "/", root, methods=["GET"]),
    Route(BASE + "/ping", ping, methods=["GET"]),
    Route(BASE + "/lists", lists, methods=["GET"]),
    Route(BASE + "/lists/{list_id}", list_get, methods=["GET"]),
    Route(BASE + "/lists/{list_id}", batch_subscribe, methods=["POST"]),
    Route(BASE + "/lists/{list_id}/members", members, methods=["GET"]),
    Route(BASE + "/lists/{list_id}/members", member_post, methods=["POST"]),
    Route(MEMBER, member_dispatch, methods=["GET", "PUT", "PATCH", "DELETE"]),
    Route(MEMBER + "/actions/delete-permanent", member_forget, methods=["POST"]),
    Route(MEMBER + "/tags", tags_get, methods=["GET"]),
    Route(MEMBER + "/tags", tags_post, methods=["POST"]),
    Route(MEMBER + "/notes", notes_list, methods=["GET"]),
    Route(MEMBER + "/notes", notes_post, methods=["POST"]),
    Route(MEMBER + "/notes/{note_id}", note_one, methods=["GET", "PATCH", "DELETE"]),
    Route(MEMBER + "/activity", activity, methods=["GET"]),
    Route(MEMBER + "/activity-feed", activity_feed, methods=["GET"]),
    Route(MEMBER + "/goals", goals, methods=["GET"]),
    Route(BASE + "/lists/{list_id}/merge-fields", merge_fields, methods=["GET"]),
    Route(MEMBER + "/events", events_list, methods=["GET"]),
    Route(MEMBER + "/events", events_post, methods=["POST"]),
    Route(BASE + "/search-members", search, methods=["GET"]),
]
