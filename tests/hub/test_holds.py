"""Legal holds: recorded from retained tasks, and found again for the same subject
by identifier hash after the erasure scrubbed every plaintext (on both databases)."""

from datetime import UTC, date, datetime

from hub import holds, ledger, outcomes
from hub.domain import Action, Identifier, IdentifierKind, Outcome, RecordOutcome, RecordRef
from hub.ledger import RequestKind, RequestState

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
TODAY = date(2026, 12, 2)
AINO = Identifier(IdentifierKind.EMAIL, "aino.virtanen@example.fi")
AINO_PHONE = Identifier(IdentifierKind.PHONE, "+358401234567")
MIKKO = Identifier(IdentifierKind.EMAIL, "mikko.hakkinen@example.fi")
BASIS = "Kirjanpitolaki (1336/1997) 2 luku 10 §; GDPR art. 17(3)(b)"


def filed(store, session, kind, *identifiers):
    row = ledger.create_request(session, store.hasher, kind, list(identifiers), now=NOW)
    ledger.verify(session, row.id, now=NOW)
    ledger.transition(session, row, RequestState.IN_PROGRESS, now=NOW)
    return row


def erased_with_hold(store, session, identifier, record_id, until):
    """An erasure that ended with a Netvisor customer retained until `until`, settled."""
    row = filed(store, session, RequestKind.ERASURE, identifier)
    ledger.ensure_tasks(session, row, ["netvisor"], now=NOW)
    outcomes.begin(session, row.id, "netvisor", now=NOW)
    outcomes.record(session, row.id, Outcome("netvisor", (RecordOutcome(
        RecordRef("netvisor", "customer", record_id), Action.RETAINED, legal_basis=BASIS,
        retained_until=until),), verified=True), now=NOW)
    holds.record_from_tasks(session, ledger.tasks_of(session, row.id), now=NOW)
    ledger.finalise(session, store.hasher, row, now=NOW)
    assert ledger.identifiers_of(session, row.id) == []  # only hashes are left
    return row


def test_an_access_request_finds_the_holds_of_the_same_subjects_erasures(store):
    with store.session() as session:
        erasure = erased_with_hold(store, session, AINO, "1000", date(2032, 12, 31))
        erased_with_hold(store, session, MIKKO, "1001", date(2032, 12, 31))  # someone else
        access = filed(store, session, RequestKind.ACCESS, AINO_PHONE, AINO)
        found = holds.holds_of_subject(session, access.id, TODAY)
    assert found == [holds.SubjectHold("netvisor", "1000", BASIS, date(2032, 12, 31),
                                       erasure.id)]


def test_a_hold_that_ended_is_not_shown_and_a_later_one_wins(store):
    with store.session() as session:
        erased_with_hold(store, session, AINO, "1000", date(2023, 12, 31))  # ended
        erased_with_hold(store, session, AINO, "1002", date(2030, 12, 31))
        later = erased_with_hold(store, session, AINO, "1002", date(2032, 12, 31))
        access = filed(store, session, RequestKind.ACCESS, AINO)
        found = holds.holds_of_subject(session, access.id, TODAY)
        on_last_day = holds.holds_of_subject(session, access.id, date(2032, 12, 31))
        after = holds.holds_of_subject(session, access.id, date(2033, 1, 1))
    assert [(h.record_id, h.held_until, h.request_id) for h in found] == [
        ("1002", date(2032, 12, 31), later.id)]
    assert len(on_last_day) == 1 and after == []


def test_a_subject_with_no_erasure_has_no_holds(store):
    with store.session() as session:
        erased_with_hold(store, session, MIKKO, "1001", date(2032, 12, 31))
        access = filed(store, session, RequestKind.ACCESS, AINO)
        assert holds.holds_of_subject(session, access.id, TODAY) == []
