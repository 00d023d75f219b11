"""The subject-request ledger: requests, their tasks, states and deadlines.

Every request and every (request × system) task is in exactly one explicit state,
and the allowed moves between states are declared here and nowhere else
(DESIGN.md rule 1). A request keeps the subject's identifiers only until nothing
is left to retry; then only their keyed hashes remain (rule 6).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from hub import audit, deadlines, pointers, suppression
from hub.domain import Address, Corrections, Identifier, IdentifierKind
from hub.hashing import Hasher
from hub.identity import mask, mask_email, mask_phone, mask_text
from hub.models import RequestCorrectionRow, RequestIdentifierRow, SubjectRequestRow, TaskRow


class RequestKind(StrEnum):
    ACCESS = "access"
    ERASURE = "erasure"
    OPT_OUT = "opt_out"
    # Art. 16: corrected values pushed to every system holding the field.
    RECTIFICATION = "rectification"
    # Art. 18: marked restricted where a system can say so, out of marketing, and the
    # index frozen; lifting it is a request of its own (a run key per kind).
    RESTRICTION = "restriction"
    RESTRICTION_LIFT = "restriction_lift"


ACTIVE_KINDS = tuple(RequestKind)


class RequestState(StrEnum):
    RECEIVED = "received"
    VERIFIED = "verified"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    PARTIALLY_COMPLETED = "partially_completed"
    REJECTED = "rejected"
    # An operator must decide: candidate records to approve or exclude (rule 9), or
    # leftovers to confirm. Neither stuck nor silently narrowed: it runs again once
    # every decision is made.
    AWAITING_REVIEW = "awaiting_review"


class TaskState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    RETAINED = "retained"
    NOT_FOUND = "not_found"
    # Done what it could; an operator must confirm what is left (a synced mail the
    # API cannot delete, an activity that names the person).
    MANUAL_PENDING = "manual_pending"
    # Acted on the subject's own records; candidates wait for an operator's decision.
    REVIEW = "review"


RS, TS = RequestState, TaskState

REQUEST_TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    RS.RECEIVED: frozenset({RS.VERIFIED, RS.REJECTED}),
    RS.VERIFIED: frozenset({RS.IN_PROGRESS, RS.REJECTED}),
    RS.IN_PROGRESS: frozenset({RS.COMPLETED, RS.PARTIALLY_COMPLETED, RS.AWAITING_REVIEW}),
    RS.AWAITING_REVIEW: frozenset({RS.VERIFIED, RS.REJECTED}),
    # A partial result with failed tasks is retried; one with only legal holds is final.
    RS.PARTIALLY_COMPLETED: frozenset({RS.IN_PROGRESS}),
    RS.COMPLETED: frozenset(),
    RS.REJECTED: frozenset(),
}

TASK_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TS.PENDING: frozenset({TS.RUNNING, TS.MANUAL_PENDING}),
    TS.RUNNING: frozenset({TS.DONE, TS.FAILED, TS.RETAINED, TS.NOT_FOUND, TS.RUNNING,
                           TS.REVIEW, TS.MANUAL_PENDING}),
    TS.FAILED: frozenset({TS.RUNNING}),
    TS.REVIEW: frozenset({TS.RUNNING}),
    # pending again: the operator's work is read back by the next run (a network drive)
    TS.MANUAL_PENDING: frozenset({TS.DONE, TS.RETAINED, TS.NOT_FOUND, TS.PENDING}),
    TS.DONE: frozenset(),
    TS.RETAINED: frozenset(),
    TS.NOT_FOUND: frozenset(),
}

FINISHED_TASK_STATES = frozenset({TS.DONE, TS.RETAINED, TS.NOT_FOUND})
# Waiting for a person, not for the machine: the request waits in AWAITING_REVIEW.
OPERATOR_TASK_STATES = frozenset({TS.REVIEW, TS.MANUAL_PENDING})
OPEN_REQUEST_STATES = (RS.RECEIVED, RS.VERIFIED, RS.IN_PROGRESS, RS.PARTIALLY_COMPLETED,
                       RS.AWAITING_REVIEW)


GIVEN, FOUND = "given", "found"
# Filed by the retention sweep (hub/retention.py): the company's own erasure when its
# time to keep someone ran out, not the subject's objection, so it suppresses nobody.
RETENTION_ORIGIN = "retention"


class LedgerError(ValueError):
    """A request operation that cannot be done; the message is for the operator."""


class UnknownRequest(LedgerError):
    pass


class IllegalTransition(LedgerError):
    pass


@dataclass(frozen=True)
class RequestView:
    """A request as shown to an operator; identifiers masked unless asked for."""

    id: str
    kind: str
    state: str
    origin: str
    received_at: datetime
    due_on: date
    extended: bool
    extension_reason: str | None
    identifiers: tuple[tuple[str, str], ...]
    name: str | None
    tasks: tuple[tuple[str, str, str | None, int], ...]
    state_reason: str | None


def new_request_id(now: datetime) -> str:
    return f"R-{now:%Y%m%d}-{secrets.token_hex(3)}"


def effective_due(row: SubjectRequestRow) -> date:
    return row.extended_due_on or row.due_on


class Channel(StrEnum):
    """How a request arrived; a letter is answered by post unless the subject asks."""

    EMAIL = "email"
    LETTER = "letter"
    PHONE = "phone"
    DESK = "desk"  # in person, or a form the company runs
    WEB = "web"


class Language(StrEnum):
    """The languages the letters are written in (Finland's two, and English)."""

    FI = "fi"
    SV = "sv"
    EN = "en"


# GDPR applies from this day; a receipt date before it is a typing mistake.
GDPR_APPLIES = date(2018, 5, 25)


def create_request(session: Session, hasher: Hasher, kind: RequestKind,
                   identifiers: Sequence[Identifier], *, name: str | None = None,
                   now: datetime | None = None, timezone: str = "Europe/Helsinki",
                   origin: str = "manual", state_reason: str | None = None,
                   received_at: datetime | None = None, channel: Channel = Channel.EMAIL,
                   language: Language = Language.FI, actor: str = "hub",
                   corrections: Corrections | None = None,
                   postal_address: str | None = None) -> SubjectRequestRow:
    """File a request; the due date is one calendar month after receipt.

    ``received_at`` is when the request reached the company (a letter that arrived
    last week), not when it is typed in: the month counts from it (art. 12(3)). A
    rectification carries its corrected values (``corrections``), and only it does.
    """
    if kind not in ACTIVE_KINDS:
        raise LedgerError(f"{kind.value} requests are not supported yet")
    if kind == RequestKind.RECTIFICATION and (corrections is None or not corrections.fields()):
        raise LedgerError("a rectification needs at least one corrected value "
                          "(e-mail, phone, name or address)")
    if kind != RequestKind.RECTIFICATION and corrections is not None:
        raise LedgerError(f"a {kind.value} request carries no corrected values")
    matchable = [i for i in identifiers if i.kind != IdentifierKind.PHONE_RAW]
    if not matchable:
        raise LedgerError("a request needs at least one e-mail address or phone number")
    now = now or datetime.now(UTC)
    received_at = received_at or now
    if received_at > now:
        raise LedgerError(f"the request cannot have been received in the future "
                          f"({deadlines.local_date(received_at, timezone)})")
    if deadlines.local_date(received_at, timezone) < GDPR_APPLIES:
        raise LedgerError(f"a receipt date before {GDPR_APPLIES} (when the GDPR began to "
                          "apply) is surely a typing mistake")
    row = SubjectRequestRow(
        id=new_request_id(now), kind=kind.value, state=RS.RECEIVED.value, origin=origin,
        received_at=received_at, due_on=deadlines.due_date(received_at, timezone),
        subject_name=name, updated_at=now, state_reason=state_reason,
        channel=Channel(channel).value, language=Language(language).value,
        postal_address=(postal_address or "").strip() or None,
    )
    session.add(row)
    session.flush()  # the request row first: its identifiers reference it
    for ident in dict.fromkeys(matchable):
        session.add(RequestIdentifierRow(
            request_id=row.id, kind=ident.kind.value, hash=hasher.identifier(ident),
            value=ident.value, masked=mask(ident), source=GIVEN,
        ))
    for field, value, masked in _correction_rows(corrections):
        session.add(RequestCorrectionRow(request_id=row.id, field=field, value=value,
                                         masked=masked))
    session.flush()
    payload: dict[str, Any] = {
        "kind": kind.value, "origin": origin, "due_on": row.due_on.isoformat(),
        "received_at": received_at.isoformat(), "channel": row.channel,
        "language": row.language, "identifiers": [mask(i) for i in matchable]}
    if corrections is not None:
        payload["corrects"] = list(corrections.fields())
    audit.append(session, "request.received", payload, request_id=row.id, actor=actor,
                 now=now)
    return row


def flag_repeat_access(session: Session, hasher: Hasher, row: SubjectRequestRow,
                       identifiers: Sequence[Identifier], *,
                       timezone: str = "Europe/Helsinki") -> int:
    """Flag an access request as chargeable when it is not the subject's first this year.

    ``identifiers`` are every variant of the subject known (the given ones and their
    index person's, hub.duplicates.same_subject). Returns the request's number in the
    year; the operator decides whether to charge (art. 12(5)) or answer free.
    """
    if RequestKind(row.kind) != RequestKind.ACCESS:
        return 0
    year = deadlines.local_date(row.received_at, timezone).year
    count = access_count_in_year(session, hasher, identifiers, year, timezone=timezone,
                                 until=row.received_at)
    if count > 1 and not row.chargeable:
        row.chargeable = True
        audit.append(session, "request.chargeable", {"year": year, "number": count},
                     request_id=row.id)
    return count


_ADDRESS_SEPARATOR = "\n"


def _correction_rows(corrections: Corrections | None) -> list[tuple[str, str, str]]:
    """(field, plaintext value, masked value) for each corrected field."""
    if corrections is None:
        return []
    rows = []
    if corrections.email is not None:
        rows.append(("email", corrections.email, mask_email(corrections.email)))
    if corrections.phone is not None:
        rows.append(("phone", corrections.phone, mask_phone(corrections.phone)))
    if corrections.name is not None:
        rows.append(("name", corrections.name, mask_text(corrections.name)))
    if corrections.address is not None:
        a = corrections.address
        rows.append(("address", _ADDRESS_SEPARATOR.join((a.street, a.postcode, a.city,
                                                         a.country)), mask_text(a.line())))
    return rows


def corrections_of(session: Session, request_id: str) -> Corrections | None:
    """The request's corrected values; None when it has none or they were dropped."""
    values = {r.field: r.value for r in session.execute(
        select(RequestCorrectionRow).where(RequestCorrectionRow.request_id == request_id)
    ).scalars() if r.value is not None}
    if not values:
        return None
    address = None
    if "address" in values:
        street, postcode, city, country = values["address"].split(_ADDRESS_SEPARATOR)
        address = Address(street, postcode, city, country)
    return Corrections(email=values.get("email"), phone=values.get("phone"),
                       name=values.get("name"), address=address)


def corrections_masked(session: Session, request_id: str) -> list[tuple[str, str]]:
    """(field, masked value) of the request's corrections, for an operator's screen."""
    return [(r.field, r.masked) for r in session.execute(
        select(RequestCorrectionRow).where(RequestCorrectionRow.request_id == request_id)
        .order_by(RequestCorrectionRow.field)).scalars()]


def get_request(session: Session, request_id: str) -> SubjectRequestRow:
    row = session.get(SubjectRequestRow, request_id)
    if row is None:
        raise UnknownRequest(f"no request with id {request_id!r}")
    return row


def lock_request(session: Session, request_id: str) -> SubjectRequestRow:
    """The request, locked for the rest of the transaction, read afresh.

    Deciding from a request's tasks (settling it, or an operator's confirmation that
    resumes it) must not interleave with another such decision: found, a confirmation
    that read the request still in progress while the completion check was moving it
    to awaiting review left it awaiting a task that was already confirmed, for ever.
    PostgreSQL locks the row (SELECT ... FOR UPDATE); SQLite, which has no row locks,
    takes its one write lock now with a no-op UPDATE, before anything is read, so the
    other writer waits (busy timeout) instead of deciding from what it read before.
    Call it first in the transaction, before reading the request's tasks.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(SubjectRequestRow).where(SubjectRequestRow.id == request_id)
                        .values(id=SubjectRequestRow.id)
                        .execution_options(synchronize_session=False))
    row = session.execute(
        select(SubjectRequestRow).where(SubjectRequestRow.id == request_id).with_for_update()
        .execution_options(populate_existing=True)).scalar_one_or_none()
    if row is None:
        raise UnknownRequest(f"no request with id {request_id!r}")
    return row


def transition(session: Session, row: SubjectRequestRow, to: RequestState, *,
               reason: str | None = None, now: datetime | None = None,
               actor: str = "hub") -> None:
    current = RequestState(row.state)
    if to not in REQUEST_TRANSITIONS[current]:
        raise IllegalTransition(
            f"request {row.id} is {current.value}; it cannot become {to.value}"
        )
    now = now or datetime.now(UTC)
    row.state, row.updated_at = to.value, now
    if reason is not None:
        row.state_reason = reason
    if to == RS.VERIFIED:
        row.verified_at = now
    if to in (RS.COMPLETED, RS.PARTIALLY_COMPLETED, RS.REJECTED):
        row.completed_at = now
    audit.append(session, f"request.{to.value}", {"from": current.value, "reason": reason},
                 request_id=row.id, actor=actor, now=now)


def verify(session: Session, request_id: str, *, actor: str = "operator",
           now: datetime | None = None) -> SubjectRequestRow:
    """Record that the requester's identity was checked (the controller may ask)."""
    row = get_request(session, request_id)
    transition(session, row, RS.VERIFIED, now=now, actor=actor)
    return row


def reject(session: Session, request_id: str, reason: str, *, actor: str = "operator",
           now: datetime | None = None) -> SubjectRequestRow:
    row = get_request(session, request_id)
    transition(session, row, RS.REJECTED, reason=reason, now=now, actor=actor)
    scrub(session, row)
    return row


def extend(session: Session, request_id: str, reason: str, *, months: int = 2,
           now: datetime | None = None, timezone: str = "Europe/Helsinki",
           actor: str = "operator") -> SubjectRequestRow:
    """Extend once, by up to two months, within the first month, with a reason (art. 12(3))."""
    row = get_request(session, request_id)
    now = now or datetime.now(UTC)
    if not reason.strip():
        raise LedgerError("an extension needs a reason: the subject must be told why")
    if row.extended_due_on is not None:
        raise LedgerError(f"request {row.id} was already extended to {row.extended_due_on}")
    if RequestState(row.state) not in OPEN_REQUEST_STATES:
        raise LedgerError(f"request {row.id} is {row.state}; only open requests are extended")
    if deadlines.local_date(now, timezone) > row.due_on:
        raise LedgerError(
            f"request {row.id} was due on {row.due_on}: an extension must be decided and "
            "told to the subject within the first month"
        )
    try:
        row.extended_due_on = deadlines.extended_due_date(row.received_at, timezone, months)
    except ValueError as exc:
        raise LedgerError(str(exc)) from None
    row.extension_reason, row.updated_at = reason.strip(), now
    audit.append(session, "request.extended", {
        "months": months, "due_on": row.extended_due_on.isoformat(), "reason": reason.strip(),
    }, request_id=row.id, actor=actor, now=now)
    return row


def awaiting_work() -> Any:
    """Requests the company still owes an answer: not yet run, running, or with failed tasks.

    A request partially completed only because of legal holds is answered; one with
    a failed task is not, and its deadline still runs.
    """
    failed = select(TaskRow.pk).where(TaskRow.request_id == SubjectRequestRow.id,
                                      TaskRow.state == TS.FAILED.value).exists()
    waiting = (RS.RECEIVED.value, RS.VERIFIED.value, RS.IN_PROGRESS.value,
               RS.AWAITING_REVIEW.value)
    return SubjectRequestRow.state.in_(waiting) | (
        (SubjectRequestRow.state == RS.PARTIALLY_COMPLETED.value) & failed)


def stuck_tasks(session: Session, *, older_than: datetime) -> list[TaskRow]:
    """Tasks running (or waiting to run for a started request) since before `older_than`."""
    return list(session.execute(
        select(TaskRow).where(TaskRow.state.in_([TS.RUNNING.value, TS.PENDING.value]),
                              TaskRow.updated_at < older_than)
        .order_by(TaskRow.updated_at)
    ).scalars())


def unlaunched(session: Session, *, older_than: datetime) -> list[SubjectRequestRow]:
    """Verified requests that no run has started since before `older_than`."""
    return list(session.execute(
        select(SubjectRequestRow).where(SubjectRequestRow.state == RS.VERIFIED.value,
                                        SubjectRequestRow.verified_at < older_than)
        .order_by(SubjectRequestRow.verified_at)
    ).scalars())


def list_requests(session: Session, *, today: date, overdue: bool = False,
                  due_within: int | None = None, state: RequestState | None = None,
                  limit: int = 500) -> list[SubjectRequestRow]:
    """Open requests by deadline; overdue and due-soon are the questions ops ask daily."""
    due = func.coalesce(SubjectRequestRow.extended_due_on, SubjectRequestRow.due_on)
    query = select(SubjectRequestRow).order_by(due, SubjectRequestRow.received_at).limit(limit)
    if state is not None:
        query = query.where(SubjectRequestRow.state == state.value)
    if overdue or due_within is not None:
        query = query.where(awaiting_work())
    if overdue:
        query = query.where(due < today)
    if due_within is not None:
        query = query.where(due <= date.fromordinal(today.toordinal() + due_within))
    return list(session.execute(query).scalars())


def verified_page(session: Session, *, after: tuple[datetime, str] | None,
                  limit: int) -> list[SubjectRequestRow]:
    """Verified requests waiting to run, in (verified_at, id) order, after a cursor."""
    query = (select(SubjectRequestRow)
             .where(SubjectRequestRow.state == RS.VERIFIED.value)
             .order_by(SubjectRequestRow.verified_at, SubjectRequestRow.id).limit(limit))
    if after is not None:
        at, request_id = after
        query = query.where(
            (SubjectRequestRow.verified_at > at)
            | ((SubjectRequestRow.verified_at == at) & (SubjectRequestRow.id > request_id))
        )
    return list(session.execute(query).scalars())


def identifiers_of(session: Session, request_id: str, *, source: str = GIVEN
                   ) -> list[Identifier]:
    """The subject's plaintext identifiers as given (or as found on records it erased);
    empty once the request has been scrubbed."""
    rows = session.execute(
        select(RequestIdentifierRow).where(RequestIdentifierRow.request_id == request_id,
                                           RequestIdentifierRow.source == source)
        .order_by(RequestIdentifierRow.kind, RequestIdentifierRow.masked)
    ).scalars()
    return [Identifier(IdentifierKind(r.kind), r.value) for r in rows if r.value is not None]


def add_found_identifiers(session: Session, hasher: Hasher, request_id: str,
                          identifiers: Sequence[Identifier]) -> int:
    """Remember identifiers read on records the request erased, for the suppression list.

    The operator types one e-mail; the erased CRM record also held a phone. Without
    the phone's hash on the list, the person re-entered with only that phone is not
    caught (rule 6). Kept like the given ones: plaintext until the request is scrubbed.
    """
    known = {h for _, h in identifier_hashes(session, request_id)}
    added = 0
    for ident in dict.fromkeys(i for i in identifiers if i.kind != IdentifierKind.PHONE_RAW):
        digest = hasher.identifier(ident)
        if digest in known:
            continue
        known.add(digest)
        session.add(RequestIdentifierRow(request_id=request_id, kind=ident.kind.value,
                                         hash=digest, value=ident.value, masked=mask(ident),
                                         source=FOUND))
        added += 1
    session.flush()
    return added


def identifier_hashes(session: Session, request_id: str, *, shared: bool = True
                      ) -> list[tuple[str, str]]:
    """(kind, hash) of the request's identifiers; ``shared=False`` leaves out those
    another person uses too."""
    query = select(RequestIdentifierRow.kind, RequestIdentifierRow.hash).where(
        RequestIdentifierRow.request_id == request_id)
    if not shared:
        query = query.where(RequestIdentifierRow.shared.is_(False))
    return [(k, h) for k, h in session.execute(query)]


def mark_shared(session: Session, hasher: Hasher, request_id: str,
                identifiers: Sequence[Identifier]) -> int:
    """Note that someone else uses these identifiers of the request too (rule 9)."""
    hashes = {hasher.identifier(i) for i in identifiers}
    marked = 0
    for row in session.execute(select(RequestIdentifierRow).where(
            RequestIdentifierRow.request_id == request_id)).scalars():
        if row.hash in hashes and not row.shared:
            row.shared, marked = True, marked + 1
    session.flush()
    return marked


def unshared_identifiers(session: Session, request_id: str) -> list[Identifier]:
    """Given and found identifiers nobody else is known to use: what settling acts on."""
    rows = session.execute(select(RequestIdentifierRow).where(
        RequestIdentifierRow.request_id == request_id,
        RequestIdentifierRow.shared.is_(False))).scalars()
    return [Identifier(IdentifierKind(r.kind), r.value) for r in rows if r.value is not None]


def access_count_in_year(session: Session, hasher: Hasher, identifiers: Sequence[Identifier],
                         year: int, *, timezone: str = "Europe/Helsinki",
                         until: datetime | None = None) -> int:
    """Access requests by this subject in a calendar year (the first is free).

    The year is the controller's calendar year: a request sent at 00:30 on
    1 January in Helsinki belongs to the new year.
    """
    hashes = [hasher.identifier(i) for i in identifiers]
    if not hashes:
        return 0
    zone = ZoneInfo(timezone)
    start = datetime(year, 1, 1, tzinfo=zone).astimezone(UTC)
    end = datetime(year + 1, 1, 1, tzinfo=zone).astimezone(UTC)
    query = (
        select(func.count(func.distinct(SubjectRequestRow.id)))
        .join(RequestIdentifierRow, RequestIdentifierRow.request_id == SubjectRequestRow.id)
        .where(SubjectRequestRow.kind == RequestKind.ACCESS.value,
               SubjectRequestRow.received_at >= start, SubjectRequestRow.received_at < end,
               SubjectRequestRow.state != RS.REJECTED.value,
               RequestIdentifierRow.hash.in_(hashes))
    )
    if until is not None:  # a letter filed late counts where it arrived, not after
        query = query.where(SubjectRequestRow.received_at <= until)
    return int(session.execute(query).scalar_one())


# --- tasks -----------------------------------------------------------------------


def ensure_tasks(session: Session, row: SubjectRequestRow, systems: Sequence[str], *,
                 now: datetime | None = None) -> list[TaskRow]:
    """One task per system, created once: re-planning never duplicates or resets work."""
    now = now or datetime.now(UTC)
    existing = {t.system: t for t in tasks_of(session, row.id)}
    for system in systems:
        if system not in existing:
            task = TaskRow(request_id=row.id, system=system, state=TS.PENDING.value,
                           attempts=0, created_at=now, updated_at=now)
            session.add(task)
            existing[system] = task
    session.flush()
    return [existing[s] for s in sorted(existing)]


def tasks_of(session: Session, request_id: str) -> list[TaskRow]:
    return list(session.execute(
        select(TaskRow).where(TaskRow.request_id == request_id).order_by(TaskRow.system)
        .execution_options(populate_existing=True)  # as committed, after lock_request
    ).scalars())


def get_task(session: Session, request_id: str, system: str) -> TaskRow:
    task = session.execute(
        select(TaskRow).where(TaskRow.request_id == request_id, TaskRow.system == system)
    ).scalar_one_or_none()
    if task is None:
        raise LedgerError(f"request {request_id} has no task for {system}")
    return task


# States a worker may take a task from. RUNNING is not among them: a running task
# belongs to the worker that claimed it, unless that worker is known to be dead.
CLAIMABLE_TASK_STATES = frozenset({TS.PENDING, TS.FAILED, TS.REVIEW})


def claim_task(session: Session, request_id: str, system: str, *, take_over: bool = False,
               now: datetime | None = None) -> TaskRow | None:
    """Move the task to running in one compare-and-set; None when another worker has it.

    Reading the state and then writing it let two workers (two runs of one request
    on an instance without pools) both see "pending" and both call every vendor.
    The UPDATE below succeeds for exactly one of them, on SQLite and PostgreSQL
    alike. ``take_over`` also claims a RUNNING task: only for a caller that knows
    the worker holding it is dead (its run ended or its process is gone).
    """
    now = now or datetime.now(UTC)
    states = {*CLAIMABLE_TASK_STATES, *((TS.RUNNING,) if take_over else ())}
    claimed = session.execute(
        update(TaskRow)
        .where(TaskRow.request_id == request_id, TaskRow.system == system,
               TaskRow.state.in_([s.value for s in states]))
        .values(state=TS.RUNNING.value, attempts=TaskRow.attempts + 1, started_at=now,
                error=None, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        return None
    task = get_task(session, request_id, system)
    session.refresh(task)  # the UPDATE bypassed the session: load what it wrote
    audit.append(session, "task.running", {
        "system": system, "attempt": task.attempts, "action": None, "error": None,
    }, request_id=request_id, now=now)
    return task


def release_orphaned(session: Session, request_id: str, reason: str, *,
                     now: datetime | None = None) -> list[str]:
    """Fail the running tasks of a request whose every run has ended (rule 1).

    Called only once the caller knows no live run of the request is left: a task
    still running then belongs to a dead worker. Failed, it is claimable again and
    resumes from its journal.
    """
    released = []
    for task in tasks_of(session, request_id):
        if TaskState(task.state) == TS.RUNNING:
            move_task(session, task, TS.FAILED, error=reason, now=now)
            released.append(task.system)
    return released


def move_task(session: Session, task: TaskRow, to: TaskState, *, action: str | None = None,
              evidence: dict[str, Any] | None = None, error: str | None = None,
              now: datetime | None = None) -> None:
    current = TaskState(task.state)
    if to not in TASK_TRANSITIONS[current]:
        raise IllegalTransition(
            f"task {task.request_id}/{task.system} is {current.value}; "
            f"it cannot become {to.value}"
        )
    now = now or datetime.now(UTC)
    task.state, task.updated_at = to.value, now
    if to == TS.RUNNING:
        task.attempts += 1
        task.started_at, task.error = now, None
    else:
        task.finished_at = now
    if action is not None:
        task.action = action
    if evidence is not None:
        task.evidence = evidence
    if error is not None:
        task.error = error
    audit.append(session, f"task.{to.value}", {
        "system": task.system, "attempt": task.attempts, "action": action,
        "error": error,
    }, request_id=task.request_id, now=now)


def finalise(session: Session, hasher: Hasher, row: SubjectRequestRow, *,
             now: datetime | None = None) -> RequestState:
    """Settle the request from its tasks; scrub identifiers once nothing can be retried.

    completed: every task done or not found. partially completed: some retained
    under a legal hold (final) or failed (retryable: identifiers are kept so the
    failed systems can run again alone). awaiting review: some task waits for an
    operator's decision. Suppression entries are written for erasures, opt-outs and
    restrictions (removed for a lifted one) as soon as nothing remains to retry or
    decide. The request is locked first (``lock_request``): an operator's confirmation
    waits, and then sees what this decided.
    """
    lock_request(session, row.id)
    tasks = tasks_of(session, row.id)
    states = {TaskState(t.state) for t in tasks}
    unfinished = states - FINISHED_TASK_STATES - OPERATOR_TASK_STATES - {TS.FAILED}
    if unfinished:
        raise LedgerError(
            f"request {row.id} still has tasks {', '.join(sorted(s.value for s in unfinished))}"
        )
    if states & OPERATOR_TASK_STATES:
        # Nothing is settled, scrubbed or suppressed while an operator still decides.
        if RequestState(row.state) != RS.AWAITING_REVIEW:
            transition(session, row, RS.AWAITING_REVIEW, now=now,
                       reason="waiting for an operator: hub request show " + row.id)
        return RS.AWAITING_REVIEW
    target = RS.COMPLETED if states <= {TS.DONE, TS.NOT_FOUND} else RS.PARTIALLY_COMPLETED
    if RequestState(row.state) != target:
        transition(session, row, target, now=now)
    if TS.FAILED not in states:
        kind = RequestKind(row.kind)
        own = identifier_hashes(session, row.id, shared=False)
        # A customer erased because retention ended may come back: no drift then.
        if kind in (RequestKind.ERASURE, RequestKind.OPT_OUT, RequestKind.RESTRICTION) \
                and row.origin != RETENTION_ORIGIN:
            suppression.add_hashes(session, own, reason=kind.value, request_id=row.id, now=now)
        elif kind == RequestKind.RESTRICTION_LIFT:
            suppression.remove_hashes(session, own, reason=RequestKind.RESTRICTION.value)
        pointers.minimise(session, hasher, tasks)  # a file's path may name a person
        scrub(session, row)
    return target


def scrub(session: Session, row: SubjectRequestRow) -> None:
    """Drop the plaintext identifiers, corrected values, name and address; the hashes
    (and the masked corrections) stay for counting and audit. Undelivered letters keep
    theirs until sent (hub.outbox)."""
    for ident in session.execute(
        select(RequestIdentifierRow).where(RequestIdentifierRow.request_id == row.id)
    ).scalars():
        ident.value = None
    for correction in session.execute(
        select(RequestCorrectionRow).where(RequestCorrectionRow.request_id == row.id)
    ).scalars():
        correction.value = None
    if row.subject_name is not None:
        row.subject_name = None
    row.postal_address = None


def view(session: Session, row: SubjectRequestRow, *, reveal: bool = False) -> RequestView:
    idents = session.execute(
        select(RequestIdentifierRow).where(RequestIdentifierRow.request_id == row.id,
                                           RequestIdentifierRow.source == GIVEN)
        .order_by(RequestIdentifierRow.kind)
    ).scalars()
    shown = tuple(
        (i.kind, i.value if reveal and i.value is not None else i.masked) for i in idents
    )
    name = row.subject_name
    if name is not None and not reveal:
        name = mask_text(name)
    tasks = tuple((t.system, t.state, t.action, t.attempts) for t in tasks_of(session, row.id))
    return RequestView(
        id=row.id, kind=row.kind, state=row.state, origin=row.origin,
        received_at=row.received_at, due_on=effective_due(row),
        extended=row.extended_due_on is not None, extension_reason=row.extension_reason,
        identifiers=shown, name=name, tasks=tasks, state_reason=row.state_reason,
    )
