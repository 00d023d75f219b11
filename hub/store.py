"""The hub's storage handle: one engine, one session factory, one hasher.

Everything that opens the database goes through `open_store`, which applies
pending migrations first, so no caller can run against an old schema. Every session
it hands out carries the audit chain's key (derived from HUB_SECRET when first
needed), so `hub.audit` never takes its key from the database it protects.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from hub import audit
from hub.db import DatabaseUnavailable, make_engine, private_folder, session_scope, upgrade
from hub.hashing import Hasher
from hub.settings import Settings


@dataclass
class Store:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def hasher(self) -> Hasher:
        return Hasher(self.settings.secret_bytes)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with session_scope(self.sessions) as session:
            yield session

    def audit_key(self) -> bytes:
        return audit.chain_key(self.settings.secret_bytes)

    def close(self) -> None:
        self.engine.dispose()


def _own_home(settings: Settings) -> None:
    """HUB_HOME holds the default database: its folder is the owner's alone, even when
    something else (the sandbox's env file) created it first."""
    if settings.database_url:
        return
    try:
        private_folder(settings.home)
    except OSError as exc:
        raise DatabaseUnavailable(f"cannot create HUB_HOME {settings.home}: "
                                  f"{exc.strerror or exc}") from None


def open_store(settings: Settings, *, migrate: bool = True) -> Store:
    _own_home(settings)
    engine = make_engine(settings.resolved_database_url,
                         connect_timeout=settings.db_connect_timeout,
                         statement_timeout=settings.db_statement_timeout)
    store = Store(settings, engine, sessionmaker(engine, expire_on_commit=False))
    # Lazy: commands that never touch the trail (e.g. `request list`) need no secret.
    store.sessions.configure(info={audit.KEY_INFO: store.audit_key})
    if migrate:
        try:
            upgrade(engine, audit_key=store.audit_key)
        except BaseException:
            engine.dispose()
            raise
    return store
