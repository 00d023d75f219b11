"""Running one request's job on a real Dagster instance, without the daemon.

`hub request run ID` uses this: it launches the subject-request job with the
multiprocess executor on the configured instance (DAGSTER_HOME, by default
`.hub/dagster` with the repository's dagster.yaml) and waits. When the request's
last run failed, it re-executes that run from the failure, so only the systems
that did not finish run again.
"""

import os
from pathlib import Path

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    JobExecutionResult,
    ReexecutionOptions,
    RunsFilter,
    execute_job,
    reconstructable,
)

from hub import ledger
from hub.ledger import RequestState
from hub.settings import load_settings
from hub.store import open_store
from pipelines.reconciliation import SYSTEMS, asset_name
from pipelines.sensors import run_request_for

REPO_DAGSTER_YAML = Path(__file__).resolve().parents[1] / "dagster.yaml"


def subject_request_job():  # noqa: ANN201 - reconstructable target
    from pipelines.definitions import defs

    return defs.get_job_def("subject_request")


def reconciliation_job():  # noqa: ANN201 - reconstructable target
    from pipelines.definitions import defs

    return defs.resolve_job_def("nightly_reconciliation")


def _quiet(run_config: dict, log_level: str | None) -> dict:
    """Console logging at `log_level` for people at a terminal; None keeps Dagster's."""
    if log_level is None:
        return run_config
    return {**run_config, "loggers": {"console": {"config": {"log_level": log_level}}}}


def ensure_dagster_home(hub_home: Path) -> Path:
    """DAGSTER_HOME, defaulting to <hub home>/dagster with the repository's settings."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str((hub_home / "dagster").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() and REPO_DAGSTER_YAML.exists():
        config.write_text(REPO_DAGSTER_YAML.read_text("utf-8"), "utf-8")
    return home


def run_reconciliation(instance: DagsterInstance, *, full: bool = False,
                       log_level: str | None = None) -> JobExecutionResult:
    """The nightly reconciliation job, now: every system's sync, the index, the checks."""
    config = {"ops": {asset_name(s): {"config": {"full": True}} for s in SYSTEMS}} if full else {}
    return execute_job(reconstructable(reconciliation_job), instance,
                       run_config=_quiet(config, log_level))


def _verified(request_id: str) -> bool:
    store = open_store(load_settings())
    try:
        with store.session() as session:
            return ledger.get_request(session, request_id).state == RequestState.VERIFIED
    finally:
        store.close()


def run_request(request_id: str, kind: str, instance: DagsterInstance, *,
                log_level: str | None = None) -> JobExecutionResult:
    """Run (or re-execute from failure) the job for one request and wait for it.

    A verified request runs afresh: its first run, or the next round after an
    operator's decisions. One whose last run failed part-way re-executes from the
    failure, so only the systems that did not finish run again.
    """
    previous = instance.get_run_records(
        RunsFilter(job_name="subject_request", tags={"hub/request_id": request_id}), limit=1)
    job = reconstructable(subject_request_job)
    if (previous and previous[0].dagster_run.status == DagsterRunStatus.FAILURE
            and not _verified(request_id)):
        options = ReexecutionOptions.from_failure(previous[0].dagster_run.run_id, instance)
        return execute_job(job, instance, reexecution_options=options)
    request = run_request_for(request_id, kind)
    return execute_job(job, instance, run_config=_quiet(request.run_config, log_level),
                       tags=request.tags)
