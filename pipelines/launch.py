"""Running one request's job on a real Dagster instance, without the daemon.

`hub request run ID` uses this: it launches the subject-request job with the
multiprocess executor on the configured instance (DAGSTER_HOME, by default
`.hub/dagster` with the repository's dagster.yaml) and waits. When the request's
last run failed, it re-executes that run from the failure, so only the systems
that did not finish run again.
"""

import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    JobExecutionResult,
    ReexecutionOptions,
    RunRecord,
    RunsFilter,
    execute_job,
    reconstructable,
)

from hub import ledger
from hub.ledger import RequestState, TaskState
from hub.runnable import Refused
from hub.settings import load_settings
from hub.store import open_store
from pipelines.reconciliation import SYSTEMS, asset_name
from pipelines.requests import LIVE_RUN_STATUSES, REQUEST_TAG, op_timeout_seconds
from pipelines.sensors import MAX_RUNTIME_TAG, run_request_for

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


# Who runs a run launched by `hub request run`: the host and process id, so that a
# later command can tell a run whose process died from one still working.
HOST_TAG, PID_TAG = "hub/host", "hub/pid"
# Set on a run the hub ended because its process had died or it ran past its bound.
REAPED_TAG = "hub/reaped"


def launcher_tags() -> dict[str, str]:
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def _proc_start(pid: int) -> tuple[float, str] | None:
    """(start time as a Unix timestamp, state letter) of a process, from /proc; None if
    unknown (no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration, ValueError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK"), fields[0]


def process_gone(pid: int, existed_at: float) -> bool:
    """Whether the process `pid` that existed at `existed_at` has ended.

    A zombie has ended; so has a pid now used by a process started later (pid reuse).
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # someone else's process: it exists
    known = _proc_start(pid)
    if known is None:
        return False
    started, state = known
    return state == "Z" or started > existed_at + 2


def why_dead(record: RunRecord, now: float | None = None) -> str | None:
    """Why a run that Dagster shows as live is in fact over; None when it may be working.

    Two proofs, nothing weaker: the process that ran it (same host, pid in its tags) is
    gone, or it has run past its `dagster/max_runtime`. A run launched elsewhere without
    a bound is left to Dagster's run monitoring.
    """
    now = now or time.time()
    tags = record.dagster_run.tags
    created = record.create_timestamp.timestamp()
    if tags.get(HOST_TAG) == socket.gethostname() and tags.get(PID_TAG, "").isdigit():
        pid = int(tags[PID_TAG])
        if process_gone(pid, created):
            return f"the process that ran it (pid {pid}) is gone"
    limit = tags.get(MAX_RUNTIME_TAG)
    started = record.start_time or created
    if limit and limit.replace(".", "", 1).isdigit() and now - started > float(limit):
        return f"it ran longer than its maximum of {float(limit):g} s"
    return None


def live_runs(instance: DagsterInstance, request_id: str | None = None) -> list[RunRecord]:
    tags = {REQUEST_TAG: request_id} if request_id else {}
    return list(instance.get_run_records(RunsFilter(
        job_name="subject_request", tags=tags, statuses=LIVE_RUN_STATUSES)))


def step_pids(instance: DagsterInstance, run_id: str) -> list[int]:
    """The step processes a run started (Dagster logs each worker's pid)."""
    pids = []
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.STEP_WORKER_STARTED):
        meta = entry.dagster_event.event_specific_data.metadata if entry.dagster_event else {}
        pid = getattr(meta.get("pid"), "value", None) if meta else None
        if pid and str(pid).isdigit():
            pids.append(int(pid))
    return pids


def reap(instance: DagsterInstance, request_id: str | None = None) -> list[tuple[str, str, str]]:
    """End the live-looking runs (of one request, or all) whose process died or that ran
    past their bound: marked failed with the reason, their pool slots freed.

    Found: `kill -9` of `hub request run` left its run STARTED forever, holding one slot
    per vendor pool; every later run and the nightly reconciliation waited in silence.
    Returns (run id, request id, reason) for each run ended.
    """
    ended = []
    for record in live_runs(instance, request_id):
        reason = why_dead(record)
        if reason is None:
            continue
        run = record.dagster_run
        instance.report_run_failed(run, f"ended by the hub: {reason}; its pool slots are "
                                        "freed and its unfinished tasks run again")
        instance.add_run_tags(run.run_id, {REAPED_TAG: reason[:200]})
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        ended.append((run.run_id, run.tags.get(REQUEST_TAG, "-"), reason))
    return ended


def orphan_steps(instance: DagsterInstance, run_id: str) -> list[int]:
    """Step processes of an ended run still alive on this host (they stop between actions)."""
    record = instance.get_run_record_by_id(run_id)
    if record is None or record.dagster_run.tags.get(HOST_TAG) != socket.gethostname():
        return []
    created = record.create_timestamp.timestamp()
    return [pid for pid in step_pids(instance, run_id) if not process_gone(pid, created)]


def release_tasks(request_id: str, why: str) -> list[str]:
    """Fail the request's running tasks once no live run of it is left (rule 1)."""
    store = open_store(load_settings())
    try:
        with store.session() as session:
            return ledger.release_orphaned(session, request_id, why)
    finally:
        store.close()


def recover(instance: DagsterInstance, request_id: str,
            say: Callable[[str], None] = lambda _line: None) -> None:
    """Before a request runs: end its dead runs, wait for their leftover step processes,
    then hand their running tasks back (failed, to be resumed from the journal)."""
    for run_id, _, reason in reap(instance, request_id):
        say(f"ended Dagster run {run_id} of {request_id}: {reason}")
        deadline = time.monotonic() + op_timeout_seconds() + 30
        while (left := orphan_steps(instance, run_id)) and time.monotonic() < deadline:
            say(f"waiting for its step process(es) {', '.join(map(str, left))} to stop")
            time.sleep(1)
    live = live_runs(instance, request_id)
    if live:
        run = live[0].dagster_run
        where = f" (pid {run.tags[PID_TAG]} on {run.tags[HOST_TAG]})" if PID_TAG in run.tags \
            else ""
        raise Refused(f"request {request_id} is already running in Dagster run "
                      f"{run.run_id}{where}; wait for it to end")
    released = release_tasks(request_id, "its run ended before the task finished; "
                                         "it runs again from its journal")
    if released:
        say(f"{', '.join(released)}: left running by a run that died; running again")


def outcome_line(result: JobExecutionResult, request_id: str, tasks: list) -> str | None:
    """The last line of `hub request run` when the run failed: true, whatever failed."""
    if result.success:
        return None
    failed = [t.system for t in tasks if TaskState(t.state) == TaskState.FAILED]
    if failed:
        return (f"{', '.join(failed)} failed; `hub request run {request_id}` again re-runs "
                "only " + ("that system" if len(failed) == 1 else "those"))
    for event in result.all_events:
        if event.event_type == DagsterEventType.STEP_FAILURE and event.step_failure_data:
            error = event.step_failure_data.error
            message = error.message.strip().splitlines()[0] if error else "no message"
            return f"the run failed in {event.step_key}: {message}"
    return f"the run failed before any system ran (Dagster run {result.run_id})"


def _verified(request_id: str) -> bool:
    store = open_store(load_settings())
    try:
        with store.session() as session:
            return ledger.get_request(session, request_id).state == RequestState.VERIFIED
    finally:
        store.close()


def pool_waits(instance: DagsterInstance, run_id: str) -> list[str]:
    """What the run's steps wait for: each pool whose slot another run holds."""
    lines = []
    for pool, info in instance.event_log_storage.get_concurrency_infos(list(SYSTEMS)).items():
        if not any(p.run_id == run_id and p.assigned_timestamp is None
                   for p in info.pending_steps):
            continue
        for holder in sorted({s.run_id for s in info.claimed_slots if s.run_id != run_id}):
            other = instance.get_run_by_id(holder)
            what = (f"request {other.tags[REQUEST_TAG]}" if other and REQUEST_TAG in other.tags
                    else other.job_name if other else "unknown run")
            lines.append(f"waiting for the {pool} slot held by run {holder} ({what})")
    return lines


# Held by the wait reporter while it queries Dagster and prints, and by each fork of an
# op process: a child forked while the reporter's thread was inside SQLite, a driver or
# stdout's buffer could inherit a lock that no thread of the child will ever release
# (pipelines/executor.py forks).
_QUIET = threading.Lock()
os.register_at_fork(before=_QUIET.acquire, after_in_parent=_QUIET.release,
                    after_in_child=_QUIET.release)


class WaitReporter:
    """Says, while `hub request run` waits, which pool slot it waits for and who holds it.

    Found: a run whose slots were held by a dead run waited 8 minutes without a word.
    Polls a separate instance handle every HUB_WAIT_REPORT_SECONDS (5) and prints each
    new situation once.
    """

    def __init__(self, instance: DagsterInstance, request_id: str,
                 say: Callable[[str], None]) -> None:
        self._ref, self._request_id, self._say = instance.get_ref(), request_id, say
        self._done = threading.Event()
        self._every = float(os.environ.get("HUB_WAIT_REPORT_SECONDS") or 5)
        self._thread = threading.Thread(target=self._watch, name="wait-reporter", daemon=True)

    def __enter__(self) -> "WaitReporter":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=10)

    def _mine(self, instance: DagsterInstance) -> str | None:
        for record in live_runs(instance, self._request_id):
            if record.dagster_run.tags.get(PID_TAG) == str(os.getpid()):
                return record.dagster_run.run_id
        return None

    def _watch(self) -> None:
        said: set[str] = set()
        with DagsterInstance.from_ref(self._ref) as instance:
            while not self._done.wait(self._every):
                with _QUIET:  # its queries and its printing: no fork copies them half-done
                    try:
                        run_id = self._mine(instance)
                        waits = pool_waits(instance, run_id) if run_id else []
                    except Exception:  # noqa: BLE001 - a report must never break the run
                        continue
                    for line in waits:
                        if line not in said:
                            self._say(line)
                said = set(waits)


def run_request(request_id: str, kind: str, instance: DagsterInstance, *,
                log_level: str | None = None,
                say: Callable[[str], None] = lambda _line: None) -> JobExecutionResult:
    """Run (or re-execute from failure) the job for one request and wait for it.

    First the request's runs whose process died are ended and their tasks handed back
    (`recover`). A verified request runs afresh: its first run, or the next round after
    an operator's decisions. One whose last run failed part-way re-executes from the
    failure, so only the systems that did not finish run again. The run carries this
    process's host and pid, so a later command can tell if it dies.
    """
    recover(instance, request_id, say)
    previous = instance.get_run_records(
        RunsFilter(job_name="subject_request", tags={REQUEST_TAG: request_id}), limit=1)
    job = reconstructable(subject_request_job)
    request = run_request_for(request_id, kind)
    tags = {**request.tags, **launcher_tags()}
    with WaitReporter(instance, request_id, say):
        if (previous and previous[0].dagster_run.status == DagsterRunStatus.FAILURE
                and not _verified(request_id)):
            options = ReexecutionOptions.from_failure(previous[0].dagster_run.run_id, instance)
            return execute_job(job, instance, reexecution_options=options, tags=tags)
        return execute_job(job, instance, run_config=_quiet(request.run_config, log_level),
                           tags=tags)
