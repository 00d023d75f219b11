"""Every page of the desk through Starlette's TestClient, over the hub's real functions."""

from __future__ import annotations

import io
import logging
import re
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from desk import i18n
from hub import bundle, deadlines, ledger, outbox, review
from hub.domain import Export, ExportSection, Identifier, IdentifierKind, RecordRef
from hub.ledger import RequestKind, RequestState, TaskState
from hub.models import AuditEventRow, DeskUserRow
from hub.policy import load_policy

AINO = "aino.virtanen@example.fi"
PHONE = "+358401234567"
ID = re.compile(r"R-\d{8}-[0-9a-f]{6}")


def filed(store, kind=RequestKind.ERASURE, email=AINO, *, days_ago: int = 0,
          verified: bool = False) -> str:
    """A request filed through the hub, as the CLI would."""
    received = datetime.now(UTC) - timedelta(days=days_ago)
    with store.session() as session:
        row = ledger.create_request(session, store.hasher, kind,
                                    [Identifier(IdentifierKind.EMAIL, email)],
                                    name="Aino Virtanen", received_at=received)
        if verified:
            ledger.verify(session, row.id)
        return row.id


def events(store, action: str) -> list[AuditEventRow]:
    with store.session() as session:
        return list(session.execute(select(AuditEventRow).where(
            AuditEventRow.action == action).order_by(AuditEventRow.seq)).scalars())


def with_tasks(store, request_id: str) -> None:
    """The job's work as the hub records it: one task done, one failed, one by hand,
    one with a candidate record to review."""
    with store.session() as session:
        row = ledger.get_request(session, request_id)
        ledger.transition(session, row, RequestState.IN_PROGRESS)
        tasks = {t.system: t for t in ledger.ensure_tasks(
            session, row, ["archive", "mailchimp", "netvisor", "pipedrive"])}
        for system in ("mailchimp", "netvisor", "pipedrive"):
            ledger.claim_task(session, request_id, system)
        ledger.move_task(session, tasks["mailchimp"], TaskState.DONE,
                         action="permanently_deleted", evidence={
                             "counts": {"permanently_deleted": 1}, "verified": True})
        ledger.move_task(session, tasks["netvisor"], TaskState.FAILED,
                         error="netvisor answered 503 Service Unavailable")
        review.register(session, request_id, [(RecordRef("pipedrive", "person", "4711"),
                                               "shares the phone +358 40 *** **67")])
        ledger.move_task(session, tasks["pipedrive"], TaskState.REVIEW, action="deleted",
                         evidence={"counts": {"deleted": 1}, "candidates_pending": 1})
        ledger.move_task(session, tasks["archive"], TaskState.MANUAL_PENDING, evidence={
            "manual": {"title": "Paper contracts", "instructions": "Shred the contract.",
                       "due": (datetime.now(UTC) + timedelta(days=5)).date().isoformat()}})
        ledger.transition(session, row, RequestState.AWAITING_REVIEW)


# --- filing ------------------------------------------------------------------------


def test_filing_a_request_keeps_every_identifier_the_receipt_date_and_who_filed(
        operator, desk_store, hub_settings):
    received = (datetime.now(UTC) - timedelta(days=10)).date()
    page = operator.post("/requests", {
        "kind": "erasure", "emails": f"{AINO}\nAino.Virtanen@Example.fi\naino@koti.fi",
        "phones": "040 123 4567", "name": "Aino Virtanen", "channel": "letter",
        "received": received.isoformat(), "language": "sv"})
    assert page.status_code == 200 and ID.fullmatch(page.url.path.rsplit("/", 1)[1])
    rid = page.url.path.rsplit("/", 1)[1]
    for shown in (AINO, "aino@koti.fi", PHONE, "Aino Virtanen"):
        assert shown in page.text
    with desk_store.session() as session:
        row = ledger.get_request(session, rid)
        assert row.channel == "letter" and row.language == "sv"
        assert deadlines.local_date(row.received_at, "Europe/Helsinki") == received
        assert row.due_on == deadlines.due_date(row.received_at, "Europe/Helsinki")
        assert len(ledger.identifiers_of(session, rid)) == 3
    [event] = events(desk_store, "request.received")
    assert event.actor == "operator" and AINO not in event.payload


def test_a_duplicate_is_warned_about_and_filed_only_when_meant(operator, desk_store):
    first = filed(desk_store)
    form = {"kind": "erasure", "emails": AINO, "channel": "email", "language": "fi"}
    warned = operator.post("/requests", form)
    assert warned.status_code == 409 and first in warned.text
    assert 'name="allow_duplicate"' in warned.text
    again = operator.post("/requests", {**form, "allow_duplicate": "yes"})
    assert again.status_code == 200 and again.url.path != f"/requests/{first}"


def test_a_second_access_request_this_year_is_flagged_chargeable(operator, desk_store):
    filed(desk_store, RequestKind.ACCESS)
    page = operator.post("/requests", {"kind": "access", "emails": AINO, "channel": "email",
                                       "language": "en", "allow_duplicate": "yes"},
                         headers={"accept-language": "en"})
    assert "Access request number 2 from this subject this year" in page.text
    assert "A repeated access request this year" in page.text


@pytest.mark.parametrize("form, message", [
    ({"emails": "not-an-address"}, "Sähköpostiosoite ei kelpaa: siitä puuttuu @-merkki."),
    ({"emails": "aino@example"}, "Sähköpostiosoite ei kelpaa: @-merkin jälkeisestä osasta "
                                 "puuttuu piste (esim. esimerkki.fi)."),
    ({"emails": "aino@-example.fi"},  # a detail without its own wording: advice instead
     "Sähköpostiosoite ei kelpaa: tarkista sen muoto (esim. nimi@esimerkki.fi)."),
    ({"phones": "abc"}, "Puhelinnumero ei kelpaa: tarkista numero (esim. 040 123 4567"),
    ({"emails": "", "phones": ""}, "Anna rekisteröidyn sähköpostiosoite tai puhelinnumero"),
    ({"emails": AINO, "received": "yesterday"},
     "Saapumispäivä: muoto on VVVV-KK-PP tai VVVV-KK-PP HH:MM, ei &#39;yesterday&#39;."),
    ({"emails": AINO, "received": "2099-01-01"},
     "Pyyntö ei ole voinut saapua tulevaisuudessa (2099-01-01)."),
    ({"emails": AINO, "kind": "rectification", "set_phone": "12"},
     "Korjattu puhelinnumero: Numero ei ole mahdollinen puhelinnumero maassaan."),
])
def test_bad_input_is_refused_in_finnish_with_the_form_kept(operator, desk_store, form,
                                                            message):
    page = operator.post("/requests", {"kind": "erasure", "channel": "email",
                                       "language": "fi", "name": "Aino", **form})
    assert page.status_code == 400 and message in page.text
    assert page.text.count('role="alert"') == 1
    assert 'value="Aino"' in page.text
    assert events(desk_store, "request.received") == []


def test_a_rectification_is_filed_with_its_corrected_values(operator, make_client,
                                                            desk_store):
    form = operator.get("/requests/new").text
    for field in ("set_email", "set_phone", "set_name", "set_address"):
        assert f'<label for="{field}">' in form and f'name="{field}"' in form
    page = operator.post("/requests", {
        "kind": "rectification", "emails": AINO, "name": "Aino Virtanen", "channel": "email",
        "language": "fi", "set_email": "Aino.Nieminen@Example.fi", "set_phone": "",
        "set_name": "Aino Nieminen", "set_address": "Mannerheimintie 1 A 2, 00100 Helsinki"})
    assert page.status_code == 200 and ID.fullmatch(page.url.path.rsplit("/", 1)[1])
    rid = page.url.path.rsplit("/", 1)[1]
    with desk_store.session() as session:
        corrections = ledger.corrections_of(session, rid)
    assert corrections.email == "aino.nieminen@example.fi" and corrections.phone is None
    assert corrections.name == "Aino Nieminen"
    assert corrections.address.line() == "Mannerheimintie 1 A 2, 00100 Helsinki"
    assert "Korjattu nimi" in page.text and "Aino Nieminen" in page.text
    viewer = make_client("viewer").get(f"/requests/{rid}").text
    assert "Korjattu nimi" in viewer and "Nieminen" not in viewer


@pytest.mark.parametrize("form, message", [
    ({"kind": "rectification"}, "a rectification needs at least one corrected value"),
    ({"kind": "rectification", "set_phone": "12"},
     "Corrected phone number: not a possible phone number"),
    ({"kind": "rectification", "set_address": "Mannerheimintie 1"},
     "Corrected address (street, postcode city): an address is written"),
    ({"kind": "erasure", "set_name": "Aino Nieminen"}, "only a rectification carries"),
])
def test_bad_corrected_values_are_refused_in_one_line_with_the_form_kept(
        operator, desk_store, form, message):
    page = operator.post("/requests", {"emails": AINO, "channel": "email", "language": "en",
                                       "name": "Aino", **form},
                         headers={"accept-language": "en"})
    assert page.status_code == 400 and message in page.text
    assert page.text.count('role="alert"') == 1 and 'value="Aino"' in page.text
    assert events(desk_store, "request.received") == []


# --- verify, extend, reject ---------------------------------------------------------


def test_verifying_records_how_and_who(operator, desk_store):
    rid = filed(desk_store)
    page = operator.post(f"/requests/{rid}/verify", {"method": "id_at_desk"})
    assert page.url.path == f"/requests/{rid}"
    with desk_store.session() as session:
        assert ledger.get_request(session, rid).state == RequestState.VERIFIED
    [how] = events(desk_store, "request.identity_checked")
    [moved] = events(desk_store, "request.verified")
    assert how.actor == moved.actor == "operator" and '"id_at_desk"' in how.payload
    assert how.seq < moved.seq


def test_a_verification_needs_a_method(operator, desk_store):
    rid = filed(desk_store)
    page = operator.post(f"/requests/{rid}/verify", {"method": "trust me"})
    assert "Valitse, miten henkilöllisyys tarkistettiin." in page.text
    with desk_store.session() as session:
        assert ledger.get_request(session, rid).state == RequestState.RECEIVED
    assert events(desk_store, "request.identity_checked") == []


def test_extending_and_rejecting_go_through_the_ledger_with_the_user(operator, desk_store):
    rid = filed(desk_store)
    page = operator.post(f"/requests/{rid}/extend", {"months": "2",
                                                     "reason": "records on paper"})
    assert "records on paper" in page.text
    refused = operator.post(f"/requests/{rid}/extend", {"months": "1", "reason": "again"})
    assert f"Pyynnön {rid} määräaikaa on jo jatkettu" in refused.text
    english = operator.post(f"/requests/{rid}/extend", {"months": "1", "reason": "again"},
                            headers={"accept-language": "en"})
    assert f"request {rid} was already extended to" in english.text
    [extended] = events(desk_store, "request.extended")
    assert extended.actor == "operator"
    empty = operator.post(f"/requests/{rid}/reject", {"reason": "  "})
    assert "Hylkääminen tarvitsee syyn: se kerrotaan rekisteröidylle." in empty.text
    operator.post(f"/requests/{rid}/reject", {"reason": "identity not proven"})
    with desk_store.session() as session:
        row = ledger.get_request(session, rid)
        assert row.state == RequestState.REJECTED and row.state_reason == "identity not proven"
        assert ledger.identifiers_of(session, rid) == []  # scrubbed, as the CLI does
    assert events(desk_store, "request.rejected")[0].actor == "operator"
    # the subject is told at each step, and the request page lists the letters, masked
    with desk_store.session() as session:
        kinds = [letter.kind for letter in outbox.letters_of(session, rid)]
    assert kinds == ["extension", "refusal"], kinds  # filed directly, not on the desk
    page = operator.get(f"/requests/{rid}", headers={"accept-language": "en"}).text
    assert "Letters to the subject" in page
    for kind in kinds:
        assert f"<td>{kind}</td>" in page, kind


def test_the_request_page_lists_the_subjects_letters_not_the_ops_alerts(operator,
                                                                        desk_store):
    rid = filed(desk_store)
    with desk_store.session() as session:
        for kind, channel, to in (("acknowledgement", outbox.Channel.EMAIL, AINO),
                                  ("ops_alert", outbox.Channel.SLACK, "#tietosuoja-ops")):
            outbox.enqueue(session, desk_store.hasher, outbox.Draft(
                key=f"{kind}:{rid}", kind=kind, language="fi", channel=channel,
                recipient=to, recipient_masked=to if "#" in to else "a***@example.fi",
                subject="-", body="<p>-</p>", request_id=rid))
    page = operator.get(f"/requests/{rid}").text
    assert "acknowledgement" in page and "a***@example.fi" in page
    assert "ops_alert" not in page and "#tietosuoja-ops" not in page


def test_an_unknown_request_is_a_404(operator):
    assert operator.get("/requests/R-20260101-000000").status_code == 404


# --- the request page -----------------------------------------------------------------


def test_the_request_page_shows_each_system_with_evidence_error_and_dagster_link(
        operator, desk_store):
    rid = filed(desk_store, verified=True)
    with_tasks(desk_store, rid)
    page = operator.get(f"/requests/{rid}", headers={"accept-language": "en"}).text
    assert "permanently_deleted 1; read back" in page
    assert "netvisor answered 503 Service Unavailable" in page
    assert f"runs?q%5B0%5D=tag%3Ahub%2Frequest_id%3D{rid}" in page
    assert "Shred the contract." in page and "shares the phone" in page
    assert "Approve #1" in page and "Exclude #1" in page


def test_a_candidate_is_excluded_by_the_user(operator, desk_store):
    rid = filed(desk_store, verified=True)
    with_tasks(desk_store, rid)
    page = operator.post(f"/requests/{rid}/review", {"number": "1", "decision": "exclude"})
    assert "Exclude #1" not in page.text
    with desk_store.session() as session:
        [item] = review.items(session, rid)
    assert (item.decision, item.decided_by) == ("excluded", "operator")
    assert events(desk_store, "review.excluded")[0].actor == "operator"


def test_a_manual_task_is_confirmed_with_outcome_and_note(operator, desk_store):
    rid = filed(desk_store, verified=True)
    with_tasks(desk_store, rid)
    missing = operator.post(f"/requests/{rid}/tasks/archive/confirm",
                            {"outcome": "retained", "note": "kept"})
    assert "Säilyttäminen tarvitsee päivän, jolloin säilytys päättyy" in missing.text
    until = (datetime.now(UTC) + timedelta(days=400)).date().isoformat()
    operator.post(f"/requests/{rid}/tasks/archive/confirm", {
        "outcome": "retained", "note": "contract kept", "until": until,
        "basis": "Accounting Act 2:10"})
    with desk_store.session() as session:
        task = ledger.get_task(session, rid, "archive")
    assert task.state == TaskState.RETAINED
    assert task.evidence["confirmed"]["by"] == "operator"
    assert task.evidence["records"][-1]["retained_until"] == until


def test_every_decision_made_sends_the_request_back_to_run(operator, desk_store):
    rid = filed(desk_store, verified=True)
    with_tasks(desk_store, rid)
    operator.post(f"/requests/{rid}/review", {"number": "1", "decision": "approve"})
    operator.post(f"/requests/{rid}/tasks/archive/confirm",
                  {"outcome": "done", "note": "shredded"})
    with desk_store.session() as session:
        assert ledger.get_request(session, rid).state == RequestState.VERIFIED


def test_the_access_bundle_downloads_as_a_zip_for_an_operator_only(
        make_client, operator, desk_store, hub_settings):
    rid = filed(desk_store, RequestKind.ACCESS, verified=True)
    assert f"/requests/{rid}/bundle.zip" not in operator.get(f"/requests/{rid}").text
    assert operator.get(f"/requests/{rid}/bundle.zip").status_code == 404
    export = Export("mailchimp", (ExportSection("Member", "GET /lists/x/members/y",
                                                ({"email_address": AINO},)),))
    bundle.write_bundle(hub_settings.home / bundle.EXPORTS, rid, [export], load_policy())
    assert f"/requests/{rid}/bundle.zip" in operator.get(f"/requests/{rid}").text
    response = operator.get(f"/requests/{rid}/bundle.zip")
    assert response.headers["content-type"] == "application/zip"
    assert f'filename="{rid}.zip"' in response.headers["content-disposition"]
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert {f"{rid}/index.html", f"{rid}/data.json", f"{rid}/mailchimp.csv"} <= set(names)
    assert events(desk_store, "export.downloaded")[0].actor == "operator"
    assert make_client("viewer").get(f"/requests/{rid}/bundle.zip").status_code == 403


def test_a_viewer_sees_masked_identifiers_and_no_action_forms(make_client, desk_store):
    rid = filed(desk_store, verified=True)
    with_tasks(desk_store, rid)
    page = make_client("viewer").get(f"/requests/{rid}").text
    assert AINO not in page and "a***@example.fi" in page
    assert "/review" not in page and "/confirm" not in page and "/reject" not in page


# --- dashboard, search, audit ----------------------------------------------------------


def test_the_dashboard_lists_what_needs_attention(operator, desk_store):
    overdue = filed(desk_store, days_ago=40)
    soon = filed(desk_store, email="eeva.makela@example.fi", days_ago=27)
    later = filed(desk_store, email="mikko.hakkinen@example.fi")
    waiting = filed(desk_store, email="mika.tuomi@example.fi", verified=True)
    with_tasks(desk_store, waiting)
    page = operator.get("/", headers={"accept-language": "en"}).text

    def section(title: str) -> str:
        return page.split(f">{title}", 1)[1].split("<h2")[0]

    assert overdue in section("Overdue") and soon not in section("Overdue")
    assert soon in section("Due within 7 days") and later not in section("Due within 7 days")
    assert "netvisor answered 503" in section("Failed tasks")
    assert waiting in section("Candidate records to review")
    assert "Paper contracts" in section("Manual tasks waiting")
    assert all(r in section("Open requests") for r in (overdue, soon, later, waiting))
    assert AINO not in page  # lists show masked identifiers only


def test_search_by_e_mail_or_phone_finds_requests_without_a_url_holding_them(
        operator, desk_store, caplog):
    rid = filed(desk_store)
    with desk_store.session() as session:
        other = ledger.create_request(session, desk_store.hasher, RequestKind.OPT_OUT,
                                      [Identifier(IdentifierKind.PHONE, PHONE)]).id
        ledger.reject(session, other, "test")  # scrubbed: still found by its hash
    with caplog.at_level(logging.INFO, logger="desk.access"):
        by_mail = operator.post("/search", {"identifier": "Aino.Virtanen@EXAMPLE.fi"})
        by_phone = operator.post("/search", {"identifier": "040 123 4567"})
    assert by_mail.url.path == by_phone.url.path == "/search"
    assert rid in by_mail.text and other not in by_mail.text
    assert other in by_phone.text
    searched = events(desk_store, "desk.search")
    assert [e.actor for e in searched] == ["operator", "operator"]
    assert "a***@example.fi" in searched[0].payload and "1234567" not in searched[1].payload
    assert "example" not in caplog.text.lower() and "4567" not in caplog.text
    bad = operator.post("/search", {"identifier": "nobody"})
    assert bad.status_code == 400


def test_the_audit_trail_is_paged_newest_first(make_client, desk_store):
    for n in range(4):
        filed(desk_store, email=f"person{n}@example.fi")
    client = make_client("viewer", audit_page_size=3)
    first = client.get("/audit").text
    seqs = [int(s) for s in re.findall(r"<tr><td>(\d+)</td>", first)]
    assert len(seqs) == 3 and seqs == sorted(seqs, reverse=True)
    assert 'href="/audit?page=2"' in first and "page=0" not in first
    second = client.get("/audit?page=2").text
    older = [int(s) for s in re.findall(r"<tr><td>(\d+)</td>", second)]
    assert older and max(older) < min(seqs) and 'href="/audit?page=1"' in second


def test_the_access_log_holds_method_path_and_status_only(operator, desk_store, caplog):
    rid = filed(desk_store)
    with caplog.at_level(logging.INFO, logger="desk.access"):
        operator.get("/audit?page=2")
        operator.get(f"/requests/{rid}")
    lines = [r.getMessage() for r in caplog.records if r.name == "desk.access"]
    assert any(re.fullmatch(r"GET /audit 200 \d+ms", line) for line in lines)
    assert any(line.startswith(f"GET /requests/{rid} 200") for line in lines)
    assert not any("page=" in line or "testclient" in line for line in lines)


def test_no_link_or_form_on_any_page_carries_an_identifier(operator, desk_store):
    rid = filed(desk_store, verified=True)
    with_tasks(desk_store, rid)
    pages = [operator.get(p).text for p in ("/", f"/requests/{rid}", "/audit", "/search")]
    pages.append(operator.post("/search", {"identifier": AINO}).text)
    targets = [t for page in pages for t in re.findall(r'(?:href|action)="([^"]*)"', page)]
    assert targets and not [t for t in targets if "@" in t or "4567" in t]


def test_pages_forbid_framing_and_caching(operator):
    response = operator.get("/")
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


# --- languages ---------------------------------------------------------------------------


def test_the_language_follows_the_browser_then_the_users_choice(make_client, desk_store):
    client = make_client("operator")
    assert "Open requests" in client.get("/", headers={"accept-language": "en-GB,en"}).text
    assert "Avoimet pyynnöt" in client.get("/", headers={"accept-language": "fi"}).text
    assert "Avoimet pyynnöt" in client.get("/", headers={"accept-language": "de"}).text
    client.post("/language", {"lang": "en", "back": "/audit"})
    page = client.get("/", headers={"accept-language": "fi"})
    assert "Open requests" in page.text and '<html lang="en">' in page.text
    with desk_store.session() as session:
        assert session.get(DeskUserRow, "operator").language == "en"
    again = make_client("operator")  # a new session starts in the user's language
    assert "Open requests" in again.get("/", headers={"accept-language": "fi"}).text


@pytest.mark.parametrize("back", ["//evil.example/", "/\\evil.example", "https://evil.example",
                                  "/requests/R-1?x=1"])
def test_the_language_switch_never_redirects_off_the_desk(operator, back):
    response = operator.post("/language", {"lang": "fi", "back": back},
                             follow_redirects=False)
    assert response.headers["location"] == "/"


def test_the_language_switch_returns_to_the_page_it_was_on(operator):
    response = operator.post("/language", {"lang": "fi", "back": "/requests/R-20261202-abcdef"},
                             follow_redirects=False)
    assert response.headers["location"] == "/requests/R-20261202-abcdef"


def test_every_phrase_the_templates_use_is_in_both_languages():
    templates = Path(i18n.__file__).parent / "templates"
    used = set()
    for template in templates.glob("*.html"):
        used |= set(re.findall(r'_\(\s*["\']([a-z_]+)["\']\s*[,)]',
                               template.read_text("utf-8")))
    dynamic = ({f"kind_{k.value}" for k in ledger.ACTIVE_KINDS}
               | {f"state_{s.value}" for s in RequestState}
               | {f"channel_{c.value}" for c in ledger.Channel}
               | {f"lang_{lang.value}" for lang in ledger.Language}
               | {f"outcome_{o.value}" for o in (TaskState.DONE, TaskState.NOT_FOUND,
                                                 TaskState.RETAINED)}
               | {f"role_{r}" for r in ("viewer", "operator", "admin")}
               | {f"method_{m}" for m in ("replied_from_address", "id_at_desk",
                                          "signed_letter", "known_phone")})
    assert len(used) > 50 and not (used | dynamic) - i18n.phrases()
    for key in i18n.phrases():
        assert i18n.translate("fi", key) and i18n.translate("en", key)


def test_a_language_chosen_on_the_login_page_survives_the_login(make_client):
    client = make_client(None)
    client.get("/login")
    client.post("/language", {"lang": "en", "back": "/login"})
    client.login("viewer")
    assert "Open requests" in client.get("/", headers={"accept-language": "fi"}).text
