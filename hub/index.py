"""The person index: source records, their identifiers, and persons as clusters.

Writes come in bulk from syncs (`IndexWriter`); clustering (`recluster`) then looks
only at records whose identifiers changed, plus whatever shares an identifier or a
person with them, so a nightly run that changed 1% of records costs about 1% of a
full build. Person ids are stable: a cluster that keeps most of its records keeps
its id; merges and splits are written to `person_lineage` so an old id can be
followed.
"""

from __future__ import annotations

import hashlib
import secrets
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, delete, func, select, text, tuple_, update
from sqlalchemy.orm import Session

from hub import categories, holds, linking
from hub.domain import Identifier, IdentifierKind, SourceRecord
from hub.identity import (
    identifiers_of,
    name_key,
    normalise_email,
    normalise_name,
    normalise_phone,
)
from hub.models import (
    PersonLineageRow,
    PersonRow,
    RecordIdentifierRow,
    RestrictedRecordRow,
    SourceRecordRow,
    SyncStateRow,
)

BATCH = 2000
IN_CHUNK = 900  # bound on IN (...) lists: portable across SQLite and PostgreSQL
MATCHABLE = (IdentifierKind.EMAIL.value, IdentifierKind.PHONE.value)
# Past this share of dirty records, reading everything at once beats walking the graph.
FULL_RECLUSTER_SHARE = 0.2

SR = SourceRecordRow
RI = RecordIdentifierRow
# Core table for executemany updates keyed by bind parameters (the ORM would
# otherwise switch to its bulk-by-primary-key mode).
SRT = SourceRecordRow.__table__
RIT = RecordIdentifierRow.__table__


def _executemany(session: Session, table, sql: str, columns: Sequence[str],
                 rows: Sequence[Sequence]) -> None:
    # `table` and `columns` name the bind processors to apply; () applies none.
    """Hand rows straight to the driver's executemany.

    The bulk paths write hundreds of thousands of rows; SQLAlchemy's per-row
    parameter handling cost more than the database did. Each column's own bind
    processor still runs, so values are stored exactly as the ORM would store them.
    """
    if not rows:
        return
    conn = session.connection()
    dialect = conn.dialect
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    conn.exec_driver_sql(sql.format(mark=mark), _bound(dialect, table, columns, rows))


def _bound(dialect, table, columns: Sequence[str], rows: Sequence[Sequence]) -> list[tuple]:
    """Rows with each column's bind processor applied (only the columns that have one,
    in place: most have none)."""
    processors = [] if table is None else [
        (at, proc) for at, c in enumerate(columns)
        if (proc := table.c[c].type._cached_bind_processor(dialect)) is not None]
    if not processors:
        return list(map(tuple, rows))
    lists = [list(row) for row in rows]
    for at, proc in processors:
        # Once per distinct value: these columns repeat (a build's one `now`, booleans),
        # and a datetime's processor cost more than inserting its row.
        memo: dict = {}
        for row in lists:
            value = row[at]
            done = memo.get(value, memo)
            row[at] = done if done is not memo else memo.setdefault(value, proc(value))
    return list(map(tuple, lists))


def _postgres(session: Session) -> bool:
    return session.connection().dialect.name == "postgresql"


ANALYZE_FIRST = 8192  # new rows in one sync before PostgreSQL's statistics are refreshed


def _analyze(session: Session, *tables: str) -> None:
    """Refresh PostgreSQL's statistics of the index tables (its own uncommitted rows
    included), so bulk-loaded rows are looked up by index, not by scanning."""
    for table in tables or ("source_records", "record_identifiers"):
        _exec(session, f"ANALYZE {table}")


def _insert(session: Session, table, name: str, columns: Sequence[str],
            rows: Sequence[Sequence]) -> None:
    """Insert rows in bulk: COPY on PostgreSQL, where executemany still costs a
    statement per row and was most of a full build; executemany on SQLite, where a
    prepared statement in-process is as fast as it gets."""
    if not rows:
        return
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        marks = ", ".join(["{mark}"] * len(columns))
        _executemany(session, table, f"INSERT INTO {name} ({', '.join(columns)}) "
                                     f"VALUES ({marks})", columns, rows)
        return
    cursor = conn.connection.driver_connection.cursor()
    with cursor, cursor.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in _bound(conn.dialect, table, columns, rows):
            copy.write_row(row)


_SR_COLUMNS = ("system", "record_id", "display_name", "name_key", "vendor_updated_at",
               "content_hash", "ident_hash", "seen_sync", "dirty", "subscribed", "categories")
_INSERT_SR = (f"INSERT INTO source_records ({', '.join(_SR_COLUMNS)}) "
              f"VALUES ({', '.join(['{mark}'] * len(_SR_COLUMNS))})")
# An identifier kind as the driver must get it: a plain str (psycopg would write an
# Enum's name), without an enum property lookup per identifier.
_KIND = {kind: kind.value for kind in IdentifierKind}
_NOT_UPDATED = ("system", "record_id", "person_id", "gone_at")


@dataclass
class SyncStats:
    system: str
    seen: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    gone: int = 0
    revived: int = 0
    frozen: int = 0  # restricted (art. 18): seen, left as they were


@dataclass
class ClusterStats:
    records: int = 0
    persons: int = 0
    new_persons: int = 0
    merges: int = 0
    splits: int = 0
    retired: int = 0


@dataclass(frozen=True)
class RecordPointer:
    system: str
    record_id: str
    display_name: str | None
    updated_at: datetime | None


@dataclass
class _Prepared:
    record: SourceRecord
    idents: list[Identifier]
    name: str | None
    key: str | None
    content_hash: str
    ident_hash: str


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _prepare(record: SourceRecord) -> _Prepared:
    idents = identifiers_of(record.emails, record.phones)
    # StrEnum + str is a plain str: far cheaper per record than formatting .value.
    ident_text = "\x1f".join(sorted([i.kind + ":" + i.value for i in idents]))
    name, key = _names(record.display_name) if record.display_name else (None, None)
    updated = record.updated_at.isoformat() if record.updated_at else ""
    return _Prepared(
        record=record, idents=idents, name=name, key=key,
        content_hash=_digest(
            f"{ident_text}\x1e{name or ''}\x1e{updated}\x1e{record.subscribed}"
            f"\x1e{','.join(record.categories)}"),
        ident_hash=_digest(ident_text),
    )


@lru_cache(maxsize=16384)
def _names(display_name: str) -> tuple[str, str]:
    """The stored name and its matching key; cached because names repeat across
    systems and people, and normalising Unicode twice per record was a tenth of a build.
    Bounded, so memory stays flat in the number of records."""
    name = normalise_name(display_name)
    return name, name_key(name)


def _chunks(items: Sequence, size: int = IN_CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class IndexWriter:
    """One sync of one system into the index, in the caller's transaction.

    A full sync marks every record of the system it did not see as gone at
    `finish`; an incremental one only touches what it is given and what the
    connector reports gone.
    """

    def __init__(self, session: Session, system: str, *, full: bool,
                 now: datetime | None = None) -> None:
        self.session, self.system, self.full = session, system, full
        self.now = now or datetime.now(UTC)
        self.stats = SyncStats(system)
        state = session.get(SyncStateRow, system)
        if state is None:
            state = SyncStateRow(system=system, sync_counter=0)
            session.add(state)
        state.sync_counter += 1
        self.state = state
        self.sync_no = state.sync_counter
        self._pending: list[SourceRecord] = []
        # Kept at the vendor by law after an erasure: the index keeps the pointer only,
        # so the next sync does not put the erased person's name back (rule 6).
        self._held = {rid for s, rid in holds.held_records(session, self.now.date())
                      if s == system}
        # Restricted (art. 18): left as they were but for their marketing consent (finish).
        self._frozen = _frozen_records(session, system)
        self._frozen_seen: list[tuple[str, bool | None]] = []
        self._inserted, self._analyze_at = 0, ANALYZE_FIRST

    def add(self, records: Iterable[SourceRecord]) -> None:
        for record in records:
            if record.system != self.system:
                raise ValueError(f"a {record.system} record in a {self.system} sync")
            if record.record_id in self._frozen:
                self._frozen_seen.append((record.record_id, record.subscribed))
                self.stats.frozen += 1
                continue
            if record.record_id in self._held:
                record = replace(record, emails=(), phones=(), display_name=None,
                                 categories=())
            self._pending.append(record)
            if len(self._pending) >= BATCH:
                self._flush()

    def mark_gone(self, record_ids: Iterable[str]) -> None:
        self._flush()
        ids = list(record_ids)
        for chunk in _chunks(ids):
            pks = self.session.execute(
                select(SR.pk).where(SR.system == self.system, SR.record_id.in_(chunk),
                                    SR.gone_at.is_(None))
            ).scalars().all()
            self._gone(pks)

    def finish(self, cursor: str | None = None) -> SyncStats:
        self._flush()
        # Seen (a full sync must not mark it gone), and only its marketing consent taken:
        # a restricted person subscribed again is drift (hub/drift.py), not hidden.
        for record_id, subscribed in self._frozen_seen:
            self.session.execute(
                update(SR).where(SR.system == self.system, SR.record_id == record_id)
                .values(seen_sync=self.sync_no, subscribed=subscribed)
                .execution_options(synchronize_session=False))
        self._frozen_seen = []
        if self.full:
            while True:
                pks = self.session.execute(
                    select(SR.pk).where(SR.system == self.system, SR.gone_at.is_(None),
                                        SR.seen_sync < self.sync_no).limit(IN_CHUNK)
                ).scalars().all()
                if not pks:
                    break
                self._gone(pks)
            self.state.last_full_sync_at = self.now
        self.state.last_sync_at = self.now
        if cursor is not None:
            self.state.cursor = cursor
        self.session.flush()
        return self.stats

    def _gone(self, pks: Sequence[int]) -> None:
        if not pks:
            return
        self.session.execute(
            update(SR).where(SR.pk.in_(pks)).values(gone_at=self.now, dirty=True)
        )
        self.session.execute(delete(RI).where(RI.record_pk.in_(pks)))
        self.stats.gone += len(pks)

    def _flush(self) -> None:
        if not self._pending:
            return
        # The last copy of a record in a batch wins, as it would at the vendor.
        batch = {r.record_id: r for r in self._pending}
        self._pending = []
        prepared = {rid: _prepare(rec) for rid, rec in batch.items()}
        existing = {row.record_id: row for row in self._existing(list(prepared))}
        self.stats.seen += len(prepared)
        new_rows, changed, reident, unchanged = [], [], [], []
        for rid, prep in prepared.items():
            old = existing.get(rid)
            if old is None:
                new_rows.append(self._new_row(prep))
                continue
            revived = old.gone_at is not None
            if old.content_hash == prep.content_hash and not revived:
                unchanged.append(old.pk)
                continue
            ident_changed = revived or old.ident_hash != prep.ident_hash
            changed.append({**self._row(prep), "b_pk": old.pk, "dirty": ident_changed})
            if ident_changed:
                reident.append((old.pk, prep.idents))
            self.stats.revived += int(revived)
        self.stats.new += len(new_rows)
        self.stats.changed += len(changed)
        self.stats.unchanged += len(unchanged)

        ident_rows: list[tuple[int, str, str]] = []
        if new_rows:
            inserted = self._insert_new(new_rows)
            for pk, rid in inserted:
                ident_rows.extend((pk, _KIND[i.kind], i.value) for i in prepared[rid].idents)
        if changed:
            self.session.execute(
                update(SRT).where(SRT.c.pk == bindparam("b_pk")).values(
                    display_name=bindparam("display_name"), name_key=bindparam("name_key"),
                    vendor_updated_at=bindparam("vendor_updated_at"),
                    content_hash=bindparam("content_hash"), ident_hash=bindparam("ident_hash"),
                    seen_sync=bindparam("seen_sync"), subscribed=bindparam("subscribed"),
                    categories=bindparam("categories"), gone_at=None,
                    dirty=SRT.c.dirty | bindparam("dirty"),
                ),
                # Only the keys named in values(): any other column key in the
                # parameters would join the SET clause (person_id = NULL would drop
                # the record's person and lose the merge/split lineage).
                [{k: v for k, v in row.items() if k not in _NOT_UPDATED}
                 for row in changed],
            )
        if reident:
            for chunk in _chunks([pk for pk, _ in reident]):
                self.session.execute(delete(RI).where(RI.record_pk.in_(chunk)))
            ident_rows.extend(
                (pk, _KIND[i.kind], i.value) for pk, idents in reident for i in idents
            )
        _insert(self.session, RIT, "record_identifiers", ("record_pk", "kind", "value"),
                ident_rows)
        if unchanged and self.full:
            for chunk in _chunks(unchanged):
                self.session.execute(
                    update(SR).where(SR.pk.in_(chunk)).values(seen_sync=self.sync_no)
                    .execution_options(synchronize_session=False)
                )

    def _existing(self, record_ids: list[str]) -> Iterator[Any]:
        """The index's rows for these record ids of this system.

        PostgreSQL takes the ids as one array: IN lists of 900 parameters each cost
        more to send and plan than the lookup itself."""
        if _postgres(self.session):
            yield from self.session.connection().exec_driver_sql(
                "SELECT pk, record_id, content_hash, ident_hash, gone_at FROM source_records "
                "WHERE system = %s AND record_id = ANY(%s)", (self.system, record_ids))
            return
        for chunk in _chunks(record_ids):
            yield from self.session.execute(
                select(SR.pk, SR.record_id, SR.content_hash, SR.ident_hash, SR.gone_at)
                .where(SR.system == self.system, SR.record_id.in_(chunk)))

    def _insert_new(self, rows: list[tuple]) -> list[tuple[int, str]]:
        """Insert new records; their (pk, record id).

        PostgreSQL: keys drawn from the table's sequence, then COPY. SQLite: executemany,
        then the keys read back (RETURNING with ordered parameters degrades to one
        statement per row there)."""
        if _postgres(self.session):
            self._inserted += len(rows)
            if self._inserted >= self._analyze_at:
                # Bulk-loaded tables without statistics get plans that scan a whole
                # system per lookup (quadratic in the build); ANALYZE sees this
                # transaction's rows. At doubling sizes: a handful per build.
                _analyze(self.session, "source_records")
                self._analyze_at *= 2
            pks = self.session.execute(
                text("SELECT nextval(pg_get_serial_sequence('source_records', 'pk')) "
                     "FROM generate_series(1, :n)"), {"n": len(rows)}).scalars().all()
            _insert(self.session, SRT, "source_records", ("pk", *_SR_COLUMNS),
                    [(pk, *row) for pk, row in zip(pks, rows, strict=True)])
            return [(pk, row[1]) for pk, row in zip(pks, rows, strict=True)]
        _executemany(self.session, SRT, _INSERT_SR, _SR_COLUMNS, rows)
        return [
            (pk, rid) for chunk in _chunks([row[1] for row in rows])
            for pk, rid in self.session.execute(
                select(SRT.c.pk, SRT.c.record_id)
                .where(SRT.c.system == self.system, SRT.c.record_id.in_(chunk)))
        ]

    def _new_row(self, prep: _Prepared) -> tuple:
        """A new record as an INSERT's parameters, in `_SR_COLUMNS` order: no dict per row."""
        record = prep.record
        return (self.system, record.record_id, prep.name[:255] if prep.name else None,
                prep.key[:255] if prep.key else None, record.updated_at, prep.content_hash,
                prep.ident_hash, self.sync_no, True, record.subscribed,
                categories.joined(record.categories))

    def _row(self, prep: _Prepared) -> dict:
        """A changed record as an UPDATE's parameters (the changed rows are few)."""
        return {**dict(zip(_SR_COLUMNS, self._new_row(prep), strict=True)),
                "gone_at": None, "person_id": None}


def _frozen_records(session: Session, system: str) -> set[str]:
    """Record ids of `system` whose person's processing is restricted (hub/restriction.py)."""
    return set(session.execute(select(RestrictedRecordRow.record_id)
                               .where(RestrictedRecordRow.system == system)).scalars())


def sync_cursor(session: Session, system: str) -> str | None:
    state = session.get(SyncStateRow, system)
    return state.cursor if state else None


# --- clustering ------------------------------------------------------------------


def new_person_id() -> str:
    return f"P-{secrets.token_hex(6)}"


# Clustering runs in the database as label propagation: every record in scope
# starts labelled with its own pk, and each round a record takes the smallest
# label among the records it shares an identifier with, until nothing changes
# (as many rounds as the longest chain of links in a cluster: two or three in
# real data). The CROSS JOINs fix the join order on SQLite (drive from the
# small scope table, not the whole identifier index); PostgreSQL plans them as
# ordinary joins. Python only ever sees one row per (cluster, old person id), so
# memory stays flat in the number of records.

_KINDS_SQL = "('email', 'phone')"

_SCOPE_ALL = ("INSERT INTO cl_scope (pk, label, old_person) "
              "SELECT pk, pk, person_id FROM source_records WHERE gone_at IS NULL")
_SCOPE_SEEDS = ("INSERT INTO cl_scope (pk, label, old_person) "
                "SELECT pk, pk, person_id FROM source_records "
                "WHERE dirty = TRUE AND gone_at IS NULL")
_SCOPE_BY_PERSON = """
INSERT INTO cl_scope (pk, label, old_person)
SELECT sr.pk, sr.pk, sr.person_id FROM source_records sr
WHERE sr.gone_at IS NULL AND sr.person_id IN (
    SELECT person_id FROM source_records WHERE dirty = TRUE AND person_id IS NOT NULL
    UNION SELECT old_person FROM cl_scope WHERE old_person IS NOT NULL)
  AND sr.pk NOT IN (SELECT pk FROM cl_scope)"""
_SCOPE_BY_IDENTIFIER = f"""
INSERT INTO cl_scope (pk, label, old_person)
SELECT DISTINCT sr.pk, sr.pk, sr.person_id
FROM cl_scope s CROSS JOIN record_identifiers mine CROSS JOIN record_identifiers other
CROSS JOIN source_records sr
WHERE mine.record_pk = s.pk AND mine.kind IN {_KINDS_SQL}
  AND other.kind = mine.kind AND other.value = mine.value AND sr.pk = other.record_pk
  AND sr.gone_at IS NULL AND sr.pk NOT IN (SELECT pk FROM cl_scope)"""
_IDENT_MIN = f"""
CREATE TEMP TABLE cl_ident AS
SELECT ri.kind AS kind, ri.value AS value, MIN(s.label) AS m
FROM cl_scope s CROSS JOIN record_identifiers ri
WHERE ri.record_pk = s.pk AND ri.kind IN {_KINDS_SQL} GROUP BY ri.kind, ri.value"""
_PROPAGATE = """
UPDATE cl_scope SET label = sub.m FROM (
    SELECT ri.record_pk AS pk, MIN(ci.m) AS m
    FROM cl_scope s CROSS JOIN record_identifiers ri CROSS JOIN cl_ident ci
    WHERE ri.record_pk = s.pk AND ci.kind = ri.kind AND ci.value = ri.value
    GROUP BY ri.record_pk) AS sub
WHERE sub.pk = cl_scope.pk AND sub.m < cl_scope.label"""
_APPLY_MAP = """
UPDATE source_records SET person_id = m.person_id, dirty = FALSE
FROM cl_scope s JOIN cl_map m ON m.label = s.label
WHERE source_records.pk = s.pk
  AND (source_records.person_id IS NULL OR source_records.person_id <> m.person_id
       OR source_records.dirty)"""
_UPDATE_PERSON = ("UPDATE persons SET record_count = {mark}, updated_at = {mark}, "
                  "retired_at = NULL, retired_into = NULL WHERE id = {mark}")
_RETIRE_PERSON = ("UPDATE persons SET retired_at = {mark}, retired_into = {mark}, "
                  "record_count = 0, updated_at = {mark} WHERE id = {mark}")


def _exec(session: Session, sql: str) -> int:
    return session.connection().exec_driver_sql(sql).rowcount


def _drop_temp(session: Session) -> None:
    for table in ("cl_scope", "cl_ident", "cl_map", "cl_suspect"):
        _exec(session, f"DROP TABLE IF EXISTS {table}")


def recluster(session: Session, *, now: datetime | None = None) -> ClusterStats:
    """Re-cluster what changed since the last run; stable ids, lineage recorded."""
    now = now or datetime.now(UTC)
    stats = ClusterStats()
    session.flush()
    dirty = session.execute(select(func.count()).where(SR.dirty.is_(True))).scalar_one()
    if not dirty:
        return stats
    total = session.execute(select(func.count()).select_from(SR)).scalar_one()
    _drop_temp(session)
    if _postgres(session):
        _analyze(session)  # the syncs just wrote; plans below depend on the sizes
    _exec(session, "CREATE TEMP TABLE cl_scope "
                   "(pk BIGINT PRIMARY KEY, label BIGINT NOT NULL, old_person VARCHAR(32))")
    if dirty >= FULL_RECLUSTER_SHARE * total:
        _exec(session, _SCOPE_ALL)
        _label_components(session)
        _exec(session, "CREATE INDEX cl_scope_label ON cl_scope (label)")
    else:
        _exec(session, _SCOPE_SEEDS)
        while _exec(session, _SCOPE_BY_PERSON) + _exec(session, _SCOPE_BY_IDENTIFIER):
            pass
        _exec(session, "CREATE INDEX cl_scope_label ON cl_scope (label)")
        while True:
            _exec(session, _IDENT_MIN)
            _exec(session, "CREATE INDEX cl_ident_kv ON cl_ident (kind, value)")
            changed = _exec(session, _PROPAGATE)
            _exec(session, "DROP TABLE cl_ident")
            if not changed:
                break

    _split_disagreeing(session)
    groups = session.connection().exec_driver_sql(
        "SELECT label, old_person, COUNT(*) FROM cl_scope GROUP BY label, old_person"
    ).all()
    mapping, sizes, lineage = _assign_ids(groups)
    stats.records = sum(sizes.values())
    stats.persons = len(mapping)

    _exec(session, "CREATE TEMP TABLE cl_map (label BIGINT PRIMARY KEY, person_id VARCHAR(32))")
    _insert(session, None, "cl_map", ("label", "person_id"), list(mapping.items()))
    _exec(session, _APPLY_MAP)
    # A person whose records all went is in no cluster: remember it to retire it.
    old_persons = {old for _, old, _ in groups if old is not None}
    old_persons.update(session.execute(
        select(SR.person_id).where(SR.dirty.is_(True), SR.gone_at.is_not(None),
                                   SR.person_id.is_not(None)).distinct()
    ).scalars())
    _exec(session, "UPDATE source_records SET person_id = NULL, dirty = FALSE "
                   "WHERE dirty = TRUE AND gone_at IS NOT NULL")
    _exec(session, "UPDATE source_records SET dirty = FALSE WHERE dirty = TRUE")
    _drop_temp(session)
    _write_persons(session, sizes, old_persons, lineage, now, stats)
    return stats


# Label propagation links through every identifier. A component whose records all
# carry one name (or none) and at most one e-mail is one person under the linking
# rule as it stands; only the others (a shared phone, an info@ address, a person
# with two addresses) are re-partitioned by hub.linking, in Python, one at a time.
_SUSPECTS = """
CREATE TEMP TABLE cl_suspect AS
SELECT s.label AS label FROM cl_scope s CROSS JOIN source_records sr
WHERE sr.pk = s.pk GROUP BY s.label HAVING COUNT(DISTINCT sr.name_key) > 1
UNION
SELECT s.label FROM cl_scope s CROSS JOIN record_identifiers ri
WHERE ri.record_pk = s.pk AND ri.kind = 'email' GROUP BY s.label
HAVING COUNT(DISTINCT ri.value) > 1"""
_SUSPECT_RECORDS = f"""
SELECT s.label, sr.pk, sr.display_name, ri.kind, ri.value
FROM cl_suspect x CROSS JOIN cl_scope s CROSS JOIN source_records sr
LEFT JOIN record_identifiers ri ON ri.record_pk = sr.pk AND ri.kind IN {_KINDS_SQL}
WHERE s.label = x.label AND sr.pk = s.pk ORDER BY s.label, sr.pk"""
_RELABEL = "UPDATE cl_scope SET label = {mark} WHERE pk = {mark}"


_SCOPE_IDENTIFIERS = f"""
SELECT ri.kind, ri.value, ri.record_pk FROM record_identifiers ri
WHERE ri.kind IN {_KINDS_SQL} ORDER BY ri.kind, ri.value"""
LABEL_CHUNK = 10_000


def _label_components(session: Session) -> None:
    """Label every record in scope with the smallest pk linked to it, as label
    propagation would, in one pass over the identifier index (union-find).

    For a full build (most records in scope) the SQL rounds of propagation cost more
    than reading each identifier once, in index order, and joining neighbours. The
    sets live in an array of 8 bytes per record (and a byte for "in scope"), not in
    Python objects, so memory stays small as the index grows; labels are written in
    chunks."""
    conn = session.connection()
    top = conn.exec_driver_sql("SELECT MAX(pk) FROM cl_scope").scalar() or 0
    parent = array("q", range(top + 1))
    in_scope = bytearray(top + 1)
    pks = array("q", conn.exec_driver_sql("SELECT pk FROM cl_scope ORDER BY pk").scalars())
    for pk in pks:
        in_scope[pk] = 1

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving
            x = parent[x]
        return x

    last: tuple[str, str] | None = None
    first = 0
    # Streamed (a server-side cursor on PostgreSQL): the identifiers never sit in memory
    # at once. An option of this statement only: on the connection it would outlive it.
    rows = conn.exec_driver_sql(_SCOPE_IDENTIFIERS, execution_options={"stream_results": True})
    for kind, value, pk in rows:
        if not in_scope[pk]:
            continue
        if (kind, value) != last:
            last, first = (kind, value), pk
            continue
        a, b = root(first), root(pk)
        if a != b:  # the smaller root wins: every set's root is its smallest pk
            parent[max(a, b)] = min(a, b)
    for start in range(0, len(pks), LABEL_CHUNK):
        moves = [(label, pk) for pk in pks[start:start + LABEL_CHUNK]
                 if (label := root(pk)) != pk]
        _executemany(session, None, _RELABEL, (), moves)


def _split_disagreeing(session: Session) -> int:
    """Re-partition components that hold disagreeing records by the linking rule."""
    _exec(session, _SUSPECTS)
    rows = session.connection().exec_driver_sql(_SUSPECT_RECORDS).all()
    _exec(session, "DROP TABLE cl_suspect")
    by_label: dict[int, dict[int, tuple[str | None, set[str], set[str]]]] = defaultdict(dict)
    for label, pk, name, kind, value in rows:
        _, emails, phones = by_label[label].setdefault(pk, (name, set(), set()))
        if kind == IdentifierKind.EMAIL.value:
            emails.add(value)
        elif kind == IdentifierKind.PHONE.value:
            phones.add(value)
    moves: list[tuple[int, int]] = []
    for label, records in by_label.items():
        people = linking.resolve([
            linking.Holder(pk, linking.name_words(name), frozenset(e), frozenset(p))
            for pk, (name, e, p) in records.items()])
        moves.extend((new, pk) for pk, new in people.items() if new != label)
    _executemany(session, None, _RELABEL, (), moves)
    return len(moves)


def _assign_ids(groups: Sequence[tuple[int, str | None, int]]
                ) -> tuple[dict[int, str], Counter[str], list[tuple[str, str, str, int]]]:
    """Give each cluster an id; return (label → id, id → size, lineage events).

    An old id goes to the cluster that holds most of its records (ties: the
    cluster with the lowest label, i.e. the oldest record). A cluster claimed by
    several old ids keeps the one with most records and records the others as
    merged into it; the parts an old id left behind get new ids, recorded as
    splits.
    """
    holdings: dict[str, dict[int, int]] = defaultdict(dict)
    members: dict[int, list[tuple[str, int]]] = defaultdict(list)
    label_size: Counter[int] = Counter()
    for label, old, count in groups:
        label_size[label] += count
        if old is not None:
            holdings[old][label] = count
            members[label].append((old, count))
    claims: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for old, per_label in holdings.items():
        label, count = max(per_label.items(), key=lambda item: (item[1], -item[0]))
        claims[label].append((count, old))
    mapping: dict[int, str] = {}
    sizes: Counter[str] = Counter()
    lineage: list[tuple[str, str, str, int]] = []
    for label, size in label_size.items():
        claimants = sorted(claims.get(label, []), key=lambda c: (-c[0], c[1]))
        pid = claimants[0][1] if claimants else new_person_id()
        for count, other in claimants[1:]:
            lineage.append(("merge", other, pid, count))
        claimed = {old for _, old in claimants}
        for old, count in members.get(label, []):
            if old not in claimed:
                lineage.append(("split", old, pid, count))
        mapping[label] = pid
        sizes[pid] = size
    return mapping, sizes, lineage


def _write_persons(session: Session, sizes: Counter[str], old_persons: set[str],
                   lineage: list[tuple[str, str, str, int]], now: datetime,
                   stats: ClusterStats) -> None:
    """Create, resize and retire person rows; write the lineage of merges and splits."""
    known: dict[str, tuple[int, datetime | None]] = {}
    for chunk in _chunks(list(set(sizes) | old_persons)):
        for pid, count, retired in session.execute(
            select(PersonRow.id, PersonRow.record_count, PersonRow.retired_at)
            .where(PersonRow.id.in_(chunk))
        ):
            known[pid] = (count, retired)
    table = PersonRow.__table__
    new_people = [(pid, now, now, size) for pid, size in sizes.items() if pid not in known]
    _insert(session, table, "persons", ("id", "created_at", "updated_at", "record_count"),
            new_people)
    stats.new_persons = len(new_people)
    _executemany(session, table, _UPDATE_PERSON, ("record_count", "updated_at", "id"),
                 [(size, now, pid) for pid, size in sizes.items()
                  if pid in known and (known[pid][0] != size or known[pid][1] is not None)])
    merged_into = {old: new for kind, old, new, _ in lineage if kind == "merge"}
    retiring = [(now, merged_into.get(pid), now, pid) for pid in old_persons - set(sizes)
                if pid in known and known[pid][1] is None]
    _executemany(session, table, _RETIRE_PERSON,
                 ("retired_at", "retired_into", "updated_at", "id"), retiring)
    stats.retired = len(retiring)
    for kind, old, new, count in lineage:
        session.add(PersonLineageRow(at=now, kind=kind, person_id=old, other_person_id=new,
                                     records=count))
        stats.merges += kind == "merge"
        stats.splits += kind == "split"
    session.flush()


# --- lookups ---------------------------------------------------------------------


def lookup(session: Session, identifier: Identifier) -> str | None:
    """The person holding this identifier now, or None."""
    return session.execute(
        select(SR.person_id).join(RI, RI.record_pk == SR.pk)
        .where(RI.kind == identifier.kind.value, RI.value == identifier.value,
               SR.gone_at.is_(None), SR.person_id.is_not(None))
        .limit(1)
    ).scalar_one_or_none()


def lookup_raw(session: Session, text: str) -> str | None:
    """Look up by an e-mail or phone as typed, normalising it the index's way."""
    email = normalise_email(text) if "@" in text else None
    ident = Identifier(IdentifierKind.EMAIL, email) if email else normalise_phone(text)
    return lookup(session, ident)


def current_id(session: Session, person_id: str) -> str:
    """Follow merges: the id that now stands for a person id seen earlier."""
    seen = set()
    while person_id not in seen:
        seen.add(person_id)
        row = session.get(PersonRow, person_id)
        if row is None or row.retired_into is None:
            return person_id
        person_id = row.retired_into
    return person_id


def records_of(session: Session, person_id: str) -> dict[str, list[RecordPointer]]:
    """A person's live records, per system."""
    result: dict[str, list[RecordPointer]] = defaultdict(list)
    for row in session.execute(
        select(SR.system, SR.record_id, SR.display_name, SR.vendor_updated_at)
        .where(SR.person_id == person_id, SR.gone_at.is_(None))
        .order_by(SR.system, SR.record_id)
    ):
        result[row.system].append(RecordPointer(*row))
    return dict(result)


def identifiers_of_person(session: Session, person_id: str) -> list[Identifier]:
    """Every matchable identifier in the person's cluster: what a live lookup searches by."""
    rows = session.execute(
        select(RI.kind, RI.value).join(SR, SR.pk == RI.record_pk)
        .where(SR.person_id == person_id, SR.gone_at.is_(None), RI.kind.in_(MATCHABLE))
        .distinct().order_by(RI.kind, RI.value)
    )
    return [Identifier(IdentifierKind(k), v) for k, v in rows]


@dataclass(frozen=True)
class IndexedIdentifier:
    """One identifier of one live record, as the reconciliation compares it."""

    system: str
    record_id: str
    person_id: str | None
    subscribed: bool | None
    identifier: Identifier


def live_identifiers(session: Session, batch: int = 5000) -> Iterator[IndexedIdentifier]:
    """Every matchable identifier of every live record, streamed in key order."""
    last = (-1, "", "")
    while True:
        rows = session.execute(
            select(RI.record_pk, RI.kind, RI.value, SR.system, SR.record_id, SR.person_id,
                   SR.subscribed)
            .join(SR, SR.pk == RI.record_pk)
            .where(SR.gone_at.is_(None), RI.kind.in_(MATCHABLE),
                   tuple_(RI.record_pk, RI.kind, RI.value) > tuple_(*last))
            .order_by(RI.record_pk, RI.kind, RI.value).limit(batch)
        ).all()
        for _pk, kind, value, system, record_id, person_id, subscribed in rows:
            yield IndexedIdentifier(system, record_id, person_id, subscribed,
                                    Identifier(IdentifierKind(kind), value))
        if len(rows) < batch:
            return
        last = (rows[-1][0], rows[-1][1], rows[-1][2])


def records_holding(session: Session, identifiers: Sequence[Identifier]) -> list[int]:
    pks: set[int] = set()
    for ident in identifiers:
        pks.update(session.execute(
            select(RI.record_pk).where(RI.kind == ident.kind.value, RI.value == ident.value)
        ).scalars())
    return sorted(pks)


def forget(session: Session, identifiers: Sequence[Identifier], *,
           now: datetime | None = None) -> int:
    """Drop every record holding these identifiers once an erasure completed (rule 6).

    Their persons are retired when no record is left; only the suppression list's
    hashes (and any legal hold's pointer) remain. Returns the records dropped.
    """
    _after_syncs_in_flight(session)
    pks = records_holding(session, identifiers)
    if not pks:
        return 0
    now = now or datetime.now(UTC)
    persons: set[str] = set()
    for chunk in _chunks(pks):
        persons.update(p for p in session.execute(
            select(SR.person_id).where(SR.pk.in_(chunk))).scalars() if p)
        session.execute(delete(RI).where(RI.record_pk.in_(chunk)))
        session.execute(delete(SR).where(SR.pk.in_(chunk)))
    for person_id in persons:
        left = session.execute(
            select(func.count()).select_from(SR).where(SR.person_id == person_id)
        ).scalar_one()
        row = session.get(PersonRow, person_id)
        if row is not None:
            row.record_count, row.updated_at = left, now
            if left == 0:
                row.retired_at = now
    session.flush()
    return len(pks)


def _after_syncs_in_flight(session: Session) -> None:
    """Wait until every sync in flight has committed what it read.

    A sync and an erasure may run at once (the vendor's limits are kept per call, not
    by letting one step at a time talk to it): a sync that read a person before the
    erasure deleted them writes the record after. Forgetting before it commits left
    the erased person's identifiers in the index. A sync holds its system's state row
    locked until it commits (on SQLite, the one write lock): a no-op update of every
    state row waits for it, before anything is read.
    """
    session.execute(update(SyncStateRow).values(system=SyncStateRow.system)
                    .execution_options(synchronize_session=False))


def retire_corrected(session: Session, systems: Sequence[str],
                     identifiers: Sequence[Identifier], *, now: datetime | None = None) -> int:
    """After a rectification changed these identifiers in `systems`: their records
    there are gone until the next sync reads them back with the corrected values.

    A vendor whose record id follows the e-mail (a Mailchimp member's id is the MD5 of
    its address) gives the corrected record a new id; the old one, holding the wrong
    address, would otherwise stay in the index until the next full sync. A record
    whose id stays (Pipedrive, Netvisor) is revived by the next sync, corrected.
    Returns the records retired.
    """
    pks = records_holding(session, identifiers)
    now = now or datetime.now(UTC)
    retired = 0
    for chunk in _chunks(pks):
        mine = session.execute(select(SR.pk).where(
            SR.pk.in_(chunk), SR.system.in_(list(systems)), SR.gone_at.is_(None))).scalars().all()
        if mine:
            session.execute(update(SR).where(SR.pk.in_(mine)).values(gone_at=now, dirty=True)
                            .execution_options(synchronize_session=False))
            session.execute(delete(RI).where(RI.record_pk.in_(mine)))
            retired += len(mine)
    session.flush()
    return retired


def mark_unsubscribed(session: Session, identifiers: Sequence[Identifier]) -> int:
    """After an opt-out, until the next sync says otherwise: these records get no marketing."""
    pks = records_holding(session, identifiers)
    for chunk in _chunks(pks):
        # The content hash is cleared too, so the next sync rewrites the row with the
        # vendor's word even if it is unchanged since the sync before.
        session.execute(update(SR).where(SR.pk.in_(chunk), SR.subscribed.is_(True))
                        .values(subscribed=False, content_hash="")
                        .execution_options(synchronize_session=False))
    return len(pks)


def shared_identifiers(session: Session, identifiers: Sequence[Identifier]) -> set[Identifier]:
    """Those of these identifiers that live records of different persons hold.

    Under hub.linking an identifier links everyone holding it unless it is shared,
    so holders in two persons mean the index found it shared (a switchboard, info@).
    """
    shared = set()
    for ident in identifiers:
        persons = session.execute(
            select(func.count(func.distinct(SR.person_id))).join(RI, RI.record_pk == SR.pk)
            .where(RI.kind == ident.kind.value, RI.value == ident.value,
                   SR.gone_at.is_(None), SR.person_id.is_not(None))
        ).scalar_one()
        if persons > 1:
            shared.add(ident)
    return shared


def persons_holding(session: Session, identifiers: Sequence[Identifier]) -> list[str]:
    """The persons whose live records hold any of these identifiers."""
    found: dict[str, None] = {}
    for ident in identifiers:
        found.update(dict.fromkeys(session.execute(
            select(SR.person_id).join(RI, RI.record_pk == SR.pk)
            .where(RI.kind == ident.kind.value, RI.value == ident.value,
                   SR.gone_at.is_(None), SR.person_id.is_not(None)).distinct()
        ).scalars()))
    return list(found)


def names_of_person(session: Session, person_id: str) -> set[str]:
    """The display names on a person's live records."""
    return set(session.execute(
        select(SR.display_name).where(SR.person_id == person_id, SR.gone_at.is_(None),
                                      SR.display_name.is_not(None)).distinct()
    ).scalars())
