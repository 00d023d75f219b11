"""Rectification (art. 16, 19) and restriction (art. 18) end to end: the job against
the sandbox over real HTTP, the effect checked at each vendor through its emulator's
inspection API, then what the index does after."""

from __future__ import annotations

import httpx
import pytest
from dagster import materialize
from sqlalchemy import select

from hub import index, ledger, suppression
from hub.domain import Address, Corrections, Identifier, IdentifierKind
from hub.ledger import RequestKind, RequestState
from hub.models import RecordIdentifierRow, RestrictedRecordRow, SourceRecordRow
from pipelines.reconciliation import SYNC_ASSETS, person_index
from tests.pipelines.jobs import (
    at_vendor,
    file_request,
    run,
    run_to_the_end,
    state,
    tasks,
)

AINO = "aino.virtanen@example.fi"
NEW = "aino.korhonen@example.fi"
FIXED = Corrections(email=NEW, phone="+358401112233", name="Aino Korhonen",
                    address=Address("Mannerheimintie 1 A 2", "00100", "Helsinki"))
API_SYSTEMS = ("pipedrive", "mailchimp", "netvisor")


def record(vendors, system: str, kind: str, rid) -> dict:
    answer = httpx.get(f"{vendors.urls[system]}/__sandbox/records/{kind}/{rid}", timeout=10)
    answer.raise_for_status()
    return answer.json()


def live(vendors, system: str, email: str, kind: str) -> list[dict]:
    return [r for r in at_vendor(vendors, system, email)
            if r["kind"] == kind and r["state"] != "deleted"]


def test_aino_is_in_every_system(vendors):
    """The test person holds records in all four systems (else the tests below prove less)."""
    for system in ("pipedrive", "mailchimp", "typeform", "netvisor"):
        assert at_vendor(vendors, system, AINO), system


def test_rectification_tells_every_system_and_the_index_follows(indexed, vendors, resources):
    rid = file_request(indexed, RequestKind.RECTIFICATION, AINO, corrections=FIXED)
    assert run(rid, resources).success
    done = tasks(indexed, rid)
    for system in API_SYSTEMS:
        assert done[system].state == "done", (system, done[system].error)
        assert done[system].action == "rectified"
        assert done[system].evidence["verified"] is True
        # art. 19: which records were told, and what (field names, never values)
        told = [r for r in done[system].evidence["records"] if r["action"] == "rectified"]
        assert told and all("told the corrected" in r["detail"]
                            or "already holds" in r["detail"] for r in told)
    # Typeform answers cannot be edited: an operator's task that says so (the review
    # of a candidate, an answer that only mentions the address, may come first)
    assert done["typeform"].state in ("manual_pending", "review")
    assert "cannot be edited" in done["typeform"].evidence["records"][0]["detail"]
    assert "hub task confirm" in done["typeform"].evidence["follow_up"]
    assert state(indexed, rid) == RequestState.AWAITING_REVIEW
    # at the vendors: the new values, and nobody holds the wrong address any more
    (person,) = live(vendors, "pipedrive", NEW, "person")
    assert record(vendors, "pipedrive", "person", person["id"])["name"] == "Aino Korhonen"
    assert not live(vendors, "pipedrive", AINO, "person")
    assert live(vendors, "mailchimp", NEW, "member")
    assert not live(vendors, "mailchimp", AINO, "member")
    (customer,) = live(vendors, "netvisor", NEW, "customer")
    fields = record(vendors, "netvisor", "customer", customer["id"])["fields"]
    assert (fields["Name"], fields["PhoneNumber"]) == ("Aino Korhonen", "+358401112233")
    # the operator corrects the Typeform answers by hand and confirms: it settles
    assert run_to_the_end(indexed, rid, resources).success
    assert state(indexed, rid) == RequestState.COMPLETED
    with indexed.session() as session:
        assert ledger.corrections_of(session, rid) is None  # the values are dropped
        assert index.lookup(session, Identifier(IdentifierKind.EMAIL, NEW)) is None
    # the index follows with the next sync: the vendors' change times moved
    assert materialize([*SYNC_ASSETS, person_index], resources=resources).success
    with indexed.session() as session:
        assert index.lookup(session, Identifier(IdentifierKind.EMAIL, NEW)) is not None
        # only Typeform's answers, which no API can edit, still hold the old address
        still = session.execute(select(SourceRecordRow.system).join(
            RecordIdentifierRow, RecordIdentifierRow.record_pk == SourceRecordRow.pk).where(
            RecordIdentifierRow.value == AINO, SourceRecordRow.gone_at.is_(None))).scalars()
        assert set(still) <= {"typeform"}


def pipedrive_person(vendors, email: str) -> dict:
    (person,) = live(vendors, "pipedrive", email, "person")
    return record(vendors, "pipedrive", "person", person["id"])


def test_restriction_marks_unsubscribes_freezes_the_index_and_lifts(indexed, vendors,
                                                                      resources):
    rid = file_request(indexed, RequestKind.RESTRICTION, AINO)
    assert run_to_the_end(indexed, rid, resources).success
    assert state(indexed, rid) == RequestState.COMPLETED
    done = tasks(indexed, rid)
    for system in API_SYSTEMS:
        assert done[system].action == "restricted", (system, done[system].evidence)
    assert "cannot express a restriction" in done["typeform"].evidence["records"][0]["detail"]
    person = pipedrive_person(vendors, AINO)
    assert 5 in person["label_ids"] and person["marketing_status"] == "unsubscribed"
    for member in live(vendors, "mailchimp", AINO, "member"):
        held = record(vendors, "mailchimp", "member", member["id"])
        assert "gdpr-restricted" in [t["name"] for t in held["tags"]]
        assert held["status"] not in ("subscribed", "pending")
    (customer,) = live(vendors, "netvisor", AINO, "customer")
    comment = record(vendors, "netvisor", "customer", customer["id"])["fields"]["Comment"]
    assert "GDPR: processing restricted" in comment

    # while restricted, the sync leaves the person's index records as they were
    with indexed.session() as session:
        frozen = session.execute(select(RestrictedRecordRow)).scalars().all()
        assert {r.system for r in frozen} >= set(API_SYSTEMS)
        before = session.execute(select(SourceRecordRow.display_name).where(
            SourceRecordRow.system == "pipedrive",
            SourceRecordRow.record_id == str(person["id"]))).scalar_one()
    token = vendors.env["PIPEDRIVE_API_TOKEN"]
    edit = httpx.patch(f"{vendors.urls['pipedrive']}/api/v2/persons/{person['id']}",
                       json={"name": "Aino Virtanen-Korhonen"},
                       headers={"x-api-token": token}, timeout=10)
    assert edit.status_code == 200, edit.text
    assert materialize([*SYNC_ASSETS, person_index], resources=resources).success
    with indexed.session() as session:
        after = session.execute(select(SourceRecordRow.display_name).where(
            SourceRecordRow.system == "pipedrive",
            SourceRecordRow.record_id == str(person["id"]))).scalar_one()
        assert after == before
        assert not session.execute(select(SourceRecordRow.subscribed).where(
            SourceRecordRow.system == "pipedrive",
            SourceRecordRow.record_id == str(person["id"]))).scalar_one()

    with indexed.session() as session:  # out of marketing: drift if subscribed again
        assert suppression.is_suppressed(session, indexed.hasher,
                                         Identifier(IdentifierKind.EMAIL, AINO), "restriction")

    # lifting is a request too: the marks come off, the index thaws, consent stays off
    lift = file_request(indexed, RequestKind.RESTRICTION_LIFT, AINO)
    assert run_to_the_end(indexed, lift, resources).success
    assert state(indexed, lift) == RequestState.COMPLETED
    assert {tasks(indexed, lift)[s].action for s in API_SYSTEMS} == {"lifted"}
    person = pipedrive_person(vendors, AINO)
    assert 5 not in person["label_ids"] and person["marketing_status"] == "unsubscribed"
    for member in live(vendors, "mailchimp", AINO, "member"):
        held = record(vendors, "mailchimp", "member", member["id"])
        assert "gdpr-restricted" not in [t["name"] for t in held["tags"]]
    comment = record(vendors, "netvisor", "customer", customer["id"])["fields"]["Comment"]
    assert "GDPR: processing restricted" not in comment
    with indexed.session() as session:
        assert not suppression.is_suppressed(session, indexed.hasher, Identifier(
            IdentifierKind.EMAIL, AINO), "restriction")
        left = [(r.system, r.record_id) for r in
                session.execute(select(RestrictedRecordRow)).scalars()]
        assert left == []


@pytest.mark.parametrize("kind", [RequestKind.RECTIFICATION, RequestKind.RESTRICTION])
def test_no_corrected_value_reaches_dagster(indexed, vendors, resources, kind):
    """Rule 7: run config, tags, metadata and logs carry masked values only."""
    corrections = FIXED if kind == RequestKind.RECTIFICATION else None
    rid = file_request(indexed, kind, AINO, corrections=corrections)
    result = run(rid, resources)
    assert result.success
    seen = " ".join(str(e) for e in result.all_events).lower()
    for secret in (AINO, NEW, "korhonen", "mannerheimintie", "401112233"):
        assert secret not in seen


def test_an_erasure_leaves_no_restriction_pointer_behind(indexed, vendors, resources):
    restricted = file_request(indexed, RequestKind.RESTRICTION, AINO)
    assert run_to_the_end(indexed, restricted, resources).success
    with indexed.session() as session:
        assert session.execute(select(RestrictedRecordRow)).scalars().all()
    erased = file_request(indexed, RequestKind.ERASURE, AINO)
    assert run_to_the_end(indexed, erased, resources).success
    assert state(indexed, erased) in (RequestState.COMPLETED,
                                      RequestState.PARTIALLY_COMPLETED)
    with indexed.session() as session:
        assert session.execute(select(RestrictedRecordRow)).scalars().all() == []
