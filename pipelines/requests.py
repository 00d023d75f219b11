"""The subject-request job: plan → one op per system → record completion.

One run per request, config `request_id` only (DESIGN.md, Dagster shape).
Nothing personal enters Dagster: ops pass the request id and small summaries
(states, actions, counts); identifiers are read from the hub inside each op,
and access exports travel through owner-only files in the hub's home, not
through Dagster outputs (rule 7).

Each system's op looks the person up live and acts (rule 4). A vendor failure
is retried by the op's own policy; each failed attempt is written to the task with
the vendor's answer and fails the step, so "re-execute from failure" redoes that
system alone while the systems that finished are skipped (rules 1, 8).
"""

import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import (
    Backoff,
    Config,
    DagsterRunStatus,
    Failure,
    In,
    Jitter,
    MetadataValue,
    Nothing,
    OpExecutionContext,
    Out,
    RetryPolicy,
    RunsFilter,
    job,
    op,
)

from connectors import registry
from connectors.errors import ConnectorError, scrub
from connectors.settings import ConfigError
from hub import (
    bundle,
    categories,
    holds,
    index,
    journal,
    ledger,
    letters,
    manual,
    outbox,
    outcomes,
    pointers,
    restriction,
    review,
    scope,
)
from hub.domain import Action, Corrections, Outcome, RecordOutcome
from hub.identity import mask
from hub.ledger import RequestKind, RequestState, TaskState
from pipelines.executor import fanout_executor
from pipelines.reconciliation import SYSTEMS
from pipelines.resources import ConnectorsResource, HubResource

# Dagster's retry policy is fixed when the job is defined; HUB_OP_RETRY_DELAY_SECONDS
# (default 2) is read then, so the test suite retries in milliseconds.
SYSTEM_RETRY = RetryPolicy(max_retries=3,
                           delay=float(os.environ.get("HUB_OP_RETRY_DELAY_SECONDS") or 2),
                           backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)
RUNNABLE = (RequestState.VERIFIED, RequestState.IN_PROGRESS, RequestState.PARTIALLY_COMPLETED)
# A run in one of these may still be working on the request's tasks.
LIVE_RUN_STATUSES = [DagsterRunStatus.QUEUED, DagsterRunStatus.STARTING,
                     DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]
REQUEST_TAG = "hub/request_id"
PRIORITY_TAG = "dagster/priority"
DEFAULT_OP_TIMEOUT_SECONDS = 900.0


def op_timeout_seconds() -> float:
    """The longest one attempt of a system task may take (HUB_OP_TIMEOUT_SECONDS, 900; 0 = none).

    A vendor call has its own deadline, but a task makes many calls, waits out rate
    limits and writes the journal; without a bound on the whole, one stuck task kept
    its pool slot, and every later request for that vendor, waiting without a word.
    Read at each attempt, so a deployment (or a test) can change it without a restart.
    """
    return float(os.environ.get("HUB_OP_TIMEOUT_SECONDS") or DEFAULT_OP_TIMEOUT_SECONDS)


class TaskStopped(BaseException):
    """An attempt ran past its bound, or its run's process died.

    A BaseException, like KeyboardInterrupt, so that no connector's ``except Exception``
    can swallow it and carry on acting.
    """


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block with TaskStopped after `seconds` (SIGALRM, in the main thread).

    Each Dagster step runs in the main thread of its own process, so the alarm reaches
    a blocking socket read too. Elsewhere (a worker thread) no alarm can be set, and the
    vendor calls' own deadlines are the bound.
    """
    if (seconds <= 0 or not hasattr(signal, "setitimer")
            or threading.current_thread() is not threading.main_thread()):
        yield
        return

    def expire(_signum: int, _frame: object) -> None:
        raise TaskStopped(f"the attempt took longer than {seconds:g} s "
                           "(HUB_OP_TIMEOUT_SECONDS) and was stopped")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class RequestConfig(Config):
    request_id: str


def parts_dir(hub_home: Path, request_id: str) -> Path:
    return bundle.parts_dir(hub_home, request_id)


@op(out=Out(str), description="Check the request may run, resolve identifiers, create tasks.")
def plan(context: OpExecutionContext, config: RequestConfig, hub: HubResource) -> str:
    policy = hub.policy()
    with hub.store() as store, store.session() as session:
        row = ledger.get_request(session, config.request_id)
        state = RequestState(row.state)
        if state not in RUNNABLE:
            raise Failure(f"request {row.id} is {state.value}; only verified requests run",
                          allow_retries=False)
        if state != RequestState.IN_PROGRESS:
            ledger.transition(session, row, RequestState.IN_PROGRESS)
        identifiers = scope.search_identifiers(session, row.id)
        systems = policy.enabled_systems
        if not identifiers:
            # A request for records, not a person (a kept record whose hold ended): it
            # acts where they are journalled, and nowhere else: a system it cannot
            # search must not report "not found" (rule 3).
            planned = journal.planned_systems(session, row.id)
            if not planned:
                raise Failure(f"request {row.id} has no identifiers left to act on",
                              allow_retries=False)
            systems = [s for s in systems if s in planned]
        tasks = ledger.ensure_tasks(session, row, systems)
        manual.open_tasks(session, row, policy, timezone=store.settings.timezone)
        context.add_output_metadata({
            "kind": row.kind,
            "identifiers": MetadataValue.text(", ".join(mask(i) for i in identifiers)),
            "systems": MetadataValue.text(", ".join(t.system for t in tasks)),
            "manual": MetadataValue.text(", ".join(policy.manual_systems) or "-"),
        })
    return config.request_id


def _act(connector, kind: RequestKind, refs, system_policy, part_file: Path,
         corrections: Corrections | None) -> Outcome:
    if kind == RequestKind.ERASURE:
        return connector.erase(refs, system_policy)
    if kind == RequestKind.OPT_OUT:
        return connector.opt_out(refs)
    if kind == RequestKind.RECTIFICATION:
        if corrections is None:
            raise ValueError("the rectification's corrected values are gone")
        return connector.rectify(refs, corrections)
    if kind in (RequestKind.RESTRICTION, RequestKind.RESTRICTION_LIFT):
        return connector.restrict(refs, lift=kind == RequestKind.RESTRICTION_LIFT)
    export = connector.export(refs)
    digest = bundle.write_part(part_file, export)
    records = (*(RecordOutcome(ref, Action.EXPORTED) for ref in refs), *export.unsearched)
    flagged = sorted({c for s in export.sections for c in categories.in_items(s.items)})
    return Outcome(system=connector.system, records=records, verified=True,
                   evidence={"sections": len(export.sections),
                             "items": sum(len(s.items) for s in export.sections),
                             "special_categories": flagged, bundle.PART_DIGEST: digest,
                             # ids that may name people are hashed once the request settles
                             **{k: v for k, v in export.evidence.items()
                                if k == pointers.NAME_PEOPLE}})


class TaskFailed(Exception):
    """A task ended failed; ``retryable`` says whether another attempt may help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


# Set in a step process when the process that runs its run (its parent) has died.
ORCHESTRATOR_GONE = threading.Event()


def _stop_if_orphaned() -> None:
    if ORCHESTRATOR_GONE.is_set():
        raise TaskStopped("the process running this run died; stopped after journalling "
                          "the last confirmed action, the next run resumes from there")


@contextmanager
def orphan_guard() -> Iterator[None]:
    """Watch the parent process of this step; when it dies, stop between two actions.

    Found: after `kill -9` of `hub request run`, its step processes (children of the
    killed process) carried on acting at the vendors, while the next run was already
    redoing their tasks. A step that notices its parent is gone finishes the vendor
    call in flight, journals it and ends its task failed, so the next run resumes.
    """
    if multiprocessing.parent_process() is None:  # in-process: nothing separate to outlive
        yield
        return
    # The process that started this one; when it dies, this one is handed to init (or a
    # subreaper). multiprocessing's own parent sentinel is not enough once op processes
    # are forked: a sibling forked later inherits the pipe that signals the parent's end
    # and holds it open.
    parent = os.getppid()
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.2):
            if os.getppid() != parent:
                ORCHESTRATOR_GONE.set()
                return

    threading.Thread(target=watch, name="orphan-guard", daemon=True).start()
    try:
        yield
    finally:
        done.set()


def _journal_writer(store, request_id: str, attempt: int):  # noqa: ANN202 - a callback
    """Each action the vendor confirmed, committed before the connector takes the next."""
    def write(done: RecordOutcome) -> None:
        with store.session() as session:
            journal.record(session, request_id, done, attempt=attempt)
        _stop_if_orphaned()
    return write


def run_task(store, connectors: ConnectorsResource, policy, request_id: str, system: str, *,
             last_attempt: bool, take_over: bool = False) -> dict:
    """One (request × system) task: claim, live lookup, split, act, journal, read back, record.

    Returns the summary for Dagster (nothing personal); ``skipped`` when the task had
    already finished or another live worker holds it. Raises TaskFailed after writing
    the failure to the task: every failed attempt ends `failed`, so a running task
    always has a live worker. ``take_over`` (no other live run of the request) lets it
    claim a task left running by a worker that died.
    """
    with store.session() as session:
        task = outcomes.begin(session, request_id, system, take_over=take_over)
    if task is None:
        with store.session() as session:
            held = ledger.get_task(session, request_id, system)
            return {"system": system, "state": held.state, "action": held.action,
                    "skipped": True}
    with store.session() as session:
        attempt = task.attempts
        kind = RequestKind(ledger.get_request(session, request_id).kind)
        subject = scope.subject_of(session, request_id)
        search = scope.search_identifiers(session, request_id)
        decided = review.decisions(session, request_id, system)
        seen_before = journal.planned(session, request_id, system)
        corrections = ledger.corrections_of(session, request_id)
    part = parts_dir(store.settings.home, request_id) / f"{system}.json"
    try:
        with time_limit(op_timeout_seconds()), connectors.connect(system) as connector:
            connector.journal = _journal_writer(store, request_id, attempt)
            found = scope.split(subject, connector.find(search), decided)
            targets = list({review.key_of(r): r for r in (*seen_before, *found.act)}.values())
            with store.session() as session:  # before the first action (rule 3)
                journal.plan(session, request_id, system, found.act, attempt=attempt)
                review.register(session, request_id, found.candidates)
                ledger.mark_shared(session, store.hasher, request_id,
                                   [*subject.shared, *found.shared])
                if kind == RequestKind.ERASURE:  # read now: the records will be gone
                    ledger.add_found_identifiers(session, store.hasher, request_id,
                                                 scope.found_identifiers(session, found.act))
            _stop_if_orphaned()
            outcome = _act(connector, kind, targets, policy.for_system(system), part,
                           corrections)
            calls = connector.api_calls
    except (Exception, TaskStopped) as exc:  # noqa: BLE001 - every failure ends in a state
        # Outside the taxonomy (a missing setting, a bug) the message is scrubbed too,
        # and the task still ends failed: nothing stays running (rule 1).
        evidence = exc.evidence() if isinstance(exc, ConnectorError) else {
            "error": type(exc).__name__}
        retryable = exc.retryable if isinstance(exc, ConnectorError) else not isinstance(
            exc, ConfigError)
        _fail(store, request_id, system, f"{type(exc).__name__}: {scrub(exc)}", evidence,
              retryable=retryable, last_attempt=last_attempt)
    with store.session() as session:
        outcome = journal.merge(outcome, journal.actions(session, request_id, system),
                                [*seen_before, *found.act], erasure=kind == RequestKind.ERASURE)
    if kind != RequestKind.ACCESS:
        outcome = journal.unanswered(outcome, targets)
    if kind != RequestKind.ACCESS and not outcome.verified:
        unproven = [f"{r.ref.kind} {r.ref.record_id}: {r.detail}" for r in outcome.records
                    if r.action not in (Action.NOT_FOUND, Action.NOTHING_TO_DO)]
        _fail(store, request_id, system,
              "the read-back did not show the intended state: " + scrub("; ".join(unproven)),
              outcomes.evidence_of(outcome), retryable=True, last_attempt=last_attempt)
    with store.session() as session:
        waiting = review.pending_count(session, request_id, system)
        outcomes.record(session, request_id, outcome, candidates=waiting,
                        excluded=[review.key_of(r) for r in found.excluded])
    return {"system": system, "state": outcomes.state_for(outcome, candidates=waiting).value,
            "action": outcomes.summary_action(outcome).value, "records": len(outcome.records),
            "candidates": waiting, "verified": outcome.verified, "api_calls": calls}


def _fail(store, request_id: str, system: str, message: str, evidence: dict, *,
          retryable: bool, last_attempt: bool) -> None:
    """End the task failed with the vendor's answer and raise TaskFailed.

    Every attempt's failure is written, not only the last: a task left running between
    attempts looked, after a crash, exactly like a task a live worker holds, and no
    one could tell whether to take it over. The op's retry claims it from `failed`.
    """
    with store.session() as session:
        outcomes.record_failure(session, request_id, system, message, evidence)
    raise TaskFailed(f"{system}: {message}", retryable=retryable and not last_attempt)


def other_live_runs(instance, request_id: str, run_id: str) -> list[str]:
    """Runs of this request other than `run_id` that may still be working on it."""
    records = instance.get_run_records(RunsFilter(
        job_name="subject_request", tags={REQUEST_TAG: request_id},
        statuses=LIVE_RUN_STATUSES))
    return [r.dagster_run.run_id for r in records if r.dagster_run.run_id != run_id]


def make_system_op(system: str):  # noqa: ANN201 - a Dagster op definition
    first = registry.declared()[system].starts_first  # Dagster launches higher first
    @op(name=f"{system}_task", ins={"request_id": In(str)}, out=Out(dict), pool=system,
        tags={PRIORITY_TAG: "1" if first else "0"}, retry_policy=SYSTEM_RETRY,
        description=f"Find the subject live in {system} and act.")
    def system_task(context: OpExecutionContext, request_id: str, hub: HubResource,
                    connectors: ConnectorsResource) -> dict:
        policy = hub.policy()
        if system not in policy.enabled_systems:
            return {"system": system, "state": "disabled"}
        with hub.store() as store:
            with store.session() as session:
                if system not in {t.system for t in ledger.tasks_of(session, request_id)}:
                    return {"system": system, "state": "not asked"}  # see `plan`
            # A task running with no other live run of the request was left by a worker
            # that died (a step process killed mid-attempt): this run may take it over.
            alone = not other_live_runs(context.instance, request_id, context.run_id)
            try:
                with orphan_guard():
                    summary = run_task(
                        store, connectors, policy, request_id, system, take_over=alone,
                        last_attempt=context.retry_number >= SYSTEM_RETRY.max_retries)
            except TaskFailed as exc:
                raise Failure(str(exc), allow_retries=exc.retryable) from None
        context.add_output_metadata({k: v for k, v in summary.items() if k != "system"})
        return summary

    return system_task


SYSTEM_OPS = {system: make_system_op(system) for system in SYSTEMS}


def outcome_table(rows: list[tuple[str, str, str | None, dict | None]]) -> str:
    """Markdown for the UI: system, state, action, evidence summary; nothing personal."""
    lines = ["| system | outcome | action | evidence |", "|---|---|---|---|"]
    for system, state, action, evidence in rows:
        lines.append(f"| {system} | {state} | {action or '-'} | {outcomes.describe(evidence)} |")
    return "\n".join(lines)


# After every system op, reading none of their outputs: the tasks in the hub's database
# are what the request is settled from, and not loading four outputs saves their reads.
@op(ins={system: In(Nothing) for system in SYSTEMS}, out=Out(str),
    description="Settle the request from its tasks; write the export bundle for access.")
def complete(context: OpExecutionContext, hub: HubResource) -> str:
    with hub.store() as store, store.session() as session:
        request_id = _request_of_run(context)
        row = ledger.lock_request(session, request_id)  # an operator's confirmation waits
        running = [t.system for t in ledger.tasks_of(session, row.id)
                   if TaskState(t.state) == TaskState.RUNNING]
        if running:  # another live run holds them; that run settles the request
            context.log.warning(f"{', '.join(running)} still running in another run of "
                                f"{row.id}; that run settles the request")
            context.add_output_metadata({"state": row.state,
                                         "running_elsewhere": ", ".join(running)})
            return row.state
        kind = RequestKind(row.kind)
        waiting = any(TaskState(t.state) in ledger.OPERATOR_TASK_STATES
                      for t in ledger.tasks_of(session, row.id))
        if kind == RequestKind.ACCESS and not waiting:  # no bundle before every decision
            _bundle(store, session, row.id, hub)
        identifiers = ledger.unshared_identifiers(session, row.id)
        corrected = dict(ledger.corrections_masked(session, row.id))
        to = letters.recipient_of(session, row)  # before finalise scrubs the address
        final = ledger.finalise(session, store.hasher, row)
        tasks = ledger.tasks_of(session, row.id)
        settled = not ledger.identifiers_of(session, row.id)  # nothing left to retry
        if settled and final in (RequestState.COMPLETED, RequestState.PARTIALLY_COMPLETED):
            letters.queue_for(session, row, letters.Event.COMPLETED, settings=store.settings,
                              hasher=store.hasher, policy=hub.policy(), recipient=to)
        if kind == RequestKind.ERASURE:
            holds.record_from_tasks(session, tasks)
            if settled:  # rule 6: from now on only hashes (and held pointers) remain
                bundle.erase_bundles(session, store.settings.home, row.id)
                restriction.lift(session, identifiers)  # no pointer outlives the records
                outbox.forget_subject(session, store.settings.home, row.id)
                context.log.info(f"dropped {index.forget(session, identifiers)} index records")
        elif kind == RequestKind.OPT_OUT and settled:
            index.mark_unsubscribed(session, identifiers)
        elif kind == RequestKind.RECTIFICATION and settled:  # the index follows
            told = [t.system for t in tasks if t.action == Action.RECTIFIED.value]
            old = [i for i in identifiers if i.kind.value in corrected]
            index.retire_corrected(session, told, old)
        elif kind == RequestKind.RESTRICTION and settled:  # art. 18: no marketing, no sync
            index.mark_unsubscribed(session, identifiers)
            restriction.freeze(session, row.id, identifiers)
        elif kind == RequestKind.RESTRICTION_LIFT and settled:
            restriction.lift(session, identifiers)
        table = outcome_table([(t.system, t.state, t.action, t.evidence) for t in tasks])
    context.add_output_metadata({"state": final.value, "outcomes": MetadataValue.md(table)})
    return final.value


def _request_of_run(context: OpExecutionContext) -> str:
    return context.run_config["ops"]["plan"]["config"]["request_id"]


def _bundle(store, session, request_id: str, hub: HubResource) -> None:
    bundle.bundle_request(session, store.settings.home, request_id, hub.policy())


@job(executor_def=fanout_executor,
     description="One subject request: live lookup and action in every system, with "
                 "evidence; config is the request id only.")
def subject_request() -> None:
    request_id = plan()
    complete(**{system: op_def(request_id) for system, op_def in SYSTEM_OPS.items()})
