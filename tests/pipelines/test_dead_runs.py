"""Dead runs are told from live ones, ended, flagged and resumed (no vendor involved)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from dagster import (
    DagsterEventType,
    DagsterRunStatus,
    build_asset_check_context,
    build_sensor_context,
    instance_for_test,
)

from hub import ledger, outcomes
from hub.domain import Identifier, IdentifierKind
from hub.ledger import RequestKind, RequestState
from pipelines import sensors
from pipelines.checks import nothing_stuck
from pipelines.launch import (
    HOST_TAG,
    PID_TAG,
    REAPED_TAG,
    live_runs,
    outcome_line,
    reap,
    why_dead,
)
from pipelines.requests import REQUEST_TAG, subject_request
from pipelines.resources import HubResource
from tests.conftest import TEST_SECRET

POOLS = {"concurrency": {"pools": {"default_limit": 1, "granularity": "op"}}}


def dead_pid() -> int:
    """The pid of a process that has ended (and been waited for)."""
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    return ended.pid


def started_run(instance, request_id: str, pid: int, **tags: str):
    """A run as `hub request run` in process `pid` leaves it: STARTED, with its launcher."""
    return instance.create_run_for_job(
        subject_request, run_config={"ops": {"plan": {"config": {"request_id": request_id}}}},
        status=DagsterRunStatus.STARTED,
        tags={REQUEST_TAG: request_id, HOST_TAG: socket.gethostname(), PID_TAG: str(pid),
              **tags})


def in_progress(store, email: str) -> str:
    """A request mid-run: in progress, its Pipedrive task claimed (running)."""
    with store.session() as session:
        row = ledger.create_request(session, store.hasher, RequestKind.ERASURE,
                                    [Identifier(IdentifierKind.EMAIL, email)])
        ledger.verify(session, row.id)
        ledger.transition(session, row, RequestState.IN_PROGRESS)
        ledger.ensure_tasks(session, row, ["mailchimp", "pipedrive"])
        assert outcomes.begin(session, row.id, "pipedrive") is not None
        return row.id


def hold(instance, run, pool: str) -> None:
    """The run takes the one slot of `pool`, as its step would."""
    storage = instance.event_log_storage
    storage.set_concurrency_slots(pool, 1)
    storage.claim_concurrency_slot(pool, run.run_id, f"{pool}_task")
    assert storage.get_concurrency_info(pool).claimed_slots


def record(instance, run):
    (found,) = [r for r in live_runs(instance) if r.dagster_run.run_id == run.run_id]
    return found


def test_a_run_is_dead_only_on_proof():
    with instance_for_test() as instance:
        gone = started_run(instance, "R-1", dead_pid())
        alive = started_run(instance, "R-2", os.getpid())
        bounded = started_run(instance, "R-3", os.getpid(), **{"dagster/max_runtime": "60"})
        elsewhere = started_run(instance, "R-4", 1, **{HOST_TAG: "another-host"})
        assert "pid" in why_dead(record(instance, gone))
        assert why_dead(record(instance, alive)) is None
        assert why_dead(record(instance, bounded)) is None
        assert "maximum of 60 s" in why_dead(record(instance, bounded), now=time.time() + 61)
        assert why_dead(record(instance, elsewhere)) is None  # not ours to judge


def test_reaping_fails_the_run_and_frees_its_pool_slots():
    with instance_for_test(overrides=POOLS) as instance:
        run = started_run(instance, "R-1", dead_pid())
        storage = instance.event_log_storage
        for pool in ("pipedrive", "mailchimp"):
            hold(instance, run, pool)
        assert [r[0] for r in reap(instance, "R-1")] == [run.run_id]
        ended = instance.get_run_by_id(run.run_id)
        assert ended.status == DagsterRunStatus.FAILURE and REAPED_TAG in ended.tags
        for pool in ("pipedrive", "mailchimp"):
            assert not storage.get_concurrency_info(pool).claimed_slots
        assert reap(instance) == []


def check(instance, hub_db):
    context = build_asset_check_context(instance=instance,
                                        resources={"hub": HubResource(database_url=hub_db)})
    return nothing_stuck(context)


def test_nothing_stuck_flags_a_request_in_progress_without_a_live_run(hub_store, hub_db):
    """Found: the killed run's request stayed in progress, and the check passed."""
    dead = in_progress(hub_store, "dead@example.fi")
    lost = in_progress(hub_store, "lost@example.fi")
    working = in_progress(hub_store, "working@example.fi")
    with instance_for_test() as instance:
        gone = started_run(instance, dead, dead_pid())
        started_run(instance, working, os.getpid())
        result = check(instance, hub_db)
    assert not result.passed
    assert f"{dead} in progress with no live run (last run {gone.run_id} the process" \
        in result.description
    assert f"{lost} in progress with no live run (no run)" in result.description
    assert working not in result.description
    assert result.metadata["without_live_run"].value == 2
    assert "@" not in result.description


def test_the_sensor_ends_a_dead_run_and_resumes_its_request(hub_store, hub_db, monkeypatch):
    monkeypatch.setenv("HUB_SECRET", TEST_SECRET)  # the sensor's store keys the audit trail
    rid = in_progress(hub_store, "crashed@example.fi")
    with instance_for_test(overrides=POOLS) as instance:
        run = started_run(instance, rid, dead_pid())
        hold(instance, run, "pipedrive")
        context = build_sensor_context(instance=instance,
                                       resources={"hub": HubResource(database_url=hub_db)})
        result = sensors.verified_requests(context)
        assert [r.run_key for r in result] == [f"{rid}:erasure:after-{run.run_id}"]
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
        assert not instance.event_log_storage.get_concurrency_info("pipedrive").claimed_slots
    with hub_store.session() as session:
        task = ledger.get_task(session, rid, "pipedrive")
        assert task.state == "failed" and "runs again" in task.error


def failure(step_key: str, message: str) -> SimpleNamespace:
    return SimpleNamespace(event_type=DagsterEventType.STEP_FAILURE, step_key=step_key,
                           step_failure_data=SimpleNamespace(
                               error=SimpleNamespace(message=message)))


@pytest.mark.parametrize(("states", "events", "expected"), [
    ({"netvisor": "failed", "pipedrive": "done"}, [],
     "netvisor failed; `hub request run R-1` again re-runs only that system"),
    ({"netvisor": "failed", "typeform": "failed"}, [],
     "netvisor, typeform failed; `hub request run R-1` again re-runs only those"),
    ({"pipedrive": "done"}, [failure("plan", "request R-1 is completed\nTraceback ...")],
     "the run failed in plan: request R-1 is completed"),
])
def test_the_last_line_says_what_failed_and_only_what_is_true(states, events, expected):
    """Found: "some systems failed; `hub request run` again re-runs only those" after a
    run that failed before any system ran."""
    result = SimpleNamespace(success=False, all_events=events, run_id="run-1")
    tasks = [SimpleNamespace(system=s, state=v) for s, v in states.items()]
    assert outcome_line(result, "R-1", tasks) == expected
