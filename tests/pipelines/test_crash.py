"""A crash never blocks: `kill -9` of `hub request run` mid-erasure, then the next run.

Found: the killed command's Dagster run stayed STARTED forever, holding one slot per
vendor pool; every later run waited without a word, the request stayed in progress
with plaintext identifiers, and `nothing_stuck` did not flag it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter, materialize

from hub import ledger
from hub.ledger import RequestKind, RequestState
from pipelines.reconciliation import SYNC_ASSETS, SYSTEMS, person_index
from pipelines.requests import subject_request
from tests.pipelines.jobs import file_request, run
from tests.polling import poll

pytestmark = pytest.mark.slow  # end to end through real processes: scheduled first

ROOT = Path(__file__).resolve().parents[2]
EEVA = "eeva.makela@example.fi"
WRITES = ("POST", "PUT", "PATCH", "DELETE")
WRITE_ACTIONS = {"deleted", "permanently_deleted", "anonymised", "unsubscribed", "unlinked",
                 "deactivated"}


@pytest.fixture
def hub_env(vendors, resources, hub_store, hub_db, tmp_path, monkeypatch) -> dict[str, str]:
    """The environment of `hub` run as an operator would: the sandbox, the hub's database,
    a Dagster home with the repository's dagster.yaml (one pool per vendor)."""
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text("utf-8"), "utf-8")
    monkeypatch.setenv("HUB_DATABASE_URL", hub_db)
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert materialize([*SYNC_ASSETS, person_index], resources=resources).success
    return {**os.environ, "PYTHONPATH": str(ROOT), "HUB_WAIT_REPORT_SECONDS": "0.2"}


def hub_command(env: dict[str, str], *args: str) -> subprocess.Popen:
    # Its own session: SIGKILL reaches this process only, as `kill -9 PID` would; its
    # step processes live on, as they do for an operator.
    return subprocess.Popen([sys.executable, "-m", "hub.cli", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def finish(command: subprocess.Popen, timeout: float = 240) -> tuple[str, str]:
    """Its output once it ends; a command still waiting after `timeout` is the bug."""
    try:
        return command.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(command.pid, signal.SIGKILL)
        out, err = command.communicate(timeout=30)
        pytest.fail(f"still waiting after {timeout} s:\n{out}\n{err}")


def set_faults(vendors, **faults) -> None:
    for system in SYSTEMS:
        httpx.put(f"{vendors.urls[system]}/__sandbox/faults", json=faults,
                  timeout=10).raise_for_status()


def writes(vendors) -> dict[str, int]:
    """Writes each vendor carried out (2xx), counted by its inspection endpoint."""
    out = {}
    for system in SYSTEMS:
        body = httpx.get(f"{vendors.urls[system]}/__sandbox/calls", timeout=10).json()
        out[system] = sum(c["count"] for c in body["calls"] if c["status"] < 300 and (
            c["method"] in WRITES or "delete" in c["route"]))  # Netvisor deletes by GET
    return out


def acted(store, rid) -> dict[str, int]:
    """Records each task's evidence says were written to, once each."""
    with store.session() as session:
        return {t.system: sum(r["action"] in WRITE_ACTIONS for r in t.evidence["records"])
                for t in ledger.tasks_of(session, rid)}


def running_tasks(store, rid) -> list[str]:
    with store.session() as session:
        return [t.system for t in ledger.tasks_of(session, rid) if t.state == "running"]


def test_killed_request_run_is_ended_and_the_next_run_completes(hub_env, hub_store, vendors):
    rid = file_request(hub_store, RequestKind.ERASURE, EEVA)
    set_faults(vendors, latency_ms=700)  # every vendor call slow: the kill lands mid-run
    first = hub_command(hub_env, "request", "run", rid)
    try:
        poll(lambda: running_tasks(hub_store, rid), timeout=120, interval=0.1)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.communicate(timeout=30)
    set_faults(vendors, latency_ms=0)
    with DagsterInstance.get() as instance:
        (dead,) = instance.get_runs(RunsFilter(tags={"hub/request_id": rid}))
        assert dead.status == DagsterRunStatus.STARTED  # what Dagster believes

    second = hub_command(hub_env, "request", "run", rid)
    out, err = finish(second)
    assert second.returncode == 0, err
    assert f"ended Dagster run {dead.run_id} of {rid}: the process that ran it" in out
    with hub_store.session() as session:
        # finished everywhere; Pipedrive's leftover waits for an operator's confirmation
        assert ledger.get_request(session, rid).state in (RequestState.COMPLETED,
                                                          RequestState.AWAITING_REVIEW)
        assert {t.state for t in ledger.tasks_of(session, rid)} <= {"done", "manual_pending"}
    done = acted(hub_store, rid)
    assert sum(done.values()) >= 4
    assert writes(vendors) == done  # nothing written twice, across the kill
    with DagsterInstance.get() as instance:
        assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
        for info in instance.event_log_storage.get_concurrency_infos(list(SYSTEMS)).values():
            assert not info.claimed_slots and not info.pending_steps


def test_an_attempt_past_its_bound_fails_with_the_reason(vendors, resources, hub_store,
                                                         monkeypatch):
    """Found: nothing bounded a task; a vendor that answers slowly held the run and its
    pool slot for as long as it liked."""
    monkeypatch.setenv("HUB_OP_TIMEOUT_SECONDS", "0.5")
    rid = file_request(hub_store, RequestKind.ERASURE, EEVA)
    httpx.put(f"{vendors.urls['typeform']}/__sandbox/faults", json={"latency_ms": 1500},
              timeout=10).raise_for_status()
    started = time.monotonic()
    result = run(rid, resources)
    assert not result.success and time.monotonic() - started < 60
    with hub_store.session() as session:
        tasks = {t.system: t for t in ledger.tasks_of(session, rid)}
    slow = tasks["typeform"]
    assert (slow.state, slow.attempts) == ("failed", 4)
    assert "TaskStopped: the attempt took longer than 0.5 s (HUB_OP_TIMEOUT_SECONDS)" in slow.error
    assert all(t.state != "running" for t in tasks.values())


def test_a_wait_for_a_pool_slot_says_what_it_waits_for(hub_env, hub_store):
    """Found: a run whose slot another run held waited 8 minutes without a word."""
    rid = file_request(hub_store, RequestKind.ERASURE, EEVA)
    with DagsterInstance.get() as instance:
        holder = instance.create_run_for_job(
            subject_request, status=DagsterRunStatus.STARTED,
            run_config={"ops": {"plan": {"config": {"request_id": "R-20260101-abcdef"}}}},
            tags={"hub/request_id": "R-20260101-abcdef", "hub/host": socket.gethostname(),
                  "hub/pid": str(os.getpid())})  # a live run: this test's own process
        instance.event_log_storage.set_concurrency_slots("pipedrive", 1)
        instance.event_log_storage.claim_concurrency_slot("pipedrive", holder.run_id,
                                                          "pipedrive_task")
        command = hub_command({**hub_env, "PYTHONUNBUFFERED": "1"}, "request", "run", rid)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(command.stdout), daemon=True)
        reader.start()
        expected = (f"waiting for the pipedrive slot held by run {holder.run_id} "
                    "(request R-20260101-abcdef)")
        try:
            poll(lambda: any(expected in line for line in lines), timeout=120, interval=0.1)
        finally:
            instance.event_log_storage.free_concurrency_slots_for_run(holder.run_id)
        assert command.wait(timeout=240) == 0, command.stderr.read()
        reader.join(timeout=10)
    assert sum(expected in line for line in lines) == 1  # said once, not every poll
