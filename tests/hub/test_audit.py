"""The hash-chained audit trail: any edit, deletion or reordering is found and located."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from hub import audit
from hub.models import AuditEventRow

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def fill(store, n: int = 5) -> None:
    with store.session() as session:
        for i in range(n):
            audit.append(session, f"test.event{i + 1}", {"n": i + 1, "who": "a***@example.fi"},
                         request_id=f"R-{i}", now=T0 + timedelta(minutes=i))


def verify(store) -> audit.AuditReport:
    with store.session() as session:
        return audit.verify(session)


def sql(store, statement: str, **params) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_empty_trail_is_intact(store):
    assert verify(store) == audit.AuditReport(True, 0)


def test_fresh_chain_verifies(store):
    fill(store, 5)
    report = verify(store)
    assert report.ok and report.events == 5 and report.problem is None


def test_chain_links_each_event_to_the_previous(store):
    fill(store, 3)
    with store.session() as session:
        rows = session.query(AuditEventRow).order_by(AuditEventRow.seq).all()
    assert [r.seq for r in rows] == [1, 2, 3]
    assert rows[0].prev_hash == audit.GENESIS
    assert rows[1].prev_hash == rows[0].hash and rows[2].prev_hash == rows[1].hash


def test_edited_payload_is_detected_at_its_seq(store):
    fill(store, 5)
    sql(store, "UPDATE audit_events SET payload = :p WHERE seq = 3", p='{"n":33}')
    report = verify(store)
    assert not report.ok and report.seq == 3
    assert "event 3 was edited" in report.problem


def test_edited_action_is_detected(store):
    fill(store, 5)
    sql(store, "UPDATE audit_events SET action = 'request.rejected' WHERE seq = 2")
    report = verify(store)
    assert not report.ok and report.seq == 2


def test_edit_with_recomputed_hash_breaks_the_next_link(store):
    fill(store, 5)
    with store.session() as session:
        row = session.get(AuditEventRow, 2)
        row.payload = '{"n":22}'
        row.hash = audit._event_hash(row.seq, row.at, row.actor, row.action, row.request_id,
                                     row.payload, row.prev_hash)
    report = verify(store)
    assert not report.ok and report.seq == 3
    assert "does not follow event 2" in report.problem


def test_deleted_middle_event_is_detected(store):
    fill(store, 5)
    sql(store, "DELETE FROM audit_events WHERE seq = 3")
    report = verify(store)
    assert not report.ok and report.seq == 3
    assert "event 3 is missing" in report.problem
    assert report.events == 2


def test_deleted_last_event_is_detected(store):
    fill(store, 5)
    sql(store, "DELETE FROM audit_events WHERE seq = 5")
    report = verify(store)
    assert not report.ok and report.seq == 5
    assert "removed from the end" in report.problem


def test_deleted_first_event_is_detected(store):
    fill(store, 3)
    sql(store, "DELETE FROM audit_events WHERE seq = 1")
    report = verify(store)
    assert not report.ok and report.seq == 1


def test_swapped_events_are_detected(store):
    fill(store, 5)
    with store.session() as session:
        a, b = session.get(AuditEventRow, 2), session.get(AuditEventRow, 3)
        cols = ("at", "actor", "action", "request_id", "payload", "prev_hash", "hash")
        va, vb = ({c: getattr(a, c) for c in cols}, {c: getattr(b, c) for c in cols})
        for c in cols:
            setattr(a, c, vb[c])
            setattr(b, c, va[c])
    report = verify(store)
    assert not report.ok and report.seq == 2
    assert "reordered" in report.problem


def test_edited_last_event_with_recomputed_hash_is_named(store):
    fill(store, 4)
    with store.session() as session:
        row = session.get(AuditEventRow, 4)
        row.payload = '{"n":44}'
        row.hash = audit._event_hash(row.seq, row.at, row.actor, row.action, row.request_id,
                                     row.payload, row.prev_hash)
    report = verify(store)
    assert not report.ok and report.seq == 4
    assert "event 4" in report.problem


def test_verify_walks_past_a_batch_boundary(store):
    fill(store, 7)
    sql(store, "UPDATE audit_events SET payload = '{}' WHERE seq = 6")
    with store.session() as session:
        report = audit.verify(session, batch=2)
    assert not report.ok and report.seq == 6 and report.events == 5


@pytest.mark.parametrize("payload", [
    {"email": "aino.virtanen@example.fi"},
    {"nested": {"list": ["x", "Aino@Example.FI"]}},
    {"reason": "subject wrote from mari@yritys.fi"},
])
def test_append_refuses_plaintext_email(store, payload):
    with pytest.raises(audit.PersonalDataInAudit), store.session() as session:
        audit.append(session, "request.note", payload)
    assert verify(store).events == 0


def test_append_accepts_masked_emails(store):
    with store.session() as session:
        audit.append(session, "request.received",
                     {"identifiers": ["m***@example.fi", "+358*******67"]})
    report = verify(store)
    assert report.ok and report.events == 1


def test_event_appended_behind_the_heads_back_is_detected(store):
    fill(store, 3)
    with store.session() as session:
        last = session.get(AuditEventRow, 3)
        at = last.at
        digest = audit._event_hash(4, at, "hub", "forged", None, "{}", last.hash)
        session.add(AuditEventRow(seq=4, at=at, actor="hub", action="forged", request_id=None,
                                  payload="{}", prev_hash=last.hash, hash=digest))
    report = verify(store)
    assert not report.ok and report.seq == 4
    assert "added after the recorded tip" in report.problem
