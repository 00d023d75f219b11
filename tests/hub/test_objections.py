"""Objections to being published in lists (controllers B and E), on both databases."""

from sqlalchemy import select

from hub import drift, objections, suppression
from hub.domain import Identifier, IdentifierKind, SourceRecord
from hub.models import AuditEventRow
from tests.hub.test_drift import TODAY, put

AINO = Identifier(IdentifierKind.EMAIL, "aino.virtanen@example.fi")
AINO_PHONE = Identifier(IdentifierKind.PHONE, "+358401234567")
MIKKO = Identifier(IdentifierKind.EMAIL, "mikko.hakkinen@example.fi")

ATTENDEES = """nimi,sähköposti,puhelin
Aino Virtanen,Aino.Virtanen@Example.fi,
Mikko Häkkinen,mikko.hakkinen@example.fi,050 111 2222
Liisa,,040 123 4567
"""


def test_a_list_is_screened_before_it_is_published(store):
    with store.session() as session:
        assert objections.record(session, store.hasher, [AINO, AINO_PHONE], actor="liisa") == 2
        assert objections.record(session, store.hasher, [AINO], actor="liisa") == 0
        rows, flagged = objections.screen(session, store.hasher, ATTENDEES)
        assert objections.count(session) == 2
        event = session.execute(select(AuditEventRow).where(
            AuditEventRow.action == "objection.lists")).scalars().first()
    assert rows == 4
    # the address in another case and the phone in the national form both hit
    assert [(f.row, f.masked) for f in flagged] == [(2, ("a***@example.fi",)),
                                                    (4, ("+358*******67",))]
    assert event.actor == "liisa" and "aino.virtanen" not in event.payload


def test_an_objection_to_lists_is_not_an_opt_out_for_the_reconciliation(store):
    """Found while adding it: drift treated any suppressed, subscribed record as an
    opt-out broken, so objecting to lists alone would have unsubscribed the person."""
    put(store, "mailchimp", SourceRecord("mailchimp", "l1:abc", (AINO.value,), subscribed=True))
    with store.session() as session:
        objections.record(session, store.hasher, [AINO], actor="liisa")
        assert drift.find(session, store.hasher, TODAY).resubscribed == []
        suppression.add(session, store.hasher, [AINO], reason="opt_out", request_id=None)
        assert len(drift.find(session, store.hasher, TODAY).resubscribed) == 1
