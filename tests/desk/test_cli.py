"""`hub user add` and `hub desk`: the shell's side of the desk."""

from __future__ import annotations

import ast
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from sqlalchemy import select
from typer.testing import CliRunner

from hub.cli import app
from hub.models import AuditEventRow, DeskUserRow
from hub.settings import Settings
from hub.store import open_store
from tests.conftest import TEST_SECRET
from tests.desk.conftest import PASSWORD
from tests.polling import poll

DESK = Path(__file__).resolve().parents[2] / "desk"


def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    clean.update(HUB_DATABASE_URL=f"sqlite:///{tmp_path / 'hub.db'}", HUB_SECRET=TEST_SECRET,
                 HUB_OPERATOR="anna")
    return clean


def users(tmp_path: Path) -> dict[str, str]:
    store = open_store(Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'hub.db'}",
                                secret=TEST_SECRET))
    try:
        with store.session() as session:
            return {u.name: u.role for u in session.execute(select(DeskUserRow)).scalars()}
    finally:
        store.close()


def test_user_add_prompts_twice_and_stores_an_argon2_hash(tmp_path):
    result = CliRunner().invoke(app, ["user", "add", "pekka", "--role", "admin"],
                                input=f"{PASSWORD}\n{PASSWORD}\n", env=env(tmp_path))
    assert result.exit_code == 0, result.output
    assert "user pekka added (admin)" in result.output and PASSWORD not in result.output
    assert users(tmp_path) == {"pekka": "admin"}


def test_user_add_reads_the_password_from_stdin(tmp_path):
    result = CliRunner().invoke(app, ["user", "add", "liisa", "--password-stdin"],
                                input=f"{PASSWORD}\n", env=env(tmp_path))
    assert result.exit_code == 0, result.output
    assert users(tmp_path) == {"liisa": "operator"}
    store = open_store(Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'hub.db'}",
                                secret=TEST_SECRET))
    with store.session() as session:
        [event] = session.execute(select(AuditEventRow).where(
            AuditEventRow.action == "desk.user_added")).scalars()
        assert event.actor == "anna" and PASSWORD not in event.payload
    store.close()


def test_user_add_refuses_without_writing(tmp_path):
    runner = CliRunner()
    for args, stdin, message in (
            (["liisa", "--role", "root"], PASSWORD, "viewer, operator or admin"),
            (["liisa"], "short", "at least 12"),
            (["Liisa Virtanen"], PASSWORD, "user name")):
        result = runner.invoke(app, ["user", "add", *args, "--password-stdin"],
                               input=stdin + "\n", env=env(tmp_path))
        assert result.exit_code == 1 and message in result.output
    runner.invoke(app, ["user", "add", "liisa", "--password-stdin"], input=PASSWORD + "\n",
                  env=env(tmp_path))
    again = runner.invoke(app, ["user", "add", "liisa", "--password-stdin"],
                          input=PASSWORD + "\n", env=env(tmp_path))
    assert again.exit_code == 1 and "exists already" in again.output


def test_the_desk_refuses_to_start_without_a_usable_secret(tmp_path):
    bare = {k: v for k, v in env(tmp_path).items() if k != "HUB_SECRET"}
    result = CliRunner().invoke(app, ["desk", "--port", "1"], env=bare)
    assert result.exit_code == 3 and "HUB_SECRET" in result.output


def test_the_desk_imports_the_hub_only():
    """DESIGN.md, Layers: desk → hub; never connectors, pipelines, sandbox or Dagster."""
    for path in DESK.glob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                root = name.split(".")[0]
                assert root not in {"connectors", "pipelines", "sandbox", "dagster", "demo"}, \
                    f"{path.name} imports {name}"


def test_hub_desk_serves_and_logs_method_path_and_status_only(tmp_path):
    """The real command: uvicorn's own access log (query strings, client addresses) is off."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {**env(tmp_path), "PYTHONPATH": str(DESK.parent)}
    server = subprocess.Popen([sys.executable, "-m", "hub.cli", "desk", "--port", str(port)],
                              env=environment, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/login", timeout=2).status_code == 200
        except httpx.TransportError:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            return False

    try:
        poll(up, timeout=30, interval=0.2)
        answer = httpx.get(f"{base}/audit?page=2&who=liisa.virtanen@example.fi", timeout=5)
        assert answer.status_code == 303 and answer.headers["location"] == "/login"
    finally:
        server.terminate()
        out, err = server.communicate(timeout=20)
    logged = out + err
    assert f"the desk: http://127.0.0.1:{port}/" in logged
    assert re.search(r"desk\.access GET /audit 303 \d+ms", logged)
    assert "example.fi" not in logged and "page=" not in logged and "liisa" not in logged
