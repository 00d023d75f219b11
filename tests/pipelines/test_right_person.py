"""Act on the right person (DESIGN.md rule 9), end to end against the sandbox.

The sandbox's default seed plants the cases on purpose (sandbox.people.SHARED_CASES):
Mika Tuomi and Susanna Mononen share their company's phone; two colleagues write
from one info@ address; one person has a work and a private address.
"""

from __future__ import annotations

import json
from datetime import date

from dagster import materialize
from sqlalchemy import select

from hub import index, ledger
from hub.domain import Identifier, IdentifierKind
from hub.ledger import RequestKind, RequestState
from hub.models import SourceRecordRow, SuppressionRow
from pipelines.checks import CHECKS
from pipelines.reconciliation import SYNC_ASSETS, person_drift, person_index
from sandbox.people import SHARED_CASES, generate_people
from tests.pipelines.jobs import (
    at_vendor,
    candidates,
    file_request,
    operator_settles,
    run,
    state,
    tasks,
)

PEOPLE = generate_people(60, seed=42)
MIKA, SUSANNA = (PEOPLE[i] for i in SHARED_CASES["switchboard"])
SWITCHBOARD = MIKA.phone


def persons_at_pipedrive(vendors, email):
    return [r for r in at_vendor(vendors, "pipedrive", email) if r["kind"] == "person"]


def test_the_seeded_colleagues_are_two_people_and_the_two_addresses_one(indexed):
    with indexed.session() as session:
        def person(email):
            return index.lookup(session, Identifier(IdentifierKind.EMAIL, email))
        assert person(MIKA.email) and person(SUSANNA.email)
        assert person(MIKA.email) != person(SUSANNA.email)
        both = person(PEOPLE[SHARED_CASES["two_addresses"][0]].email)
        private = person(PEOPLE[SHARED_CASES["two_addresses"][0]].private_email)
        assert both is not None and both == private
        info_holders = session.execute(
            select(SourceRecordRow.person_id).join_from(
                SourceRecordRow, index.RI, index.RI.record_pk == SourceRecordRow.pk)
            .where(index.RI.value == PEOPLE[SHARED_CASES["info_address"][0]].email)).scalars()
        assert len(set(info_holders)) >= 2  # info@ links nobody


def test_erasing_one_colleague_never_touches_the_other(indexed, vendors, resources):
    susanna_before = persons_at_pipedrive(vendors, SUSANNA.email)
    assert susanna_before and all(r["state"] == "active" for r in susanna_before)
    rid = file_request(indexed, RequestKind.ERASURE, MIKA.email, phone=SWITCHBOARD)
    assert run(rid, resources).success
    # Mika's own records are gone; Susanna's wait as candidates, untouched.
    assert all(r["state"] != "active" for r in persons_at_pipedrive(vendors, MIKA.email))
    assert persons_at_pipedrive(vendors, SUSANNA.email) == susanna_before
    assert at_vendor(vendors, "mailchimp", SUSANNA.email)
    assert state(indexed, rid) == RequestState.AWAITING_REVIEW
    waiting = candidates(indexed, rid)
    assert waiting and all(c.decision == "pending" for c in waiting)
    assert any("shared" in c.reason and "+358" in c.reason for c in waiting)
    assert not any(SUSANNA.last_name in c.reason or SUSANNA.email in c.reason.lower()
                   for c in waiting)
    assert tasks(indexed, rid)["pipedrive"].state == "review"

    # The operator excludes her records; the next round settles the request.
    result = operator_settles(indexed, rid, resources, approve=False)
    assert result.success
    if state(indexed, rid) == RequestState.AWAITING_REVIEW:  # Mika's leftovers to confirm
        assert operator_settles(indexed, rid, resources).success
    assert state(indexed, rid) in (RequestState.COMPLETED, RequestState.PARTIALLY_COMPLETED)
    assert persons_at_pipedrive(vendors, SUSANNA.email) == susanna_before
    assert at_vendor(vendors, "mailchimp", SUSANNA.email)

    # The switchboard is not on the suppression list, so the next reconciliation does
    # not mistake Susanna for Mika coming back.
    with indexed.session() as session:
        suppressed = set(session.execute(select(SuppressionRow.hash)).scalars())
        assert indexed.hasher.identifier(Identifier(IdentifierKind.EMAIL, MIKA.email)) \
            in suppressed
        assert indexed.hasher.identifier(Identifier(IdentifierKind.PHONE, SWITCHBOARD)) \
            not in suppressed
    reconciled = materialize([*SYNC_ASSETS, person_index, person_drift, *CHECKS],
                             resources=resources)
    assert reconciled.success
    with indexed.session() as session:
        drift = [r for r in ledger.list_requests(session, today=date.today(),
                                                 due_within=60)
                 if r.origin == "reappearance"]
        assert drift == []
        assert index.lookup(session, Identifier(IdentifierKind.EMAIL, SUSANNA.email))


def test_an_access_export_for_one_colleague_holds_nothing_of_the_other(
        indexed, vendors, resources, tmp_path):
    rid = file_request(indexed, RequestKind.ACCESS, MIKA.email, phone=SWITCHBOARD)
    assert run(rid, resources).success
    assert state(indexed, rid) == RequestState.AWAITING_REVIEW
    assert not (tmp_path / "home" / "exports" / rid).exists()  # no bundle before review
    assert operator_settles(indexed, rid, resources, approve=False).success
    assert state(indexed, rid) == RequestState.COMPLETED
    data = (tmp_path / "home" / "exports" / rid / "data.json").read_text("utf-8")
    assert MIKA.email in data.lower()
    assert SUSANNA.email not in data.lower() and SUSANNA.last_name not in data
    exported = json.loads(data)["systems"]["pipedrive"]["sections"][0]["items"]
    assert [p["name"] for p in exported] == [MIKA.name]


def test_an_approved_candidate_is_acted_on_in_the_next_round(indexed, vendors, resources):
    """The person with two addresses files with one; the other address's records come
    from the index cluster: candidates, erased once the operator approves them."""
    liisa = PEOPLE[SHARED_CASES["two_addresses"][0]]
    rid = file_request(indexed, RequestKind.ERASURE, liisa.email)
    assert run(rid, resources).success
    assert at_vendor(vendors, "mailchimp", liisa.private_email)  # not yet
    assert any("index" in c.reason for c in candidates(indexed, rid))
    assert operator_settles(indexed, rid, resources, approve=True).success
    if state(indexed, rid) == RequestState.AWAITING_REVIEW:
        assert operator_settles(indexed, rid, resources).success
    assert at_vendor(vendors, "mailchimp", liisa.private_email) == []
    with indexed.session() as session:
        assert ledger.get_request(session, rid).run_round >= 1
