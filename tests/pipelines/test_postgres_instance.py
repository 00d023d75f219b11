"""The production instance shape: Dagster's storage and the hub's database on PostgreSQL.

The instance is built from deploy/dagster.yaml itself, its connection read from the
DAGSTER_PG_* variables as in production, and pointed at a database of its own,
created for the test and dropped after it (Dagster's tables never meet another
test's). The hub's database is a fresh schema on the same server. Both the nightly
reconciliation and a subject request run through `pipelines.launch`, with the
multiprocess executor, as `hub request run` runs them.

Runs when HUB_TEST_POSTGRES_URL names a server; HUB_REQUIRE_POSTGRES=1 (CI) turns
the skip into a failure (tests/conftest.py).
"""

from __future__ import annotations

import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from psycopg import sql
from sqlalchemy import make_url

from hub import audit, ledger
from hub.domain import Identifier, IdentifierKind
from hub.ledger import RequestKind, RequestState, TaskState
from pipelines.launch import run_reconciliation, run_request
from pipelines.reconciliation import SYSTEMS
from tests.conftest import postgres_url
from tests.pipelines.jobs import operator_decides
from tests.pipelines.jobs import state as request_state

pytestmark = pytest.mark.slow  # end to end through real processes: scheduled first

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DAGSTER_YAML = ROOT / "deploy" / "dagster.yaml"
SUBJECT = "mikko.hakkinen@example.fi"  # in Pipedrive, Mailchimp and Typeform; not Netvisor
# What must never reach Dagster's storage: the subject's e-mail local part and phone.
PERSONAL = ("hakkinen", "501112233")


def libpq_url(sqlalchemy_url: str, database: str | None = None) -> str:
    """The libpq form of a SQLAlchemy URL (no `+driver`), optionally for another database."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


@pytest.fixture
def dagster_db(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A new, empty database for Dagster's storage, in DAGSTER_PG_*; dropped afterwards."""
    base = postgres_url()
    if base is None:
        pytest.skip("PostgreSQL tests need HUB_TEST_POSTGRES_URL")
    name = f"dagster_test_{secrets.token_hex(6)}"
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    try:
        with psycopg.connect(libpq_url(base), autocommit=True) as conn:
            conn.execute(create)
    except psycopg.Error as exc:
        pytest.fail(f"PostgreSQL at {make_url(base).render_as_string()} is not usable: {exc}")
    url = make_url(base)
    monkeypatch.setenv("DAGSTER_PG_HOST", url.host or "localhost")
    monkeypatch.setenv("DAGSTER_PG_PORT", str(url.port or 5432))
    monkeypatch.setenv("DAGSTER_PG_USER", url.username or "postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", url.password or "")
    monkeypatch.setenv("DAGSTER_PG_DB", name)
    try:
        yield libpq_url(base, name)
    finally:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        with psycopg.connect(libpq_url(base), autocommit=True) as conn:
            conn.execute(drop)


@pytest.fixture
def pg_instance(dagster_db: str, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[DagsterInstance]:
    """The instance of deploy/dagster.yaml, as a DAGSTER_HOME holding that file."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(DEPLOY_DAGSTER_YAML, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with DagsterInstance.from_config(str(home)) as instance:
        yield instance


@pytest.fixture
def hub_db(pg_schema_url: str) -> str:
    """The hub's own database on PostgreSQL too (overrides the SQLite one)."""
    return pg_schema_url


@pytest.fixture
def hub_env(vendors, hub_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The runs' child processes read their settings from the environment.
    monkeypatch.setenv("HUB_DATABASE_URL", hub_db)
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))


def file_verified_erasure(store, email: str) -> str:
    with store.session() as session:
        row = ledger.create_request(session, store.hasher, RequestKind.ERASURE,
                                    [Identifier(IdentifierKind.EMAIL, email)])
        ledger.verify(session, row.id)
        return row.id


def test_subject_request_runs_on_an_instance_stored_in_postgres(
        pg_instance: DagsterInstance, dagster_db: str, hub_env, hub_store):
    instance = pg_instance
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    assert hub_store.engine.dialect.name == "postgresql"

    # The nightly job builds the index the request's plan reads, on the same instance.
    assert run_reconciliation(instance, log_level="WARNING").success

    rid = file_verified_erasure(hub_store, SUBJECT)
    result = run_request(rid, "erasure", instance, log_level="WARNING")
    assert result.success

    # The run and its events are in Dagster's PostgreSQL storage ...
    records = instance.get_run_records(
        RunsFilter(job_name="subject_request", tags={"hub/request_id": rid}))
    assert [r.dagster_run.run_id for r in records] == [result.run_id]
    assert records[0].dagster_run.status == DagsterRunStatus.SUCCESS
    succeeded = {e.step_key for e in instance.all_logs(
        result.run_id, of_type=DagsterEventType.STEP_SUCCESS)}
    assert {"plan", "complete", *(f"{s}_task" for s in SYSTEMS)} <= succeeded
    # ... and every vendor's pool there, with no slot left claimed after the run.
    limit = yaml.safe_load(DEPLOY_DAGSTER_YAML.read_text("utf-8"))["concurrency"]["pools"][
        "default_limit"]
    for system in SYSTEMS:
        info = instance.event_log_storage.get_concurrency_info(system)
        assert info.slot_count == limit and info.claimed_slots == [], system

    # Read straight from the database, not through Dagster's API.
    with psycopg.connect(dagster_db) as conn:
        runs = conn.execute("SELECT count(*) FROM runs WHERE run_id = %s",
                            (result.run_id,)).fetchone()[0]
        events = conn.execute("SELECT count(*) FROM event_logs WHERE run_id = %s",
                              (result.run_id,)).fetchone()[0]
        tagged = conn.execute("SELECT count(*) FROM run_tags WHERE value = %s",
                              (rid,)).fetchone()[0]
        assert (runs, events > 0, tagged > 0) == (1, True, True)
        # Rule 7: nothing personal in Dagster's storage, for either job's runs.
        for value in PERSONAL:
            pattern = f"%{value}%"
            leaks = conn.execute(
                "SELECT (SELECT count(*) FROM runs WHERE run_body ILIKE %(p)s)"
                " + (SELECT count(*) FROM run_tags WHERE value ILIKE %(p)s)"
                " + (SELECT count(*) FROM event_logs WHERE event ILIKE %(p)s)",
                {"p": pattern}).fetchone()[0]
            assert leaks == 0, "personal data in Dagster's storage"

    # An operator settles what the API could not remove (a synced mail); the next round
    # completes the request, with each system's outcome in the hub's PostgreSQL.
    for _ in range(3):
        if request_state(hub_store, rid) != RequestState.AWAITING_REVIEW:
            break
        operator_decides(hub_store, rid)
        assert run_request(rid, "erasure", instance, log_level="WARNING").success
    with hub_store.session() as session:
        assert ledger.get_request(session, rid).state == RequestState.COMPLETED
        outcome = {t.system: (t.state, t.action) for t in ledger.tasks_of(session, rid)}
        assert audit.verify(session).ok
    assert set(outcome) == set(SYSTEMS)
    assert outcome["netvisor"] == (TaskState.NOT_FOUND, "not_found")  # rule 2: a success
    for system in ("pipedrive", "mailchimp", "typeform"):
        state, action = outcome[system]
        assert state == TaskState.DONE and action not in (None, "not_found"), system


def snake(mapping: dict) -> dict:
    """Helm's camelCase keys as dagster.yaml's snake_case ones."""
    return {re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower(): value
            for key, value in mapping.items()}


def test_deploy_instance_settings_match_the_repository_and_the_helm_values():
    """deploy/dagster.yaml is the repository's dagster.yaml plus PostgreSQL storage, and
    the Helm values render the same instance: a change to one must reach the others."""
    repo = yaml.safe_load((ROOT / "dagster.yaml").read_text("utf-8"))
    deploy = yaml.safe_load(DEPLOY_DAGSTER_YAML.read_text("utf-8"))
    helm = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text("utf-8"))

    storage = deploy.pop("storage")["postgres"]["postgres_db"]
    assert deploy == repo
    assert {k: v for k, v in storage.items() if isinstance(v, dict)} == {
        "hostname": {"env": "DAGSTER_PG_HOST"}, "port": {"env": "DAGSTER_PG_PORT"},
        "username": {"env": "DAGSTER_PG_USER"}, "password": {"env": "DAGSTER_PG_PASSWORD"},
        "db_name": {"env": "DAGSTER_PG_DB"}}

    mirrored = {"concurrency", "run_monitoring", "run_retries", "python_logs", "telemetry"}
    assert set(repo) == mirrored, "a new instance setting: mirror it in deploy/helm/values.yaml"
    assert helm["postgresql"]["enabled"] is False
    assert helm["postgresql"]["postgresqlScheme"] == storage["scheme"]
    assert helm["generatePostgresqlPasswordSecret"] is False
    assert helm["runLauncher"]["type"] == "K8sRunLauncher"
    assert helm["concurrency"]["enabled"] is True
    assert snake(helm["concurrency"]["pools"]) == repo["concurrency"]["pools"]
    assert snake(helm["dagsterDaemon"]["runMonitoring"]) == repo["run_monitoring"]
    assert snake(helm["dagsterDaemon"]["runRetries"]) == repo["run_retries"]
    assert snake(helm["pythonLogs"]) == repo["python_logs"]
    assert helm["telemetry"] == repo["telemetry"]
    (location,) = helm["dagster-user-deployments"]["deployments"]
    assert location["codeServerArgs"] == ["-m", "pipelines.definitions"]
