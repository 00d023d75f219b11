"""Shared fixtures: a fresh hub store on SQLite and on PostgreSQL.

PostgreSQL runs when HUB_TEST_POSTGRES_URL names a server. Where
HUB_REQUIRE_POSTGRES=1 (CI), a missing server fails the suite instead of
skipping it, so CI cannot go green without the PostgreSQL half.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

# Waits are injectable (DESIGN.md, Testing): connectors back off in milliseconds and
# Dagster retries a failed system op after 50 ms, so no test waits real backoffs.
# Set before any test imports pipelines, whose job reads it when it is defined.
os.environ.setdefault("HUB_RETRY_BASE_SECONDS", "0.002")
os.environ.setdefault("HUB_OP_RETRY_DELAY_SECONDS", "0.05")
# The Pipedrive emulator keeps Pipedrive's real limits (20 per 2 s, search 10 per 2 s);
# with millisecond waits a suite would only trip them. Its own tests set them back.
os.environ.setdefault("SANDBOX_PIPEDRIVE_SETTINGS",
                      '{"burst_limit": 400, "search_burst_limit": 50, "daily_budget": 50000000}')

from hub.models import Base
from hub.settings import Settings
from hub.store import Store, open_store

TEST_SECRET = "test-secret-" + "x" * 40


def postgres_url() -> str | None:
    url = os.environ.get("HUB_TEST_POSTGRES_URL", "").strip()
    if url:
        return url
    if os.environ.get("HUB_REQUIRE_POSTGRES") == "1":
        pytest.fail("HUB_REQUIRE_POSTGRES=1 but HUB_TEST_POSTGRES_URL is not set")
    return None


def _options(schema: str) -> str:
    """The test schema first on the search path; commits not waiting for the disk (a
    test never survives a server crash, and each of its commits waited for a flush)."""
    return f"-csearch_path={schema} -csynchronous_commit=off"


@contextmanager
def pg_schema() -> Iterator[str]:
    """A URL whose search_path is a new, empty schema, dropped afterwards."""
    base = postgres_url()
    if base is None:
        pytest.skip("PostgreSQL tests need HUB_TEST_POSTGRES_URL")
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # noqa: BLE001 - the message is what matters here
        admin.dispose()
        pytest.fail(f"PostgreSQL at {make_url(base).render_as_string()} is not usable: {exc}")
    url = make_url(base).update_query_dict({"options": _options(schema)})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A fresh schema for one test."""
    with pg_schema() as url:
        yield url


@pytest.fixture(scope="module")
def pg_module_schema_url() -> Iterator[str]:
    """A fresh schema for one test module (its tests reset what they use in it)."""
    with pg_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """An empty database: for tests of what the hub does to one (migrations, the CLI)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    return request.getfixturevalue("pg_schema_url")


def _settings(url: str, tmp_path) -> Settings:
    return Settings(_env_file=None, database_url=url, secret=TEST_SECRET,
                    home=tmp_path / ".hub")


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to head per worker, copied for each test."""
    path = tmp_path_factory.mktemp("migrated") / "hub.db"
    open_store(_settings(f"sqlite:///{path}", path.parent)).close()
    return path


@pytest.fixture(scope="session")
def _migrated_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One schema migrated to head per worker; each test empties its tables (below).

    Migrating a fresh schema cost each of several hundred store tests a third of a
    second of DDL; emptying a few rows from each table costs milliseconds.
    """
    with pg_schema() as url:
        open_store(_settings(url, tmp_path_factory.mktemp("migrated-pg"))).close()
        yield url


def _emptied(url: str) -> str:
    """The migrated schema with every table empty and every sequence restarted, as a
    fresh one would be. DELETE, not TRUNCATE: on a few rows it is a fiftieth of the cost."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
            for (sequence,) in conn.execute(text(
                    "SELECT sequence_name FROM information_schema.sequences"
                    " WHERE sequence_schema = current_schema()")):
                conn.execute(text(f'ALTER SEQUENCE "{sequence}" RESTART'))
    finally:
        engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:
    """A hub store at the migrations' head with nothing in it, on each database."""
    if request.param == "sqlite":
        path = tmp_path / "hub.db"
        shutil.copy2(request.getfixturevalue("_migrated_sqlite"), path)
        url = f"sqlite:///{path}"
    else:
        url = _emptied(request.getfixturevalue("_migrated_postgres"))
    opened = open_store(_settings(url, tmp_path), migrate=False)
    yield opened
    opened.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow end-to-end tests first: with two workers, a long test started last is the
    suite's whole tail; started first, the fast ones fill the other worker meanwhile."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
