"""The retention sweep as Dagster runs it: a dry run by default; when the policy says
so, it files erasures that run like any other, and (controller D) leaves counts only."""

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from dagster import materialize
from sqlalchemy import func, select, update

from connectors.netvisor.connector import ANONYMISED_NAME
from hub import index, ledger
from hub.domain import Identifier, IdentifierKind
from hub.ledger import RequestKind, RequestState
from hub.models import (
    LegalHoldRow,
    RecordIdentifierRow,
    RequestIdentifierRow,
    SourceRecordRow,
    SuppressionRow,
)
from pipelines.retention import retention_sweep
from tests.pipelines.jobs import at_vendor, file_request, run_to_the_end, tasks

MIKKO = "mikko.hakkinen@example.fi"  # found in every system, shares nothing
CONTROLLER_D = """
[retention]
january_after_service_end = true
file_requests = true
aggregate_only = true
"""


def with_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, retention: str) -> None:
    """The default policy plus a retention section, as a deployment would write it."""
    policy = tmp_path / "policy.toml"
    default = (Path(__file__).parents[2] / "hub" / "default_policy.toml").read_text("utf-8")
    policy.write_text(default + retention, "utf-8")
    monkeypatch.setenv("HUB_POLICY_FILE", str(policy))


def last_seen(store, email: str, when: datetime) -> str:
    """Everyone active now, except this person, last active at ``when``."""
    with store.session() as session:
        session.execute(update(SourceRecordRow).values(vendor_updated_at=datetime.now(UTC)))
        person = index.lookup(session, Identifier(IdentifierKind.EMAIL, email))
        session.execute(update(SourceRecordRow).where(SourceRecordRow.person_id == person)
                        .values(vendor_updated_at=when))
        return person


def sweep(resources) -> dict:
    result = materialize([retention_sweep], resources=resources)
    assert result.success
    # Rule 7: everything Dagster keeps of the run, not only the metadata, is masked.
    stored = str([e.event_specific_data for e in result.all_events])
    assert "@example.fi" not in stored.replace("***@example.fi", "")
    [event] = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_a_dry_run_lists_who_is_due_masked_and_files_nothing(indexed, resources, tmp_path,
                                                            monkeypatch):
    with_policy(tmp_path, monkeypatch, "[retention]\nafter_relationship_years = 10\n")
    last_seen(indexed, MIKKO, datetime(2015, 5, 4, tzinfo=UTC))
    shown = sweep(resources)
    assert shown["dry_run"] is True
    assert (shown["due"], shown["per_reason"], shown["requests_filed"]) == (
        1, {"relationship_ended": 1}, 0)
    assert "m***@example.fi" in shown["due_list"] and "2015-05-04" in shown["due_list"]
    assert MIKKO not in str(shown) and "Häkkinen" not in str(shown)
    with indexed.session() as session:
        assert ledger.list_requests(session, today=datetime.now(UTC).date()) == []


def test_controller_d_erases_in_january_after_the_service_and_keeps_only_counts(
        indexed, vendors, resources, tmp_path, monkeypatch):
    with_policy(tmp_path, monkeypatch, CONTROLLER_D)
    last_seen(indexed, MIKKO, datetime(datetime.now(UTC).year - 1, 3, 1, tzinfo=UTC))
    shown = sweep(resources)
    assert (shown["dry_run"], shown["per_reason"], shown["requests_filed"]) == (
        False, {"service_ended": 1}, 1)
    request_id = shown["filed"]
    assert f"{request_id} (filed)" in shown["due_list"]
    assert sweep(resources)["requests_filed"] == 0  # still open: not filed twice

    # Filed verified: the sensor would launch it; here the job runs it directly.
    assert run_to_the_end(indexed, request_id, resources).success
    done = tasks(indexed, request_id)
    assert {t.state for t in done.values()} <= {"done", "not_found"}
    assert done["mailchimp"].state == "done"
    assert at_vendor(vendors, "mailchimp", MIKKO) == []
    with indexed.session() as session:
        row = ledger.get_request(session, request_id)
        assert (row.state, row.origin) == (RequestState.COMPLETED, "retention")
        # Not the subject's objection: a customer who comes back is welcome.
        assert session.scalar(select(func.count()).select_from(SuppressionRow)) == 0

    after = sweep(resources)
    assert (after["due"], after["reduced_to_counts"]) == (0, 1)
    with indexed.session() as session:
        assert session.scalar(select(func.count()).select_from(RequestIdentifierRow).where(
            RequestIdentifierRow.request_id == request_id)) == 0
        evidence = tasks(indexed, request_id)["mailchimp"].evidence
        assert "records" not in evidence and evidence["counts"]


def test_the_sweep_runs_daily_after_the_nightly_index():
    from dagster import DefaultScheduleStatus

    from pipelines.definitions import defs

    schedule = defs.get_repository_def().get_schedule_def("retention_sweep_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 4 * * *",
                                                                    "Europe/Helsinki")
    assert schedule.default_status == DefaultScheduleStatus.RUNNING  # a dry run by default
    assert schedule.job_name == "retention_sweep_job"


def sandbox_record(vendors, kind, key):
    return httpx.get(f"{vendors.urls['netvisor']}/__sandbox/records/{kind}/{key}",
                     timeout=10).json()


def customer_with_paid_invoices(store, vendors, years: range) -> tuple[str, str]:
    """A seeded Netvisor customer (key, e-mail) whose invoices are all paid, the last
    one in one of ``years``: kept under a 6-year hold, free under a 1-year one."""
    with store.session() as session:
        rows = session.execute(
            select(SourceRecordRow.record_id, RecordIdentifierRow.value)
            .join(RecordIdentifierRow, RecordIdentifierRow.record_pk == SourceRecordRow.pk)
            .where(SourceRecordRow.system == "netvisor", RecordIdentifierRow.kind == "email",
                   SourceRecordRow.record_id.not_like("%/%"))).all()
    for key, email in rows:
        invoices = [sandbox_record(vendors, "salesinvoice", i)
                    for i in sandbox_record(vendors, "customer", key)["invoices"]]
        if (invoices and all(i["state"] == "paid" for i in invoices)
                and max(date.fromisoformat(i["invoice_date"]) for i in invoices).year in years):
            return key, email
    raise AssertionError("the seed has no such customer")


def test_a_customer_kept_by_law_is_anonymised_once_the_hold_ends(
        indexed, vendors, resources, tmp_path, monkeypatch):
    this_year = datetime.now(UTC).year
    key, email = customer_with_paid_invoices(indexed, vendors,
                                             range(this_year - 5, this_year - 1))
    kept = file_request(indexed, RequestKind.ERASURE, email)
    assert run_to_the_end(indexed, kept, resources).success
    assert tasks(indexed, kept)["netvisor"].state == "retained"
    assert sandbox_record(vendors, "customer", key)["fields"]["Name"] != ANONYMISED_NAME

    # Years pass: the hold's end is behind us, at the hub (the hold's date) and at the
    # vendor (a 1-year period makes the same invoices free, as 6 years will).
    with indexed.session() as session:
        session.execute(update(LegalHoldRow).values(
            held_until=datetime.now(UTC).date() - timedelta(days=2)))
    with_policy(tmp_path, monkeypatch, "[retention]\nfile_requests = true\n")
    policy = Path(os.environ["HUB_POLICY_FILE"])
    policy.write_text(policy.read_text("utf-8").replace("retention_years = 6",
                                                        "retention_years = 1"), "utf-8")
    shown = sweep(resources)
    assert shown["per_reason"] == {"hold_ended": 1}
    assert f"netvisor record {key}" in shown["due_list"]
    erase = shown["filed"]
    with indexed.session() as session:  # the same subject, by keyed hash only
        assert ledger.identifiers_of(session, erase) == []
        assert indexed.hasher.identifier(Identifier(IdentifierKind.EMAIL, email)) in {
            h for _, h in ledger.identifier_hashes(session, erase)}

    assert run_to_the_end(indexed, erase, resources).success
    done = tasks(indexed, erase)
    assert done["netvisor"].state == "done" and done["netvisor"].action == "anonymised"
    # Found in review: a request for a record ran in every system, and each it could not
    # search (no identifier is left) reported "not found". It acts where the record is.
    assert set(done) == {"netvisor"}
    customer = sandbox_record(vendors, "customer", key)
    assert customer["fields"]["Name"] == ANONYMISED_NAME and customer["state"] == "inactive"
    with indexed.session() as session:
        assert ledger.get_request(session, erase).state == RequestState.COMPLETED
    assert sweep(resources)["due"] == 0  # answered: not filed again
