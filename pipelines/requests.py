"""The subject-request job: plan → one op per system → record completion.

One run per request, config `request_id` only (DESIGN.md, Dagster shape).
Nothing personal enters Dagster: ops pass the request id and small summaries
(states, actions, counts); identifiers are read from the hub inside each op,
and access exports travel through owner-only files in the hub's home, not
through Dagster outputs (rule 7).

Each system's op looks the person up live and acts (rule 4). A vendor failure
is retried by the op's own policy; the last failure is written to the task with
the vendor's answer and fails the step, so "re-execute from failure" redoes that
system alone while the systems that finished are skipped (rules 1, 8).
"""

from pathlib import Path

from dagster import (
    Backoff,
    Config,
    Failure,
    In,
    Jitter,
    MetadataValue,
    OpExecutionContext,
    Out,
    RetryPolicy,
    job,
    multiprocess_executor,
    op,
)

from connectors.errors import ConnectorError, scrub
from connectors.settings import ConfigError
from hub import bundle, holds, index, ledger, outcomes
from hub.domain import Action, Identifier, Outcome, RecordOutcome
from hub.identity import mask
from hub.ledger import RequestKind, RequestState
from pipelines.reconciliation import SYSTEMS
from pipelines.resources import ConnectorsResource, HubResource

SYSTEM_RETRY = RetryPolicy(max_retries=3, delay=2, backoff=Backoff.EXPONENTIAL,
                           jitter=Jitter.PLUS_MINUS)
RUNNABLE = (RequestState.VERIFIED, RequestState.IN_PROGRESS, RequestState.PARTIALLY_COMPLETED)


def _one_process_per_system(config: dict) -> dict:
    """The system ops wait on vendors, not on the CPU, so all of them run at once.

    Dagster's default runs one op process per core: on a two-core machine the four
    vendors went two by two and a request took as long as its two slowest systems
    added up. An explicit `max_concurrent` (0 = one per core) still wins.
    """
    if config.get("max_concurrent") is None:
        return {**config, "max_concurrent": len(SYSTEMS)}
    return config


# The multiprocess executor with the same settings, one process per system by default.
fanout_executor = multiprocess_executor.configured(
    _one_process_per_system, name="multiprocess",
    config_schema=multiprocess_executor.config_schema.as_field().config_type.fields,
)


class RequestConfig(Config):
    request_id: str


def subject_identifiers(session, request_id: str) -> list[Identifier]:
    """The subject's own identifiers plus every identifier of their index cluster."""
    own = ledger.identifiers_of(session, request_id)
    found: dict[Identifier, None] = dict.fromkeys(own)
    for ident in own:
        person = index.lookup(session, ident)
        if person is not None:
            found.update(dict.fromkeys(index.identifiers_of_person(session, person)))
    return list(found)


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
        identifiers = subject_identifiers(session, row.id)
        if not identifiers:
            raise Failure(f"request {row.id} has no identifiers left to act on",
                          allow_retries=False)
        tasks = ledger.ensure_tasks(session, row, policy.enabled_systems)
        context.add_output_metadata({
            "kind": row.kind,
            "identifiers": MetadataValue.text(", ".join(mask(i) for i in identifiers)),
            "systems": MetadataValue.text(", ".join(t.system for t in tasks)),
        })
    return config.request_id


def _act(connector, kind: RequestKind, identifiers, system_policy, part_file: Path) -> Outcome:
    refs = connector.find(identifiers)
    if kind == RequestKind.ERASURE:
        return connector.erase(refs, system_policy)
    if kind == RequestKind.OPT_OUT:
        return connector.opt_out(refs)
    export = connector.export(refs)
    digest = bundle.write_part(part_file, export)
    records = tuple(RecordOutcome(ref, Action.EXPORTED) for ref in refs)
    return Outcome(system=connector.system, records=records, verified=True,
                   evidence={"sections": len(export.sections),
                             "items": sum(len(s.items) for s in export.sections),
                             bundle.PART_DIGEST: digest})


def make_system_op(system: str):  # noqa: ANN201 - a Dagster op definition
    @op(name=f"{system}_task", ins={"request_id": In(str)}, out=Out(dict), pool=system,
        retry_policy=SYSTEM_RETRY, description=f"Find the subject live in {system} and act.")
    def system_task(context: OpExecutionContext, request_id: str, hub: HubResource,
                    connectors: ConnectorsResource) -> dict:
        policy = hub.policy()
        if system not in policy.enabled_systems:
            return {"system": system, "state": "disabled"}
        with hub.store() as store:
            with store.session() as session:
                task = outcomes.begin(session, request_id, system)
                if task is None:
                    done = ledger.get_task(session, request_id, system)
                    return {"system": system, "state": done.state, "action": done.action,
                            "skipped": True}
                row = ledger.get_request(session, request_id)
                kind = RequestKind(row.kind)
                identifiers = subject_identifiers(session, request_id)
            part = parts_dir(store.settings.home, request_id) / f"{system}.json"
            try:
                with connectors.connect(system) as connector:
                    outcome = _act(connector, kind, identifiers, policy.for_system(system),
                                   part)
                    calls = connector.api_calls
            except Exception as exc:  # noqa: BLE001 - every failure must end in a task state
                # Outside the taxonomy (a missing setting, a bug) the message is scrubbed
                # too, and the task still ends failed: nothing stays running (rule 1).
                retryable = exc.retryable if isinstance(exc, ConnectorError) else not isinstance(
                    exc, ConfigError)
                last = context.retry_number >= SYSTEM_RETRY.max_retries or not retryable
                message = f"{type(exc).__name__}: {scrub(exc)}"
                if last:
                    with store.session() as session:
                        outcomes.record_failure(session, request_id, system, message, {
                            "status_code": getattr(exc, "status_code", None),
                            "vendor_request_id": getattr(exc, "vendor_request_id", None),
                            "error": type(exc).__name__,
                        })
                raise Failure(f"{system}: {message}", allow_retries=not last) from None
            with store.session() as session:
                outcomes.record(session, request_id, outcome)
        summary = {"system": system, "state": outcomes.state_for(outcome).value,
                   "action": outcomes.summary_action(outcome).value,
                   "records": len(outcome.records), "verified": outcome.verified,
                   "api_calls": calls}
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


@op(ins={system: In(dict) for system in SYSTEMS}, out=Out(str),
    description="Settle the request from its tasks; write the export bundle for access.")
def complete(context: OpExecutionContext, hub: HubResource, **results: dict) -> str:
    with hub.store() as store, store.session() as session:
        request_id = _request_of_run(context)
        row = ledger.get_request(session, request_id)
        kind = RequestKind(row.kind)
        if kind == RequestKind.ACCESS:
            _bundle(store, session, row.id, hub)
        identifiers = subject_identifiers(session, row.id)
        final = ledger.finalise(session, store.hasher, row)
        tasks = ledger.tasks_of(session, row.id)
        settled = not ledger.identifiers_of(session, row.id)  # nothing left to retry
        if kind == RequestKind.ERASURE:
            holds.record_from_tasks(session, tasks)
            bundle.erase_bundles(session, store.settings.home, row.id)
            if settled:  # rule 6: from now on only hashes (and held pointers) remain
                context.log.info(f"dropped {index.forget(session, identifiers)} index records")
        elif kind == RequestKind.OPT_OUT and settled:
            index.mark_unsubscribed(session, identifiers)
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
