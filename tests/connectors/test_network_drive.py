"""The network drive connector against real files in a temporary folder.

Every document is written by its own library (python-docx, openpyxl, a hand-made
PDF from ``sandbox.network_drive``, plain bytes in UTF-8 and cp1252), never by the
connector's code, and what is checked is what an operator or the subject would see:
which files name the person, the excerpts, what the erasure asks a person to do, and
that no file was touched.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import docx
import openpyxl
import pytest

from connectors import registry
from connectors.errors import ConfigError, ConnectionFailed
from connectors.network_drive.connector import NetworkDriveConnector
from connectors.network_drive.matching import subject_hits
from hub.domain import Action, Identifier, IdentifierKind, RecordRef
from hub.ledger import TaskState
from hub.outcomes import state_for
from hub.policy import SystemPolicy
from sandbox.network_drive import demo_files, minimal_pdf
from sandbox.people import generate_people

AINO = "aino.virtanen@example.fi"
AINO_PHONE = "+358401234567"
MIKKO = "mikko.hakkinen@example.fi"
MIKKO_PHONE = "+358501112233"
POLICY = SystemPolicy()


def email(value: str) -> list[Identifier]:
    return [Identifier(IdentifierKind.EMAIL, value)]


def phone(value: str) -> list[Identifier]:
    return [Identifier(IdentifierKind.PHONE, value)]


def write_docx(path: Path, paragraphs: list[str], rows: list[list[str]] = ()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    if rows:
        table = document.add_table(rows=len(rows), cols=len(rows[0]))
        for row, values in zip(table.rows, rows, strict=True):
            for cell, value in zip(row.cells, values, strict=True):
                cell.text = value
    document.save(path)
    return path


def write_xlsx(path: Path, rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Asiakkaat"
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def drive(tmp_path) -> Path:
    root = tmp_path / "share"
    write_docx(root / "sopimukset" / "sopimus.docx",
               ["Koulutussopimus", f"Yhteyshenkilö Aino Virtanen, {AINO}"],
               [["Nimi", "Puhelin"], ["Aino Virtanen", "040 123 4567"]])
    write_xlsx(root / "asiakkaat.xlsx", [["Nimi", "Sähköposti", "Puhelin"],
                                         ["Aino Virtanen", AINO, 401234567],
                                         ["Mikko Häkkinen", MIKKO, "050-1112233"]])
    write(root / "muistiinpanot" / "palaveri.txt",
          "Palaveri Ainon kanssa, päätös syyskuussa.\r\nSoita: +358 40 123 4567\r\n"
          .encode("cp1252"))
    write(root / "tarjoukset" / "tarjous.pdf",
          minimal_pdf(["Tarjous 2026-031", f"Vastaanottaja: {AINO}"]))
    write(root / "muut.csv", f"nimi;email\nMikko;{MIKKO}\n".encode())
    return root


@pytest.fixture
def connector(drive) -> NetworkDriveConnector:
    return NetworkDriveConnector.from_env(root=str(drive))


def ids(refs: list[RecordRef]) -> set[str]:
    return {r.record_id for r in refs}


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


# ------------------------------------------------------------------ find


def test_find_by_email_reports_every_file_type_naming_it(connector):
    refs = connector.find(email("Aino.Virtanen@Example.FI"))
    assert ids(refs) == {"sopimukset/sopimus.docx", "asiakkaat.xlsx", "tarjoukset/tarjous.pdf"}
    assert all(r.kind == "file" and r.system == "network_drive" for r in refs)
    assert all(r.facts.emails == (AINO,) for r in refs)


def test_find_by_phone_in_every_written_form(connector):
    """040 123 4567 in a Word table, +358 40 123 4567 in cp1252 notes, and a
    spreadsheet cell typed as the number 401234567 (its leading 0 lost)."""
    refs = connector.find(phone("040 123 4567"))
    assert ids(refs) == {"sopimukset/sopimus.docx", "asiakkaat.xlsx",
                         "muistiinpanot/palaveri.txt"}
    assert all(r.facts.phones == (AINO_PHONE,) for r in refs)


@pytest.mark.parametrize("written", [
    "+358 40 123 4567", "+358401234567", "00358 40 123 4567", "040 123 4567",
    "040-1234567", "040 1234 567", "(040) 123 4567", "040.123.4567", "0401234567",
])
def test_every_spelling_of_the_phone_in_a_sentence_is_the_subjects(written):
    text = f"Soittopyyntö {written}, klo 14."
    hits = subject_hits(text, set(), {AINO_PHONE})
    assert [(h.value, text[h.start:h.end]) for h in hits] == [(AINO_PHONE, written)]


@pytest.mark.parametrize("text", [
    "Lasku 0401234568 erääntyy", "puh. 040 123 456", "Päivä 04.01.2023, summa 4567 €",
    "tilinumero FI21 1234 5600 0007 85",
])
def test_other_numbers_are_not_the_subjects_phone(text):
    assert subject_hits(text, set(), {AINO_PHONE}) == []


def test_a_phone_written_next_to_another_is_still_found(tmp_path):
    root = tmp_path / "share"
    write(root / "numerot.txt", b"Numerot: 050 111 2233 040 123 4567 0401112223\n")
    with NetworkDriveConnector.from_env(root=str(root)) as connector:
        assert ids(connector.find(phone(AINO_PHONE))) == {"numerot.txt"}
        assert connector.find(phone("+358401234568")) == []


def test_someone_not_on_the_drive_is_not_found(connector):
    assert connector.find(email("nobody@example.fi") + phone("+358449998877")) == []
    assert connector.erase([], POLICY).not_found


def test_a_document_naming_two_people_is_reported_for_the_subject_only(connector):
    refs = connector.find(email(MIKKO))
    assert ids(refs) == {"asiakkaat.xlsx", "muut.csv"}
    sheet = next(r for r in refs if r.record_id == "asiakkaat.xlsx")
    assert sheet.facts.emails == (MIKKO,) and sheet.facts.phones == ()
    items = {i["path"]: i for i in connector.export(refs).sections[0].items}
    places = items["asiakkaat.xlsx"]["places"]
    # Searched by e-mail only: the phone beside it is not known to be his, so it is
    # masked like anyone else's.
    assert places == [{"where": "Asiakkaat row 3", "excerpt": "Mikko Häkkinen | "
                       f"{MIKKO} | 0501****33"}]
    assert AINO not in str(items)


def test_someone_else_named_in_the_same_line_is_masked_in_the_excerpt(tmp_path):
    root = tmp_path / "share"
    write(root / "sähköpostit.txt",
          f"Kopio: {AINO}, {MIKKO}, puh. {'050 111 2233'}\n".encode())
    with NetworkDriveConnector.from_env(root=str(root)) as connector:
        export = connector.export(connector.find(email(AINO)))
    excerpt = export.sections[0].items[0]["places"][0]["excerpt"]
    assert AINO in excerpt
    assert MIKKO not in excerpt and "m***@example.fi" in excerpt
    assert "111 2233" not in excerpt


# ---------------------------------------------------------------- export


def test_export_lists_each_file_with_its_places_and_excerpts(connector, drive):
    refs = connector.find(email(AINO) + phone(AINO_PHONE))
    export = connector.export(refs)
    items = {i["path"]: i for i in export.sections[0].items}
    assert set(items) == {"sopimukset/sopimus.docx", "asiakkaat.xlsx",
                          "muistiinpanot/palaveri.txt", "tarjoukset/tarjous.pdf"}
    contract = items["sopimukset/sopimus.docx"]
    assert contract["size_bytes"] == (drive / "sopimukset" / "sopimus.docx").stat().st_size
    assert contract["modified"].startswith("20")
    assert [p["where"] for p in contract["places"]] == ["paragraph 2", "table 1 row 2"]
    assert contract["places"][1]["excerpt"] == "Aino Virtanen | 040 123 4567"
    assert items["muistiinpanot/palaveri.txt"]["places"] == [
        {"where": "line 2", "excerpt": "Soita: +358 40 123 4567"}]
    assert items["tarjoukset/tarjous.pdf"]["places"] == [
        {"where": "page 1 line 2", "excerpt": f"Vastaanottaja: {AINO}"}]
    assert export.evidence["files"] == 4


def test_an_excerpt_is_bounded_around_the_match(tmp_path):
    root = tmp_path / "share"
    write(root / "pitkä.txt", ("x" * 1000 + f" {AINO} " + "y" * 1000).encode())
    with NetworkDriveConnector.from_env(root=str(root)) as connector:
        export = connector.export(connector.find(email(AINO)))
    excerpt = export.sections[0].items[0]["places"][0]["excerpt"]
    assert AINO in excerpt and len(excerpt) <= 242
    assert excerpt.startswith("…") and excerpt.endswith("…")


def test_the_export_has_every_place_and_the_task_lists_twenty(tmp_path):
    """The subject is owed a full copy; the operator's task stays readable."""
    root = tmp_path / "share"
    write(root / "loki.csv", "".join(f"{n};{AINO};tilaus\n" for n in range(25)).encode())
    with NetworkDriveConnector.from_env(root=str(root)) as connector:
        refs = connector.find(email(AINO))
        places = connector.export(refs).sections[0].items[0]["places"]
        detail = connector.erase(refs, POLICY).records[0].detail
    assert [p["where"] for p in places] == [f"line {n}" for n in range(1, 26)]
    assert "line 20 and 5 more:" in detail and "line 21" not in detail


def test_cp1252_notes_read_with_their_umlauts(tmp_path):
    root = tmp_path / "share"
    write(root / "vanha.txt", f"Päätös: {AINO} hyväksyi\n".encode("cp1252"))
    with NetworkDriveConnector.from_env(root=str(root)) as connector:
        export = connector.export(connector.find(email(AINO)))
    assert export.sections[0].items[0]["places"][0]["excerpt"] == f"Päätös: {AINO} hyväksyi"


# ----------------------------------------------------------------- erase


def test_erase_keeps_every_file_for_an_operator_and_touches_nothing(connector, drive):
    before = snapshot(drive)
    refs = connector.find(email(AINO) + phone(AINO_PHONE))
    outcome = connector.erase(refs, POLICY)
    assert {r.ref.record_id: r.action for r in outcome.records} == {
        "sopimukset/sopimus.docx": Action.KEPT, "asiakkaat.xlsx": Action.KEPT,
        "muistiinpanot/palaveri.txt": Action.KEPT, "tarjoukset/tarjous.pdf": Action.KEPT}
    assert outcome.verified
    contract = next(r for r in outcome.records if r.ref.record_id.endswith(".docx"))
    assert "paragraph 2, table 1 row 2" in contract.detail
    assert "delete the file, or redact" in contract.detail
    assert AINO not in str(outcome.evidence) and AINO not in contract.detail
    assert snapshot(drive) == before
    assert state_for(outcome) == TaskState.MANUAL_PENDING  # waits for the operator


def test_after_the_operator_redacts_the_erasure_reads_back_nothing(connector, drive):
    refs = connector.find(email(AINO) + phone(AINO_PHONE))
    # The operator's work: the quotation and the notes deleted, the contract and the
    # customer list redacted (Mikko stays in the list).
    (drive / "tarjoukset" / "tarjous.pdf").unlink()
    (drive / "muistiinpanot" / "palaveri.txt").unlink()
    write_docx(drive / "sopimukset" / "sopimus.docx",
               ["Koulutussopimus", "Yhteyshenkilö [poistettu]"])
    write_xlsx(drive / "asiakkaat.xlsx", [["Nimi", "Sähköposti", "Puhelin"],
                                          ["Mikko Häkkinen", MIKKO, "050-1112233"]])
    outcome = connector.erase(refs, POLICY)
    assert {r.action for r in outcome.records} == {Action.NOT_FOUND}
    assert outcome.not_found and outcome.verified
    assert state_for(outcome) == TaskState.NOT_FOUND
    assert connector.find(email(AINO) + phone(AINO_PHONE)) == []
    # A fresh run (the next attempt) reads the journal's refs, without facts, again.
    with NetworkDriveConnector.from_env(root=str(drive)) as again:
        again.find(email(AINO))
        bare = [RecordRef("network_drive", "file", r.record_id) for r in refs]
        assert {r.action for r in again.erase(bare, POLICY).records} == {Action.NOT_FOUND}


def test_a_record_id_cannot_lead_out_of_the_root(connector, drive, tmp_path):
    write(tmp_path / "outside.txt", AINO.encode())
    connector.find(email(AINO))
    outcome = connector.erase([RecordRef("network_drive", "file", "../outside.txt")], POLICY)
    assert outcome.records[0].action == Action.KEPT  # not read: an operator checks it
    assert "symlink" in outcome.records[0].detail or "by hand" in outcome.records[0].detail


def test_opt_out_has_nothing_to_do(connector):
    refs = connector.find(email(AINO))
    outcome = connector.opt_out(refs)
    assert {r.action for r in outcome.records} == {Action.NOTHING_TO_DO}


# ------------------------------------------------------- what is not read


def refuse_to_open(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The file named ``name`` cannot be opened (the tests run as root: chmod cannot
    refuse)."""
    real_open = os.open

    def refuse(path, flags, *args, **kwargs):  # noqa: ANN001, ANN202 - os.open's own
        if str(path).endswith(name):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)


def test_corrupt_and_unreadable_files_are_skipped_and_counted(connector, drive, monkeypatch):
    write(drive / "rikki.docx", b"PK\x03\x04 not really a zip " + AINO.encode())
    write(drive / "rikki.pdf", b"%PDF-1.4 garbage " + AINO.encode())
    write(drive / "salainen.txt", AINO.encode())
    refuse_to_open(monkeypatch, "salainen.txt")
    refs = connector.find(email(AINO))
    assert ids(refs) == {"sopimukset/sopimus.docx", "asiakkaat.xlsx", "tarjoukset/tarjous.pdf"}
    assert connector.skipped["unreadable"] == 3
    outcome = connector.erase(refs, POLICY)
    assert outcome.evidence["unreadable"] == 3
    assert sorted(outcome.evidence["unreadable_paths"]) == ["rikki.docx", "rikki.pdf",
                                                            "salainen.txt"]
    # Not searched, so each is a person's to open: the task waits for an operator.
    unsearched = {r.ref.record_id: r for r in outcome.records if r.ref.kind == "unreadable_file"}
    assert set(unsearched) == {"rikki.docx", "rikki.pdf", "salainen.txt"}
    assert {r.action for r in unsearched.values()} == {Action.KEPT}
    assert "could not read this file" in unsearched["rikki.pdf"].detail
    assert state_for(outcome) == TaskState.MANUAL_PENDING


def test_nobody_found_is_not_not_found_while_a_file_could_not_be_read(drive, monkeypatch):
    """Only unreadable files, one of them named after the subject: neither the erasure
    nor the access export may end not_found or done; the task says which files need a
    person, the subject's name and number masked in their paths."""
    from hub.ledger import RequestKind
    from pipelines.requests import _act

    for folder in ("sopimukset", "muistiinpanot", "tarjoukset"):
        for path in (drive / folder).iterdir():
            path.unlink()
    write(drive / "sopimukset" / "Aino_Virtanen sopimus 0401234567.docx", b"PK\x03\x04 broken")
    # someone else's file, in every request's task until it settles: their name cut too
    write(drive / "sopimukset" / "Matti Meikäläinen - vuokrasopimus.pdf", b"%PDF-1.4 broken")
    refuse_to_open(monkeypatch, "asiakkaat.xlsx")
    with NetworkDriveConnector.from_env(root=str(drive)) as conn:
        refs = conn.find(email(AINO) + phone(AINO_PHONE))
        assert refs == []
        erased = conn.erase(refs, POLICY)
        export = conn.export(refs)
    shown = {"sopimukset/A***_V*** sopimus 0401****67.docx", "asiakkaat.xlsx",
             "sopimukset/M*** M*** - vuokrasopimus.pdf"}
    assert {r.ref.record_id for r in erased.records} == shown
    assert not erased.not_found and state_for(erased) == TaskState.MANUAL_PENDING
    assert erased.evidence["recheck"] is False  # the operator's word is the read-back
    assert {r.ref.record_id for r in export.unsearched} == shown
    assert "add what names them to the reply" in export.unsearched[0].detail
    for text in (str(erased), str(export)):
        assert "Aino" not in text and "Virtanen" not in text and "0401234567" not in text
        assert "Matti" not in text and "Meikäläinen" not in text
    with NetworkDriveConnector.from_env(root=str(drive)) as conn:
        access = _act(conn, RequestKind.ACCESS, conn.find(email(AINO)), POLICY,
                      drive.parent / "part.json", None)
    assert state_for(access) == TaskState.MANUAL_PENDING


def test_a_symlink_out_of_the_root_is_not_followed(connector, drive, tmp_path):
    outside = tmp_path / "outside"
    write(outside / "salaiset.txt", f"{AINO}\n".encode())
    (drive / "linkki.txt").symlink_to(outside / "salaiset.txt")
    (drive / "kansio").symlink_to(outside, target_is_directory=True)
    refs = connector.find(email(AINO))
    assert not any("linkki" in r.record_id or "kansio" in r.record_id for r in refs)
    assert connector.skipped["symlink"] == 2


def test_too_large_and_excluded_files_are_skipped(drive):
    write(drive / "iso.txt", AINO.encode() + b" " * 2_000_000)
    write(drive / "arkisto" / "vanha.txt", AINO.encode())
    with NetworkDriveConnector.from_env(root=str(drive), max_file_mb=1,
                                        exclude="arkisto/*, *.PDF") as connector:
        refs = connector.find(email(AINO))
        assert ids(refs) == {"sopimukset/sopimus.docx", "asiakkaat.xlsx"}
        assert connector.skipped["too_large"] == 1
        assert connector.skipped["excluded"] == 2
    with NetworkDriveConnector.from_env(root=str(drive), include="*.txt") as connector:
        assert ids(connector.find(email(AINO))) == {"iso.txt", "arkisto/vanha.txt"}


# ----------------------------------------------------------------- settings


def test_a_missing_root_is_a_config_error_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("NETWORK_DRIVE_ROOT", str(tmp_path / "not-mounted"))
    with pytest.raises(ConfigError, match="NETWORK_DRIVE_ROOT is invalid.*is the share mounted"):
        NetworkDriveConnector.from_env()
    monkeypatch.delenv("NETWORK_DRIVE_ROOT")
    with pytest.raises(ConfigError, match="NETWORK_DRIVE_ROOT is not set"):
        NetworkDriveConnector.from_env()


def test_an_empty_root_is_refused_as_unmounted_not_searched(tmp_path):
    """An unmounted share leaves an empty mount point: "nothing found" there would be
    a false proof of erasure."""
    (tmp_path / "mnt").mkdir()
    with NetworkDriveConnector.from_env(root=str(tmp_path / "mnt")) as connector:
        with pytest.raises(ConnectionFailed, match="unmounted"):
            connector.find(email(AINO))
        with pytest.raises(ConnectionFailed):
            connector.check()


def test_declared_only_when_named_in_hub_extra_systems(drive, monkeypatch):
    assert "network_drive" not in registry.names()
    monkeypatch.setenv(registry.EXTRA_ENV, "connectors.network_drive")
    monkeypatch.setenv("NETWORK_DRIVE_ROOT", str(drive))
    declaration = registry.declared()["network_drive"]
    assert declaration.system.kind == "files" and declaration.emulator is None
    assert not declaration.system.marketing
    with registry.build_connector("network_drive") as connector:
        assert isinstance(connector, NetworkDriveConnector)
        assert ids(connector.find(email(AINO)))


# --------------------------------------------------------------------- sync


def test_sync_yields_one_record_per_identifier_and_file(connector, drive):
    pages = list(connector.sync(None))
    records = [r for p in pages for r in p.records]
    sheet = {r.record_id: (r.emails, r.phones) for r in records
             if r.record_id.startswith("asiakkaat.xlsx#")}
    # Aino's phone is a bare number (401234567) in the sheet: a lookup by her phone
    # finds it, but the sync, which guesses for no one, indexes only real numbers.
    assert sheet == {"asiakkaat.xlsx#email-1": ((AINO,), ()),
                     "asiakkaat.xlsx#email-2": ((MIKKO,), ()),
                     "asiakkaat.xlsx#phone-1": ((), (MIKKO_PHONE,))}
    assert all(len(r.emails) + len(r.phones) == 1 for r in records)
    assert {r.record_id for r in records} >= {"tarjoukset/tarjous.pdf#email-1",
                                               "muistiinpanot/palaveri.txt#phone-1"}
    newest = max(p.stat().st_mtime for p in drive.rglob("*") if p.is_file())
    assert pages[-1].cursor is not None and pages[-1].records == ()
    cursor = pages[-1].cursor

    os.utime(drive / "muut.csv", (newest + 10, newest + 10))
    again = [r for p in connector.sync(cursor) for r in p.records]
    assert {r.record_id for r in again} == {"muut.csv#email-1"}


# ---------------------------------------------------- privacy and the demo


def test_logs_name_no_one(connector, caplog, drive):
    write(drive / "rikki.docx", b"not a zip")
    with caplog.at_level(logging.DEBUG, logger="connectors.network_drive"):
        refs = connector.find(email(AINO) + phone(AINO_PHONE))
        connector.export(refs)
        connector.erase(refs, POLICY)
        list(connector.sync(None))
    text = caplog.text
    assert caplog.records
    for secret in (AINO, "aino", "401234567", "123 4567", "Virtanen", "sopimus", "rikki"):
        assert secret not in text


def test_the_demo_folder_names_its_subject_in_four_files_and_a_customer_in_one(tmp_path):
    people = generate_people(3)
    root = tmp_path / "share"
    written = demo_files(root, people)
    assert len(written) == 4
    with NetworkDriveConnector.from_env(root=str(root)) as connector:
        subject = people[0]
        refs = connector.find(email(subject.email) + phone(subject.phone))
        assert len(refs) == 4
        other = connector.find(email(people[1].email) + phone(people[1].phone))
        assert ids(other) == {"asiakkaat.xlsx"}
        assert len(other[0].facts.emails) == 1 and len(other[0].facts.phones) == 1


def test_a_deployment_policy_with_its_section_loads(drive, monkeypatch, tmp_path):
    """The section docs/vendors/network_drive.md tells a deployment to add."""
    from hub.policy import load_policy

    monkeypatch.setenv(registry.EXTRA_ENV, "connectors.network_drive")
    default = (Path(__file__).resolve().parents[2] / "hub" / "default_policy.toml").read_text()
    path = tmp_path / "policy.toml"
    path.write_text(default + '\n[systems.network_drive]\nerase = "delete"\n'
                    'legal_basis = "GDPR art. 6(1)(b) contract"\n', "utf-8")
    policy = load_policy(path, systems=registry.declarations())
    assert "network_drive" in policy.enabled_systems
    assert policy.title("network_drive").startswith("Network drive")


def test_named_in_hub_extra_systems_it_gets_its_asset_and_op(drive):
    """As the toy system does (tests/test_declarations.py): the Dagster code location,
    imported fresh, has the network drive's sync asset and request op."""
    import json
    import subprocess
    import sys

    from tests.test_declarations import READ_DEFINITIONS, ROOT

    env = {**os.environ, registry.EXTRA_ENV: "connectors.network_drive",
           "NETWORK_DRIVE_ROOT": str(drive),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", READ_DEFINITIONS], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert "network_drive_people" in found["person_index_deps"]
    assert "network_drive_task" in found["ops"]
    assert "network_drive" in found["complete_inputs"]
