"""The sensor's run keys and cursor, on a real test instance."""

from datetime import UTC, datetime, timedelta

from dagster import DagsterInstance, SkipReason, build_sensor_context, instance_for_test

from hub import ledger
from hub.domain import Identifier, IdentifierKind
from hub.ledger import RequestKind
from pipelines import sensors
from pipelines.resources import HubResource

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def file_verified(store, n: int, kind=RequestKind.ERASURE) -> list[str]:
    ids = []
    with store.session() as session:
        for i in range(n):
            row = ledger.create_request(session, store.hasher, kind, [
                Identifier(IdentifierKind.EMAIL, f"person{i}@example.fi")], now=T0)
            ledger.verify(session, row.id, now=T0 + timedelta(minutes=i))
            ids.append(row.id)
    return ids


def tick(instance: DagsterInstance, hub_db: str, cursor: str | None):
    context = build_sensor_context(instance=instance, cursor=cursor,
                                   resources={"hub": HubResource(database_url=hub_db)})
    result = sensors.verified_requests(context)
    return result, context.cursor


def test_one_run_per_verified_request_keyed_by_id_and_kind(hub_store, hub_db):
    ids = file_verified(hub_store, 3)
    with hub_store.session() as session:  # received but not verified: not launched
        ledger.create_request(session, hub_store.hasher, RequestKind.ACCESS,
                              [Identifier(IdentifierKind.EMAIL, "waiting@example.fi")])
    with instance_for_test() as instance:
        runs, cursor = tick(instance, hub_db, None)
    assert [r.run_key for r in runs] == [f"{i}:erasure" for i in ids]
    assert runs[0].run_config == {"ops": {"plan": {"config": {"request_id": ids[0]}}}}
    assert runs[0].tags == {"hub/request_id": ids[0], "hub/kind": "erasure",
                            "dagster/max_runtime": "7200"}  # every run is bounded
    assert cursor is None  # a short page: the next pass starts from the beginning
    assert all("@" not in str(r.run_config) + str(r.tags) for r in runs)


def test_cursor_pages_through_a_backlog(hub_store, hub_db, monkeypatch):
    monkeypatch.setattr(sensors, "PAGE", 2)
    ids = file_verified(hub_store, 5)
    seen = []
    with instance_for_test() as instance:
        cursor = None
        for _ in range(3):
            runs, cursor = tick(instance, hub_db, cursor)
            seen.extend(r.run_key for r in runs)
        assert cursor is None
        result, _ = tick(instance, hub_db, None)
    assert seen == [f"{i}:erasure" for i in ids]
    assert len(result) == 2  # still verified (not launched here): offered again


def test_nothing_waiting_is_a_skip(hub_store, hub_db):
    with instance_for_test() as instance:
        result, cursor = tick(instance, hub_db, None)
    assert isinstance(result, SkipReason) and cursor is None


def test_a_request_that_ran_again_after_review_gets_a_new_run_key(hub_store, hub_db):
    """Dagster deduplicates by run key: the next round must not be swallowed."""
    [rid] = file_verified(hub_store, 1)
    with hub_store.session() as session:
        ledger.get_request(session, rid).run_round = 1
    with instance_for_test() as instance:
        runs, _ = tick(instance, hub_db, None)
    assert [r.run_key for r in runs] == [f"{rid}:erasure:round1"]
