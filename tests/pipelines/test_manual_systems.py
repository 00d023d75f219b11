"""Systems without an API (rule 10): a paper archive declared in the policy.

Found: declaring a manual system in the policy left every request stuck for ever
while the CLI said "run again". Now each request gives it a manual task with the
policy's instructions and its own due date, and completes only once an operator has
confirmed it (who, when, outcome, note, in the audit trail).
"""

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from dagster import build_asset_check_context, instance_for_test
from sqlalchemy import select

from hub import holds, ledger, manual, review
from hub.domain import Identifier, IdentifierKind
from hub.ledger import LedgerError, RequestKind, RequestState, TaskState
from hub.models import AuditEventRow, TaskActionRow
from hub.policy import load_policy
from pipelines.checks import nothing_stuck, request_deadlines
from pipelines.resources import HubResource
from tests.pipelines.jobs import file_request, operator_decides, run, state, tasks

ARCHIVE = """
[systems.paper_archive]
kind = "manual"
title = "Paper contracts (locked cabinet)"
due_days = 5
[systems.paper_archive.instructions]
access = "Photocopy the subject's signed contract from the cabinet."
erasure = "Shred the contract unless it is within its retention period."
"""
MIKKO = "mikko.hakkinen@example.fi"  # found in every system, shares nothing


@pytest.fixture
def with_archive(indexed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The default policy plus a paper archive, as a deployment would write it."""
    policy = tmp_path / "policy.toml"
    default = (Path(__file__).parents[2] / "hub" / "default_policy.toml").read_text("utf-8")
    policy.write_text(default + ARCHIVE, "utf-8")
    monkeypatch.setenv("HUB_POLICY_FILE", str(policy))
    return indexed


def test_a_request_waits_for_the_archive_with_its_instructions_then_completes(
        with_archive, resources):
    store = with_archive
    rid = file_request(store, RequestKind.ACCESS, MIKKO)
    assert run(rid, resources).success
    assert state(store, rid) == RequestState.AWAITING_REVIEW  # not completed, not stuck
    archive = tasks(store, rid)["paper_archive"]
    assert archive.state == TaskState.MANUAL_PENDING
    with store.session() as session:
        row = ledger.get_request(session, rid)
        by_hand = manual.of(archive)
        assert by_hand.instructions == "Photocopy the subject's signed contract from the cabinet."
        assert by_hand.title == "Paper contracts (locked cabinet)"
        assert by_hand.due <= min(date.today() + timedelta(days=6), ledger.effective_due(row))
        # every system with an API has done its part meanwhile
        assert {t.state for s, t in tasks(store, rid).items() if s != "paper_archive"} <= {
            "done", "not_found"}

        review.confirm_task(session, rid, "paper_archive", TaskState.DONE,
                            note="contract copied, posted with the letter", actor="liisa")
    assert state(store, rid) == RequestState.VERIFIED  # the next round runs
    assert run(rid, resources).success
    assert state(store, rid) == RequestState.COMPLETED
    archive = tasks(store, rid)["paper_archive"]
    assert archive.evidence["confirmed"]["by"] == "liisa"
    with store.session() as session:
        confirmed = session.execute(select(AuditEventRow).where(
            AuditEventRow.request_id == rid, AuditEventRow.action == "task.confirmed")).scalars()
        assert [(e.actor, json.loads(e.payload)["outcome"]) for e in confirmed] == [
            ("liisa", "done")]


def test_an_archive_kept_under_a_hold_is_retained_with_its_end_date(with_archive, resources):
    store = with_archive
    rid = file_request(store, RequestKind.ERASURE, MIKKO)
    assert run(rid, resources).success
    assert manual.of(tasks(store, rid)["paper_archive"]).instructions.startswith("Shred")
    until = date.today() + timedelta(days=365 * 6)
    with store.session() as session:
        with pytest.raises(LedgerError, match="--until"):
            review.confirm_task(session, rid, "paper_archive", TaskState.RETAINED,
                                note="signed contract", actor="liisa")
        review.confirm_task(session, rid, "paper_archive", TaskState.RETAINED,
                            note="signed contract kept", actor="liisa", held_until=until,
                            legal_basis="Kirjanpitolaki 2:10")
    operator_decides(store, rid)  # what the vendors' connectors left for a person
    settled = run(rid, resources)
    assert settled.success
    assert state(store, rid) == RequestState.PARTIALLY_COMPLETED
    with store.session() as session:
        held = holds.held_records(session, date.today())
    assert ("paper_archive", f"paper_archive:{rid}") in held


def test_an_unconfirmed_task_past_its_own_due_date_fails_the_checks(with_archive, resources,
                                                                   hub_db):
    store = with_archive
    rid = file_request(store, RequestKind.ACCESS, MIKKO)
    assert run(rid, resources).success
    with store.session() as session:
        task = ledger.get_task(session, rid, "paper_archive")
        late = dict(task.evidence)
        late["manual"] = {**late["manual"], "due": (date.today() - timedelta(days=1)).isoformat()}
        task.evidence = late
        task.updated_at = datetime.now(UTC)
    hub = {"hub": HubResource(database_url=hub_db)}
    with instance_for_test() as instance:
        deadlines = request_deadlines(build_asset_check_context(instance=instance,
                                                                resources=hub))
        stuck = nothing_stuck(build_asset_check_context(instance=instance, resources=hub))
    line = f"{rid}/paper_archive to do by hand by"
    assert not deadlines.passed and line in deadlines.description
    assert deadlines.metadata["manual_overdue"].value == 1
    assert not stuck.passed and line in stuck.description


# ------------------------------------------ the network drive: the operator's work, read back

def drive_request(hub_store, tmp_path, monkeypatch, kind: RequestKind):  # noqa: ANN201
    """The demo's share plus a note named after its subject, the network drive turned
    on, and a request of ``kind`` for her in progress: (id, policy, subject, share,
    the files written)."""
    from sandbox.network_drive import demo_files
    from sandbox.people import generate_people

    people = generate_people(3)
    subject = people[0]
    share = tmp_path / "share"
    written = demo_files(share, people)
    # A note named after her: once the request settles, no path may say who she was.
    named = share / "muistiinpanot" / f"{subject.name} - puhelu.txt"
    named.write_text(f"Soittopyyntö: {subject.email}\n", "utf-8")
    written.append(named)
    monkeypatch.setenv("HUB_EXTRA_SYSTEMS", "connectors.network_drive")
    monkeypatch.setenv("NETWORK_DRIVE_ROOT", str(share))
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text('[systems.network_drive]\nerase = "delete"\n', "utf-8")
    with hub_store.session() as session:
        row = ledger.create_request(session, hub_store.hasher, kind,
                                    [Identifier(IdentifierKind.EMAIL, subject.email)])
        ledger.verify(session, row.id)
        ledger.transition(session, row, RequestState.IN_PROGRESS)
        ledger.ensure_tasks(session, row, ["network_drive"])
        return row.id, load_policy(policy_file), subject, share, written


def test_a_network_drive_erasure_settles_only_when_the_next_search_finds_nothing(
        hub_store, tmp_path, monkeypatch):
    """The hub never edits files; it lists them. The operator's confirmation is not taken
    on trust: the task runs again and settles only when the share names nobody."""
    from pipelines.requests import run_task
    from pipelines.resources import ConnectorsResource

    rid, policy, subject, share, written = drive_request(hub_store, tmp_path, monkeypatch,
                                                         RequestKind.ERASURE)

    def one_round() -> str:
        run_task(hub_store, ConnectorsResource(), policy, rid, "network_drive",
                 last_attempt=True)
        with hub_store.session() as session:
            ledger.finalise(session, hub_store.hasher, ledger.get_request(session, rid))
            return ledger.get_task(session, rid, "network_drive").state

    def confirm(note: str) -> None:
        with hub_store.session() as session:
            review.confirm_task(session, rid, "network_drive", TaskState.DONE, note=note,
                                actor="liisa")
            assert ledger.get_task(session, rid, "network_drive").state == TaskState.PENDING
            row = ledger.get_request(session, rid)
            assert row.state == RequestState.VERIFIED
            ledger.transition(session, row, RequestState.IN_PROGRESS)

    run_task(hub_store, ConnectorsResource(), policy, rid, "network_drive", last_attempt=True)
    with hub_store.session() as session:  # found in review: while the run still goes, a
        # confirmation would leave the task pending with no run to pick it up
        with pytest.raises(LedgerError, match="still running"):
            review.confirm_task(session, rid, "network_drive", TaskState.DONE, note="x",
                                actor="liisa")
        ledger.finalise(session, hub_store.hasher, ledger.get_request(session, rid))
        assert ledger.get_task(session, rid, "network_drive").state == TaskState.MANUAL_PENDING
    assert all(path.exists() for path in written)  # listed, never touched
    confirm("said done, but did nothing")
    assert one_round() == TaskState.MANUAL_PENDING  # the share still names the subject

    ours = [p for p in written if p.name != "asiakkaat.xlsx"]
    for path in ours:
        path.unlink()
    # the customer list names everyone: the operator redacts the subject's row
    import openpyxl

    sheet_file = share / "asiakkaat.xlsx"
    book = openpyxl.load_workbook(sheet_file)
    for row_cells in book.active.iter_rows():
        if any(subject.email == (c.value or "") for c in row_cells):
            for cell in row_cells:
                cell.value = None
    book.save(sheet_file)
    confirm("deleted the contract, notes and quote; removed the row from the customer list")
    assert one_round() == TaskState.DONE  # deleted by hand, read back: named nowhere
    with hub_store.session() as session:
        task = ledger.get_task(session, rid, "network_drive")
        assert task.evidence["confirmed"]["by"] == "liisa"
        assert task.evidence["verified"] is True
        assert ledger.get_request(session, rid).state == RequestState.COMPLETED
        # Rule 6: paths are keyed hashes now, the counts stay; the journal likewise.
        kept = json.dumps(task.evidence, ensure_ascii=False)
        journalled = [r.record_id for r in session.execute(select(TaskActionRow).where(
            TaskActionRow.request_id == rid)).scalars()]
        surname = subject.name.split()[-1]
        assert surname not in kept and not any(surname in r for r in journalled)
        assert "puhelu" not in kept and "koulutussopimus" not in kept
        ids = [r["record_id"] for r in task.evidence["records"]]
        # the four files that named her by e-mail (the notes name her by phone only)
        assert len(ids) == 4 and all(i.startswith("hmac:") for i in ids)
        assert journalled and all(r.startswith("hmac:") for r in journalled)
        assert task.evidence["vendor"]["files_checked"] == 4


def test_a_network_drive_access_request_keeps_no_path_once_it_settles(
        hub_store, tmp_path, monkeypatch):
    """Found in review: paths were minimised after an erasure only; an access request
    kept every file name on the share that mentioned the subject (and the names of
    others in them) in its evidence for ever. The subject's copy has the paths; the
    hub keeps keyed hashes and counts."""
    from pipelines.requests import run_task
    from pipelines.resources import ConnectorsResource

    rid, policy, subject, _, _ = drive_request(hub_store, tmp_path, monkeypatch,
                                               RequestKind.ACCESS)
    run_task(hub_store, ConnectorsResource(), policy, rid, "network_drive", last_attempt=True)
    with hub_store.session() as session:
        before = json.dumps(ledger.get_task(session, rid, "network_drive").evidence,
                            ensure_ascii=False)
        assert "puhelu" in before  # while it runs, the task names the files
        ledger.finalise(session, hub_store.hasher, ledger.get_request(session, rid))
        assert ledger.get_request(session, rid).state == RequestState.COMPLETED
        task = ledger.get_task(session, rid, "network_drive")
        kept = json.dumps(task.evidence, ensure_ascii=False)
        assert "puhelu" not in kept and subject.name.split()[-1] not in kept
        ids = [r["record_id"] for r in task.evidence["records"]]
        assert ids and all(i.startswith("hmac:") for i in ids)
