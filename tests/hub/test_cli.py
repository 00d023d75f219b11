"""The `hub` command: the issue's operator flow, masking, and one-line failures."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from typer.testing import CliRunner

from hub.cli import app
from hub.models import AuditEventRow, SubjectRequestRow
from tests.conftest import TEST_SECRET

HUB = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "hub"
EMAIL = "Mari.Virtanen@Example.FI"
UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/x"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(extra)
    return env


def run(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HUB), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def counts(db_url: str) -> tuple[int, int]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return (conn.execute(select(func.count()).select_from(SubjectRequestRow)).scalar_one(),
                    conn.execute(select(func.count()).select_from(AuditEventRow)).scalar_one())
    finally:
        engine.dispose()


def test_issue_flow_end_to_end(tmp_path, db_url):
    env = clean_env(HUB_DATABASE_URL=db_url, HUB_SECRET=TEST_SECRET)
    new = run(tmp_path, "request", "new", "erasure", "--email", EMAIL, "--phone",
              "040 123 4567", "--name", "Mari Virtanen", env=env)
    assert new.returncode == 0, new.stderr
    match = re.fullmatch(r"(R-\d{8}-[0-9a-f]{6})\s+erasure\s+due (\d{4}-\d\d-\d\d)\n"
                         r"letter queued: acknowledgement by email to m\*\*\*@example.fi\n",
                         new.stdout)
    assert match, new.stdout
    rid, due = match.groups()

    listed = run(tmp_path, "request", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert rid in listed.stdout and due in listed.stdout
    assert "m***@example.fi" in listed.stdout
    assert "mari.virtanen" not in listed.stdout.lower() and "1234567" not in listed.stdout

    shown = run(tmp_path, "request", "show", rid, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "mari.virtanen@example.fi" in shown.stdout and "+358401234567" in shown.stdout
    assert "Mari Virtanen" in shown.stdout

    extended = run(tmp_path, "request", "extend", rid, "--reason", "many systems", env=env)
    assert extended.returncode == 0, extended.stderr
    assert re.search(rf"{rid} now due \d{{4}}-\d\d-\d\d", extended.stdout)
    assert "extended: many systems" in run(tmp_path, "request", "show", rid, env=env).stdout

    verified = run(tmp_path, "request", "verify", rid, env=env)
    assert verified.returncode == 0 and f"{rid} verified" in verified.stdout

    ok = run(tmp_path, "audit", "verify", env=env)
    assert ok.returncode == 0, ok.stderr
    # received, its letter queued, extended, its letter queued, verified
    assert "audit trail intact: 5 events" in ok.stdout

    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET payload = '{}' WHERE seq = 2"))
    engine.dispose()
    broken = run(tmp_path, "audit", "verify", env=env)
    assert broken.returncode == 1
    assert broken.stderr.strip().splitlines() == [broken.stderr.strip()]
    assert "event 2" in broken.stderr and "edited" in broken.stderr


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run the CLI in-process in an empty working directory on a fresh SQLite file."""
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("HUB_")]:
        monkeypatch.delenv(key)
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    runner = CliRunner()

    def invoke(*args: str, **env: str | None):
        full_env = {"HUB_DATABASE_URL": url, "HUB_SECRET": TEST_SECRET}
        full_env.update(env)
        return runner.invoke(app, list(args), env=full_env)

    invoke.url = url  # type: ignore[attr-defined]
    return invoke


def new_request(cli) -> str:
    result = cli("request", "new", "access", "--email", "aino@example.fi")
    assert result.exit_code == 0, result.output
    return result.stdout.split()[0]


def one_line_error(result, code: int) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize("args", [
    ["request", "new", "erasure", "--email", "not-an-email"],
    ["request", "new", "erasure", "--email", "aino@@example.fi"],
    ["request", "new", "erasure", "--phone", "call me"],
    ["request", "new", "erasure"],
    ["request", "new", "deletion", "--email", "aino@example.fi"],
    ["request", "new", "rectification", "--email", "aino@example.fi"],
])
def test_bad_new_request_exits_1_and_writes_nothing(cli, args):
    new_request(cli)
    before = counts(cli.url)
    line = one_line_error(cli(*args), 1)
    assert counts(cli.url) == before
    if "--email" not in args and "--phone" not in args:
        assert "--email or --phone" in line


def test_unknown_kind_names_the_kinds(cli):
    line = one_line_error(cli("request", "new", "deletion", "--email", "a@example.fi"), 1)
    assert "deletion" in line and "erasure" in line


def test_unknown_id_exits_1(cli):
    new_request(cli)
    before = counts(cli.url)
    for args in (["request", "show", "R-nope"], ["request", "verify", "R-nope"],
                 ["request", "extend", "R-nope", "--reason", "x"]):
        line = one_line_error(cli(*args), 1)
        assert "R-nope" in line
    assert counts(cli.url) == before


def test_illegal_transition_exits_1_and_writes_nothing(cli):
    rid = new_request(cli)
    assert cli("request", "verify", rid).exit_code == 0
    before = counts(cli.url)
    line = one_line_error(cli("request", "verify", rid), 1)
    assert "is verified; it cannot become verified" in line
    assert counts(cli.url) == before


def test_second_extension_is_refused(cli):
    rid = new_request(cli)
    assert cli("request", "extend", rid, "--reason", "complex").exit_code == 0
    before = counts(cli.url)
    assert "already extended" in one_line_error(
        cli("request", "extend", rid, "--reason", "again"), 1)
    assert counts(cli.url) == before


def test_reject_scrubs_and_list_shows_masked(cli):
    rid = new_request(cli)
    assert cli("request", "reject", rid, "--reason", "unverifiable").exit_code == 0
    shown = cli("request", "show", rid)
    assert "aino@example.fi" not in shown.stdout and "a***@example.fi" in shown.stdout


def test_list_filters(cli):
    assert cli("request", "list").stdout.strip() == "no requests"
    rid = new_request(cli)
    assert cli("request", "list", "--overdue").stdout.strip() == "no requests"
    assert rid in cli("request", "list", "--due-within", "40").stdout
    assert rid not in cli("request", "list", "--due-within", "0").stdout


def test_database_unreachable_exits_3(cli):
    result = cli("request", "new", "erasure", "--email", "aino@example.fi",
                 HUB_DATABASE_URL=UNREACHABLE)
    line = one_line_error(result, 3)
    assert "cannot open the database" in line and "127.0.0.1:1" in line


def test_database_unreachable_exits_3_from_the_shell(tmp_path):
    result = run(tmp_path, "request", "list",
                 env=clean_env(HUB_DATABASE_URL=UNREACHABLE, HUB_SECRET=TEST_SECRET))
    assert result.returncode == 3
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot open the database" in result.stderr


@pytest.mark.parametrize("secret", [None, "short"])
def test_missing_or_short_secret_exits_3(cli, secret):
    result = cli("request", "new", "erasure", "--email", "aino@example.fi", HUB_SECRET=secret)
    line = one_line_error(result, 3)
    assert "HUB_SECRET" in line
    assert counts(cli.url) == (0, 0)


def test_sandbox_mode_needs_no_secret(cli):
    result = cli("request", "new", "erasure", "--email", "aino@example.fi",
                 HUB_SECRET=None, HUB_MODE="sandbox")
    assert result.exit_code == 0, result.output


def test_init_writes_private_env_and_refuses_to_overwrite(cli, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("HUB_DATABASE_URL=sqlite:///x.db\n")
    result = cli("init")
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    content = env_file.read_text()
    assert "HUB_DATABASE_URL=sqlite:///x.db" in content
    (secret_line,) = [line for line in content.splitlines() if line.startswith("HUB_SECRET=")]
    assert len(secret_line.split("=", 1)[1]) >= 32

    refused = cli("init")
    assert refused.exit_code == 1 and "--force" in refused.stderr
    assert env_file.read_text() == content

    forced = cli("init", "--force")
    assert forced.exit_code == 0
    lines = env_file.read_text().splitlines()
    assert len([line for line in lines if line.startswith("HUB_SECRET=")]) == 1
    assert secret_line not in lines
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


def test_secret_from_env_file_is_used(cli, tmp_path):
    assert cli("init").exit_code == 0
    result = cli("request", "new", "erasure", "--email", "aino@example.fi", HUB_SECRET=None)
    assert result.exit_code == 0, result.output


def test_db_upgrade_hides_nothing_secret(cli):
    result = cli("db", "upgrade")
    assert result.exit_code == 0 and "up to date" in result.stdout


def test_person_find_shows_every_system_and_suppression(cli):
    from hub.domain import Identifier, IdentifierKind, SourceRecord
    from hub.index import IndexWriter, recluster
    from hub.settings import Settings
    from hub.store import open_store
    from hub.suppression import add

    store = open_store(Settings(_env_file=None, database_url=cli.url, secret=TEST_SECRET))
    with store.session() as session:
        for system, rid, email, phone in [("pipedrive", "7", "Aino@Example.fi", "040 123 4567"),
                                          ("mailchimp", "L1:ab", "aino@example.fi", "")]:
            writer = IndexWriter(session, system, full=True)
            writer.add([SourceRecord(system, rid, (email,), (phone,) if phone else (),
                                     "Aino Virtanen")])
            writer.finish()
        recluster(session)
        add(session, store.hasher, [Identifier(IdentifierKind.EMAIL, "aino@example.fi")],
            reason="opt_out", request_id="R-1")
    store.close()

    found = cli("person", "find", "+358 40 1234567")
    assert found.exit_code == 0, found.output
    assert "pipedrive  7" in found.stdout and "mailchimp  L1:ab" in found.stdout
    assert cli("person", "find", "AINO@example.fi").stdout.startswith("suppressed: opt_out")
    assert cli("person", "find", "nobody@example.fi").stdout.strip() == "not in the index"
    one_line_error(cli("person", "find", "not an identifier"), 1)


def _awaiting_review(db_url: str) -> str:
    """A request whose run reached two candidate records and left a synced mail."""
    from hub import ledger, outcomes, review
    from hub.domain import Action, Identifier, IdentifierKind, Outcome, RecordOutcome, RecordRef
    from hub.ledger import RequestKind, RequestState
    from hub.settings import Settings
    from hub.store import open_store

    store = open_store(Settings(_env_file=None, database_url=db_url, secret=TEST_SECRET))
    try:
        with store.session() as session:
            row = ledger.create_request(session, store.hasher, RequestKind.ERASURE,
                                        [Identifier(IdentifierKind.EMAIL, "mika@yritys.fi")])
            ledger.verify(session, row.id)
            ledger.transition(session, row, RequestState.IN_PROGRESS)
            ledger.ensure_tasks(session, row, ["mailchimp", "pipedrive"])
            review.register(session, row.id, [
                (RecordRef("mailchimp", "member", "x5", container="a1"),
                 "phone +358*******56 is shared by several people"),
                (RecordRef("mailchimp", "member", "x1", container="a1"), "reached only "
                                                                         "through the index")])
            outcomes.begin(session, row.id, "pipedrive")
            outcomes.record(session, row.id, Outcome("pipedrive", (
                RecordOutcome(RecordRef("pipedrive", "mailMessage", "9"), Action.KEPT),),
                verified=True))
            outcomes.begin(session, row.id, "mailchimp")
            outcomes.record(session, row.id, Outcome("mailchimp", verified=True), candidates=2)
            ledger.finalise(session, store.hasher, row)
            return row.id
    finally:
        store.close()


def test_review_and_confirm_through_the_command(tmp_path, db_url):
    env = clean_env(HUB_DATABASE_URL=db_url, HUB_SECRET=TEST_SECRET, HUB_OPERATOR="liisa")
    rid = _awaiting_review(db_url)
    shown = run(tmp_path, "request", "show", rid, env=env)
    assert "waits for an operator" in shown.stdout and f"hub request review {rid}" in shown.stdout
    listed = run(tmp_path, "request", "review", rid, env=env)
    assert listed.returncode == 0, listed.stderr
    assert "pending" in listed.stdout and "+358*******56" in listed.stdout

    wrong = run(tmp_path, "request", "review", rid, "--approve", "7", env=env)
    assert wrong.returncode == 1 and wrong.stderr.count("\n") == 1
    assert "has no candidate 7" in wrong.stderr

    decided = run(tmp_path, "request", "review", rid, "--exclude", "1", "--approve", "2",
                  env=env)
    assert decided.returncode == 0, decided.stderr
    assert "excluded" in decided.stdout and "approved" in decided.stdout
    assert "by liisa" in decided.stdout
    assert "left something to confirm" in decided.stdout  # the mail is still to confirm

    no_note = run(tmp_path, "task", "confirm", rid, "pipedrive", "--note", " ", env=env)
    assert no_note.returncode == 1 and "needs a note" in no_note.stderr
    confirmed = run(tmp_path, "task", "confirm", rid, "pipedrive", "--note",
                    "deleted the mail in the shared inbox", env=env)
    assert confirmed.returncode == 0, confirmed.stderr
    assert "request is verified" in confirmed.stdout  # every decision made: runs again


def _waiting_for_the_archive(db_url: str, policy_file: Path) -> str:
    """An access request whose only task is a paper archive's, opened by the job's plan."""
    from hub import ledger, manual
    from hub.domain import Identifier, IdentifierKind
    from hub.ledger import RequestKind, RequestState
    from hub.policy import load_policy
    from hub.settings import Settings
    from hub.store import open_store

    policy = load_policy(policy_file)
    store = open_store(Settings(_env_file=None, database_url=db_url, secret=TEST_SECRET))
    try:
        with store.session() as session:
            row = ledger.create_request(session, store.hasher, RequestKind.ACCESS,
                                        [Identifier(IdentifierKind.EMAIL, "mika@yritys.fi")])
            ledger.verify(session, row.id)
            ledger.transition(session, row, RequestState.IN_PROGRESS)
            ledger.ensure_tasks(session, row, ["paper_archive"])
            manual.open_tasks(session, row, policy, timezone="Europe/Helsinki")
            ledger.finalise(session, store.hasher, row)
            return row.id
    finally:
        store.close()


def test_a_paper_archive_task_shows_its_instructions_and_is_confirmed_by_command(
        tmp_path, db_url):
    policy = tmp_path / "policy.toml"
    policy.write_text('[systems.paper_archive]\nkind = "manual"\ntitle = "Paper contracts"\n'
                      'instructions = "Copy the contract from the cabinet."\n', "utf-8")
    env = clean_env(HUB_DATABASE_URL=db_url, HUB_SECRET=TEST_SECRET, HUB_OPERATOR="liisa")
    rid = _waiting_for_the_archive(db_url, policy)
    shown = run(tmp_path, "request", "show", rid, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "Paper contracts, by hand by 20" in shown.stdout
    assert "Copy the contract from the cabinet." in shown.stdout
    assert f"hub task confirm {rid} paper_archive --outcome" in shown.stdout

    unbounded = run(tmp_path, "task", "confirm", rid, "paper_archive", "--outcome", "retained",
                    "--note", "kept", env=env)
    assert unbounded.returncode == 1 and unbounded.stderr.count("\n") == 1
    assert "--until" in unbounded.stderr
    bad_date = run(tmp_path, "task", "confirm", rid, "paper_archive", "--outcome", "retained",
                   "--note", "kept", "--until", "31.12.2032", "--basis", "x", env=env)
    assert bad_date.returncode == 1 and "YYYY-MM-DD" in bad_date.stderr
    kept = run(tmp_path, "task", "confirm", rid, "paper_archive", "--outcome", "retained",
               "--note", "signed contract", "--until", "2032-12-31",
               "--basis", "Kirjanpitolaki 2:10", env=env)
    assert kept.returncode == 0, kept.stderr
    assert f"{rid}/paper_archive confirmed retained; request is verified" in kept.stdout
    again = run(tmp_path, "task", "confirm", rid, "paper_archive", "--note", "x", env=env)
    assert again.returncode == 1 and "is retained" in again.stderr


# ------------------------------------------------------- when and how a request arrived

def test_a_letter_received_last_week_is_due_a_month_after_it_arrived(cli):
    from hub.deadlines import add_months

    arrived = date.today() - timedelta(days=9)
    filed = cli("request", "new", "erasure", "--email", "aino@example.fi", "--received",
                arrived.isoformat(), "--channel", "letter", "--language", "sv")
    assert filed.exit_code == 0, filed.output
    rid, _, _, due = filed.stdout.split()[:4]
    assert due == add_months(arrived, 1).isoformat()
    shown = cli("request", "show", rid)
    assert f"received  {arrived.isoformat()} 00:00 Europe/Helsinki" in shown.stdout
    assert "by letter   answer in sv" in shown.stdout


@pytest.mark.parametrize(("args", "says"), [
    (["--received", (date.today() + timedelta(days=2)).isoformat()], "in the future"),
    (["--received", "20.11.2026"], "YYYY-MM-DD"),
    (["--received", "2017-01-01"], "before 2018-05-25"),
    (["--channel", "fax"], "--channel is one of email, letter"),
    (["--language", "de"], "--language is one of fi, sv, en"),
])
def test_a_wrong_receipt_channel_or_language_is_one_line_and_writes_nothing(cli, args, says):
    new_request(cli)
    before = counts(cli.url)
    line = one_line_error(cli("request", "new", "access", "--email", "b@example.fi", *args), 1)
    assert says in line
    assert counts(cli.url) == before


def test_rectification_carries_its_corrected_values_masked_on_screen(cli):
    result = cli("request", "new", "rectification", "--email", "aino@example.fi",
                 "--set-email", "Aino.Korhonen@Example.fi", "--set-name", "Aino  Korhonen",
                 "--set-phone", "040 111 2233",
                 "--set-address", "Mannerheimintie 1 A 2, 00100 Helsinki")
    assert result.exit_code == 0, result.output
    rid, kind = result.stdout.split()[:2]
    assert kind == "rectification"
    shown = cli("request", "show", rid)
    assert shown.exit_code == 0, shown.output
    assert "corrects  email: a***@example.fi" in shown.stdout
    assert "corrects  name: A*** K***" in shown.stdout
    assert "korhonen" not in shown.stdout.lower() and "Mannerheimintie" not in shown.stdout


@pytest.mark.parametrize(("args", "says"), [
    (["--set-address", "Mannerheimintie 1 Helsinki"], "street, postcode city"),
    (["--set-email", "not-an-email"], "e-mail"),
    (["--set-phone", "call me"], "phone"),
    (["--set-name", "  "], "--set-name is empty"),
    ([], "at least one corrected value"),
])
def test_a_malformed_corrected_value_is_one_line_and_files_nothing(cli, args, says):
    new_request(cli)
    before = counts(cli.url)
    line = one_line_error(cli("request", "new", "rectification", "--email",
                              "aino@example.fi", *args), 1)
    assert says in line
    assert counts(cli.url) == before


def test_a_second_access_request_this_year_from_another_address_is_flagged_chargeable(cli):
    """Controller D: the first access each year is free; the same person writing from
    their private address is the same person (linked in the index by their own mobile)."""
    from hub.domain import SourceRecord
    from hub.index import IndexWriter, recluster
    from hub.settings import Settings
    from hub.store import open_store

    store = open_store(Settings(_env_file=None, database_url=cli.url, secret=TEST_SECRET))
    with store.session() as session:
        writer = IndexWriter(session, "pipedrive", full=True)
        writer.add([
            SourceRecord("pipedrive", "1", ("aino@work.fi",), ("+358401234567",),
                         "Aino Virtanen"),
            SourceRecord("pipedrive", "2", ("aino.private@example.fi",), ("+358401234567",),
                         "Aino Virtanen"),
            # a colleague on the company switchboard: not Aino
            SourceRecord("pipedrive", "3", ("mika@work.fi",), ("+35891234567",), "Mika Nieminen"),
            SourceRecord("pipedrive", "4", ("susanna@work.fi",), ("+35891234567",),
                         "Susanna Koski"),
        ])
        writer.finish()
        recluster(session)
    store.close()

    first = cli("request", "new", "access", "--email", "aino@work.fi")
    assert first.exit_code == 0 and "chargeable" not in first.stdout
    again = cli("request", "new", "access", "--email", "aino.private@example.fi")
    assert again.exit_code == 0, again.output
    assert "access request number 2 from this subject" in again.stdout
    assert "chargeable" in cli("request", "show", again.stdout.split()[0]).stdout

    # a letter that arrived in January, filed today, was the first of the year
    january = cli("request", "new", "access", "--email", "aino@work.fi", "--allow-duplicate",
                  "--received", f"{date.today().year}-01-02")
    assert january.exit_code == 0 and "number" not in january.stdout, january.output

    colleague = cli("request", "new", "access", "--email", "mika@work.fi")
    assert colleague.exit_code == 0 and "number" not in colleague.stdout
    other = cli("request", "new", "access", "--email", "susanna@work.fi", "--phone",
                "+35891234567")
    assert other.exit_code == 0 and "number" not in other.stdout  # the switchboard is shared


def test_objections_to_lists_are_recorded_and_a_list_is_checked_by_command(cli, tmp_path):
    added = cli("objection", "add", "--email", "Aino.Virtanen@example.fi", "--operator", "liisa")
    assert added.exit_code == 0, added.output
    assert "objection to lists recorded for a***@example.fi" in added.stdout
    attendees = tmp_path / "osallistujat.csv"
    # as a Finnish Excel saves CSV: semicolons
    attendees.write_text("nimi;email\nAino;aino.virtanen@example.fi\nMikko;mikko@example.fi\n",
                         "utf-8")
    checked = cli("objection", "check", str(attendees))
    assert checked.exit_code == 0, checked.output
    assert "row 2: objected to lists (a***@example.fi)" in checked.stdout
    assert "1 of 3 row(s) objected" in checked.stdout
    assert "aino.virtanen" not in checked.stdout
    found = cli("person", "find", "aino.virtanen@example.fi")
    assert found.stdout.startswith("suppressed: lists")
    one_line_error(cli("objection", "add", "--email", "not-an-email"), 1)
    missing = one_line_error(cli("objection", "check", str(tmp_path / "nope.csv")), 1)
    assert "cannot read" in missing


def test_restriction_and_its_lift_are_requests(cli):
    restricted = cli("request", "new", "restriction", "--email", "aino@example.fi")
    assert restricted.exit_code == 0 and restricted.stdout.split()[1] == "restriction"
    lifted = cli("request", "new", "restriction", "--lift", "--email", "aino@example.fi")
    assert lifted.exit_code == 0 and lifted.stdout.split()[1] == "restriction_lift"


@pytest.mark.parametrize(("args", "says"), [
    (["erasure", "--lift"], "--lift goes with a restriction"),
    (["restriction", "--set-name", "Aino K"], "only a rectification carries"),
])
def test_options_of_another_kind_are_refused(cli, args, says):
    line = one_line_error(cli("request", "new", *args, "--email", "aino@example.fi"), 1)
    assert says in line
