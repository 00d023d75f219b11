"""A vendor's limits kept by every process that calls it: a pace, and a number of seats.

A vendor limits an account, not a process: Typeform answers 2 requests per second per
account, Netvisor one request at a time per customer environment, Mailchimp 10
connections per account. The hub calls a vendor from many processes at once (each
request's op, the nightly sync), so a limiter in one process cannot keep the vendor's
limit. Dagster pools of one slot per vendor used to keep it, by letting one op at a time
talk to a vendor; but a freed slot waits for the next claim's backoff (up to 15 s), and
every op's own start-up and bookkeeping ran while the vendor sat idle. A burst of
requests took twice the time the vendor's limit needs.

Here each call takes its turn in a small table that every process shares, so any number
of ops may run and the vendor is kept busy at exactly the rate it allows:

- :class:`SharedPace`: a GCRA schedule. One atomic upsert reserves the next free start
  time ("theoretical arrival time"); the caller sleeps until it. No polling, and the
  order of reservations is the order of calls.
- :class:`SharedSeats`: at most ``seats`` calls in flight. A seat is a leased row; a
  caller that finds none free polls (``poll`` seconds, injectable). A lease ends when
  the call does, or after ``ttl`` if its process died mid-call.

The table lives in the hub's PostgreSQL database when the hub runs on one (runs on
several machines share it), else in a SQLite file beside the hub's SQLite database:
not in the hub's own file, whose writer lock a sync holds for the whole sync. Times are
wall-clock seconds (``time.time``), the one clock processes share.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from sqlalchemy import Engine, make_url, text
from sqlalchemy.exc import SQLAlchemyError

from connectors.errors import ConfigError
from connectors.http import Limiter
from connectors.settings import hub_settings

TABLE = "vendor_gates"
PACE_SEAT = -1  # the row of a key that holds its pace; seats are 0..n-1

_RESERVE = text(f"""
    INSERT INTO {TABLE} (key, seat, next_at) VALUES (:key, {PACE_SEAT}, :now + :interval)
    ON CONFLICT (key, seat) DO UPDATE SET next_at =
        CASE WHEN {TABLE}.next_at > :now THEN {TABLE}.next_at ELSE :now END + :interval
    RETURNING next_at""")
_ADD_SEAT = text(f"""
    INSERT INTO {TABLE} (key, seat, next_at) VALUES (:key, :seat, 0)
    ON CONFLICT (key, seat) DO NOTHING""")
# The outer condition is checked again on the row itself, so two processes that chose
# the same free seat cannot both take it (PostgreSQL re-reads a row updated meanwhile).
_TAKE_SEAT = text(f"""
    UPDATE {TABLE} SET holder = :holder, held_until = :now + :ttl
    WHERE key = :key AND (holder IS NULL OR held_until < :now) AND seat = (
        SELECT seat FROM {TABLE}
        WHERE key = :key AND seat >= 0 AND seat < :seats
          AND (holder IS NULL OR held_until < :now)
        ORDER BY seat LIMIT 1)
    RETURNING seat""")
_FREE_SEAT = text(f"""
    UPDATE {TABLE} SET holder = NULL, held_until = NULL
    WHERE key = :key AND seat = :seat AND holder = :holder""")
_HOLDERS = text(f"SELECT seat, holder FROM {TABLE} WHERE key = :key AND holder IS NOT NULL")
_CREATE = text(f"""
    CREATE TABLE IF NOT EXISTS {TABLE} (
        key VARCHAR(200) NOT NULL, seat INTEGER NOT NULL, next_at FLOAT NOT NULL,
        holder VARCHAR(100), held_until FLOAT, PRIMARY KEY (key, seat))""")


def account_key(system: str, base_url: str, secret: str) -> str:
    """One vendor account: its system, address and a hash of its credential (never the
    credential itself, which must not reach a table)."""
    digest = hashlib.sha256(f"{base_url.rstrip('/')}\n{secret}".encode()).hexdigest()[:32]
    return f"{system}:{digest}"


class GateStore:
    """The shared table, reached through one autocommit engine per process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._seated: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    def reserve(self, key: str, interval: float, now: float) -> float:
        """The start time of the next call under a pace of one per ``interval`` seconds."""
        with self.engine.connect() as conn:
            return float(conn.execute(_RESERVE, {"key": key, "interval": interval,
                                                 "now": now}).scalar_one())

    def take_seat(self, key: str, seats: int, holder: str, ttl: float, now: float
                  ) -> int | None:
        """A free seat of ``key`` leased to ``holder``, or None when all are taken."""
        self._add_seats(key, seats)
        with self.engine.connect() as conn:
            return conn.execute(_TAKE_SEAT, {"key": key, "seats": seats, "holder": holder,
                                             "ttl": ttl, "now": now}).scalar_one_or_none()

    def free_seat(self, key: str, seat: int, holder: str) -> None:
        with self.engine.connect() as conn:
            conn.execute(_FREE_SEAT, {"key": key, "seat": seat, "holder": holder})

    def free_dead(self, key: str, alive: Callable[[str], bool]) -> int:
        """Free the seats of ``key`` whose holders ``alive`` says are gone; how many."""
        freed = 0
        with self.engine.connect() as conn:
            for seat, holder in conn.execute(_HOLDERS, {"key": key}).all():
                if not alive(holder):
                    freed += conn.execute(_FREE_SEAT, {"key": key, "seat": seat,
                                                       "holder": holder}).rowcount
        return freed

    def _add_seats(self, key: str, seats: int) -> None:
        with self._lock:
            if (key, seats) in self._seated:
                return
            with self.engine.connect() as conn:
                for seat in range(seats):
                    conn.execute(_ADD_SEAT, {"key": key, "seat": seat})
            self._seated.add((key, seats))


class SharedPace(Limiter):
    """At most ``rate`` calls per second to one account, counted across every process."""

    def __init__(self, store: GateStore, key: str, rate: float, *,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.store, self.key, self.rate, self.interval = store, key, rate, 1.0 / rate
        self._clock, self._sleep = clock, sleep
        self.waited = 0.0

    @contextmanager
    def slot(self) -> Iterator[None]:
        now = self._clock()
        start = self.store.reserve(self.key, self.interval, now) - self.interval
        if start > now:
            self.waited += start - now
            self._sleep(start - now)
        yield


def holder_alive(holder: str) -> bool:
    """Whether a seat's holder (``host:pid:nonce``) may still be calling: a process on
    another host is taken to be, one on this host only while its pid exists."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != _HOST or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_HOST = socket.gethostname()[:40]


class SharedSeats(Limiter):
    """At most ``seats`` calls in flight to one account, counted across every process.

    ``ttl`` bounds a lease whose process died mid-call: longer than any one call may
    take (the call's own deadline), so a live call never loses its seat. Sooner than
    that, a caller that has waited ``reap_after`` seconds frees the seats of holders on
    this host whose process is gone (a step killed mid-call): found, a killed op kept
    Netvisor's one seat, and every later call to Netvisor waited out the lease.
    """

    def __init__(self, store: GateStore, key: str, seats: int, *, ttl: float,
                 poll: float = 0.01, reap_after: float = 1.0,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if seats < 1 or ttl <= 0:
            raise ValueError("seats must be at least 1 and ttl positive")
        self.store, self.key, self.seats, self.ttl, self.poll = store, key, seats, ttl, poll
        self.reap_after = reap_after
        self._clock, self._sleep = clock, sleep
        self.waited = 0.0

    @contextmanager
    def slot(self) -> Iterator[None]:
        holder = f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        started = self._clock()
        # Callers in this process queue here first, and the next one goes the moment a
        # seat is freed: polling the table, two threads of one sync (read-ahead) left
        # Netvisor idle ~10 ms between their requests (a full sync: 0.69 s, now 0.62 s).
        with _seats_here(self.store, self.key, self.seats):
            reaped = self._clock()
            while (seat := self.store.take_seat(self.key, self.seats, holder, self.ttl,
                                                self._clock())) is None:
                if self._clock() - reaped >= self.reap_after:
                    self.store.free_dead(self.key, holder_alive)
                    reaped = self._clock()
                self._sleep(self.poll)
            self.waited += self._clock() - started
            try:
                yield
            finally:
                self.store.free_seat(self.key, seat, holder)


_here_lock = threading.Lock()
_here: dict[tuple[GateStore, str, int], threading.BoundedSemaphore] = {}


def _seats_here(store: GateStore, key: str, seats: int) -> threading.BoundedSemaphore:
    """This process's share of an account's seats: no more callers go to the table at
    once than it has seats, whichever connector object they call through."""
    with _here_lock:
        queue = _here.get((store, key, seats))
        if queue is None:  # not setdefault: that would build a semaphore on every call
            queue = _here[store, key, seats] = threading.BoundedSemaphore(seats)
        return queue


def _forget_parents_queues() -> None:
    """In a forked child: queues of its own. Job runs fork their op processes
    (pipelines/executor.py); a semaphore a thread of the parent held at the fork would
    stay taken in the child, by a thread the child does not have, and every call of the
    child to that vendor would wait forever. The table's lease is the parent's to free."""
    global _here_lock, _here
    _here_lock, _here = threading.Lock(), {}


os.register_at_fork(after_in_child=_forget_parents_queues)


def gate_url() -> str:
    """Where the gates live: the hub's PostgreSQL database, or a SQLite file beside the
    hub's SQLite database (``<name>-gates.db``), from the hub's settings."""
    settings = hub_settings()
    url = settings.resolved_database_url
    if not url.startswith("sqlite"):
        return url
    database = make_url(url).database
    path = (Path(database) if database and database != ":memory:"
            else settings.home / "hub.db")
    return f"sqlite:///{path.with_name(path.stem + '-gates.db')}"


@cache
def store_for(url: str) -> GateStore:
    """The process's store for ``url``; the table is made on first use on SQLite (a file
    of the gates alone) and by the hub's migrations on PostgreSQL."""
    from hub.db import DatabaseUnavailable, make_engine

    try:
        engine = make_engine(url, connect_timeout=30.0, statement_timeout=30.0)
        if engine.dialect.name == "sqlite":
            with engine.begin() as conn:
                conn.execute(_CREATE)
    except (DatabaseUnavailable, SQLAlchemyError) as exc:
        raise ConfigError(f"the vendor gates' database cannot be used: "
                          f"{type(exc).__name__}") from None
    return GateStore(engine)


def shared_store() -> GateStore:
    """The gates every process of this hub shares."""
    return store_for(gate_url())


def pace(system: str, base_url: str, secret: str, rate: float, *, part: str = ""
         ) -> SharedPace:
    """The account's pace of ``rate`` calls per second, as a connector the hub builds
    takes it; ``part`` names a limit of its own within the account (Pipedrive's
    searches)."""
    key = account_key(system, base_url, secret) + (f":{part}" if part else "")
    return SharedPace(shared_store(), key, rate)


def seats(system: str, base_url: str, secret: str, count: int, *, ttl: float
          ) -> SharedSeats:
    """The account's ``count`` seats (calls in flight), as a connector the hub builds
    takes them; ``ttl`` a little over the call's own deadline."""
    return SharedSeats(shared_store(), account_key(system, base_url, secret), count,
                       ttl=ttl)
