"""The `hub` command when the environment or the input is hostile.

Every failure here is one line on stderr and the documented exit code (1 input,
3 environment), with nothing written; run through typer's CliRunner in an empty
working directory, or as a real process where a hang or the shell matters.
"""

from __future__ import annotations

import os
import sqlite3

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from hub.cli import app
from tests.conftest import TEST_SECRET


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
    assert recorded.startswith("1:") and len(recorded) == 2 + 64
    new_request(cli, email="mikko@example.fi")
    ok = cli("audit", "verify", "--tip", recorded)
    assert ok.exit_code == 0 and "audit trail intact: 2 events" in ok.stdout
    assert "recorded tip (event 1)" in ok.stdout


def test_audit_verify_against_the_tip_finds_events_cut_from_the_end(cli):
    new_request(cli)
    new_request(cli, email="mikko@example.fi")
    recorded = cli("audit", "tip").stdout.strip()
    with sqlite3.connect(cli.path) as conn:  # cut the last event and rewrite the head
        prev = conn.execute("SELECT hash FROM audit_events WHERE seq = 1").fetchone()[0]
        conn.execute("DELETE FROM audit_events WHERE seq = 2")
        conn.execute("UPDATE audit_head SET seq = 1, hash = ? WHERE id = 1", (prev,))
    assert cli("audit", "verify").exit_code == 0  # nothing inside the database shows it
    line = one_line_error(cli("audit", "verify", "--tip", recorded), 1)
    assert "ends at event 1" in line and "event 2" in line


def test_audit_tip_of_a_broken_trail_is_refused(cli):
    new_request(cli)
    with sqlite3.connect(cli.path) as conn:
        conn.execute("UPDATE audit_events SET payload = '{}' WHERE seq = 1")
    line = one_line_error(cli("audit", "tip"), 1)
    assert "broken at event 1" in line


@pytest.mark.parametrize("tip", ["", "1", "one:two", "1:" + "g" * 64])
def test_audit_verify_with_a_malformed_tip_exits_1(cli, tip):
    assert "SEQ:MAC" in one_line_error(cli("audit", "verify", "--tip", tip), 1)
