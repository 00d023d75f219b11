"""The Dagster code location: `dagster dev -m pipelines.definitions`."""

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    Definitions,
    ScheduleDefinition,
    define_asset_job,
    in_process_executor,
)

from pipelines.breach import breach_impact
from pipelines.checks import CHECKS
from pipelines.executor import fanout_executor
from pipelines.reconciliation import SYNC_ASSETS, person_drift, person_index
from pipelines.requests import subject_request
from pipelines.resources import ConnectorsResource, HubResource
from pipelines.retention import retention_sweep
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

# Daily, after the nightly index: a dry run costs a query, and the January rule
# (controller D) then erases in the first days of January, as promised.
retention_job = define_asset_job(
    "retention_sweep_job", selection=AssetSelection.assets(retention_sweep),
    description="List who retention makes due; file erasures when the policy says so.",
    # one step that reads the hub's database: no process of its own to spawn
    executor_def=in_process_executor)

retention_daily = ScheduleDefinition(
    name="retention_sweep_schedule",
    job=retention_job,
    cron_schedule="0 4 * * *",
    execution_timezone="Europe/Helsinki",
    default_status=DefaultScheduleStatus.RUNNING,
)

defs = Definitions(
    # breach_impact is not scheduled: it is run from the UI when a breach is detected.
    assets=[*SYNC_ASSETS, person_index, person_drift, breach_impact, retention_sweep],
    asset_checks=CHECKS,
    jobs=[reconciliation_job, subject_request, retention_job],
    schedules=[nightly, retention_daily],
    sensors=[verified_requests, letter_outbox],
    resources={"hub": HubResource(), "connectors": ConnectorsResource()},
)
