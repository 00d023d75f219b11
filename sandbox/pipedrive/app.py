"""Pipedrive HTTP surface: v2 persons/organizations/deals/activities, v1 legacy and sub-resources.

Starlette's idiom: plain endpoint functions, one `routes` table at the bottom, and
`api_error` as the exception handler that renders an `ApiError` in Pipedrive's envelope.
Endpoints reach the vendor state through `request.app.state.pipedrive` (`state(request)`).

Every endpoint is decorated with `endpoint`, which authenticates (x-api-token header or
?api_token=; an API token sent as an OAuth Bearer is refused, checked 2026-12), applies
the burst window and the daily token budget with per-endpoint costs, and sets the
x-ratelimit-* headers on every answer, as Pipedrive does.
"""

from __future__ import annotations

import base64
import bisect
import json
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from sandbox.pipedrive.state import (
    MARKETING,
    PERSON_FIELDS,
    PERSON_LABELS,
    RECENTS_HISTORY,
    PipedriveState,
    digits,
    error_body,
    iso,
    now_iso,
    v1_time,
)

GATEWAY_401 = {"success": False, "error": "unauthorized access", "errorCode": 401,
               "error_info": "Please check developers.pipedrive.com"}
COST = {"get": 1, "list": 10, "write": 5, "delete": 3, "search": 20}
LABELS = {"work", "home", "mobile", "other"}
CLOUDFLARE_HTML = ("<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare"
                   "</title></head><body><h1>Sorry, you have been blocked</h1></body></html>")

Handler = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    """An error answer in Pipedrive's envelope."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def ok(data: Any, additional: Any = None, status: int = 200) -> JSONResponse:
    return JSONResponse({"success": True, "data": data, "additional_data": additional},
                        status_code=status)


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


# -- parameter helpers --------------------------------------------------------------------
def q_int(request: Request, name: str, default: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, f"Parameter '{name}' must be an integer") from None


def q_time(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        dt = datetime.fromisoformat(raw.replace(" ", "T"))
    except ValueError:
        raise ApiError(400, f"Parameter '{name}' must be an RFC 3339 date-time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return iso(dt)


def encode_cursor(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps({"k": key}).encode()).decode()


def decode_cursor(raw: str | None) -> Any:
    if not raw:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(raw.encode()))["k"]
    except (ValueError, KeyError, TypeError):
        raise ApiError(400, "Invalid cursor") from None
    return tuple(key) if isinstance(key, list) else key


def v2_limit(request: Request) -> int:
    limit = q_int(request, "limit", 100) or 100
    if limit < 1:
        raise ApiError(400, "Parameter 'limit' must be positive")
    return min(limit, 500)


def v1_page(request: Request, items: list[Any], max_limit: int = 500) -> tuple[list[Any], dict]:
    start = q_int(request, "start", 0) or 0
    limit = min(q_int(request, "limit", 100) or 100, max_limit)
    page = items[start:start + limit]
    more = start + limit < len(items)
    pagination: dict[str, Any] = {"start": start, "limit": limit,
                                  "more_items_in_collection": more}
    if more:
        pagination["next_start"] = start + limit
    return page, pagination


def page_by_id(request: Request, ids: list[Any], pick: Callable[[Any], dict | None],
               ) -> tuple[list[dict], str | None]:
    """Cursor paging over an id-ascending list; `pick` returns None to skip an item."""
    limit = v2_limit(request)
    after = decode_cursor(request.query_params.get("cursor"))
    if after is not None and not _is_int(after) and not isinstance(after, str):
        raise ApiError(400, "Invalid cursor")
    try:
        pos = 0 if after is None else bisect.bisect_right(ids, after)
    except TypeError:
        raise ApiError(400, "Invalid cursor") from None
    out: list[dict] = []
    last = None
    more = False
    while pos < len(ids):
        item = pick(ids[pos])
        if item is not None:
            if len(out) == limit:
                more = True
                break
            out.append(item)
            last = ids[pos]
        pos += 1
    return out, encode_cursor(last) if more else None


# -- v2 type validation -------------------------------------------------------------------
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_items(name: str, value: Any, labels: set[str] | None = LABELS,
                 ) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise ApiError(400, f"'{name}' must be an array")
    out = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise ApiError(400, f"'{name}' items need a string 'value'")
        extra = set(item) - {"value", "primary", "label"}
        if extra:
            raise ApiError(400, f"Unknown field(s) in '{name}': {sorted(extra)}")
        if "primary" in item and not isinstance(item["primary"], bool):
            raise ApiError(400, f"'{name}.primary' must be a boolean")
        label = item.get("label", "work")
        if labels is None and not isinstance(label, str):
            raise ApiError(400, f"'{name}.label' must be a string")
        if labels is not None and label not in labels:
            raise ApiError(400, f"'{name}.label' must be one of {sorted(labels)}")
        out.append({"value": item["value"], "primary": item.get("primary", False),
                    "label": label})
    if out and not any(i["primary"] for i in out):
        out[0]["primary"] = True
    return out


# Contact Sync fields of a v2 person (checked 2026-12): personal data like the rest.
CONTACT_SYNC = ("postal_address", "notes", "im", "birthday", "job_title")


def _check_custom_fields(value: Any) -> None:
    """v2 custom fields: an object keyed by the company's field keys (40-char hashes)."""
    if not isinstance(value, dict):
        raise ApiError(400, "'custom_fields' must be an object")
    unknown = set(value) - set(PERSON_FIELDS)
    if unknown:
        raise ApiError(400, f"Unknown custom field(s): {sorted(unknown)}")
    for key, field_value in value.items():
        if field_value is not None and not isinstance(field_value, str):
            raise ApiError(400, f"Custom field '{key}' must be a string or null")


def _check_contact_sync(body: dict[str, Any]) -> None:
    for key in ("notes", "job_title"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise ApiError(400, f"'{key}' must be a string or null")
    if body.get("birthday") is not None:
        try:
            date.fromisoformat(str(body["birthday"]))
        except ValueError:
            raise ApiError(400, "'birthday' must be a date (YYYY-MM-DD)") from None
    address = body.get("postal_address")
    if address is not None and not (isinstance(address, dict)
                                    and isinstance(address.get("value"), str)):
        raise ApiError(400, "'postal_address' must be an object with a string 'value'")


def validate_person(body: Any, creating: bool) -> dict[str, Any]:
    """Strict v2 rules: no string numbers, no 1/0 booleans, unknown fields refused."""
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    allowed = {"name", "owner_id", "org_id", "add_time", "update_time", "emails", "phones",
               "visible_to", "label_ids", "marketing_status", "custom_fields",
               *CONTACT_SYNC}
    extra = set(body) - allowed
    if extra:
        raise ApiError(400, f"Unknown field(s): {sorted(extra)}")
    if creating and not body.get("name"):
        raise ApiError(400, "Name must be given.")
    if "name" in body and (not isinstance(body["name"], str) or not body["name"].strip()):
        raise ApiError(400, "Name must be given.")
    for key in ("owner_id", "org_id"):
        if key in body and not (_is_int(body[key]) or (key == "org_id" and body[key] is None)):
            raise ApiError(400, f"'{key}' must be an integer")
    if "visible_to" in body and (not _is_int(body["visible_to"])
                                 or body["visible_to"] not in (1, 3, 5, 7)):
        raise ApiError(400, "'visible_to' must be one of 1, 3, 5, 7")
    if "label_ids" in body and (not isinstance(body["label_ids"], list)
                                or not all(_is_int(x) for x in body["label_ids"])):
        raise ApiError(400, "'label_ids' must be an array of integers")
    unknown_labels = set(body.get("label_ids") or ()) - set(PERSON_LABELS)
    if unknown_labels:
        raise ApiError(400, f"Unknown label id(s): {sorted(unknown_labels)}")
    if "marketing_status" in body and body["marketing_status"] not in MARKETING:
        raise ApiError(400, f"'marketing_status' must be one of {list(MARKETING)}")
    if "custom_fields" in body:
        _check_custom_fields(body["custom_fields"])
    _check_contact_sync(body)
    for key in ("add_time", "update_time"):
        if key in body:
            try:
                datetime.fromisoformat(str(body[key]))
            except ValueError:
                raise ApiError(400, f"'{key}' must be an RFC 3339 date-time") from None
    clean = dict(body)
    for key in ("emails", "phones"):
        if key in body:
            clean[key] = _check_items(key, body[key])
    if "im" in body:
        clean["im"] = _check_items("im", body["im"], labels=None)
    clean.pop("update_time", None)
    return clean


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, "Request body is not valid JSON") from None


def state(request: Request) -> PipedriveState:
    """The vendor state of the app serving this request (set by `build_app`)."""
    return request.app.state.pipedrive


# -- auth + rate limits --------------------------------------------------------------
DAILY_WRITES = 10_000  # POST/PUT fair usage per user a day (changelog 2019-05-24)


def limiter(s: PipedriveState, token: str, cost: int, search: bool, write: bool,
            ) -> tuple[dict[str, str], Response | None]:
    """The 2-second window (search has its own) and the daily token budget.

    A request over the window is refused with 429 and a penalty: the window stays shut
    for `penalty_s` (x-ratelimit-reset and Retry-After say how long). A request the
    day's budget cannot pay for is refused with 429 while the window still has room
    (x-ratelimit-remaining >= 1), which is how a client tells the two apart. The budget
    has no documented header; x-daily-requests-left counts the writes left today."""
    cfg = s.settings
    limit = int(cfg["search_burst_limit"] if search else cfg["burst_limit"])
    window = float(cfg["burst_window_s"])
    key = token + (":search" if search else "")
    now = time.monotonic()
    today = datetime.now(UTC).date()
    if today != s.budget_day:  # the budget resets at midnight (UTC here)
        s.budget_day = today
        s.budget_left.clear()
        s.writes_today.clear()
    blocked = s.blocked_until.get(key, 0.0)
    win = s.windows.get(key)
    if win is None or (now - win[0] >= window and now >= blocked):
        win = [now, 0]
        s.windows[key] = win
    win[1] += 1
    remaining = max(0, limit - int(win[1]))
    reset = max(1, math.ceil(max(window - (now - win[0]), blocked - now)))
    left = s.budget_left.get(token, int(cfg["daily_budget"]))
    headers = {"x-ratelimit-limit": str(limit), "x-ratelimit-remaining": str(remaining),
               "x-ratelimit-reset": str(reset)}
    refused: Response | None = None
    if cfg["rate_limits"] and (win[1] > limit or now < blocked):
        penalty = float(cfg["penalty_s"])
        if now >= blocked and penalty > 0:
            s.blocked_until[key] = blocked = now + penalty
        wait = str(max(1, math.ceil(max(blocked - now, window - (now - win[0])))))
        headers.update({"x-ratelimit-remaining": "0", "x-ratelimit-reset": wait,
                        "retry-after": wait})
        refused = JSONResponse(error_body("Request over limit"), status_code=429)
    elif cfg["rate_limits"] and left < cost:
        headers["x-ratelimit-remaining"] = str(max(1, remaining))
        refused = JSONResponse(error_body("Daily API token budget exhausted"),
                               status_code=429)
    else:
        left -= cost
        s.budget_left[token] = left
        s.writes_today[token] = s.writes_today.get(token, 0) + int(write)
    headers["x-daily-requests-left"] = str(max(0, DAILY_WRITES - s.writes_today.get(token, 0)))
    if refused is not None:
        n = s.ignored_429.get(token, 0) + 1
        s.ignored_429[token] = n
        after = int(cfg["cloudflare_after"])
        if after and n > after:
            refused = HTMLResponse(CLOUDFLARE_HTML, status_code=403)
    else:
        s.ignored_429.pop(token, None)
    return headers, refused


def endpoint(kind: str, v1: bool = False, search: bool = False,
             ) -> Callable[[Handler], Handler]:
    cost = COST[kind] * (2 if v1 else 1)

    def deco(fn: Handler) -> Handler:
        async def handler(request: Request) -> Response:
            s = state(request)
            # An API token goes in x-api-token (or ?api_token=); sent as an OAuth
            # Bearer it is not an access token, and Pipedrive refuses it (401).
            token = (request.headers.get("x-api-token")
                     or request.query_params.get("api_token"))
            if token != s.token:
                return JSONResponse(GATEWAY_401, status_code=401)
            if s.settings["maintenance"]:
                return JSONResponse(error_body("Service is under maintenance"),
                                    status_code=503, headers={"retry-after": "60"})
            headers, refused = limiter(s, token, cost, search,
                                       write=request.method in ("POST", "PUT", "PATCH"))
            if refused is not None:
                refused.headers.update(headers)
                return refused
            request.state.ratelimit_headers = headers  # for api_error, on a refusal
            response = await fn(request)
            response.headers.update(headers)
            return response

        return handler

    return deco


async def api_error(request: Request, exc: Exception) -> Response:
    """An `ApiError` in Pipedrive's envelope, with the rate-limit headers of the call."""
    assert isinstance(exc, ApiError)
    response = JSONResponse(error_body(exc.message), status_code=exc.status)
    response.headers.update(getattr(request.state, "ratelimit_headers", {}))
    return response


# -- persons ---------------------------------------------------------------------------
def live_person(s: PipedriveState, pid: Any) -> dict[str, Any]:
    try:
        p = s.persons.get(int(pid))
    except (TypeError, ValueError):
        p = None
    if p is None or p["is_deleted"]:
        raise not_found("Person")
    return p


def v2_person(s: PipedriveState, p: dict[str, Any], include: set[str]) -> dict[str, Any]:
    out = s.public_v2(p)
    if "marketing_status" in include:
        out["marketing_status"] = p["marketing_status"]
    if "doi_status" in include:
        out["doi_status"] = None
    pid = p["id"]
    counters = {"open_deals_count": ("deals", None), "activities_count": ("activities", None),
                "notes_count": ("notes", None), "files_count": ("files", None),
                "email_messages_count": ("mails", None)}
    for field, (rel, _) in counters.items():
        if field in include:
            out[field] = len(s.rel[rel].get(pid, ()))
    return out


def includes(request: Request) -> set[str]:
    raw = request.query_params.get("include_fields", "")
    return {x.strip() for x in raw.split(",") if x.strip()}


@endpoint("list")
async def persons_list(request: Request) -> Response:
    s = state(request)
    inc = includes(request)
    sort_by = request.query_params.get("sort_by", "id")
    direction = request.query_params.get("sort_direction", "asc")
    if sort_by not in ("id", "update_time", "add_time"):
        raise ApiError(400, "Parameter 'sort_by' must be one of id, update_time, add_time")
    if direction not in ("asc", "desc"):
        raise ApiError(400, "Parameter 'sort_direction' must be asc or desc")
    since, until = q_time(request, "updated_since"), q_time(request, "updated_until")
    owner_id, org_id = q_int(request, "owner_id"), q_int(request, "org_id")
    deal_id = q_int(request, "deal_id")
    deal_person = s.deals[deal_id]["person_id"] if deal_id in s.deals else None
    ids_raw = request.query_params.get("ids")
    wanted: set[int] | None = None
    if ids_raw:
        try:
            wanted = {int(x) for x in ids_raw.split(",") if x.strip()}
        except ValueError:
            raise ApiError(400, "Parameter 'ids' must be integers") from None
        if len(wanted) > 100:
            raise ApiError(400, "Parameter 'ids' accepts at most 100 ids")
    limit = v2_limit(request)
    after = decode_cursor(request.query_params.get("cursor"))
    if after is not None and not (
            (sort_by == "id" and _is_int(after))
            or (sort_by != "id" and isinstance(after, tuple) and len(after) == 2
                and isinstance(after[0], str) and _is_int(after[1]))):
        raise ApiError(400, "Invalid cursor")

    def keep(p: dict[str, Any]) -> bool:
        if p["is_deleted"]:
            return False
        if wanted is not None and p["id"] not in wanted:
            return False
        if since and p["update_time"] < since:
            return False
        if until and p["update_time"] >= until:
            return False
        if owner_id is not None and p["owner_id"] != owner_id:
            return False
        if org_id is not None and p["org_id"] != org_id:
            return False
        return deal_id is None or p["id"] == deal_person

    keys: list[Any]
    if wanted is not None:
        keys = sorted(i for i in wanted if i in s.persons)
        if sort_by != "id":
            keys = sorted((s.persons[i][sort_by], i) for i in keys)
    elif sort_by == "id":
        keys = s.person_ids
    else:
        keys = s.sorted_keys(sort_by)
    if direction == "asc":
        if after is not None:
            pos = bisect.bisect_right(keys, after)
        elif since and sort_by == "update_time" and wanted is None:
            pos = bisect.bisect_left(keys, (since, 0))
        else:
            pos = 0
        step, end = 1, len(keys)
    else:
        pos = (bisect.bisect_left(keys, after) - 1) if after is not None else len(keys) - 1
        step, end = -1, -1
    data: list[dict[str, Any]] = []
    last: Any = None
    more = False
    while pos != end:
        k = keys[pos]
        pid = k if sort_by == "id" else k[1]
        p = s.persons[pid]
        if keep(p):
            if len(data) == limit:
                more = True
                break
            if inc:
                data.append(v2_person(s, p, inc))
            else:  # pre-serialised: a 500-person page is a join, not a dumps
                data.append(s.person_json(p))
            last = k
        elif (direction == "asc" and until and sort_by == "update_time"
              and p["update_time"] >= until):
            break
        pos += step
    cursor = encode_cursor(last) if more else None
    if inc:
        return ok(data, {"next_cursor": cursor})
    body = (f'{{"success":true,"data":[{",".join(data)}],'
            f'"additional_data":{{"next_cursor":{json.dumps(cursor)}}}}}')
    return Response(body, media_type="application/json")


@endpoint("get")
async def person_get(request: Request) -> Response:
    s = state(request)
    p = live_person(s, request.path_params["id"])
    return ok(v2_person(s, p, includes(request)))


@endpoint("write")
async def person_create(request: Request) -> Response:
    s = state(request)
    body = validate_person(await json_body(request), creating=True)
    p = s.create_person(body)
    return ok(v2_person(s, p, {"marketing_status"}))


@endpoint("write")
async def person_patch(request: Request) -> Response:
    s = state(request)
    p = live_person(s, request.path_params["id"])
    body = validate_person(await json_body(request), creating=False)
    s.update_person(p, body)
    return ok(v2_person(s, p, {"marketing_status"}))


@endpoint("delete")
async def person_delete(request: Request) -> Response:
    s = state(request)
    p = live_person(s, request.path_params["id"])
    s.delete_person(p)
    return ok({"id": p["id"]})


@endpoint("search", search=True)
async def persons_search(request: Request) -> Response:
    s = state(request)
    term = (request.query_params.get("term") or "").strip()
    exact = request.query_params.get("exact_match", "false").lower() == "true"
    if len(term) < (1 if exact else 2):
        raise ApiError(400, "Search term must be at least 2 characters long"
                       if not exact else "Search term must be given")
    fields_raw = request.query_params.get("fields") or "name,email,phone,notes,custom_fields"
    fields = {f.strip() for f in fields_raw.split(",")}
    bad = fields - {"name", "email", "phone", "notes", "custom_fields"}
    if bad:
        raise ApiError(400, f"Invalid fields: {sorted(bad)}")
    org_filter = q_int(request, "organization_id")
    low = term.lower()
    tdig = digits(term)
    scored: dict[int, float] = {}

    def hit(pid: int, score: float) -> None:
        if score > scored.get(pid, 0):
            scored[pid] = score

    if exact:
        if "email" in fields:
            for pid in s.by_email.get(low, ()):
                hit(pid, 1.0)
        if "phone" in fields and tdig:
            for pid in s.by_phone.get(tdig, ()):
                hit(pid, 1.0)
        if "name" in fields:
            for p in s.persons.values():
                if p["name"].lower() == low:
                    hit(p["id"], 1.0)
    else:
        for p in s.persons.values():
            if "name" in fields and low in p["name"].lower():
                hit(p["id"], 0.5 + 0.5 * len(low) / max(1, len(p["name"])))
            if "email" in fields:
                for e in p["emails"]:
                    v = e["value"].lower()
                    if low in v:
                        hit(p["id"], 0.5 + 0.5 * len(low) / len(v))
            if "phone" in fields and tdig and len(tdig) >= 2:
                for ph in p["phones"]:
                    d = digits(ph["value"])
                    if tdig in d:
                        hit(p["id"], 0.5 + 0.5 * len(tdig) / max(1, len(d)))
    ranked = []
    now = time.monotonic()
    for pid, score in scored.items():
        p = s.persons[pid]
        if p["is_deleted"] or p.get("_indexed_at", 0) > now:  # optional index lag
            continue
        if org_filter is not None and p["org_id"] != org_filter:
            continue
        ranked.append((-round(score, 4), pid))
    ranked.sort()
    limit = v2_limit(request)
    offset = decode_cursor(request.query_params.get("cursor")) or 0
    page = ranked[offset:offset + limit]
    items = []
    for neg, pid in page:
        p = s.persons[pid]
        org = s.orgs.get(p["org_id"]) if p["org_id"] else None
        items.append({"result_score": -neg, "item": {
            "id": pid, "type": "person", "name": p["name"],
            "phones": [x["value"] for x in p["phones"]],
            "emails": [x["value"] for x in p["emails"]],
            "visible_to": p["visible_to"], "owner": {"id": p["owner_id"]},
            "organization": {"id": org["id"], "name": org["name"],
                             "address": org["address"]["value"]} if org else None,
            "custom_fields": [], "notes": []}})
    nxt = encode_cursor(offset + limit) if offset + limit < len(ranked) else None
    return ok({"items": items}, {"next_cursor": nxt})


# The standard person fields a field list starts with (the Contact Sync ones included).
STANDARD_PERSON_FIELDS = (
    ("name", "Name", "varchar"), ("emails", "Email", "varchar"),
    ("phones", "Phone", "phone"), ("org_id", "Organization", "org"),
    ("owner_id", "Owner", "user"), ("postal_address", "Postal address", "address"),
    ("birthday", "Birthday", "date"), ("job_title", "Job title", "varchar"),
    ("notes", "Notes", "text"), ("im", "Instant messenger", "varchar"),
)


def person_fields() -> list[dict[str, Any]]:
    """The company's person fields in v2 shape: `field_code` is the key a person's
    `custom_fields` uses (a 40-character hash for a custom field). The person labels
    are the options of the `label_ids` field, as Pipedrive lists them."""
    fields = [(code, name, kind, False) for code, name, kind in STANDARD_PERSON_FIELDS]
    fields += [(code, name, kind, True) for code, (name, kind) in PERSON_FIELDS.items()]
    out = [{"id": i, "field_code": code, "field_name": name, "field_type": kind,
            "is_custom_field": custom, "options": None}
           for i, (code, name, kind, custom) in enumerate(fields, start=1)]
    out.append({"id": len(out) + 1, "field_code": "label_ids", "field_name": "Labels",
                "field_type": "set", "is_custom_field": False,
                "options": [{"id": i, "label": label, "color": color}
                            for i, (label, color) in PERSON_LABELS.items()]})
    return out


@endpoint("list")
async def person_fields_list(request: Request) -> Response:
    fields = {f["id"]: f for f in person_fields()}
    data, cursor = page_by_id(request, sorted(fields), fields.get)
    return ok(data, {"next_cursor": cursor})


# -- organizations, deals, activities (v2) ---------------------------------------------
def v2_list(table_name: str, rel: str | None, live: Callable[[dict], bool],
            ) -> Handler:
    @endpoint("list")
    async def handler(request: Request) -> Response:
        s = state(request)
        table: dict[Any, dict] = getattr(s, table_name)  # reset() swaps the dicts
        person_id = q_int(request, "person_id") if rel else None
        org_id = q_int(request, "org_id")
        since = q_time(request, "updated_since")
        ids = sorted(s.rel[rel].get(person_id, [])) if rel and person_id is not None \
            else list(table.keys())

        def pick(i: Any) -> dict | None:
            r = table.get(i)
            if r is None or not live(r):
                return None
            if org_id is not None and r.get("org_id") != org_id:
                return None
            if since and r["update_time"] < since:
                return None
            if person_id is not None and r.get("person_id") != person_id:
                return None
            return r

        data, cursor = page_by_id(request, ids, pick)
        return ok(data, {"next_cursor": cursor})

    return handler


def v2_one(table_name: str, what: str, live: Callable[[dict], bool]) -> Handler:
    def get(request: Request) -> dict:
        s = state(request)
        table: dict[Any, dict] = getattr(s, table_name)
        r = table.get(q_path_int(request))
        if r is None or not live(r):
            raise not_found(what)
        return r

    @endpoint("get")
    async def one(request: Request) -> Response:
        return ok(get(request))

    @endpoint("write")
    async def patch(request: Request) -> Response:
        s = state(request)
        r = get(request)
        body = await json_body(request)
        if not isinstance(body, dict):
            raise ApiError(400, "Request body must be a JSON object")
        for key, value in body.items():
            if key in ("id", "add_time", "update_time", "is_deleted"):
                raise ApiError(400, f"'{key}' cannot be set")
            if key.endswith("_id") and not (value is None or _is_int(value)):
                raise ApiError(400, f"'{key}' must be an integer")
            if key == "done" and not isinstance(value, bool):
                raise ApiError(400, "'done' must be a boolean")
            if key in ("participants", "attendees"):
                _check_people_list(key, value)
        for key, value in body.items():
            old_pid = r.get("person_id")
            r[key] = value
            if key == "person_id" and rel_name.get(what) and old_pid != value:
                lst = s.rel[rel_name[what]]
                if old_pid in lst and r["id"] in lst[old_pid]:
                    lst[old_pid].remove(r["id"])
                if value is not None:
                    lst.setdefault(value, []).append(r["id"])
        r["update_time"] = now_iso()
        return ok(r)

    @endpoint("delete")
    async def delete(request: Request) -> Response:
        r = get(request)
        r["is_deleted"] = True
        r["update_time"] = now_iso()
        return ok({"id": r["id"]})

    async def dispatch(request: Request) -> Response:
        method = request.method
        if method in ("GET", "HEAD"):  # HEAD is GET without a body: it never writes
            return await one(request)
        if method == "PATCH":
            return await patch(request)
        return await delete(request)

    return dispatch


rel_name = {"Deal": "deals", "Activity": "activities"}


def _check_people_list(key: str, value: Any) -> None:
    """An activity's `participants` ({person_id, primary}) or `attendees` ({email, name,
    person_id, ...}): arrays of objects, ids as integers, `primary` a boolean."""
    if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
        raise ApiError(400, f"'{key}' must be an array of objects")
    for item in value:
        if key == "participants" and not (_is_int(item.get("person_id"))
                                          and isinstance(item.get("primary", False), bool)):
            raise ApiError(400, "'participants' items need an integer 'person_id'")
        if key == "attendees" and not isinstance(item.get("email"), str):
            raise ApiError(400, "'attendees' items need a string 'email'")
        if item.get("person_id") is not None and not _is_int(item["person_id"]):
            raise ApiError(400, f"'{key}.person_id' must be an integer")


def alive(r: dict) -> bool:
    return not r.get("is_deleted") and not r.get("is_archived")


# Since 2025-07-15 the deal list leaves archived deals out and /deals/archived lists
# them; one archived deal is still read, changed and deleted by its id.
def archived(r: dict) -> bool:
    return not r.get("is_deleted") and bool(r.get("is_archived"))


def not_deleted(r: dict) -> bool:
    return not r.get("is_deleted")


# -- v1 ---------------------------------------------------------------------------------
def v1_person(s: PipedriveState, p: dict[str, Any]) -> dict[str, Any]:
    org = s.orgs.get(p["org_id"]) if p["org_id"] else None
    return {
        "id": p["id"], "company_id": 1,
        "owner_id": {"id": p["owner_id"], "name": "Sandbox Admin",
                     "email": "admin@example.com", "value": p["owner_id"]},
        "org_id": {"value": org["id"], "name": org["name"], "people_count": 1,
                   "owner_id": 1, "address": org["address"]["value"],
                   "active_flag": True} if org else None,
        "name": p["name"], "first_name": p["first_name"], "last_name": p["last_name"],
        "email": p["emails"], "phone": p["phones"], "active_flag": not p["is_deleted"],
        "visible_to": str(p["visible_to"]), "add_time": v1_time(p["add_time"]),
        "update_time": v1_time(p["update_time"]), "delete_time": v1_time(p["delete_time"]),
        "org_name": org["name"] if org else None, "owner_name": "Sandbox Admin",
        "cc_email": "sandbox@pipedrivemail.example.com", "label": None,
        "first_char": p["name"][:1].lower(), "marketing_status": p["marketing_status"],
        "open_deals_count": len(s.rel["deals"].get(p["id"], ())),
        "notes_count": len(s.rel["notes"].get(p["id"], ())),
        "files_count": len(s.rel["files"].get(p["id"], ())),
        "email_messages_count": len(s.rel["mails"].get(p["id"], ())),
    }


@endpoint("list", v1=True)
async def v1_persons(request: Request) -> Response:
    s = state(request)
    # O(N) list per page is acceptable for a deprecated endpoint.
    live = [s.persons[i] for i in s.person_ids if not s.persons[i]["is_deleted"]]
    page, pagination = v1_page(request, live)
    return ok([v1_person(s, p) for p in page], {"pagination": pagination})


@endpoint("get", v1=True)
async def v1_person_get(request: Request) -> Response:
    s = state(request)
    return ok(v1_person(s, live_person(s, request.path_params["id"])))


@endpoint("write", v1=True)
async def v1_person_put(request: Request) -> Response:
    s = state(request)
    p = live_person(s, request.path_params["id"])
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    clean: dict[str, Any] = {}
    if "name" in body:
        clean["name"] = str(body["name"])
    for v1_key, v2_key in (("email", "emails"), ("phone", "phones")):
        if v1_key in body:
            val = body[v1_key]
            if isinstance(val, str):
                val = [{"value": val}] if val else []
            clean[v2_key] = _check_items(v1_key, val)
    if "marketing_status" in body:
        if body["marketing_status"] not in MARKETING:
            raise ApiError(400, "Invalid marketing_status")
        clean["marketing_status"] = body["marketing_status"]
    s.update_person(p, clean)
    return ok(v1_person(s, p))


@endpoint("delete", v1=True)
async def v1_person_delete(request: Request) -> Response:
    s = state(request)
    p = live_person(s, request.path_params["id"])
    s.delete_person(p)
    return ok({"id": p["id"]})


@endpoint("write", v1=True)
async def v1_merge(request: Request) -> Response:
    s = state(request)
    absorbed = live_person(s, request.path_params["id"])
    body = await json_body(request)
    other = body.get("merge_with_id") if isinstance(body, dict) else None
    if not _is_int(other):
        raise ApiError(400, "merge_with_id must be given")
    if other == absorbed["id"]:
        raise ApiError(400, "Cannot merge a person with itself")
    survivor = live_person(s, other)
    s.merge(absorbed, survivor)
    return ok(v1_person(s, survivor))


def person_sub(rel: str, obj: str, table_name: str, max_limit: int = 500) -> Handler:
    @endpoint("list", v1=True)
    async def handler(request: Request) -> Response:
        s = state(request)
        table: dict[Any, dict] = getattr(s, table_name)
        p = live_person(s, request.path_params["id"])
        recs = [table[i] for i in s.rel[rel].get(p["id"], []) if i in table
                and table[i].get("active_flag", True)]
        page, pagination = v1_page(request, recs, max_limit)
        if obj == "file":
            data: list[Any] = [{**r, "add_time": v1_time(r["add_time"]),
                                "update_time": v1_time(r["update_time"])} for r in page]
        else:
            data = [{"object": obj, "timestamp": v1_time(r["message_time"]),
                     "data": {**r, "message_time": v1_time(r["message_time"])}}
                    for r in page]
        return ok(data or None, {"pagination": pagination})

    return handler


@endpoint("list", v1=True)
async def v1_flow(request: Request) -> Response:
    s = state(request)
    p = live_person(s, request.path_params["id"])
    pid = p["id"]
    items: list[dict[str, Any]] = list(s.flow.get(pid, []))
    for rel, obj, table, tkey in (("notes", "note", s.notes, "add_time"),
                                  ("files", "file", s.files, "add_time"),
                                  ("mails", "mailMessage", s.mails, "message_time"),
                                  ("activities", "activity", s.activities, "add_time")):
        for i in s.rel[rel].get(pid, []):
            r = table.get(i)
            if r is None or r.get("is_deleted") or not r.get("active_flag", True):
                continue
            items.append({"object": obj, "timestamp": v1_time(r[tkey]), "data": r})
    wanted = request.query_params.get("items")
    if wanted:
        allowed = set(wanted.split(","))
        items = [i for i in items if i["object"] in allowed]
    items.sort(key=lambda i: i["timestamp"] or "", reverse=True)
    page, pagination = v1_page(request, items)
    return ok(page, {"pagination": pagination})


def v1_note(n: dict[str, Any]) -> dict[str, Any]:
    return {**n, "add_time": v1_time(n["add_time"]), "update_time": v1_time(n["update_time"])}


@endpoint("list", v1=True)
async def v1_notes(request: Request) -> Response:
    s = state(request)
    person_id = q_int(request, "person_id")
    since = q_time(request, "updated_since")
    ids = s.rel["notes"].get(person_id, []) if person_id is not None else s.notes.keys()
    recs = [s.notes[i] for i in ids if i in s.notes and s.notes[i]["active_flag"]
            and (person_id is None or s.notes[i]["person_id"] == person_id)
            and (not since or s.notes[i]["update_time"] >= since)]
    page, pagination = v1_page(request, recs)
    return ok([v1_note(n) for n in page], {"pagination": pagination})


def note_of(request: Request) -> dict[str, Any]:
    s = state(request)
    n = s.notes.get(q_path_int(request))
    if n is None or not n["active_flag"]:
        raise not_found("Note")
    return n


@endpoint("get", v1=True)
async def v1_note_get(request: Request) -> Response:
    return ok(v1_note(note_of(request)))


@endpoint("write", v1=True)
async def v1_note_put(request: Request) -> Response:
    n = note_of(request)
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("content", ""), str):
        raise ApiError(400, "content must be a string")
    if "content" in body:
        n["content"] = body["content"]
    n["update_time"] = now_iso()
    return ok(v1_note(n))


@endpoint("delete", v1=True)
async def v1_note_delete(request: Request) -> Response:
    n = note_of(request)
    n["active_flag"] = False
    n["update_time"] = now_iso()
    return ok(True)


ARCHIVED_STATUS = {"not_archived": (False,), "archived": (True,), "all": (False, True)}


def leads_list(default_status: str) -> Handler:
    """`/v1/leads` lists the leads that are not archived; `/v1/leads/archived` lists the
    archived ones (checked 2026-12). `archived_status` picks either or all on the list."""
    @endpoint("list", v1=True)
    async def handler(request: Request) -> Response:
        s = state(request)
        status = request.query_params.get("archived_status") or default_status
        if status not in ARCHIVED_STATUS:
            raise ApiError(400, "archived_status must be archived, not_archived or all")
        shown = ARCHIVED_STATUS[status]
        person_id = q_int(request, "person_id")
        since = q_time(request, "updated_since")
        ids = s.rel["leads"].get(person_id, []) if person_id is not None else s.leads.keys()
        recs = [s.leads[i] for i in ids if i in s.leads
                and bool(s.leads[i]["is_archived"]) in shown
                and (person_id is None or s.leads[i]["person_id"] == person_id)
                and (not since or s.leads[i]["update_time"] >= since)]
        page, pagination = v1_page(request, recs)
        return ok(page, {"pagination": pagination})

    return handler


def lead_of(request: Request) -> dict[str, Any]:
    s = state(request)
    lead = s.leads.get(request.path_params["id"])
    if lead is None:
        raise not_found("Lead")
    return lead


@endpoint("get", v1=True)
async def v1_lead_get(request: Request) -> Response:
    return ok(lead_of(request))


@endpoint("write", v1=True)
async def v1_lead_patch(request: Request) -> Response:
    lead = lead_of(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    if "is_archived" in body and not isinstance(body["is_archived"], bool):
        raise ApiError(400, "'is_archived' must be a boolean")
    if "person_id" in body and not (body["person_id"] is None or _is_int(body["person_id"])):
        raise ApiError(400, "'person_id' must be an integer")
    for key in ("title", "person_id", "is_archived"):
        if key in body:
            lead[key] = body[key]
    lead["update_time"] = now_iso()
    return ok(lead)


@endpoint("delete", v1=True)
async def v1_lead_delete(request: Request) -> Response:
    s = state(request)
    lead = lead_of(request)
    del s.leads[lead["id"]]
    lst = s.rel["leads"].get(lead["person_id"], [])
    if lead["id"] in lst:
        lst.remove(lead["id"])
    return ok({"id": lead["id"]})


@endpoint("delete", v1=True)
async def v1_file_delete(request: Request) -> Response:
    s = state(request)
    f = s.files.get(q_path_int(request))
    if f is None or not f["active_flag"]:
        raise not_found("File")
    f["active_flag"] = False
    f["update_time"] = now_iso()
    return ok({"id": f["id"]})


@endpoint("list", v1=True)
async def v1_recents(request: Request) -> Response:
    s = state(request)
    raw = request.query_params.get("since_timestamp")
    if not raw:
        raise ApiError(400, "since_timestamp must be given")
    try:
        asked = datetime.fromisoformat(raw.replace(" ", "T")).replace(tzinfo=UTC)
    except ValueError:
        raise ApiError(400, "since_timestamp must be YYYY-MM-DD HH:MM:SS") from None
    # Since 2024-12-01 recents hold one month of history: older is capped (2026-12).
    since = iso(max(asked, datetime.now(UTC) - RECENTS_HISTORY))
    kinds = (request.query_params.get("items") or "person").split(",")
    tables = {"person": (s.persons, lambda p: v1_person(s, p)), "organization": (s.orgs, None),
              "deal": (s.deals, None), "activity": (s.activities, None),
              "note": (s.notes, v1_note), "file": (s.files, None)}
    rows: list[tuple[str, str, Any, dict]] = []
    for kind in kinds:
        if kind not in tables:
            raise ApiError(400, f"Unknown items type '{kind}'")
        table, render = tables[kind]
        for r in table.values():
            if r["update_time"] >= since:
                rows.append((r["update_time"], kind, r["id"], render(r) if render else r))
    rows.sort(key=lambda x: (x[0], x[1], x[2]))
    page, pagination = v1_page(request, rows)
    data = [{"item": kind, "id": rid, "data": rec} for _, kind, rid, rec in page]
    return ok(data, {"since_timestamp": v1_time(since),
                     "last_timestamp_on_page": v1_time(page[-1][0]) if page else None,
                     "pagination": pagination})


def q_path_int(request: Request) -> int | None:
    try:
        return int(request.path_params["id"])
    except (TypeError, ValueError):
        return None


async def gateway_401(request: Request, exc: Exception) -> Response:
    """Unknown path or wrong method: Pipedrive's gateway answers 401 with this body."""
    return JSONResponse(GATEWAY_401, status_code=401)


routes = [
    Route("/api/v2/persons", persons_list, methods=["GET"]),
    Route("/api/v2/persons", person_create, methods=["POST"]),
    Route("/api/v2/persons/search", persons_search, methods=["GET"]),
    Route("/api/v2/persons/{id}", person_get, methods=["GET"]),
    Route("/api/v2/persons/{id}", person_patch, methods=["PATCH"]),
    Route("/api/v2/persons/{id}", person_delete, methods=["DELETE"]),
    Route("/api/v2/personFields", person_fields_list, methods=["GET"]),
    Route("/api/v2/organizations", v2_list("orgs", None, alive), methods=["GET"]),
    Route("/api/v2/organizations/{id}", v2_one("orgs", "Organization", alive),
          methods=["GET", "PATCH", "DELETE"]),
    Route("/api/v2/deals", v2_list("deals", "deals", alive), methods=["GET"]),
    Route("/api/v2/deals/archived", v2_list("deals", "deals", archived), methods=["GET"]),
    Route("/api/v2/deals/{id}", v2_one("deals", "Deal", not_deleted),
          methods=["GET", "PATCH", "DELETE"]),
    Route("/api/v2/activities", v2_list("activities", "activities", alive),
          methods=["GET"]),
    Route("/api/v2/activities/{id}", v2_one("activities", "Activity", alive),
          methods=["GET", "PATCH", "DELETE"]),
    Route("/v1/persons", v1_persons, methods=["GET"]),
    Route("/v1/persons/{id}", v1_person_get, methods=["GET"]),
    Route("/v1/persons/{id}", v1_person_put, methods=["PUT"]),
    Route("/v1/persons/{id}", v1_person_delete, methods=["DELETE"]),
    Route("/v1/persons/{id}/merge", v1_merge, methods=["PUT"]),
    Route("/v1/persons/{id}/mailMessages", person_sub("mails", "mailMessage", "mails"),
          methods=["GET"]),
    Route("/v1/persons/{id}/files", person_sub("files", "file", "files", 100),
          methods=["GET"]),
    Route("/v1/persons/{id}/flow", v1_flow, methods=["GET"]),
    Route("/v1/notes", v1_notes, methods=["GET"]),
    Route("/v1/notes/{id}", v1_note_get, methods=["GET"]),
    Route("/v1/notes/{id}", v1_note_put, methods=["PUT"]),
    Route("/v1/notes/{id}", v1_note_delete, methods=["DELETE"]),
    Route("/v1/leads", leads_list("not_archived"), methods=["GET"]),
    Route("/v1/leads/archived", leads_list("archived"), methods=["GET"]),
    Route("/v1/leads/{id}", v1_lead_get, methods=["GET"]),
    Route("/v1/leads/{id}", v1_lead_patch, methods=["PATCH"]),
    Route("/v1/leads/{id}", v1_lead_delete, methods=["DELETE"]),
    Route("/v1/files/{id}", v1_file_delete, methods=["DELETE"]),
    Route("/v1/recents", v1_recents, methods=["GET"]),
]
