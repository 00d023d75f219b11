"""A forked op process opens its own database connections, never its parent's.

Job runs fork their op processes from the run's process (pipelines/executor.py). A
child that took a connection from the pool it inherited would talk over its parent's
socket: two processes in one PostgreSQL session, each reading the other's answers.
"""

from __future__ import annotations

import multiprocessing

from sqlalchemy import text

from hub.db import make_engine


def _backend(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def _child_backend(engine, results) -> None:
    results.put(_backend(engine))


def test_a_forked_child_opens_its_own_postgres_session(pg_schema_url: str) -> None:
    engine = make_engine(pg_schema_url)
    try:
        parents = _backend(engine)  # now pooled, its socket open in this process
        ctx = multiprocessing.get_context("fork")
        results = ctx.Queue()
        child = ctx.Process(target=_child_backend, args=(engine, results))
        child.start()
        childs = results.get(timeout=60)
        child.join(timeout=60)
        assert child.exitcode == 0
        assert childs != parents
        assert _backend(engine) == parents  # the parent's session is still its own
    finally:
        engine.dispose()
