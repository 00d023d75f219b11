"""The own-application-database connector (docs/vendors/app_database.md).

The company's own application keeps user accounts in a SQL database. There is no
vendor API: the connector reads and writes the tables the mapping names, with
SQLAlchemy Core (bound parameters only; table and column objects from reflection).

What each action does:

- start: connect and reflect the mapped tables; a mapping that names a missing table
  or column is a ConfigError naming the file, the table and the column; a database
  that does not answer is ConnectionFailed (retryable), never "not found".
- ``find``: per mapped table, ``lower(trim(email)) IN (:emails)`` on every e-mail
  column, and for phones, which the application may store in any written form
  (``040 123 4567``, ``+358401234567``), the column with spaces, dashes, dots and
  brackets removed ``LIKE '%' || :last_7_digits``; every candidate row is then
  confirmed in Python by its normalised values (``connectors.base.matches``). The
  database scans, and only the few candidates travel, whatever the table's size
  (comparing every number in Python would read the whole table). A ref is
  ``kind=<table>``, ``record_id=<primary key>``, with the row's name, e-mails, phones.
- ``export``: the rows (every column, names kept) and their child rows.
- ``erase``: per row, one transaction: child rows deleted where the mapping says so,
  then the row deleted or anonymised (the table's ``erase``; absent, the policy's).
  Child rows the mapping keeps (bookkeeping: ``erase = "keep"``) are each
  ``retained`` under the policy's retention basis until the hold ends, counted from
  the row's ``dated_by`` date (``policy.hold_ends``); one whose hold has ended is no
  longer held, and is deleted. Each action is journalled once committed, before the
  next row; then every row is read back (gone, or its identifying columns blank) for
  ``verified``. Doing it again is ``not_found`` (deleted) or ``nothing_to_do``
  (already anonymised), with no write; the kept rows are ``retained`` again.
- ``opt_out``: the marketing-consent column set false where the mapping names one,
  read back; ``nothing_to_do`` where it names none or it is false already.
- ``sync``: every mapped table's rows, ``record_id = "<table>/<pk>"`` (unique across
  tables); incremental by each table's updated-at column where mapped (the cursor is
  JSON, one timestamp per table, inclusive); a row marked erased is reported gone.

The URL is a secret: every message shows it with the password masked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Date,
    DateTime,
    Engine,
    MetaData,
    RowMapping,
    create_engine,
    delete,
    event,
    func,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from connectors.app_database.mapping import (
    BoundChild,
    BoundTable,
    ChildMode,
    Mapping,
    TableMode,
    bind,
    falsy,
    load_mapping,
    truthy,
)
from connectors.base import ConnectorBase, matches, wanted
from connectors.errors import ConfigError, ConnectionFailed, RequestRejected
from connectors.settings import ENV_FILES, hub_settings, load_settings
from hub.domain import (
    Action,
    Export,
    ExportSection,
    Identifier,
    Outcome,
    RecordFacts,
    RecordOutcome,
    RecordRef,
    SourceRecord,
    SyncPage,
)
from hub.policy import EraseMode, SystemPolicy

SYSTEM = "app_database"
PHONE_SUFFIX = 7  # digits compared in SQL; the whole number is compared in Python
# What the application may write inside a phone number.
_PHONE_PUNCTUATION = (" ", "-", ".", "(", ")", "/", "\u00a0")
_POLICY_MODES = {EraseMode.DELETE: TableMode.DELETE, EraseMode.PERMANENT_DELETE: TableMode.DELETE,
                 EraseMode.ANONYMISE: TableMode.ANONYMISE}
NO_CONSENT = "the mapping names no marketing-consent column for this table"
NO_RESTRICTED = ("the mapping names no restriction column for this table: mark the row "
                 "restricted (or not) by hand")


class AppDatabaseSettings(BaseSettings):
    """APP_DATABASE_* variables (environment first, then ``.env``)."""

    model_config = SettingsConfigDict(env_prefix="APP_DATABASE_", env_file=ENV_FILES,
                                      env_file_encoding="utf-8", extra="ignore")

    url: SecretStr = Field(min_length=1)
    """A SQLAlchemy URL (``postgresql+psycopg://user:password@host/db``); a secret."""
    mapping: Path
    """The TOML mapping file (connectors/app_database/example_mapping.toml)."""
    page_size: int = Field(default=500, ge=1, le=10_000)
    # The application stamps updated_at when it writes and commits later: the cursor
    # is held back this much, so a long transaction's rows are not skipped.
    sync_overlap_minutes: int = Field(default=5, ge=0)
    connect_timeout: int = Field(default=10, ge=1)


class AppDatabaseConnector(ConnectorBase):
    system = SYSTEM

    def __init__(self, settings: AppDatabaseSettings, *, mapping: Mapping | None = None,
                 timezone: str = "Europe/Helsinki") -> None:
        self.settings = settings
        self.zone = ZoneInfo(timezone)
        self.mapping = mapping if mapping is not None else load_mapping(settings.mapping)
        self._url = _parse_url(settings.url.get_secret_value())
        self._password = self._url.password
        self.where = self._url.render_as_string(hide_password=True)
        self._calls = 0
        self.engine = self._engine()
        try:
            self.tables = self._reflect()
        except BaseException:
            self.engine.dispose()
            raise

    @classmethod
    def from_env(cls, *, client: httpx.Client | None = None, **kwargs: Any
                 ) -> AppDatabaseConnector:
        """``client`` is ignored: there is no HTTP here. Holds end in the company's
        time zone, the hub's (HUB_TIMEZONE)."""
        if "timezone" not in kwargs:
            kwargs["timezone"] = hub_settings().timezone
        return cls(load_settings(AppDatabaseSettings), **kwargs)

    def today(self) -> date:
        """Today where the company's holds end (a hold ends at its date's end)."""
        return datetime.now(self.zone).date()

    @property
    def api_calls(self) -> int:
        """Statements sent to the database (reflection included)."""
        return self._calls

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ plumbing

    def _engine(self) -> Engine:
        backend = self._url.get_backend_name()
        if backend == "sqlite":
            _refuse_missing_sqlite_file(self._url, self.where)
            args: dict[str, Any] = {"timeout": self.settings.connect_timeout}
        elif backend == "postgresql":
            args = {"connect_timeout": self.settings.connect_timeout}
        else:
            args = {}
        try:
            engine = create_engine(self._url, pool_pre_ping=True, hide_parameters=True,
                                   connect_args=args)
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise ConfigError(f"APP_DATABASE_URL ({self.where}) cannot be used: "
                              f"{self._reason(exc)}") from None
        event.listen(engine, "before_cursor_execute", self._count)
        return engine

    def _count(self, *_: Any) -> None:
        self._calls += 1

    def _reason(self, exc: BaseException) -> str:
        """The driver's own first line, never the statement or its parameters, and never
        the password (a driver may echo its connection string)."""
        orig = getattr(exc, "orig", None) or exc
        text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
        if self._password:
            text = text.replace(self._password, "***")
        return f"{type(orig).__name__}: {text}"

    @contextmanager
    def _database(self, doing: str) -> Iterator[None]:
        """The database's failures in the connector taxonomy: no answer is
        ConnectionFailed (retryable); a statement refused is RequestRejected."""
        try:
            yield
        except (OperationalError, InterfaceError, DisconnectionError, PoolTimeout) as exc:
            raise ConnectionFailed(SYSTEM, f"{doing}: the database at {self.where} is "
                                   f"unavailable: {self._reason(exc)}") from None
        except DBAPIError as exc:
            raise RequestRejected(SYSTEM, f"{doing}: the database at {self.where} refused "
                                  f"the statement: {self._reason(exc)}") from None

    def _reflect(self) -> dict[str, BoundTable]:
        """The mapped tables as the database has them, checked against the mapping."""
        wanted_tables = set(self.mapping.tables)
        wanted_tables |= {c.table for t in self.mapping.tables.values() for c in t.children}
        with self._database("start"):
            present = set(inspect(self.engine).get_table_names())
            missing = sorted(wanted_tables - present)
            if missing:
                known = ", ".join(sorted(present)) or "none"
                raise ConfigError(f"{self.settings.mapping}: table {missing[0]!r} is not in "
                                  f"the database at {self.where} (its tables: {known})")
            metadata = MetaData()
            metadata.reflect(bind=self.engine, only=sorted(wanted_tables))
        return bind(self.mapping, metadata, self.settings.mapping)

    def _tables_of(self, refs: Sequence[RecordRef]
                   ) -> list[tuple[BoundTable, list[tuple[RecordRef, Any]]]]:
        """This system's refs by mapped table, each with its key in the column's type
        (a ref whose id cannot be such a key keeps None: no row has it)."""
        grouped: dict[str, dict[str, RecordRef]] = {}
        for ref in refs:
            if ref.system == SYSTEM and ref.kind in self.tables:
                grouped.setdefault(ref.kind, {}).setdefault(ref.record_id, ref)
        return [(self.tables[name], [(ref, _key(self.tables[name].pk, rid))
                                     for rid, ref in by_id.items()])
                for name, by_id in grouped.items()]

    # ------------------------------------------------------------------- protocol

    def check(self) -> None:
        with self._database("check"), self.engine.connect() as conn:
            conn.execute(select(1)).scalar_one()

    def find(self, identifiers: Sequence[Identifier]) -> list[RecordRef]:
        emails, phones = wanted(identifiers)
        if not emails and not phones:
            return []
        refs: list[RecordRef] = []
        with self._database("find"), self.engine.connect() as conn:
            for bound in self.tables.values():
                condition = _match(bound, emails, phones)
                if condition is None:
                    continue
                for row in conn.execute(select(bound.table).where(condition)).mappings():
                    own_emails, own_phones = _identifiers(bound, row)
                    if not matches(own_emails, own_phones, emails, phones):
                        continue  # a suffix that matched someone else's number
                    ref = _ref(bound, row)
                    self.remember((bound.name, ref.record_id), dict(row))
                    refs.append(ref)
        return refs

    def export(self, refs: Sequence[RecordRef]) -> Export:
        self.begin()
        sections: list[ExportSection] = []
        rows_out = children_out = 0
        with self._database("export"), self.engine.connect() as conn:
            for bound, keyed in self._tables_of(refs):
                rows = self._rows(conn, bound, keyed)
                if not rows:
                    continue
                rows_out += len(rows)
                sections.append(ExportSection(
                    label=f"Our application's database: table {bound.name}",
                    source=f"{SYSTEM}:{bound.name}",
                    items=tuple(_plain(row) for row in rows),
                    titles={"fi": f"Sovelluksemme tietokanta: taulu {bound.name}",
                            "sv": f"Vår applikations databas: tabell {bound.name}"}))
                keys = [row[bound.pk.name] for row in rows]
                for child in bound.children:
                    found = conn.execute(select(child.table).where(child.fk.in_(keys))
                                         .order_by(child.pk)).mappings().all()
                    if found:
                        children_out += len(found)
                        sections.append(ExportSection(
                            label=(f"Our application's database: table {child.table.name} "
                                   f"(rows of these {bound.name})"),
                            source=f"{SYSTEM}:{child.table.name}",
                            items=tuple(_plain(row) for row in found),
                            titles={"fi": (f"Sovelluksemme tietokanta: taulu "
                                           f"{child.table.name} (näiden {bound.name}-rivien)"),
                                    "sv": (f"Vår applikations databas: tabell "
                                           f"{child.table.name} (rader till dessa "
                                           f"{bound.name})")}))
        return Export(SYSTEM, tuple(sections),
                      evidence={"api_calls": self.op_calls, "rows": rows_out,
                                "child_rows": children_out})

    def erase(self, refs: Sequence[RecordRef], policy: SystemPolicy) -> Outcome:
        """Delete or anonymise each row (and its child rows as mapped), one transaction
        and one journal entry per action, then read every row back."""
        self.forget_found()
        self.begin()
        modes = self._modes(policy)
        self._holds_end(policy)
        records: list[RecordOutcome] = []
        acted: list[tuple[BoundTable, RecordRef, Any]] = []
        kept: dict[str, int] = {}
        for bound, keyed in self._tables_of(refs):
            for ref, key in keyed:
                done, kept_here = self._erase_row(bound, ref, key, modes[bound.name], policy)
                records += done
                for table, count in kept_here.items():
                    kept[table] = kept.get(table, 0) + count
                if key is not None:
                    acted.append((bound, ref, key))
        children = [self._erase_kept_child(child, ref, policy) for child, ref in
                    self._child_refs(refs)]
        records += [record for record, _ in children]
        problems = self._read_back(acted, modes, policy)
        problems.update({record.ref: seen for record, seen in children if seen})
        records = [replace(r, detail=f"{r.detail}; {problems[r.ref]}") if r.ref in problems
                   else r for r in records]
        return self.outcome(records, not problems, modes={n: str(m) for n, m in modes.items()},
                            kept_child_rows=kept, still_present=len(problems))

    def _child_refs(self, refs: Sequence[RecordRef]) -> list[tuple[BoundChild, RecordRef]]:
        """Refs to child rows themselves: a kept row whose hold has ended, which the
        retention sweep files an erasure for (its parent was anonymised long ago and is
        found by nobody)."""
        children = {child.table.name: child for bound in self.tables.values()
                    for child in bound.children}
        return [(children[ref.kind], ref) for ref in refs
                if ref.system == SYSTEM and ref.kind not in self.tables and ref.kind in children]

    def _erase_kept_child(self, child: BoundChild, ref: RecordRef, policy: SystemPolicy
                          ) -> tuple[RecordOutcome, str | None]:
        """Delete the child row if its hold has ended, else keep it retained; then read it
        back. Returns the outcome and what the read-back saw wrong (None: as intended)."""
        key = _key(child.pk, ref.record_id)
        if key is None:
            return RecordOutcome(ref, Action.NOT_FOUND, "no such row"), None
        with self._database("erase"), self.engine.begin() as conn:
            row = conn.execute(select(child.table).where(child.pk == key)
                               .with_for_update()).mappings().first()
            if row is None:
                return RecordOutcome(ref, Action.NOT_FOUND, "no such row (already deleted?)"), None
            until = _hold_end(child, row, policy)
            ended = until is not None and until < self.today()
            if ended:
                conn.execute(delete(child.table).where(child.pk == key))
        if not ended:
            return self._kept(child, ref, until, policy, f"{child.table.name} row"), None
        record = self.done(RecordOutcome(ref, Action.DELETED,
                                         f"{child.table.name} row deleted; its hold had ended"))
        with self._database("read back"), self.engine.connect() as conn:
            still = conn.execute(select(child.pk).where(child.pk == key)).first()
        return record, "read back: the row is still there" if still is not None else None

    def opt_out(self, refs: Sequence[RecordRef]) -> Outcome:
        """Set each row's marketing-consent column false (where the mapping names one),
        journal it, and read it back."""
        self.forget_found()
        self.begin()
        records: list[RecordOutcome] = []
        for bound, keyed in self._tables_of(refs):
            records += [self._opt_out_row(bound, ref, key) for ref, key in keyed]
        left = self._still_consenting(records)
        records = [replace(r, detail=f"{r.detail}; read back: consent is still set")
                   if r.ref in left else r for r in records]
        return self.outcome(records, not left, still_consenting=len(left))

    def restrict(self, refs: Sequence[RecordRef], lift: bool) -> Outcome:
        """Set each row's restriction column (lift: clear it) where the mapping names one,
        withdraw its marketing consent with a restriction (art. 18 excludes marketing),
        journal it and read it back. A table without the column is left to an operator."""
        self.forget_found()
        self.begin()
        records: list[RecordOutcome] = []
        for bound, keyed in self._tables_of(refs):
            if bound.col(bound.mapping.restricted) is None:
                records += self.by_hand([ref for ref, _ in keyed], NO_RESTRICTED).records
                continue
            records += [self._restrict_row(bound, ref, key, lift) for ref, key in keyed]
        left = self._not_yet(records, lift)
        records = [replace(r, detail=f"{r.detail}; read back: the row does not say so")
                   if r.ref in left else r for r in records]
        return self.outcome(records, not left, not_as_asked=len(left))

    def sync(self, since: str | None) -> Iterator[SyncPage]:
        """Every mapped table's rows, changed at or after the table's cursor where it has
        an updated-at column. Each page carries ``since`` (a crash re-reads, never skips);
        the last, empty page the new cursor."""
        cursors = _cursors(since)
        after: dict[str, str] = {}
        for bound in self.tables.values():
            newest = yield from self._sync_table(bound, cursors.get(bound.name), since)
            kept = newest or cursors.get(bound.name)  # nothing changed: the same cursor
            if kept is not None:
                after[bound.name] = kept
        yield SyncPage(cursor=json.dumps(after, sort_keys=True) if after else since)

    # ------------------------------------------------------------------ reading

    def _rows(self, conn: Connection, bound: BoundTable, keyed: list[tuple[RecordRef, Any]]
              ) -> list[dict[str, Any]]:
        """The rows of these keys that exist: what ``find`` read, else read now."""
        rows: list[dict[str, Any]] = []
        unread = []
        for ref, key in keyed:
            cached = self.recall((bound.name, ref.record_id))
            if cached is not None:
                rows.append(cached)
            elif key is not None:
                unread.append(key)
        if unread:
            rows += [dict(r) for r in conn.execute(
                select(bound.table).where(bound.pk.in_(unread)).order_by(bound.pk)).mappings()]
        return rows

    def _sync_table(self, bound: BoundTable, since: str | None, passed: str | None
                    ) -> Generator[SyncPage, None, str | None]:
        """One table's pages, walked by primary key; returns the table's next cursor:
        the newest updated-at seen (ISO text, aware or naive as the column gives it),
        less the overlap, so a row whose transaction committed after a newer one's is
        read next time, never skipped."""
        updated = bound.col(bound.mapping.updated_at)
        query = select(bound.table).order_by(bound.pk).limit(self.settings.page_size)
        if updated is not None and since is not None:
            query = query.where(updated >= _from_iso(since))
        newest: Any = None
        last: Any = None
        while True:
            page = query if last is None else query.where(bound.pk > last)
            with self._database("sync"), self.engine.connect() as conn:
                rows = conn.execute(page).mappings().all()
            if not rows:
                return self._next_cursor(newest)
            records: list[SourceRecord] = []
            gone: list[str] = []
            for row in rows:
                stamp = row[updated.name] if updated is not None else None
                if isinstance(stamp, datetime) and (newest is None or stamp > newest):
                    newest = stamp
                if _marked_erased(bound, row):
                    gone.append(_record_id(bound, row))
                else:
                    records.append(_record(bound, row, stamp))
            yield SyncPage(records=tuple(records), gone=tuple(gone), cursor=passed)
            last = rows[-1][bound.pk.name]
            if len(rows) < self.settings.page_size:
                return self._next_cursor(newest)

    def _next_cursor(self, newest: datetime | None) -> str | None:
        if newest is None:
            return None
        return (newest - timedelta(minutes=self.settings.sync_overlap_minutes)).isoformat()

    # ------------------------------------------------------------------ erasure parts

    def _modes(self, policy: SystemPolicy) -> dict[str, TableMode]:
        """Each table's erasure: its own ``erase``, else what the policy's means for a
        row; refused before any write where that cannot be done."""
        modes: dict[str, TableMode] = {}
        for name, bound in self.tables.items():
            where = f"{self.settings.mapping}: [tables.{name}]"
            mode = bound.mapping.erase or _POLICY_MODES.get(policy.erase)
            if mode is None:
                raise ConfigError(f"{where} names no erase and the policy's erase = "
                                  f"{policy.erase} means nothing for a row: set erase = "
                                  "\"delete\" or \"anonymise\" for the table")
            if mode == TableMode.ANONYMISE and bound.mapping.anonymise is None:
                raise ConfigError(f"{where}: the policy's erase = {policy.erase} needs an "
                                  "[anonymise] section for the table")
            kept = [c.table.name for c in bound.children if c.mapping.erase == ChildMode.KEEP]
            if mode == TableMode.DELETE and kept:
                raise ConfigError(f"{where}: deleting the row would leave the kept child rows "
                                  f"of {kept[0]!r} pointing at nothing: anonymise the table "
                                  "or delete the children")
            modes[name] = mode
        return modes

    def _holds_end(self, policy: SystemPolicy) -> None:
        """Refused before any write: rows kept under a hold that could never end."""
        for name, bound in self.tables.items():
            for child in bound.children:
                if child.mapping.erase != ChildMode.KEEP:
                    continue
                if child.dated is None or policy.retention_years is None:
                    raise ConfigError(
                        f"{self.settings.mapping}: [tables.{name}] keeps the child rows of "
                        f"{child.table.name!r}, and a hold needs its end: name the child's "
                        "dated_by column and set retention_years (and retention_basis) in "
                        "the policy's [systems.app_database]")

    def _erase_row(self, bound: BoundTable, ref: RecordRef, key: Any, mode: TableMode,
                   policy: SystemPolicy) -> tuple[list[RecordOutcome], dict[str, int]]:
        """One row and its children in one transaction; each action journalled once the
        transaction is committed. Returns the outcomes and the child rows kept."""
        if key is None:
            return [RecordOutcome(ref, Action.NOT_FOUND, "no such row")], {}
        with self._database("erase"), self.engine.begin() as conn:
            row = conn.execute(select(bound.table).where(bound.pk == key)
                               .with_for_update()).mappings().first()
            if row is None:
                return [RecordOutcome(ref, Action.NOT_FOUND, "no such row (already deleted?)")], {}
            held, ended = _held_children(conn, bound, key, policy, self.today())
            deleted = _delete_children(conn, bound, key) + _delete_rows(conn, ended)
            action, detail = self._erase_parent(conn, bound, row, key, mode)
        out = [self.done(RecordOutcome(_child_ref(child, pk, bound, key), Action.DELETED,
                                       f"child row of {bound.name} {key} deleted"
                                       + ("; its hold had ended" if (child, pk) in ended
                                          else "")))
               for child, pk in deleted]
        kept: dict[str, int] = {}
        for child, pk, until in held:
            kept[child.table.name] = kept.get(child.table.name, 0) + 1
            out.append(self._kept(child, _child_ref(child, pk, bound, key), until, policy,
                                  f"child row of {bound.name} {key}"))
        if kept:
            detail += "; kept: " + ", ".join(f"{n} {t} rows" for t, n in kept.items())
        outcome = RecordOutcome(ref, action, detail)
        out.append(self.done(outcome) if action != Action.NOTHING_TO_DO else outcome)
        return out, kept

    def _kept(self, child: BoundChild, ref: RecordRef, until: date | None,
              policy: SystemPolicy, what: str) -> RecordOutcome:
        """A kept child row: retained until its hold ends (journalled), or, with no date to
        count the hold from, left to a person to decide."""
        if until is None:
            return RecordOutcome(ref, Action.KEPT, (
                f"{what} kept (bookkeeping), but its {child.mapping.dated_by} is empty: "
                "decide how long it is held, then confirm the task as retained with that end"))
        return self.done(RecordOutcome(
            ref, Action.RETAINED, f"{what} kept (bookkeeping) until {until}",
            legal_basis=policy.retention_basis or policy.legal_basis, retained_until=until))

    def _erase_parent(self, conn: Connection, bound: BoundTable, row: RowMapping, key: Any,
                      mode: TableMode) -> tuple[Action, str]:
        if mode == TableMode.DELETE:
            conn.execute(delete(bound.table).where(bound.pk == key))
            return Action.DELETED, "row deleted"
        if _anonymised(bound, row, key):
            return Action.NOTHING_TO_DO, "already anonymised"
        conn.execute(update(bound.table).where(bound.pk == key)
                     .values(_anonymous_values(bound, key)))
        spec = bound.mapping.anonymise
        assert spec is not None  # _modes refuses anonymise without it
        return Action.ANONYMISED, (f"anonymised: {', '.join(spec.null) or 'nothing'} set to "
                                   f"NULL; {', '.join(spec.overwrite) or 'nothing'} overwritten")

    def _read_back(self, acted: list[tuple[BoundTable, RecordRef, Any]],
                   modes: dict[str, TableMode], policy: SystemPolicy) -> dict[RecordRef, str]:
        """What the database still shows after the erasure, per row (empty: all done):
        the row, the child rows the mapping deletes, and the kept child rows whose hold
        has ended (deleted by the erasure, so they must be gone too)."""
        problems: dict[RecordRef, str] = {}
        with self._database("read back"), self.engine.connect() as conn:
            for bound, ref, key in acted:
                _, ended = _held_children(conn, bound, key, policy, self.today())
                for child, pk in ended:
                    problems[_child_ref(child, pk, bound, key)] = (
                        "read back: the row is still there, although its hold has ended")
                row = conn.execute(select(bound.table).where(bound.pk == key)).mappings().first()
                if row is not None and modes[bound.name] == TableMode.DELETE:
                    problems[ref] = "read back: the row is still there"
                elif row is not None and not _anonymised(bound, row, key):
                    problems[ref] = "read back: the row's identifying columns are not blank"
                for child in bound.children:
                    if child.mapping.erase != ChildMode.DELETE:
                        continue
                    left = conn.execute(select(func.count()).select_from(child.table)
                                        .where(child.fk == key)).scalar_one()
                    if left:
                        problems[ref] = (f"read back: {left} {child.table.name} rows of the "
                                         "row are still there")
        return problems

    def _set_columns(self, bound: BoundTable, key: Any, doing: str,
                     wanted: Callable[[RowMapping], dict[str, Any]]) -> dict[str, Any] | None:
        """Lock the row and write what ``wanted`` asks of it, with the updated-at stamp
        (the sync's cursor). Returns what was written ({}: nothing needed), or None when
        there is no such row."""
        if key is None:
            return None
        with self._database(doing), self.engine.begin() as conn:
            row = conn.execute(select(bound.table).where(bound.pk == key)
                               .with_for_update()).mappings().first()
            if row is None:
                return None
            values = wanted(row)
            updated = bound.col(bound.mapping.updated_at)
            if values:
                stamp = {updated.name: _now_for(updated)} if updated is not None else {}
                conn.execute(update(bound.table).where(bound.pk == key)
                             .values({**values, **stamp}))
        return values

    def _opt_out_row(self, bound: BoundTable, ref: RecordRef, key: Any) -> RecordOutcome:
        consent = bound.col(bound.mapping.marketing_consent)
        if consent is None:
            return RecordOutcome(ref, Action.NOTHING_TO_DO, NO_CONSENT)
        written = self._set_columns(bound, key, "opt-out", lambda row: {} if (
            row[consent.name] is not None and not row[consent.name]) else {
            consent.name: falsy(consent)})
        if written is None:
            return RecordOutcome(ref, Action.NOT_FOUND, "no such row")
        if not written:
            return RecordOutcome(ref, Action.NOTHING_TO_DO, "consent already withdrawn")
        return self.done(RecordOutcome(ref, Action.UNSUBSCRIBED,
                                       f"{consent.name} set to false"))

    def _restrict_row(self, bound: BoundTable, ref: RecordRef, key: Any, lift: bool
                      ) -> RecordOutcome:
        flag = bound.col(bound.mapping.restricted)
        consent = bound.col(bound.mapping.marketing_consent)
        assert flag is not None
        action = Action.LIFTED if lift else Action.RESTRICTED

        def wanted(row: RowMapping) -> dict[str, Any]:
            values: dict[str, Any] = {}
            if bool(row[flag.name]) == lift:
                values[flag.name] = falsy(flag) if lift else truthy(flag)
            if not lift and consent is not None and row[consent.name]:
                values[consent.name] = falsy(consent)
            return values

        written = self._set_columns(bound, key, "restriction", wanted)
        if written is None:
            return RecordOutcome(ref, Action.NOT_FOUND, "no such row")
        if not written:
            return RecordOutcome(ref, action, f"{flag.name} already "
                                 + ("clear" if lift else "set"))
        return self.done(RecordOutcome(ref, action, ", ".join(
            f"{name} set to {'true' if value else 'false'}" for name, value in written.items())))

    def _not_as_asked(self, records: list[RecordOutcome], action: Action,
                      shown: Callable[[BoundTable, RowMapping], bool]) -> set[RecordRef]:
        """Read back the rows of the records that ended ``action``: those gone, or whose
        row ``shown`` does not accept."""
        left: set[RecordRef] = set()
        with self._database("read back"), self.engine.connect() as conn:
            for bound, keyed in self._tables_of([r.ref for r in records if r.action == action]):
                for ref, key in keyed:
                    row = conn.execute(select(bound.table).where(bound.pk == key)
                                       ).mappings().first()
                    if row is None or not shown(bound, row):
                        left.add(ref)
        return left

    def _not_yet(self, records: list[RecordOutcome], lift: bool) -> set[RecordRef]:
        """The rows whose restriction column does not read as asked (with a restriction,
        also a consent still given)."""
        def shown(bound: BoundTable, row: RowMapping) -> bool:
            flag = bound.col(bound.mapping.restricted)
            consent = bound.col(bound.mapping.marketing_consent)
            assert flag is not None
            return bool(row[flag.name]) != lift and (
                lift or consent is None or not row[consent.name])

        return self._not_as_asked(records, Action.LIFTED if lift else Action.RESTRICTED, shown)

    def _still_consenting(self, records: list[RecordOutcome]) -> set[RecordRef]:
        def withdrawn(bound: BoundTable, row: RowMapping) -> bool:
            consent = bound.col(bound.mapping.marketing_consent)
            assert consent is not None
            return row[consent.name] is not None and not row[consent.name]

        return self._not_as_asked(records, Action.UNSUBSCRIBED, withdrawn)


# ---------------------------------------------------------------------- pure helpers


def _parse_url(text: str) -> URL:
    """The URL, or a ConfigError that does not repeat it (it holds the password)."""
    try:
        return make_url(text)
    except ArgumentError:
        raise ConfigError("APP_DATABASE_URL is not a SQLAlchemy database URL "
                          "(dialect+driver://user:password@host:port/database)") from None


def _refuse_missing_sqlite_file(url: URL, where: str) -> None:
    """SQLite creates a missing file on connect: an empty database would find nobody,
    so a path that does not exist is a connection failure, not an empty system."""
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:") \
            and not Path(database).is_file():
        raise ConnectionFailed(SYSTEM, f"start: the SQLite database {where} does not exist")


def _key(pk: Column, record_id: str) -> Any:  # noqa: ANN401 - the column's own type
    """A ref's id as the primary key column's type; None if it cannot be one."""
    try:
        kind = pk.type.python_type
    except NotImplementedError:
        return record_id
    if kind is int:
        try:
            return int(record_id)
        except ValueError:
            return None
    return record_id


def _digits(column: Column) -> ColumnElement[Any]:
    """The column with the characters people write inside phone numbers removed."""
    expr: ColumnElement[Any] = column
    for char in _PHONE_PUNCTUATION:
        expr = func.replace(expr, char, "")
    return expr


def _match(bound: BoundTable, emails: set[str], phones: set[str]) -> ColumnElement[bool] | None:
    """Candidates in SQL: any e-mail column equal to a wanted e-mail (case and spaces
    aside), any phone column ending in a wanted number's last digits."""
    conditions: list[ColumnElement[bool]] = []
    if emails:
        conditions += [func.lower(func.trim(c)).in_(sorted(emails))
                       for c in bound.cols(bound.mapping.email)]
    for phone in sorted(phones):
        suffix = "".join(ch for ch in phone if ch.isdigit())[-PHONE_SUFFIX:]
        conditions += [_digits(c).like("%" + suffix) for c in bound.cols(bound.mapping.phone)]
    return or_(*conditions) if conditions else None


def _identifiers(bound: BoundTable, row: RowMapping | dict[str, Any]
                 ) -> tuple[list[str], list[str]]:
    emails = [str(row[c]) for c in bound.mapping.email if row[c]]
    phones = [str(row[c]) for c in bound.mapping.phone if row[c]]
    return emails, phones


def _name(bound: BoundTable, row: RowMapping | dict[str, Any]) -> str | None:
    spec = bound.mapping
    if spec.full_name:
        value = row[spec.full_name]
        return (str(value).strip() or None) if value else None
    parts = [str(row[c]).strip() for c in (spec.first_name, spec.last_name) if c and row[c]]
    return " ".join(p for p in parts if p) or None


def _ref(bound: BoundTable, row: RowMapping) -> RecordRef:
    key = row[bound.pk.name]
    emails, phones = _identifiers(bound, row)
    facts = RecordFacts(name=_name(bound, row), emails=tuple(emails), phones=tuple(phones))
    return RecordRef(system=SYSTEM, kind=bound.name, record_id=str(key),
                     label=f"{bound.name} row {key}", facts=facts)


def _child_ref(child: BoundChild, pk: Any, parent: BoundTable, key: Any) -> RecordRef:
    return RecordRef(system=SYSTEM, kind=child.table.name, record_id=str(pk),
                     label=f"{child.table.name} row {pk} of {parent.name} {key}")


def _delete_children(conn: Connection, bound: BoundTable, key: Any
                     ) -> list[tuple[BoundChild, Any]]:
    """Delete the row's child rows the mapping deletes; which ones (for the journal)."""
    deleted: list[tuple[BoundChild, Any]] = []
    for child in bound.children:
        if child.mapping.erase != ChildMode.DELETE:
            continue
        pks = conn.execute(select(child.pk).where(child.fk == key).order_by(child.pk)).scalars()
        found = list(pks)
        if found:
            conn.execute(delete(child.table).where(child.fk == key))
            deleted += [(child, pk) for pk in found]
    return deleted


def _held_children(conn: Connection, bound: BoundTable, key: Any, policy: SystemPolicy,
                   today: date) -> tuple[list[tuple[BoundChild, Any, date | None]],
                                         list[tuple[BoundChild, Any]]]:
    """The row's kept child rows: those under a hold still running (with its last
    day; None when the row has no date to count it from), and those whose hold has
    ended (no hold: to delete)."""
    held: list[tuple[BoundChild, Any, date | None]] = []
    ended: list[tuple[BoundChild, Any]] = []
    for child in bound.children:
        if child.mapping.erase != ChildMode.KEEP:
            continue
        for row in conn.execute(select(child.table).where(child.fk == key)
                                .order_by(child.pk)).mappings():
            pk, until = row[child.pk.name], _hold_end(child, row, policy)
            if until is None or until >= today:
                held.append((child, pk, until))
            else:
                ended.append((child, pk))
    return held, ended


def _hold_end(child: BoundChild, row: RowMapping, policy: SystemPolicy) -> date | None:
    """The last day a kept child row is held, counted from its date; None without one."""
    assert child.dated is not None  # _holds_end refuses a kept child without it
    dated = row[child.dated.name]
    if dated is None:
        return None
    entry = dated.date() if isinstance(dated, datetime) else dated
    until = policy.hold_ends(date.fromisoformat(str(entry)))
    assert until is not None  # _holds_end refuses a policy without the years
    return until


def _delete_rows(conn: Connection, rows: list[tuple[BoundChild, Any]]
                 ) -> list[tuple[BoundChild, Any]]:
    for child, pk in rows:
        conn.execute(delete(child.table).where(child.pk == pk))
    return rows


def _overwrite(value: Any, key: Any) -> Any:  # noqa: ANN401 - a TOML scalar
    return value.replace("{pk}", str(key)) if isinstance(value, str) else value


def _anonymous_values(bound: BoundTable, key: Any) -> dict[str, Any]:
    spec = bound.mapping.anonymise
    assert spec is not None
    values: dict[str, Any] = dict.fromkeys(spec.null)
    values.update({c: _overwrite(v, key) for c, v in spec.overwrite.items()})
    for name in (spec.erased_at, bound.mapping.updated_at):
        if name and name not in values:
            values[name] = _now_for(bound.table.c[name])
    if spec.erased_flag:
        values[spec.erased_flag] = truthy(bound.table.c[spec.erased_flag])
    return values


def _same(seen: Any, meant: Any) -> bool:
    return seen == meant or str(seen) == str(meant)


def _anonymised(bound: BoundTable, row: RowMapping, key: Any) -> bool:
    """Whether the row is in the anonymised state the mapping describes."""
    spec = bound.mapping.anonymise
    if spec is None:
        return False
    if any(row[c] is not None for c in spec.null):
        return False
    if not all(_same(row[c], _overwrite(v, key)) for c, v in spec.overwrite.items()):
        return False
    if spec.erased_at and row[spec.erased_at] is None:
        return False
    return not (spec.erased_flag and not row[spec.erased_flag])


def _marked_erased(bound: BoundTable, row: RowMapping) -> bool:
    """A row our erasure anonymised (its marker set): gone from the index's view."""
    spec = bound.mapping.anonymise
    if spec is None or not (spec.erased_at or spec.erased_flag):
        return False
    return (spec.erased_at is not None and row[spec.erased_at] is not None) or bool(
        spec.erased_flag and row[spec.erased_flag])


def _now_for(column: Column) -> Any:  # noqa: ANN401 - what the column stores
    """Now, as the column stores time: aware where it keeps a zone, naive UTC where not."""
    now = datetime.now(UTC)
    if isinstance(column.type, DateTime):
        return now if column.type.timezone else now.replace(tzinfo=None)
    if isinstance(column.type, Date):
        return now.date()
    return now.isoformat()


def _record_id(bound: BoundTable, row: RowMapping) -> str:
    return f"{bound.name}/{row[bound.pk.name]}"


def _record(bound: BoundTable, row: RowMapping, stamp: Any) -> SourceRecord:
    emails, phones = _identifiers(bound, row)
    consent = bound.mapping.marketing_consent
    updated = stamp if isinstance(stamp, datetime) else None
    if updated is not None and updated.tzinfo is None:
        updated = updated.replace(tzinfo=UTC)
    return SourceRecord(system=SYSTEM, record_id=_record_id(bound, row),
                        emails=tuple(emails), phones=tuple(phones),
                        display_name=_name(bound, row), updated_at=updated,
                        subscribed=bool(row[consent]) if consent else None)


def _cursors(since: str | None) -> dict[str, str]:
    """The per-table cursor; an unreadable one means a full pass (never a skip)."""
    if not since:
        return {}
    try:
        data = json.loads(since)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str) and _valid_iso(v)}


def _valid_iso(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _from_iso(text: str) -> datetime:
    """The cursor as the column gave it (aware or naive), compared like with like."""
    return datetime.fromisoformat(text)


def _plain(row: RowMapping | dict[str, Any]) -> dict[str, Any]:
    """A row for the access export: column names kept, values JSON-safe."""
    return {str(k): _safe(v) for k, v in dict(row).items()}


def _safe(value: Any) -> Any:  # noqa: ANN401 - any column's value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return value

