"""Retention schedules: the policy's rule, who is due, filing, and counts only (both DBs)."""

import os
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from hub import holds, index, journal, ledger, retention
from hub.cli import app
from hub.domain import Identifier, IdentifierKind, RecordRef, SourceRecord
from hub.ledger import RequestKind, RequestState, TaskState
from hub.models import (
    AuditEventRow,
    LegalHoldRow,
    RequestIdentifierRow,
    SubjectRequestRow,
    SuppressionRow,
    TaskActionRow,
    TaskRow,
)
from hub.policy import Policy, PolicyError, RetentionPolicy, load_policy
from hub.retention import Reason, relationship_due
from hub.settings import Settings
from hub.store import open_store
from tests.conftest import TEST_SECRET

TODAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
AINO = "aino.virtanen@example.fi"      # last seen 2015: due under a 10-year rule
MIKKO = "mikko.hakkinen@example.fi"    # last seen 2025: a customer still
LEENA = "leena.nieminen@example.fi"    # one record has no time: her end is unknown


def at(year, month=6, day=1, hour=12):
    return datetime(year, month, day, hour, tzinfo=UTC)


def policy(**rule) -> Policy:
    return Policy(systems={}, retention=RetentionPolicy(**rule))


def put(store, system, *records):
    with store.session() as session:
        writer = index.IndexWriter(session, system, full=False, now=NOW)
        writer.add(records)
        writer.finish()
        index.recluster(session, now=NOW)


@pytest.fixture
def customers(store):
    put(store, "pipedrive",
        SourceRecord("pipedrive", "1", (AINO,), ("+358401234567",), "Aino Virtanen",
                     updated_at=at(2014)),
        SourceRecord("pipedrive", "2", (MIKKO,), (), "Mikko Häkkinen", updated_at=at(2015)),
        SourceRecord("pipedrive", "3", (LEENA,), (), "Leena Nieminen", updated_at=at(2010)))
    put(store, "mailchimp",
        SourceRecord("mailchimp", "l1:a", (AINO,), (), "Aino Virtanen", updated_at=at(2015)),
        SourceRecord("mailchimp", "l1:m", (MIKKO,), (), "Mikko Häkkinen", updated_at=at(2025)),
        SourceRecord("mailchimp", "l1:l", (LEENA,), (), "Leena Nieminen", updated_at=None))
    return store


def person_of(store, email):
    with store.session() as session:
        return index.lookup(session, Identifier(IdentifierKind.EMAIL, email))


# --- the policy ----------------------------------------------------------------------


def test_the_packaged_policy_has_no_retention_rule_and_files_nothing():
    rule = load_policy().retention
    assert not rule.has_rule and not rule.file_requests and not rule.aggregate_only


def write(tmp_path, text):
    path = tmp_path / "policy.toml"
    path.write_text('[systems.pipedrive]\nerase = "delete"\n' + text, "utf-8")
    return path


def test_a_retention_section_loads(tmp_path):
    loaded = load_policy(write(tmp_path, "[retention]\nafter_relationship_years = 10\n"
                                         "file_requests = true\n"))
    assert loaded.retention.after_relationship_years == 10
    assert loaded.retention.file_requests is True


@pytest.mark.parametrize(("text", "where", "says"), [
    ("after_relationship_years = 10\njanuary_after_service_end = true\n", "retention",
     "choose one rule"),
    ("after_relationship_years = 0\n", "retention.after_relationship_years",
     "greater than or equal to 1"),
    ("after_years = 10\n", "retention.after_years", "Extra inputs"),
    ("file_requests = \"yes\"\n", "retention.file_requests", "boolean"),
])
def test_a_wrong_retention_section_names_the_file_and_the_field(tmp_path, text, where, says):
    path = write(tmp_path, "[retention]\n" + text)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert f"{path}: {where}:" in message and says in message


# --- when a relationship is due ------------------------------------------------------------


@pytest.mark.parametrize(("last", "today", "is_due"), [
    (date(2016, 3, 2), date(2026, 3, 2), False),   # the tenth year's last day
    (date(2016, 3, 2), date(2026, 3, 3), True),
    (date(2016, 2, 29), date(2026, 2, 28), False),  # ends on 28 February
    (date(2016, 2, 29), date(2026, 3, 1), True),
])
def test_years_after_the_relationship_are_over_after_their_last_day(last, today, is_due):
    assert relationship_due(RetentionPolicy(after_relationship_years=10), last, today) is is_due


@pytest.mark.parametrize(("last", "today", "is_due"), [
    (date(2025, 12, 31), date(2025, 12, 31), False),
    (date(2025, 12, 31), date(2026, 1, 1), True),   # the January after the year
    (date(2025, 1, 2), date(2026, 1, 31), True),
    (date(2026, 1, 2), date(2026, 12, 31), False),
])
def test_the_january_after_the_year_the_service_ended(last, today, is_due):
    assert relationship_due(RetentionPolicy(january_after_service_end=True), last,
                            today) is is_due


# --- who is due ---------------------------------------------------------------------


def test_the_latest_activity_in_any_system_ends_the_relationship(customers):
    with customers.session() as session:
        found = retention.due(session, policy(after_relationship_years=10), TODAY)
    assert [(d.reason, d.since, d.person_id) for d in found] == [
        (Reason.RELATIONSHIP_ENDED, date(2015, 6, 1), person_of(customers, AINO))]
    # Masked only: this list goes to Dagster and to a terminal.
    assert set(found[0].masked) == {"a***@example.fi", "+358*******67"}
    assert AINO not in repr(found)


def test_a_relationship_without_a_known_end_is_not_due(customers):
    with customers.session() as session:
        sweep = retention.sweep(session, customers.hasher, policy(after_relationship_years=5),
                                file=False, now=NOW)
    assert {d.person_id for d in sweep.due} == {person_of(customers, AINO)}
    assert sweep.undated == 1  # Leena: her mailing-list record has no time
    put(customers, "typeform", SourceRecord("typeform", "f:1", ("nobody.knows@example.fi",)))
    with customers.session() as session:
        sweep = retention.sweep(session, customers.hasher, policy(after_relationship_years=5),
                                file=False, now=NOW)
    assert sweep.undated == 2  # and someone no record of whom has a time


def test_without_a_rule_nobody_is_due(customers):
    with customers.session() as session:
        assert retention.due(session, policy(), TODAY) == []


def test_the_year_of_the_last_activity_is_the_controllers(store):
    # 1 January 2016, 00:30 in Helsinki: the service ended in 2016, not 2015.
    put(store, "pipedrive", SourceRecord("pipedrive", "1", (AINO,), (), "Aino Virtanen",
                                         updated_at=datetime(2015, 12, 31, 22, 30,
                                                             tzinfo=UTC)))
    with store.session() as session:
        rule = policy(january_after_service_end=True)
        assert retention.due(session, rule, date(2016, 12, 31)) == []
        [found] = retention.due(session, rule, date(2017, 1, 1))
    assert (found.reason, found.since) == (Reason.SERVICE_ENDED, date(2016, 1, 1))


def test_a_record_under_a_running_hold_does_not_count(customers):
    with customers.session() as session:
        session.add(LegalHoldRow(system="pipedrive", record_id="1", request_id="R-1",
                                 legal_basis="KPL 2:10", held_until=date(2030, 12, 31),
                                 created_at=NOW))
    put(customers, "pipedrive", SourceRecord("pipedrive", "1", (AINO,), (), "Aino Virtanen",
                                             updated_at=at(2026, 1, 1)))
    with customers.session() as session:
        # The hold's minimising touched the record this year; it is not activity.
        [found] = retention.due(session, policy(after_relationship_years=10), TODAY)
    assert found.since == date(2015, 6, 1)


# --- filing ---------------------------------------------------------------------------


def test_filing_opens_one_verified_retention_erasure_per_person_and_never_a_second(customers):
    rule = policy(after_relationship_years=10)
    with customers.session() as session:
        sweep = retention.sweep(session, customers.hasher, rule, file=True, now=NOW)
        [request_id] = sweep.filed
        row = ledger.get_request(session, request_id)
        assert (row.kind, row.state, row.origin) == ("erasure", "verified", "retention")
        assert set(ledger.identifiers_of(session, request_id)) == {
            Identifier(IdentifierKind.EMAIL, AINO), Identifier(IdentifierKind.PHONE,
                                                               "+358401234567")}
    with customers.session() as session:
        again = retention.sweep(session, customers.hasher, rule, file=True, now=NOW)
    assert again.filed == []
    assert [(f.request_id, f.new) for f in again.filings] == [(request_id, False)]


def test_a_dry_run_files_nothing(customers):
    with customers.session() as session:
        sweep = retention.sweep(session, customers.hasher, policy(after_relationship_years=10),
                                file=False, now=NOW)
        assert sweep.per_reason == {"relationship_ended": 1} and sweep.filings == []
        assert session.scalar(select(func.count()).select_from(SubjectRequestRow)) == 0


def test_a_person_known_only_by_a_shared_identifier_is_left_to_an_operator(store):
    # A switchboard number two different people give: it says nothing about who is due.
    put(store, "pipedrive",
        SourceRecord("pipedrive", "1", (), ("+35891234567",), "Aino Virtanen",
                     updated_at=at(2010)),
        SourceRecord("pipedrive", "2", (), ("+35891234567",), "Mikko Häkkinen",
                     updated_at=at(2010)))
    with store.session() as session:
        sweep = retention.sweep(session, store.hasher, policy(after_relationship_years=10),
                                file=True, now=NOW)
    assert len(sweep.due) == 2 and sweep.filed == []
    assert all("shared" in f.note for f in sweep.filings)


def settle(store, request_id, system="pipedrive"):
    """What the subject-request job does, in short: a task done, then finalise."""
    with store.session() as session:
        row = ledger.get_request(session, request_id)
        ledger.transition(session, row, RequestState.IN_PROGRESS, now=NOW)
        [task] = ledger.ensure_tasks(session, row, [system], now=NOW)
        ledger.move_task(session, task, TaskState.RUNNING, now=NOW)
        journal.plan(session, request_id, system, [RecordRef(system, "person", "1")],
                     attempt=1, now=NOW)
        ledger.move_task(session, task, TaskState.DONE, action="deleted", now=NOW, evidence={
            "at": NOW.isoformat(), "verified": True, "counts": {"deleted": 1},
            "records": [{"kind": "person", "record_id": "1", "action": "deleted"}]})
        return ledger.finalise(session, store.hasher, row, now=NOW)


def test_a_retention_erasure_suppresses_nobody_and_keeps_only_counts(customers):
    rule = policy(after_relationship_years=10, aggregate_only=True)
    with customers.session() as session:
        [request_id] = retention.sweep(session, customers.hasher, rule, file=True,
                                       now=NOW).filed
    assert settle(customers, request_id) == RequestState.COMPLETED
    with customers.session() as session:
        # A customer who comes back later is welcome, not drift to erase again.
        assert session.scalar(select(func.count()).select_from(SuppressionRow)) == 0
        sweep = retention.sweep(session, customers.hasher, rule, file=False, now=NOW)
        assert sweep.aggregated == [request_id]
    with customers.session() as session:
        row = ledger.get_request(session, request_id)
        [task] = ledger.tasks_of(session, request_id)
        assert task.evidence == {"at": NOW.isoformat(), "verified": True,
                                 "counts": {"deleted": 1}}
        for table in (RequestIdentifierRow, TaskActionRow):
            assert session.scalar(select(func.count()).select_from(table)
                                  .where(table.request_id == request_id)) == 0
        assert (row.state, row.kind, row.origin) == ("completed", "erasure", "retention")
        event = session.scalars(select(AuditEventRow).where(
            AuditEventRow.action == "retention.aggregated")).one()
        assert '"pipedrive":{"deleted":1}' in event.payload
        # Idempotent: nothing is left to reduce.
        assert retention.aggregate(session, rule, now=NOW) == []


def test_counts_only_keeps_what_a_running_hold_needs_until_the_hold_is_filed(customers):
    """Controller D keeps only counts, but a bookkeeping hold the erasure placed still
    has to be shown to the person (rule 5) and ended on time: its pointer, basis and end
    stay, and so do the keyed hashes linking it to them, until the sweep files the
    erasure of the kept record; the sweep after that drops the hashes too."""
    rule = policy(after_relationship_years=10, aggregate_only=True)
    with customers.session() as session:
        [request_id] = retention.sweep(session, customers.hasher, rule, file=True,
                                       now=NOW).filed
    with customers.session() as session:  # Netvisor kept her customer: an invoice
        row = ledger.get_request(session, request_id)
        ledger.transition(session, row, RequestState.IN_PROGRESS, now=NOW)
        [task] = ledger.ensure_tasks(session, row, ["netvisor"], now=NOW)
        ledger.move_task(session, task, TaskState.RUNNING, now=NOW)
        journal.plan(session, request_id, "netvisor", [RecordRef("netvisor", "customer", "7")],
                     attempt=1, now=NOW)
        ledger.move_task(session, task, TaskState.RETAINED, action="retained", now=NOW,
                         evidence={"at": NOW.isoformat(), "verified": True,
                                   "counts": {"retained": 1}, "records": [{
                                       "kind": "customer", "record_id": "7",
                                       "action": "retained", "legal_basis": "Kirjanpitolaki",
                                       "retained_until": "2029-12-31"}]})
        assert ledger.finalise(session, customers.hasher, row, now=NOW) == \
            RequestState.PARTIALLY_COMPLETED
        holds.record_from_tasks(session, ledger.tasks_of(session, request_id), now=NOW)

    def hashes(session, rid):
        return session.scalar(select(func.count()).select_from(RequestIdentifierRow)
                              .where(RequestIdentifierRow.request_id == rid))

    with customers.session() as session:
        assert retention.sweep(session, customers.hasher, rule, file=False,
                               now=NOW).aggregated == [request_id]
    with customers.session() as session:
        [task] = ledger.tasks_of(session, request_id)
        assert task.evidence["records"][0]["retained_until"] == "2029-12-31"
        assert session.scalar(select(func.count()).select_from(TaskActionRow)
                              .where(TaskActionRow.request_id == request_id)) == 0
        assert hashes(session, request_id) > 0
        access = ledger.create_request(session, customers.hasher, RequestKind.ACCESS,
                                       [Identifier(IdentifierKind.EMAIL, AINO)], now=NOW)
        [kept] = holds.holds_of_subject(session, access.id, TODAY)
        assert (kept.system, kept.record_id, kept.held_until) == (
            "netvisor", "7", date(2029, 12, 31))
        assert retention.aggregate(session, rule, now=NOW) == []  # nothing more, yet
    later = datetime(2030, 1, 2, 3, 0, tzinfo=UTC)
    with customers.session() as session:
        sweep = retention.sweep(session, customers.hasher, rule, file=True, now=later)
        [filed] = [f for f in sweep.filings if f.due.reason == Reason.HOLD_ENDED]
        assert filed.new and hashes(session, filed.request_id) > 0  # carried on
    with customers.session() as session:
        assert retention.sweep(session, customers.hasher, rule, file=False,
                               now=later).aggregated == [request_id]
        assert hashes(session, request_id) == 0
        assert retention.aggregate(session, rule, now=later) == []
        assert session.scalar(select(func.count()).select_from(AuditEventRow).where(
            AuditEventRow.request_id == request_id,
            AuditEventRow.action == "retention.aggregated")) == 1


def test_what_a_settled_retention_erasure_left_is_not_filed_again(customers):
    rule = policy(after_relationship_years=10)
    with customers.session() as session:
        [request_id] = retention.sweep(session, customers.hasher, rule, file=True,
                                       now=NOW).filed
    settle(customers, request_id)
    # A record the erasure did not act on (an operator excluded it) comes back with a
    # full sync, its last activity as old as before.
    put(customers, "typeform", SourceRecord("typeform", "f:1", (AINO,), (), "Aino Virtanen",
                                            updated_at=at(2013)))
    with customers.session() as session:
        [filing] = retention.sweep(session, customers.hasher, rule, file=True,
                                   now=NOW).filings
    assert filing.request_id is None and f"{request_id} erased them" in filing.note
    # A new activity is a new relationship: its years count again from it.
    put(customers, "typeform", SourceRecord("typeform", "f:1", (AINO,), (), "Aino Virtanen",
                                            updated_at=at(2026, 6, 1)))
    with customers.session() as session:
        later = retention.sweep(session, customers.hasher, rule, file=True,
                                now=datetime(2036, 6, 2, 3, 0, tzinfo=UTC))
    aino = next(f for f in later.filings if f.due.person_id == person_of(customers, AINO))
    assert aino.due.since == date(2026, 6, 1) and aino.new


def test_without_aggregate_only_a_settled_retention_erasure_keeps_its_hashes(customers):
    rule = policy(after_relationship_years=10)
    with customers.session() as session:
        [request_id] = retention.sweep(session, customers.hasher, rule, file=True,
                                       now=NOW).filed
    settle(customers, request_id)
    with customers.session() as session:
        assert retention.aggregate(session, rule, now=NOW) == []
        assert ledger.identifier_hashes(session, request_id)


# --- holds that ended --------------------------------------------------------------------


def hold(store, until, record_id="1000"):
    with store.session() as session:
        session.add(LegalHoldRow(system="netvisor", record_id=record_id, request_id="R-1",
                                 legal_basis="Kirjanpitolaki 2:10", held_until=until,
                                 created_at=NOW))


def test_a_hold_that_ended_is_due_until_something_acts_on_the_record(store):
    hold(store, date(2026, 3, 1))
    hold(store, date(2026, 3, 2), record_id="2000")  # its last day is today: still held
    with store.session() as session:
        [found] = retention.due(session, policy(), TODAY)
    assert (found.reason, found.since, found.system, found.record_id, found.request_id) == (
        Reason.HOLD_ENDED, date(2026, 3, 1), "netvisor", "1000", "R-1")
    assert found.masked == ("netvisor record 1000",)
    with store.session() as session:
        row = ledger.create_request(session, store.hasher, RequestKind.ERASURE,
                                    [Identifier(IdentifierKind.EMAIL, AINO)], now=NOW)
        journal.plan(session, row.id, "netvisor", [RecordRef("netvisor", "customer", "1000")],
                     attempt=1, now=NOW)
    with store.session() as session:
        assert retention.due(session, policy(), TODAY) == []


# --- the command ------------------------------------------------------------------------


def test_the_command_lists_masked_and_files_only_when_asked(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    opened = open_store(Settings(_env_file=None, database_url=url, secret=TEST_SECRET,
                                 home=tmp_path / ".hub"))
    put(opened, "pipedrive", SourceRecord("pipedrive", "1", (AINO,), (), "Aino Virtanen",
                                          updated_at=at(2012, 5, 4)))
    opened.close()
    policy_file = write(tmp_path, "[retention]\nafter_relationship_years = 10\n")
    for key in [k for k in os.environ if k.startswith("HUB_")]:
        monkeypatch.delenv(key)
    env = {"HUB_DATABASE_URL": url, "HUB_SECRET": TEST_SECRET,
           "HUB_POLICY_FILE": str(policy_file), "HUB_HOME": str(tmp_path / ".hub")}
    runner = CliRunner()

    dry = runner.invoke(app, ["retention", "sweep"], env=env)
    assert dry.exit_code == 0, dry.output
    assert "relationship_ended  2012-05-04  a***@example.fi" in dry.stdout
    assert "1 due (relationship_ended 1); dry run" in dry.stdout
    assert "aino" not in dry.stdout.lower()

    filed = runner.invoke(app, ["retention", "sweep", "--file"], env=env)
    assert filed.exit_code == 0, filed.output
    assert "1 requests filed" in filed.stdout
    request_id = filed.stdout.split("-> ")[1].split()[0]
    again = runner.invoke(app, ["retention", "sweep", "--file"], env=env)
    assert f"-> {request_id} already open" in again.stdout and "0 requests filed" in again.stdout

    broken = write(tmp_path, "[retention]\nafter_relationship_years = 10\n"
                             "january_after_service_end = true\n")
    refused = runner.invoke(app, ["retention", "sweep"], env={**env,
                                                               "HUB_POLICY_FILE": str(broken)})
    assert refused.exit_code == 1 and "choose one rule" in refused.stderr


def test_a_hold_that_ended_is_filed_for_the_record_itself_once(store):
    with store.session() as session:
        kept = ledger.create_request(session, store.hasher, RequestKind.ERASURE,
                                     [Identifier(IdentifierKind.EMAIL, AINO)], now=NOW)
        kept_id = kept.id
        session.add(TaskRow(request_id=kept_id, system="netvisor", state="retained",
                            attempts=1, created_at=NOW, updated_at=NOW, evidence={
                                "records": [{"kind": "customer", "record_id": "1000",
                                             "action": "retained",
                                             "retained_until": "2026-03-01"}]}))
        session.add(LegalHoldRow(system="netvisor", record_id="1000", request_id=kept_id,
                                 legal_basis="KPL 2:10", held_until=date(2026, 3, 1),
                                 created_at=NOW))
        ledger.scrub(session, kept)
    hold(store, date(2026, 2, 1), record_id="2000")  # its erasure left no evidence
    with store.session() as session:
        sweep = retention.sweep(session, store.hasher, policy(), file=True, now=NOW)
        by_record = {f.due.record_id: f for f in sweep.filings}
        assert by_record["2000"].request_id is None and "unknown" in by_record["2000"].note
        erase = by_record["1000"].request_id
        row = ledger.get_request(session, erase)
        assert (row.kind, row.state, row.origin) == ("erasure", "verified", "retention")
        # Named in the journal, as a retry would find it; the subject by keyed hash only.
        assert journal.planned(session, erase, "netvisor") == [
            RecordRef("netvisor", "customer", "1000", label="customer 1000")]
        assert journal.planned_systems(session, erase) == {"netvisor"}
        assert ledger.identifiers_of(session, erase) == []
        assert ledger.identifier_hashes(session, erase) == ledger.identifier_hashes(
            session, kept_id)
    with store.session() as session:
        again = retention.sweep(session, store.hasher, policy(), file=True, now=NOW)
    assert [f.due.record_id for f in again.filings] == ["2000"]  # 1000 is answered


def test_a_hold_confirmed_by_hand_is_listed_for_a_person_not_filed(store):
    """Found in review: a hold an operator confirmed (a paper archive kept under the
    Accounting Act) was filed as an erasure naming a record no connector can find."""
    with store.session() as session:
        kept = ledger.create_request(session, store.hasher, RequestKind.ERASURE,
                                     [Identifier(IdentifierKind.EMAIL, AINO)], now=NOW)
        session.add(TaskRow(request_id=kept.id, system="paper_archive", state="retained",
                            attempts=0, created_at=NOW, updated_at=NOW, evidence={
                                "records": [{"kind": "manual", "action": "retained",
                                             "record_id": f"paper_archive:{kept.id}",
                                             "retained_until": "2026-03-01"}]}))
        session.add(LegalHoldRow(system="paper_archive", record_id=f"paper_archive:{kept.id}",
                                 request_id=kept.id, legal_basis="KPL 2:10",
                                 held_until=date(2026, 3, 1), created_at=NOW))
        sweep = retention.sweep(session, store.hasher, policy(), file=True, now=NOW)
        filing, = sweep.filings
        assert filing.request_id is None and not filing.new
        assert f"kept by hand under {kept.id}" in filing.note
