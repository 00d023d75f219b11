"""Helpers for tests that run the subject-request job against the sandbox."""

from __future__ import annotations

import httpx

from hub import ledger, review
from hub.domain import Identifier, IdentifierKind
from hub.ledger import RequestKind, RequestState, TaskState
from pipelines.requests import subject_request


def file_request(store, kind: RequestKind, email: str | None = None, *,
                 phone: str | None = None, name: str | None = None,
                 corrections=None) -> str:
    """File and verify a request, as an operator would."""
    idents = [Identifier(IdentifierKind.EMAIL, email)] if email else []
    if phone:
        idents.append(Identifier(IdentifierKind.PHONE, phone))
    with store.session() as session:
        row = ledger.create_request(session, store.hasher, kind, idents, name=name,
                                    corrections=corrections)
        ledger.verify(session, row.id)
        return row.id


def run(request_id: str, resources):
    return subject_request.execute_in_process(
        run_config={"ops": {"plan": {"config": {"request_id": request_id}}}},
        resources=resources, raise_on_error=False)


def tasks(store, request_id):
    with store.session() as session:
        return {t.system: t for t in ledger.tasks_of(session, request_id)}


def state(store, request_id) -> str:
    with store.session() as session:
        return ledger.get_request(session, request_id).state


def candidates(store, request_id) -> list[review.Item]:
    with store.session() as session:
        return review.items(session, request_id)


def operator_settles(store, request_id, resources, *, approve: bool = True):
    """An operator decides every pending candidate and confirms every follow-up,
    then the request runs its next round. Returns that run's result."""
    operator_decides(store, request_id, approve=approve)
    return run(request_id, resources)


def operator_decides(store, request_id, *, approve: bool = True) -> None:
    """What an operator does at `hub request review` and `hub task confirm`."""
    with store.session() as session:
        row = ledger.get_request(session, request_id)
        assert row.state == RequestState.AWAITING_REVIEW, row.state
        pending = [i.number for i in review.items(session, request_id)
                   if i.decision == "pending"]
        if pending:
            review.decide(session, request_id, pending,
                          review.Decision.APPROVED if approve else review.Decision.EXCLUDED,
                          actor="test-operator")
        for task in ledger.tasks_of(session, request_id):
            if task.state == TaskState.MANUAL_PENDING:
                review.confirm_task(session, request_id, task.system, TaskState.DONE,
                                    note="dealt with by hand", actor="test-operator")
        assert row.state == RequestState.VERIFIED


def at_vendor(vendors, system, email=None, phone=None):
    params = {k: v for k, v in (("email", email), ("phone", phone)) if v}
    return httpx.get(f"{vendors.urls[system]}/__sandbox/find", params=params,
                     timeout=10).json()["records"]


def run_to_the_end(store, request_id: str, resources, *, approve: bool = True):
    """Run, and while the request waits for an operator, decide and run the next round.

    For tests about something else than review: the operator approves every candidate
    (the personas' free-text answers are their own) and confirms every follow-up.
    """
    waiting = state(store, request_id) == RequestState.AWAITING_REVIEW
    result = operator_settles(store, request_id, resources, approve=approve) if waiting \
        else run(request_id, resources)
    for _ in range(3):
        if not result.success or state(store, request_id) != RequestState.AWAITING_REVIEW:
            break
        result = operator_settles(store, request_id, resources, approve=approve)
    return result
