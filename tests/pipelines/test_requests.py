"""The subject-request job end to end against the sandbox, for each request kind."""

import stat

import httpx

from hub import audit, ledger
from hub.ledger import RequestKind, RequestState
from hub.models import AuditEventRow
from tests.pipelines.jobs import at_vendor, file_request, run, run_to_the_end, tasks


def writes(vendors) -> int:
    total = 0
    for url in vendors.urls.values():
        for call in httpx.get(f"{url}/__sandbox/calls", timeout=10).json()["calls"]:
            if call["method"] in ("POST", "PUT", "PATCH", "DELETE"):
                total += call["count"]
    return total


def test_erasure_deletes_everywhere_but_retains_the_invoiced_customer(indexed, vendors,
                                                                     resources):
    rid = file_request(indexed, RequestKind.ERASURE, "aino.virtanen@example.fi")
    assert run(rid, resources).success
    first = tasks(indexed, rid)
    # Her synced mail, call activity and file cannot be removed through the API: an
    # operator must deal with them and confirm (they are listed in the evidence).
    assert first["pipedrive"].state == "manual_pending"
    assert {r["kind"] for r in first["pipedrive"].evidence["records"]
            if r["action"] == "kept"} >= {"mailMessage"}
    assert run_to_the_end(indexed, rid, resources).success
    done = tasks(indexed, rid)
    assert {s: t.state for s, t in done.items()} == {
        "pipedrive": "done", "mailchimp": "done", "typeform": "done", "netvisor": "retained"}
    assert done["pipedrive"].evidence["confirmed"]["by"] == "test-operator"
    hold = next(r for r in done["netvisor"].evidence["records"] if r["action"] == "retained")
    assert hold["legal_basis"] and hold["retained_until"] >= "2032-12-31"
    assert done["mailchimp"].evidence["verified"] is True
    # Proof at the vendors, not just in our books.
    assert at_vendor(vendors, "mailchimp", "aino.virtanen@example.fi") == []
    assert at_vendor(vendors, "typeform", "aino.virtanen@example.fi") == []
    persons = [r for r in at_vendor(vendors, "pipedrive", "aino.virtanen@example.fi")
               if r["kind"] == "person"]
    assert persons and all(r["state"] == "deleted" for r in persons)
    with indexed.session() as session:
        row = ledger.get_request(session, rid)
        assert row.state == RequestState.PARTIALLY_COMPLETED
        assert ledger.identifiers_of(session, rid) == []  # scrubbed: only hashes remain
        assert audit.verify(session).ok


def test_erasure_run_twice_changes_nothing_the_second_time(indexed, vendors, resources):
    rid = file_request(indexed, RequestKind.ERASURE, "eeva.makela@example.fi")
    assert run_to_the_end(indexed, rid, resources).success
    first = {s: (t.state, t.attempts) for s, t in tasks(indexed, rid).items()}
    for url in vendors.urls.values():
        httpx.delete(f"{url}/__sandbox/calls", timeout=10)
    second = run(rid, resources)
    assert not second.success  # a completed request does not run again
    assert writes(vendors) == 0
    assert {s: (t.state, t.attempts) for s, t in tasks(indexed, rid).items()} == first


def test_opt_out_unsubscribes_in_every_marketing_system(indexed, vendors, resources):
    rid = file_request(indexed, RequestKind.OPT_OUT, "mikko.hakkinen@example.fi")
    assert run_to_the_end(indexed, rid, resources).success
    done = tasks(indexed, rid)
    assert done["mailchimp"].action == "unsubscribed"
    assert done["pipedrive"].action == "unsubscribed"
    assert done["typeform"].action == "nothing_to_do"
    members = [r for r in at_vendor(vendors, "mailchimp", "mikko.hakkinen@example.fi")]
    assert members and all(r["state"] == "unsubscribed" for r in members)
    with indexed.session() as session:
        assert ledger.get_request(session, rid).state == RequestState.COMPLETED


def test_access_writes_a_private_bundle_with_its_checksum_audited(indexed, vendors, resources,
                                                                  tmp_path):
    rid = file_request(indexed, RequestKind.ACCESS, "eeva.makela@example.fi")
    assert run_to_the_end(indexed, rid, resources).success
    folder = tmp_path / "home" / "exports" / rid
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["data.json", "index.html", "mailchimp.csv", "netvisor.csv",
                     "pipedrive.csv", "typeform.csv"]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())
    assert "eeva.makela@example.fi" in (folder / "data.json").read_text().lower()
    assert not (tmp_path / "home" / "exports" / ".parts" / rid).exists()
    with indexed.session() as session:
        events = session.query(AuditEventRow).filter_by(request_id=rid,
                                                        action="export.written").all()
        assert len(events) == 1 and "sha256" in events[0].payload


def test_a_failing_vendor_fails_only_its_task_with_the_vendors_answer(indexed, vendors,
                                                                      resources):
    httpx.put(f"{vendors.urls['netvisor']}/__sandbox/faults", json={"error_rate": 1.0},
              timeout=10).raise_for_status()
    try:
        rid = file_request(indexed, RequestKind.ERASURE, "eeva.makela@example.fi")
        result = run(rid, resources)
    finally:
        httpx.put(f"{vendors.urls['netvisor']}/__sandbox/faults", json={"error_rate": 0},
                  timeout=10)
    assert not result.success
    done = tasks(indexed, rid)
    assert done["netvisor"].state == "failed"
    assert done["netvisor"].attempts == 4  # the op's retry policy: 1 + 3 retries
    assert done["netvisor"].error and "eeva" not in done["netvisor"].error.lower()
    others = {done[s].state for s in ("pipedrive", "mailchimp", "typeform")}
    assert "failed" not in others and "running" not in others


def test_a_missing_secret_fails_its_task_with_a_clear_message(indexed, vendors, resources,
                                                              monkeypatch):
    monkeypatch.delenv("NETVISOR_CUSTOMER_KEY")
    rid = file_request(indexed, RequestKind.ERASURE, "eeva.makela@example.fi")
    assert not run(rid, resources).success
    failed = tasks(indexed, rid)["netvisor"]
    assert failed.state == "failed" and failed.attempts == 1  # not retried: config, not luck
    assert "NETVISOR_CUSTOMER_KEY" in failed.error
    others = {tasks(indexed, rid)[s].state for s in ("pipedrive", "mailchimp", "typeform")}
    assert "failed" not in others and "running" not in others


def test_every_request_kind_completes_under_vendor_faults(indexed, vendors, resources):
    """5xx, 429 and dropped connections at every vendor: the retries absorb them, every
    system answers (rule 1) and what was done is done once (rule 8)."""
    faults = {"error_rate": 0.1, "rate_limit_rate": 0.05, "drop_rate": 0.05, "seed": 7}
    people = {RequestKind.ACCESS: "eeva.makela@example.fi",
              RequestKind.OPT_OUT: "mikko.hakkinen@example.fi",
              RequestKind.ERASURE: "aino.virtanen@example.fi"}
    for url in vendors.urls.values():
        httpx.put(f"{url}/__sandbox/faults", json=faults, timeout=10).raise_for_status()
    try:
        ids = {kind: file_request(indexed, kind, email) for kind, email in people.items()}
        results = {kind: run_to_the_end(indexed, rid, resources).success
                   for kind, rid in ids.items()}
        injected = sum(c["count"] for url in vendors.urls.values()
                       for c in httpx.get(f"{url}/__sandbox/calls", timeout=10).json()["calls"]
                       if c["status"] in (0, 429, 500, 503))
    finally:
        for url in vendors.urls.values():
            httpx.put(f"{url}/__sandbox/faults", json={"error_rate": 0, "rate_limit_rate": 0,
                                                      "drop_rate": 0}, timeout=10)
    assert injected >= 5  # the faults did happen
    assert results == dict.fromkeys(people, True)
    for kind, rid in ids.items():
        states = {s: t.state for s, t in tasks(indexed, rid).items()}
        assert set(states) == {"pipedrive", "mailchimp", "typeform", "netvisor"}
        assert "failed" not in states.values() and "running" not in states.values(), kind
    assert tasks(indexed, ids[RequestKind.ERASURE])["netvisor"].state == "retained"
    assert at_vendor(vendors, "mailchimp", people[RequestKind.ERASURE]) == []
    members = at_vendor(vendors, "mailchimp", people[RequestKind.OPT_OUT])
    assert members and all(r["state"] == "unsubscribed" for r in members)


def test_an_access_request_after_an_erasure_shows_what_is_kept_and_why(indexed, vendors,
                                                                     resources, tmp_path):
    """Found: the bundle said "nothing about you is held" in Netvisor while the hub itself
    recorded a hold there."""
    erasure = file_request(indexed, RequestKind.ERASURE, "aino.virtanen@example.fi")
    assert run_to_the_end(indexed, erasure, resources).success
    access = file_request(indexed, RequestKind.ACCESS, "aino.virtanen@example.fi")
    assert run_to_the_end(indexed, access, resources).success
    letter = (tmp_path / "home" / "exports" / access / "index.html").read_text("utf-8")
    netvisor = letter.split("Visma Netvisor", 1)[1].split("<h2>", 1)[0]
    # In the subject's language (Finnish, the default).
    assert "Säilytetään lain nojalla" in netvisor and "2032-12-31" in netvisor
    assert "Kirjanpitolaki" in netvisor and erasure in netvisor
    assert "Tässä järjestelmässä ei ole tietoja sinusta" not in netvisor
