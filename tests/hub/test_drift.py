"""Drift found in the index and acted on, legal holds and the index forgetting, on both DBs."""

import threading
from datetime import UTC, date, datetime, timedelta

from hub import audit, drift, holds, index, ledger, suppression
from hub.domain import Identifier, IdentifierKind, SourceRecord
from hub.ledger import RequestKind, RequestState
from hub.models import AuditEventRow, TaskRow

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
TODAY = date(2026, 3, 2)
AINO = Identifier(IdentifierKind.EMAIL, "aino.virtanen@example.fi")
MIKKO = Identifier(IdentifierKind.EMAIL, "mikko.hakkinen@example.fi")


def put(store, system, *records):
    with store.session() as session:
        writer = index.IndexWriter(session, system, full=False, now=NOW)
        writer.add(records)
        writer.finish()
        index.recluster(session, now=NOW)


def suppress(store, reason, *identifiers):
    with store.session() as session:
        suppression.add(session, store.hasher, list(identifiers), reason=reason,
                        request_id=None, now=NOW)


def test_an_erased_person_found_again_is_drift_unless_held(store):
    put(store, "mailchimp", SourceRecord("mailchimp", "l1:abc", (AINO.value,)))
    put(store, "netvisor", SourceRecord("netvisor", "1000", ("Aino.Virtanen@Example.fi",)))
    put(store, "pipedrive", SourceRecord("pipedrive", "7", ("someone.else@example.fi",)))
    with store.session() as session:
        assert drift.find(session, store.hasher, TODAY).reappeared == []  # nothing suppressed
    suppress(store, "erasure", AINO)
    with store.session() as session:
        found = drift.find(session, store.hasher, TODAY)
        assert {(f.system, f.record_id) for f in found.reappeared} == {
            ("mailchimp", "l1:abc"), ("netvisor", "1000")}
        session.add(TaskRow(request_id=_request(store, session), system="netvisor",
                            state="retained", attempts=1, created_at=NOW, updated_at=NOW,
                            evidence={"records": [{"record_id": "1000", "action": "retained",
                                                   "legal_basis": "KPL 2:10",
                                                   "retained_until": "2032-12-31"}]}))
        session.flush()
        tasks = ledger.tasks_of(session, session.query(TaskRow).one().request_id)
        assert holds.record_from_tasks(session, tasks, now=NOW) == 1
        assert holds.record_from_tasks(session, tasks, now=NOW) == 0  # idempotent
    with store.session() as session:
        found = drift.find(session, store.hasher, TODAY)
        assert [(f.system, f.record_id) for f in found.reappeared] == [("mailchimp", "l1:abc")]
        # After the hold ends the record is erasable, and drift again.
        later = drift.find(session, store.hasher, date(2033, 1, 1))
        assert len(later.reappeared) == 2


def _request(store, session, kind=RequestKind.ERASURE, ident=AINO):
    row = ledger.create_request(session, store.hasher, kind, [ident], now=NOW)
    return row.id


def test_drift_files_one_verified_request_per_person_once(store):
    put(store, "mailchimp", SourceRecord("mailchimp", "l1:abc", (AINO.value,)),
        SourceRecord("mailchimp", "l1:def", (MIKKO.value,), subscribed=True))
    put(store, "pipedrive", SourceRecord("pipedrive", "7", (AINO.value,), ("+358401234567",)),
        SourceRecord("pipedrive", "8", (MIKKO.value,), subscribed=False))
    suppress(store, "erasure", AINO)
    suppress(store, "opt_out", MIKKO)
    with store.session() as session:
        found = drift.find(session, store.hasher, TODAY)
        assert found.per_system(RequestKind.ERASURE) == {"mailchimp": 1, "pipedrive": 1}
        # Only the record still subscribed breaks the opt-out.
        assert [(f.system, f.record_id) for f in found.resubscribed] == [("mailchimp", "l1:def")]
        filed = drift.act(session, store.hasher, found, now=NOW)
        assert [(f.kind, f.systems, f.new) for f in filed] == [
            (RequestKind.ERASURE, ("mailchimp", "pipedrive"), True),
            (RequestKind.OPT_OUT, ("mailchimp",), True)]
        erasure = ledger.get_request(session, filed[0].request_id)
        assert (erasure.state, erasure.origin) == (RequestState.VERIFIED, "reappearance")
        assert ledger.get_request(session, filed[1].request_id).origin == "resubscription"
        events = {e.action for e in session.query(AuditEventRow).filter_by(
            request_id=erasure.id)}
        assert {"request.received", "drift.reappearance"} <= events
        assert audit.verify(session).ok
    with store.session() as session:
        again = drift.act(session, store.hasher, drift.find(session, store.hasher, TODAY),
                          now=NOW)
        assert [(f.request_id, f.new) for f in again] == [(f.request_id, False) for f in filed]
        ids, unanswered = drift.answered_by(
            session, store.hasher, drift.find(session, store.hasher, TODAY).reappeared)
        assert (ids, unanswered) == ([filed[0].request_id], 0)


def test_forget_drops_the_persons_records_and_retires_the_person(store):
    put(store, "mailchimp", SourceRecord("mailchimp", "l1:abc", (AINO.value,)))
    put(store, "pipedrive", SourceRecord("pipedrive", "7", ("Aino.Virtanen@example.fi",),
                                         ("040 123 4567",)),
        SourceRecord("pipedrive", "8", (MIKKO.value,)))
    with store.session() as session:
        person = index.lookup(session, AINO)
        identifiers = index.identifiers_of_person(session, person)
        assert index.forget(session, identifiers, now=NOW) == 2
    with store.session() as session:
        assert index.lookup(session, AINO) is None
        assert index.records_of(session, person) == {}
        assert index.lookup(session, MIKKO) is not None  # nobody else is touched
        assert list(index.live_identifiers(session)) == [
            index.IndexedIdentifier("pipedrive", "8", index.lookup(session, MIKKO), None, MIKKO)]


def test_forgetting_waits_for_a_sync_that_read_the_person_before_the_erasure(store):
    """Found: a sync and an erasure may run at once (vendor limits are kept per call).
    A sync that read Aino before the vendor erased her wrote her record after the
    erasure had forgotten her, and her e-mail stayed in the index."""
    put(store, "pipedrive", SourceRecord("pipedrive", "8", (MIKKO.value,)))  # synced before
    syncing = store.sessions()
    writer = index.IndexWriter(syncing, "pipedrive", full=False, now=NOW)
    writer.add([SourceRecord("pipedrive", "7", (AINO.value,))])  # read before the erasure
    writer.finish()
    dropped: list[int] = []

    def erase() -> None:
        with store.session() as session:
            dropped.append(index.forget(session, [AINO], now=NOW))

    forgetting = threading.Thread(target=erase)
    forgetting.start()
    forgetting.join(timeout=1.0)
    waited = forgetting.is_alive()  # it must wait: what it would read is not committed
    syncing.commit()
    syncing.close()
    forgetting.join(timeout=60)
    assert waited and dropped == [1]
    with store.session() as session:
        assert index.lookup(session, AINO) is None
        assert index.lookup(session, MIKKO) is not None


def test_an_opt_out_marks_the_index_unsubscribed_until_the_next_sync(store):
    put(store, "mailchimp", SourceRecord("mailchimp", "l1:def", (MIKKO.value,), subscribed=True))
    suppress(store, "opt_out", MIKKO)
    with store.session() as session:
        index.mark_unsubscribed(session, [MIKKO])
        assert drift.find(session, store.hasher, TODAY).resubscribed == []
    # The vendor says subscribed again: the sync writes it, and it is drift.
    put(store, "mailchimp", SourceRecord("mailchimp", "l1:def", (MIKKO.value,), subscribed=True))
    with store.session() as session:
        assert len(drift.find(session, store.hasher, TODAY).resubscribed) == 1


def test_deadline_and_stuck_queries_skip_answered_requests(store):
    with store.session() as session:
        old = NOW - timedelta(days=40)
        overdue = ledger.create_request(session, store.hasher, RequestKind.ACCESS, [AINO],
                                        now=old)
        held = ledger.create_request(session, store.hasher, RequestKind.ERASURE, [MIKKO],
                                     now=old)
        ledger.verify(session, held.id, now=old)
        ledger.transition(session, held, RequestState.IN_PROGRESS, now=old)
        ledger.ensure_tasks(session, held, ["netvisor"], now=old)
        task = ledger.get_task(session, held.id, "netvisor")
        ledger.move_task(session, task, ledger.TaskState.RUNNING, now=old)
        assert [t.request_id for t in ledger.stuck_tasks(
            session, older_than=NOW - timedelta(hours=2))] == [held.id]
        ledger.move_task(session, task, ledger.TaskState.RETAINED, now=old)
        ledger.finalise(session, store.hasher, held, now=old)
        ids = [r.id for r in ledger.list_requests(session, today=TODAY, overdue=True)]
        # Partially completed only by a legal hold is answered: not overdue.
        assert ids == [overdue.id]
        assert ledger.stuck_tasks(session, older_than=NOW) == []
        ledger.verify(session, overdue.id, now=old)
        assert [r.id for r in ledger.unlaunched(session, older_than=NOW)] == [overdue.id]


def test_a_restricted_person_subscribed_again_is_drift(store):
    """Art. 18: no marketing while restricted; the nightly check files an opt-out."""
    put(store, "mailchimp", SourceRecord("mailchimp", "l1:abc", (AINO.value,), subscribed=True))
    suppress(store, "restriction", AINO)
    with store.session() as session:
        found = drift.find(session, store.hasher, TODAY)
    assert [(f.kind, f.record_id) for f in found.resubscribed] == [
        (RequestKind.OPT_OUT, "l1:abc")]
    assert found.reappeared == []
