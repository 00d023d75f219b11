"""Recording connector outcomes as task state and evidence, on both databases."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from hub import ledger, outcomes
from hub.domain import Action, Identifier, IdentifierKind, Outcome, RecordOutcome, RecordRef
from hub.ledger import IllegalTransition, RequestKind, RequestState, TaskState
from hub.models import AuditEventRow

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EMAIL = Identifier(IdentifierKind.EMAIL, "aino.virtanen@example.fi")


def _request(store, session, kind=RequestKind.ERASURE, systems=("mailchimp", "netvisor")):
    row = ledger.create_request(session, store.hasher, kind, [EMAIL], now=NOW)
    ledger.verify(session, row.id, now=NOW)
    ledger.transition(session, row, RequestState.IN_PROGRESS, now=NOW)
    ledger.ensure_tasks(session, row, list(systems), now=NOW)
    return row


def _ref(system, rid="1"):
    return RecordRef(system=system, kind="record", record_id=rid)


def test_outcome_sets_state_action_and_evidence(store):
    with store.session() as session:
        row = _request(store, session)
        assert outcomes.begin(session, row.id, "mailchimp", now=NOW) is not None
        outcomes.record(session, row.id, Outcome(
            system="mailchimp", verified=True, evidence={"audiences": 2},
            records=(RecordOutcome(_ref("mailchimp", "a:1"), Action.PERMANENTLY_DELETED,
                                   status_code=204, vendor_request_id="req-1"),
                     RecordOutcome(_ref("mailchimp", "b:1"), Action.PERMANENTLY_DELETED,
                                   status_code=204)),
        ), now=NOW)
        task = ledger.get_task(session, row.id, "mailchimp")
        assert task.state == TaskState.DONE
        assert task.action == "permanently_deleted"
        assert task.evidence["verified"] is True
        assert task.evidence["counts"] == {"permanently_deleted": 2}
        assert task.evidence["records"][0]["vendor_request_id"] == "req-1"
        assert task.evidence["vendor"] == {"audiences": 2}
        assert "aino" not in str(task.evidence)


def test_retained_and_not_found_are_outcomes_not_errors(store):
    with store.session() as session:
        row = _request(store, session)
        outcomes.begin(session, row.id, "netvisor", now=NOW)
        outcomes.record(session, row.id, Outcome(system="netvisor", records=(
            RecordOutcome(_ref("netvisor"), Action.RETAINED, legal_basis="Kirjanpitolaki 2:10",
                          retained_until=date(2032, 12, 31)),
        )), now=NOW)
        outcomes.begin(session, row.id, "mailchimp", now=NOW)
        outcomes.record(session, row.id, Outcome(system="mailchimp"), now=NOW)
        states = {t.system: (t.state, t.action) for t in ledger.tasks_of(session, row.id)}
        assert states == {"netvisor": ("retained", "retained"),
                          "mailchimp": ("not_found", "not_found")}
        evidence = ledger.get_task(session, row.id, "netvisor").evidence
        assert evidence["records"][0]["retained_until"] == "2032-12-31"
        assert ledger.finalise(session, store.hasher, row, now=NOW) == \
            RequestState.PARTIALLY_COMPLETED


def test_failed_task_is_retried_alone_and_finished_ones_are_skipped(store):
    with store.session() as session:
        row = _request(store, session)
        outcomes.begin(session, row.id, "mailchimp", now=NOW)
        outcomes.record(session, row.id, Outcome(system="mailchimp", records=(
            RecordOutcome(_ref("mailchimp"), Action.UNSUBSCRIBED),)), now=NOW)
        outcomes.begin(session, row.id, "netvisor", now=NOW)
        outcomes.record_failure(session, row.id, "netvisor", "VendorError: HTTP 503",
                                {"status_code": 503}, now=NOW)
        assert ledger.finalise(session, store.hasher, row, now=NOW) == \
            RequestState.PARTIALLY_COMPLETED
        assert ledger.identifiers_of(session, row.id) == [EMAIL]  # kept for the retry

        ledger.transition(session, row, RequestState.IN_PROGRESS, now=NOW)
        assert outcomes.begin(session, row.id, "mailchimp", now=NOW) is None
        retried = outcomes.begin(session, row.id, "netvisor", now=NOW)
        assert retried is not None and retried.attempts == 2
        outcomes.record(session, row.id, Outcome(system="netvisor", records=(
            RecordOutcome(_ref("netvisor"), Action.DELETED),)), now=NOW)
        assert ledger.finalise(session, store.hasher, row, now=NOW) == RequestState.COMPLETED
        assert ledger.get_task(session, row.id, "mailchimp").attempts == 1
        assert ledger.identifiers_of(session, row.id) == []


def test_recording_a_task_that_is_not_running_is_refused(store):
    with store.session() as session:
        row = _request(store, session)
        with pytest.raises(IllegalTransition, match="pending"):
            outcomes.record(session, row.id, Outcome(system="mailchimp"), now=NOW)


def test_the_outcome_table_shows_counts_holds_and_errors_but_no_identifiers(store):
    held = RecordOutcome(_ref("netvisor", "1000"), Action.RETAINED, legal_basis="KPL 2:10",
                         retained_until=date(2032, 12, 31))
    with store.session() as session:
        row = _request(store, session)
        outcomes.begin(session, row.id, "netvisor", now=NOW)
        outcomes.record(session, row.id, Outcome("netvisor", (held,), verified=True), now=NOW)
        outcomes.begin(session, row.id, "mailchimp", now=NOW)
        outcomes.record_failure(session, row.id, "mailchimp", "ServerError: HTTP 503",
                                {"status_code": 503}, now=NOW)
        table = outcomes.text_table(ledger.tasks_of(session, row.id))
    lines = table.splitlines()
    assert lines[1].split()[:4] == ["mailchimp", "failed", "-", "1"]
    assert lines[1].endswith("ServerError: HTTP 503")
    assert "retained 1; read back; held until 2032-12-31 (KPL 2:10)" in lines[2]
    assert "aino" not in table


def _race(store, request_id: str, system: str, workers: int = 4) -> list:
    """`workers` threads, each with its own connection, claim one task at the same moment."""
    gate = threading.Barrier(workers)

    def claim():
        gate.wait()
        with store.session() as session:
            task = outcomes.begin(session, request_id, system)
            return None if task is None else task.attempts

    with ThreadPoolExecutor(workers) as pool:
        return [f.result() for f in [pool.submit(claim) for _ in range(workers)]]


def test_two_workers_never_claim_the_same_task(store):
    """Found: without Dagster's pools every vendor was called twice, because `begin` read
    the task and then moved it to running. The claim is one compare-and-set now."""
    systems = ("mailchimp", "netvisor", "pipedrive", "typeform")
    with store.session() as session:
        rid = _request(store, session, systems=systems).id
    for system in systems:
        claims = _race(store, rid, system)
        assert sorted(claims, key=lambda c: c is None) == [1, None, None, None], claims
    with store.session() as session:
        assert {(t.state, t.attempts) for t in ledger.tasks_of(session, rid)} == {("running", 1)}
        claimed = session.execute(select(func.count()).select_from(AuditEventRow).where(
            AuditEventRow.action == "task.running")).scalar_one()
    assert claimed == len(systems)  # one audit event per claim, none for the losers


def test_a_running_task_is_taken_over_only_when_its_worker_is_known_dead(store):
    with store.session() as session:
        rid = _request(store, session).id
        assert outcomes.begin(session, rid, "mailchimp", now=NOW).attempts == 1
    with store.session() as session:
        assert outcomes.begin(session, rid, "mailchimp", now=NOW) is None
        taken = outcomes.begin(session, rid, "mailchimp", take_over=True, now=NOW)
        assert taken is not None and taken.attempts == 2
        outcomes.record(session, rid, Outcome(system="mailchimp"), now=NOW)
    with store.session() as session:  # finished: nobody claims it, not even a take-over
        assert outcomes.begin(session, rid, "mailchimp", take_over=True, now=NOW) is None
        assert ledger.get_task(session, rid, "mailchimp").state == TaskState.NOT_FOUND


def test_orphaned_running_tasks_are_failed_with_the_reason(store):
    with store.session() as session:
        rid = _request(store, session).id
        outcomes.begin(session, rid, "mailchimp", now=NOW)
        assert ledger.release_orphaned(session, rid, "its run died", now=NOW) == ["mailchimp"]
        task = ledger.get_task(session, rid, "mailchimp")
        assert (task.state, task.error) == ("failed", "its run died")
        assert outcomes.begin(session, rid, "mailchimp", now=NOW).attempts == 2
