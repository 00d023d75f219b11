"""The breach_impact asset: materialised on demand, counts and masked values only."""

import json

import pytest
from dagster import DagsterInstance, materialize, serialize_value
from sqlalchemy import select

from connectors import registry
from hub.models import AuditEventRow
from pipelines.breach import breach_impact
from pipelines.definitions import defs, reconciliation_job
from pipelines.resources import HubResource
from tests.conftest import TEST_SECRET
from tests.hub.test_breach import build_index

PLAINTEXT = ("aino.virtanen", "mikko.hakkinen", "1234567", "Aino", "Mikko", "Virtanen")


@pytest.fixture
def hub(hub_store, hub_db, monkeypatch) -> HubResource:
    monkeypatch.setenv("HUB_SECRET", TEST_SECRET)
    build_index(hub_store)
    return HubResource(database_url=hub_db)


def run_config(**config: str) -> dict:
    return {"ops": {"breach_impact": {"config": config}}}


def test_materialised_with_counts_deadline_and_masked_persons_only(hub, hub_store):
    with DagsterInstance.ephemeral() as instance:
        result = materialize([breach_impact], resources={"hub": hub}, instance=instance,
                             run_config=run_config(system="pipedrive", since="2026-11-01",
                                                   detected_at="2026-03-27 10:00"))
        assert result.success
        event, = result.get_asset_materialization_events()
        meta = {k: v.value for k, v in event.materialization.metadata.items()}
        stored = serialize_value(instance.get_run_by_id(result.run_id)) + "".join(
            serialize_value(entry) for entry in instance.all_logs(result.run_id))
    assert (meta["records"], meta["persons"], meta["undated_records"]) == (2, 2, 1)
    assert meta["identifiers_email"] == 2 and meta["identifiers_phone"] == 1
    assert meta["notify_by"] == "2026-03-30T11:00+03:00"
    assert meta["categories"] == "diet 1, health 1"  # flags only, never the words
    assert "a***@example.fi, +358*******67" in meta["persons_masked"]
    # Rule 7: nothing personal in what Dagster keeps, in the metadata or anywhere else.
    everything = json.dumps(meta, default=str) + stored
    for plain in PLAINTEXT:
        assert plain not in everything
    with hub_store.session() as session:
        actor, = session.execute(select(AuditEventRow.actor).where(
            AuditEventRow.action == "breach.queried")).scalars()
    assert actor == f"dagster run {result.run_id}"


def test_an_unknown_system_fails_the_run_naming_the_declared_ones(hub):
    result = materialize([breach_impact], resources={"hub": hub}, raise_on_error=False,
                         run_config=run_config(system="pipedriv"))
    assert not result.success
    failure, = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_failure_data.user_failure_data.description == (
        f"unknown system 'pipedriv'; declared systems: {', '.join(registry.available())}")


def test_a_bad_date_in_the_config_fails_the_run_saying_which_field(hub):
    result = materialize([breach_impact], resources={"hub": hub}, raise_on_error=False,
                         run_config=run_config(system="pipedrive", detected_at="2.12.2026"))
    failure, = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_failure_data.user_failure_data.description.startswith(
        'detected_at is a local time as "YYYY-MM-DD HH:MM"')


def test_it_is_in_the_code_location_but_never_in_the_nightly_job():
    repo = defs.get_repository_def()
    assert "breach_impact" in {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert "breach_impact" not in {n.name for n in reconciliation_job.resolve(
        asset_graph=repo.asset_graph).graph.node_defs}
