"""The desk as a Starlette application: a route table, middleware, exception handlers.

`create_app(settings)` builds it from the hub's settings (and the desk's own,
HUB_DESK_*); `hub desk` serves it with uvicorn on loopback. What the web server logs
is method, path and status only (`AccessLog`): paths carry request ids and nothing
personal, and neither query strings nor client addresses are written.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from desk import pages
from desk.auth import Forbidden, NotSignedIn
from desk.settings import DeskSettings
from desk.web import Desk, render, templates
from hub.ledger import UnknownRequest
from hub.settings import Settings
from hub.store import Store, open_store

ACCESS_LOG = logging.getLogger("desk.access")
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    # Pages hold personal data: no browser or proxy cache keeps a copy.
    (b"cache-control", b"no-store"),
]

R = "/requests/{request_id:str}"
routes = [
    Route("/", pages.dashboard),
    Route("/login", pages.login_page, methods=["GET"]),
    Route("/login", pages.login, methods=["POST"]),
    Route("/logout", pages.logout, methods=["POST"]),
    Route("/language", pages.language, methods=["POST"]),
    Route("/requests/new", pages.new_request_page, methods=["GET"]),
    Route("/requests", pages.file_request, methods=["POST"]),
    Route(R, pages.request_page, methods=["GET"]),
    Route(R + "/verify", pages.verify, methods=["POST"]),
    Route(R + "/extend", pages.extend, methods=["POST"]),
    Route(R + "/reject", pages.reject, methods=["POST"]),
    Route(R + "/review", pages.decide, methods=["POST"]),
    Route(R + "/tasks/{system:str}/confirm", pages.confirm, methods=["POST"]),
    Route(R + "/bundle.zip", pages.bundle_zip, methods=["GET"]),
    Route("/search", pages.search_page, methods=["GET"]),
    Route("/search", pages.search, methods=["POST"]),
    Route("/audit", pages.audit_trail, methods=["GET"]),
    Route("/users", pages.users_page, methods=["GET"]),
    Route("/users", pages.add_user, methods=["POST"]),
    Mount("/static", StaticFiles(packages=[("desk", "static")]), name="static"),
]


class AccessLog:
    """One line per request: method, path, status, milliseconds; nothing else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.monotonic(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *SECURITY_HEADERS]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            ACCESS_LOG.info("%s %s %d %.0fms", scope["method"], scope["path"], status,
                            (time.monotonic() - started) * 1000)


async def _not_signed_in(request: Request, exc: Exception) -> Response:
    return RedirectResponse("/login", status_code=303)


async def _forbidden(request: Request, exc: Exception) -> Response:
    key = "csrf_refused" if str(exc) == "csrf" else "forbidden"
    return render(request, "error.html", {"key": key}, status=403)


async def _not_found(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException) and exc.status_code != 404:
        return Response(exc.detail, status_code=exc.status_code)
    return render(request, "error.html", {"key": "not_found"}, status=404)


def serve(settings: Settings, desk: DeskSettings, *, host: str, port: int) -> None:
    """Run the desk with uvicorn until interrupted; the access log is `AccessLog`'s.

    uvicorn's own access log would write query strings and client addresses.
    """
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    uvicorn.run(create_app(settings, desk), host=host, port=port, access_log=False,
                log_config=None, server_header=False)


def create_app(settings: Settings, desk: DeskSettings | None = None, *,
               store: Store | None = None) -> Starlette:
    """The desk over the hub's database (migrated on open, like every hub command)."""
    desk = desk or DeskSettings()
    store = store or open_store(settings)
    middleware = [
        Middleware(AccessLog),
        Middleware(SessionMiddleware, secret_key=desk.session_key(settings),
                   session_cookie="hub_desk", max_age=desk.session_max_age_minutes * 60,
                   same_site="strict", https_only=desk.https_only),
    ]
    handlers: dict[Any, Any] = {NotSignedIn: _not_signed_in, Forbidden: _forbidden,
                                UnknownRequest: _not_found, HTTPException: _not_found}
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
    app.state.desk = Desk(store=store, settings=settings, desk=desk, templates=templates())
    return app
