"""The sensor that turns verified requests into runs of the subject-request job.

The cursor pages through verified requests in (verified_at, id) order, a bounded
page per tick; after a short page it starts again from the beginning, so a
request whose launch was missed is picked up on the next pass. `run_key` =
request id and kind makes Dagster launch each request once, whatever the cursor.
"""

from datetime import datetime

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from hub import ledger
from pipelines.requests import subject_request
from pipelines.resources import HubResource

PAGE = 25


def run_request_for(request_id: str, kind: str, run_round: int = 0) -> RunRequest:
    """One run per request and round: an operator's decisions start the next round."""
    return RunRequest(
        run_key=f"{request_id}:{kind}" + (f":round{run_round}" if run_round else ""),
        run_config={"ops": {"plan": {"config": {"request_id": request_id}}}},
        tags={"hub/request_id": request_id, "hub/kind": kind},
    )


def _parse(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    at, _, request_id = cursor.partition("|")
    return datetime.fromisoformat(at), request_id


@sensor(job=subject_request, minimum_interval_seconds=30,
        default_status=DefaultSensorStatus.RUNNING,
        description="Launches a run for every verified request not yet launched.")
def verified_requests(context: SensorEvaluationContext, hub: HubResource):
    with hub.store() as store, store.session() as session:
        rows = ledger.verified_page(session, after=_parse(context.cursor), limit=PAGE)
        page = [(r.id, r.kind, r.verified_at, r.run_round) for r in rows]
    if not page:
        context.update_cursor(None)
        return SkipReason("no verified requests waiting")
    last_id, _, last_at, _ = page[-1]
    context.update_cursor(None if len(page) < PAGE else f"{last_at.isoformat()}|{last_id}")
    return [run_request_for(request_id, kind, run_round)
            for request_id, kind, _, run_round in page]
