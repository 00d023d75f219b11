"""Candidates, follow-ups and the journal: a request waits for an operator, visibly."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from hub import audit, journal, ledger, outcomes, review
from hub.domain import Action, Identifier, IdentifierKind, Outcome, RecordOutcome, RecordRef
from hub.ledger import LedgerError, RequestKind, RequestState, TaskState
from hub.models import AuditEventRow, SuppressionRow

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
EMAIL = Identifier(IdentifierKind.EMAIL, "mika.tuomi@yritys.fi")
SUSANNA = RecordRef("pipedrive", "person", "2", label="person 2")
SUSANNA_MC = RecordRef("mailchimp", "member", "abc", container="aud1")


def started(session, hasher, systems=("pipedrive", "mailchimp")):
    row = ledger.create_request(session, hasher, RequestKind.ERASURE, [EMAIL], now=NOW)
    ledger.verify(session, row.id, now=NOW)
    ledger.transition(session, row, RequestState.IN_PROGRESS, now=NOW)
    ledger.ensure_tasks(session, row, list(systems), now=NOW)
    return row


def finish(session, row, system, outcome, candidates=0):
    outcomes.begin(session, row.id, system, now=NOW)
    outcomes.record(session, row.id, outcome, candidates=candidates, now=NOW)


def test_a_request_with_candidates_waits_for_review_and_is_not_settled(store, hasher):
    with store.session() as session:
        row = started(session, hasher)
        review.register(session, row.id, [(SUSANNA, "phone +358*******56 is shared")], now=NOW)
        finish(session, row, "pipedrive", Outcome("pipedrive", (
            RecordOutcome(RecordRef("pipedrive", "person", "1"), Action.DELETED),),
            verified=True), candidates=1)
        finish(session, row, "mailchimp", Outcome("mailchimp", verified=True))
        assert ledger.finalise(session, hasher, row, now=NOW) == RequestState.AWAITING_REVIEW
        assert row.state == "awaiting_review"
        assert ledger.get_task(session, row.id, "pipedrive").state == "review"
        # nothing scrubbed or suppressed while an operator still decides
        assert ledger.identifiers_of(session, row.id) == [EMAIL]
        assert session.execute(select(SuppressionRow)).first() is None
        assert [row.id] == [r.id for r in ledger.list_requests(
            session, today=NOW.date(), due_within=60)]


def test_deciding_every_candidate_runs_the_request_again_in_a_new_round(store, hasher):
    with store.session() as session:
        row = started(session, hasher)
        review.register(session, row.id, [(SUSANNA, "phone shared"),
                                          (SUSANNA_MC, "reached only through the index")],
                        now=NOW)
        finish(session, row, "pipedrive", Outcome("pipedrive", verified=True), candidates=2)
        finish(session, row, "mailchimp", Outcome("mailchimp", verified=True))
        ledger.finalise(session, hasher, row, now=NOW)
        review.decide(session, row.id, [1], review.Decision.EXCLUDED, actor="liisa", now=NOW)
        assert row.state == "awaiting_review"  # one still pending
        review.decide(session, row.id, [2], review.Decision.APPROVED, actor="liisa", now=NOW)
        assert row.state == "verified" and row.run_round == 1
        decided = review.decisions(session, row.id, "mailchimp")
        assert decided == {("mailchimp", "member", "aud1", "abc"): review.Decision.APPROVED}
        events = session.execute(select(AuditEventRow.action, AuditEventRow.actor)
                                 .where(AuditEventRow.action.like("review.%"))).all()
        assert ("review.excluded", "liisa") in events and ("review.approved", "liisa") in events
        assert audit.verify(session).ok


def test_a_wrong_candidate_number_changes_nothing(store, hasher):
    with store.session() as session:
        row = started(session, hasher)
        review.register(session, row.id, [(SUSANNA, "phone shared")], now=NOW)
        with pytest.raises(LedgerError, match="has no candidate 3"):
            review.decide(session, row.id, [1, 3], review.Decision.APPROVED, actor="liisa")
        assert review.items(session, row.id)[0].decision == "pending"
        review.decide(session, row.id, [1], review.Decision.EXCLUDED, actor="liisa")
        with pytest.raises(LedgerError, match="already excluded"):
            review.decide(session, row.id, [1], review.Decision.APPROVED, actor="liisa")


def test_leftovers_wait_for_an_operators_confirmation(store, hasher):
    with store.session() as session:
        row = started(session, hasher, systems=("pipedrive",))
        mail = RecordRef("pipedrive", "mailMessage", "7")
        finish(session, row, "pipedrive", Outcome("pipedrive", (
            RecordOutcome(RecordRef("pipedrive", "person", "1"), Action.DELETED),
            RecordOutcome(mail, Action.KEPT, "synced mail: no API to delete it")),
            verified=True))
        task = ledger.get_task(session, row.id, "pipedrive")
        assert task.state == "manual_pending"
        assert "hub task confirm" in task.evidence["follow_up"]
        assert ledger.finalise(session, hasher, row, now=NOW) == RequestState.AWAITING_REVIEW
        with pytest.raises(LedgerError, match="needs a note"):
            review.confirm_task(session, row.id, "pipedrive", TaskState.DONE, note=" ",
                                actor="liisa")
        review.confirm_task(session, row.id, "pipedrive", TaskState.DONE,
                            note="mail deleted in the mailbox", actor="liisa", now=NOW)
        assert task.state == "done"
        assert task.evidence["confirmed"]["by"] == "liisa"
        assert row.state == "verified" and row.run_round == 1


def test_a_later_look_that_finds_nothing_does_not_undo_what_was_done():
    person = RecordRef("netvisor", "customer", "1000")
    held = RecordOutcome(person, Action.RETAINED, "kept under the Accounting Act",
                         legal_basis="Kirjanpitolaki 2:10", retained_until=None)
    retry = Outcome("netvisor", (RecordOutcome(person, Action.NOT_FOUND),), verified=True)
    merged = journal.merge(retry, [held], [person], erasure=True)
    assert [r.action for r in merged.records] == [Action.RETAINED]


def test_a_record_seen_then_gone_when_erased_was_deleted_not_not_found():
    person = RecordRef("pipedrive", "person", "1")
    lost_answer = Outcome("pipedrive", (RecordOutcome(person, Action.NOT_FOUND,
                                                      "no such person"),), verified=True)
    merged = journal.merge(lost_answer, [], [person], erasure=True)
    assert merged.records[0].action == Action.DELETED
    assert "read back: gone" in merged.records[0].detail
    # never seen by this request: not found stays not found
    assert journal.merge(lost_answer, [], [], erasure=True).records[0].action == \
        Action.NOT_FOUND


def test_the_journal_remembers_plans_and_actions_across_attempts(store, hasher):
    with store.session() as session:
        row = started(session, hasher, systems=("netvisor",))
        customer = RecordRef("netvisor", "customer", "1000")
        journal.plan(session, row.id, "netvisor", [customer], attempt=1)
        journal.plan(session, row.id, "netvisor", [customer], attempt=2)  # once only
        journal.record(session, row.id, RecordOutcome(customer, Action.ANONYMISED, "blanked"),
                       attempt=1)
    with store.session() as session:
        assert [review.key_of(r) for r in journal.planned(session, row.id, "netvisor")] == [
            review.key_of(customer)]
        assert [a.action for a in journal.actions(session, row.id, "netvisor")] == [
            Action.ANONYMISED]
