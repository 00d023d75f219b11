"""Fixtures for connector tests.

- ``sandbox``: every vendor emulator that exists, on loopback, once per session
  (skipped, with the reason, when the sandbox is not importable yet).
- ``sandbox_env``: the sandbox's environment variables set for one test, so
  connectors are built exactly as in production: ``build_connector(system)``.
- ``vendor``: a tiny client of one vendor's ``/__sandbox/`` inspection API that
  resets the vendor's state first (tests never depend on each other) and can
  set faults.
- ``fast_retry``: the production retry policy with its waits capped at a few
  milliseconds (real HTTP, no long sleeps; there are no timing asserts).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from connectors.http import RetryPolicy


def _short_sleep(seconds: float) -> None:
    time.sleep(min(seconds, 0.005))


@pytest.fixture
def fast_retry() -> RetryPolicy:
    return RetryPolicy(max_attempts=10, sleep=_short_sleep)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Any]:
    try:
        from sandbox.server import Sandbox
    except Exception as exc:  # noqa: BLE001 - report why and skip the live tests
        pytest.skip(f"sandbox not importable: {exc!r}")
    with Sandbox(people=200, seed=42) as box:
        yield box


@pytest.fixture
def sandbox_env(sandbox: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # no stray .env from the working tree
    for key, value in sandbox.env.items():
        monkeypatch.setenv(key, value)
    return dict(sandbox.env)


class VendorInspector:
    """The `/__sandbox/` API of one vendor server."""

    def __init__(self, name: str, base_url: str) -> None:
        self.name = name
        self.http = httpx.Client(base_url=base_url, timeout=10)

    def reset(self) -> None:
        self.http.post("/__sandbox/reset").raise_for_status()

    def find(self, email: str | None = None, phone: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("email", email), ("phone", phone)) if v}
        response = self.http.get("/__sandbox/find", params=params)
        response.raise_for_status()
        return response.json()["records"]

    def record(self, kind: str, rid: str) -> dict[str, Any] | None:
        response = self.http.get(f"/__sandbox/records/{kind}/{rid}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def faults(self, **rates: float) -> None:
        self.http.put("/__sandbox/faults", json=rates).raise_for_status()

    def calls(self) -> dict[str, Any]:
        return self.http.get("/__sandbox/calls").json()

    def count(self, route: str, *, method: str = "GET", status: int | None = None) -> int:
        """Calls so far to one route template (e.g. ``/forms``), any status unless given."""
        return sum(c["count"] for c in self.calls()["calls"]
                   if c["route"] == route and c["method"] == method
                   and (status is None or c["status"] == status))

    def settings(self, **values: Any) -> None:
        self.http.put("/__sandbox/settings", json=values).raise_for_status()

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def vendor(sandbox: Any) -> Iterator[Callable[[str], VendorInspector]]:
    opened: list[VendorInspector] = []

    def open_vendor(name: str) -> VendorInspector:
        if name not in sandbox.urls:
            pytest.skip(f"the sandbox has no {name} emulator yet")
        inspector = VendorInspector(name, sandbox.urls[name])
        inspector.reset()
        opened.append(inspector)
        return inspector

    yield open_vendor
    for inspector in opened:
        inspector.reset()  # faults off, state back to the seed for the next test
        inspector.close()


@pytest.fixture
def fresh_vendor(monkeypatch: pytest.MonkeyPatch, tmp_path: Any
                 ) -> Iterator[Callable[[str], tuple[VendorInspector, dict[str, str]]]]:
    """A dedicated, freshly seeded sandbox for one vendor, for one test.

    Used instead of ``POST /__sandbox/reset`` where a vendor's reset is not
    trustworthy: the Pipedrive emulator's reset rebinds its tables while the v2
    deals/organizations/activities routes keep the old ones, so after a reset those
    endpoints serve stale data. Also sets the sandbox's env for the test.
    """
    try:
        from sandbox.server import Sandbox
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"sandbox not importable: {exc!r}")
    boxes: list[Any] = []
    inspectors: list[VendorInspector] = []
    monkeypatch.chdir(tmp_path)

    def start(name: str) -> tuple[VendorInspector, dict[str, str]]:
        box = Sandbox(people=200, seed=42, vendors=(name,)).start()
        boxes.append(box)
        if name not in box.urls:
            pytest.skip(f"the sandbox has no {name} emulator yet")
        for key, value in box.env.items():
            monkeypatch.setenv(key, value)
        inspector = VendorInspector(name, box.urls[name])
        inspectors.append(inspector)
        return inspector, dict(box.env)

    yield start
    for inspector in inspectors:
        inspector.close()
    for box in boxes:
        box.stop()



@pytest.fixture
def app_database(request: pytest.FixtureRequest, tmp_path: Any,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Any]]:
    """The own application's database, seeded, turned on as a deployment does it
    (HUB_EXTRA_SYSTEMS and APP_DATABASE_*, the example mapping); returns its inspector.

    ``backend`` "sqlite" is a file of the test's own; "postgres" the test module's own
    schema (skipped without HUB_TEST_POSTGRES_URL), reset for each test.
    """
    from connectors import registry
    from tests.connectors.app_db import EXAMPLE, PACKAGE, DatabaseInspector

    opened: list[DatabaseInspector] = []

    def start(backend: str) -> DatabaseInspector:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path / 'app.db'}"
        else:
            url = request.getfixturevalue("pg_module_schema_url")
        monkeypatch.chdir(tmp_path)  # no stray .env
        monkeypatch.setenv(registry.EXTRA_ENV, PACKAGE)
        monkeypatch.setenv("APP_DATABASE_URL", url)
        monkeypatch.setenv("APP_DATABASE_MAPPING", str(EXAMPLE))
        inspector = DatabaseInspector(url)
        opened.append(inspector)
        inspector.reset()
        return inspector

    yield start
    for inspector in opened:
        inspector.close()
