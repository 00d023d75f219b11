"""The Dagster code location: `dagster dev -m pipelines.definitions`."""

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    Definitions,
    ScheduleDefinition,
    define_asset_job,
)

from pipelines.breach import breach_impact
from pipelines.checks import CHECKS
from pipelines.executor import fanout_executor
from pipelines.reconciliation import SYNC_ASSETS, person_drift, person_index
from pipelines.requests import subject_request
from pipelines.resources import ConnectorsResource, HubResource
from pipelines.sensors import letter_outbox, verified_requests

reconciliation_job = define_asset_job(
    "nightly_reconciliation",
    selection=AssetSelection.groups("reconciliation"),
    description="Sync every system into the person index, then check for drift.",
    executor_def=fanout_executor,
)

nightly = ScheduleDefinition(
    name="nightly_reconciliation_schedule",
    job=reconciliation_job,
    cron_schedule="0 2 * * *",
    execution_timezone="Europe/Helsinki",
    default_status=DefaultScheduleStatus.RUNNING,
)

defs = Definitions(
    # breach_impact is not scheduled: it is run from the UI when a breach is detected.
    assets=[*SYNC_ASSETS, person_index, person_drift, breach_impact],
    asset_checks=CHECKS,
    jobs=[reconciliation_job, subject_request],
    schedules=[nightly],
    sensors=[verified_requests, letter_outbox],
    resources={"hub": HubResource(), "connectors": ConnectorsResource()},
)
