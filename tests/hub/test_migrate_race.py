"""Several processes opening a new database at once: each ends with it migrated.

Found: a first reconciliation's four sync processes each read "no version" and
created the tables; all but one failed ("table audit_events already exists" on SQLite,
a duplicate key on PostgreSQL), and their syncs waited out a 30 s retry.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier

from sqlalchemy import create_engine, text

from hub.settings import Settings
from tests.conftest import TEST_SECRET

PROCESSES = 6


def _open(url: str, start: Barrier, results) -> None:  # noqa: ANN001 - a manager's list
    from hub.store import open_store  # imported before the barrier: all start together

    start.wait(timeout=60)
    try:
        open_store(Settings(_env_file=None, database_url=url, secret=TEST_SECRET)).close()
        results.append("ok")
    except BaseException as exc:  # noqa: BLE001 - what each process met is the result
        results.append(f"{type(exc).__name__}: {exc}")


def test_processes_opening_a_new_database_at_once_all_find_it_migrated(db_url):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        results = manager.list()
        start = ctx.Barrier(PROCESSES)
        workers = [ctx.Process(target=_open, args=(db_url, start, results))
                   for _ in range(PROCESSES)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        outcome = list(results)
    assert outcome == ["ok"] * PROCESSES
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    finally:
        engine.dispose()
    assert len(versions) == 1
