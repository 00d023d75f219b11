"""Whether a request can run now, answered before Dagster is imported.

`hub request run` refuses a request that cannot run with one line (Found: a missing
policy file, or a completed request, gave 49 to 72 lines of Dagster trace ending in an
untrue "some systems failed"). The check lives here, not beside the job, so that the
refusal does not first pay the two seconds of importing Dagster and the jobs.
"""

from __future__ import annotations

from hub import ledger
from hub.ledger import RequestState, TaskState
from hub.policy import PolicyError, load_policy
from hub.settings import load_settings
from hub.store import open_store

EXIT_INPUT, EXIT_ENVIRONMENT = 1, 3


class Refused(Exception):
    """`hub request run` will not start Dagster; the message says why, `code` the exit."""

    def __init__(self, message: str, code: int = EXIT_INPUT) -> None:
        super().__init__(message)
        self.code = code


def preflight(request_id: str) -> str:
    """Everything that can be checked before Dagster starts; returns the request's kind."""
    settings = load_settings()
    try:
        load_policy(settings.policy_file)
    except PolicyError as exc:  # the deployment's file, not the operator's input
        raise Refused(str(exc), EXIT_ENVIRONMENT) from None
    store = open_store(settings)
    try:
        with store.session() as session:
            row = ledger.get_request(session, request_id)
            state = RequestState(row.state)
            failed = [t.system for t in ledger.tasks_of(session, row.id)
                      if TaskState(t.state) == TaskState.FAILED]
            kind = row.kind
    finally:
        store.close()
    refusal = {
        RequestState.RECEIVED: f"request {request_id} is received, not verified: check the "
                               f"requester's identity, then hub request verify {request_id}",
        RequestState.COMPLETED: f"request {request_id} is completed: nothing left to run",
        RequestState.REJECTED: f"request {request_id} was rejected: it does not run",
    }.get(state)
    if state == RequestState.PARTIALLY_COMPLETED and not failed:
        refusal = (f"request {request_id} is partially completed with nothing to retry "
                   "(what is kept is kept under a legal hold)")
    if refusal:
        raise Refused(refusal)
    return kind
