"""An operator's confirmation and the request's completion check, at the same moment.

Found in review: the completion check (``ledger.finalise``) read a task waiting for an
operator and moved the request to awaiting review; meanwhile the operator's
confirmation (``review.confirm_task``) read the request still in progress, confirmed
the task, and did not resume the request, because it was not (yet) awaiting review.
Both committed: a request awaiting review with nothing left to review, stuck for ever.
Both now lock the request first (``ledger.lock_request``), so one waits for the other.

Two threads on PostgreSQL, each with its own connection; the completion check holds
its transaction open until the confirmation has either finished (the race) or is
seen waiting for a lock in ``pg_stat_activity`` (serialised), then commits.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from hub import ledger, outcomes, review
from hub.domain import Action, Identifier, IdentifierKind, Outcome, RecordOutcome, RecordRef
from hub.hashing import Hasher
from hub.ledger import RequestKind, RequestState, TaskState
from hub.settings import Settings
from hub.store import Store, open_store
from tests.conftest import TEST_SECRET
from tests.polling import poll

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
EMAIL = Identifier(IdentifierKind.EMAIL, "mika.tuomi@yritys.fi")


@pytest.fixture
def pg_store(pg_schema_url: str, tmp_path) -> Iterator[Store]:
    opened = open_store(Settings(_env_file=None, database_url=pg_schema_url,
                                 secret=TEST_SECRET, home=tmp_path / ".hub"))
    yield opened
    opened.close()


def waiting_on_a_lock(store: Store, pid: int) -> bool:
    """Whether that backend (the operator's connection, not any other test's) waits."""
    with store.engine.connect() as conn:
        return bool(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = :pid "
            "AND wait_event_type = 'Lock'"), {"pid": pid}).scalar())


def test_a_confirmation_racing_the_completion_check_never_strands_the_request(
        pg_store: Store, hasher: Hasher) -> None:
    with pg_store.session() as session:
        row = ledger.create_request(session, hasher, RequestKind.ERASURE, [EMAIL], now=NOW)
        ledger.verify(session, row.id, now=NOW)
        ledger.transition(session, row, RequestState.IN_PROGRESS, now=NOW)
        ledger.ensure_tasks(session, row, ["pipedrive"], now=NOW)
        outcomes.begin(session, row.id, "pipedrive", now=NOW)
        outcomes.record(session, row.id, Outcome("pipedrive", (
            RecordOutcome(RecordRef("pipedrive", "mailMessage", "7"), Action.KEPT,
                          "synced mail: no API to delete it"),), verified=True), now=NOW)
        rid = row.id

    confirmed = threading.Event()
    failures: list[BaseException] = []
    backend: list[int] = []

    def operator() -> None:
        try:
            with pg_store.session() as session:
                backend.append(session.execute(text("SELECT pg_backend_pid()")).scalar_one())
                review.confirm_task(session, rid, "pipedrive", TaskState.DONE,
                                    note="mail deleted in the mailbox", actor="liisa")
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)
        finally:
            confirmed.set()

    check = pg_store.sessions()
    try:
        settled = ledger.finalise(check, hasher, ledger.get_request(check, rid))
        assert settled == RequestState.AWAITING_REVIEW  # not committed yet
        thread = threading.Thread(target=operator)
        thread.start()
        poll(lambda: confirmed.is_set()
             or (bool(backend) and waiting_on_a_lock(pg_store, backend[0])), timeout=10)
        check.commit()
    finally:
        check.close()
    thread.join(timeout=10)
    assert not thread.is_alive() and not failures, failures

    with pg_store.session() as session:
        task = ledger.get_task(session, rid, "pipedrive")
        row = ledger.get_request(session, rid)
        assert task.state == TaskState.DONE
        # resumed by the confirmation, a new round: never left awaiting nothing
        assert row.state == RequestState.VERIFIED and row.run_round == 1
