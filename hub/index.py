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
import json
import unicodedata
from array import array
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from itertools import groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import bindparam, delete, func, select, tuple_, update
from sqlalchemy.orm import Session

from hub import categories, holds, linking
from hub.domain import Identifier, IdentifierKind, SourceRecord
from hub.identity import (
    identifier_pairs,
    normalise_email,
    normalise_name,
    normalise_phone,
)
from hub.models import (
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


# Without statistics (a table being bulk-loaded) PostgreSQL plans `record_id = ANY(...)`
# as a scan of the whole system; LIMIT 1 in a LATERAL keeps each id an index lookup.
_EXISTING_PG = """
SELECT sr.pk, sr.record_id, sr.content_hash, sr.ident_hash, sr.gone_at
FROM unnest(%s::text[]) AS r(id) CROSS JOIN LATERAL (
    SELECT pk, record_id, content_hash, ident_hash, gone_at FROM source_records
    WHERE system = %s AND record_id = r.id LIMIT 1) sr"""
_SR_COLUMNS = ("system", "record_id", "display_name", "name_key", "vendor_updated_at",
               "content_hash", "ident_hash", "seen_sync", "dirty", "subscribed", "categories")


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


@dataclass(slots=True)
class _Prepared:
    record: SourceRecord
    idents: list[tuple[str, str]]  # (kind, value), the kind a plain str for the driver
    name: str | None
    key: str | None
    content_hash: str
    ident_hash: str


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _prepare(record: SourceRecord) -> _Prepared:
    idents = identifier_pairs(record.emails, record.phones)
    ident_text = "\x1f".join(sorted(map(":".join, idents)))
    name, key = _names(record.display_name) if record.display_name else (None, None)
    updated = record.updated_at.isoformat() if record.updated_at else ""
    return _Prepared(
        record=record, idents=idents, name=name, key=key,
        content_hash=_digest(
            f"{ident_text}\x1e{name or ''}\x1e{updated}\x1e{record.subscribed}"
            f"\x1e{','.join(record.categories)}"),
        ident_hash=_digest(ident_text),
    )


@lru_cache(maxsize=8192)
def _names(display_name: str) -> tuple[str, str]:
    """The stored name and its matching key; cached because names repeat across
    systems and people, and normalising Unicode twice per record was a tenth of a build.
    Bounded, so memory stays flat in the number of records."""
    name = normalise_name(display_name)
    # name_key(name) without normalising the normalised name again.
    return name, unicodedata.normalize("NFC", name.casefold())


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
        self._stamps: dict[datetime | None, Any] = {}
        self._sequence: str | None = None
        self._stamp_bind = SRT.c.vendor_updated_at.type._cached_bind_processor(
            session.connection().dialect) or (lambda value: value)
        # Written now, so this transaction holds SQLite's write lock from here on
        # (`_new_keys` relies on it).
        session.flush()

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
        existing = {row[1]: row for row in self._existing(list(batch))}
        self.stats.seen += len(batch)
        new: list[_Prepared] = []
        changed, reident, unchanged = [], [], []
        for rid, record in batch.items():
            prep = _prepare(record)
            old = existing.get(rid)
            if old is None:
                new.append(prep)
                continue
            pk, _, content_hash, ident_hash, gone = old
            revived = gone is not None
            if content_hash == prep.content_hash and not revived:
                unchanged.append(pk)
                continue
            ident_changed = revived or ident_hash != prep.ident_hash
            changed.append({**self._row(prep), "b_pk": pk, "dirty": ident_changed})
            if ident_changed:
                reident.append((pk, prep.idents))
            self.stats.revived += int(revived)
        self.stats.new += len(new)
        self.stats.changed += len(changed)
        self.stats.unchanged += len(unchanged)

        ident_rows: list[tuple[int, str, str]] = []
        if new:
            pks = self._new_keys(len(new))
            _insert(self.session, None, "source_records", ("pk", *_SR_COLUMNS),
                    [self._new_row(pk, prep) for pk, prep in zip(pks, new, strict=True)])
            for pk, prep in zip(pks, new, strict=True):
                ident_rows.extend((pk, kind, value) for kind, value in prep.idents)
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
                changed,
            )
        if reident:
            for chunk in _chunks([pk for pk, _ in reident]):
                self.session.execute(delete(RI).where(RI.record_pk.in_(chunk)))
            ident_rows.extend(
                (pk, kind, value) for pk, idents in reident for kind, value in idents
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
        """The index's (pk, record id, content hash, ident hash, gone_at) for these
        record ids of this system, in one statement: the ids go as one array (a JSON
        array on SQLite), not as IN lists that SQLAlchemy expands and compiles per
        batch. On PostgreSQL each id is looked up by the unique index on (system,
        record_id) whatever the statistics say (`_EXISTING_PG`), so a bulk load needs
        no ANALYZE on the way."""
        conn = self.session.connection()
        if conn.dialect.name == "postgresql":
            yield from conn.exec_driver_sql(_EXISTING_PG, (record_ids, self.system))
            return
        yield from conn.exec_driver_sql(
            "SELECT pk, record_id, content_hash, ident_hash, gone_at FROM source_records "
            "WHERE system = ? AND record_id IN (SELECT value FROM json_each(?))",
            (self.system, json.dumps(record_ids)))

    def _new_keys(self, count: int) -> list[int]:
        """Primary keys for `count` new records, known before they are written, so
        their identifiers need no read-back.

        PostgreSQL: drawn from the table's sequence. SQLite: the next ones after the
        largest; this transaction wrote the sync state in __init__, so it holds
        SQLite's one write lock and nobody else can take them meanwhile."""
        conn = self.session.connection()
        if conn.dialect.name == "postgresql":
            if self._sequence is None:  # named once: resolved per row it cost 10x nextval
                self._sequence = conn.exec_driver_sql(
                    "SELECT pg_get_serial_sequence('source_records', 'pk')").scalar()
            return list(conn.exec_driver_sql("SELECT nextval(%s) FROM generate_series(1, %s)",
                                             (self._sequence, count)).scalars())
        top = conn.exec_driver_sql("SELECT MAX(pk) FROM source_records").scalar() or 0
        return list(range(top + 1, top + 1 + count))

    def _new_row(self, pk: int, prep: _Prepared) -> tuple:
        """A new record as its INSERT's values, `pk` then `_SR_COLUMNS`, already as the
        driver takes them: no dict and no bind processor per row."""
        record = prep.record
        return (pk, self.system, record.record_id, prep.name[:255] if prep.name else None,
                prep.key[:255] if prep.key else None, self._stamp(record.updated_at),
                prep.content_hash, prep.ident_hash, self.sync_no, True, record.subscribed,
                categories.joined(record.categories))

    def _stamp(self, value: datetime | None) -> Any:
        """A vendor timestamp as the driver takes it (the column's bind processor), once
        per distinct value: records of one sync share few, and the processor cost more
        than inserting the row. The memo is cleared when it grows, so it stays small."""
        done = self._stamps.get(value, self._stamps)
        if done is self._stamps:
            if len(self._stamps) >= 4096:
                self._stamps.clear()
            done = self._stamps[value] = self._stamp_bind(value) if value is not None else None
        return done

    def _row(self, prep: _Prepared) -> dict:
        """A changed record as an UPDATE's parameters (the changed rows are few; the
        ORM's statement applies the bind processors itself)."""
        record = prep.record
        return {"display_name": prep.name[:255] if prep.name else None,
                "name_key": prep.key[:255] if prep.key else None,
                "vendor_updated_at": record.updated_at, "content_hash": prep.content_hash,
                "ident_hash": prep.ident_hash, "seen_sync": self.sync_no,
                "subscribed": record.subscribed,
                "categories": categories.joined(record.categories)}


def _frozen_records(session: Session, system: str) -> set[str]:
    """Record ids of `system` whose person's processing is restricted (hub/restriction.py)."""
    return set(session.execute(select(RestrictedRecordRow.record_id)
                               .where(RestrictedRecordRow.system == system)).scalars())


def sync_cursor(session: Session, system: str) -> str | None:
    state = session.get(SyncStateRow, system)
    return state.cursor if state else None


# --- clustering ------------------------------------------------------------------


# Clustering runs in the database as label propagation: every record in scope
# starts labelled with its own pk, and each round a record takes the smallest
# label among the records it shares an identifier with, until nothing changes
# (as many rounds as the longest chain of links in a cluster: two or three in
# real data). The CROSS JOINs fix the join order on SQLite (drive from the
# small scope table, not the whole identifier index); PostgreSQL plans them as
# ordinary joins. Person ids are then given, and persons and lineage written, by
# set-based statements over the clusters: Python holds no list of clusters,
# records or identifiers, so memory stays flat in the number of records.

_KINDS_SQL = "('email', 'phone')"

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

# Giving ids (what `_assign_ids` says in words): the old id that won, else a new one
# in the same statement. {mark}, {collate} and {new_id} are filled in per database
# by `_sql`.
_GROUPS = """
CREATE TEMP TABLE cl_group AS
SELECT label, old_person, COUNT(*) AS n FROM cl_scope GROUP BY label, old_person"""
_CLAIMS = """
CREATE TEMP TABLE cl_claim AS
SELECT label, old_person, n FROM (
    SELECT label, old_person, n, ROW_NUMBER() OVER (
        PARTITION BY old_person ORDER BY n DESC, label) AS r
    FROM cl_group WHERE old_person IS NOT NULL) ranked
WHERE r = 1"""
_MAP = """
INSERT INTO cl_map (label, person_id, size)
SELECT g.label, COALESCE(w.old_person, {new_id}), g.size
FROM (SELECT label, SUM(n) AS size FROM cl_group GROUP BY label) g
LEFT JOIN (
    SELECT label, old_person FROM (
        SELECT label, old_person, ROW_NUMBER() OVER (
            PARTITION BY label ORDER BY n DESC, old_person {collate}) AS r
        FROM cl_claim) ranked
    WHERE r = 1) w ON w.label = g.label"""
# 'P-' and 12 hex digits (48 bits) from the database's strong random source.
_NEW_ID = {"sqlite": "'P-' || lower(hex(randomblob(6)))",
           "postgresql": "'P-' || left(replace(gen_random_uuid()::text, '-', ''), 12)"}
_MERGES = """
INSERT INTO person_lineage (at, kind, person_id, other_person_id, records)
SELECT {mark}, 'merge', c.old_person, m.person_id, c.n
FROM cl_claim c JOIN cl_map m ON m.label = c.label
WHERE c.old_person <> m.person_id"""
_SPLITS = """
INSERT INTO person_lineage (at, kind, person_id, other_person_id, records)
SELECT {mark}, 'split', g.old_person, m.person_id, g.n
FROM cl_group g JOIN cl_map m ON m.label = g.label
WHERE g.old_person IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM cl_claim c WHERE c.label = g.label AND c.old_person = g.old_person)"""
# The persons the clusters held before, and those whose records all went.
_OLD = """
CREATE TEMP TABLE cl_old AS
SELECT old_person AS id FROM cl_group WHERE old_person IS NOT NULL
UNION SELECT person_id FROM source_records
WHERE dirty = TRUE AND gone_at IS NOT NULL AND person_id IS NOT NULL"""
_NEW_PERSONS = """
INSERT INTO persons (id, created_at, updated_at, record_count)
SELECT m.person_id, {mark}, {mark}, m.size FROM cl_map m
WHERE NOT EXISTS (SELECT 1 FROM persons p WHERE p.id = m.person_id)"""
_RESIZE_PERSONS = """
UPDATE persons SET record_count = m.size, updated_at = {mark}, retired_at = NULL,
    retired_into = NULL
FROM cl_map m
WHERE persons.id = m.person_id
  AND (persons.record_count <> m.size OR persons.retired_at IS NOT NULL)"""
_RETIRE_PERSONS = """
UPDATE persons SET retired_at = {mark}, updated_at = {mark}, record_count = 0,
    retired_into = (SELECT m.person_id FROM cl_claim c JOIN cl_map m ON m.label = c.label
                    WHERE c.old_person = persons.id)
WHERE persons.retired_at IS NULL AND persons.id IN (SELECT id FROM cl_old)
  AND persons.id NOT IN (SELECT person_id FROM cl_map)"""
_TEMP_TABLES = ("cl_scope", "cl_ident", "cl_map", "cl_suspect", "cl_move", "cl_group",
                "cl_claim", "cl_old")


def _exec(session: Session, sql: str) -> int:
    return session.connection().exec_driver_sql(sql).rowcount


def _sql(session: Session, sql: str, *params: Any) -> int:
    """Run one statement with this database's words filled in; its row count."""
    conn = session.connection()
    name = conn.dialect.name
    text = sql.format(mark="?" if conn.dialect.paramstyle == "qmark" else "%s",
                      collate='COLLATE "C"' if name == "postgresql" else "",
                      new_id=_NEW_ID.get(name, _NEW_ID["sqlite"]))
    return conn.exec_driver_sql(text, params).rowcount


def _drop_temp(session: Session) -> None:
    for table in _TEMP_TABLES:
        _exec(session, f"DROP TABLE IF EXISTS {table}")


def recluster(session: Session, *, now: datetime | None = None) -> ClusterStats:
    """Re-cluster what changed since the last run; stable ids, lineage recorded."""
    now = now or datetime.now(UTC)
    stats = ClusterStats()
    session.flush()
    # Worded as the partial index on dirty records is (models.py), so it is used.
    dirty = session.connection().exec_driver_sql(
        "SELECT COUNT(*) FROM source_records WHERE dirty = TRUE").scalar_one()
    if not dirty:
        return stats
    total = session.execute(select(func.count()).select_from(SR)).scalar_one()
    _drop_temp(session)
    _exec(session, "CREATE TEMP TABLE cl_scope "
                   "(pk BIGINT PRIMARY KEY, label BIGINT NOT NULL, old_person VARCHAR(32))")
    if dirty >= FULL_RECLUSTER_SHARE * total:
        # Everything is read and joined whole (hash joins), which needs no statistics
        # of the tables the syncs just wrote: ANALYZE was a tenth of a build here.
        _label_components(session)
        _exec(session, "CREATE INDEX cl_scope_label ON cl_scope (label)")
    else:
        if _postgres(session):
            _analyze(session)  # the syncs just wrote; the walk's plans depend on sizes
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
    _assign_ids(session)
    records, persons = session.connection().exec_driver_sql(
        "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM cl_map").one()
    stats.records, stats.persons = int(records), int(persons)  # PostgreSQL's SUM: numeric
    _exec(session, _APPLY_MAP)
    _exec(session, _OLD)  # before the gone records below let go of their persons
    _exec(session, "UPDATE source_records SET person_id = NULL, dirty = FALSE "
                   "WHERE dirty = TRUE AND gone_at IS NOT NULL")
    _exec(session, "UPDATE source_records SET dirty = FALSE WHERE dirty = TRUE")
    _write_persons(session, now, stats)
    _drop_temp(session)
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
_SUSPECT_PAGE = "SELECT label FROM cl_suspect WHERE label > {mark} ORDER BY label LIMIT {mark}"
_SUSPECT_RECORDS = f"""
SELECT s.label, sr.pk, sr.display_name, ri.kind, ri.value
FROM cl_suspect x CROSS JOIN cl_scope s CROSS JOIN source_records sr
LEFT JOIN record_identifiers ri ON ri.record_pk = sr.pk AND ri.kind IN {_KINDS_SQL}
WHERE x.label BETWEEN {{mark}} AND {{mark}} AND s.label = x.label AND sr.pk = s.pk
ORDER BY s.label, sr.pk"""
SUSPECT_PAGE = 1000  # components re-partitioned per round trip


_SCOPE_IDENTIFIERS = f"""
SELECT ri.kind, ri.value, ri.record_pk FROM record_identifiers ri
WHERE ri.kind IN {_KINDS_SQL} ORDER BY ri.kind, ri.value"""
_LIVE = "SELECT pk FROM source_records WHERE gone_at IS NULL"
_LIVE_PERSONS = "SELECT pk, person_id FROM source_records WHERE gone_at IS NULL"
LABEL_CHUNK = 10_000


def _stream(session: Session, sql: str) -> Iterator[tuple]:
    """A query's rows straight from the driver, LABEL_CHUNK at a time (a server-side
    cursor on PostgreSQL): the rows never sit in memory at once, and SQLAlchemy's
    per-row result handling, most of the cost of reading them, is skipped."""
    conn = session.connection()
    raw = conn.connection.driver_connection
    postgres = conn.dialect.name == "postgresql"
    cursor = raw.cursor(name="cl_stream") if postgres else raw.cursor()
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(LABEL_CHUNK):
            yield from rows
    finally:
        cursor.close()


def _relabel(session: Session, moves: Sequence[tuple[int, int]]) -> None:
    """Give records in scope new labels, (pk, label) pairs: bulk-loaded into a temp
    table and applied by one UPDATE, not a statement per record."""
    if not moves:
        return
    _exec(session, "CREATE TEMP TABLE cl_move (pk BIGINT PRIMARY KEY, label BIGINT NOT NULL)")
    _insert(session, None, "cl_move", ("pk", "label"), moves)
    _exec(session, "UPDATE cl_scope SET label = m.label FROM cl_move m "
                   "WHERE m.pk = cl_scope.pk")
    _exec(session, "DROP TABLE cl_move")


def _label_components(session: Session) -> None:
    """Fill cl_scope with every live record, labelled with the smallest pk linked to
    it, as label propagation would, from one pass over the identifier index
    (union-find).

    For a full build (most records in scope) the SQL rounds of propagation cost more
    than reading each identifier once, in index order, and joining neighbours. The
    sets live in an array of 8 bytes per record (and a byte for "live"), not in
    Python objects: at a million records, 9 MB. The labels are known before the scope
    is written, so each record's row goes in once, in chunks, not in and then
    relabelled."""
    conn = session.connection()
    top = conn.exec_driver_sql("SELECT MAX(pk) FROM source_records").scalar() or 0
    parent = array("q", range(top + 1))
    live = bytearray(top + 1)
    for (pk,) in _stream(session, _LIVE):
        live[pk] = 1

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving
            x = parent[x]
        return x

    last: tuple[str, str] | None = None
    first = 0
    for kind, value, pk in _stream(session, _SCOPE_IDENTIFIERS):
        if not live[pk]:
            continue
        if (kind, value) != last:
            last, first = (kind, value), pk
            continue
        a, b = root(first), root(pk)
        if a != b:  # the smaller root wins: every set's root is its smallest pk
            parent[max(a, b)] = min(a, b)
    rows: list[tuple[int, int, str | None]] = []
    for pk, person in _stream(session, _LIVE_PERSONS):
        rows.append((pk, root(pk), person))
        if len(rows) >= LABEL_CHUNK:
            _insert(session, None, "cl_scope", ("pk", "label", "old_person"), rows)
            rows = []
    _insert(session, None, "cl_scope", ("pk", "label", "old_person"), rows)


def _split_disagreeing(session: Session) -> int:
    """Re-partition components that hold disagreeing records by the linking rule,
    SUSPECT_PAGE components at a time."""
    _exec(session, _SUSPECTS)
    _exec(session, "CREATE INDEX cl_suspect_label ON cl_suspect (label)")
    conn = session.connection()
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    moved, last = 0, -1
    while labels := conn.exec_driver_sql(_SUSPECT_PAGE.format(mark=mark),
                                         (last, SUSPECT_PAGE)).scalars().all():
        rows = conn.exec_driver_sql(_SUSPECT_RECORDS.format(mark=mark),
                                    (labels[0], labels[-1])).all()
        moves: list[tuple[int, int]] = []
        for label, component in groupby(rows, key=itemgetter(0)):
            records: dict[int, tuple[str | None, set[str], set[str]]] = {}
            for _, pk, name, kind, value in component:
                _, emails, phones = records.setdefault(pk, (name, set(), set()))
                if kind == IdentifierKind.EMAIL.value:
                    emails.add(value)
                elif kind == IdentifierKind.PHONE.value:
                    phones.add(value)
            people = linking.resolve([
                linking.Holder(pk, linking.name_words(name), frozenset(e), frozenset(p))
                for pk, (name, e, p) in records.items()])
            moves.extend((pk, new) for pk, new in people.items() if new != label)
        _relabel(session, moves)
        moved += len(moves)
        last = labels[-1]
    _exec(session, "DROP TABLE cl_suspect")
    return moved


def _assign_ids(session: Session) -> None:
    """Give each cluster an id, in cl_map (label, person_id, size).

    An old id goes to the cluster that holds most of its records (ties: the
    cluster with the lowest label, i.e. the oldest record). A cluster claimed by
    several old ids keeps the one with most records (ties: the smallest id); a
    cluster nobody claims gets a new id. `_write_persons` records the other
    claimants as merged into it, and the parts an old id left behind as splits.
    """
    _exec(session, _GROUPS)
    _exec(session, _CLAIMS)
    _exec(session, "CREATE TEMP TABLE cl_map "
                   "(label BIGINT PRIMARY KEY, person_id VARCHAR(32), size BIGINT NOT NULL)")
    _sql(session, _MAP)  # new ids included: no second pass over the map
    _exec(session, "CREATE INDEX cl_map_person ON cl_map (person_id)")
    if _postgres(session):
        _analyze(session, "cl_map", "cl_scope")


def _write_persons(session: Session, now: datetime, stats: ClusterStats) -> None:
    """Create, resize and retire person rows; write the lineage of merges and splits."""
    at = _db_time(session, now)
    stats.new_persons = _sql(session, _NEW_PERSONS, at, at)
    _sql(session, _RESIZE_PERSONS, at)
    stats.merges = _sql(session, _MERGES, at)
    stats.splits = _sql(session, _SPLITS, at)
    stats.retired = _sql(session, _RETIRE_PERSONS, at, at)


def _db_time(session: Session, value: datetime) -> Any:
    """A timestamp as the driver takes it for our UTC columns (their bind processor)."""
    dialect = session.connection().dialect
    process = PersonRow.__table__.c.updated_at.type._cached_bind_processor(dialect)
    return process(value) if process else value


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
