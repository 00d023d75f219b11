"""The hub's SQLite database is its owner's alone (found: 0644 in a 0755 folder)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub import audit, bundle
from hub.domain import Export
from hub.settings import Settings
from hub.store import open_store
from tests.conftest import TEST_SECRET


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The umask most systems give users: new files 0644, new folders 0755."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_once(settings: Settings) -> None:
    store = open_store(settings)
    with store.session() as session:
        audit.append(session, "test.event", {})
    return store


def test_new_database_folder_file_and_wal_are_owner_only(tmp_path):
    home = tmp_path / "deploy" / ".hub"
    store = write_once(Settings(_env_file=None, home=home, secret=TEST_SECRET))
    try:
        db = home / "hub.db"
        sidecars = [p for p in home.iterdir() if p.name != "hub.db"]
        assert {p.name for p in sidecars} >= {"hub.db-wal", "hub.db-shm"}
        assert mode(home) == 0o700
        assert mode(db) == 0o600
        for path in sidecars:
            assert mode(path) == 0o600, path.name
    finally:
        store.close()


def test_database_left_readable_by_an_older_hub_is_tightened(tmp_path):
    db = tmp_path / "hub.db"
    write_once(Settings(_env_file=None, database_url=f"sqlite:///{db}",
                        secret=TEST_SECRET)).close()
    for path in tmp_path.glob("hub.db*"):
        path.chmod(0o644)
    store = write_once(Settings(_env_file=None, database_url=f"sqlite:///{db}",
                                secret=TEST_SECRET))
    try:
        assert {p.name: mode(p) for p in tmp_path.glob("hub.db*")} == {
            p.name: 0o600 for p in tmp_path.glob("hub.db*")}
    finally:
        store.close()


def test_an_existing_folder_is_left_as_the_operator_made_it(tmp_path):
    tmp_path.chmod(0o755)
    store = write_once(Settings(_env_file=None, database_url=f"sqlite:///{tmp_path}/hub.db",
                                secret=TEST_SECRET))
    store.close()
    assert mode(tmp_path) == 0o755 and mode(tmp_path / "hub.db") == 0o600


def test_hub_home_made_first_by_the_sandbox_is_made_owner_only(tmp_path):
    """`hub sandbox serve` may create .hub (0755) before the database exists in it."""
    home = tmp_path / ".hub"
    home.mkdir()
    (home / "sandbox.env").write_text("HUB_MODE=sandbox\n")
    store = write_once(Settings(_env_file=None, home=home, secret=TEST_SECRET))
    store.close()
    assert mode(home) == 0o700 and mode(home / "hub.db") == 0o600


def test_opening_the_store_again_keeps_this_process_s_locks(tmp_path):
    """Found: opening a second store on the same file (as `hub request run` does while its
    engine is open) opened and closed a descriptor of the database, which drops every
    POSIX lock this process holds on it. In WAL mode that lock is what tells another
    process it is not alone; without it, that process deletes the WAL under our feet
    ("database disk image is malformed"). Switching journal mode needs to be alone: it
    must still be refused (locked)."""
    import sqlite3
    import subprocess
    import sys

    db = tmp_path / "hub.db"
    settings = Settings(_env_file=None, database_url=f"sqlite:///{db}", secret=TEST_SECRET,
                        home=tmp_path / ".hub")
    write_once(settings).close()
    holder = sqlite3.connect(db)
    try:
        holder.execute("SELECT count(*) FROM audit_events").fetchall()  # the file is open
        open_store(settings).close()  # this process opens the store again meanwhile
        other = subprocess.run(
            [sys.executable, "-c",
             "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=0.2); "
             "print(c.execute('PRAGMA journal_mode=DELETE').fetchone()[0])", str(db)],
            capture_output=True, text=True, timeout=60)
    finally:
        holder.close()
    assert other.stdout.strip() != "delete", "the WAL was taken away from an open database"
    assert "database is locked" in other.stderr or other.stdout.strip() == "wal"


def test_every_folder_the_hub_creates_for_exports_is_owner_only(tmp_path):
    """Found: `.hub/exports/.parts/` was 0755 (mkdir's parents take the umask's mode),
    listing to anyone on the machine which requests had an export."""
    home = tmp_path / ".hub"
    home.mkdir(mode=0o700)
    part = bundle.parts_dir(home, "R-20260101-abcdef") / "typeform.json"
    bundle.write_part(part, Export("typeform", ()))
    made = [home / "exports", home / "exports" / ".parts", part.parent]
    assert {str(p.relative_to(home)): mode(p) for p in made} == {
        str(p.relative_to(home)): 0o700 for p in made}
    assert mode(part) == 0o600
