"""The request ledger on SQLite and PostgreSQL: states, deadlines, tasks, scrubbing."""

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from hub import audit, ledger, suppression
from hub.domain import Address, Corrections, Identifier, IdentifierKind
from hub.ledger import (
    IllegalTransition,
    LedgerError,
    RequestKind,
    RequestState,
    TaskState,
    UnknownRequest,
)
from hub.models import AuditEventRow, RequestIdentifierRow, SubjectRequestRow, SuppressionRow

RS, TS = RequestState, TaskState
NOW = datetime(2025, 1, 31, 10, 0, tzinfo=UTC)
EMAIL = Identifier(IdentifierKind.EMAIL, "aino.virtanen@example.fi")
PHONE = Identifier(IdentifierKind.PHONE, "+358401234567")
SYSTEMS = ["mailchimp", "netvisor", "pipedrive", "typeform"]

# The specification, written out independently of ledger's own tables.
ALLOWED_REQUEST = {
    (RS.RECEIVED, RS.VERIFIED), (RS.RECEIVED, RS.REJECTED),
    (RS.VERIFIED, RS.IN_PROGRESS), (RS.VERIFIED, RS.REJECTED),
    (RS.IN_PROGRESS, RS.COMPLETED), (RS.IN_PROGRESS, RS.PARTIALLY_COMPLETED),
    (RS.PARTIALLY_COMPLETED, RS.IN_PROGRESS),
    # an operator decides, then the request runs again (or is rejected)
    (RS.IN_PROGRESS, RS.AWAITING_REVIEW), (RS.AWAITING_REVIEW, RS.VERIFIED),
    (RS.AWAITING_REVIEW, RS.REJECTED),
}
ALLOWED_TASK = {
    (TS.PENDING, TS.RUNNING), (TS.PENDING, TS.MANUAL_PENDING), (TS.MANUAL_PENDING, TS.PENDING),
    (TS.RUNNING, TS.DONE), (TS.RUNNING, TS.FAILED), (TS.RUNNING, TS.RETAINED),
    (TS.RUNNING, TS.NOT_FOUND), (TS.RUNNING, TS.RUNNING),
    (TS.FAILED, TS.RUNNING),
    (TS.MANUAL_PENDING, TS.DONE), (TS.MANUAL_PENDING, TS.RETAINED),
    (TS.MANUAL_PENDING, TS.NOT_FOUND),
    (TS.RUNNING, TS.REVIEW), (TS.RUNNING, TS.MANUAL_PENDING), (TS.REVIEW, TS.RUNNING),
}


def new(session, hasher, kind=RequestKind.ERASURE, idents=(EMAIL, PHONE), now=NOW, **kw):
    return ledger.create_request(session, hasher, kind, list(idents), now=now, **kw)


def audit_count(session) -> int:
    return audit.verify(session).events


def test_create_sets_due_date_and_stores_identifiers(store, hasher):
    with store.session() as session:
        row = new(session, hasher, name="Aino Virtanen")
        rid = row.id
    with store.session() as session:
        row = ledger.get_request(session, rid)
        assert row.state == "received" and row.kind == "erasure"
        assert row.due_on == date(2025, 2, 28)
        assert ledger.effective_due(row) == date(2025, 2, 28)
        assert set(ledger.identifiers_of(session, rid)) == {EMAIL, PHONE}
        assert rid.startswith("R-20250131-")
        report = audit.verify(session)
        assert report.ok and report.events == 1


def test_create_refuses_a_rectification_without_values_and_raw_only_identifiers(store, hasher):
    with store.session() as session:
        with pytest.raises(LedgerError, match="at least one corrected value"):
            new(session, hasher, kind=RequestKind.RECTIFICATION)
        with pytest.raises(LedgerError, match="carries no corrected values"):
            new(session, hasher, corrections=Corrections(name="Aino Korhonen"))
        with pytest.raises(LedgerError, match="at least one e-mail"):
            new(session, hasher, idents=[Identifier(IdentifierKind.PHONE_RAW, "ask Bob")])


def test_unknown_request_is_a_clear_error(store):
    with store.session() as session, pytest.raises(UnknownRequest, match="R-nope"):
        ledger.get_request(session, "R-nope")


@pytest.mark.parametrize("src", list(RS))
@pytest.mark.parametrize("dst", list(RS))
def test_request_transitions(store, hasher, src, dst):
    with store.session() as session:
        row = new(session, hasher)
        row.state = src.value
        if (src, dst) in ALLOWED_REQUEST:
            ledger.transition(session, row, dst, now=NOW)
            assert row.state == dst.value
        else:
            before = audit_count(session)
            with pytest.raises(IllegalTransition) as info:
                ledger.transition(session, row, dst, now=NOW)
            assert str(info.value) == (f"request {row.id} is {src.value}; "
                                       f"it cannot become {dst.value}")
            assert row.state == src.value
            assert audit_count(session) == before


@pytest.mark.parametrize("src", list(TS))
@pytest.mark.parametrize("dst", list(TS))
def test_task_transitions(store, hasher, src, dst):
    with store.session() as session:
        row = new(session, hasher)
        (task,) = ledger.ensure_tasks(session, row, ["pipedrive"], now=NOW)
        task.state = src.value
        if (src, dst) in ALLOWED_TASK:
            ledger.move_task(session, task, dst, now=NOW)
            assert task.state == dst.value
        else:
            with pytest.raises(IllegalTransition) as info:
                ledger.move_task(session, task, dst, now=NOW)
            assert str(info.value) == (f"task {row.id}/pipedrive is {src.value}; "
                                       f"it cannot become {dst.value}")
            assert task.state == src.value


def test_verify_and_reject_via_helpers(store, hasher):
    with store.session() as session:
        a, b = new(session, hasher), new(session, hasher)
        ledger.verify(session, a.id, now=NOW)
        assert a.state == "verified" and a.verified_at is not None
        with pytest.raises(IllegalTransition, match="is verified; it cannot become verified"):
            ledger.verify(session, a.id, now=NOW)
        ledger.reject(session, b.id, "identity not verified", now=NOW)
        assert b.state == "rejected" and b.state_reason == "identity not verified"
        assert ledger.identifiers_of(session, b.id) == []
        assert len(ledger.identifier_hashes(session, b.id)) == 2


def test_ensure_tasks_is_idempotent_and_keeps_progress(store, hasher):
    with store.session() as session:
        row = new(session, hasher)
        first = ledger.ensure_tasks(session, row, SYSTEMS, now=NOW)
        assert [t.system for t in first] == SYSTEMS
        ledger.move_task(session, first[0], TS.RUNNING, now=NOW)
        again = ledger.ensure_tasks(session, row, SYSTEMS + ["paper_archive"], now=NOW)
        assert [t.system for t in again] == sorted(SYSTEMS + ["paper_archive"])
        assert len(ledger.tasks_of(session, row.id)) == 5
        assert ledger.get_task(session, row.id, "mailchimp").state == "running"
        with pytest.raises(LedgerError, match="no task for slack"):
            ledger.get_task(session, row.id, "slack")


def test_move_task_counts_attempts_and_records_outcome(store, hasher):
    with store.session() as session:
        row = new(session, hasher)
        (task,) = ledger.ensure_tasks(session, row, ["pipedrive"], now=NOW)
        ledger.move_task(session, task, TS.RUNNING, now=NOW)
        ledger.move_task(session, task, TS.FAILED, error="HTTP 503 from vendor", now=NOW)
        assert task.attempts == 1 and task.error == "HTTP 503 from vendor"
        ledger.move_task(session, task, TS.RUNNING, now=NOW)
        assert task.attempts == 2 and task.error is None
        ledger.move_task(session, task, TS.DONE, action="deleted",
                         evidence={"status": 200, "count": 1}, now=NOW)
    with store.session() as session:
        task = ledger.get_task(session, row.id, "pipedrive")
        assert (task.state, task.attempts, task.action) == ("done", 2, "deleted")
        assert task.evidence == {"status": 200, "count": 1}
        assert task.finished_at is not None


def run_tasks(session, row, outcomes: dict[str, TaskState]):
    tasks = ledger.ensure_tasks(session, row, list(outcomes), now=NOW)
    if row.state == "received":
        ledger.transition(session, row, RS.VERIFIED, now=NOW)
    ledger.transition(session, row, RS.IN_PROGRESS, now=NOW)
    for task in tasks:
        if task.state in ("pending", "failed"):
            ledger.move_task(session, task, TS.RUNNING, now=NOW)
        if task.state == "running":
            ledger.move_task(session, task, outcomes[task.system], now=NOW)


def plaintext_values(session, rid):
    return [r.value for r in session.execute(
        select(RequestIdentifierRow).where(RequestIdentifierRow.request_id == rid)).scalars()]


def test_finalise_completed_scrubs_and_suppresses(store, hasher):
    with store.session() as session:
        row = new(session, hasher, name="Aino Virtanen")
        run_tasks(session, row, {"pipedrive": TS.DONE, "mailchimp": TS.NOT_FOUND})
        assert ledger.finalise(session, hasher, row, now=NOW) == RS.COMPLETED
        rid = row.id
    with store.session() as session:
        row = ledger.get_request(session, rid)
        assert row.state == "completed" and row.completed_at is not None
        assert row.subject_name is None
        assert plaintext_values(session, rid) == [None, None]
        assert {h for _, h in ledger.identifier_hashes(session, rid)} == {
            hasher.identifier(EMAIL), hasher.identifier(PHONE)}
        assert suppression.is_suppressed(session, hasher, EMAIL, "erasure")
        assert suppression.is_suppressed(session, hasher, PHONE)
        shown = ledger.view(session, row, reveal=True)
        assert "aino" not in repr(shown).replace("a***", "")


def test_finalise_with_retained_is_partial_and_final(store, hasher):
    with store.session() as session:
        row = new(session, hasher)
        run_tasks(session, row, {"pipedrive": TS.DONE, "netvisor": TS.RETAINED})
        assert ledger.finalise(session, hasher, row, now=NOW) == RS.PARTIALLY_COMPLETED
        assert plaintext_values(session, row.id) == [None, None]
        assert suppression.is_suppressed(session, hasher, EMAIL, "erasure")


def test_finalise_with_failed_keeps_identifiers_then_retry_completes(store, hasher):
    with store.session() as session:
        row = new(session, hasher, kind=RequestKind.OPT_OUT)
        run_tasks(session, row, {"pipedrive": TS.DONE, "mailchimp": TS.FAILED})
        assert ledger.finalise(session, hasher, row, now=NOW) == RS.PARTIALLY_COMPLETED
        assert set(ledger.identifiers_of(session, row.id)) == {EMAIL, PHONE}
        assert not suppression.is_suppressed(session, hasher, EMAIL)
        # Retry the failed system alone; the finished one is not touched.
        run_tasks(session, row, {"pipedrive": TS.DONE, "mailchimp": TS.DONE})
        assert ledger.get_task(session, row.id, "pipedrive").attempts == 1
        assert ledger.get_task(session, row.id, "mailchimp").attempts == 2
        assert ledger.finalise(session, hasher, row, now=NOW) == RS.COMPLETED
        assert ledger.identifiers_of(session, row.id) == []
        assert suppression.is_suppressed(session, hasher, EMAIL, "opt_out")


def test_finalise_refuses_unfinished_tasks(store, hasher):
    with store.session() as session:
        row = new(session, hasher)
        tasks = ledger.ensure_tasks(session, row, ["pipedrive", "paper"], now=NOW)
        ledger.transition(session, row, RS.VERIFIED, now=NOW)
        ledger.transition(session, row, RS.IN_PROGRESS, now=NOW)
        ledger.move_task(session, tasks[0], TS.MANUAL_PENDING, now=NOW)
        with pytest.raises(LedgerError, match="still has tasks pending"):
            ledger.finalise(session, hasher, row, now=NOW)
        assert row.state == "in_progress"
        assert set(ledger.identifiers_of(session, row.id)) == {EMAIL, PHONE}


def test_second_finalise_is_harmless(store, hasher):
    with store.session() as session:
        row = new(session, hasher)
        run_tasks(session, row, {"pipedrive": TS.DONE})
        ledger.finalise(session, hasher, row, now=NOW)
        events = audit_count(session)
        assert ledger.finalise(session, hasher, row, now=NOW) == RS.COMPLETED
        assert audit_count(session) == events
        rows = session.execute(select(SuppressionRow)).scalars().all()
        assert len(rows) == 2 and {r.request_id for r in rows} == {row.id}


def test_access_request_writes_no_suppression(store, hasher):
    with store.session() as session:
        row = new(session, hasher, kind=RequestKind.ACCESS)
        run_tasks(session, row, {"pipedrive": TS.DONE})
        ledger.finalise(session, hasher, row, now=NOW)
        assert not suppression.is_suppressed(session, hasher, EMAIL)
        assert ledger.identifiers_of(session, row.id) == []


def test_access_count_in_year_by_hash_across_case(store, hasher):
    from hub.identity import parse_email

    upper = Identifier(IdentifierKind.EMAIL, parse_email("AINO.Virtanen@EXAMPLE.fi"))
    with store.session() as session:
        new(session, hasher, kind=RequestKind.ACCESS, idents=[EMAIL],
            now=datetime(2025, 2, 1, tzinfo=UTC))
        second = new(session, hasher, kind=RequestKind.ACCESS, idents=[upper, PHONE],
                     now=datetime(2025, 6, 1, tzinfo=UTC))
        new(session, hasher, kind=RequestKind.ERASURE, idents=[EMAIL],
            now=datetime(2025, 7, 1, tzinfo=UTC))
        new(session, hasher, kind=RequestKind.ACCESS, idents=[EMAIL],
            now=datetime(2024, 12, 1, tzinfo=UTC))
        rejected = new(session, hasher, kind=RequestKind.ACCESS, idents=[EMAIL],
                       now=datetime(2025, 8, 1, tzinfo=UTC))
        ledger.reject(session, rejected.id, "duplicate", now=NOW)
        # Counted even after the identifiers were scrubbed: hashes remain.
        run_tasks(session, second, {"pipedrive": TS.DONE})
        ledger.finalise(session, hasher, second, now=NOW)
        assert ledger.access_count_in_year(session, hasher, [EMAIL], 2025) == 2
        assert ledger.access_count_in_year(session, hasher, [upper], 2025) == 2
        assert ledger.access_count_in_year(session, hasher, [PHONE], 2025) == 1
        assert ledger.access_count_in_year(session, hasher, [EMAIL, PHONE], 2025) == 2
        assert ledger.access_count_in_year(session, hasher, [EMAIL], 2024) == 1
        assert ledger.access_count_in_year(session, hasher, [], 2025) == 0


# --- extension -------------------------------------------------------------------


def test_extend_counts_from_receipt(store, hasher):
    with store.session() as session:
        row = new(session, hasher)
        ledger.extend(session, row.id, "many systems to search", now=NOW + timedelta(days=3))
        assert row.extended_due_on == date(2025, 4, 30)
        assert ledger.effective_due(row) == date(2025, 4, 30)
        assert row.extension_reason == "many systems to search"
        shown = ledger.view(session, row)
        assert shown.extended and shown.due_on == date(2025, 4, 30)


def test_extend_by_one_month(store, hasher):
    with store.session() as session:
        row = new(session, hasher)
        ledger.extend(session, row.id, "complex", months=1, now=NOW)
        assert row.extended_due_on == date(2025, 3, 31)


def test_extend_only_once(store, hasher):
    with store.session() as session:
        row = new(session, hasher)
        ledger.extend(session, row.id, "complex", months=1, now=NOW)
        with pytest.raises(LedgerError, match="already extended to 2025-03-31"):
            ledger.extend(session, row.id, "again", now=NOW)
        assert row.extended_due_on == date(2025, 3, 31)


@pytest.mark.parametrize("reason", ["", "   "])
def test_extend_needs_a_reason(store, hasher, reason):
    with store.session() as session:
        row = new(session, hasher)
        with pytest.raises(LedgerError, match="needs a reason"):
            ledger.extend(session, row.id, reason, now=NOW)
        assert row.extended_due_on is None


@pytest.mark.parametrize("months", [0, 3])
def test_extend_is_one_or_two_months(store, hasher, months):
    with store.session() as session:
        row = new(session, hasher)
        with pytest.raises(LedgerError, match="1 or 2 months"):
            ledger.extend(session, row.id, "complex", months=months, now=NOW)
        assert row.extended_due_on is None


def test_extend_only_within_the_first_month(store, hasher):
    with store.session() as session:
        row = new(session, hasher)
        # Due 28 Feb: still possible on the last day (Helsinki date), not the day after.
        ledger.extend(session, new(session, hasher).id, "ok",
                      now=datetime(2025, 2, 28, 21, 0, tzinfo=UTC))
        with pytest.raises(LedgerError, match="within the first month"):
            ledger.extend(session, row.id, "late", now=datetime(2025, 2, 28, 22, 30, tzinfo=UTC))


def test_extend_refuses_closed_requests(store, hasher):
    with store.session() as session:
        row = new(session, hasher)
        ledger.reject(session, row.id, "unverifiable", now=NOW)
        with pytest.raises(LedgerError, match="only open requests"):
            ledger.extend(session, row.id, "complex", now=NOW)


# --- listing ---------------------------------------------------------------------


def test_list_overdue_and_due_within(store, hasher):
    with store.session() as session:
        old = new(session, hasher, now=datetime(2025, 1, 1, 10, tzinfo=UTC))     # due 1 Feb
        soon = new(session, hasher, now=datetime(2025, 1, 20, 10, tzinfo=UTC))   # due 20 Feb
        later = new(session, hasher, now=datetime(2025, 2, 10, 10, tzinfo=UTC))  # due 10 Mar
        extended = new(session, hasher, now=datetime(2025, 1, 2, 10, tzinfo=UTC))  # due 2 Feb
        ledger.extend(session, extended.id, "complex", now=datetime(2025, 1, 5, tzinfo=UTC))
        done = new(session, hasher, now=datetime(2025, 1, 1, 10, tzinfo=UTC))
        ledger.reject(session, done.id, "duplicate", now=NOW)
        today = date(2025, 2, 15)

        def ids(**kw):
            return [r.id for r in ledger.list_requests(session, today=today, **kw)]

        assert ids(overdue=True) == [old.id]
        assert ids(due_within=7) == [old.id, soon.id]
        assert ids(due_within=30) == [old.id, soon.id, later.id]
        assert ids(due_within=80) == [old.id, soon.id, later.id, extended.id]
        # Without a filter, every request, closed ones too, by deadline.
        assert set(ids()) == {old.id, soon.id, later.id, extended.id, done.id}
        assert ids(state=RS.REJECTED) == [done.id]
        assert session.get(SubjectRequestRow, old.id).due_on == date(2025, 2, 1)


def test_view_masks_unless_revealed(store, hasher):
    with store.session() as session:
        row = new(session, hasher, name="Aino Virtanen")
        masked = ledger.view(session, row)
        assert dict(masked.identifiers) == {"email": "a***@example.fi", "phone": "+358*******67"}
        assert masked.name == "A*** V***"
        shown = ledger.view(session, row, reveal=True)
        assert dict(shown.identifiers) == {"email": EMAIL.value, "phone": PHONE.value}
        assert shown.name == "Aino Virtanen"


def test_access_count_uses_the_helsinki_calendar_year(store):
    from hub.domain import Identifier, IdentifierKind
    from hub.ledger import RequestKind, access_count_in_year, create_request

    email = Identifier(IdentifierKind.EMAIL, "aino.virtanen@example.fi")
    # 22:30 UTC on 31 December is 00:30 on 1 January in Helsinki.
    new_year = datetime(2026, 12, 31, 22, 30, tzinfo=UTC)
    with store.session() as session:
        create_request(session, store.hasher, RequestKind.ACCESS, [email], now=new_year)
        assert access_count_in_year(session, store.hasher, [email], 2027) == 1
        assert access_count_in_year(session, store.hasher, [email], 2026) == 0


def test_a_rectification_keeps_its_corrected_values_until_it_settles(store, hasher):
    """The corrected values are personal data: plaintext while the request runs, then
    dropped with the identifiers; the audit names the fields, never the values."""
    fixed = Corrections(email="aino.korhonen@example.fi", phone="+358401112233",
                        name="Aino Korhonen",
                        address=Address("Mannerheimintie 1 A 2", "00100", "Helsinki"))
    with store.session() as session:
        rid = new(session, hasher, kind=RequestKind.RECTIFICATION, corrections=fixed).id
        assert ledger.corrections_of(session, rid) == fixed
        assert dict(ledger.corrections_masked(session, rid))["email"] == "a***@example.fi"
        ledger.scrub(session, ledger.get_request(session, rid))
        assert ledger.corrections_of(session, rid) is None
        assert dict(ledger.corrections_masked(session, rid))["name"] == "A*** K***"
        events = session.execute(select(AuditEventRow.payload)).scalars().all()
    assert not any("korhonen" in e.lower() or "Mannerheimintie" in e for e in events)
    assert any('"corrects"' in e for e in events)
