"""`hub`: the one shell that wires everything for a person at a terminal.

Every command validates its input before it opens the database, runs in one
transaction, and on failure prints one line to stderr and exits non-zero having
written nothing. Exit codes: 1 the input or the request's state is wrong,
3 the database or a setting is not usable.
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import typer
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from hub import (
    audit,
    index,
    intake,
    ledger,
    letters,
    manual,
    objections,
    outbox,
    outcomes,
    review,
    runnable,
    suppression,
)
from hub import breach as breach_query
from hub.db import DatabaseUnavailable, first_line
from hub.deadlines import local_date
from hub.domain import Identifier, IdentifierKind
from hub.identity import InvalidIdentifier, mask, parse_email, parse_phone
from hub.ledger import LedgerError, RequestKind, RequestState, TaskState
from hub.policy import PolicyError, load_policy
from hub.settings import MIN_SECRET_LENGTH, Settings, SettingsError, load_settings
from hub.store import Store, open_store

EXIT_INPUT = 1
EXIT_ENVIRONMENT = 3

# Tracebacks never show local variables: they would hold personal data.
app = typer.Typer(help="Keep GDPR promises across Pipedrive, Mailchimp, Typeform and "
                  "Netvisor.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_show_locals=False)
request_app = typer.Typer(help="Subject requests: access, erasure, opt-out, rectification, "
                               "restriction.",
                          no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit trail.", no_args_is_help=True)
db_app = typer.Typer(help="The hub's database.", no_args_is_help=True)
person_app = typer.Typer(help="The person index.", no_args_is_help=True)
task_app = typer.Typer(help="A request's task in one system.", no_args_is_help=True)
retention_app = typer.Typer(help="Erasure when the time to keep someone has run out.",
                            no_args_is_help=True)
letters_app = typer.Typer(help="Letters to subjects and ops staff: the outbox.",
                          no_args_is_help=True)
app.add_typer(request_app, name="request")
app.add_typer(task_app, name="task")
app.add_typer(audit_app, name="audit")
app.add_typer(db_app, name="db")
app.add_typer(person_app, name="person")
app.add_typer(retention_app, name="retention")
objection_app = typer.Typer(help="Objections to being published in lists (attendee lists, "
                                 "mailing labels).", no_args_is_help=True)
app.add_typer(objection_app, name="objection")
user_app = typer.Typer(help="The desk's users.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(letters_app, name="letters")

F = TypeVar("F", bound=Callable[..., Any])


# C0 and C1 controls (ESC, BEL, CSI...), DEL, and the bidirectional overrides that
# reorder what a terminal shows.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """Stored or vendor text made inert for a terminal: each control shown as `\\x1b`.

    A name, a reason or a vendor's display name can hold escape sequences that clear
    the screen, retitle the window or hide what follows; shown escaped, the operator
    sees that something was there without the terminal obeying it.
    """
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _echo(line: str) -> None:
    typer.echo(terminal_safe(line))


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {terminal_safe(message)}", err=True)
    return typer.Exit(code)


def guarded(func: F) -> F:
    """Turn the hub's known failures into one line on stderr and an exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (LedgerError, InvalidIdentifier, PolicyError, ValueError) as exc:
            raise _fail(str(exc), EXIT_INPUT) from None
        except (DatabaseUnavailable, SettingsError) as exc:
            raise _fail(str(exc), EXIT_ENVIRONMENT) from None
        except (DataError, IntegrityError) as exc:
            # The input got past validation but not past the database's own rules.
            raise _fail(f"the database refused the input: {first_line(exc)}",
                        EXIT_INPUT) from None
        except (DBAPIError, PoolTimeout) as exc:
            # Locked, read-only, gone away, timed out: the database, not the input.
            raise _fail(f"the database failed: {first_line(exc)}", EXIT_ENVIRONMENT) from None
        except OSError as exc:
            raise _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename
                        else str(exc), EXIT_ENVIRONMENT) from None

    return wrapper  # type: ignore[return-value]


@contextmanager
def store() -> Iterator[Store]:
    opened = open_store(load_settings())
    try:
        yield opened
    finally:
        opened.close()


def _today(settings: Settings) -> date:
    return local_date(datetime.now(UTC), settings.timezone)


# --- setup -------------------------------------------------------------------------


@app.command()
def init(force: Annotated[bool, typer.Option(help="Replace an existing HUB_SECRET.")] = False,
         env_file: Path = Path(".env")) -> None:
    """Write a new random HUB_SECRET to .env (readable by its owner only)."""
    lines = env_file.read_text("utf-8").splitlines() if env_file.exists() else []
    if any(line.startswith("HUB_SECRET=") for line in lines):
        if not force:
            raise _fail(f"{env_file} already has a HUB_SECRET; --force replaces it, and "
                        "then earlier hashes no longer match", EXIT_INPUT)
        lines = [line for line in lines if not line.startswith("HUB_SECRET=")]
    lines.append(f"HUB_SECRET={secrets.token_urlsafe(48)}")
    # Created 0600 from the start: no moment where others can read the secret.
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    env_file.chmod(0o600)
    typer.echo(f"wrote a new HUB_SECRET ({MIN_SECRET_LENGTH}+ characters) to {env_file}")


@db_app.command("upgrade")
@guarded
def db_upgrade() -> None:
    """Apply pending migrations (every other command also does this on first use)."""
    with store() as opened:
        typer.echo(f"database is up to date: {opened.engine.url.render_as_string()}")


# --- requests ----------------------------------------------------------------------


@request_app.command("new")
@guarded
def request_new(
    kind: Annotated[str, typer.Argument(
        help="access, erasure, opt-out, rectification or restriction")],
    email: Annotated[list[str] | None, typer.Option(
        help="The subject's e-mail address; repeatable.")] = None,
    phone: Annotated[list[str] | None, typer.Option(
        help="The subject's phone number; repeatable.")] = None,
    name: Annotated[str | None, typer.Option(help="The subject's name, as they gave it.")]
    = None,
    allow_duplicate: Annotated[bool, typer.Option(
        help="File it even though an open request of this kind exists for the subject.")]
    = False,
    received: Annotated[str | None, typer.Option(
        help="When it reached the company, YYYY-MM-DD or YYYY-MM-DD HH:MM in the company's "
             "time zone (default: now); the month to answer counts from it.")] = None,
    channel: Annotated[str, typer.Option(
        help="How it arrived: email, letter, phone, desk or web.")] = "email",
    language: Annotated[str, typer.Option(
        help="The subject's language for letters: fi, sv or en.")] = "fi",
    set_email: Annotated[str | None, typer.Option(
        help="Rectification: the corrected e-mail address.")] = None,
    set_phone: Annotated[str | None, typer.Option(
        help="Rectification: the corrected phone number.")] = None,
    set_name: Annotated[str | None, typer.Option(
        help="Rectification: the corrected name.")] = None,
    set_address: Annotated[str | None, typer.Option(
        help='Rectification: the corrected address, "street, postcode city".')] = None,
    lift: Annotated[bool, typer.Option(
        help="Restriction: lift the subject's restriction instead.")] = False,
    address: Annotated[str | None, typer.Option(
        help="Postal address for letters by post (lines separated by newlines or ' / '); "
             "a request that came by letter is answered there.")] = None,
) -> None:
    """File a subject request; prints its id and due date."""
    request_kind = intake.request_kind(kind)
    if lift and request_kind != RequestKind.RESTRICTION:
        raise LedgerError("--lift goes with a restriction request")
    if lift:
        request_kind = RequestKind.RESTRICTION_LIFT
    if not email and not phone:
        raise InvalidIdentifier("give the subject's --email or --phone (or both)")
    identifiers = intake.identifiers(email, phone)
    subject_name = intake.subject_name(name, "--name")
    corrections = intake.corrections(
        request_kind, email=set_email, phone=set_phone, name=set_name, address=set_address,
        fields=("--set-email", "--set-phone", "--set-name", "--set-address"))
    arrived_by = intake.choice(ledger.Channel, channel, "--channel")
    answer_in = intake.choice(ledger.Language, language, "--language")
    with store() as opened, opened.session() as session:
        timezone = opened.settings.timezone
        try:
            filed = intake.file_request(
                session, opened.hasher, request_kind, identifiers, name=subject_name,
                received_at=intake.received(received, timezone, "--received"), channel=arrived_by,
                language=answer_in, timezone=timezone, allow_duplicate=allow_duplicate,
                actor=_operator() or "operator", corrections=corrections,
                postal_address=intake.postal_address(address))
        except intake.DuplicateRequest as exc:
            raise LedgerError(f"{exc}; --allow-duplicate files another anyway") from None
        row = filed.row
        typer.echo(f"{row.id}  {row.kind}  due {row.due_on.isoformat()}")
        _queued(letters.queue_for(session, row, letters.Event.RECEIVED,
                                  settings=opened.settings, hasher=opened.hasher))
        if row.chargeable:
            year = intake.receipt_year(row, timezone)
            typer.echo(f"note: access request number {filed.number} from this subject in "
                       f"{year}; only the first each year is free: decide whether to charge")


def _queued(draft: letters.Draft | None) -> None:
    """Say which letter the step queued, to whom (masked), or that nobody can be written to."""
    if draft is None:
        _echo("no letter: the request holds no e-mail or postal address")
    else:
        _echo(f"letter queued: {draft.kind} by {draft.channel.value} to "
              f"{draft.recipient_masked}")


def _due_label(due: date, today: date) -> str:
    days = (due - today).days
    if days < 0:
        return f"OVERDUE {-days}d"
    return "due today" if days == 0 else f"{days}d left"


@request_app.command("list")
@guarded
def request_list(
    overdue: Annotated[bool, typer.Option(help="Only open requests past their due date.")]
    = False,
    due_within: Annotated[int | None, typer.Option(min=0, help="Only open requests due "
                                                   "within this many days (overdue ones "
                                                   "included: they need attention first)."
                                                   )] = None,
) -> None:
    """Requests by deadline, subjects masked."""
    with store() as opened, opened.session() as session:
        today = _today(opened.settings)
        rows = ledger.list_requests(session, today=today, overdue=overdue,
                                    due_within=due_within)
        if not rows:
            _echo("no requests")
            return
        _echo(f"{'id':<18} {'kind':<8} {'state':<20} {'due':<11} {'':<12} subject")
        for row in rows:
            shown = ledger.view(session, row)
            who = ", ".join(v for _, v in shown.identifiers) or "(scrubbed)"
            _echo(f"{row.id:<18} {row.kind:<8} {row.state:<20} "
                  f"{shown.due_on.isoformat():<11} {_due_label(shown.due_on, today):<12} "
                  f"{who}")


@request_app.command("show")
@guarded
def request_show(request_id: str) -> None:
    """One request in full, identifiers in plain text for the operator handling it."""
    with store() as opened, opened.session() as session:
        row = ledger.get_request(session, request_id)
        shown = ledger.view(session, row, reveal=True)
        today = _today(opened.settings)
        _echo(f"request   {shown.id}")
        _echo(f"kind      {shown.kind}   origin {shown.origin}")
        _echo(f"state     {shown.state}"
              + (f"   ({shown.state_reason})" if shown.state_reason else ""))
        arrived = shown.received_at.astimezone(ZoneInfo(opened.settings.timezone))
        _echo(f"received  {arrived:%Y-%m-%d %H:%M} {opened.settings.timezone}   by {row.channel}"
              f"   answer in {row.language}")
        if row.chargeable:
            _echo("chargeable  a repeated access request this year: the first is free; "
                  "decide whether to charge")
        _echo(f"due       {shown.due_on.isoformat()}   {_due_label(shown.due_on, today)}"
              + (f"   extended: {shown.extension_reason}" if shown.extended else ""))
        for kind, value in shown.identifiers:
            _echo(f"{kind:<9} {value}")
        if shown.name:
            _echo(f"name      {shown.name}")
        for field, masked in ledger.corrections_masked(session, row.id):
            _echo(f"corrects  {field}: {masked}")
        if shown.tasks:
            _echo("tasks")
            for system, state, action, attempts in shown.tasks:
                typer.echo(f"  {system:<10} {state:<15} {action or '-':<20} "
                           f"attempts {attempts}")
        if RequestState(row.state) == RequestState.AWAITING_REVIEW:
            _echo(_waiting_for(session, row.id))


@request_app.command("verify")
@guarded
def request_verify(request_id: str) -> None:
    """Record that the requester's identity has been checked; the request may run."""
    with store() as opened, opened.session() as session:
        row = ledger.verify(session, request_id)
        typer.echo(f"{row.id} verified")


@request_app.command("extend")
@guarded
def request_extend(
    request_id: str,
    reason: Annotated[str, typer.Option(help="Why: told to the subject within the first "
                                        "month.")],
    months: Annotated[int, typer.Option(min=1, max=2)] = 2,
) -> None:
    """Extend the deadline once by up to two months (GDPR art. 12(3))."""
    with store() as opened, opened.session() as session:
        row = ledger.extend(session, request_id, reason, months=months,
                            timezone=opened.settings.timezone)
        typer.echo(f"{row.id} now due {row.extended_due_on.isoformat()}")
        _queued(letters.queue_for(session, row, letters.Event.EXTENDED,
                                  settings=opened.settings, hasher=opened.hasher))


@request_app.command("run")
@guarded
def request_run(request_id: str) -> None:
    """Run a verified request's job now on the configured Dagster instance and wait.

    Everything checkable is checked before Dagster starts (one line, exit 1 or 3); runs
    of the request whose process died are ended first and their tasks resumed; a wait
    for a vendor's pool slot is said; the last line says what is true.
    """
    settings = load_settings()
    with store() as opened, opened.session() as session:
        row = ledger.get_request(session, request_id)
        if RequestState(row.state) == RequestState.AWAITING_REVIEW:
            raise LedgerError(_waiting_for(session, row.id))
    try:
        kind = runnable.preflight(request_id)
    except runnable.Refused as exc:
        raise _fail(str(exc), exc.code) from None

    from dagster import DagsterInstance

    from pipelines.launch import ensure_dagster_home, outcome_line, run_request

    ensure_dagster_home(settings.home)
    typer.echo(f"running {request_id} ({kind}) on {os.environ['DAGSTER_HOME']} ...")
    with DagsterInstance.get() as instance:
        try:
            result = run_request(request_id, kind, instance, say=typer.echo)
        except runnable.Refused as exc:
            raise _fail(str(exc), exc.code) from None
    with store() as opened, opened.session() as session:
        row = ledger.get_request(session, request_id)
        tasks = ledger.tasks_of(session, request_id)
        typer.echo(outcomes.text_table(tasks))
        typer.echo(f"request {row.id} is {row.state} (Dagster run {result.run_id})")
        if RequestState(row.state) == RequestState.AWAITING_REVIEW:
            _echo(_waiting_for(session, row.id))
        failure = outcome_line(result, request_id, tasks)
    if failure:
        raise _fail(failure, EXIT_INPUT)


def _waiting_for(session: Any, request_id: str) -> str:
    """What an operator must do before the request runs again, as commands to type."""
    parts = []
    pending = review.pending_count(session, request_id)
    if pending:
        parts.append(f"{pending} candidate record(s) to review: hub request review {request_id}")
    for task in ledger.tasks_of(session, request_id):
        if TaskState(task.state) != TaskState.MANUAL_PENDING:
            continue
        by_hand = manual.of(task)
        if by_hand is not None:
            parts.append(f"{by_hand.title}, by hand by {by_hand.due.isoformat()}: "
                         f"{by_hand.instructions} - then hub task confirm {request_id} "
                         f"{task.system} --outcome done|not_found|retained --note '...'")
        else:
            parts.append(f"{task.system} left something to confirm: hub task confirm "
                         f"{request_id} {task.system} --note '...'")
    return f"request {request_id} waits for an operator: " + "; ".join(parts)


def _numbers(values: list[str], total: int) -> list[int]:
    if values == ["all"]:
        return list(range(1, total + 1))
    try:
        return [int(v) for v in values]
    except ValueError:
        raise LedgerError("give candidate numbers as listed by hub request review, "
                          "or 'all'") from None


def _operator() -> str:
    return os.environ.get("HUB_OPERATOR") or os.environ.get("USER") or ""


@request_app.command("review")
@guarded
def request_review(
    request_id: str,
    approve: Annotated[list[str] | None, typer.Option(
        help="Act on this candidate too (its number, or 'all'); repeatable.")] = None,
    exclude: Annotated[list[str] | None, typer.Option(
        help="Never act on this candidate (its number, or 'all'); repeatable.")] = None,
    operator: Annotated[str | None, typer.Option(
        help="Who decides (default $HUB_OPERATOR, then $USER); in the audit trail.")] = None,
) -> None:
    """Candidate records a request reached but may not act on without an operator.

    Without options, lists them with why each matched. A record matched through the
    index cluster or a shared phone or address may be someone else's: approve only
    what is the subject's; the rest is never touched.
    """
    with store() as opened, opened.session() as session:
        listed = review.items(session, request_id)
        actor = (operator or _operator()).strip()
        for values, decision in ((approve, review.Decision.APPROVED),
                                 (exclude, review.Decision.EXCLUDED)):
            if values:
                review.decide(session, request_id, _numbers(values, len(listed)), decision,
                              actor=actor)
        listed = review.items(session, request_id)
        if not listed:
            _echo(f"request {request_id} has no candidate records")
        for item in listed:
            who = f" by {item.decided_by}" if item.decided_by else ""
            _echo(f"{item.number:>3}  {item.decision:<9} {item.system:<10} "
                       f"{item.kind:<15} {item.record:<24} {item.reason}{who}")
        row = ledger.get_request(session, request_id)
        if RequestState(row.state) == RequestState.AWAITING_REVIEW:
            _echo(_waiting_for(session, request_id))
        elif (approve or exclude) and RequestState(row.state) == RequestState.VERIFIED:
            _echo(f"every decision made: {request_id} runs again "
                       f"(the sensor starts it, or hub request run {request_id})")


@task_app.command("confirm")
@guarded
def task_confirm(
    request_id: str,
    system: str,
    note: Annotated[str, typer.Option(help="What was done, for the audit trail.")],
    outcome: Annotated[str, typer.Option(help="done, not_found or retained")] = "done",
    operator: Annotated[str | None, typer.Option(
        help="Who did it (default $HUB_OPERATOR, then $USER).")] = None,
    until: Annotated[str | None, typer.Option(
        help="retained: the last day of the hold, YYYY-MM-DD.")] = None,
    basis: Annotated[str | None, typer.Option(
        help="retained: the law or claim that requires keeping it.")] = None,
) -> None:
    """Confirm what a task left for a person to do: a system without an API (a paper
    archive), or what a connector could not remove (e.g. a synced mail)."""
    try:
        state = TaskState(outcome)
    except ValueError:
        raise LedgerError("--outcome is done, not_found or retained") from None
    try:
        held_until = date.fromisoformat(until) if until else None
    except ValueError:
        raise LedgerError(f"--until is a date as YYYY-MM-DD, not {until!r}") from None
    with store() as opened, opened.session() as session:
        review.confirm_task(session, request_id, system, state, note=note,
                            actor=(operator or _operator()).strip(), held_until=held_until,
                            legal_basis=basis, timezone=opened.settings.timezone)
        row = ledger.get_request(session, request_id)
        _echo(f"{request_id}/{system} confirmed {state.value}; request is {row.state}")


@request_app.command("reject")
@guarded
def request_reject(
    request_id: str,
    reason: Annotated[str, typer.Option(help="Why, as told to the subject.")],
) -> None:
    """Reject a request (e.g. identity could not be verified); its identifiers are dropped."""
    if not reason.strip():
        raise LedgerError("a rejection needs a --reason: the subject must be told why")
    with store() as opened, opened.session() as session:
        row, draft = letters.reject(session, request_id, reason.strip(), actor="operator",
                                    settings=opened.settings, hasher=opened.hasher)
        typer.echo(f"{row.id} rejected")
        _queued(draft)


@request_app.command("ask-identity")
@guarded
def request_ask_identity(
    request_id: str,
    ask: Annotated[str | None, typer.Option(
        help="What the subject should send or show, as told to them (default: reply from "
             "the address they gave, or show an ID at the office).")] = None,
) -> None:
    """Write to the subject asking them to prove who they are (GDPR art. 12(6))."""
    with store() as opened, opened.session() as session:
        row = ledger.get_request(session, request_id)
        if RequestState(row.state) != RequestState.RECEIVED:
            raise LedgerError(f"request {row.id} is {row.state}: identity is asked for "
                              "before it is verified")
        _queued(letters.queue_for(session, row, letters.Event.IDENTITY,
                                  settings=opened.settings, hasher=opened.hasher,
                                  note=(ask or "").strip() or None))


# --- letters -----------------------------------------------------------------------


@letters_app.command("list")
@guarded
def letters_list(request_id: Annotated[str | None, typer.Argument(
        help="Only this request's letters.")] = None) -> None:
    """Letters with their delivery state; recipients masked."""
    with store() as opened, opened.session() as session:
        rows = outbox.letters_of(session, request_id)
        if not rows:
            _echo("no letters")
            return
        _echo(f"{'id':>5} {'kind':<16} {'request':<18} {'via':<5} {'state':<8} {'tries':>5}  "
              "to / sent / error")
        for x in rows:
            when = x.sent_at.strftime("%Y-%m-%d %H:%M") if x.sent_at else ""
            tail = x.last_error or (f"next try {x.next_attempt_at:%Y-%m-%d %H:%M}"
                                    if x.next_attempt_at else "")
            _echo(f"{x.id:>5} {x.kind:<16} {x.request_id or '-':<18} {x.channel:<5} "
                  f"{x.state:<8} {x.attempts:>5}  {x.recipient_masked} {when} {tail}".rstrip())


@letters_app.command("show")
@guarded
def letters_show(letter_id: int) -> None:
    """One letter as it goes out (the operator handling it may read it, like request
    show); once sent, only its masked recipient and keyed hash are left."""
    with store() as opened, opened.session() as session:
        letter = outbox.get(session, letter_id)
        if letter is None:
            raise LedgerError(f"no letter with id {letter_id}")
        _echo(f"letter    {letter.id}  {letter.kind}  {letter.state}  by {letter.channel}"
              + (f"  for {letter.request_id}" if letter.request_id else ""))
        _echo(f"to        {letter.recipient or letter.recipient_masked}")
        _echo(f"subject   {letter.subject}")
        if letter.body is None:
            _echo(f"(the text is no longer kept; its keyed hash is {letter.body_hash})")
        else:
            _echo("")
            _echo(letters.as_text(letter.body).rstrip())


@letters_app.command("send")
@guarded
def letters_send() -> None:
    """Deliver what is due once (what the letter_outbox sensor does every 30 s)."""
    from delivery import worker

    with store() as opened:
        report = worker.tick(opened)
    _echo(report.summary())
    if report.failed:
        raise _fail(f"letters not delivered: {', '.join(map(str, report.failed))} "
                    "(hub letters list shows why)", EXIT_ENVIRONMENT)


@letters_app.command("posted")
@guarded
def letters_posted(
    letter_ids: list[int],
    operator: Annotated[str | None, typer.Option(
        help="Who posted them (default $HUB_OPERATOR, then $USER); in the audit trail.")]
    = None,
) -> None:
    """Record that letters by post were printed and posted; their PDFs are deleted."""
    with store() as opened, opened.session() as session:
        done = outbox.posted(session, opened.settings.home, letter_ids,
                             actor=(operator or _operator()).strip())
    _echo(f"posted: {', '.join(map(str, done)) or 'none (only PDFs not yet posted)'}")


@letters_app.command("retry")
@guarded
def letters_retry(letter_ids: list[int]) -> None:
    """Queue failed letters again now, with a fresh count of attempts."""
    with store() as opened, opened.session() as session:
        again = outbox.retry(session, letter_ids)
    _echo(f"queued again: {', '.join(map(str, again)) or 'none (only failed letters)'}")


# --- retention ---------------------------------------------------------------------


@retention_app.command("sweep")
@guarded
def retention_sweep(
    file: Annotated[bool, typer.Option(
        "--file", help="File a verified erasure request for each one due (default: only "
                       "list them).")] = False,
) -> None:
    """Who the policy's [retention] rule, or an ended legal hold, makes due; masked."""
    from hub import retention

    settings = load_settings()
    policy = load_policy(settings.policy_file)
    with store() as opened, opened.session() as session:
        swept = retention.sweep(session, opened.hasher, policy, file=file,
                                timezone=opened.settings.timezone)
        filed = {id(f.due): f for f in swept.filings}
        for item in swept.due:
            filing = filed.get(id(item))
            what = ("" if filing is None else
                    f"  -> {filing.request_id} {'filed' if filing.new else 'already open'}"
                    if filing.request_id else f"  -> not filed: {filing.note}")
            _echo(f"{item.reason.value:<19} {item.since.isoformat()}  {item.who}{what}")
        per_reason = ", ".join(f"{k} {n}" for k, n in sorted(swept.per_reason.items()))
        _echo(f"{len(swept.due)} due ({per_reason or 'none'}); "
              + (f"{len(swept.filed)} requests filed" if file else "dry run: --file files "
                 "erasure requests")
              + (f"; {swept.undated} without a known end (a record without a time)"
                 if swept.undated else "")
              + (f"; {len(swept.aggregated)} settled erasures reduced to counts"
                 if swept.aggregated else ""))


# --- persons -----------------------------------------------------------------------


@person_app.command("find")
@guarded
def person_find(
    identifier: Annotated[str, typer.Argument(help="An e-mail address or phone number.")],
) -> None:
    """Where the index last saw this person: every system and record, with any suppression."""
    ident = (Identifier(IdentifierKind.EMAIL, parse_email(identifier)) if "@" in identifier
             else Identifier(IdentifierKind.PHONE, parse_phone(identifier)))
    with store() as opened, opened.session() as session:
        reasons = suppression.reasons_for(session, opened.hasher, ident)
        if reasons:
            _echo(f"suppressed: {', '.join(sorted(reasons))}")
        person = index.lookup(session, ident)
        if person is None:
            _echo("not in the index")
            return
        _echo(f"person {person}")
        for system, records in index.records_of(session, person).items():
            for rec in records:
                seen = rec.updated_at.date().isoformat() if rec.updated_at else "-"
                _echo(f"  {system:<10} {rec.record_id:<24} {seen}  {rec.display_name or ''}")


# --- objections to lists -----------------------------------------------------------


@objection_app.command("add")
@guarded
def objection_add(
    email: Annotated[list[str] | None, typer.Option(
        help="The person's e-mail address; repeatable.")] = None,
    phone: Annotated[list[str] | None, typer.Option(
        help="The person's phone number; repeatable.")] = None,
    operator: Annotated[str | None, typer.Option(
        help="Who records it (default $HUB_OPERATOR, then $USER); in the audit trail.")]
    = None,
) -> None:
    """Record that a person forbids publishing them in lists (kept as keyed hashes)."""
    identifiers = intake.identifiers(email, phone)
    with store() as opened, opened.session() as session:
        objections.record(session, opened.hasher, identifiers,
                          actor=(operator or _operator()).strip() or "operator")
        _echo(f"objection to lists recorded for {', '.join(mask(i) for i in identifiers)}")


@objection_app.command("check")
@guarded
def objection_check(
    path: Annotated[Path, typer.Argument(help="The list to publish: CSV, or one e-mail or "
                                              "phone per line.")],
) -> None:
    """Before printing an attendee list or mailing labels: which rows may not be on it."""
    try:
        table = path.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LedgerError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}"
                          ) from None
    with store() as opened, opened.session() as session:
        rows, flagged = objections.screen(session, opened.hasher, table)
    for row in flagged:
        _echo(f"row {row.row}: objected to lists ({', '.join(row.masked)})")
    _echo(f"{len(flagged)} of {rows} row(s) objected to being published in lists")


# --- breach ------------------------------------------------------------------------


def _declared_systems(settings: Settings) -> dict[str, bool]:
    """The connectors' systems and the policy's manual ones (the shell knows both)."""
    from connectors import registry

    policy = load_policy(settings.policy_file, systems=registry.declarations())
    return breach_query.declared_systems(registry.names(), policy.manual_systems)


def _left(deadline: datetime, now: datetime) -> str:
    hours = (deadline - now).total_seconds() / 3600
    return f"PASSED {-hours:.0f}h ago" if hours < 0 else f"{hours:.0f}h left"


def _print_impact(found: breach_query.Impact, now: datetime, timezone: str) -> None:
    when = "%Y-%m-%d %H:%M %Z"
    since = f" (records changed since {found.since.isoformat()})" if found.since else ""
    _echo(f"breach impact: {found.system}{since}")
    zone = found.notify_by.tzinfo
    _echo("index as of   " + (found.indexed_at.astimezone(zone).strftime(when)
                              if found.indexed_at else "never synced"))
    _echo(f"detected      {found.detected_at.strftime(when)} ({timezone})")
    _echo(f"notify by     {found.notify_by.strftime(when)}   {_left(found.notify_by, now)}"
          "   (GDPR art. 33: 72 hours, to the Data Protection Ombudsman)")
    if found.by_hand:
        _echo(f"{found.system} is kept by hand (no API): the index holds none of its "
              "records; ask whoever keeps it")
    undated = f" ({found.undated} without an update time, counted in)" if found.undated else ""
    _echo(f"records       {found.records}{undated}")
    _echo(f"persons       {found.persons}")
    kinds = ", ".join(f"{k} {n}" for k, n in found.identifiers.items()) or "none"
    _echo(f"identifiers   {kinds}")
    flagged = ", ".join(f"{k} {n}" for k, n in found.categories.items()) or "none flagged"
    _echo(f"categories    {flagged} (special categories, art. 9)")
    if found.people:
        _echo("persons" + ("" if found.revealed else " (masked; --reveal shows them, audited)"))
    for person in found.people:
        _echo(f"  {person.person_id or '(unclustered)':<16} {', '.join(person.record_ids):<24} "
              f"{', '.join(person.identifiers) or '-'}   {person.name or ''}")


@app.command("breach")
@guarded
def breach(
    system: Annotated[str, typer.Argument(help="The breached system, as declared.")],
    since: Annotated[str | None, typer.Option(
        help="Only records the vendor changed on or after this day, YYYY-MM-DD.")] = None,
    detected: Annotated[str | None, typer.Option(
        help='When the breach was detected, "YYYY-MM-DD HH:MM" on the controller\'s clock '
             "(default now); the 72 hours count from it.")] = None,
    reveal: Annotated[bool, typer.Option(
        help="Identifiers and names in plain text, for the DPO; recorded as such.")] = False,
    operator: Annotated[str | None, typer.Option(
        help="Who asks (default $HUB_OPERATOR, then $USER); in the audit trail.")] = None,
) -> None:
    """Whose data a system holds (since a date), masked, and the art. 33 deadline.

    Read from the person index as of the system's last sync; every use is audited.
    """
    settings = load_settings()
    now = datetime.now(UTC)
    since_day = breach_query.parse_since(since) if since is not None else None
    detected_at = (breach_query.parse_detected(detected, settings.timezone, now=now)
                   if detected is not None else now)
    declared = _declared_systems(settings)
    breach_query.check_system(system, declared)
    with store() as opened, opened.session() as session:
        found = breach_query.impact(
            session, system, since=since_day, detected_at=detected_at, declared=declared,
            timezone=settings.timezone, actor=(operator or _operator()).strip(),
            reveal=reveal, now=now)
        _print_impact(found, now, settings.timezone)


# --- audit -------------------------------------------------------------------------


@audit_app.command("verify")
@guarded
def audit_verify(
    tip: Annotated[str | None, typer.Option(
        help="A tip written down earlier (SEQ:MAC from `hub audit tip`): also prove the "
             "trail still reaches it unchanged, which finds events cut from the end.")]
    = None,
) -> None:
    """Check the whole audit trail's keyed chain; exit 1 and say where it breaks."""
    recorded = audit.parse_tip(tip) if tip is not None else None
    with store() as opened, opened.session() as session:
        report = audit.verify(session, recorded=recorded)
    if not report.ok:
        raise _fail(f"audit trail broken at event {report.seq}: {report.problem}", EXIT_INPUT)
    reaches = f"; reaches the recorded tip (event {recorded.seq})" if recorded else ""
    typer.echo(f"audit trail intact: {report.events} events{reaches}")


@audit_app.command("tip")
@guarded
def audit_tip() -> None:
    """Print the verified trail's tip as SEQ:MAC, to write down outside the database.

    Nobody without HUB_SECRET can forge the chain, but someone with write access to
    the database can cut events from its end; `hub audit verify --tip SEQ:MAC` later
    shows whether the trail still reaches what was written down.
    """
    with store() as opened, opened.session() as session:
        report = audit.verify(session)
        if not report.ok:
            raise _fail(f"audit trail broken at event {report.seq}: {report.problem}; "
                        "a tip of a broken trail vouches for nothing", EXIT_INPUT)
        typer.echo(str(audit.tip(session)))


# --- the desk ----------------------------------------------------------------------


@user_app.command("add")
@guarded
def user_add(
    name: Annotated[str, typer.Argument(help="Lower-case letters, digits, '.', '_', '-'.")],
    role: Annotated[str, typer.Option(help="viewer, operator or admin")] = "operator",
    password_stdin: Annotated[bool, typer.Option(
        help="Read the password from the first line of stdin instead of prompting.")]
    = False,
) -> None:
    """Add a user who signs in to the desk (`hub desk`); the password is asked twice."""
    from desk import auth

    chosen = auth.Role.named(role)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    auth.check_new_user(name, password)
    with store() as opened, opened.session() as session:
        auth.add_user(session, name, password, chosen, actor=_operator() or "hub")
    typer.echo(f"user {name} added ({chosen.label})")


@app.command("desk")
@guarded
def desk(
    host: Annotated[str | None, typer.Option(
        help="Address to listen on (default HUB_DESK_HOST, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default HUB_DESK_PORT, 8470).")]
    = None,
) -> None:
    """Serve the privacy desk, the ops staff's web page, until Ctrl-C.

    Loopback by default: behind a TLS proxy set HUB_DESK_HTTPS_ONLY=1. The access log
    holds method, path and status only.
    """
    from desk.app import serve
    from desk.settings import DeskSettings

    settings, desk_settings = load_settings(), DeskSettings()
    bind, listen = host or desk_settings.host, port or desk_settings.port
    if bind not in ("127.0.0.1", "::1", "localhost") and not desk_settings.https_only:
        typer.echo(f"warning: listening on {bind} without HUB_DESK_HTTPS_ONLY=1: put the desk "
                   "behind a TLS proxy, or passwords and personal data cross the network in "
                   "clear", err=True)
    typer.echo(f"the desk: http://{bind}:{listen}/  (Ctrl-C stops it)")
    serve(settings, desk_settings, host=bind, port=listen)


def _mount_optional() -> None:
    """Subcommands from the other layers; the core works without them."""
    try:
        from sandbox.cli import app as sandbox_app
    except ImportError:
        return
    app.add_typer(sandbox_app, name="sandbox", help="Local emulators of the four vendors.")


_mount_optional()


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
