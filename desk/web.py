"""What every page shares: the desk's state, the signed-in user, rendering, flashes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from desk import i18n
from desk.auth import Forbidden, NotSignedIn, Role, User, csrf_token, load_user
from desk.settings import DeskSettings
from hub.deadlines import local_date
from hub.settings import Settings
from hub.store import Store

TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class Desk:
    """The running desk: the hub's store and settings, its own, and its templates."""

    store: Store
    settings: Settings
    desk: DeskSettings
    templates: Environment

    def today(self) -> date:
        return local_date(datetime.now(UTC), self.settings.timezone)


def templates() -> Environment:
    # Autoescape everywhere: names and reasons are typed by people and shown back.
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def desk_of(request: Request) -> Desk:
    return request.app.state.desk


def signed_in(request: Request, session: Session, role: Role = Role.VIEWER) -> User:
    """The user behind the request; NotSignedIn or Forbidden when not allowed."""
    user = load_user(session, request, max_age=desk_of(request).desk.session_max_age)
    if user is None:
        raise NotSignedIn()
    request.state.user = user
    if not user.may(role):
        raise Forbidden("role")
    return user


def flash(request: Request, key: str, kind: str = "ok", **values: Any) -> None:
    """A message for the next page (after a redirect): a catalogue key, or hub text."""
    request.session.setdefault("flash", []).append(
        {"kind": kind, "key": key, "values": {k: str(v) for k, v in values.items()}})


def see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def render(request: Request, name: str, context: dict[str, Any] | None = None, *,
           status: int = 200) -> HTMLResponse:
    desk = desk_of(request)
    language = i18n.language_of(request)
    user = getattr(request.state, "user", None)
    flashes = request.session.pop("flash", []) if "flash" in request.session else []
    body = desk.templates.get_template(name).render(
        request=request, user=user, Role=Role, csrf=csrf_token(request), lang=language,
        _=i18n.translator(language), flashes=flashes, today=desk.today(),
        **(context or {}))
    return HTMLResponse(body, status_code=status)
