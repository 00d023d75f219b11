"""Engines, sessions and migrations.

Every command applies pending migrations on first use, so an upgraded hub never
runs against an old schema; `hub db upgrade` does it explicitly (for deployments
that migrate as a separate step).

Two promises are kept here for every caller. Every wait on the database ends: a
connect timeout (SQLite: how long to wait for a lock) and, on PostgreSQL, a
statement timeout, so a server that accepts connections and never answers is an
error, not a hang. And a SQLite database holds personal data, so its folder (when the
hub creates it) is 0700 and the file 0600 from the first byte; SQLite gives its -wal,
-shm and -journal files the database file's mode.
"""

from __future__ import annotations

import fcntl
import math
import os
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
MIGRATION_LOCK = ".migrate-lock"  # beside the database file, owner-only
# PostgreSQL drivers that pass connect_timeout and options on to libpq.
LIBPQ_DRIVERS = ("psycopg", "psycopg2", "psycopg2cffi")


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or opened; the message names it without secrets."""


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def first_line(exc: BaseException) -> str:
    """The driver's own first line: later lines (PostgreSQL's DETAIL) may quote values."""
    orig = getattr(exc, "orig", None)
    text = str(orig) if orig is not None else str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


# Every engine this process made, so that a forked child can drop their pooled connections.
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _forget_inherited_connections() -> None:
    """In a forked child: leave the parent's pooled connections to the parent.

    Job runs fork their op processes (pipelines/executor.py). A child that checked out
    a connection its parent had pooled would talk over the parent's socket: two
    processes in one PostgreSQL session, or one SQLite handle. Disposed without
    closing (SQLAlchemy's own advice for fork), the child opens its own.
    """
    for engine in list(_ENGINES):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_inherited_connections)


def make_engine(url: str, *, connect_timeout: float = 30.0,
                statement_timeout: float = 300.0) -> Engine:
    """An engine that never puts statement parameters (personal data) in errors or logs."""
    parsed = _parse(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = _sqlite_engine(parsed, connect_timeout)
        else:
            engine = create_engine(parsed, pool_pre_ping=True, hide_parameters=True,
                                   connect_args=_server_connect_args(parsed, connect_timeout,
                                                                     statement_timeout))
    except NoSuchModuleError:
        raise DatabaseUnavailable(f"the database URL names an unknown driver "
                                  f"{parsed.drivername!r} (e.g. postgresql+psycopg, "
                                  "sqlite)") from None
    except ImportError as exc:
        raise DatabaseUnavailable(f"the driver for {parsed.drivername!r} is not installed "
                                  f"({exc})") from None
    _ENGINES.add(engine)
    return engine


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError:
        # Not echoed: an unparsable URL may still hold a password.
        raise DatabaseUnavailable("HUB_DATABASE_URL is not a database URL (e.g. "
                                  "postgresql+psycopg://hub@db.example/hub, "
                                  "sqlite:///path/hub.db)") from None


def _server_connect_args(url: URL, connect_timeout: float,
                         statement_timeout: float) -> dict[str, Any]:
    """libpq's timeouts; what the URL itself says wins (its options come last)."""
    if url.get_backend_name() != "postgresql" or url.get_driver_name() not in LIBPQ_DRIVERS:
        return {}
    args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        args["connect_timeout"] = max(1, math.ceil(connect_timeout))
    own = f"-c statement_timeout={max(1, round(statement_timeout * 1000))}"
    given = url.query.get("options")
    given_text = " ".join(given) if isinstance(given, tuple) else (given or "")
    args["options"] = f"{own} {given_text}".strip()
    return args


def _sqlite_engine(url: URL, busy_timeout: float) -> Engine:
    path = _sqlite_path(url)
    if path is not None:
        _private_sqlite_file(path)
    engine = create_engine(url, connect_args={"check_same_thread": False,
                                              "timeout": busy_timeout},
                           hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        # 8 MiB of page cache, and temporary tables (the index's clustering) in temporary
        # files, which SQLite buffers in their own small cache: a 64 MiB cache and
        # in-memory temporary tables made a build's memory grow with the index, and
        # bench/index.py measured no speed gained by them.
        cur.execute("PRAGMA cache_size=-8192")
        cur.close()

    return engine


def _sqlite_path(url: URL) -> Path | None:
    """The file of a plain SQLite URL; None for memory and `file:` URIs (not ours to create)."""
    database = url.database
    if not database or database == ":memory:" or str(url.query.get("uri", "")) == "true":
        return None
    return Path(database)


def private_folder(folder: Path) -> None:
    """Create `folder` 0700, or make an existing one of ours 0700; OSError if it cannot be.

    Every level it creates is 0700, not only the last: `mkdir(parents=True)` gives the
    levels above the umask's 0755 (found: `.hub/exports/.parts/` listed every request
    with an export to anyone on the machine).
    """
    for level in reversed([folder, *folder.parents]):
        if not level.exists():
            with suppress(FileExistsError):
                level.mkdir(mode=0o700)
            level.chmod(0o700)  # mkdir's mode is filtered by the umask
    # Someone else's folder is left alone (the file inside is still 0600).
    if folder.stat().st_mode & 0o077:
        with suppress(PermissionError):
            folder.chmod(0o700)


def private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, owner-only (0600) from the first byte, also when the
    file was there before with looser rights."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)


def _private_sqlite_file(path: Path) -> None:
    """Folder 0700 when the hub creates it, file 0600 from the first byte, sidecars 0600."""
    folder = path.parent
    try:
        if not folder.exists():
            private_folder(folder)
        # Never open an existing database file here: closing any descriptor of a file
        # drops every POSIX lock this process holds on it, and SQLite's locks with it
        # (another engine of this process may be mid-transaction): a corrupt database.
        if not path.exists():
            with suppress(FileExistsError):
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        for file in (path, *(path.with_name(path.name + s)
                             for s in (*SQLITE_SIDECARS, MIGRATION_LOCK))):
            _tighten(file)
    except OSError as exc:
        raise DatabaseUnavailable(f"cannot create the database {path} (HUB_HOME or "
                                  f"HUB_DATABASE_URL): "
                                  f"{exc.strerror or exc}") from None


def _tighten(file: Path) -> None:
    """Owner-only, also for a database an older hub created 0644."""
    try:
        if file.exists() and file.stat().st_mode & 0o077:
            file.chmod(0o600)
    except PermissionError:
        pass  # not ours to change; SQLite will say whether it can be used


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("hub") / "migrations"))
    return cfg


@cache
def head_revision() -> str | None:
    """The newest migration; read once per process (the run reads it before it forks, so
    every op process inherits it instead of importing every migration script)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def upgrade(engine: Engine, *, audit_key: Callable[[], bytes] | None = None) -> None:
    """Apply every pending migration; DatabaseUnavailable when the database is not usable.

    `audit_key` is for the migration that re-keys an existing audit chain: the key
    comes from the settings, never from the database.
    """
    cfg = alembic_config()
    cfg.attributes["audit_key"] = audit_key
    try:
        with _one_migrator(engine), engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Held to the end of this transaction; per schema, so that databases
                # sharing a server do not wait for each other.
                conn.execute(text("SELECT pg_advisory_xact_lock("
                                  "hashtext('hub-migrations:' || current_schema()))"))
            if MigrationContext.configure(conn).get_current_revision() == head_revision():
                return  # the common case: every store opened after the first
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except (DBAPIError, PoolTimeout) as exc:
        raise DatabaseUnavailable(
            f"cannot open the database {safe_url(str(engine.url))}: {first_line(exc)}"
        ) from None


@contextmanager
def _one_migrator(engine: Engine) -> Iterator[None]:
    """Processes opening a new SQLite database at once migrate it one after another.

    Found: the four sync processes of a first reconciliation each read "no version"
    and created the tables, and all but one failed ("table audit_events already
    exists"); on PostgreSQL the same race ends in a duplicate key (the advisory lock in
    `upgrade`). The lock is a file of its own beside the database, never the database
    file: closing a descriptor of that would drop SQLite's own locks (see above).
    """
    path = _sqlite_path(engine.url) if engine.dialect.name == "sqlite" else None
    if path is None:
        yield
        return
    try:
        fd = os.open(path.with_name(path.name + MIGRATION_LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise DatabaseUnavailable(f"cannot lock the database {path} for its migrations: "
                                  f"{exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: committed whole or rolled back whole (nothing half-written)."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
