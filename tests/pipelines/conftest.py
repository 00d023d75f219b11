"""The Dagster layer's fixtures: a live sandbox and a hub database per test."""

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dagster import materialize

from hub.settings import Settings
from hub.store import Store, open_store
from pipelines.reconciliation import SYNC_ASSETS, person_index
from pipelines.resources import ConnectorsResource, HubResource
from sandbox.server import Sandbox
from tests.conftest import TEST_SECRET

# Typeform's 2 req/s limit and the connector's pace under it are tested in
# tests/sandbox and tests/connectors; here they would only make the suite slow (a
# request's Typeform op spent most of its time pacing), so both are lifted together.
LIFTED_TYPEFORM_LIMIT = 1000
LIFTED_PACE = {"TYPEFORM_REQUESTS_PER_SECOND": str(LIFTED_TYPEFORM_LIMIT)}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    """The vendors in a process of their own, as in a deployment: the jobs here fork
    their op processes from the test's process, which should hold no server threads."""
    with Sandbox(people=60, seed=42, in_process=False) as running:
        httpx.put(f"{running.urls['typeform']}/__sandbox/settings",
                  json={"rate_limit_per_second": LIFTED_TYPEFORM_LIMIT}, timeout=10)
        yield running


@pytest.fixture
def vendors(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The sandbox, reset to its seed, with its settings in the environment."""
    for url in sandbox.urls.values():
        httpx.post(f"{url}/__sandbox/reset", timeout=10).raise_for_status()
    for key, value in {**sandbox.env, **LIFTED_PACE}.items():
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


@pytest.fixture(scope="module")
def index_template(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeded vendors' person index, built by the real reconciliation once per module.

    Every test starts from the vendors' seed (`vendors` resets them), so every test's
    index is this one; copying it costs milliseconds where a reconciliation costs seconds.
    """
    path = tmp_path_factory.mktemp("index") / "hub.db"
    for url in sandbox.urls.values():
        httpx.post(f"{url}/__sandbox/reset", timeout=10).raise_for_status()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**sandbox.env, **LIFTED_PACE}.items():
            patch.setenv(key, value)
        patch.setenv("HUB_SECRET", TEST_SECRET)
        patch.setenv("HUB_HOME", str(path.parent / "home"))
        resources = {"hub": HubResource(database_url=f"sqlite:///{path}"),
                     "connectors": ConnectorsResource()}
        assert materialize([*SYNC_ASSETS, person_index], resources=resources).success
    return path


@pytest.fixture
def indexed(vendors: Sandbox, hub_store: Store, hub_db: str, index_template: Path, tmp_path,
            monkeypatch: pytest.MonkeyPatch) -> Store:
    """A hub whose index holds the seeded vendors, as after the nightly reconciliation."""
    monkeypatch.setenv("HUB_DATABASE_URL", hub_db)  # the run's child processes read it
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    source = sqlite3.connect(index_template)
    target = sqlite3.connect(hub_db.removeprefix("sqlite:///"))
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    return hub_store
