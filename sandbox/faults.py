"""Fault injection, call counting and the `/__sandbox/` inspection API, shared by all vendors.

A vendor emulator plugs in by subclassing `VendorState` and calling `make_vendor_app`:

    class MyState(VendorState):
        name = "typeform"
        def reset(self) -> None: ...                       # back to the seeded state
        def record(self, kind: str, id: str) -> dict | None: ...   # None -> 404
        def find(self, email: str | None, phone: str | None) -> list[dict]: ...
            # -> [{"kind": .., "id": .., "state": ..}], case-insensitive e-mail match
        def fault_response(self, kind: str, headers: Headers) -> Response: ...
            # kind in {"error", "rate_limit", "malformed"}: the vendor's own shape,
            # as the request's headers ask for it (Netvisor: status codes or not)
        def update_settings(self, values: dict) -> dict: ...   # optional; default merges

    def build_app(people, seed, settings) -> Starlette:
        state = MyState(people, seed, settings)
        return make_vendor_app(state, routes)

`make_vendor_app` adds the inspection routes under `/__sandbox/` and wraps the app in
`SandboxMiddleware`, which counts calls per (method, route template, status) and
applies `Faults` deterministically for the seed. `app.state.sandbox` is the `Control`
object (faults, counters, vendor state) so `Sandbox` can set start-up faults.

Why a middleware rather than per-endpoint code: faults and counts must be identical
across vendors and must never leak into `/__sandbox/` calls that tests use to check
effects.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

SANDBOX_PREFIX = "/__sandbox/"


@dataclass
class Faults:
    """Fault mix for one vendor server; rates are shares of requests (0..1)."""

    latency_ms: float = 0
    error_rate: float = 0
    rate_limit_rate: float = 0
    drop_rate: float = 0
    malformed_rate: float = 0
    seed: int = 0
    # The next N writes (POST/PUT/PATCH/DELETE) are applied, then the connection drops
    # before the answer: the vendor did it, the client cannot know.
    lose_answers: int = 0

    def update(self, values: dict[str, Any]) -> None:
        """Apply a partial JSON dict, validating names and types (400 on nonsense)."""
        names = {f.name for f in dataclasses.fields(self)}
        for key, value in values.items():
            if key not in names:
                raise ValueError(f"unknown fault field {key!r}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{key} must be a number")
            if key.endswith("_rate") and not 0 <= value <= 1:
                raise ValueError(f"{key} must be between 0 and 1")
            if key == "lose_answers" and value < 0:
                raise ValueError("lose_answers must be 0 or more")
            setattr(self, key, int(value) if key in ("seed", "lose_answers") else float(value))

    @property
    def any_rate(self) -> bool:
        return bool(self.error_rate or self.rate_limit_rate or self.drop_rate
                    or self.malformed_rate)


class VendorState:
    """Base of every vendor's in-memory state; see the module docstring for the contract."""

    name = "vendor"

    def __init__(self) -> None:
        self.settings: dict[str, Any] = {}

    def reset(self) -> None:
        """Return to the seeded state."""
        raise NotImplementedError

    def record(self, kind: str, id: str) -> dict[str, Any] | None:
        """Current state of a record incl. soft-deleted/tombstoned; None if never/purged."""
        raise NotImplementedError

    def find(self, email: str | None = None, phone: str | None = None) -> list[dict[str, Any]]:
        """Every record holding this e-mail/phone (case-insensitive)."""
        raise NotImplementedError

    def fault_response(self, kind: str, headers: Headers) -> Response:  # noqa: ARG002
        """Vendor-shaped response for an injected fault (error, rate_limit, malformed),
        as the request's ``headers`` ask for it."""
        if kind == "rate_limit":
            return JSONResponse({"error": "rate limited"}, status_code=429)
        if kind == "malformed":
            return Response('{"data": [', media_type="application/json")
        return JSONResponse({"error": "internal error"}, status_code=500)

    def update_settings(self, values: dict[str, Any]) -> dict[str, Any]:
        """Merge vendor knobs; subclasses validate and react (e.g. rebuild limiters)."""
        self.settings.update(values)
        return self.settings


class Control:
    """Run-time control of one vendor server: faults, counters, the vendor state."""

    def __init__(self, state: VendorState, faults: Faults | None = None) -> None:
        self.state = state
        self.faults = faults or Faults()
        self.initial = dataclasses.replace(self.faults)
        self.rng = random.Random(self.faults.seed)
        self.calls: dict[tuple[str, str, int], int] = {}
        self.lock = threading.Lock()

    def set_faults(self, faults: Faults, initial: bool = False) -> None:
        """Replace the fault mix and restart its random stream (determinism per seed).

        `initial=True` marks the start-up mix (e.g. `serve --error-rate`), which
        `/__sandbox/reset` restores."""
        self.faults = faults
        if initial:
            self.initial = dataclasses.replace(faults)
        self.rng = random.Random(faults.seed)

    def count(self, method: str, route: str, status: int) -> None:
        key = (method, route, status)
        with self.lock:
            self.calls[key] = self.calls.get(key, 0) + 1

    def calls_json(self) -> dict[str, Any]:
        with self.lock:
            items = sorted(self.calls.items())
        return {
            "total": sum(c for _, c in items),
            "calls": [{"method": m, "route": r, "status": s, "count": c}
                      for (m, r, s), c in items],
        }


def _route_template(routes: Sequence[BaseRoute], scope: Scope, prefix: str = "") -> str | None:
    for route in routes:
        match, child = route.matches(scope)
        if match == Match.NONE:
            continue
        if isinstance(route, Mount):
            sub = dict(scope)
            sub.update(child)
            inner = _route_template(route.routes, sub, prefix + route.path)
            return inner or prefix + route.path
        path = getattr(route, "path", None)
        if path is not None:
            return prefix + path
    return None


class _Drop(Exception):
    """Raised after starting a response so uvicorn closes the connection mid-reply."""


class SandboxMiddleware:
    """Counts calls and injects faults; `/__sandbox/` requests pass through untouched."""

    def __init__(self, app: ASGIApp, control: Control, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.control = control
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(SANDBOX_PREFIX):
            await self.app(scope, receive, send)
            return
        control = self.control
        faults = control.faults
        method = scope["method"]
        route = _route_template(self.routes, scope) or "<unmatched>"
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.any_rate:
            with control.lock:
                r = control.rng.random()
            edge = faults.drop_rate
            if r < edge:
                control.count(method, route, 0)
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-length", b"1000")]})
                raise _Drop("sandbox: injected connection drop")
            kind = None
            for rate, name in ((faults.error_rate, "error"),
                               (faults.rate_limit_rate, "rate_limit"),
                               (faults.malformed_rate, "malformed")):
                edge += rate
                if r < edge:
                    kind = name
                    break
            if kind is not None:
                response = control.state.fault_response(kind, Headers(scope=scope))
                control.count(method, route, response.status_code)
                await response(scope, receive, send)
                return
        if faults.lose_answers and method in _WRITES:
            with control.lock:
                lose = faults.lose_answers > 0
                faults.lose_answers -= lose
            if lose:
                await self._apply_and_lose(scope, receive, send, method, route)
                return
        status_holder = [0]

        async def counting_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            control.count(method, route, status_holder[0] or 500)


    async def _apply_and_lose(self, scope: Scope, receive: Receive, send: Send, method: str,
                              route: str) -> None:
        status_holder = [0]

        async def swallow(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]

        await self.app(scope, receive, swallow)
        self.control.count(method, route, status_holder[0] or 500)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"1000")]})
        raise _Drop("sandbox: the answer of an applied write was lost")


_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _inspection_routes(control: Control) -> list[Route]:
    async def record(request: Request) -> Response:
        rec = control.state.record(request.path_params["kind"], request.path_params["id"])
        if rec is None:
            return JSONResponse({"error": "no such record"}, status_code=404)
        return JSONResponse(rec)

    async def find(request: Request) -> Response:
        email = request.query_params.get("email")
        phone = request.query_params.get("phone")
        if not email and not phone:
            return JSONResponse({"error": "give email= or phone="}, status_code=400)
        return JSONResponse({"records": control.state.find(email=email, phone=phone)})

    async def reset(request: Request) -> Response:
        control.state.reset()
        with control.lock:
            control.calls.clear()
        control.set_faults(dataclasses.replace(control.initial))
        return JSONResponse({"ok": True})

    async def calls(request: Request) -> Response:
        if request.method == "DELETE":
            with control.lock:
                control.calls.clear()
        return JSONResponse(control.calls_json())

    async def faults(request: Request) -> Response:
        if request.method == "PUT":
            try:
                body = json.loads(await request.body() or b"{}")
                new = dataclasses.replace(control.faults)
                new.update(body)
            except (ValueError, AttributeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            control.set_faults(new)
        return JSONResponse(dataclasses.asdict(control.faults))

    async def settings(request: Request) -> Response:
        if request.method == "PUT":
            try:
                body = json.loads(await request.body() or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("settings must be a JSON object")
                result = control.state.update_settings(body)
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            return JSONResponse(result)
        return JSONResponse(control.state.settings)

    p = SANDBOX_PREFIX.rstrip("/")
    return [
        Route(p + "/records/{kind}/{id:path}", record, methods=["GET"]),
        Route(p + "/find", find, methods=["GET"]),
        Route(p + "/reset", reset, methods=["POST"]),
        Route(p + "/calls", calls, methods=["GET", "DELETE"]),
        Route(p + "/faults", faults, methods=["GET", "PUT"]),
        Route(p + "/settings", settings, methods=["GET", "PUT"]),
    ]


def make_vendor_app(
    state: VendorState,
    routes: Sequence[BaseRoute],
    faults: Faults | None = None,
    exception_handlers: dict[Any, Callable[..., Awaitable[Response] | Response]] | None = None,
) -> Starlette:
    """One vendor's Starlette app: its routes + `/__sandbox/` + counting/fault middleware."""
    control = Control(state, faults)
    all_routes = [*_inspection_routes(control), *routes]
    app = Starlette(
        routes=all_routes,
        middleware=[Middleware(SandboxMiddleware, control=control, routes=list(routes))],
        exception_handlers=exception_handlers,
    )
    app.state.sandbox = control
    return app
