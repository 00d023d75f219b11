"""The `hub` command when the environment or the input is hostile.

Every failure here is one line on stderr and the documented exit code (1 input,
3 environment), with nothing written; run through typer's CliRunner in an empty
working directory, or as a real process where a hang or the shell matters.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from hub.cli import app
from hub.settings import SANDBOX_SECRET
from tests.conftest import TEST_SECRET

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """The CLI in-process, in an empty working directory, on a fresh SQLite file."""
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.upper().startswith("HUB_")]:
        monkeypatch.delenv(key)
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    runner = CliRunner()

    def invoke(*args: str, **env: str | None):
        full_env = {"HUB_DATABASE_URL": url, "HUB_SECRET": TEST_SECRET}
        full_env.update(env)
        return runner.invoke(app, list(args), env=full_env)

    invoke.url = url  # type: ignore[attr-defined]
    invoke.path = tmp_path / "hub.db"  # type: ignore[attr-defined]
    return invoke


def one_line_error(result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


def new_request(cli, *args: str, email: str = "aino@example.fi") -> str:
    result = cli("request", "new", "access", "--email", email, *args)
    assert result.exit_code == 0, result.output
    return result.stdout.split()[0]


def table_counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                    for t in ("subject_requests", "request_identifiers", "audit_events")}
    finally:
        engine.dispose()


# --- the audit trail's tip -----------------------------------------------------------


def test_audit_tip_is_written_down_and_verified_later(cli):
    new_request(cli)
    tip = cli("audit", "tip")
    assert tip.exit_code == 0, tip.output
    recorded = tip.stdout.strip()
    seq, digest = recorded.split(":")
    assert seq == "2" and len(digest) == 64  # received, its acknowledgement queued
    new_request(cli, email="mikko@example.fi")
    ok = cli("audit", "verify", "--tip", recorded)
    assert ok.exit_code == 0, ok.output
    assert f"recorded tip (event {seq})" in ok.stdout
    assert "audit trail intact: 4 events" in ok.stdout  # and the second request's two


def test_audit_verify_against_the_tip_finds_events_cut_from_the_end(cli):
    new_request(cli)
    kept = int(cli("audit", "tip").stdout.split(":")[0])  # the first request's events
    new_request(cli, email="mikko@example.fi")
    recorded = cli("audit", "tip").stdout.strip()
    last = int(recorded.split(":")[0])
    with sqlite3.connect(cli.path) as conn:  # cut the later events and rewrite the head
        prev = conn.execute("SELECT hash FROM audit_events WHERE seq = ?", (kept,)).fetchone()[0]
        conn.execute("DELETE FROM audit_events WHERE seq > ?", (kept,))
        conn.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (kept, prev))
    assert cli("audit", "verify").exit_code == 0  # nothing inside the database shows it
    line = one_line_error(cli("audit", "verify", "--tip", recorded), 1)
    assert f"ends at event {kept}" in line and f"event {last}" in line


def test_audit_tip_of_a_broken_trail_is_refused(cli):
    new_request(cli)
    with sqlite3.connect(cli.path) as conn:
        conn.execute("UPDATE audit_events SET payload = '{}' WHERE seq = 1")
    line = one_line_error(cli("audit", "tip"), 1)
    assert "broken at event 1" in line


@pytest.mark.parametrize("tip", ["", "1", "one:two", "1:" + "g" * 64])
def test_audit_verify_with_a_malformed_tip_exits_1(cli, tip):
    assert "SEQ:MAC" in one_line_error(cli("audit", "verify", "--tip", tip), 1)


# --- environment errors: one line, exit 3 ----------------------------------------------


def _corrupt(cli) -> dict[str, str]:
    cli.path.write_bytes(b"this is not a database, just some bytes " * 100)
    return {}


def _read_only(cli) -> dict[str, str]:
    new_request(cli)  # a real database, then opened read-only
    return {"HUB_DATABASE_URL": f"sqlite:///file:{cli.path}?mode=ro&uri=true"}


def _home_under_a_file(cli) -> dict[str, str]:
    (cli.path.parent / "a-file").write_text("x")
    return {"HUB_DATABASE_URL": None, "HUB_HOME": str(cli.path.parent / "a-file" / "hub")}


ENVIRONMENTS = {
    "url not a url": lambda cli: {"HUB_DATABASE_URL": "not a database url:pw@"},
    "url unknown driver": lambda cli: {"HUB_DATABASE_URL": "postgresql+nosuch://u@h/db"},
    "url driver not installed": lambda cli: {"HUB_DATABASE_URL": "mysql+mysqldb://u@h/db"},
    "url unknown scheme": lambda cli: {"HUB_DATABASE_URL": "mongodb://u@h/db"},
    "server unreachable": lambda cli: {"HUB_DATABASE_URL":
                                       "postgresql+psycopg://postgres@127.0.0.1:1/x"},
    "database corrupt": _corrupt,
    "database read-only": _read_only,
    "home unwritable": _home_under_a_file,
    "timezone unknown": lambda cli: {"HUB_TIMEZONE": "Mars/Base"},
    "mode invalid": lambda cli: {"HUB_MODE": "prod"},
    "number invalid": lambda cli: {"HUB_DUE_SOON_DAYS": "soon"},
    "timeout invalid": lambda cli: {"HUB_DB_CONNECT_TIMEOUT": "0"},
}


@pytest.mark.parametrize("command", [["request", "list"],
                                     ["request", "new", "erasure", "--email", "a@example.fi"]])
@pytest.mark.parametrize("environment", list(ENVIRONMENTS))
def test_bad_environment_is_one_line_and_exit_3(cli, environment, command):
    """Found: 82 to 436 lines of traceback and exit 1; invalid settings a 4-line dump."""
    env = ENVIRONMENTS[environment](cli)
    if environment == "database read-only" and command[1] == "list":
        assert cli(*command, **env).exit_code == 0  # reading a read-only database is fine
        return
    line = one_line_error(cli(*command, **env), 3)
    assert "pw@" not in line


def test_locked_database_is_one_line_and_exit_3_after_the_busy_timeout(cli):
    new_request(cli)
    before = table_counts(cli.url)
    holder = sqlite3.connect(cli.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock and never lets go
    try:
        result = cli("request", "new", "erasure", "--email", "b@example.fi",
                     HUB_DB_CONNECT_TIMEOUT="0.2")
        assert "locked" in one_line_error(result, 3)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert table_counts(cli.url) == before


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()
        for conn in accepted:
            conn.close()


def test_database_that_never_answers_is_one_line_and_exit_3(tmp_path, silent_server):
    """Found: every command hung. A real process: a hang shows as the timeout below."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HUB_")}
    env.update(PYTHONPATH=str(ROOT), HUB_SECRET=TEST_SECRET, HUB_DB_CONNECT_TIMEOUT="1",
               HUB_DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:{silent_server}/x")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "hub.cli", "request", "list"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "cannot open the database" in result.stderr
    assert time.monotonic() - started < 30


def test_statement_that_never_ends_is_one_line_and_exit_3(pg_schema_url, tmp_path,
                                                          monkeypatch):
    """A server that answers but whose statement waits forever (here: on a lock)."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    env = {"HUB_DATABASE_URL": pg_schema_url, "HUB_SECRET": TEST_SECRET}
    assert runner.invoke(app, ["request", "list"], env=env).exit_code == 0
    engine = create_engine(pg_schema_url)
    with engine.connect() as holder:
        holder.execute(text("LOCK TABLE subject_requests IN ACCESS EXCLUSIVE MODE"))
        result = runner.invoke(app, ["request", "list"],
                               env=dict(env, HUB_DB_STATEMENT_TIMEOUT="0.5"))
        holder.rollback()
    engine.dispose()
    assert "timeout" in one_line_error(result, 3)


# --- a leftover sandbox file, a weak secret ---------------------------------------------


def test_leftover_sandbox_file_never_runs_the_hub_on_the_public_key(cli, tmp_path):
    """Found: a leftover `.hub/sandbox.env` silently put the hub on the built-in key."""
    (tmp_path / ".hub").mkdir()
    (tmp_path / ".hub" / "sandbox.env").write_text("HUB_MODE=sandbox\n")
    result = cli("request", "new", "erasure", "--email", "a@example.fi", HUB_SECRET=None)
    assert ".hub/sandbox.env" in one_line_error(result, 3)
    assert table_counts(cli.url)["subject_requests"] == 0


@pytest.mark.parametrize("secret", [" " * 32, "x" * 32, SANDBOX_SECRET])
def test_weak_or_public_secret_is_refused_naming_its_source(cli, secret):
    result = cli("request", "new", "erasure", "--email", "a@example.fi", HUB_SECRET=secret)
    line = one_line_error(result, 3)
    assert "HUB_SECRET from the environment" in line
    assert table_counts(cli.url)["subject_requests"] == 0


# --- refused input: one line, exit 1, nothing written ----------------------------------


@pytest.mark.parametrize("reason", ["", "  ", "\t\n "])
def test_empty_rejection_reason_is_refused(cli, reason):
    rid = new_request(cli)
    before = table_counts(cli.url)
    assert "reason" in one_line_error(cli("request", "reject", rid, "--reason", reason), 1)
    assert table_counts(cli.url) == before
    assert "received" in cli("request", "show", rid).stdout


def test_name_longer_than_its_column_is_refused_on_every_database(db_url, tmp_path,
                                                                   monkeypatch):
    """Found: a traceback on PostgreSQL."""
    monkeypatch.chdir(tmp_path)
    env = {"HUB_DATABASE_URL": db_url, "HUB_SECRET": TEST_SECRET}
    long_name = "Aino " + "Virtanen-" * 40
    assert CliRunner().invoke(app, ["request", "list"], env=env).exit_code == 0
    result = CliRunner().invoke(app, ["request", "new", "erasure", "--email", "a@example.fi",
                                      "--name", long_name], env=env)
    line = one_line_error(result, 1)
    assert "--name" in line and "255" in line and "Virtanen" not in line
    assert table_counts(db_url) == {"subject_requests": 0, "request_identifiers": 0,
                                    "audit_events": 0}


# --- stored text on the terminal ---------------------------------------------------


ESCAPES = "\x1b[2J\x1b]0;pwned\x07\x1b[31m\u202e\x9b"


def test_escape_sequences_in_stored_text_are_never_replayed(cli):
    """Found: `request show` replayed them (clear screen, set title, colours)."""
    created = cli("request", "new", "erasure", "--email", "a@example.fi",
                  "--name", f"Aino{ESCAPES}Virtanen")
    assert created.exit_code == 0, created.output
    rid = created.stdout.split()[0]
    assert cli("request", "extend", rid, "--reason", f"many{ESCAPES}systems").exit_code == 0
    shown = cli("request", "show", rid)
    assert shown.exit_code == 0, shown.output
    for char in "\x1b\x07\u202e\x9b":
        assert char not in shown.stdout
    assert "\\x1b[2J" in shown.stdout  # visible, so an operator sees something was there


def test_escape_sequences_from_a_vendor_are_never_replayed_by_person_find(cli):
    from hub.domain import SourceRecord
    from hub.index import IndexWriter, recluster
    from hub.settings import Settings
    from hub.store import open_store

    store = open_store(Settings(_env_file=None, database_url=cli.url, secret=TEST_SECRET))
    with store.session() as session:
        writer = IndexWriter(session, "pipedrive", full=True)
        writer.add([SourceRecord("pipedrive", "7", ("aino@example.fi",), (),
                                 f"Aino{ESCAPES}")])
        writer.finish()
        recluster(session)
    store.close()
    found = cli("person", "find", "aino@example.fi")
    assert found.exit_code == 0, found.output
    assert "\x1b" not in found.stdout and "\x07" not in found.stdout


# --- nothing typed is dropped, nothing filed twice unnoticed -----------------------


def test_every_email_and_phone_given_is_kept(cli):
    """Found: `--email` given twice kept only the last."""
    created = cli("request", "new", "erasure", "--email", "aino@example.fi",
                  "--email", "aino.virtanen@work.example.fi", "--phone", "040 123 4567",
                  "--phone", "+358 50 765 4321", "--email", "AINO@example.fi")
    assert created.exit_code == 0, created.output
    shown = cli("request", "show", created.stdout.split()[0]).stdout
    for value in ("aino@example.fi", "aino.virtanen@work.example.fi", "+358401234567",
                  "+358507654321"):
        assert value in shown
    assert shown.count("aino@example.fi") == 1


def test_open_request_of_the_same_kind_for_the_same_person_is_named(cli):
    """Found: duplicates passed unnoticed."""
    first = cli("request", "new", "erasure", "--email", "aino@example.fi", "--phone",
                "040 123 4567")
    rid = first.stdout.split()[0]
    before = table_counts(cli.url)
    for again in (["--email", "AINO@example.fi"], ["--phone", "+358401234567"]):
        line = one_line_error(cli("request", "new", "erasure", *again), 1)
        assert rid in line and "--allow-duplicate" in line
    assert table_counts(cli.url) == before
    other_kind = cli("request", "new", "opt-out", "--email", "aino@example.fi")
    assert other_kind.exit_code == 0, other_kind.output
    allowed = cli("request", "new", "erasure", "--email", "aino@example.fi",
                  "--allow-duplicate")
    assert allowed.exit_code == 0, allowed.output


def test_a_closed_request_is_no_duplicate(cli):
    rid = new_request(cli)
    assert cli("request", "reject", rid, "--reason", "not verifiable").exit_code == 0
    assert cli("request", "new", "access", "--email", "aino@example.fi").exit_code == 0
