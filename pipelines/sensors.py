"""The sensor that turns verified requests into runs of the subject-request job.

The cursor pages through verified requests in (verified_at, id) order, a bounded
page per tick; after a short page it starts again from the beginning, so a
request whose launch was missed is picked up on the next pass. `run_key` =
request id and kind makes Dagster launch each request once, whatever the cursor.
"""

import os
from datetime import UTC, datetime

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from hub import alerts, ledger
from pipelines.requests import subject_request
from pipelines.resources import HubResource

PAGE = 25
MAX_RUNTIME_TAG = "dagster/max_runtime"
DEFAULT_RUN_MAX_SECONDS = 7200


def run_max_seconds() -> int:
    """The longest a request's run may take (HUB_RUN_MAX_SECONDS, 7200), as its
    `dagster/max_runtime` tag: Dagster's run monitoring and the hub's reaper end a run
    past it, so no run holds its pool slots forever. Generous: four systems, each with
    its retries, and waits for slots held by the nightly sync."""
    return int(os.environ.get("HUB_RUN_MAX_SECONDS") or DEFAULT_RUN_MAX_SECONDS)


def run_request_for(request_id: str, kind: str, run_round: int = 0, *,
                    after: str | None = None) -> RunRequest:
    """One run per request and round: an operator's decisions start the next round.

    ``after`` names a run that died: the run that resumes it has its own key.
    """
    key = f"{request_id}:{kind}" + (f":round{run_round}" if run_round else "")
    return RunRequest(
        run_key=key + (f":after-{after}" if after else ""),
        run_config={"ops": {"plan": {"config": {"request_id": request_id}}}},
        tags={"hub/request_id": request_id, "hub/kind": kind,
              MAX_RUNTIME_TAG: str(run_max_seconds())},
    )


def _parse(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    at, _, request_id = cursor.partition("|")
    return datetime.fromisoformat(at), request_id


def _resumptions(context: SensorEvaluationContext, store) -> list[RunRequest]:
    """A run for each in-progress request whose last run the hub ended as dead.

    The runs whose process died are ended first (their pool slots freed); a request
    whose dead run still has a step process finishing its vendor call waits a tick.
    """
    from pipelines.launch import REAPED_TAG, live_runs, orphan_steps, reap

    instance = context.instance
    for run_id, request_id, reason in reap(instance):
        context.log.warning(f"ended run {run_id} of {request_id}: {reason}")
    resumed = []
    with store.session() as session:
        stalled = [(r.id, r.kind) for r in ledger.list_requests(
            session, today=datetime.now(UTC).date(), state=ledger.RequestState.IN_PROGRESS)]
    for request_id, kind in stalled:
        last = instance.get_run_records(RunsFilter(
            job_name="subject_request", tags={"hub/request_id": request_id}), limit=1)
        if not last or REAPED_TAG not in last[0].dagster_run.tags:
            continue
        dead = last[0].dagster_run.run_id
        if live_runs(instance, request_id) or orphan_steps(instance, dead):
            continue
        with store.session() as session:
            ledger.release_orphaned(session, request_id, "its run ended before the task "
                                                         "finished; it runs again")
        resumed.append(run_request_for(request_id, kind, after=dead))
    return resumed


@sensor(job=subject_request, minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description="Launches a run for every verified request not yet launched, and "
                    "resumes a request whose run died.")
def verified_requests(context: SensorEvaluationContext, hub: HubResource):
    with hub.store() as store:
        resumed = _resumptions(context, store)
        with store.session() as session:
            rows = ledger.verified_page(session, after=_parse(context.cursor), limit=PAGE)
            page = [(r.id, r.kind, r.verified_at, r.run_round) for r in rows]
    if not page:
        context.update_cursor(None)
        return resumed or SkipReason("no verified requests waiting")
    last_id, _, last_at, _ = page[-1]
    context.update_cursor(None if len(page) < PAGE else f"{last_at.isoformat()}|{last_id}")
    return resumed + [run_request_for(request_id, kind, run_round)
                      for request_id, kind, _, run_round in page]


CHECK_ALERT_WINDOW_SECONDS = 86400


def failed_checks(instance, check_keys, *, since: float) -> list[tuple[str, str]]:
    """(check name, run id) of the checks whose latest evaluation, after `since`, failed."""
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus,
    )

    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(check_keys)
    return sorted((key.name, record.run_id) for key, record in latest.items()
                  if record.status == AssetCheckExecutionRecordStatus.FAILED
                  and record.create_timestamp >= since)


def _check_alerts(context: SensorEvaluationContext, store) -> list[int]:
    from pipelines.checks import CHECKS

    keys = [key for check in CHECKS for key in check.check_keys]
    since = datetime.now(UTC).timestamp() - CHECK_ALERT_WINDOW_SECONDS
    queued = []
    with store.session() as session:
        for name, run_id in failed_checks(context.instance, keys, since=since):
            queued += alerts.queue_check_alert(session, store.hasher, store.settings,
                                               check=name, run_id=run_id)
    return queued


@sensor(minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING,
        description="Delivers the hub's outbox (letters to subjects by e-mail or as PDF for "
                    "the post; alerts and the daily digest to the ops staff), with retries.")
def letter_outbox(context: SensorEvaluationContext, hub: HubResource):
    """Alerts for failed nightly checks, then one pass of delivery.worker.tick; logs
    letter ids, counts and the kind of failure of each failed letter (rule 7)."""
    from delivery import worker  # SMTP and PDF: not for every process that loads the jobs

    with hub.store() as store:
        checks = _check_alerts(context, store)
        report = worker.tick(store)
    report.queued = checks + report.queued
    if report.failed:
        context.log.warning("letters not delivered (hub letters list): "
                            + "; ".join(report.problems()))
    return SkipReason(report.summary())
