"""A vendor's limits hold across processes (connectors/gates.py).

Found: each process kept a vendor's limit on its own (a token bucket, a one-at-a-time
lock), so two processes calling Typeform at once sent twice its rate and earned 429s,
and two calling Netvisor overlapped and were refused. Dagster's one-slot pools hid
this by letting one op per vendor run at a time, and left the vendors idle between
ops. The processes here are real ones, calling the sandbox over HTTP.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import pytest

from connectors import gates
from connectors.errors import ConnectorError
from connectors.http import NO_RETRY
from hub.domain import Identifier, IdentifierKind
from hub.settings import Settings
from hub.store import open_store

PROCESSES = 3


def _pool() -> ProcessPoolExecutor:
    # spawn: a fresh interpreter, as each of Dagster's op processes is
    return ProcessPoolExecutor(PROCESSES, mp_context=multiprocessing.get_context("spawn"))


@pytest.fixture(params=["sqlite", "postgres"])
def gate_url(request: pytest.FixtureRequest, tmp_path, monkeypatch) -> str:
    """The gates' database as the hub finds it: a file beside a SQLite hub, or the hub's
    PostgreSQL database (migrated, as the hub's ops always find it)."""
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    if request.param == "postgres":
        url = request.getfixturevalue("pg_schema_url")
        monkeypatch.setenv("HUB_DATABASE_URL", url)
        open_store(Settings(database_url=url, home=tmp_path / "home")).close()
    else:
        monkeypatch.setenv("HUB_DATABASE_URL", f"sqlite:///{tmp_path / 'db' / 'hub.db'}")
    return gates.gate_url()


def _reserve_many(url: str, key: str, interval: float, count: int) -> list[float]:
    store = gates.store_for(url)
    return [store.reserve(key, interval, time.time()) for _ in range(count)]


def test_a_sqlite_hubs_gates_live_in_a_file_beside_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_DATABASE_URL", f"sqlite:///{tmp_path / 'data' / 'hub.db'}")
    assert gates.gate_url() == f"sqlite:///{tmp_path / 'data' / 'hub-gates.db'}"


def test_a_pace_gives_each_call_of_every_process_its_own_start(gate_url):
    interval = 0.01
    with _pool() as pool:
        runs = list(pool.map(_reserve_many, *zip(*[(gate_url, "acme:x", interval, 20)]
                                                  * PROCESSES, strict=True)))
    starts = sorted(s for run in runs for s in run)
    assert len(starts) == PROCESSES * 20
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= interval - 1e-6  # no two calls share a start, none come closer


def test_a_seat_is_held_until_freed_or_its_lease_ends(gate_url):
    store = gates.store_for(gate_url)
    assert store.take_seat("acme:y", 1, "a", ttl=5, now=100.0) == 0
    assert store.take_seat("acme:y", 1, "b", ttl=5, now=101.0) is None
    store.free_seat("acme:y", 0, "b")  # not b's: nothing changes
    assert store.take_seat("acme:y", 1, "b", ttl=5, now=102.0) is None
    assert store.take_seat("acme:y", 1, "b", ttl=5, now=106.0) == 0  # a's process died
    store.free_seat("acme:y", 0, "b")
    assert store.take_seat("acme:y", 2, "c", ttl=5, now=107.0) == 0
    assert store.take_seat("acme:y", 2, "d", ttl=5, now=107.0) == 1


def test_a_seat_held_by_a_dead_process_is_freed_before_its_lease_ends(gate_url):
    """Found: a step killed mid-call kept Netvisor's one seat, and every later call to
    Netvisor waited out the lease (70 s)."""
    store = gates.store_for(gate_url)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert store.take_seat("acme:z", 1, f"{gates._HOST}:{gone.pid}:x", ttl=3600,
                           now=time.time()) == 0
    assert store.take_seat("acme:w", 2, f"{gates._HOST}:{os.getpid()}:y", ttl=3600,
                           now=time.time()) == 0
    assert store.take_seat("acme:w", 2, "elsewhere:1:z", ttl=3600, now=time.time()) == 1
    assert store.free_dead("acme:w", gates.holder_alive) == 0  # alive, or not ours to judge
    waits: list[float] = []
    seats = gates.SharedSeats(store, "acme:z", 1, ttl=3600, poll=0.001, reap_after=0,
                              sleep=waits.append)
    with seats.slot():
        assert len(waits) == 1  # one poll, then the dead holder's seat was freed


def _lookups(system: str, count: int) -> list[str]:
    """``count`` lookups, each by a new connector built as the hub builds it, with no
    retry: a refusal of the vendor's limit shows as an error, not as a wait."""
    from connectors.registry import declared

    errors = []
    for n in range(count):
        with declared()[system].connector_class().from_env(retry=NO_RETRY) as conn:
            try:
                conn.find([Identifier(IdentifierKind.EMAIL, f"nobody{n}@example.fi")])
            except ConnectorError as exc:
                errors.append(type(exc).__name__)
    return errors


def test_netvisor_hears_one_request_at_a_time_from_every_process(fresh_vendor, monkeypatch,
                                                                 tmp_path):
    inspector, _env = fresh_vendor("netvisor")
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    inspector.settings(concurrency_guard=True, response_delay=0.05)
    with _pool() as pool:
        errors = [e for run in pool.map(_lookups, ["netvisor"] * PROCESSES, [6] * PROCESSES)
                  for e in run]
    assert errors == []  # the emulator refuses an overlapping request
    assert inspector.count("/customerlist.nv") == PROCESSES * 6


def test_typeform_hears_the_accounts_rate_from_every_process(fresh_vendor, monkeypatch,
                                                            tmp_path):
    inspector, _env = fresh_vendor("typeform")
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    inspector.settings(rate_limit_per_second=10)  # the vendor's 2/s, faster for a test
    monkeypatch.setenv("TYPEFORM_REQUESTS_PER_SECOND", "8")
    with _pool() as pool:
        errors = [e for run in pool.map(_lookups, ["typeform"] * PROCESSES, [3] * PROCESSES)
                  for e in run]
    assert errors == []  # every call within the account's rate: no 429
    assert inspector.count("/forms") == PROCESSES * 3  # every lookup ran


def test_threads_of_one_process_take_turns_without_polling_the_table(gate_url):
    """Found: a sync's two reading threads polled for Netvisor's one seat every 10 ms,
    leaving Netvisor idle between their requests; the next thread of the process now
    goes the moment the seat is freed, and still one at a time."""
    store = gates.store_for(gate_url)
    polls: list[float] = []
    inside: list[int] = []
    most = [0]
    lock = threading.Lock()

    def calls() -> None:
        seats = gates.SharedSeats(store, "acme:v", 1, ttl=60, poll=0.001, sleep=polls.append)
        for _ in range(5):
            with seats.slot():
                with lock:
                    inside.append(1)
                    most[0] = max(most[0], len(inside))
                time.sleep(0.002)  # a call in flight while the other threads wait
                with lock:
                    inside.pop()

    threads = [threading.Thread(target=calls) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert most[0] == 1  # one call at a time
    assert polls == []  # each waited in the process, not by polling the table


def _one_call(url: str, key: str) -> None:
    with gates.SharedSeats(gates.store_for(url), key, 1, ttl=60, poll=0.001).slot():
        pass


def test_a_process_forked_while_a_thread_holds_a_seat_still_gets_its_turn(gate_url):
    """Op processes are forked from the run's process: a seat a thread of the parent
    held at the fork must not stay taken in the child, where no thread will free it."""
    store = gates.store_for(gate_url)
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with gates.SharedSeats(store, "acme:f", 1, ttl=60, poll=0.001).slot():
            entered.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert entered.wait(30)
    child = multiprocessing.get_context("fork").Process(target=_one_call,
                                                        args=(gate_url, "acme:f"))
    child.start()
    release.set()  # the parent's call ends; the child's turn comes from the table
    holder.join(30)
    child.join(30)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0
