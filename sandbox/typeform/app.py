"""Typeform's Create and Responses API routes (reference §C), over `TypeformState`.

Every route first authenticates (Bearer token, case-insensitive scheme as the JS
SDK sends `bearer`), then counts against the account's rate limit (2 req/s by
default), then settles pending asynchronous deletions, so what a client sees is
always consistent with the configured delays.
"""

from __future__ import annotations

import bisect
import collections
import json
import math
import threading
import time
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.faults import make_vendor_app
from sandbox.people import Person
from sandbox.typeform.state import FormStore, TypeformState, iso

HELP = "https://www.typeform.com/developers/get-started/"


class ApiError(Exception):
    """A Typeform error body: {code, description, details?, help?}."""

    def __init__(self, status: int, code: str, description: str,
                 details: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description
        self.details = details
        self.headers = headers

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"code": self.code, "description": self.description}
        if self.details:
            body["details"] = self.details
        body["help"] = HELP
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def bad_param(name: str, description: str) -> ApiError:
    """400 with a `details` entry naming the query parameter, like Typeform does."""
    return ApiError(400, "VALIDATION_ERROR", "The request is not valid",
                    [{"code": "INVALID_PARAMETER", "description": description,
                      "field": name, "in": "query"}])


class RateLimiter:
    """At most N requests in any sliding second, per account (Typeform: N = 2)."""

    def __init__(self) -> None:
        self.hits: dict[str, collections.deque[float]] = {}
        self.lock = threading.Lock()

    def check(self, account: str, limit: float | None) -> None:
        if not limit:
            return
        now = time.monotonic()
        with self.lock:
            q = self.hits.setdefault(account, collections.deque())
            while q and q[0] <= now - 1.0:
                q.popleft()
            if len(q) >= limit:
                wait = max(1, math.ceil(1.0 - (now - q[0])))
                raise ApiError(429, "RATE_LIMITED",
                               "You have exceeded the rate limit of "
                               f"{limit:g} requests per second", headers={"Retry-After": str(wait)})
            q.append(now)


def _int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_param(name, f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise bad_param(name, f"{name} must be between {lo} and {hi}")
    return value


def parse_time(name: str, raw: str) -> int:
    """Epoch seconds or ISO 8601 (`2020-03-20T14:00:59`, optional Z/offset), as UTC."""
    raw = raw.strip()
    if raw.lstrip("-").isdigit():
        return int(raw)
    try:
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise bad_param(name, f"{name} must be a unix timestamp or ISO 8601 date") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def _csv(request: Request, name: str) -> list[str]:
    raw = request.query_params.get(name) or ""
    return [x.strip() for x in raw.split(",") if x.strip()]


class TypeformApi:
    """Route handlers bound to one state."""

    def __init__(self, state: TypeformState) -> None:
        self.state = state
        self.limiter = RateLimiter()

    # --- common ----------------------------------------------------------------------

    def _auth(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise ApiError(401, "AUTHENTICATION_FAILED",
                           "Authentication credentials not found on the Request Headers")
        if scheme.lower() != "bearer" or token.strip() != self.state.token:
            raise ApiError(401, "AUTHENTICATION_FAILED",
                           "Authentication credentials are not valid")
        self.limiter.check(self.state.account_id, self.state.settings["rate_limit_per_second"])
        self.state.settle()

    def _form(self, request: Request) -> FormStore:
        form_id = request.path_params["form_id"]
        form = self.state.forms.get(form_id)
        if form is None:
            raise ApiError(404, "FORM_NOT_FOUND", f"Non-existing form with uid {form_id}")
        return form

    def _base(self, request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def wrap(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                self._auth(request)
                return await handler(request)
            except ApiError as err:
                return err.response()
        return endpoint

    # --- account ---------------------------------------------------------------------

    async def me(self, request: Request) -> Response:
        return JSONResponse({"alias": "GDPR Hub Oy", "email": "admin@example.fi",
                             "language": "fi", "account_id": self.state.account_id,
                             "user_id": self.state.account_id})

    def _workspace(self, request: Request) -> dict[str, Any]:
        base = self._base(request)
        wid = self.state.workspace_id
        return {"id": wid, "name": "My workspace", "account_id": self.state.account_id,
                "default": True, "shared": False,
                "forms": {"count": len(self.state.forms),
                          "href": f"{base}/forms?workspace_id={wid}"},
                "self": {"href": f"{base}/workspaces/{wid}"}}

    async def workspaces(self, request: Request) -> Response:
        page = _int_param(request, "page", 1, 1, 1_000_000)
        page_size = _int_param(request, "page_size", 10, 1, 200)
        items = [self._workspace(request)]
        start = (page - 1) * page_size
        return JSONResponse({"total_items": len(items),
                             "page_count": math.ceil(len(items) / page_size),
                             "items": items[start:start + page_size]})

    async def workspace(self, request: Request) -> Response:
        if request.path_params["workspace_id"] != self.state.workspace_id:
            raise ApiError(404, "WORKSPACE_NOT_FOUND", "Workspace not found")
        return JSONResponse(self._workspace(request))

    # --- forms -----------------------------------------------------------------------

    def _form_summary(self, request: Request, form: FormStore) -> dict[str, Any]:
        d = form.definition
        base = self._base(request)
        return {"id": d["id"], "type": "form", "title": d["title"],
                "created_at": iso(d["created"]), "last_updated_at": iso(d["created"]),
                "settings": {"is_public": True},
                "self": {"href": f"{base}/forms/{d['id']}"},
                "theme": {"href": f"{base}/themes/default"},
                "_links": {"display": f"https://gdprhub.typeform.com/to/{d['id']}",
                           "responses": f"{base}/forms/{d['id']}/responses"}}

    async def list_forms(self, request: Request) -> Response:
        page = _int_param(request, "page", 1, 1, 1_000_000)
        page_size = _int_param(request, "page_size", 10, 1, 200)
        search = (request.query_params.get("search") or "").lower()
        ws = request.query_params.get("workspace_id")
        forms = [f for f in (self.state.forms[i] for i in self.state.form_order)
                 if search in f.definition["title"].lower()
                 and (not ws or ws == self.state.workspace_id)]
        if request.query_params.get("order_by") == "desc":
            forms.reverse()
        start = (page - 1) * page_size
        return JSONResponse({"total_items": len(forms),
                             "page_count": math.ceil(len(forms) / page_size),
                             "items": [self._form_summary(request, f)
                                       for f in forms[start:start + page_size]]})

    async def get_form(self, request: Request) -> Response:
        form = self._form(request)
        d = form.definition
        base = self._base(request)
        body = {**self._form_summary(request, form),
                "workspace": {"href": f"{base}/workspaces/{self.state.workspace_id}"},
                "hidden": d["hidden"], "variables": d["variables"], "fields": d["fields"]}
        return JSONResponse(body)

    # --- responses -------------------------------------------------------------------

    async def list_responses(self, request: Request) -> Response:
        form = self._form(request)
        q = request.query_params
        page_size = _int_param(request, "page_size", 25, 1, 1000)
        sort = q.get("sort")
        after, before = q.get("after"), q.get("before")
        if sort and (after or before):
            raise bad_param("sort", "sort cannot be combined with before or after")
        with self.state.lock:
            keys = form.keys
            lo, hi = 0, len(keys)
            if q.get("since"):
                lo = max(lo, bisect.bisect_left(keys, (parse_time("since", q["since"]), "")))
            if q.get("until"):
                hi = min(hi, bisect.bisect_left(keys, (parse_time("until", q["until"]) + 1, "")))
            for name, token in (("after", after), ("before", before)):
                if not token:
                    continue
                pos = form.position_key(token)
                if pos is None:
                    raise bad_param(name, f"{name} is not a token of this form")
                if name == "after":
                    lo = max(lo, bisect.bisect_right(keys, pos))
                else:
                    hi = min(hi, bisect.bisect_left(keys, pos))
            selected = form.responses[lo:hi] if lo < hi else []
        types = set(_csv(request, "response_type"))
        if q.get("completed") == "false":
            types = {"partial", "started"}
        if types and "completed" not in types:
            selected = []  # the sandbox stores completed responses only
        included = set(_csv(request, "included_response_ids"))
        if included:
            selected = [r for r in selected if r.token in included]
        excluded = set(_csv(request, "excluded_response_ids"))
        if excluded:
            selected = [r for r in selected if r.token not in excluded]
        needle = (q.get("query") or "").strip().lower()
        if needle:
            selected = [r for r in selected if needle in r.blob]
        # Order: `after` walks forward (oldest first), `before` and the default walk
        # backwards (newest first); an explicit sort wins when neither is given.
        descending = True
        if after and not before:
            descending = False
        if sort:
            fld, _, direction = sort.partition(",")
            if fld not in ("submitted_at", "landed_at") or direction not in ("", "asc", "desc"):
                raise bad_param("sort", "sort must be <submitted_at|landed_at>,<asc|desc>")
            descending = direction != "asc"
        total = len(selected)
        if descending:
            page = selected[::-1][:page_size] if total > page_size else selected[::-1]
        else:
            page = selected[:page_size]
        body = b"".join([
            b'{"total_items":', str(total).encode(),
            b',"page_count":', str(math.ceil(total / page_size)).encode(),
            b',"items":[', b",".join(r.raw for r in page), b"]}",
        ])
        return Response(body, media_type="application/json")

    async def _ids_from(self, request: Request) -> list[str]:
        ids = _csv(request, "included_response_ids") + _csv(request, "included_tokens")
        raw = await request.body()
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                raise ApiError(400, "VALIDATION_ERROR", "The body is not valid JSON") from None
            if isinstance(body, dict):
                body = (body.get("included_response_ids") or []) + \
                    (body.get("included_tokens") or [])
            if not isinstance(body, list) or not all(isinstance(x, str) for x in body):
                raise ApiError(400, "VALIDATION_ERROR",
                               "The body must be a JSON array of response ids")
            ids += body
        return ids

    async def delete_responses(self, request: Request) -> Response:
        form = self._form(request)
        ids = await self._ids_from(request)
        if not ids:
            raise bad_param("included_response_ids", "included_response_ids is required")
        if len(ids) > 1000:
            raise bad_param("included_response_ids",
                            "included_response_ids accepts at most 1000 ids")
        self.state.register_delete(form.definition["id"], set(ids))
        return Response(status_code=200)

    # --- RTBF ------------------------------------------------------------------------

    def _account(self, request: Request) -> None:
        if request.path_params["account_id"] != self.state.account_id:
            raise ApiError(403, "FORBIDDEN",
                           "You do not have access to this account")

    async def rtbf_delete(self, request: Request) -> Response:
        self._account(request)
        try:
            emails = json.loads(await request.body() or b"null")
        except ValueError:
            emails = None
        if (not isinstance(emails, list) or not emails
                or not all(isinstance(e, str) and "@" in e for e in emails)):
            raise ApiError(400, "VALIDATION_ERROR",
                           "The body must be a non-empty JSON array of e-mail addresses")
        return JSONResponse(self.state.start_rtbf(emails))

    async def rtbf_job(self, request: Request) -> Response:
        self._account(request)
        job = self.state.jobs.get(request.path_params["job_id"])
        if job is None:
            raise ApiError(404, "JOB_NOT_FOUND", "Job not found")
        return JSONResponse({"accountID": self.state.account_id,
                             "status": "Done" if job.done else "Queued",
                             "token": job.job_id})

    def routes(self) -> list[Route]:
        w = self.wrap
        return [
            Route("/me", w(self.me), methods=["GET"]),
            Route("/workspaces", w(self.workspaces), methods=["GET"]),
            Route("/workspaces/{workspace_id}", w(self.workspace), methods=["GET"]),
            Route("/accounts/{account_id}/workspaces", w(self.account_workspaces),
                  methods=["GET"]),
            Route("/forms", w(self.list_forms), methods=["GET"]),
            Route("/forms/{form_id}", w(self.get_form), methods=["GET"]),
            Route("/forms/{form_id}/responses", w(self.list_responses), methods=["GET"]),
            Route("/forms/{form_id}/responses", w(self.delete_responses), methods=["DELETE"]),
            Route("/rtbf/{account_id}/responses", w(self.rtbf_delete), methods=["DELETE"]),
            Route("/rtbf/{account_id}/job/{job_id}", w(self.rtbf_job), methods=["GET"]),
        ]

    async def account_workspaces(self, request: Request) -> Response:
        self._account(request)
        return await self.workspaces(request)


def build_app(people: list[Person], seed: int, settings: dict[str, Any] | None = None
              ) -> Starlette:
    """The Typeform emulator; `settings` knobs are in `state.DEFAULT_SETTINGS`."""
    state = TypeformState(people, seed, settings)
    api = TypeformApi(state)
    app = make_vendor_app(state, api.routes())
    app.state.typeform = state
    return app
