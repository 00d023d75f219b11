"""The hash-chained audit trail: any edit, deletion or reordering is found and located."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from hub import audit
from hub.models import AuditEventRow
from tests.conftest import TEST_SECRET

KEY = audit.chain_key(TEST_SECRET.encode())
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
        row.hash = audit._event_mac(KEY, row.seq, row.at, row.actor, row.action, row.request_id,
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
        row.hash = audit._event_mac(KEY, row.seq, row.at, row.actor, row.action, row.request_id,
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
        digest = audit._event_mac(KEY, 4, at, "hub", "forged", None, "{}", last.hash)
        session.add(AuditEventRow(seq=4, at=at, actor="hub", action="forged", request_id=None,
                                  payload="{}", prev_hash=last.hash, hash=digest))
    report = verify(store)
    assert not report.ok and report.seq == 4
    assert "added after the recorded tip" in report.problem


# --- forgeries by someone who can write to the database but has no HUB_SECRET -------
#
# Each recomputes the chain the way the old, unkeyed trail was built (hashlib.sha256
# over the canonical event), which is all an attacker without the secret can do.


def _sha256_link(seq, at, actor, action, request_id, payload, prev) -> str:
    body = audit.canonical({"seq": seq, "at": at, "actor": actor, "action": action,
                            "request_id": request_id, "payload": payload, "prev": prev})
    return hashlib.sha256(body.encode()).hexdigest()


def _rows(store) -> list[dict]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in
                conn.execute(text("SELECT * FROM audit_events ORDER BY seq"))]


def _rewrite(store, rows: list[dict], link=_sha256_link) -> None:
    """Replace the whole trail by `rows`, re-chained with `link`, and point the head at it."""
    prev = audit.GENESIS
    for seq, row in enumerate(rows, start=1):
        row.update(seq=seq, prev_hash=prev)
        row["hash"] = link(seq, row["at"], row["actor"], row["action"], row["request_id"],
                           row["payload"], prev)
        prev = row["hash"]
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events"))
        for row in rows:
            conn.execute(text("INSERT INTO audit_events (seq, at, actor, action, request_id, "
                              "payload, prev_hash, hash) VALUES (:seq, :at, :actor, :action, "
                              ":request_id, :payload, :prev_hash, :hash)"), row)
        conn.execute(text("UPDATE audit_head SET seq = :s, hash = :h WHERE id = 1"),
                     {"s": len(rows), "h": prev})


def _forge_edit_payload(rows):
    rows[2]["payload"] = '{"n":3,"who":"nobody"}'
    return rows


def _forge_delete_middle(rows):
    return rows[:2] + rows[3:]


def _forge_append(rows):
    return rows + [dict(rows[-1], action="request.rejected", payload='{"forged":true}')]


def _forge_swap(rows):
    rows[1], rows[2] = rows[2], rows[1]
    return rows


def _forge_fabricate_all(rows):
    return [dict(r, actor="mallory", payload="{}") for r in rows]


def _forge_edit_last_time(rows):
    rows[-1]["at"] = "2020-01-01T00:00:00.000000+00:00"
    return rows


@pytest.mark.parametrize("forge", [_forge_edit_payload, _forge_delete_middle, _forge_append,
                                   _forge_swap, _forge_fabricate_all, _forge_edit_last_time])
def test_forgery_recomputed_with_plain_sha256_is_detected(store, forge):
    """Found: 5 of 5 forgeries that recompute the plain SHA-256 chain verified as intact."""
    fill(store, 5)
    _rewrite(store, forge(_rows(store)))
    report = verify(store)
    assert not report.ok, report
    assert "forged" in report.problem


@pytest.mark.parametrize("guessed_key", [b"", b"hub/audit-chain/v1", b"sandbox-only-not-a-secret"])
def test_chain_rebuilt_with_a_guessed_key_is_detected(store, guessed_key):
    fill(store, 4)
    rows = _rows(store)
    rows[0]["payload"] = "{}"
    _rewrite(store, rows, link=lambda *a: audit._event_mac(guessed_key, *a))
    report = verify(store)
    assert not report.ok and report.seq == 1


def _tip(store) -> audit.Tip:
    with store.session() as session:
        assert audit.verify(session).ok
        return audit.tip(session)


def _verify_against(store, recorded: audit.Tip) -> audit.AuditReport:
    with store.session() as session:
        return audit.verify(session, recorded=recorded)


def test_events_cut_from_the_end_with_the_head_rewritten_fail_against_the_written_tip(store):
    """No key can show a clean truncation; the tip written down elsewhere does."""
    fill(store, 5)
    recorded = _tip(store)
    assert str(recorded).startswith("5:")
    _rewrite(store, _rows(store)[:3], link=lambda *a: audit._event_mac(KEY, *a))
    assert verify(store).ok  # indistinguishable from a 3-event trail from the inside
    report = _verify_against(store, recorded)
    assert not report.ok and "ends at event 3" in report.problem and report.seq == 4


def test_whole_trail_deleted_fails_against_the_written_tip(store):
    fill(store, 3)
    recorded = _tip(store)
    sql(store, "DELETE FROM audit_events")
    sql(store, "DELETE FROM audit_head")
    report = _verify_against(store, recorded)
    assert not report.ok and report.events == 0


def test_trail_replaced_at_the_written_position_fails_against_the_written_tip(store):
    fill(store, 3)
    other = audit.Tip(3, "a" * 64)
    report = _verify_against(store, other)
    assert not report.ok and report.seq == 3 and "not the one written down" in report.problem


def test_trail_that_grew_past_the_written_tip_still_verifies(store):
    fill(store, 3)
    recorded = _tip(store)
    fill(store, 2)
    report = _verify_against(store, recorded)
    assert report.ok and report.events == 5
    assert _verify_against(store, audit.Tip(0, audit.GENESIS)).ok


@pytest.mark.parametrize("given", ["", "5", "5:xyz", "x:" + "a" * 64, "5:" + "a" * 63,
                                   "-1:" + "a" * 64])
def test_malformed_tip_is_refused(given):
    with pytest.raises(ValueError):
        audit.parse_tip(given)


def test_tip_round_trips():
    tip = audit.Tip(7, "ab" * 32)
    assert audit.parse_tip(str(tip)) == tip and audit.parse_tip(f" {tip}\n".upper()) == tip


def test_the_key_is_derived_with_its_own_label_and_never_stored(store):
    fill(store, 2)
    key = audit.chain_key(TEST_SECRET.encode())
    assert key != TEST_SECRET.encode() and key == KEY
    assert key != hmac.new(TEST_SECRET.encode(), b"", hashlib.sha256).digest()
    with store.engine.connect() as conn:
        dump = " ".join(str(v) for r in conn.execute(text("SELECT * FROM audit_events"))
                        for v in r)
    assert key.hex() not in dump and TEST_SECRET not in dump


def test_append_without_a_key_is_a_settings_error(store):
    from sqlalchemy.orm import Session

    from hub.settings import SettingsError
    with Session(store.engine) as session, pytest.raises(SettingsError):
        audit.append(session, "test.event", {})
