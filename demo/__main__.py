"""`make demo`: the hub's main job, end to end, against the emulated vendors.

A shell on top of every layer, like hub/cli.py (DESIGN.md, Layers): it starts
the sandbox in child processes, seeds a network drive, runs the nightly
reconciliation and five subject requests through a real Dagster instance with the
multiprocess executor, and then reads back from the vendors, not from the hub's own
books, that each request took effect. Beside the four vendors the company has two
systems without an API: a paper archive (a manual system in the policy, confirmed by
the operator) and a network drive (searched by the hub, cleaned by the operator, read
back by the next run). Everything lives under `.hub/demo/`, recreated on every run, in sandbox mode:
it never touches a real deployment's database, instance or `.env` settings.

Exit 0 only if every outcome is the one expected; the sandbox is stopped either way.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx

from hub import audit, ledger, manual, outcomes, review
from hub.domain import Corrections, Identifier, IdentifierKind
from hub.identity import mask_email, mask_phone
from hub.ledger import RequestKind, RequestState, TaskState
from hub.review import Decision
from hub.settings import load_settings
from hub.store import Store, open_store
from sandbox.people import SHARED_CASES, generate_people

HOME = Path(".hub/demo")
PEOPLE = 200
SEED = 42
# The company's two systems without an API (rule 10), declared as a deployment would.
EXTRA_POLICY = """
[systems.network_drive]
erase = "delete"
legal_basis = "GDPR art. 6(1)(b) contract (customer files)"

[systems.paper_archive]
kind = "manual"
title = "Paper contracts (locked cabinet)"
due_days = 7
[systems.paper_archive.instructions]
access = "Photocopy the subject's signed contracts; post them with the access letter."
erasure = "Shred the subject's contracts unless their retention runs; note what is kept."
default = "Look for the subject's contracts by surname and note what you found."

# Customers six years after their last contact are erased (a dry run here: listed only).
[retention]
after_relationship_years = 6
"""


@dataclass(frozen=True, eq=False)  # each case is itself: keyed by identity
class Case:
    """One request the demo files, and what each system must end as: (state, action).

    ``decide``: what the operator decides for the candidate records the request
    reaches but may not act on alone (DESIGN.md rule 9): approve them (the subject's
    own free-text answers) or exclude them (a colleague's records found through the
    company's shared phone). Leftovers the vendor's API cannot remove are confirmed.
    """

    kind: RequestKind
    email: str
    story: str
    tasks: dict[str, tuple[str, str]]
    state: RequestState
    phone: str | None = None
    decide: Decision = Decision.APPROVED
    corrections: Corrections | None = None


# Seed 42's colleagues sharing the company phone (sandbox.people.SHARED_CASES).
_PEOPLE = generate_people(PEOPLE, SEED)
MIKA, SUSANNA = (_PEOPLE[i] for i in SHARED_CASES["switchboard"])

CASES = (
    Case(RequestKind.ACCESS, "eeva.makela@example.fi",
         "a customer asks what the company holds on her",
         {"pipedrive": ("done", "exported"), "mailchimp": ("done", "exported"),
          "typeform": ("done", "exported"), "netvisor": ("done", "exported"),
          "network_drive": ("done", "exported"), "paper_archive": ("done", "done_by_hand")},
         RequestState.COMPLETED),
    Case(RequestKind.OPT_OUT, "mikko.hakkinen@example.fi",
         "a subscriber forbids direct marketing",
         {"pipedrive": ("done", "unsubscribed"), "mailchimp": ("done", "unsubscribed"),
          "typeform": ("done", "nothing_to_do"), "netvisor": ("not_found", "not_found"),
          "network_drive": ("not_found", "not_found"),
          "paper_archive": ("done", "done_by_hand")},
         RequestState.COMPLETED),
    Case(RequestKind.ERASURE, "aino.virtanen@example.fi",
         "a customer with an open invoice asks to be erased",
         {"pipedrive": ("done", "deleted"), "mailchimp": ("done", "permanently_deleted"),
          "typeform": ("done", "deleted"), "netvisor": ("retained", "retained"),
          "network_drive": ("done", "deleted"), "paper_archive": ("done", "done_by_hand")},
         RequestState.PARTIALLY_COMPLETED),
    Case(RequestKind.ERASURE, MIKA.email,
         "a customer asks to be erased, giving the phone he shares with a colleague",
         {"pipedrive": ("done", "deleted"), "mailchimp": ("done", "permanently_deleted"),
          "typeform": ("not_found", "not_found"), "netvisor": ("not_found", "not_found"),
          "network_drive": ("not_found", "not_found"),
          "paper_archive": ("done", "done_by_hand")},
         RequestState.COMPLETED, phone=MIKA.phone, decide=Decision.EXCLUDED),
    Case(RequestKind.RECTIFICATION, "eeva.makela@example.fi",
         "a customer married and asks for her new name everywhere",
         {"pipedrive": ("done", "rectified"), "mailchimp": ("done", "rectified"),
          "typeform": ("done", "kept"), "netvisor": ("done", "rectified"),
          "network_drive": ("done", "kept"), "paper_archive": ("done", "done_by_hand")},
         RequestState.COMPLETED, corrections=Corrections(name="Eeva Mäkelä-Korhonen")),
)


@dataclass
class Verdict:
    """What was checked and what went wrong; the demo's exit code comes from here."""

    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, good: str, bad: str) -> None:
        print(f"    {'ok ' if ok else 'FAIL'} {good if ok else bad}", flush=True)
        if not ok:
            self.problems.append(bad)


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def timed(label: str, action: Callable[[], object]) -> object:
    print(f"    {label} ...", end="", flush=True)
    started = time.monotonic()
    result = action()
    print(f" {time.monotonic() - started:.1f} s", flush=True)
    return result


def main() -> int:
    home = HOME.resolve()
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    # Read when the declarations are collected, so before the pipelines are imported.
    os.environ.update(_company_systems(home))

    from dagster import DagsterInstance

    from pipelines.launch import ensure_dagster_home, run_reconciliation, run_request
    from sandbox.server import Sandbox

    verdict = Verdict()
    step(f"starting the sandbox: four emulated vendors, {PEOPLE} seeded Finnish people")
    # Pipedrive's real 2-second windows (20 calls, search 10) would only make the demo
    # wait; its daily token budget stays the real one.
    fast = {"pipedrive": {"burst_limit": 400, "search_burst_limit": 50}}
    with Sandbox(people=PEOPLE, seed=SEED, in_process=False, settings=fast) as box:
        for vendor, url in box.urls.items():
            print(f"    {vendor:<10} {url}")
        # Child processes (Dagster's run and step workers) inherit this environment.
        os.environ.update(box.env)
        os.environ.update({"HUB_MODE": "sandbox", "HUB_HOME": str(home),
                           "HUB_DATABASE_URL": f"sqlite:///{home / 'hub.db'}",
                           "DAGSTER_HOME": str(home / "dagster")})
        ensure_dagster_home(home)
        store = open_store(load_settings())
        try:
            with DagsterInstance.get() as instance:
                _reconcile(instance, run_reconciliation, verdict)
                ids = _file_requests(store)
                _run_requests(instance, run_request, store, ids, verdict)
                _prove(box.urls, store, ids, verdict)
                _next_night(instance, run_reconciliation, verdict)
            _retention(store, verdict)
            _audit(store, verdict)
        finally:
            store.close()
        print("\n    stopping the sandbox", flush=True)
    print(f"\nEverything is under {HOME}/ (hub database, Dagster instance, exports); "
          "`make ui` shows the runs in Dagster.")
    if verdict.problems:
        print(f"\nDEMO FAILED: {len(verdict.problems)} outcome(s) not as expected", flush=True)
        return 1
    print("\nDemo passed: every outcome as expected.", flush=True)
    return 0


def _person(email: str):  # noqa: ANN202 - a sandbox.people.Person
    return next(p for p in _PEOPLE if p.email == email)


def _company_systems(home: Path) -> dict[str, str]:
    """The policy with the paper archive and the network drive, and the share itself:
    the erased customer's contract, notes and quote, and a customer list naming her,
    the customer asking for her data and the subscriber."""
    from sandbox.network_drive import demo_files

    share = home / "share"
    subjects = [_person(e) for e in (_case(RequestKind.ERASURE).email,
                                     _case(RequestKind.ACCESS).email)]
    step(f"seeding the network drive: {len(demo_files(share, subjects))} office documents "
         "(Word, Excel, notes, PDF)")
    policy = home / "policy.toml"
    packaged = (Path(__file__).resolve().parents[1] / "hub" / "default_policy.toml")
    policy.write_text(packaged.read_text("utf-8") + EXTRA_POLICY, "utf-8")
    return {"HUB_POLICY_FILE": str(policy), "HUB_EXTRA_SYSTEMS": "connectors.network_drive",
            "NETWORK_DRIVE_ROOT": str(share)}


def _reconcile(instance, run_reconciliation, verdict: Verdict) -> None:
    from dagster import AssetKey

    step("nightly reconciliation: every system synced into the person index (Dagster run)")
    result = timed("running the reconciliation job", lambda: run_reconciliation(
        instance, full=True, log_level="WARNING"))
    verdict.check(result.success, f"run {result.run_id[:8]} succeeded",
                  f"reconciliation run {result.run_id[:8]} failed")
    for name in ("pipedrive_people", "mailchimp_people", "typeform_people", "netvisor_people",
                 "person_index"):
        event = instance.get_latest_materialization_event(AssetKey(name))
        if event is None:
            continue
        meta = {k: v.value for k, v in event.asset_materialization.metadata.items()}
        if name == "person_index":
            print(f"    {name:<18} {meta.get('records_reclustered')} records clustered into "
                  f"persons, {meta.get('merges')} merges")
        else:
            print(f"    {name:<18} {meta.get('records_seen'):>5} records, "
                  f"{meta.get('api_calls')} API calls, {meta.get('duration_s')} s")


def _file_requests(store: Store) -> dict[Case, str]:
    step(f"filing and verifying {len(CASES)} subject requests "
         "(due one calendar month after receipt)")
    ids: dict[Case, str] = {}
    with store.session() as session:
        for case in CASES:
            given = [Identifier(IdentifierKind.EMAIL, case.email)]
            if case.phone:
                given.append(Identifier(IdentifierKind.PHONE, case.phone))
            row = ledger.create_request(session, store.hasher, case.kind, given,
                                        corrections=case.corrections)
            ledger.verify(session, row.id)
            ids[case] = row.id
            shown = mask_email(case.email) + (f" {mask_phone(case.phone)}" if case.phone else "")
            print(f"    {row.id}  {case.kind.value:<8} {shown:<32} due {row.due_on}  "
                  f"({case.story})")
    return ids


def _run_requests(instance, run_request, store: Store, ids: dict[Case, str],
                  verdict: Verdict) -> None:
    step("running each request through Dagster: one op per system, in parallel")
    for case in CASES:
        rid = ids[case]
        result = timed(f"{rid} {case.kind.value}", lambda rid=rid, case=case: run_request(
            rid, case.kind.value, instance, log_level="WARNING"))
        rounds = 1
        while result.success and _state(store, rid) == RequestState.AWAITING_REVIEW \
                and rounds < 3:
            _operator_decides(store, rid, case, verdict)
            rounds += 1
            result = timed(f"{rid} round {rounds}", lambda rid=rid, case=case: run_request(
                rid, case.kind.value, instance, log_level="WARNING"))
        with store.session() as session:
            row = ledger.get_request(session, rid)
            tasks = ledger.tasks_of(session, rid)
            print(outcomes.text_table(tasks, indent="      "))
            got = {t.system: (t.state, t.action) for t in tasks}
            state = row.state
        verdict.check(result.success and got == case.tasks and state == case.state,
                      f"{case.kind.value}: request {state}, every system as expected "
                      f"(Dagster run {result.run_id[:8]}, {rounds} round(s))",
                      f"{case.kind.value} {rid}: request {state}, systems {got}")


def _state(store: Store, request_id: str) -> str:
    with store.session() as session:
        return ledger.get_request(session, request_id).state


def _operator_decides(store: Store, request_id: str, case: Case, verdict: Verdict) -> None:
    """What an operator does at `hub request review` and `hub task confirm`."""
    with store.session() as session:
        items = [i for i in review.items(session, request_id) if i.decision == "pending"]
        if items:
            print(f"    {request_id} waits for review: hub request review {request_id}")
            for item in items:
                print(f"      {item.number:>3}  {item.system:<10} {item.kind:<12} "
                      f"{item.record:<22} {item.reason}")
            review.decide(session, request_id, [i.number for i in items], case.decide,
                          actor="demo-operator")
            print(f"    the operator {case.decide.value} {len(items)} candidate(s)")
        for task in ledger.tasks_of(session, request_id):
            if task.state != TaskState.MANUAL_PENDING:
                continue
            by_hand = manual.of(task)
            if by_hand is not None:
                print(f"    {by_hand.title}, by hand by {by_hand.due}: {by_hand.instructions}")
                note = "done as instructed"
            elif task.system == "network_drive" and case.kind == RequestKind.ERASURE:
                print(f"    network_drive: {(task.evidence or {}).get('follow_up')}")
                cleaned = _clean_share(task.evidence or {}, case)
                print(f"    the operator deleted or redacted {cleaned} file(s) on the share")
                note = f"deleted or redacted {cleaned} file(s)"
            else:
                print(f"    {task.system}: {(task.evidence or {}).get('follow_up')}")
                note = ("corrected by hand" if case.kind == RequestKind.RECTIFICATION
                        else "removed by hand in the vendor's UI")
            review.confirm_task(session, request_id, task.system, TaskState.DONE, note=note,
                                actor="demo-operator")
            print(f"    the operator confirmed {task.system}")
        verdict.check(ledger.get_request(session, request_id).state == RequestState.VERIFIED,
                      f"{request_id}: every decision made, the request runs again",
                      f"{request_id}: still waiting after the operator's decisions")


def _clean_share(evidence: dict, case: Case) -> int:
    """What the operator does on the share: delete the subject's own documents and take
    her row out of the customer list (which names other customers too)."""
    import openpyxl

    root = Path(os.environ["NETWORK_DRIVE_ROOT"])
    listed = [r["record_id"] for r in evidence.get("records", []) if r["action"] == "kept"]
    for name in listed:
        path = root / name
        if path.suffix != ".xlsx":
            path.unlink()
            continue
        book = openpyxl.load_workbook(path)
        for row in book.active.iter_rows():
            if any(str(cell.value or "").lower() == case.email for cell in row):
                for cell in row:
                    cell.value = None
        book.save(path)
    return len(listed)


def _find(urls: dict[str, str], system: str, email: str) -> list[dict]:
    response = httpx.get(f"{urls[system]}/__sandbox/find", params={"email": email}, timeout=30)
    response.raise_for_status()
    return response.json()["records"]


def _record(urls: dict[str, str], system: str, kind: str, record_id: str) -> dict | None:
    response = httpx.get(f"{urls[system]}/__sandbox/records/{kind}/{record_id}", timeout=30)
    return response.json() if response.status_code == 200 else None


def _case(kind: RequestKind) -> Case:
    return next(c for c in CASES if c.kind == kind)


def _prove(urls: dict[str, str], store: Store, ids: dict[Case, str],
           verdict: Verdict) -> None:
    step("proof, read back from the vendors (the sandbox's inspection API)")
    erased = _case(RequestKind.ERASURE).email
    who = mask_email(erased)
    verdict.check(_find(urls, "mailchimp", erased) == [],
                  f"mailchimp: {who} is in no audience (permanently deleted)",
                  f"mailchimp still holds {who}")
    verdict.check(_find(urls, "typeform", erased) == [],
                  f"typeform: no response holds {who}", f"typeform still holds {who}")
    persons = [r for r in _find(urls, "pipedrive", erased) if r["kind"] == "person"]
    verdict.check(bool(persons) and all(r["state"] == "deleted" for r in persons),
                  f"pipedrive: {len(persons)} person(s) of {who} deleted",
                  f"pipedrive persons of {who}: {[r['state'] for r in persons]}")
    from connectors.registry import build_connector

    with build_connector("network_drive") as drive:
        left = drive.find([Identifier(IdentifierKind.EMAIL, erased)])
    verdict.check(not left, f"network drive: no document names {who} any more (read back)",
                  f"network drive: {len(left)} document(s) still name {who}")
    with store.session() as session:
        archive = ledger.get_task(session, ids[_case(RequestKind.ERASURE)], "paper_archive")
        confirmed = (archive.evidence or {}).get("confirmed") or {}
    verdict.check(confirmed.get("by") == "demo-operator",
                  f"paper archive: confirmed by {confirmed.get('by')} at "
                  f"{str(confirmed.get('at'))[:16]} ({confirmed.get('note')})",
                  "paper archive: no operator's confirmation recorded")
    _prove_retained(urls, store, ids[_case(RequestKind.ERASURE)], verdict)
    _prove_colleague_untouched(urls, verdict)

    opted = _case(RequestKind.OPT_OUT).email
    who = mask_email(opted)
    members = _find(urls, "mailchimp", opted)
    verdict.check(bool(members) and all(m["state"] == "unsubscribed" for m in members),
                  f"mailchimp: {who} unsubscribed in {len(members)} audience(s)",
                  f"mailchimp members of {who}: {[m['state'] for m in members]}")
    statuses = [(_record(urls, "pipedrive", "person", str(r["id"])) or {}).get(
        "marketing_status") for r in _find(urls, "pipedrive", opted) if r["kind"] == "person"]
    verdict.check(bool(statuses) and set(statuses) == {"unsubscribed"},
                  f"pipedrive: marketing status of {who} is unsubscribed",
                  f"pipedrive marketing status of {who}: {statuses}")
    _prove_bundle(store, ids[_case(RequestKind.ACCESS)], verdict)
    _prove_rectified(urls, verdict)


def _prove_rectified(urls: dict[str, str], verdict: Verdict) -> None:
    case = _case(RequestKind.RECTIFICATION)
    new = case.corrections.name if case.corrections else None
    names = [(_record(urls, "pipedrive", "person", str(r["id"])) or {}).get("name")
             for r in _find(urls, "pipedrive", case.email) if r["kind"] == "person"]
    verdict.check(bool(names) and set(names) == {new},
                  f"pipedrive: {mask_email(case.email)} now carries the corrected name",
                  f"pipedrive names of {mask_email(case.email)} after the rectification: "
                  f"{len(names)} person(s), corrected {names.count(new)}")


def _prove_colleague_untouched(urls: dict[str, str], verdict: Verdict) -> None:
    gone = [r for r in _find(urls, "pipedrive", MIKA.email) if r["kind"] == "person"]
    verdict.check(bool(gone) and all(r["state"] == "deleted" for r in gone),
                  f"pipedrive: {mask_email(MIKA.email)} deleted",
                  f"pipedrive persons of {mask_email(MIKA.email)}: {gone}")
    kept = [r for r in _find(urls, "pipedrive", SUSANNA.email) if r["kind"] == "person"]
    members = _find(urls, "mailchimp", SUSANNA.email)
    verdict.check(bool(kept) and all(r["state"] == "active" for r in kept) and bool(members),
                  f"pipedrive and mailchimp: {mask_email(SUSANNA.email)}, the colleague "
                  "with the same phone, untouched",
                  f"the colleague {mask_email(SUSANNA.email)} was touched: {kept} {members}")


def _prove_retained(urls: dict[str, str], store: Store, request_id: str,
                    verdict: Verdict) -> None:
    with store.session() as session:
        task = ledger.get_task(session, request_id, "netvisor")
        held = [r for r in (task.evidence or {}).get("records", []) if r.get("retained_until")]
    for rec in held:
        live = _record(urls, "netvisor", "customer", rec["record_id"]) or {}
        fields = live.get("fields", {})
        invoices = live.get("invoices", [])
        open_claim = "17(3)(e)" in (rec.get("legal_basis") or "")
        verdict.check(
            bool(invoices) and not fields.get("PhoneNumber")
            and bool(fields.get("Email")) == open_claim,
            f"netvisor: customer {rec['record_id']} kept with {len(invoices)} invoice(s), "
            f"held until {rec['retained_until']} ({rec['legal_basis']}); its phone blanked, "
            + ("its e-mail kept to collect the open invoice" if open_claim
               else "its e-mail blanked") + f", state {live.get('state')}",
            f"netvisor customer {rec['record_id']}: invoices {len(invoices)}, "
            f"state {live.get('state')}")
    verdict.check(bool(held), "netvisor: the legal hold is in the evidence",
                  "netvisor: no retained record in the evidence")


def _prove_bundle(store: Store, request_id: str, verdict: Verdict) -> None:
    folder = store.settings.home / "exports" / request_id
    files = sorted(folder.iterdir()) if folder.exists() else []
    private = bool(files) and stat.S_IMODE(folder.stat().st_mode) == 0o700 and all(
        stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    systems = []
    if (folder / "data.json").exists():
        systems = sorted(json.loads((folder / "data.json").read_text("utf-8")).get("systems", {}))
    verdict.check(private and len(systems) == 5,
                  f"access export: {HOME / 'exports' / request_id}/ "
                  f"({', '.join(f.name for f in files)}), owner-only, {len(systems)} systems",
                  f"access export {folder}: files {[f.name for f in files]}, "
                  f"systems {systems}, owner-only {private}")


def _next_night(instance, run_reconciliation, verdict: Verdict) -> None:
    step("the next night's reconciliation: the promises checked against every system")
    result = timed("running the reconciliation job", lambda: run_reconciliation(
        instance, log_level="WARNING"))
    verdict.check(result.success, f"run {result.run_id[:8]} succeeded",
                  f"reconciliation run {result.run_id[:8]} failed")
    checks = [e.event_specific_data for e in result.all_events
              if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    for check in sorted(checks, key=lambda c: c.check_name):
        verdict.check(check.passed, f"check {check.check_name} passed",
                      f"check {check.check_name} failed: {check.description}")
    verdict.check(len(checks) == 4, "4 checks evaluated", f"{len(checks)} checks evaluated")


def _retention(store: Store, verdict: Verdict) -> None:
    from hub import retention
    from hub.policy import load_policy

    policy = load_policy(store.settings.policy_file)
    rule = policy.retention
    step(f"the retention sweep, a dry run: customers {rule.after_relationship_years} years "
         "after their last contact (hub retention sweep; daily in Dagster)")
    with store.session() as session:
        due = retention.due(session, policy, date.today(), timezone=store.settings.timezone)
        requests = len(ledger.list_requests(session, today=date.today()))
    for item in due[:5]:
        print(f"    {item.reason.value:<18} last contact {item.since}  {item.who}")
    if len(due) > 5:
        print(f"    ... and {len(due) - 5} more")
    verdict.check(bool(due) and requests == len(CASES),
                  f"{len(due)} due, listed masked; nothing filed (file_requests is off)",
                  f"retention: {len(due)} due, {requests} requests in the ledger")


def _audit(store: Store, verdict: Verdict) -> None:
    step("the audit trail")
    with store.session() as session:
        report = audit.verify(session)
    verdict.check(report.ok, f"hash chain intact over {report.events} events",
                  f"audit trail broken at event {report.seq}: {report.problem}")


if __name__ == "__main__":
    sys.exit(main())
