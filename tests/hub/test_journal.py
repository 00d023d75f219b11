"""What the hub makes of a connector's outcome beside its plan (hub/journal.py)."""

from __future__ import annotations

from hub import journal
from hub.domain import Action, Outcome, RecordOutcome, RecordRef

ORDER = RecordRef("app_database", "orders", "10")
USER = RecordRef("app_database", "users", "1")


def test_a_planned_record_the_connector_said_nothing_about_is_no_answer():
    """Found in review: a ref the connector did not know vanished from the outcome; an
    empty outcome reads as not_found, and the row stayed at the vendor."""
    silent = Outcome("app_database", (), verified=True)
    assert silent.not_found  # what the task would have said
    settled = journal.unanswered(silent, [ORDER])
    assert not settled.verified and not settled.not_found
    (record,) = settled.records
    assert record.ref == ORDER and record.action == Action.KEPT
    assert "no outcome for this record" in record.detail


def test_an_outcome_that_answers_every_planned_record_is_left_as_it_is():
    answered = Outcome("app_database", (RecordOutcome(USER, Action.ANONYMISED, "row"),
                                        RecordOutcome(ORDER, Action.RETAINED, "kept")),
                       verified=True)
    other_system = RecordRef("pipedrive", "person", "1")
    assert journal.unanswered(answered, [USER, ORDER, other_system]) is answered
