"""Record only what is true (DESIGN.md rule 3), through the subject-request job.

A vendor that says "deleted" while its read-back still shows the record, or answers
200 without what the connector reads, must leave the task failed with what it saw,
never done or not found; a write whose answer was lost is not "not found"; a retry
after the hub's database refused a write resumes from the journal.
"""

from __future__ import annotations

import httpx
import pytest

from hub import ledger
from hub.ledger import RequestKind, RequestState
from hub.models import LegalHoldRow
from pipelines import requests as job
from pipelines.resources import ConnectorsResource
from tests.hostile import Answer, HostileVendor, Seen
from tests.pipelines.jobs import at_vendor, file_request, run, state, tasks

AINO = "aino.virtanen@example.fi"
EEVA = "eeva.makela@example.fi"


def ok(data, additional=None):
    return Answer(200, {"success": True, "data": data, "additional_data": additional})


def aino_person():
    return {"id": 7, "name": "Aino Virtanen", "emails": [{"value": AINO, "primary": True}],
            "phones": [], "is_deleted": False}


def lying_pipedrive(req: Seen) -> Answer:
    """Accepts the delete and keeps showing the person."""
    if req.path == "/api/v2/persons/search":  # search items carry plain strings
        item = {"id": 7, "name": "Aino Virtanen", "emails": [AINO], "phones": []}
        return ok({"items": [{"item": item}]}, {"next_cursor": None})
    if req.path == "/api/v2/persons/7":
        return ok({"id": 7}) if req.method == "DELETE" else ok(aino_person())
    if req.path.startswith("/api/v2/"):
        return ok([], {"next_cursor": None})
    return ok(None, {"pagination": {"more_items_in_collection": False}})


def test_a_read_back_that_still_shows_the_record_fails_the_task(indexed, vendors, resources,
                                                                monkeypatch):
    with HostileVendor(lying_pipedrive) as liar:
        monkeypatch.setenv("PIPEDRIVE_BASE_URL", liar.url)
        rid = file_request(indexed, RequestKind.ERASURE, AINO)
        assert not run(rid, resources).success
        deletes = [s for s in liar.seen if s.method == "DELETE"]
    failed = tasks(indexed, rid)["pipedrive"]
    assert failed.state == "failed"
    assert "read-back" in failed.error and "aino" not in failed.error.lower()
    assert failed.evidence["verified"] is False
    assert deletes  # it did try, and was told "deleted"
    assert state(indexed, rid) not in (RequestState.COMPLETED,
                                       RequestState.PARTIALLY_COMPLETED)
    with indexed.session() as session:  # not scrubbed: the failed system can run again
        assert ledger.identifiers_of(session, rid)


@pytest.mark.parametrize("body", [{}, {"success": True}, "<html>maintenance</html>",
                                  [{"success": True}]],
                         ids=["empty object", "success only", "html page", "list"])
def test_a_wrong_shaped_200_fails_the_task_never_not_found(indexed, vendors, resources,
                                                           monkeypatch, body):
    with HostileVendor(lambda req: Answer(200, body)) as vendor:
        monkeypatch.setenv("PIPEDRIVE_BASE_URL", vendor.url)
        rid = file_request(indexed, RequestKind.ERASURE, AINO)
        assert not run(rid, resources).success
    failed = tasks(indexed, rid)["pipedrive"]
    assert failed.state == "failed" and "BadResponse" in failed.error
    assert state(indexed, rid) != RequestState.COMPLETED


def test_a_delete_whose_answer_was_lost_is_deleted_not_not_found(indexed, vendors, resources):
    """Mailchimp applies the permanent delete, the answer never arrives; the retry finds
    the member gone. The journal says the request saw it: it was deleted."""
    httpx.put(f"{vendors.urls['mailchimp']}/__sandbox/faults", json={"lose_answers": 1},
              timeout=10).raise_for_status()
    rid = file_request(indexed, RequestKind.ERASURE, EEVA)
    run(rid, resources)
    mc = tasks(indexed, rid)["mailchimp"]
    assert mc.state == "done", mc.error
    actions = {r["action"] for r in mc.evidence["records"]}
    assert "not_found" not in actions and actions & {"deleted", "permanently_deleted"}
    assert at_vendor(vendors, "mailchimp", EEVA) == []


def test_a_retry_after_the_database_refused_a_write_resumes_from_the_journal(
        indexed, vendors, resources, monkeypatch):
    """Found: with the hub's database locked mid-run, the Netvisor customer kept under the
    Accounting Act (its e-mail blanked by the first attempt) was "not found" by the retry,
    no hold was recorded and the request completed."""
    rid = file_request(indexed, RequestKind.ERASURE, AINO)
    writer = job._journal_writer
    refused: list[str] = []

    def locked_once(store, request_id, attempt):
        write = writer(store, request_id, attempt)

        def maybe(done):
            if not refused:
                refused.append(done.ref.record_id)
                raise RuntimeError("database is locked")
            write(done)
        return maybe

    monkeypatch.setattr(job, "_journal_writer", locked_once)
    with indexed.session() as session:
        ledger.transition(session, ledger.get_request(session, rid), RequestState.IN_PROGRESS)
        ledger.ensure_tasks(session, ledger.get_request(session, rid), ["netvisor"])
    policy = job.HubResource(database_url=str(indexed.engine.url)).policy()
    with pytest.raises(job.TaskFailed):
        job.run_task(indexed, ConnectorsResource(), policy, rid, "netvisor",
                     last_attempt=False)
    assert refused  # the first confirmed action could not be journalled
    summary = job.run_task(indexed, ConnectorsResource(), policy, rid, "netvisor",
                           last_attempt=False)
    assert summary["state"] == "retained", summary
    task = tasks(indexed, rid)["netvisor"]
    held = [r for r in task.evidence["records"] if r["action"] == "retained"]
    assert held and held[0]["retained_until"] and held[0]["legal_basis"]
    with indexed.session() as session:
        assert session.query(LegalHoldRow).count() == 0  # written when the request settles
