"""The access-export bundle: contents, escaping, permissions, checksum; which parts
it may take, what is kept by law for the same subject, and its end at erasure."""

import csv
import json
import stat
from datetime import UTC, date, datetime

from hub import bundle as bundles
from hub import holds, ledger, outcomes
from hub.bundle import write_bundle
from hub.domain import (
    Action,
    Export,
    ExportSection,
    Identifier,
    IdentifierKind,
    Outcome,
    RecordOutcome,
    RecordRef,
)
from hub.ledger import RequestKind, RequestState
from hub.models import AuditEventRow
from hub.policy import load_policy as load_file

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def load_policy():
    """The packaged policy with the declared systems, whose titles head the letter."""
    from connectors.registry import declarations  # the test knows them; the hub cannot

    return load_file(systems=declarations())


def _exports():
    return [
        Export("pipedrive", (
            ExportSection("Person", "GET /api/v2/persons/7", (
                {"id": 7, "name": "Aino <b>Virtanen</b>",
                 "emails": [{"value": "aino@example.fi", "primary": True}]},)),
            ExportSection("Notes", "GET /v1/notes?person_id=7", ()),
        )),
        Export("netvisor", (ExportSection("Customer", "getcustomer.nv", (
            {"NetvisorKey": "12", "Name": "Aino Virtanen"},)),)),
        Export("typeform", ()),
    ]


def test_bundle_holds_json_csv_and_readable_html(tmp_path):
    retained = {"netvisor": [{"record_id": "12", "legal_basis": "Kirjanpitolaki 2:10",
                              "retained_until": "2032-12-31"}]}
    bundle = write_bundle(tmp_path, "R-1", _exports(), load_policy(), retained=retained,
                          now=NOW)
    assert bundle.files == ("data.json", "index.html", "netvisor.csv", "pipedrive.csv",
                            "typeform.csv")
    data = json.loads((bundle.path / "data.json").read_text())
    person = data["systems"]["pipedrive"]["sections"][0]
    assert person["items"][0]["emails"][0]["value"] == "aino@example.fi"
    rows = list(csv.reader((bundle.path / "pipedrive.csv").open()))
    assert rows[0][:3] == ["section", "id", "name"]
    assert rows[1][0] == "Person" and rows[1][2] == "Aino <b>Virtanen</b>"
    page = (bundle.path / "index.html").read_text()
    assert "Aino &lt;b&gt;Virtanen&lt;/b&gt;" in page  # vendor text cannot inject markup
    assert "Kirjanpitolaki" in page and "2032-12-31" in page
    assert "Nothing about you is held in this system." in page  # typeform


def test_bundle_is_private_to_its_owner(tmp_path):
    bundle = write_bundle(tmp_path, "R-1", _exports(), load_policy(), now=NOW)
    assert stat.S_IMODE(bundle.path.stat().st_mode) == 0o700
    for name in bundle.files:
        assert stat.S_IMODE((bundle.path / name).stat().st_mode) == 0o600


def test_checksum_is_stable_and_changes_with_content(tmp_path):
    first = write_bundle(tmp_path, "R-1", _exports(), load_policy(), now=NOW)
    again = write_bundle(tmp_path, "R-1", _exports(), load_policy(), now=NOW)
    other = write_bundle(tmp_path, "R-1", _exports()[:1], load_policy(), now=NOW)
    assert first.sha256 == again.sha256
    assert other.sha256 != first.sha256
    assert sorted(p.name for p in other.path.iterdir()) == ["data.json", "index.html",
                                                            "pipedrive.csv"]


# -------------------------------------------- access after erasure, the hub's copies


AINO = Identifier(IdentifierKind.EMAIL, "aino.virtanen@example.fi")
MIKKO = Identifier(IdentifierKind.EMAIL, "mikko.hakkinen@example.fi")
BASIS = "Kirjanpitolaki (1336/1997) 2 luku 10 §; GDPR art. 17(3)(b)"
LATER = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def _filed(store, session, kind, *identifiers, systems=("netvisor", "pipedrive")):
    row = ledger.create_request(session, store.hasher, kind, list(identifiers), now=NOW,
                                language=ledger.Language.EN)
    ledger.verify(session, row.id, now=NOW)
    ledger.transition(session, row, RequestState.IN_PROGRESS, now=NOW)
    ledger.ensure_tasks(session, row, list(systems), now=NOW)
    return row


def _erased(store, session, identifier, record_id="1000"):
    row = _filed(store, session, RequestKind.ERASURE, identifier, systems=("netvisor",))
    outcomes.begin(session, row.id, "netvisor", now=NOW)
    outcomes.record(session, row.id, Outcome("netvisor", (RecordOutcome(
        RecordRef("netvisor", "customer", record_id), Action.RETAINED, legal_basis=BASIS,
        retained_until=date(2032, 12, 31)),), verified=True), now=NOW)
    holds.record_from_tasks(session, ledger.tasks_of(session, row.id), now=NOW)
    ledger.finalise(session, store.hasher, row, now=NOW)
    return row


def _exported(session, home, row, system, export, *, finish=True):
    """What a system op does for an access request: write the part, record its digest."""
    digest = bundles.write_part(bundles.parts_dir(home, row.id) / f"{system}.json", export)
    outcomes.begin(session, row.id, system, now=NOW)
    if finish:
        outcomes.record(session, row.id, Outcome(system, verified=True, evidence={
            bundles.PART_DIGEST: digest}), now=NOW)
    return digest


def test_access_after_erasure_shows_what_is_kept_and_never_says_nothing_held(store):
    # Found: the minimised customer has no e-mail left, so the live lookup finds
    # nothing, and the bundle said "Nothing about you is held" while the hub itself
    # recorded a hold there.
    home = store.settings.home
    with store.session() as session:
        erasure = _erased(store, session, AINO)
        _erased(store, session, MIKKO, "1001")
        access = _filed(store, session, RequestKind.ACCESS, AINO)
        _exported(session, home, access, "netvisor", Export("netvisor", ()))
        _exported(session, home, access, "pipedrive", Export("pipedrive", ()))
        made = bundles.bundle_request(session, home, access.id, load_policy(), now=LATER)
    page = (made.path / "index.html").read_text()
    netvisor = page.split("Visma Netvisor")[1].split("<h2>")[0]
    assert "Nothing about you is held" not in netvisor
    assert "record 1000 is kept under Kirjanpitolaki" in netvisor
    assert "until 2032-12-31" in netvisor and erasure.id in netvisor
    assert "1001" not in page  # another subject's hold
    assert "Nothing about you is held" in page.split("Pipedrive")[1]
    data = json.loads((made.path / "data.json").read_text())
    assert data["retained"] == {"netvisor": [{
        "record_id": "1000", "legal_basis": BASIS, "retained_until": "2032-12-31",
        "request_id": erasure.id}]}


def test_a_system_with_a_hold_is_shown_even_without_an_export(tmp_path):
    retained = {"netvisor": [{"record_id": "12", "legal_basis": "Kirjanpitolaki 2:10",
                              "retained_until": "2032-12-31"}]}
    made = write_bundle(tmp_path, "R-1", _exports()[:1], load_policy(), retained=retained,
                        now=NOW)
    page = (made.path / "index.html").read_text()
    assert "Visma Netvisor" in page and "record 12 is kept under Kirjanpitolaki" in page


def test_a_part_left_by_an_unfinished_run_is_never_bundled(store):
    # Found: a 40-minute-old part of a run that never finished went into a later bundle.
    home = store.settings.home
    with store.session() as session:
        access = _filed(store, session, RequestKind.ACCESS, AINO,
                        systems=("mailchimp", "netvisor", "pipedrive", "typeform"))
        # typeform finished in an earlier run (re-execution skips it): its part stands.
        _exported(session, home, access, "typeform", _exports()[2])
        _exported(session, home, access, "pipedrive", _exports()[0])
        # netvisor's run died after writing its part: the task never finished.
        _exported(session, home, access, "netvisor", _exports()[1], finish=False)
        # mailchimp finished, but its part was overwritten since by a run that did not.
        _exported(session, home, access, "mailchimp", Export("mailchimp", ()))
        bundles.write_part(bundles.parts_dir(home, access.id) / "mailchimp.json", Export(
            "mailchimp", (ExportSection("Member", "x", ({"email": "someone@else.fi"},)),)))
        made = bundles.bundle_request(session, home, access.id, load_policy(), now=LATER)
        events = session.query(AuditEventRow).filter_by(request_id=access.id,
                                                         action="export.part_discarded").all()
    data = json.loads((made.path / "data.json").read_text())
    assert sorted(data["systems"]) == ["pipedrive", "typeform"]
    assert "someone@else.fi" not in (made.path / "data.json").read_text()
    assert not bundles.parts_dir(home, access.id).exists()  # stale parts deleted too
    assert len(events) == 1 and json.loads(events[0].payload) == {
        "systems": ["mailchimp", "netvisor"]}


def test_erasing_a_person_deletes_the_hubs_own_bundles_of_them(store):
    home = store.settings.home
    with store.session() as session:
        mine = _filed(store, session, RequestKind.ACCESS, AINO)
        theirs = _filed(store, session, RequestKind.ACCESS, MIKKO)
        for row in (mine, theirs):
            write_bundle(home / "exports", row.id, _exports(), load_policy(), now=NOW)
        bundles.write_part(bundles.parts_dir(home, mine.id) / "pipedrive.json", _exports()[0])
        erasure = _filed(store, session, RequestKind.ERASURE,
                         Identifier(IdentifierKind.PHONE, "+358401234567"), AINO)
        assert bundles.erase_bundles(session, home, erasure.id, now=LATER) == [mine.id]
        assert bundles.erase_bundles(session, home, erasure.id, now=LATER) == []
        events = session.query(AuditEventRow).filter_by(request_id=erasure.id,
                                                        action="export.erased").all()
    assert not (home / "exports" / mine.id).exists()
    assert not bundles.parts_dir(home, mine.id).exists()
    assert (home / "exports" / theirs.id / "data.json").exists()
    assert len(events) == 1
    assert json.loads(events[0].payload) == {"access_requests": [mine.id]}
    assert "aino" not in events[0].payload.lower()


def test_the_readable_page_speaks_the_subjects_language_and_names_fields_plainly(tmp_path):
    """The page is read by the subject: Finnish words and "Sähköpostiosoitteet" for
    `emails`, while data.json and the CSVs keep the vendors' names (the portable copy)."""
    retained = {"netvisor": [{"record_id": "12", "legal_basis": "Kirjanpitolaki 2:10",
                              "retained_until": "2032-12-31"}]}
    made = write_bundle(tmp_path, "R-1", _exports(), load_policy(), retained=retained,
                        now=NOW, language="fi")
    page = (made.path / "index.html").read_text()
    assert "<html lang='fi'>" in page and "Tiedot, joita meillä on sinusta" in page
    assert "<th title='emails'>Sähköpostiosoitteet</th>" in page
    assert "<th title='NetvisorKey'>Tunniste</th>" in page
    assert "Säilytetään lain nojalla:</b> tietue 12 säilytetään perusteella " \
           "Kirjanpitolaki 2:10 2032-12-31 asti." in page
    assert "Tässä järjestelmässä ei ole tietoja sinusta." in page  # typeform
    assert "Oikeusperuste:" in page and "Legal basis" not in page
    assert "Aino &lt;b&gt;Virtanen&lt;/b&gt;" in page  # still escaped
    data = json.loads((made.path / "data.json").read_text())
    assert "emails" in data["systems"]["pipedrive"]["sections"][0]["items"][0]
    sv = write_bundle(tmp_path / "sv", "R-1", _exports(), load_policy(), now=NOW,
                      language="sv")
    assert "<th title='emails'>E-postadresser</th>" in (sv.path / "index.html").read_text()


def test_section_and_system_titles_are_in_the_subjects_language(store):
    """The connector words each part in fi and sv, the declaration its system; the
    titles survive the part written by the system's op and read back for the bundle."""
    home = store.settings.home
    part = Export("pipedrive", (ExportSection(
        "Deals", "pipedrive:deals", ({"id": 3, "title": "Valmennuspaketti"},),
        titles={"fi": "Kaupat", "sv": "Affärer"}),))
    with store.session() as session:
        access = _filed(store, session, RequestKind.ACCESS, AINO, systems=("pipedrive",))
        access.language = ledger.Language.FI.value  # the subject writes Finnish
        _exported(session, home, access, "pipedrive", part)
        made = bundles.bundle_request(session, home, access.id, load_policy(), now=LATER)
    page = (made.path / "index.html").read_text()
    assert "<h2>Pipedrive (asiakkuudenhallinta)</h2>" in page
    assert "<h3>Kaupat</h3>" in page and "Deals" not in page
    data = json.loads((made.path / "data.json").read_text())
    assert data["systems"]["pipedrive"]["sections"][0]["label"] == "Deals"  # portable copy
    sv = write_bundle(home / "sv", "R-1", [part], load_policy(), now=NOW, language="sv")
    assert "<h3>Affärer</h3>" in (sv.path / "index.html").read_text()
