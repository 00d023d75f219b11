"""Drift in the nightly reconciliation, acted on: the checks, and the requests they file."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from dagster import AssetCheckSeverity, materialize

from hub import index, ledger
from hub.domain import Identifier, IdentifierKind
from hub.ledger import RequestKind, RequestState
from hub.models import AuditEventRow, LegalHoldRow
from pipelines.checks import CHECKS
from pipelines.reconciliation import SYNC_ASSETS, person_drift, person_index
from pipelines.resources import HubResource
from tests.pipelines.jobs import run_to_the_end

MIKKO = "mikko.hakkinen@example.fi"
AINO = "aino.virtanen@example.fi"


@pytest.fixture
def home(vendors, tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    return vendors


def reconcile(resources):
    result = materialize([*SYNC_ASSETS, person_index, person_drift, *CHECKS],
                         resources=resources)
    assert result.success  # checks warn or fail; they do not fail the run
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def file_and_run(store, kind, email, resources) -> str:
    with store.session() as session:
        row = ledger.create_request(session, store.hasher, kind,
                                    [Identifier(IdentifierKind.EMAIL, email)])
        ledger.verify(session, row.id)
        rid = row.id
    run(rid, resources)
    return rid


def run(request_id, resources):
    with HubResource(database_url=resources["hub"].database_url).store() as store:
        assert run_to_the_end(store, request_id, resources).success


def pipedrive(vendors, method, path, **kwargs):
    response = httpx.request(method, f"{vendors.urls['pipedrive']}{path}", timeout=10,
                             headers={"x-api-token": vendors.env["PIPEDRIVE_API_TOKEN"]},
                             **kwargs)
    response.raise_for_status()
    return response.json()


def pipedrive_persons(vendors, email):
    found = httpx.get(f"{vendors.urls['pipedrive']}/__sandbox/find", params={"email": email},
                      timeout=10).json()["records"]
    return [r for r in found if r["kind"] == "person"]


def drift_requests(store, origin):
    with store.session() as session:
        rows = [r for r in ledger.list_requests(session, today=datetime.now(UTC).date())
                if r.origin == origin]
        return [(r.id, r.kind, r.state) for r in rows]


def test_an_erased_person_reimported_gets_a_new_erasure_that_removes_them(
        home, resources, hub_store):
    assert reconcile(resources)["no_erased_person_present"].passed
    file_and_run(hub_store, RequestKind.ERASURE, MIKKO, resources)
    with hub_store.session() as session:  # rule 6: the index forgot them
        assert index.lookup(session, Identifier(IdentifierKind.EMAIL, MIKKO)) is None
    assert reconcile(resources)["no_erased_person_present"].passed

    # Someone imports an old spreadsheet into Pipedrive.
    pipedrive(home, "POST", "/api/v2/persons",
              json={"name": "Mikko Häkkinen", "emails": [{"value": MIKKO, "primary": True}]})
    checks = reconcile(resources)
    found = checks["no_erased_person_present"]
    [(rid, kind, state)] = drift_requests(hub_store, "reappearance")
    assert (kind, state) == ("erasure", RequestState.VERIFIED)
    assert not found.passed and found.severity == AssetCheckSeverity.WARN  # answered
    assert rid in found.description and "pipedrive 1" in found.description
    assert "mikko" not in found.description.lower()
    with hub_store.session() as session:
        actions = {e.action for e in session.query(AuditEventRow).filter_by(request_id=rid)}
        assert "drift.reappearance" in actions

    run(rid, resources)  # what the sensor launches
    assert {p["state"] for p in pipedrive_persons(home, MIKKO)} == {"deleted"}
    assert reconcile(resources)["no_erased_person_present"].passed


def test_an_opted_out_person_subscribed_again_is_unsubscribed_again(home, resources,
                                                                    hub_store):
    reconcile(resources)
    file_and_run(hub_store, RequestKind.OPT_OUT, MIKKO, resources)
    assert reconcile(resources)["opted_out_people_unsubscribed"].passed

    # Pipedrive lets a marketing status change once; Mailchimp takes a new double opt-in.
    member = httpx.get(f"{home.urls['mailchimp']}/__sandbox/find", params={"email": MIKKO},
                       timeout=10).json()["records"][0]
    list_id, member_hash = member["id"].split(":")
    httpx.patch(f"{home.env['MAILCHIMP_BASE_URL']}/lists/{list_id}/members/{member_hash}",
                json={"status": "pending"}, auth=("hub", home.env["MAILCHIMP_API_KEY"]),
                timeout=10).raise_for_status()
    found = reconcile(resources)["opted_out_people_unsubscribed"]
    [(rid, kind, state)] = drift_requests(hub_store, "resubscription")
    assert (kind, state) == ("opt_out", RequestState.VERIFIED)
    assert not found.passed and rid in found.description and "mailchimp 1" in found.description

    run(rid, resources)
    states = {m["state"] for m in httpx.get(f"{home.urls['mailchimp']}/__sandbox/find",
                                            params={"email": MIKKO}, timeout=10
                                            ).json()["records"]}
    assert states == {"unsubscribed"}
    assert reconcile(resources)["opted_out_people_unsubscribed"].passed


def test_a_customer_kept_under_a_legal_hold_is_not_drift(home, resources, hub_store):
    reconcile(resources)
    rid = file_and_run(hub_store, RequestKind.ERASURE, AINO, resources)
    with hub_store.session() as session:
        [hold] = session.query(LegalHoldRow).all()
        assert (hold.system, hold.request_id, hold.held_until.isoformat()) == (
            "netvisor", rid, "2032-12-31")
    checks = reconcile(resources)
    assert checks["no_erased_person_present"].passed
    assert drift_requests(hub_store, "reappearance") == []


def test_an_erased_person_back_with_only_their_phone_is_caught(home, resources, hub_store):
    """Found: Aino, erased by her e-mail, re-entered in Pipedrive with only the phone her
    erased CRM record held, was not caught. Every identifier read on the erased records
    (shared ones excepted) is on the suppression list now."""
    reconcile(resources)
    file_and_run(hub_store, RequestKind.ERASURE, AINO, resources)
    assert reconcile(resources)["no_erased_person_present"].passed
    pipedrive(home, "POST", "/api/v2/persons",
              json={"name": "A. Virtanen", "phones": [{"value": "040 123 4567",
                                                       "primary": True}]})
    found = reconcile(resources)["no_erased_person_present"]
    assert not found.passed and "pipedrive 1" in found.description
    [(_, kind, _)] = drift_requests(hub_store, "reappearance")
    assert kind == "erasure"


def test_the_next_sync_does_not_put_a_held_customers_name_back(home, resources, hub_store):
    reconcile(resources)
    rid = file_and_run(hub_store, RequestKind.ERASURE, AINO, resources)
    reconcile(resources)
    with hub_store.session() as session:
        [hold] = session.query(LegalHoldRow).filter_by(request_id=rid).all()
        row = session.query(index.SR).filter_by(system="netvisor",
                                                 record_id=hold.record_id).one()
        assert row.display_name is None  # a pointer only: kept at Netvisor by law
        assert not session.query(index.RI).filter_by(record_pk=row.pk).count()


def test_deadline_check_fails_on_overdue_and_lists_due_soon_masked(home, resources,
                                                                   hub_store):
    now = datetime.now(UTC)
    with hub_store.session() as session:
        late = ledger.create_request(session, hub_store.hasher, RequestKind.ACCESS,
                                     [Identifier(IdentifierKind.EMAIL, AINO)],
                                     now=now - timedelta(days=40))
        soon = ledger.create_request(session, hub_store.hasher, RequestKind.ERASURE,
                                     [Identifier(IdentifierKind.EMAIL, MIKKO)],
                                     now=now - timedelta(days=26))
    checks = reconcile(resources)
    deadlines = checks["request_deadlines"]
    assert not deadlines.passed and deadlines.severity == AssetCheckSeverity.ERROR
    assert late.id in deadlines.description and soon.id not in deadlines.description
    table = deadlines.metadata["requests"].value
    assert late.id in table and soon.id in table and "m***@example.fi" in table
    assert "mikko" not in table and "aino" not in table
    assert checks["nothing_stuck"].passed


def test_a_request_waiting_for_an_operator_is_listed_every_night(home, resources, hub_store,
                                                                  monkeypatch):
    """Neither stuck nor silently narrowed: nothing_stuck names it (as a warning)."""
    from hub import outcomes, review
    from hub.domain import Outcome, RecordRef

    monkeypatch.setenv("HUB_STUCK_AFTER_MINUTES", "1")
    with hub_store.session() as session:
        row = ledger.create_request(session, hub_store.hasher, RequestKind.ERASURE,
                                    [Identifier(IdentifierKind.EMAIL, MIKKO)],
                                    now=datetime.now(UTC) - timedelta(hours=3))
        ledger.verify(session, row.id)
        ledger.transition(session, row, RequestState.IN_PROGRESS)
        ledger.ensure_tasks(session, row, ["pipedrive"])
        review.register(session, row.id, [(RecordRef("pipedrive", "person", "5"),
                                           "phone +358*******56 is shared")])
        outcomes.begin(session, row.id, "pipedrive")
        outcomes.record(session, row.id, Outcome("pipedrive", verified=True), candidates=1)
        ledger.finalise(session, hub_store.hasher, row,
                        now=datetime.now(UTC) - timedelta(minutes=5))
        rid = row.id
    stuck = reconcile(resources)["nothing_stuck"]
    assert not stuck.passed and stuck.severity == AssetCheckSeverity.WARN
    assert rid in stuck.description and "waits for an operator" in stuck.description
    assert "1 candidate(s) to review" in stuck.description
