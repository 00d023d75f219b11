"""The Dagster layer's fixtures: a live sandbox and a hub database per test."""

from collections.abc import Iterator

import httpx
import pytest

from hub.settings import Settings
from hub.store import Store, open_store
from pipelines.resources import ConnectorsResource, HubResource
from sandbox.server import Sandbox
from tests.conftest import TEST_SECRET


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(people=60, seed=42) as running:
        # The 2 req/s limit is the vendor's, tested in tests/sandbox; here it would
        # only make the suite slow.
        httpx.put(f"{running.urls['typeform']}/__sandbox/settings",
                  json={"rate_limit_per_second": 1000}, timeout=10)
        yield running


@pytest.fixture
def vendors(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The sandbox, reset to its seed, with its settings in the environment."""
    for url in sandbox.urls.values():
        httpx.post(f"{url}/__sandbox/reset", timeout=10).raise_for_status()
    for key, value in sandbox.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HUB_SECRET", TEST_SECRET)
    return sandbox


@pytest.fixture
def hub_db(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'hub.db'}"


@pytest.fixture
def resources(hub_db: str) -> dict:
    return {"hub": HubResource(database_url=hub_db), "connectors": ConnectorsResource()}


@pytest.fixture
def hub_store(hub_db: str) -> Iterator[Store]:
    opened = open_store(Settings(_env_file=None, database_url=hub_db, secret=TEST_SECRET))
    yield opened
    opened.close()
