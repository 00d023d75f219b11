"""Retention schedules: who is due for erasure because the company's time to keep them ran out.

The statements promise erasure without being asked (obligations.md, "Retention and
minimisation"): N years after the customer relationship ended (controller B: 10),
in the January after the year the service ended (controller D), and, for what the
Accounting Act kept, when the bookkeeping hold ends (rule 5: a hold whose end has
passed is no hold). The policy's ``[retention]`` section says which rule applies.

The end of a customer relationship is the latest activity the index knows of the
person: the most recent ``vendor_updated_at`` over their live records (the vendor's
own time of last change, per system). The hub holds no better signal (no contract
end, no last invoice date), and this one errs on the safe side: any change in any
system, an edit as much as a sale, moves the end later, so the rule erases later,
never earlier. A person with a record whose vendor gives no time is not due (the
end is unknown), and records under a running legal hold do not count: their hold's
end brings them up on its own.

Who is due is listed with masked identifiers only (``Due``: it goes to Dagster and
to a terminal). Filing is separate and explicit (``file_requests``): one verified
erasure request per person, origin ``retention``, that runs like any other, and one
per kept record whose hold ended, naming the record itself (``_file_hold``). Such an
erasure writes no suppression entry (``hub.ledger.finalise``): the company ended
the relationship, the subject objected to nothing, and a customer who comes back
is welcome rather than drift to erase again.

``aggregate_only`` (controller D: "afterwards only counts remain"): once a retention
erasure has settled, ``aggregate`` drops what still ties it to a person: the
identifiers' keyed hashes and masked forms, the journal and review items (record
ids), and the per-record part of each task's evidence. What remains is the request
(kind, origin, dates, state) with, per system, its state, action and counts, and
any legal hold the law still requires, with what enforcing and ending it needs: the
kept record's pointer, basis and end in the evidence, and, while the hold is on the
books (until its follow-up erasure is filed), the keyed hashes of the identifiers,
so an access request by the person still shows what is kept and why
(``holds.holds_of_subject``, rule 5) and the erasure filed when the hold ends carries
them (``_file_hold``). The next sweep after that drops them too. The audit trail is
hash-chained and keeps the masked identifiers its ``request.received`` event was
written with.
"""

from __future__ import annotations

import calendar
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import Exists, delete, exists, func, or_, select
from sqlalchemy.orm import Session

from hub import audit, deadlines, duplicates, index, journal, ledger, manual
from hub.deadlines import local_date
from hub.domain import Identifier, RecordRef
from hub.hashing import Hasher
from hub.identity import mask
from hub.ledger import RETENTION_ORIGIN, RequestKind, RequestState, TaskState
from hub.models import (
    AuditEventRow,
    LegalHoldRow,
    RequestIdentifierRow,
    ReviewItemRow,
    SourceRecordRow,
    SubjectRequestRow,
    TaskActionRow,
    TaskRow,
)
from hub.policy import Policy, RetentionPolicy

ACTOR = "retention"
SR = SourceRecordRow


class Reason(StrEnum):
    RELATIONSHIP_ENDED = "relationship_ended"
    """``after_relationship_years`` have passed since the last activity."""
    SERVICE_ENDED = "service_ended"
    """A January after the year of the last activity (``january_after_service_end``)."""
    HOLD_ENDED = "hold_ended"
    """A bookkeeping (or other legal) hold on a kept record has ended."""


@dataclass(frozen=True)
class Due:
    """Someone due for erasure, as Dagster and a terminal may see them: nothing plain.

    A person (``person_id``) for a relationship rule; a record (``system``,
    ``record_id``, with ``request_id`` the erasure that kept it) for an ended hold.
    ``since`` is the last activity, or the hold's last day.
    """

    reason: Reason
    since: date
    masked: tuple[str, ...]
    person_id: str | None = None
    system: str | None = None
    record_id: str | None = None
    request_id: str | None = None

    @property
    def who(self) -> str:
        return ", ".join(self.masked) or "(no identifier left)"


@dataclass(frozen=True)
class Filing:
    """What filing did for one ``Due``: a new request, one already open, or why none."""

    due: Due
    request_id: str | None
    new: bool
    note: str = ""


@dataclass(frozen=True)
class Sweep:
    due: list[Due]
    filings: list[Filing]
    undated: int
    """People the rule would look at whose end is unknown (a record without a time)."""
    aggregated: list[str]

    @property
    def per_reason(self) -> dict[str, int]:
        return dict(Counter(d.reason.value for d in self.due))

    @property
    def filed(self) -> list[str]:
        return [f.request_id for f in self.filings if f.new and f.request_id]


def years_before(day: date, years: int) -> date:
    """The same date ``years`` earlier; 29 February becomes 28 February."""
    year = day.year - years
    return day.replace(year=year, day=min(day.day, calendar.monthrange(year, day.month)[1]))


def relationship_due(rule: RetentionPolicy, last: date, today: date) -> bool:
    """Whether a relationship whose last activity was on ``last`` is due on ``today``.

    ``after_relationship_years``: the years are over once their last day has passed
    (the anniversary of ``last``; 29 February ends on 28 February).
    ``january_after_service_end``: from 1 January of the year after ``last``.
    """
    if rule.after_relationship_years is not None:
        year = last.year + rule.after_relationship_years
        ends = last.replace(year=year,
                            day=min(last.day, calendar.monthrange(year, last.month)[1]))
        return ends < today
    if rule.january_after_service_end:
        return last.year < today.year
    return False


def _earliest_safe_bound(rule: RetentionPolicy, today: date) -> date | None:
    """A date no due relationship's last activity reaches: a cheap filter for the query.

    Slightly generous (two days) around leap days; ``relationship_due`` decides exactly.
    """
    if rule.after_relationship_years is not None:
        return years_before(today, rule.after_relationship_years) + timedelta(days=2)
    if rule.january_after_service_end:
        return date(today.year, 1, 1)
    return None


def _running_hold(today: date) -> Exists:
    """The record is kept under a hold that still runs on ``today``."""
    return exists().where(LegalHoldRow.system == SR.system,
                          LegalHoldRow.record_id == SR.record_id,
                          LegalHoldRow.held_until >= today)


def _start_of(day: date, timezone: str) -> datetime:
    return datetime.combine(day, time(), ZoneInfo(timezone)).astimezone(UTC)


def _people_due(session: Session, rule: RetentionPolicy, today: date, timezone: str
                ) -> tuple[list[Due], int]:
    bound = _earliest_safe_bound(rule, today)
    if bound is None:
        return [], 0
    last = func.max(SR.vendor_updated_at)
    rows = session.execute(
        select(SR.person_id, last, func.count(), func.count(SR.vendor_updated_at))
        .where(SR.gone_at.is_(None), SR.person_id.is_not(None), ~_running_hold(today))
        .group_by(SR.person_id)
        .having(or_(last < _start_of(bound, timezone), last.is_(None)))
        .order_by(last, SR.person_id)
    ).all()
    reason = (Reason.RELATIONSHIP_ENDED if rule.after_relationship_years is not None
              else Reason.SERVICE_ENDED)
    found, undated = [], 0
    for person_id, latest, records, dated in rows:
        if dated < records:
            undated += 1
            continue
        since = local_date(latest, timezone)
        if relationship_due(rule, since, today):
            found.append(Due(reason, since, _masked(session, person_id), person_id=person_id))
    return found, undated


def _masked(session: Session, person_id: str) -> tuple[str, ...]:
    return tuple(mask(i) for i in index.identifiers_of_person(session, person_id))


def _holds_ended(session: Session, today: date, timezone: str) -> list[Due]:
    """Kept records whose every hold has ended, unless something acted on them since.

    A request other than those that kept it (an erasure that reached the record
    again after the end) journals the record; a record the vendor no longer has is
    gone from the index. Filing removes the ended holds (``_file_hold``).
    """
    ended = func.max(LegalHoldRow.held_until)
    rows = session.execute(
        select(LegalHoldRow.system, LegalHoldRow.record_id, ended,
               func.max(LegalHoldRow.request_id))
        .group_by(LegalHoldRow.system, LegalHoldRow.record_id).having(ended < today)
        .order_by(ended, LegalHoldRow.system, LegalHoldRow.record_id)
    ).all()
    found = []
    for system, record_id, until, request_id in rows:
        after = _start_of(until + timedelta(days=1), timezone)
        keepers = select(LegalHoldRow.request_id).where(LegalHoldRow.system == system,
                                                         LegalHoldRow.record_id == record_id)
        acted = session.execute(select(exists().where(
            TaskActionRow.system == system, TaskActionRow.record_id == record_id,
            TaskActionRow.at >= after, TaskActionRow.request_id.not_in(keepers)))).scalar()
        gone = session.execute(select(exists().where(
            SR.system == system, SR.record_id == record_id, SR.gone_at.is_not(None)))).scalar()
        if not acted and not gone:
            found.append(Due(Reason.HOLD_ENDED, until, (f"{system} record {record_id}",),
                             system=system, record_id=record_id, request_id=request_id))
    return found


def due(session: Session, policy: Policy, today: date, *,
        timezone: str = "Europe/Helsinki") -> list[Due]:
    """Everyone the policy's retention rule, or an ended hold, makes due on ``today``."""
    return _due(session, policy, today, timezone)[0]


def _due(session: Session, policy: Policy, today: date, timezone: str
         ) -> tuple[list[Due], int]:
    people, undated = _people_due(session, policy.retention, today, timezone)
    return [*people, *_holds_ended(session, today, timezone)], undated


def _own_identifiers(session: Session, person_id: str) -> list[Identifier]:
    """The person's identifiers nobody else in the index uses (rule 9)."""
    found = index.identifiers_of_person(session, person_id)
    shared = index.shared_identifiers(session, found)
    return [i for i in found if i not in shared]


def _erased_since(session: Session, hasher: Hasher, identifiers: Sequence[Identifier],
                  last: date, timezone: str) -> str | None:
    """A retention erasure of these identifiers received after ``last``, if any.

    What such an erasure left in the index (a candidate an operator excluded, a
    record that came back with a full sync) would otherwise be filed again at every
    sweep; a new activity after it starts a new relationship and a new count. Found by
    keyed hash, so not once ``aggregate_only`` has reduced that erasure to counts.
    """
    hashes = [hasher.identifier(i) for i in identifiers]
    return session.scalars(
        select(SubjectRequestRow.id)
        .join(RequestIdentifierRow, RequestIdentifierRow.request_id == SubjectRequestRow.id)
        .where(SubjectRequestRow.origin == RETENTION_ORIGIN,
               SubjectRequestRow.kind == RequestKind.ERASURE.value,
               SubjectRequestRow.state != RequestState.REJECTED.value,
               SubjectRequestRow.received_at >= _start_of(last + timedelta(days=1), timezone),
               RequestIdentifierRow.hash.in_(hashes))
        .order_by(SubjectRequestRow.received_at.desc()).limit(1)).first()


def _file_person(session: Session, hasher: Hasher, item: Due, *, now: datetime,
                 timezone: str) -> Filing:
    assert item.person_id is not None
    own = _own_identifiers(session, item.person_id)
    if not own:
        return Filing(item, None, False, (
            "every identifier is shared with someone else: file by hand after checking "
            "whose it is") if item.masked else "no e-mail or phone to look them up by: "
                                               "check by hand")
    waiting = duplicates.open_duplicates(session, hasher, RequestKind.ERASURE, own)
    if waiting:
        return Filing(item, waiting[0], False, "an erasure is already open")
    ran = _erased_since(session, hasher, own, item.since, timezone)
    if ran is not None:
        return Filing(item, None, False, f"{ran} erased them after their last activity; "
                                         "what is left was excluded or kept: check by hand")
    row = ledger.create_request(
        session, hasher, RequestKind.ERASURE, own, now=now, timezone=timezone,
        origin=RETENTION_ORIGIN,
        state_reason=f"retention: {item.reason.value}, last activity {item.since}")
    ledger.verify(session, row.id, actor=ACTOR, now=now)
    audit.append(session, "retention.filed", {
        "reason": item.reason.value, "since": item.since.isoformat()},
        request_id=row.id, actor=ACTOR, now=now)
    return Filing(item, row.id, True)


def _held_ref(session: Session, item: Due) -> RecordRef | None:
    """The kept record as its connector names it, from the evidence of the erasure that
    kept it (a hold stores only the system and record id)."""
    task = session.scalars(select(TaskRow).where(TaskRow.request_id == item.request_id,
                                                 TaskRow.system == item.system)).first()
    for rec in ((task.evidence if task else None) or {}).get("records", []):
        if rec.get("record_id") == item.record_id and rec.get("kind"):
            return RecordRef(item.system, rec["kind"], item.record_id,
                             container=rec.get("container"))
    return None


def _file_hold(session: Session, item: Due, *, now: datetime, timezone: str) -> Filing:
    """An erasure of the kept record itself, now that its hold has ended (rule 5).

    Nothing is left to look the record up by: the erasure that kept it minimised it
    and dropped its plaintext identifiers. So the request names the record in its
    journal before it runs (``hub.journal.plan``), as a retry would find it, and
    carries only the keyed hashes of that erasure's identifiers, so an access
    request by the same subject still finds it. The ended holds go: the request now
    answers for the record (rule 1), and the hold said nothing more once over. The row
    is built here because ``ledger.create_request`` rightly refuses a request with no
    identifier to look someone up by; this one has a record instead.
    """
    assert item.system is not None and item.record_id is not None
    ref = _held_ref(session, item)
    if ref is None:
        return Filing(item, None, False, "the kept record's kind is unknown: file by hand")
    if ref.kind == manual.HOLD_KIND:
        # Kept by an operator's confirmation (hub task confirm --outcome retained): no
        # connector can find it, and a request naming nobody cannot tell a person what
        # to shred. The operator who kept it erases it, from the keeping request's note.
        return Filing(item, None, False, f"kept by hand under {item.request_id}: erase it "
                                         "by hand (see that request's confirmation note)")
    row = SubjectRequestRow(
        id=ledger.new_request_id(now), kind=RequestKind.ERASURE.value,
        state=RequestState.RECEIVED.value, origin=RETENTION_ORIGIN, received_at=now,
        due_on=deadlines.due_date(now, timezone), updated_at=now,
        state_reason=f"retention: {item.reason.value} on {item.since} ({item.system})")
    session.add(row)
    session.flush()
    hashes = session.scalars(select(RequestIdentifierRow).where(
        RequestIdentifierRow.request_id == item.request_id,
        RequestIdentifierRow.source == ledger.GIVEN)).all()
    for ident in hashes:
        session.add(RequestIdentifierRow(request_id=row.id, kind=ident.kind, hash=ident.hash,
                                         value=None, masked=ident.masked, source=ledger.GIVEN))
    journal.plan(session, row.id, item.system, [ref], attempt=0, now=now)
    audit.append(session, "request.received", {
        "kind": row.kind, "origin": RETENTION_ORIGIN, "due_on": row.due_on.isoformat(),
        "identifiers": [i.masked for i in hashes],
        "records": [{"system": item.system, "record_id": item.record_id}]},
        request_id=row.id, actor=ACTOR, now=now)
    ledger.verify(session, row.id, actor=ACTOR, now=now)
    ended = delete(LegalHoldRow).where(LegalHoldRow.system == item.system,
                                       LegalHoldRow.record_id == item.record_id,
                                       LegalHoldRow.held_until < local_date(now, timezone))
    session.execute(ended)
    audit.append(session, "retention.filed", {
        "reason": item.reason.value, "since": item.since.isoformat(),
        "system": item.system, "record_id": item.record_id, "held_by": item.request_id},
        request_id=row.id, actor=ACTOR, now=now)
    return Filing(item, row.id, True)


def file_requests(session: Session, hasher: Hasher, items: Sequence[Due], *,
                  now: datetime | None = None, timezone: str = "Europe/Helsinki"
                  ) -> list[Filing]:
    """File one verified erasure (origin ``retention``) per person due, never a second
    while one is open for any of their identifiers (``hub.duplicates``), and one per
    kept record whose hold ended."""
    now = now or datetime.now(UTC)
    return [_file_person(session, hasher, item, now=now, timezone=timezone)
            if item.person_id is not None else _file_hold(session, item, now=now,
                                                          timezone=timezone)
            for item in items]


# --- aggregate only ----------------------------------------------------------------


AGGREGATED = "retention.aggregated"
RELEASED = "retention.hashes_released"


def _reduced(request_id: object) -> Exists:
    return exists().where(AuditEventRow.request_id == request_id,
                          AuditEventRow.action == AGGREGATED)


def _holding(request_id: object) -> Exists:
    """A hold the request placed that is still on the books (its follow-up erasure not
    filed yet): it needs the person's keyed hashes."""
    return exists().where(LegalHoldRow.request_id == request_id)


def _settled_retention_requests(session: Session) -> list[SubjectRequestRow]:
    """Retention erasures that settled with nothing left to retry, and still hold more
    than counts: never reduced, or reduced while a hold kept their hashes and no hold
    keeps them any more."""
    failed = exists().where(TaskRow.request_id == SubjectRequestRow.id,
                            TaskRow.state == TaskState.FAILED.value)
    identified = exists().where(RequestIdentifierRow.request_id == SubjectRequestRow.id)
    return list(session.execute(
        select(SubjectRequestRow).where(
            SubjectRequestRow.origin == RETENTION_ORIGIN,
            SubjectRequestRow.kind == RequestKind.ERASURE.value,
            SubjectRequestRow.state.in_([RequestState.COMPLETED.value,
                                         RequestState.PARTIALLY_COMPLETED.value]),
            ~failed, identified,
            or_(~_reduced(SubjectRequestRow.id), ~_holding(SubjectRequestRow.id)))
        .order_by(SubjectRequestRow.completed_at, SubjectRequestRow.id)
    ).scalars())


def _counts_only(evidence: dict | None) -> dict | None:
    """The counts; of the records, only those kept under a hold (the law keeps them, and
    the sweep needs their kind to erase them when the hold ends)."""
    if evidence is None:
        return None
    kept = [{k: r.get(k) for k in ("kind", "container", "record_id", "action",
                                    "legal_basis", "retained_until")}
            for r in evidence.get("records", []) if r.get("retained_until")]
    reduced = {k: v for k, v in evidence.items() if k in ("at", "verified", "counts")}
    return {**reduced, "records": kept} if kept else reduced


def reduce_to_counts(session: Session, row: SubjectRequestRow, *,
                     now: datetime | None = None) -> dict[str, dict[str, int]]:
    """Leave of a settled retention erasure only what it did, counted per system, and
    what a hold it placed needs while it is on the books (the identifiers' keyed
    hashes); once no hold needs them, a later call drops those too."""
    now = now or datetime.now(UTC)
    holding = session.scalar(select(_holding(row.id)))
    if session.scalar(select(_reduced(row.id))):
        if not holding:
            session.execute(delete(RequestIdentifierRow)
                            .where(RequestIdentifierRow.request_id == row.id))
            audit.append(session, RELEASED, {"reason": "no hold of it is left"},
                         request_id=row.id, actor=ACTOR, now=now)
            session.flush()
        return {}
    counts: dict[str, dict[str, int]] = {}
    for task in ledger.tasks_of(session, row.id):
        task.evidence = _counts_only(task.evidence)
        counts[task.system] = dict((task.evidence or {}).get("counts") or {})
    tables = (TaskActionRow, ReviewItemRow) if holding else (
        RequestIdentifierRow, TaskActionRow, ReviewItemRow)
    for table in tables:
        session.execute(delete(table).where(table.request_id == row.id))
    row.person_id = row.subject_name = None
    row.updated_at = now
    audit.append(session, AGGREGATED, {"counts": counts, "hashes_kept_for_holds": holding},
                 request_id=row.id, actor=ACTOR, now=now)
    session.flush()
    return counts


def aggregate(session: Session, policy: Policy, *, now: datetime | None = None) -> list[str]:
    """With ``aggregate_only``, reduce every settled retention erasure to counts."""
    if not policy.retention.aggregate_only:
        return []
    done = []
    for row in _settled_retention_requests(session):
        reduce_to_counts(session, row, now=now)
        done.append(row.id)
    return done


def sweep(session: Session, hasher: Hasher, policy: Policy, *, file: bool,
          now: datetime | None = None, timezone: str = "Europe/Helsinki") -> Sweep:
    """One retention run: reduce what settled (aggregate only), list who is due, and
    file requests for them when ``file`` (the policy's ``file_requests``, or an
    operator's ``--file``)."""
    now = now or datetime.now(UTC)
    today = local_date(now, timezone)
    aggregated = aggregate(session, policy, now=now)
    items, undated = _due(session, policy, today, timezone)
    filings = file_requests(session, hasher, items, now=now, timezone=timezone) if file else []
    return Sweep(items, filings, undated, aggregated)
