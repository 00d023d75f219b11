"""Migration 0004: an existing unkeyed chain is verified, then re-keyed, never laundered."""

from __future__ import annotations

import hashlib

import pytest
from alembic import command
from sqlalchemy import text

from hub import audit
from hub.db import DatabaseUnavailable, alembic_config, make_engine
from hub.models import AuditEventRow
from hub.settings import Settings, SettingsError
from hub.store import open_store
from tests.conftest import TEST_SECRET


def _plain_chain(db_url: str, n: int, *, break_at: int | None = None) -> None:
    """A database at revision 0003 holding `n` events chained the old way (SHA-256)."""
    engine = make_engine(db_url)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")
        prev = audit.GENESIS
        for seq in range(1, n + 1):
            row = {"seq": seq, "at": f"2026-01-0{seq}T00:00:00.000000+00:00", "actor": "hub",
                   "action": "request.received", "request_id": f"R-{seq}",
                   "payload": f'{{"n":{seq}}}', "prev": prev}
            digest = hashlib.sha256(audit.canonical(row).encode()).hexdigest()
            if seq == break_at:
                row["payload"] = '{"n":0}'
            conn.execute(text("INSERT INTO audit_events VALUES (:seq, :at, :actor, :action, "
                              ":request_id, :payload, :prev, :hash)"), dict(row, hash=digest))
            prev = digest
        conn.execute(text("INSERT INTO audit_head (id, seq, hash) VALUES (1, :s, :h)"),
                     {"s": n, "h": prev})
    engine.dispose()


def _settings(db_url: str, tmp_path, secret: str | None = TEST_SECRET) -> Settings:
    return Settings(_env_file=None, database_url=db_url, secret=secret, home=tmp_path)


def _version(db_url: str) -> str:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    return version


def test_intact_plain_chain_is_rekeyed_and_then_resists_forgery(db_url, tmp_path):
    _plain_chain(db_url, 3)
    store = open_store(_settings(db_url, tmp_path))
    try:
        with store.session() as session:
            report = audit.verify(session)
            last = session.get(AuditEventRow, 4)
            assert report.ok and report.events == 4
            assert last.action == "audit.rekeyed" and '"events":3' in last.payload
        with store.engine.begin() as conn:  # the old way of forging no longer works
            conn.execute(text("UPDATE audit_events SET payload = '{}' WHERE seq = 2"))
        with store.session() as session:
            assert audit.verify(session).seq == 2
    finally:
        store.close()


def test_broken_plain_chain_is_refused_not_laundered(db_url, tmp_path):
    _plain_chain(db_url, 3, break_at=2)
    with pytest.raises(DatabaseUnavailable) as caught:
        open_store(_settings(db_url, tmp_path))
    assert "broken at event 2" in str(caught.value) and "\n" not in str(caught.value)
    assert _version(db_url) == "0003"


def test_existing_events_need_the_secret_to_be_rekeyed(db_url, tmp_path):
    _plain_chain(db_url, 2)
    with pytest.raises(SettingsError):
        open_store(_settings(db_url, tmp_path, secret=None))
    assert _version(db_url) == "0003"


def test_empty_trail_needs_no_key(db_url, tmp_path):
    _plain_chain(db_url, 0)
    open_store(_settings(db_url, tmp_path, secret=None)).close()
    assert _version(db_url) >= "0004"  # past the re-keying (later migrations follow)
