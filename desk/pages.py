"""The desk's pages: one plain function per route.

GET pages are plain functions (Starlette runs them in its thread pool, away from
the event loop); a POST reads its form, checks the CSRF token, and does its work in
the thread pool too, then redirects (so a reload never repeats an action). Every
change goes through the hub's own functions with the signed-in user as the actor,
so the audit trail says who did it. URLs carry request ids only: identifiers travel
in POST bodies and never in a URL or the access log.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from desk import auth, i18n, queries
from desk.auth import Role
from desk.web import Desk, desk_of, flash, render, see_other, signed_in
from hub import audit, intake, ledger, letters, manual, outbox, outcomes, review
from hub.domain import Corrections, Identifier, IdentifierKind
from hub.identity import InvalidIdentifier, mask, parse_email, parse_phone
from hub.ledger import (
    OPEN_REQUEST_STATES,
    Channel,
    Language,
    LedgerError,
    RequestKind,
    RequestState,
    TaskState,
)

# How an operator may have checked who is asking (recorded, with who checked).
VERIFY_METHODS = ("replied_from_address", "id_at_desk", "signed_letter", "known_phone")
CONFIRM_OUTCOMES = (TaskState.DONE, TaskState.NOT_FOUND, TaskState.RETAINED)
REJECTABLE = (RequestState.RECEIVED, RequestState.VERIFIED, RequestState.AWAITING_REVIEW)
# Where the language switch may return to: one of the desk's own paths, never
# "//elsewhere" or "/\\elsewhere", which browsers read as another site.
BACK = re.compile(r"/(?:[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*)?")


async def _posted(request: Request, work: Callable[[Request, FormData], Response]
                  ) -> Response:
    """Read the form, refuse a wrong CSRF token, do the work off the event loop."""
    form = await request.form()
    auth.check_csrf(request, form.get("csrf"))
    return await run_in_threadpool(work, request, form)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _refusal(request: Request, exc: Exception) -> str:
    """The hub's refusal, worded in the desk's language (desk/i18n.py)."""
    return i18n.hub_error(i18n.language_of(request), str(exc))


def _lines(form: FormData, name: str) -> list[str]:
    return [line.strip() for line in _text(form, name).splitlines() if line.strip()]


# --- signing in ----------------------------------------------------------------------


def login_page(request: Request) -> Response:
    return render(request, "login.html", {"error": None})


async def login(request: Request) -> Response:
    return await _posted(request, _login)


def _login(request: Request, form: FormData) -> Response:
    desk = desk_of(request)
    with desk.store.session() as session:
        result = auth.authenticate(
            session, _text(form, "name"), str(form.get("password") or ""),
            max_failed=desk.desk.max_failed_logins,
            lockout=timedelta(minutes=desk.desk.lockout_minutes))
        if result.user is not None:
            auth.begin_session(session, request, result.user)
    if result.user is None:
        _ = i18n.translator(i18n.language_of(request))
        error = _("login_failed")
        if result.locked_until is not None:
            until = result.locked_until.astimezone(ZoneInfo(desk.settings.timezone))
            error = _("login_locked", until=f"{until:%H:%M}")
        return render(request, "login.html", {"error": error}, status=401)
    return see_other("/")


async def logout(request: Request) -> Response:
    return await _posted(request, _logout)


def _logout(request: Request, form: FormData) -> Response:
    desk = desk_of(request)
    with desk.store.session() as session:
        user = auth.load_user(session, request, max_age=desk.desk.session_max_age)
        if user is not None:
            audit.append(session, "desk.logout", {}, actor=user.name)
        auth.end_session(session, request)
    return see_other("/login")


async def language(request: Request) -> Response:
    return await _posted(request, _language)


def _language(request: Request, form: FormData) -> Response:
    chosen = _text(form, "lang")
    if chosen in i18n.LANGUAGES:
        request.session[auth.SESSION_LANG] = chosen
        desk = desk_of(request)
        with desk.store.session() as session:
            user = auth.load_user(session, request, max_age=desk.desk.session_max_age)
            if user is not None:
                auth.set_language(session, user.name, chosen)
    back = _text(form, "back")
    return see_other(back if BACK.fullmatch(back) else "/")


# --- dashboard -------------------------------------------------------------------------


def dashboard(request: Request) -> Response:
    desk = desk_of(request)
    today = desk.today()
    with desk.store.session() as session:
        signed_in(request, session)
        context = {
            "open": queries.listed(session, queries.open_requests(session, today), today),
            "soon": queries.listed(session, queries.due_soon(
                session, today, desk.settings.due_soon_days), today),
            "overdue": queries.listed(session, ledger.list_requests(
                session, today=today, overdue=True), today),
            "failed": queries.failed_tasks(session),
            "candidates": queries.candidates_waiting(session),
            "manual": queries.manual_waiting(session),
            "soon_days": desk.settings.due_soon_days,
        }
    return render(request, "dashboard.html", context)


# --- filing --------------------------------------------------------------------------


# The form's fields for a rectification's corrected values, in intake.corrections' order.
CORRECTED = ("set_email", "set_phone", "set_name", "set_address")


def _corrections(request: Request, kind: RequestKind, form: FormData) -> Corrections | None:
    """The corrected values typed (an empty field is none), refused as `hub request new`
    refuses them, naming the desk's own labels."""
    _ = i18n.translator(i18n.language_of(request))
    typed = [_text(form, field) or None for field in CORRECTED]
    return intake.corrections(kind, email=typed[0], phone=typed[1], name=typed[2],
                              address=typed[3], fields=tuple(_(f) for f in CORRECTED))


def _filing_context(form: FormData | None = None, **extra: Any) -> dict[str, Any]:
    values = {k: (form.get(k) if form else None) or "" for k in
              ("kind", "emails", "phones", "name", "channel", "received", "language",
               *CORRECTED)}
    values["kind"] = values["kind"] or RequestKind.ERASURE.value
    values["channel"] = values["channel"] or Channel.EMAIL.value
    values["language"] = values["language"] or Language.FI.value
    return {"form": values, "kinds": ledger.ACTIVE_KINDS, "channels": list(Channel),
            "languages": list(Language), "error": None, "duplicates": None, **extra}


def new_request_page(request: Request) -> Response:
    with desk_of(request).store.session() as session:
        signed_in(request, session, Role.OPERATOR)
    return render(request, "new_request.html", _filing_context())


async def file_request(request: Request) -> Response:
    return await _posted(request, _file_request)


def _file_request(request: Request, form: FormData) -> Response:
    desk = desk_of(request)
    timezone = desk.settings.timezone
    try:
        with desk.store.session() as session:
            user = signed_in(request, session, Role.OPERATOR)
            kind = intake.request_kind(_text(form, "kind"))
            filed = intake.file_request(
                session, desk.store.hasher, kind,
                intake.identifiers(_lines(form, "emails"), _lines(form, "phones")),
                name=intake.subject_name(_text(form, "name")),
                received_at=intake.received(_text(form, "received"), timezone),
                channel=intake.choice(Channel, _text(form, "channel") or "email", "channel"),
                language=intake.choice(Language, _text(form, "language") or "fi", "language"),
                timezone=timezone, allow_duplicate=form.get("allow_duplicate") == "yes",
                actor=user.name, corrections=_corrections(request, kind, form))
            row = filed.row
            letters.queue_for(session, row, letters.Event.RECEIVED, settings=desk.settings,
                              hasher=desk.store.hasher)
    except intake.DuplicateRequest as exc:
        return render(request, "new_request.html",
                      _filing_context(form, duplicates=", ".join(exc.ids)), status=409)
    except (LedgerError, InvalidIdentifier) as exc:
        return render(request, "new_request.html",
                      _filing_context(form, error=_refusal(request, exc)), status=400)
    flash(request, "filed")
    if row.chargeable:
        flash(request, "chargeable", "warn", number=filed.number)
    return see_other(f"/requests/{row.id}")


# --- one request ---------------------------------------------------------------------


def dagster_runs_url(desk: Desk, request_id: str) -> str:
    """Dagster's runs page filtered to this request's runs (the hub keeps no run ids;
    the sensor tags every run with the request id)."""
    tag = quote(f"tag:hub/request_id={request_id}", safe="")
    return f"{desk.desk.dagster_ui_url.rstrip('/')}/runs?q%5B0%5D={tag}"


def _corrected(session, request_id: str, reveal: bool) -> list[tuple[str, str]]:
    """(form field, value) of a rectification's corrected values: in full for an
    operator (who checks them against the subject's letter), masked for a viewer."""
    if not reveal:
        return [(f"set_{field}", masked)
                for field, masked in ledger.corrections_masked(session, request_id)]
    found = ledger.corrections_of(session, request_id)
    if found is None:
        return []
    values = {"email": found.email, "phone": found.phone, "name": found.name,
              "address": found.address.line() if found.address else None}
    return [(f"set_{field}", value) for field, value in values.items() if value]


def request_page(request: Request) -> Response:
    desk = desk_of(request)
    request_id = request.path_params["request_id"]
    with desk.store.session() as session:
        user = signed_in(request, session)
        row = ledger.get_request(session, request_id)
        shown = ledger.view(session, row, reveal=user.may(Role.OPERATOR))
        corrected = _corrected(session, request_id, user.may(Role.OPERATOR))
        tasks = [{"system": t.system, "state": t.state, "action": t.action,
                  "attempts": t.attempts, "evidence": outcomes.describe(t.evidence),
                  "error": t.error, "manual": manual.of(t),
                  "confirmable": TaskState(t.state) == TaskState.MANUAL_PENDING}
                 for t in ledger.tasks_of(session, request_id)]
        context = {
            "row": row, "shown": shown, "tasks": tasks, "corrected": corrected,
            "items": review.items(session, request_id),
            "state": RequestState(row.state),
            "received_local": row.received_at.astimezone(ZoneInfo(desk.settings.timezone)),
            "can_verify": RequestState(row.state) == RequestState.RECEIVED,
            "can_extend": (RequestState(row.state) in OPEN_REQUEST_STATES
                           and row.extended_due_on is None),
            "can_reject": RequestState(row.state) in REJECTABLE,
            "has_bundle": (row.kind == RequestKind.ACCESS.value and queries.bundle_folder(
                desk.settings.home, request_id) is not None),
            "dagster_url": dagster_runs_url(desk, request_id),
            "methods": VERIFY_METHODS, "outcomes": CONFIRM_OUTCOMES,
            # the subject's letters; an ops alert about the request is not one of them
            "letters": [x for x in outbox.letters_of(session, request_id)
                        if not x.kind.startswith("ops_")],
        }
    return render(request, "request.html", context)


def _act(request: Request, form: FormData,
         action: Callable[[Any, auth.User, Request, FormData], str | None]) -> Response:
    """Run one operator action on a request; its message or the hub's refusal is
    shown on the request's page."""
    desk = desk_of(request)
    request_id = request.path_params["request_id"]
    try:
        with desk.store.session() as session:
            user = signed_in(request, session, Role.OPERATOR)
            ledger.get_request(session, request_id)
            done = action(session, user, request, form)
    except (LedgerError, ValueError) as exc:
        flash(request, "error", "error", text=_refusal(request, exc))
    else:
        flash(request, done or "done_ok")
    return see_other(f"/requests/{request_id}")


async def verify(request: Request) -> Response:
    return await _posted(request, lambda r, f: _act(r, f, _verify))


def _verify(session: Any, user: auth.User, request: Request, form: FormData) -> str:
    request_id = request.path_params["request_id"]
    method = _text(form, "method")
    if method not in VERIFY_METHODS:
        raise LedgerError("choose how the identity was checked")
    # Who checked and how, then the state change (which the sensor picks up).
    audit.append(session, "request.identity_checked", {"method": method},
                 request_id=request_id, actor=user.name)
    ledger.verify(session, request_id, actor=user.name)
    return "verified"


async def extend(request: Request) -> Response:
    return await _posted(request, lambda r, f: _act(r, f, _extend))


def _extend(session: Any, user: auth.User, request: Request, form: FormData) -> None:
    months = 1 if _text(form, "months") == "1" else 2
    desk = desk_of(request)
    row = ledger.extend(session, request.path_params["request_id"], _text(form, "reason"),
                        months=months, timezone=desk.settings.timezone, actor=user.name)
    letters.queue_for(session, row, letters.Event.EXTENDED, settings=desk.settings,
                      hasher=desk.store.hasher)


async def reject(request: Request) -> Response:
    return await _posted(request, lambda r, f: _act(r, f, _reject))


def _reject(session: Any, user: auth.User, request: Request, form: FormData) -> None:
    reason = _text(form, "reason")
    if not reason:
        raise LedgerError("a rejection needs a reason: the subject must be told why")
    desk = desk_of(request)
    letters.reject(session, request.path_params["request_id"], reason, actor=user.name,
                   settings=desk.settings, hasher=desk.store.hasher)


async def decide(request: Request) -> Response:
    return await _posted(request, lambda r, f: _act(r, f, _decide))


def _decide(session: Any, user: auth.User, request: Request, form: FormData) -> None:
    decision = {"approve": review.Decision.APPROVED,
                "exclude": review.Decision.EXCLUDED}.get(_text(form, "decision"))
    if decision is None:
        raise LedgerError("a decision is approve or exclude")
    try:
        number = int(_text(form, "number"))
    except ValueError:
        raise LedgerError("which candidate? (its number)") from None
    review.decide(session, request.path_params["request_id"], [number], decision,
                  actor=user.name)


async def confirm(request: Request) -> Response:
    return await _posted(request, lambda r, f: _act(r, f, _confirm))


def _confirm(session: Any, user: auth.User, request: Request, form: FormData) -> None:
    try:
        outcome = TaskState(_text(form, "outcome"))
        until = _text(form, "until")
        held_until = date.fromisoformat(until) if until else None
    except ValueError:
        raise LedgerError("the outcome is done, not_found or retained; the date "
                          "YYYY-MM-DD") from None
    review.confirm_task(session, request.path_params["request_id"],
                        request.path_params["system"], outcome,
                        note=_text(form, "note"), actor=user.name, held_until=held_until,
                        legal_basis=_text(form, "basis") or None)


def bundle_zip(request: Request) -> Response:
    desk = desk_of(request)
    request_id = request.path_params["request_id"]
    with desk.store.session() as session:
        user = signed_in(request, session, Role.OPERATOR)
        row = ledger.get_request(session, request_id)
        folder = queries.bundle_folder(desk.settings.home, request_id)
        if row.kind != RequestKind.ACCESS.value or folder is None:
            raise ledger.UnknownRequest(f"request {request_id} has no export bundle")
        body = queries.zipped(folder)
        audit.append(session, "export.downloaded", {
            "files": sorted(p.name for p in folder.iterdir())},
            request_id=request_id, actor=user.name)
    return Response(body, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{request_id}.zip"'})


# --- search, audit, users --------------------------------------------------------------


def search_page(request: Request) -> Response:
    with desk_of(request).store.session() as session:
        signed_in(request, session)
    return render(request, "search.html", {"results": None, "error": None})


async def search(request: Request) -> Response:
    return await _posted(request, _search)


def _search(request: Request, form: FormData) -> Response:
    desk = desk_of(request)
    typed = _text(form, "identifier")
    try:
        ident = (Identifier(IdentifierKind.EMAIL, parse_email(typed)) if "@" in typed
                 else Identifier(IdentifierKind.PHONE, parse_phone(typed)))
    except InvalidIdentifier as exc:
        with desk.store.session() as session:
            signed_in(request, session)
        return render(request, "search.html",
                      {"results": None, "error": _refusal(request, exc)}, status=400)
    with desk.store.session() as session:
        user = signed_in(request, session)
        rows = queries.requests_with(session, [desk.store.hasher.identifier(ident)])
        audit.append(session, "desk.search", {"identifier": mask(ident), "found": len(rows)},
                     actor=user.name)
        results = [{"id": r.id, "kind": r.kind, "state": r.state,
                    "received": r.received_at.astimezone(ZoneInfo(desk.settings.timezone))}
                   for r in rows]
    return render(request, "search.html", {"results": results, "error": None,
                                            "searched": mask(ident)})


def audit_trail(request: Request) -> Response:
    desk = desk_of(request)
    try:
        page = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        page = 1
    with desk.store.session() as session:
        signed_in(request, session)
        rows, more = queries.audit_page(session, page, desk.desk.audit_page_size)
    return render(request, "audit.html", {"rows": rows, "page": page, "more": more})


def users_page(request: Request) -> Response:
    with desk_of(request).store.session() as session:
        signed_in(request, session, Role.ADMIN)
        users = auth.list_users(session)
    return render(request, "users.html", {"users": users, "roles": list(Role), "error": None,
                                          "now": datetime.now(UTC)})


async def add_user(request: Request) -> Response:
    return await _posted(request, _add_user)


def _add_user(request: Request, form: FormData) -> Response:
    desk = desk_of(request)
    password = str(form.get("password") or "")
    error = None
    try:
        with desk.store.session() as session:
            user = signed_in(request, session, Role.ADMIN)
            if password != str(form.get("password2") or ""):
                error = i18n.translate(i18n.language_of(request), "passwords_differ")
            else:
                auth.add_user(session, _text(form, "name"), password,
                              Role.named(_text(form, "role") or "viewer"), actor=user.name)
    except ValueError as exc:
        error = _refusal(request, exc)
    if error is None:
        flash(request, "user_added")
        return see_other("/users")
    with desk.store.session() as session:
        users = auth.list_users(session)
    return render(request, "users.html", {"users": users, "roles": list(Role), "error": error,
                                          "now": datetime.now(UTC)}, status=400)
