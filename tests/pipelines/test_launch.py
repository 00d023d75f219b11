"""The job on a real instance with the multiprocess executor: fan-out and re-execution."""

import httpx
from dagster import DagsterEventType, instance_for_test

from hub import ledger
from hub.domain import Identifier, IdentifierKind
from hub.ledger import RequestKind, RequestState
from pipelines.launch import run_request
from pipelines.reconciliation import SYSTEMS


def launched_before_any_finished(instance, run_id: str) -> set[str]:
    """The system ops whose process the run had launched before one of them succeeded."""
    launched = set()
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or not (entry.step_key or "").endswith("_task"):
            continue
        if event.event_type == DagsterEventType.STEP_SUCCESS:
            break
        if event.event_type == DagsterEventType.STEP_WORKER_STARTING:
            launched.add(entry.step_key)
    return launched


def launch_order(instance, run_id: str) -> list[str]:
    return [entry.step_key for entry in instance.all_logs(
        run_id, of_type=DagsterEventType.STEP_WORKER_STARTING)
        if (entry.step_key or "").endswith("_task")]


def test_failed_system_reruns_alone_on_reexecution(indexed, vendors):
    with indexed.session() as session:
        row = ledger.create_request(session, indexed.hasher, RequestKind.ERASURE,
                                    [Identifier(IdentifierKind.EMAIL, "eeva.makela@example.fi")])
        ledger.verify(session, row.id)
        rid = row.id
    netvisor = vendors.urls["netvisor"]
    with instance_for_test() as instance:
        httpx.put(f"{netvisor}/__sandbox/faults", json={"error_rate": 1.0}, timeout=10)
        try:
            first = run_request(rid, "erasure", instance)
        finally:
            httpx.put(f"{netvisor}/__sandbox/faults", json={"error_rate": 0}, timeout=10)
        assert not first.success
        # every vendor at once, whatever the machine's core count
        assert launched_before_any_finished(instance, first.run_id) == {
            f"{system}_task" for system in SYSTEMS}
        # the vendor that paces every call (the request's longest task) starts first
        assert launch_order(instance, first.run_id)[0] == "typeform_task"
        with indexed.session() as session:
            after_first = {t.system: (t.state, t.attempts) for t in ledger.tasks_of(session, rid)}
        assert after_first["netvisor"][0] == "failed"
        # finished: done, or done but waiting for an operator to confirm a leftover
        assert {after_first[s][0] for s in ("pipedrive", "mailchimp", "typeform")} <= {
            "done", "manual_pending"}

        second = run_request(rid, "erasure", instance)
        assert second.success
        assert instance.get_run_by_id(second.run_id).parent_run_id == first.run_id
    with indexed.session() as session:
        final = {t.system: (t.state, t.attempts) for t in ledger.tasks_of(session, rid)}
        assert ledger.get_request(session, rid).state in (RequestState.COMPLETED,
                                                          RequestState.AWAITING_REVIEW)
    assert final["netvisor"] == ("done", after_first["netvisor"][1] + 1)
    for system in ("pipedrive", "mailchimp", "typeform"):
        assert final[system] == after_first[system]  # not run again
