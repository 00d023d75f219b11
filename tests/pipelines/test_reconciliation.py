"""Nightly reconciliation against the sandbox over HTTP, through Dagster."""

import httpx
from dagster import materialize

from hub import index
from hub.domain import Identifier, IdentifierKind
from pipelines.reconciliation import SYNC_ASSETS, person_index

ASSETS = [*SYNC_ASSETS, person_index]


def metadata(result, key):
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        if mat.asset_key.to_user_string() == key:
            return {k: v.value for k, v in mat.metadata.items()}
    raise AssertionError(f"{key} was not materialised")


def test_full_then_incremental_sync_builds_the_person_index(vendors, resources, hub_store):
    first = materialize(ASSETS, resources=resources)
    assert first.success
    for system in ("pipedrive", "mailchimp", "typeform", "netvisor"):
        meta = metadata(first, f"{system}_people")
        assert meta["mode"] == "full" and meta["new"] > 0 and meta["api_calls"] > 0
    assert metadata(first, "person_index")["persons_touched"] > 0

    with hub_store.session() as session:
        # Aino is written "Aino.Virtanen@Example.fi" in Pipedrive: one person anyway.
        aino = index.lookup(session, Identifier(IdentifierKind.EMAIL,
                                                "aino.virtanen@example.fi"))
        assert aino is not None
        assert set(index.records_of(session, aino)) == {"pipedrive", "mailchimp", "typeform",
                                                        "netvisor"}
        jussi = index.lookup(session, Identifier(IdentifierKind.EMAIL,
                                                 "jussi.lindstrom@example.fi"))
        assert set(index.records_of(session, jussi)) == {"typeform"}

    again = materialize(ASSETS, resources=resources)
    assert again.success
    for system in ("pipedrive", "mailchimp", "typeform", "netvisor"):
        meta = metadata(again, f"{system}_people")
        assert meta["mode"] == "incremental"
        assert meta["new"] == 0 and meta["changed"] == 0 and meta["gone"] == 0
    with hub_store.session() as session:
        assert index.lookup(session, Identifier(IdentifierKind.EMAIL,
                                                "aino.virtanen@example.fi")) == aino


def test_sync_survives_vendor_faults(vendors, resources, hub_store):
    """20% 5xx and 10% 429 at every vendor (fixed seed): the sync still completes."""
    for url in vendors.urls.values():
        httpx.put(f"{url}/__sandbox/faults",
                  json={"error_rate": 0.2, "rate_limit_rate": 0.1, "seed": 3},
                  timeout=10).raise_for_status()
        httpx.delete(f"{url}/__sandbox/calls", timeout=10).raise_for_status()
    try:
        result = materialize(ASSETS, resources=resources)
        injected = sum(
            c["count"]
            for url in vendors.urls.values()
            for c in httpx.get(f"{url}/__sandbox/calls", timeout=10).json()["calls"]
            if c["status"] >= 500 or c["status"] == 429
        )
    finally:
        for url in vendors.urls.values():
            httpx.put(f"{url}/__sandbox/faults", json={"error_rate": 0, "rate_limit_rate": 0},
                      timeout=10)
    assert injected > 0  # the faults really happened, and were ridden out
    assert result.success
    with hub_store.session() as session:
        mikko = index.lookup(session, Identifier(IdentifierKind.EMAIL,
                                                 "mikko.hakkinen@example.fi"))
        assert set(index.records_of(session, mikko)) == {"pipedrive", "mailchimp", "typeform"}
