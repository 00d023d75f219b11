"""Benchmark: subject requests through the Dagster job against the sandbox, with latency.

    python bench/fanout.py [--requests 200] [--latency-ms 100] [--people 1000]
    python bench/fanout.py --requests 12          # quick
    python bench/fanout.py --requests 0           # one request of each kind alone, only

The sandbox runs in child processes (one per vendor) with `latency_ms` added to every
vendor call; each vendor keeps its own rate limits (Typeform: 2 requests/s per
account, which the connector also keeps on its side). The hub writes to a temporary
SQLite database (PostgreSQL in a fresh schema when HUB_BENCH_POSTGRES_URL is set) and
a temporary Dagster instance with the repository's dagster.yaml. Steps:

1. reconciliation (every sync asset + `person_index`, in process, before the latency
   is switched on), so the index knows every seeded person;
2. `--requests` requests filed for distinct seeded people by e-mail (kinds in turn:
   access, opt_out, erasure), the plan op adds the phones of the person's index cluster;
3. one request of each kind **alone**, for people in all four systems, run as `hub
   request run` runs it: a fresh process (each of the daemon's runs is one) that has
   imported Dagster and the hub, then the clock, then `pipelines.launch.run_request`
   with the job's own executor (its op processes forked from the run, as shipped). Printed:
   the job's wall time, its slowest system op (STEP_START -> STEP_SUCCESS), the ratio
   against the aim (<= 1.3x) with PASS/MISS, where the job's time goes between its
   events (RUN_START, each op's start and end, RUN_SUCCESS), and the exact API calls
   (sandbox counts);
4. the **batch**: every request verified at once, then run through the job with
   `--in-flight` runs at a time (default 4) by worker processes that each call
   `execute_job` for one request after another, first in first out; they import Dagster
   and the hub before the clock starts (a deployed run worker is a fresh process per
   run and pays that import per run). Four in flight fill every vendor's pool (4 steps
   each), and the vendors' own limits are kept per call across processes by the
   connectors' gates (connectors/gates.py), so each vendor is busy at its rate while
   runs wait on it. More in flight only add waiting runs, whose coordinators poll for
   their ops' events (the batch prints what the coordinators cost in CPU).
   Op concurrency comes from the instance's pools. Time per request = `completed_at -
   verified_at` from the ledger; per-op times from the run's event log (STEP_START →
   STEP_SUCCESS). The aim: the batch's wall time over the busiest vendor's rate-limit
   floor (Typeform's answered calls at 2 per second) <= 1.3x, p95 reported beside it.

Runs use the job's own executor (pipelines/executor.py: one op process per system,
forked from the run's process, which has imported Dagster, the hub and the jobs), with
nothing added by the benchmark. Ops per run at a time: as the job ships
(one process per system), unless `--max-concurrent`.

Pools: as the repository's dagster.yaml gives them (`default_limit`: steps at once per
vendor); `--pools system=N,...` changes one. The vendors' limits do not depend on them:
Typeform's 2 requests/s per account and Pipedrive's 10 searches per 2 s are paces, and
Netvisor's one request at a time and Mailchimp's 10 connections are seats, each shared by
every process through the gates.

API calls. Measured per request and system from the op's own count (`api_calls` in the
op's output metadata, every attempt of the last try), checked against the sandbox's
per-route counters for the whole phase. The **minimum** is what the vendor's API needs
for the same result, the live lookup included (the design looks every subject up live
in every system). E = the subject's e-mails, P = phones (E.164), F = Typeform forms;
"found" = the records the job found and acted on (from the task's evidence):

- Pipedrive. Lookup: E + 2P exact searches (phones match on digits only, so a number
  needs its national 0... and international 358... digit strings). Access, per person:
  GET person (search results lack the fields) + its organisation if linked + 7 lists
  (deals, archived deals, activities, notes, leads, mail messages, files). Opt-out, per
  person: GET (marketing_status is not in search results), + PATCH and read-back when
  it must change. Erasure, per person: 5 lists (deals, archived deals, notes, leads,
  mail messages) + one write per deal unlinked, note and lead deleted + DELETE person +
  read-backs: the person, and each of the deal, note and lead lists written to.
- Mailchimp. Lookup: 1 audience list + A x E member reads by subscriber hash (A =
  audiences), each whole. `search-members` would find every audience in E calls, but it
  reads a search index that users have seen miss exact e-mails, and a lookup before an
  erasure must not miss anyone, so the exact read is the minimum here. Access, per
  member: tags, notes, activity, events (4). Opt-out, per member that must change: PATCH
  + read-back. Erasure, per member: delete-permanent + read-back.
- Typeform. Lookup: 1 form list + F x (E + P) response queries (no cross-form search).
  Access, per form with hits: its definition (question titles; the responses came with
  the query). Opt-out: nothing (no consent to withdraw). Erasure, per form with hits:
  DELETE by ids + read-back by ids.
- Netvisor. Lookup: E customer-list keyword searches + 1 getcustomer for the hits. Access,
  per customer: its sales invoice list (the customer was read by the lookup). Opt-out,
  per customer with a marketing field on: edit + read-back. Erasure, per customer:
  deletecustomer + read-back; when refused (invoices): + invoice list + edit + one edit
  per contact person + read-back; a contact person alone: delete + read-back.

Not a test: figures and verdicts for the issue. Nothing personal is printed: people are
chosen by index, requests shown by id and kind.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import queue
import random
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from connectors import registry  # noqa: E402

SYSTEMS = registry.names()  # the declared systems (connectors/registry.py)
KINDS = ("access", "opt_out", "erasure")
REPO = Path(__file__).resolve().parent.parent
DEFAULT_POOLS = ""  # as dagster.yaml gives them
AIM_RATIO = 1.3  # one request alone: the job's wall time over its slowest system op
AIM_BURST = 1.3  # a burst: its wall time over the busiest vendor's rate-limit floor
VENDOR_POOL_NOTES = {
    "pipedrive": "searches paced across processes under 10 per 2 s per company",
    "mailchimp": "10 connections per API key, seats shared across processes",
    "typeform": "paced across processes under 2 req/s per account",
    "netvisor": "one request at a time per customer environment, one shared seat",
}


@dataclass
class Subject:
    """One filed request. `idx` is the seeded person's index; no identifier is kept."""

    request_id: str
    kind: str
    idx: int
    emails: int = 0
    phones: int = 0


@dataclass
class RunFacts:
    """What one run's event log and the ledger say about it."""

    request_id: str
    kind: str
    run_id: str | None = None
    success: bool = False
    error: str | None = None
    launched: float | None = None  # epoch seconds, when the worker called execute_job
    finished: float | None = None
    verified_at: datetime | None = None
    completed_at: datetime | None = None
    state: str | None = None
    step_start: dict[str, float] = field(default_factory=dict)
    step_spawn: dict[str, float] = field(default_factory=dict)  # STEP_WORKER_STARTING
    step_end: dict[str, float] = field(default_factory=dict)
    run_start: float | None = None  # RUN_START, RUN_SUCCESS/FAILURE in the event log
    run_end: float | None = None
    retries: int = 0
    calls: dict[str, int] = field(default_factory=dict)  # op-reported, per system
    minimum: dict[str, int] = field(default_factory=dict)  # per system

    @property
    def seconds(self) -> float | None:
        if self.verified_at is None or self.completed_at is None:
            return None
        return (self.completed_at - self.verified_at).total_seconds()

    @property
    def wall(self) -> float | None:
        """The job's wall time: `run_request` (or `execute_job`) called to returned."""
        if self.launched is None or self.finished is None:
            return None
        return self.finished - self.launched

    @property
    def ratio(self) -> float:
        """Job wall over the slowest system op (NaN when a figure is missing)."""
        ops = self.system_ops
        return (self.wall or math.nan) / max(ops.values()) if ops else math.nan

    @property
    def system_ops(self) -> dict[str, float]:
        out = {}
        for system in SYSTEMS:
            key = f"{system}_task"
            if key in self.step_start and key in self.step_end:
                out[system] = self.step_end[key] - self.step_start[key]
        return out

    @property
    def fanout(self) -> float | None:
        """Plan done → last system op done: the parallel part of the run."""
        ends = [self.step_end.get(f"{s}_task") for s in SYSTEMS]
        if "plan" not in self.step_end or None in ends:
            return None
        return max(e for e in ends if e is not None) - self.step_end["plan"]

    @property
    def whole(self) -> float | None:
        """Plan started → complete done."""
        if "plan" not in self.step_start or "complete" not in self.step_end:
            return None
        return self.step_end["complete"] - self.step_start["plan"]

    @property
    def worker_start(self) -> float:
        """Longest time of a system op from launching its process to STEP_START."""
        return max((self.step_start[f"{s}_task"] - self.step_spawn[f"{s}_task"]
                    for s in SYSTEMS if f"{s}_task" in self.step_start
                    and f"{s}_task" in self.step_spawn), default=0.0)

    @property
    def slot_wait(self) -> float:
        """Longest wait of a system op between the plan's end and its own start."""
        if "plan" not in self.step_end:
            return 0.0
        waits = [self.step_start[f"{s}_task"] - self.step_end["plan"] for s in SYSTEMS
                 if f"{s}_task" in self.step_start]
        return max(waits, default=0.0)


# --------------------------------------------------------------------------- helpers


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def fmt_s(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.1f}s" if value < 600 else f"{value / 60:.1f}min"


def sandbox_calls(urls: dict[str, str]) -> dict[str, Counter[tuple[str, str, int]]]:
    out: dict[str, Counter[tuple[str, str, int]]] = {}
    for vendor, url in urls.items():
        body = httpx.get(f"{url}/__sandbox/calls", timeout=30).json()
        out[vendor] = Counter({(c["method"], c["route"], c["status"]): c["count"]
                               for c in body["calls"]})
    return out


def reset_calls(urls: dict[str, str]) -> None:
    for url in urls.values():
        httpx.delete(f"{url}/__sandbox/calls", timeout=30).raise_for_status()


def set_latency(urls: dict[str, str], latency_ms: float) -> None:
    for url in urls.values():
        httpx.put(f"{url}/__sandbox/faults", json={"latency_ms": latency_ms},
                  timeout=30).raise_for_status()


def parse_pools(text: str) -> dict[str, int]:
    import yaml

    shipped = yaml.safe_load((REPO / "dagster.yaml").read_text("utf-8"))
    pools = dict.fromkeys(SYSTEMS, int(shipped["concurrency"]["pools"]["default_limit"]))
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name.strip() not in pools or not value.strip().isdigit():
            raise SystemExit(f"--pools: expected system=N with a system of {SYSTEMS}, "
                             f"got {part!r}")
        pools[name.strip()] = int(value)
    return pools


# ------------------------------------------------------------------------ the setup


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="hub-fanout-"))
        self.pg_schema: str | None = None
        self.db_url = self._database()
        self.urls: dict[str, str] = {}
        self.instance: Any = None
        self.store: Any = None
        self.forms = 0
        self.audiences = 0
        self.coordinator_cpu = 0.0
        self.steps_cpu = 0.0
        self.sandbox_cpu = 0.0
        self.emulators: list[int] = []  # the sandbox's server processes

    def _database(self) -> str:
        base = os.environ.get("HUB_BENCH_POSTGRES_URL", "").strip()
        if not base:
            return f"sqlite:///{self.tmp / 'hub.db'}"
        from sqlalchemy import create_engine, make_url, text

        self.pg_schema = f"bench_{secrets.token_hex(6)}"
        admin = create_engine(base)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{self.pg_schema}"'))
        admin.dispose()
        url = make_url(base).update_query_dict({"options": f"-csearch_path={self.pg_schema}"})
        return url.render_as_string(hide_password=False)

    def db_label(self) -> str:
        return "PostgreSQL (fresh schema)" if self.pg_schema else "temporary SQLite"

    def cleanup(self) -> None:
        if self.store is not None:
            self.store.close()
        if self.pg_schema:
            from sqlalchemy import create_engine, text

            admin = create_engine(os.environ["HUB_BENCH_POSTGRES_URL"])
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{self.pg_schema}" CASCADE'))
            admin.dispose()
        # The exports hold personal data (of seeded people, but still): nothing stays.
        shutil.rmtree(self.tmp, ignore_errors=True)

    def environment(self, box_env: dict[str, str]) -> None:
        """Everything the ops read from the environment, set before any op process."""
        os.environ.update(box_env)
        os.environ["HUB_HOME"] = str(self.tmp / "home")
        os.environ["HUB_DATABASE_URL"] = self.db_url
        os.environ["HUB_SECRET"] = secrets.token_urlsafe(48)
        os.environ.pop("HUB_POLICY_FILE", None)  # the packaged default policy
        dagster_home = self.tmp / "dagster"
        dagster_home.mkdir()
        (dagster_home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text("utf-8"),
                                                   "utf-8")
        os.environ["DAGSTER_HOME"] = str(dagster_home)

    def open(self) -> None:
        from dagster import DagsterInstance

        from hub.settings import load_settings
        from hub.store import open_store

        self.store = open_store(load_settings())
        self.instance = DagsterInstance.get()
        for pool, limit in parse_pools(self.args.pools).items():
            self.instance.event_log_storage.set_concurrency_slots(pool, limit)

    def reconcile(self) -> float:
        from dagster import materialize

        from pipelines.reconciliation import SYNC_ASSETS, person_index
        from pipelines.resources import ConnectorsResource, HubResource

        start = time.perf_counter()
        result = materialize(
            [*SYNC_ASSETS, person_index],
            resources={"hub": HubResource(), "connectors": ConnectorsResource()},
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        )
        if not result.success:
            raise SystemExit("the reconciliation failed; see the errors above")
        return time.perf_counter() - start

    def count_audiences(self) -> int:
        response = httpx.get(f"{os.environ['MAILCHIMP_BASE_URL']}/lists",
                             params={"count": 1000, "fields": "total_items"},
                             auth=("bench", os.environ["MAILCHIMP_API_KEY"]), timeout=30)
        response.raise_for_status()
        return int(response.json()["total_items"])

    def count_forms(self) -> int:
        headers = {"authorization": f"Bearer {os.environ['TYPEFORM_TOKEN']}"}
        for _ in range(20):
            response = httpx.get(f"{self.urls['typeform']}/forms", params={"page_size": 200},
                                 headers=headers, timeout=30)
            if response.status_code != 429:  # the vendor's 2 req/s, right after the sync
                response.raise_for_status()
                return int(response.json()["total_items"])
            time.sleep(1)
        raise SystemExit("Typeform kept answering 429 to GET /forms")

    # ---------------------------------------------------------------- requests

    def file(self, people: list[Any], picks: list[tuple[int, str]]) -> list[Subject]:
        from connectors.base import wanted
        from hub import ledger
        from hub.domain import Identifier, IdentifierKind
        from hub.ledger import RequestKind
        from hub.scope import search_identifiers

        subjects = []
        with self.store.session() as session:
            for idx, kind in picks:
                row = ledger.create_request(
                    session, self.store.hasher, RequestKind(kind),
                    [Identifier(IdentifierKind.EMAIL, people[idx].email)], origin="bench")
                subjects.append(Subject(row.id, kind, idx))
        with self.store.session() as session:
            for subject in subjects:
                emails, phones = wanted(search_identifiers(session, subject.request_id))
                subject.emails, subject.phones = len(emails), len(phones)
        return subjects

    def verify(self, subjects: list[Subject]) -> None:
        from hub import ledger

        with self.store.session() as session:
            for subject in subjects:
                ledger.verify(session, subject.request_id, actor="bench")

    def run_one(self, subject: Subject, max_concurrent: int | None) -> RunFacts:
        """One request alone, as `hub request run` runs it: a fresh process (as each run
        of the daemon is) that has imported Dagster and the hub, then the clock, then
        `pipelines.launch.run_request` with the job's own executor, as shipped."""
        facts = RunFacts(subject.request_id, subject.kind)
        ctx = multiprocessing.get_context("spawn")
        results: Any = ctx.Queue()
        process = ctx.Process(target=single_main, name="fanout-single",
                              args=(results, subject.request_id, subject.kind, max_concurrent))
        process.start()
        try:
            message = results.get(timeout=3600)
        finally:
            process.join(timeout=60)
        if message[0] == "failed":
            facts.error = message[1]
            return facts
        (facts.run_id, facts.success, facts.error, facts.launched,
         facts.finished) = message[1:]
        return facts

    def run_batch(self, subjects: list[Subject]) -> tuple[list[RunFacts], float]:
        """Every request verified at once, then run by `--in-flight` worker processes."""
        ctx = multiprocessing.get_context("spawn")
        jobs: Any = ctx.Queue()
        results: Any = ctx.Queue()
        executor = executor_config(self.args.max_concurrent)
        # Not daemonic: a worker's runs start op processes of their own.
        workers = [ctx.Process(target=worker_main, args=(jobs, results, executor, os.getpid()),
                               name=f"fanout-worker-{i}")
                   for i in range(self.args.in_flight)]
        for worker in workers:
            worker.start()
        try:
            for _ in workers:  # warm: Dagster and the hub imported
                message = results.get(timeout=600)
                if message[0] != "ready":
                    raise SystemExit(f"a worker failed to start: {message}")
            self.verify(subjects)
            start, sandbox_cpu = time.time(), _cpu_of(self.emulators)
            for subject in subjects:  # FIFO, in verified order
                jobs.put((subject.request_id, subject.kind))
            for _ in workers:
                jobs.put(None)
            by_id = {s.request_id: RunFacts(s.request_id, s.kind) for s in subjects}
            progress = Progress(len(subjects))
            waiting, cpu_reports, wall = len(subjects), 0, 0.0
            while waiting or cpu_reports < len(workers):
                try:
                    message = results.get(timeout=10)
                except queue.Empty:
                    if not any(w.is_alive() for w in workers):
                        if waiting:
                            print(f"  every worker has exited; {waiting} runs never reported")
                        break
                    continue
                if message[0] == "crashed":
                    print(f"  a worker crashed: {message[1]}")
                    cpu_reports += 1
                elif message[0] == "cpu":  # a worker's CPU in the batch, and its steps'
                    self.coordinator_cpu += message[1]
                    self.steps_cpu += message[2]
                    cpu_reports += 1
                else:
                    _, request_id, run_id, success, error, launched, finished = message
                    facts = by_id[request_id]
                    (facts.run_id, facts.success, facts.error, facts.launched,
                     facts.finished) = run_id, success, error, launched, finished
                    waiting -= 1
                    progress.tick()
                    if not waiting:
                        wall = time.time() - start
                        self.sandbox_cpu = _cpu_of(self.emulators) - sandbox_cpu
            wall = wall or time.time() - start
        finally:
            for worker in workers:
                worker.join(timeout=30)
                if worker.is_alive():
                    worker.terminate()
        exits = [w.exitcode for w in workers if w.exitcode]
        if exits:
            print(f"  {len(exits)} workers exited with codes {exits}")
        return [by_id[s.request_id] for s in subjects], wall

    # ---------------------------------------------------------------- facts

    def collect(self, subjects: list[Subject], runs: list[RunFacts]) -> None:
        """Ledger times and states, the run's step times and op call counts, minima."""
        from dagster import DagsterEventType

        from hub import ledger

        by_id = {s.request_id: s for s in subjects}
        for facts in runs:
            with self.store.session() as session:
                row = ledger.get_request(session, facts.request_id)
                facts.verified_at, facts.completed_at = row.verified_at, row.completed_at
                facts.state = row.state
                tasks = {t.system: t for t in ledger.tasks_of(session, facts.request_id)}
            if facts.run_id is None:
                continue
            for entry in self.instance.all_logs(facts.run_id):
                event = entry.dagster_event
                if event is None:
                    continue
                kind = event.event_type
                if kind == DagsterEventType.RUN_START:
                    facts.run_start = entry.timestamp
                elif kind in (DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE):
                    facts.run_end = entry.timestamp
                if entry.step_key is None:
                    continue
                if kind == DagsterEventType.STEP_START:
                    facts.step_start.setdefault(entry.step_key, entry.timestamp)
                elif kind == DagsterEventType.STEP_WORKER_STARTING:
                    facts.step_spawn.setdefault(entry.step_key, entry.timestamp)
                elif kind == DagsterEventType.STEP_SUCCESS:
                    facts.step_end[entry.step_key] = entry.timestamp
                elif kind == DagsterEventType.STEP_UP_FOR_RETRY:
                    facts.retries += 1
                elif kind == DagsterEventType.STEP_OUTPUT:
                    calls = event.event_specific_data.metadata.get("api_calls")
                    system = entry.step_key.removesuffix("_task")
                    if calls is not None and system in SYSTEMS:
                        facts.calls[system] = int(calls.value)
            facts.minimum = self.minimum(by_id[facts.request_id], tasks)

    def minimum(self, subject: Subject, tasks: dict[str, Any]) -> dict[str, int]:
        """The model in the module docstring, from what each system's task found."""
        e, p, kind = subject.emails, subject.phones, subject.kind
        out: dict[str, int] = {}
        for system in SYSTEMS:
            task = tasks.get(system)
            records = ((task.evidence or {}).get("records") or []) if task else []
            out[system] = MINIMA[system](self, kind, e, p, records)
        return out

    def pipedrive_org(self, person_id: str) -> bool:
        body = httpx.get(f"{self.urls['pipedrive']}/__sandbox/records/person/{person_id}",
                         timeout=30).json()
        org = body.get("org_id") if isinstance(body, dict) else None
        if isinstance(org, dict):
            org = org.get("value")
        return bool(org)

    def netvisor_contacts(self, key: str) -> int:
        body = httpx.get(f"{self.urls['netvisor']}/__sandbox/records/customer/{key}",
                         timeout=30).json()
        return len(body.get("contacts") or []) if isinstance(body, dict) else 0


# ------------------------------------------------------------------ running the job


def executor_config(max_concurrent: int | None) -> dict[str, Any]:
    """The job's own executor config (pipelines/executor.py); max_concurrent None keeps
    its default (one process per system), 0 is Dagster's (one per core)."""
    return {} if max_concurrent is None else {"max_concurrent": max_concurrent}


def run_config(request_id: str, kind: str, executor: dict[str, Any]
               ) -> tuple[dict[str, Any], dict[str, str]]:
    """The sensor's run request, with the executor's settings and quiet logs."""
    from pipelines.sensors import run_request_for

    request = run_request_for(request_id, kind)
    config = {
        **request.run_config,
        "execution": {"config": executor},
        "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
    }
    return config, dict(request.tags)


def execute_request(instance: Any, request_id: str, kind: str, executor: dict[str, Any]
                    ) -> tuple[str | None, bool, str | None, float, float]:
    """Run the subject_request job for one request and wait: (run id, success, error,
    launched, finished)."""
    from dagster import execute_job, reconstructable

    from pipelines.launch import subject_request_job

    launched = time.time()
    config, tags = run_config(request_id, kind, executor)
    try:
        result = execute_job(reconstructable(subject_request_job), instance,
                             run_config=config, tags=tags)
        return result.run_id, result.success, None, launched, time.time()
    except Exception as exc:  # noqa: BLE001 - reported, the batch goes on
        return None, False, f"{type(exc).__name__}: {str(exc)[:200]}", launched, time.time()


def single_main(results: Any, request_id: str, kind: str, max_concurrent: int | None) -> None:
    """One request alone in a fresh process: `hub request run`'s own call, timed."""
    try:
        from dagster import DagsterInstance

        from pipelines.launch import run_request

        with DagsterInstance.get() as instance:
            if max_concurrent is not None:  # not as shipped: the per-core comparison
                results.put(("done", *execute_request(instance, request_id, kind,
                                                      executor_config(max_concurrent))))
                return
            launched = time.time()
            result = run_request(request_id, kind, instance, log_level="CRITICAL")
            results.put(("done", result.run_id, result.success, None, launched, time.time()))
    except Exception as exc:  # noqa: BLE001 - the parent reports it
        results.put(("failed", f"{type(exc).__name__}: {str(exc)[:300]}"))


def worker_main(jobs: Any, results: Any, executor: dict[str, Any], parent: int) -> None:
    """A batch worker: one run at a time, requests taken from the shared queue.

    Processes, not threads: Dagster configures Python logging while it sets a run up
    (`logging.config.dictConfig`), which deadlocks against another thread's run.
    """
    try:
        from dagster import DagsterInstance

        import pipelines.definitions  # noqa: F401 - imported once, before the clock

        instance = DagsterInstance.get()
    except Exception as exc:  # noqa: BLE001 - the parent reports it
        results.put(("failed", f"{type(exc).__name__}: {exc}"))
        return
    cpu_at_start = _worker_cpu()
    results.put(("ready",))
    try:
        # Requests already queued are not run once the benchmark itself has gone.
        while os.getppid() == parent and (item := jobs.get()) is not None:
            request_id, kind = item
            results.put(("done", request_id, *execute_request(instance, request_id, kind,
                                                              executor)))
    except BaseException as exc:  # noqa: BLE001 - the parent must hear of it
        results.put(("crashed", f"{type(exc).__name__}: {str(exc)[:300]}"))
        raise
    coordinator, steps = (b - a for a, b in zip(cpu_at_start, _worker_cpu(), strict=True))
    results.put(("cpu", coordinator, steps))


def _worker_cpu() -> tuple[float, float]:
    """CPU seconds of this worker (its runs' coordinators) and of the op processes its
    runs forked and reaped."""
    spent = os.times()
    return spent.user + spent.system, spent.children_user + spent.children_system


def _cpu_of(pids: list[int]) -> float:
    """CPU seconds of these processes (the emulators), from /proc."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # utime, stime: fields 14-15 of stat, 12-13 after the name
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------- the minima


def _recs(records: list[dict[str, Any]], kind: str, *actions: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("kind") == kind
            and (not actions or r.get("action") in actions)]


def min_pipedrive(bench: Bench, kind: str, e: int, p: int, records: list[dict]) -> int:
    n = e + 2 * p
    if kind == "access":
        for person in _recs(records, "person", "exported"):
            n += 1 + 7 + (1 if bench.pipedrive_org(person["record_id"]) else 0)
    elif kind == "opt_out":
        for person in _recs(records, "person"):
            n += 1
            if person.get("action") == "unsubscribed" and person.get("status_code"):
                n += 2  # PATCH + read-back
    else:
        # 5 lists + DELETE + read-back per person; one write per related record and
        # one list read-back per related kind written (the lists are by person).
        n += 7 * len(_recs(records, "person", "deleted", "anonymised"))
        for kind_, actions in (("deal", ("unlinked", "deleted")), ("note", ("deleted",)),
                               ("lead", ("deleted",))):
            written = len(_recs(records, kind_, *actions))
            n += written + (1 if written else 0)
    return n


def min_mailchimp(bench: Bench, kind: str, e: int, p: int, records: list[dict]) -> int:
    members = _recs(records, "member")
    lookup = 1 + bench.audiences * e if e else 0
    if kind == "access":
        return lookup + 4 * len(_recs(records, "member", "exported"))
    if kind == "opt_out":
        changed = [m for m in members if m.get("action") == "unsubscribed"
                   and m.get("status_code")]
        return lookup + 2 * len(changed)
    return lookup + 2 * len(_recs(records, "member", "permanently_deleted", "deleted"))


def min_typeform(bench: Bench, kind: str, e: int, p: int, records: list[dict]) -> int:
    n = 1 + bench.forms * (e + p)
    if kind == "access":
        n += len({r.get("container") for r in _recs(records, "response", "exported")})
    elif kind == "erasure":
        n += 2 * len({r.get("container") for r in _recs(records, "response", "deleted")})
    return n


def min_netvisor(bench: Bench, kind: str, e: int, p: int, records: list[dict]) -> int:
    n = e + (1 if records else 0)
    customers = _recs(records, "customer")
    if kind == "access":
        n += len(_recs(records, "customer", "exported"))
    elif kind == "opt_out":
        n += 2 * len([r for r in records if r.get("action") == "unsubscribed"])
    else:
        for c in customers:
            if c.get("action") == "deleted":
                n += 2
            elif c.get("action") == "retained":
                n += 4 + bench.netvisor_contacts(c["record_id"])
        alone = [r for r in _recs(records, "contact_person")
                 if not str(r.get("detail") or "").startswith("with its customer")]
        n += 2 * len([r for r in alone if r.get("action") in ("deleted", "anonymised")])
    return n


MINIMA = {"pipedrive": min_pipedrive, "mailchimp": min_mailchimp, "typeform": min_typeform,
          "netvisor": min_netvisor}


# ------------------------------------------------------------------------- reports


def calls_total(diff: dict[str, Counter]) -> int:
    return sum(sum(c.values()) for c in diff.values())


def diff_calls(after: dict[str, Counter], before: dict[str, Counter]) -> dict[str, Counter]:
    return {v: after[v] - before.get(v, Counter()) for v in after}


def route_line(counter: Counter, per: int = 1) -> str:
    merged: Counter[str] = Counter()
    for (method, route, status), n in counter.items():
        label = f"{method} {route}" + (f" [{status}]" if status >= 400 or status == 0 else "")
        merged[label] += n
    return ", ".join(f"{label} x{n / per:.2f}".replace(".00", "") for label, n in
                     sorted(merged.items(), key=lambda kv: (-kv[1], kv[0])))


def pool_gaps(runs: list[RunFacts], system: str) -> list[float]:
    """Idle time of a one-slot pool between one op's end and the next op's start."""
    spans = sorted((r.step_start[f"{system}_task"], r.step_end[f"{system}_task"])
                   for r in runs if f"{system}_task" in r.step_start
                   and f"{system}_task" in r.step_end)
    return [max(0.0, b[0] - a[1]) for a, b in zip(spans, spans[1:], strict=False)]


def where(facts: RunFacts) -> list[float | None]:
    """The job's wall time cut at its events: what Dagster adds between the ops."""
    tasks = [f"{s}_task" for s in SYSTEMS]
    marks = [facts.launched, facts.run_start, facts.step_start.get("plan"),
             facts.step_end.get("plan"),
             max((facts.step_start[t] for t in tasks if t in facts.step_start), default=None),
             max((facts.step_end[t] for t in tasks if t in facts.step_end), default=None),
             facts.step_start.get("complete"), facts.step_end.get("complete"),
             facts.run_end, facts.finished]
    return [b - a if a is not None and b is not None else None
            for a, b in zip(marks, marks[1:], strict=False)]


def print_single(label: str, rows: list[tuple[RunFacts, dict[str, Counter]]],
                 calls: bool) -> None:
    print(f"\nOne request alone, {label} (job wall = `run_request` called -> returned in "
          "a fresh process; fan-out = plan done -> last system done; op start lag = plan "
          "done -> last system op started, of which process = its process launch -> "
          "STEP_START; ratio = job wall / slowest system op; calls: sandbox counts):")
    print(f"  {'kind':8s} {'job wall':>9s} {'verified->done':>14s} {'plan->complete':>14s} "
          f"{'fan-out':>8s} {'op start lag':>12s} {'(process)':>9s} {'slowest system':>20s} "
          f"{'sum of systems':>15s} {'ratio':>6s} {'calls':>6s} {'min':>5s}")
    for facts, diff in rows:
        ops = facts.system_ops
        slowest = max(ops.items(), key=lambda kv: kv[1]) if ops else ("-", math.nan)
        ratio = facts.ratio
        print(f"  {facts.kind:8s} {fmt_s(facts.wall):>9s} {fmt_s(facts.seconds):>14s} "
              f"{fmt_s(facts.whole):>14s} "
              f"{fmt_s(facts.fanout):>8s} {fmt_s(facts.slot_wait):>12s} "
              f"{fmt_s(facts.worker_start):>9s} "
              f"{slowest[0] + ' ' + fmt_s(slowest[1]):>20s} "
              f"{fmt_s(sum(ops.values())):>15s} {ratio:6.2f} {calls_total(diff):6d} "
              f"{sum(facts.minimum.values()):5d}"
              + ("" if facts.success else f"   FAILED {facts.error or facts.state}"))
    print("  where the job's time goes (event log): call -> RUN_START, -> plan's STEP_START, "
          "plan, -> last system op's STEP_START, system ops, -> complete's STEP_START, "
          "complete, -> RUN_SUCCESS, -> call returned:")
    for facts, _ in rows:
        print(f"    {facts.kind:8s} " + " | ".join(fmt_s(x) for x in where(facts)))
    if not calls:
        return
    print("  calls per system (sandbox) vs minimum, and where they go:")
    for facts, diff in rows:
        for system in SYSTEMS:
            n = sum(diff.get(system, Counter()).values())
            print(f"    {facts.kind:8s} {system:10s} {n:3d} vs {facts.minimum.get(system, 0):3d}"
                  f"  {fmt_s(facts.system_ops.get(system))}: "
                  f"{route_line(diff.get(system, Counter()))}")


def print_batch(bench: Bench, subjects: list[Subject], runs: list[RunFacts],
                diff: dict[str, Counter], wall: float) -> dict[str, Any]:
    done = [r for r in runs if r.seconds is not None and r.success]
    # A run that found candidate records (a shared phone, a namesake) ends with the
    # request waiting for an operator's decision, as designed (rule 9): not a failure.
    review = [r for r in runs if r.success and r.seconds is None
              and r.state == "awaiting_review"]
    failed = [r for r in runs if r not in done and r not in review]
    secs = [r.seconds for r in done if r.seconds is not None]
    print(f"\nBatch: {len(runs)} requests, all verified at once, {bench.args.in_flight} runs "
          f"in flight; wall {fmt_s(wall)} = {len(done) / wall * 60:.1f} requests/min; "
          f"{len(review)} waiting for an operator's review, {len(failed)} failed; the run "
          f"coordinators used {bench.coordinator_cpu / wall:.2f} CPU cores on average")
    hub_cpu = bench.coordinator_cpu + bench.steps_cpu
    cores = os.cpu_count() or 1
    print(f"  CPU in the batch: the hub {hub_cpu:.0f} s ({hub_cpu / len(runs):.1f} s per "
          f"request: coordinators {bench.coordinator_cpu:.0f} s, op processes "
          f"{bench.steps_cpu:.0f} s), the emulators {bench.sandbox_cpu:.0f} s; on "
          f"{cores} cores that alone takes {(hub_cpu + bench.sandbox_cpu) / cores:.1f} s "
          "of the wall time")
    for r in failed[:10]:
        print(f"  failed: {r.request_id} {r.kind} state {r.state} "
              f"{r.error or ''}".rstrip())
    print(f"  {'kind':8s} {'n':>4s} {'verified->completed':>20s} {'p95':>8s} {'max':>8s} "
          f"{'plan->complete':>15s} {'p95':>7s} {'fan-out/slowest':>16s} {'p95':>6s} "
          f"{'slot wait p95':>14s}")
    for kind in (*KINDS, "all"):
        rows = [r for r in done if kind in ("all", r.kind)]
        if not rows:
            continue
        s = [r.seconds for r in rows if r.seconds is not None]
        whole = [r.whole for r in rows if r.whole is not None]
        ratios = [r.fanout / max(r.system_ops.values()) for r in rows
                  if r.fanout is not None and r.system_ops]
        waits = [r.slot_wait for r in rows]
        print(f"  {kind:8s} {len(rows):4d} {fmt_s(statistics.median(s)):>20s} "
              f"{fmt_s(pct(s, 95)):>8s} {fmt_s(max(s)):>8s} "
              f"{fmt_s(statistics.median(whole)):>15s} {fmt_s(pct(whole, 95)):>7s} "
              f"{statistics.median(ratios):16.2f} {pct(ratios, 95):6.2f} "
              f"{fmt_s(pct(waits, 95)):>14s}")
    print("  (plan->complete: the request's own run, from its plan op's start; slot wait: "
          "its longest wait for a vendor pool slot after the plan)")

    # System op durations: the serial vendors bound the batch.
    print("\n  System ops in the batch (STEP_START -> STEP_SUCCESS):")
    print(f"  {'system':10s} {'median':>8s} {'p95':>8s} {'sum':>9s} {'pool':>5s} "
          f"{'sum/pool':>9s} {'share of wall':>14s} {'slot idle between ops':>22s}")
    pools = parse_pools(bench.args.pools)
    bound = 0.0
    for system in SYSTEMS:
        d = [r.system_ops[system] for r in done if system in r.system_ops]
        if not d:
            continue
        serial = sum(d) / pools[system]
        bound = max(bound, serial)
        gaps = pool_gaps(done, system) if pools[system] == 1 else []
        idle = (f"median {fmt_s(statistics.median(gaps))}, sum {fmt_s(sum(gaps))}"
                if gaps else "-")
        print(f"  {system:10s} {fmt_s(statistics.median(d)):>8s} {fmt_s(pct(d, 95)):>8s} "
              f"{fmt_s(sum(d)):>9s} {pools[system]:5d} {fmt_s(serial):>9s} "
              f"{serial / wall:14.0%} {idle:>22s}")

    # API calls per request against the minimum.
    op_total = sum(sum(r.calls.values()) for r in runs)
    sandbox_total = calls_total(diff)
    retried = sum(r.retries for r in runs)
    print(f"\n  API calls per request (ops' own counts; sandbox counted {sandbox_total:,d}, "
          f"the ops {op_total:,d}"
          + ("" if sandbox_total == op_total else
             f": {sandbox_total - op_total:+,d} in failed attempts or outside the ops")
          + f"; {retried} op retries):")
    print(f"  {'kind':8s} " + " ".join(f"{s:>16s}" for s in SYSTEMS)
          + f" {'total':>16s} {'ratio':>6s}")
    totals: dict[str, tuple[float, float]] = {}
    for kind in (*KINDS, "all"):
        rows = [r for r in done if kind in ("all", r.kind) and r.calls]
        if not rows:
            continue
        cells = []
        for system in SYSTEMS:
            m = statistics.fmean(r.calls.get(system, 0) for r in rows)
            lo = statistics.fmean(r.minimum.get(system, 0) for r in rows)
            cells.append(f"{m:6.1f} vs {lo:5.1f}")
        m = statistics.fmean(sum(r.calls.values()) for r in rows)
        lo = statistics.fmean(sum(r.minimum.values()) for r in rows)
        totals[kind] = (m, lo)
        print(f"  {kind:8s} " + " ".join(f"{c:>16s}" for c in cells)
              + f" {m:6.1f} vs {lo:5.1f} {m / lo if lo else math.nan:6.2f}")
    limited = {v: sum(n for (_, _, status), n in c.items() if status == 429)
               for v, c in diff.items()}
    if any(limited.values()):
        print("  429s from the vendors: " + ", ".join(f"{v} {n}" for v, n in limited.items()
                                                   if n))
    print("  calls per request by route (sandbox, whole batch):")
    for system in SYSTEMS:
        print(f"    {system:10s} {route_line(diff.get(system, Counter()), len(runs))}")
    typeform_ok = sum(n for (_, _, status), n in diff.get("typeform", Counter()).items()
                      if status != 429)
    typeform_min = sum(r.minimum.get("typeform", 0) for r in runs)
    return {"done": done, "failed": failed, "review": review, "secs": secs, "totals": totals,
            "typeform_floor": typeform_ok / 2.0, "typeform_min_floor": typeform_min / 2.0,
            "bound": bound}


def verdicts(single_sets: list[tuple[str, list[tuple[RunFacts, dict[str, Counter]]]]],
             batch: dict[str, Any], wall: float) -> None:
    print("\nAims:")
    secs = batch["secs"]
    p95 = pct(secs, 95) if secs else math.nan
    floor = batch["typeform_floor"]
    ratio = wall / floor if floor else math.nan
    verdict = "PASS" if ratio <= AIM_BURST and not batch["failed"] else "MISS"
    print(f"  the burst: wall {fmt_s(wall)} / the busiest vendor's rate-limit floor "
          f"{fmt_s(floor)} = {ratio:.3f}x (aim <= {AIM_BURST}x): {verdict}")
    print(f"    the floor: Typeform's answered calls at its 2 requests/s per account "
          f"({fmt_s(batch['typeform_min_floor'])} at the minimum calls); the busiest "
          f"pool's summed op time is {fmt_s(batch['bound'])}")
    print(f"    verified->completed: p95 {fmt_s(p95)}, median "
          f"{fmt_s(statistics.median(secs) if secs else None)}; "
          f"{len(batch['review'])} waiting for an operator's review, "
          f"{len(batch['failed'])} failed")
    m, lo = batch["totals"].get("all", (math.nan, math.nan))
    print(f"  API calls at the vendors' minimum: {m:.1f} per request vs {lo:.1f} = "
          f"{m / lo if lo else math.nan:.2f}x (aim 1.00x): {'PASS' if m <= lo else 'MISS'}")
    single_verdicts(single_sets)
    done = batch["done"]
    br = [r.fanout / max(r.system_ops.values()) for r in done
          if r.fanout is not None and r.system_ops]
    if br:
        print(f"    in the batch (slot waits behind other requests included): median "
              f"{statistics.median(br):.2f}x, p95 {pct(br, 95):.2f}x")


def single_verdicts(single_sets: list[tuple[str, list[tuple[RunFacts, dict[str, Counter]]]]]
                    ) -> None:
    """The aim for one request alone: the job's wall time over its slowest system op."""
    for label, rows in single_sets:
        ratios = [f.ratio for f, _ in rows]
        worst = max(ratios, default=math.nan)
        verdict = "PASS" if worst <= AIM_RATIO and all(f.success for f, _ in rows) else "MISS"
        print(f"  one request alone, {label}: job wall / slowest system op, worst kind "
              f"{worst:.3f}x (aim <= {AIM_RATIO}x): {verdict}")


# ---------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=100)
    parser.add_argument("--people", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--in-flight", type=int, default=4,
                        help="runs at a time (enough to fill each vendor's pool of 4)")
    parser.add_argument("--pools", default=DEFAULT_POOLS,
                        help="pool limits other than dagster.yaml's, e.g. netvisor=1")
    parser.add_argument("--max-concurrent", type=int, default=None,
                        help="ops at a time within a run; default: as the job ships (one "
                             "process per system); 0 = Dagster's default (one per core)")
    args = parser.parse_args()
    settings: list[int | None] = [args.max_concurrent]  # the single runs
    if args.people < args.requests + 3 * len(settings) + 4:
        raise SystemExit("--people is too small for that many --requests")

    from sandbox.people import generate_people
    from sandbox.server import Sandbox

    people = generate_people(args.people, args.seed)
    rng = random.Random(args.seed)
    # People in all four systems for the single runs (not the personas 0-3).
    everywhere = [p.idx for p in people[4:] if len(p.systems) == 4]
    singles = rng.sample(everywhere, 3 * len(settings))
    pool = [p.idx for p in people if p.idx not in singles]
    batch_idx = rng.sample(pool, args.requests)
    batch_picks = [(idx, KINDS[i % 3]) for i, idx in enumerate(batch_idx)]

    # A SIGTERM ends the run through `finally`, so the temporary files go too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench = Bench(args)
    pools = parse_pools(args.pools)
    print(f"fan-out benchmark: {args.requests} requests ("
          + ", ".join(f"{sum(1 for _, k in batch_picks if k == kind)} {kind}" for kind in KINDS)
          + f") for distinct people of {args.people:,}; +{args.latency_ms:g} ms per vendor "
          f"call")
    print(f"starting the sandbox with {args.people:,} people in child processes ...",
          flush=True)
    t0 = time.perf_counter()
    box = Sandbox(people=args.people, seed=args.seed, in_process=False, startup_timeout=900)
    try:
        with box:
            bench.urls = dict(box.urls)
            bench.emulators = [p.pid for p in box._procs if p.pid]
            print(f"sandbox up in {time.perf_counter() - t0:.1f}s; vendor limits as shipped "
                  "(Typeform 2 req/s per account, Pipedrive burst and search limits, "
                  "Mailchimp 10 connections)")
            bench.environment(box.env)
            bench.open()
            secs = bench.reconcile()
            bench.forms = bench.count_forms()
            bench.audiences = bench.count_audiences()
            print(f"hub: {bench.db_label()}; reconciliation (4 syncs + person_index, in "
                  f"process, no added latency) {secs:.1f}s; Typeform forms: {bench.forms}, "
                  f"Mailchimp audiences: {bench.audiences}")
            print("dagster: temporary instance with the repository's dagster.yaml; pools "
                  + ", ".join(f"{s} {n}" for s, n in pools.items())
                  + "; the job's own executor (pipelines/executor.py)"
                  + ", ops per run at a time: "
                  + ("one per system (as the job ships)" if args.max_concurrent is None
                     else str(args.max_concurrent or f"one per core ({os.cpu_count()})")))
            for system in pools:
                print(f"  {system}: {VENDOR_POOL_NOTES[system]}")

            single_subjects = bench.file(
                people, list(zip(singles, KINDS * len(settings), strict=True)))
            batch_subjects = bench.file(people, batch_picks)
            set_latency(bench.urls, args.latency_ms)

            single_sets: list[tuple[str, list[tuple[RunFacts, dict[str, Counter]]]]] = []
            for i, max_concurrent in enumerate(settings):
                rows = []
                for subject in single_subjects[3 * i:3 * i + 3]:
                    bench.verify([subject])
                    reset_calls(bench.urls)
                    facts = bench.run_one(subject, max_concurrent)
                    diff = sandbox_calls(bench.urls)
                    bench.collect([subject], [facts])
                    rows.append((facts, diff))
                label = ("one op process per system, as the job ships"
                         if max_concurrent is None else
                         f"max_concurrent {max_concurrent}" if max_concurrent else
                         f"Dagster's default of one op process per core ({os.cpu_count()})")
                single_sets.append((label, rows))
                print_single(label, rows, calls=i == 0)
            if not batch_subjects:  # --requests 0: the single requests only
                single_verdicts(single_sets)
                return

            print(f"\nrunning the batch: {len(batch_subjects)} runs, {args.in_flight} at a "
                  "time ...", flush=True)
            reset_calls(bench.urls)
            before = sandbox_calls(bench.urls)
            runs, wall = bench.run_batch(batch_subjects)
            diff = diff_calls(sandbox_calls(bench.urls), before)
            bench.collect(batch_subjects, runs)
            summary = print_batch(bench, batch_subjects, runs, diff, wall)
            verdicts(single_sets, summary, wall)
    finally:
        bench.cleanup()


class Progress:
    """A line every 10% so a long run shows it is alive (ids only)."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.start = total, 0, time.time()

    def tick(self) -> None:
        self.done += 1
        step = max(1, self.total // 10)
        if self.done % step == 0 or self.done == self.total:
            print(f"  {self.done}/{self.total} runs finished after "
                  f"{fmt_s(time.time() - self.start)}", flush=True)


if __name__ == "__main__":
    main()
