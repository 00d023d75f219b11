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
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import Session

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
    processors = [table.c[c].type._cached_bind_processor(dialect) for c in columns]
    if any(processors):
        rows = [tuple(proc(v) if proc else v for proc, v in zip(processors, row, strict=True))
                for row in rows]
    conn.exec_driver_sql(sql.format(mark=mark), list(map(tuple, rows)))


_SR_COLUMNS = ("system", "record_id", "display_name", "name_key", "vendor_updated_at",
               "content_hash", "ident_hash", "seen_sync", "dirty")
_INSERT_SR = (f"INSERT INTO source_records ({', '.join(_SR_COLUMNS)}) "
              f"VALUES ({', '.join(['{mark}'] * len(_SR_COLUMNS))})")
_INSERT_RI = ("INSERT INTO record_identifiers (record_pk, kind, value) "
              "VALUES ({mark}, {mark}, {mark})")
_INSERT_PERSON = ("INSERT INTO persons (id, created_at, updated_at, record_count) "
                  "VALUES ({mark}, {mark}, {mark}, {mark})")
_SET_PERSON = "UPDATE source_records SET person_id = {mark}, dirty = {mark} WHERE pk = {mark}"


@dataclass
class SyncStats:
    system: str
    seen: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    gone: int = 0
    revived: int = 0


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
    ident_text = "\x1f".join(sorted(f"{i.kind.value}:{i.value}" for i in idents))
    name = normalise_name(record.display_name) if record.display_name else None
    updated = record.updated_at.isoformat() if record.updated_at else ""
    return _Prepared(
        record=record, idents=idents, name=name, key=name_key(name) if name else None,
        content_hash=_digest(f"{ident_text}\x1e{name or ''}\x1e{updated}"),
        ident_hash=_digest(ident_text),
    )


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

    def add(self, records: Iterable[SourceRecord]) -> None:
        for record in records:
            if record.system != self.system:
                raise ValueError(f"a {record.system} record in a {self.system} sync")
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
        existing = {
            row.record_id: row
            for chunk in _chunks(list(prepared))
            for row in self.session.execute(
                select(SR.pk, SR.record_id, SR.content_hash, SR.ident_hash, SR.gone_at)
                .where(SR.system == self.system, SR.record_id.in_(chunk))
            )
        }
        self.stats.seen += len(prepared)
        new_rows, changed, reident, unchanged = [], [], [], []
        for rid, prep in prepared.items():
            old = existing.get(rid)
            if old is None:
                new_rows.append(self._row(prep))
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
            # executemany, then read the keys back: RETURNING with ordered parameters
            # degrades to one statement per row on SQLite.
            _executemany(self.session, SRT, _INSERT_SR, _SR_COLUMNS,
                         [tuple(row[c] for c in _SR_COLUMNS) for row in new_rows])
            new_ids = [row["record_id"] for row in new_rows]
            inserted = [
                pair for chunk in _chunks(new_ids)
                for pair in self.session.execute(
                    select(SRT.c.pk, SRT.c.record_id)
                    .where(SRT.c.system == self.system, SRT.c.record_id.in_(chunk))
                )
            ]
            for pk, rid in inserted:
                ident_rows.extend((pk, i.kind.value, i.value) for i in prepared[rid].idents)
        if changed:
            self.session.execute(
                update(SRT).where(SRT.c.pk == bindparam("b_pk")).values(
                    display_name=bindparam("display_name"), name_key=bindparam("name_key"),
                    vendor_updated_at=bindparam("vendor_updated_at"),
                    content_hash=bindparam("content_hash"), ident_hash=bindparam("ident_hash"),
                    seen_sync=bindparam("seen_sync"), gone_at=None,
                    dirty=SRT.c.dirty | bindparam("dirty"),
                ),
                [{k: v for k, v in row.items() if k not in ("system", "record_id")}
                 for row in changed],
            )
        if reident:
            for chunk in _chunks([pk for pk, _ in reident]):
                self.session.execute(delete(RI).where(RI.record_pk.in_(chunk)))
            ident_rows.extend(
                (pk, i.kind.value, i.value) for pk, idents in reident for i in idents
            )
        _executemany(self.session, RIT, _INSERT_RI, ("record_pk", "kind", "value"), ident_rows)
        if unchanged and self.full:
            for chunk in _chunks(unchanged):
                self.session.execute(
                    update(SR).where(SR.pk.in_(chunk)).values(seen_sync=self.sync_no)
                    .execution_options(synchronize_session=False)
                )

    def _row(self, prep: _Prepared) -> dict:
        return {
            "system": self.system, "record_id": prep.record.record_id,
            "display_name": prep.name[:255] if prep.name else None,
            "name_key": prep.key[:255] if prep.key else None,
            "vendor_updated_at": prep.record.updated_at,
            "content_hash": prep.content_hash, "ident_hash": prep.ident_hash,
            "seen_sync": self.sync_no, "dirty": True, "gone_at": None, "person_id": None,
        }


def sync_cursor(session: Session, system: str) -> str | None:
    state = session.get(SyncStateRow, system)
    return state.cursor if state else None


def reset_cursor(session: Session, system: str) -> None:
    """Forget the cursor: the next sync of the system is a full pass."""
    state = session.get(SyncStateRow, system)
    if state is not None:
        state.cursor = None


# --- clustering ------------------------------------------------------------------


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        parent = self.parent
        root = parent.setdefault(x, x)
        while root != parent[root]:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            if ra < rb:
                ra, rb = rb, ra
            self.parent[ra] = rb


def new_person_id() -> str:
    return f"P-{secrets.token_hex(6)}"


@dataclass
class _Affected:
    person_of: dict[int, str | None] = field(default_factory=dict)  # active records only
    idents: list[tuple[int, str, str]] = field(default_factory=list)
    dirty_gone: list[int] = field(default_factory=list)
    old_persons: set[str] = field(default_factory=set)


def _load_all(session: Session) -> _Affected:
    aff = _Affected()
    for pk, person, gone in session.execute(select(SR.pk, SR.person_id, SR.gone_at)):
        if gone is None:
            aff.person_of[pk] = person
        elif person is not None:
            aff.dirty_gone.append(pk)
        if person is not None:
            aff.old_persons.add(person)
    aff.idents = list(session.execute(
        select(RI.record_pk, RI.kind, RI.value).where(RI.kind.in_(MATCHABLE))
    ).tuples())
    return aff


def _load_around(session: Session, seeds: list[int]) -> _Affected:
    """Every record connected to the seeds by an identifier or a current person id."""
    aff = _Affected()
    seen_pks: set[int] = set()
    seen_values: set[tuple[str, str]] = set()
    seen_persons: set[str] = set()
    frontier: set[int] = set(seeds)
    while frontier:
        new_pks = [pk for pk in frontier if pk not in seen_pks]
        if not new_pks:
            break
        seen_pks.update(new_pks)
        new_values: dict[str, list[str]] = defaultdict(list)
        new_persons: list[str] = []
        for chunk in _chunks(new_pks):
            for pk, person, gone in session.execute(
                select(SR.pk, SR.person_id, SR.gone_at).where(SR.pk.in_(chunk))
            ):
                if gone is None:
                    aff.person_of[pk] = person
                else:
                    aff.dirty_gone.append(pk)
                if person is not None and person not in seen_persons:
                    seen_persons.add(person)
                    new_persons.append(person)
            for pk, kind, value in session.execute(
                select(RI.record_pk, RI.kind, RI.value)
                .where(RI.record_pk.in_(chunk), RI.kind.in_(MATCHABLE))
            ):
                aff.idents.append((pk, kind, value))
                if (kind, value) not in seen_values:
                    seen_values.add((kind, value))
                    new_values[kind].append(value)
        aff.old_persons.update(new_persons)
        frontier = set()
        for kind, values in new_values.items():
            for chunk in _chunks(values):
                frontier.update(session.execute(
                    select(RI.record_pk).join(SR, SR.pk == RI.record_pk)
                    .where(RI.kind == kind, RI.value.in_(chunk), SR.gone_at.is_(None))
                ).scalars())
        for chunk in _chunks(new_persons):
            frontier.update(session.execute(
                select(SR.pk).where(SR.person_id.in_(chunk))
            ).scalars())
    return aff


def recluster(session: Session, *, now: datetime | None = None) -> ClusterStats:
    """Re-cluster what changed since the last run; stable ids, lineage recorded."""
    now = now or datetime.now(UTC)
    stats = ClusterStats()
    dirty = session.execute(select(SR.pk).where(SR.dirty.is_(True))).scalars().all()
    if not dirty:
        return stats
    total = session.execute(select(func.count()).select_from(SR)).scalar_one()
    if len(dirty) >= FULL_RECLUSTER_SHARE * total:
        aff = _load_all(session)
    else:
        aff = _load_around(session, list(dirty))

    uf = _UnionFind()
    first_with: dict[tuple[str, str], int] = {}
    for pk in aff.person_of:
        uf.find(pk)
    for pk, kind, value in aff.idents:
        if pk not in aff.person_of:
            continue
        other = first_with.setdefault((kind, value), pk)
        if other != pk:
            uf.union(pk, other)
    components: dict[int, list[int]] = defaultdict(list)
    for pk in aff.person_of:
        components[uf.find(pk)].append(pk)

    assignment, lineage = _assign_ids(components, aff.person_of)
    stats.records = len(aff.person_of)
    stats.persons = len(components)

    _executemany(session, SRT, _SET_PERSON, ("person_id", "dirty", "pk"),
                 [(pid, False, pk) for pk, pid in assignment.items()
                  if aff.person_of[pk] != pid])
    for chunk in _chunks(aff.dirty_gone):
        session.execute(update(SR).where(SR.pk.in_(chunk)).values(person_id=None, dirty=False)
                        .execution_options(synchronize_session=False))
    for chunk in _chunks(list(dirty)):
        session.execute(update(SR).where(SR.pk.in_(chunk), SR.dirty.is_(True))
                        .values(dirty=False).execution_options(synchronize_session=False))

    sizes = Counter(assignment.values())
    live_ids = set(sizes)
    known = {
        row.id: row for chunk in _chunks(list(live_ids | aff.old_persons))
        for row in session.execute(select(PersonRow).where(PersonRow.id.in_(chunk))).scalars()
    }
    new_people = []
    for pid, size in sizes.items():
        row = known.get(pid)
        if row is None:
            new_people.append((pid, now, now, size))
        elif row.record_count != size or row.retired_at is not None:
            row.record_count, row.updated_at = size, now
            row.retired_at, row.retired_into = None, None
    _executemany(session, PersonRow.__table__, _INSERT_PERSON,
                 ("id", "created_at", "updated_at", "record_count"), new_people)
    stats.new_persons = len(new_people)
    merged_into = {old: new for kind, old, new, _ in lineage if kind == "merge"}
    for pid in aff.old_persons - live_ids:
        row = known.get(pid)
        if row is not None and row.retired_at is None:
            row.retired_at, row.updated_at = now, now
            row.retired_into = merged_into.get(pid)
            row.record_count = 0
            stats.retired += 1
    for kind, old, new, count in lineage:
        session.add(PersonLineageRow(at=now, kind=kind, person_id=old, other_person_id=new,
                                     records=count))
        stats.merges += kind == "merge"
        stats.splits += kind == "split"
    session.flush()
    return stats


def _assign_ids(components: dict[int, list[int]], person_of: dict[int, str | None]
                ) -> tuple[dict[int, str], list[tuple[str, str, str, int]]]:
    """Give each component an id; return (record → id, lineage events).

    An old id goes to the component that holds most of its records (ties: the
    component with the lowest record pk, i.e. the oldest records). A component
    claimed by several old ids keeps the largest and records the others as merged
    into it; the parts an old id left behind get new ids, recorded as splits.
    """
    holdings: dict[str, Counter[int]] = defaultdict(Counter)
    for root, pks in components.items():
        for pk in pks:
            old = person_of[pk]
            if old is not None:
                holdings[old][root] += 1
    claims: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for old, per_root in holdings.items():
        root, count = max(per_root.items(), key=lambda item: (item[1], -item[0]))
        claims[root].append((count, old))
    assignment: dict[int, str] = {}
    lineage: list[tuple[str, str, str, int]] = []
    for root, pks in components.items():
        claimants = sorted(claims.get(root, []), key=lambda c: (-c[0], c[1]))
        if claimants:
            pid = claimants[0][1]
            for count, other in claimants[1:]:
                lineage.append(("merge", other, pid, count))
        else:
            pid = new_person_id()
        for old, count in Counter(person_of[pk] for pk in pks if person_of[pk]).items():
            if old != pid and all(o != old for _, o in claimants):
                lineage.append(("split", old, pid, count))
        for pk in pks:
            assignment[pk] = pid
    return assignment, lineage


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
