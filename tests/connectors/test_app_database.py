"""The own-application-database connector, what is its own: a real database, SQLite
always, PostgreSQL when HUB_TEST_POSTGRES_URL is set (the module's own schema).

The contract every system keeps (find by e-mail and phone, not found, export, erasure
read back, a second erasure, opt-out, restriction, rectify left to an operator) is
tested in test_contract.py, where this system is a participant on both backends. Here:
what only a database has: phone numbers in any written form, column names in the
export, delete versus anonymise, triggers that undo a write, sync by updated-at, the
database going away, and mappings of the wrong shape. The connector is built as
production builds it: ``build_connector`` with the package named in HUB_EXTRA_SYSTEMS
and APP_DATABASE_* in the environment (the ``app_database`` fixture).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Date,
    Engine,
    Integer,
    MetaData,
    Table,
    event,
    make_url,
    select,
    update,
)

from connectors import registry
from connectors.app_database import DECLARATION
from connectors.errors import ConfigError, ConnectionFailed
from hub.domain import Action, Identifier, IdentifierKind, RecordOutcome, RecordRef
from hub.policy import SystemPolicy, load_policy
from hub.systems import Kind
from tests.connectors.app_db import (
    EXAMPLE,
    ORDERS,
    PACKAGE,
    POLICY_SECTION,
    ROOT,
    T0,
    USERS,
    DatabaseInspector,
)

AINO_EMAIL = "aino.virtanen@example.fi"
AINO_PHONE = "+358401234567"

# Erasure deletes the account and its orders; the table names no erase, so the
# policy's erase = "delete" decides.
DELETE_MAPPING = """
[tables.users]
email = "email"
phone = "phone"
first_name = "first_name"
last_name = "last_name"
updated_at = "updated_at"
marketing_consent = "marketing_consent"

[[tables.users.children]]
table = "orders"
foreign_key = "user_id"
erase = "delete"
"""


@dataclass
class Db:
    """The seeded database and what a test reads back from it."""

    url: str
    engine: Engine

    def user(self, uid: int) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            row = c.execute(select(USERS).where(USERS.c.id == uid)).mappings().first()
        return dict(row) if row else None

    def orders_of(self, uid: int) -> list[int]:
        with self.engine.connect() as c:
            return list(c.execute(select(ORDERS.c.id).where(ORDERS.c.user_id == uid)
                                  .order_by(ORDERS.c.id)).scalars())

    def touch(self, uid: int, when: datetime) -> None:
        with self.engine.begin() as c:
            c.execute(update(USERS).where(USERS.c.id == uid).values(updated_at=when))


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest,
       app_database: Callable[[str], DatabaseInspector]) -> Db:
    """users and orders, seeded; on SQLite (a file) and on PostgreSQL (the module's
    schema), the system turned on with controller A's example mapping."""
    inspector = app_database(request.param)
    return Db(inspector.url, inspector.engine)


@pytest.fixture
def env(db: Db) -> Path:
    """The example mapping's path (the environment is the ``app_database`` fixture's)."""
    return EXAMPLE


def use_mapping(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mapping.toml"
    path.write_text(text, "utf-8")
    monkeypatch.setenv("APP_DATABASE_MAPPING", str(path))
    return path


class Writes:
    """Statements that change the database, as the connector sends them."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            self.count += 1


@pytest.fixture
def journal() -> list[RecordOutcome]:
    return []


@pytest.fixture
def build(env: Path, journal: list[RecordOutcome]) -> Iterator[Any]:
    """Build connectors as production does, each journalling into ``journal`` and
    counting its writes in ``connector.writes``."""
    built: list[Any] = []

    def make() -> Any:
        connector = registry.build_connector("app_database")
        connector.journal = journal.append
        connector.writes = Writes()
        event.listen(connector.engine, "before_cursor_execute", connector.writes)
        built.append(connector)
        return connector

    yield make
    for connector in built:
        connector.close()


@pytest.fixture
def conn(build: Any) -> Any:
    return build()


def email(value: str) -> Identifier:
    return Identifier(IdentifierKind.EMAIL, value)


def phone(value: str) -> Identifier:
    return Identifier(IdentifierKind.PHONE, value)


BOOKKEEPING = "Kirjanpitolaki (1336/1997) 2 luku 10 §; GDPR art. 17(3)(b)"
# The example keeps orders as vouchers: six years from the end of the order's year.
ANONYMISE = SystemPolicy(erase="anonymise", retention_years=6, retention_basis=BOOKKEEPING)
# A trigger of the application's that keeps the e-mail whatever an UPDATE says.
KEEP_EMAIL = {
    "sqlite": ["CREATE TRIGGER keep_email AFTER UPDATE OF email ON users "
               "WHEN NEW.email IS NULL BEGIN "
               "UPDATE users SET email = OLD.email WHERE id = NEW.id; END"],
    "postgresql": ["CREATE OR REPLACE FUNCTION keep_email() RETURNS trigger AS $$ BEGIN "
                   "NEW.email := OLD.email; RETURN NEW; END $$ LANGUAGE plpgsql",
                   "CREATE TRIGGER keep_email BEFORE UPDATE ON users FOR EACH ROW "
                   "EXECUTE FUNCTION keep_email()"],
}
DELETE = SystemPolicy(erase="delete")


# ------------------------------------------------------------------ declared and built


def test_declared_as_a_database_outside_the_vendors_and_turned_on_by_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert DECLARATION.system.kind is Kind.DATABASE
    assert PACKAGE not in registry.VENDORS
    assert "app_database" not in registry.names()
    monkeypatch.setenv(registry.EXTRA_ENV, PACKAGE)
    assert registry.names()[-1] == "app_database"


def test_a_policy_with_its_section_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path
                                         ) -> None:
    monkeypatch.setenv(registry.EXTRA_ENV, PACKAGE)
    text = (ROOT / "hub" / "default_policy.toml").read_text("utf-8")
    path = tmp_path / "policy.toml"
    path.write_text(text + '\n[systems.app_database]\nerase = "anonymise"\n'
                    'legal_basis = "GDPR art. 6(1)(b) contract"\n', "utf-8")
    policy = load_policy(path, systems=registry.declarations())
    assert policy.for_system("app_database").erase == "anonymise"
    assert policy.title("app_database") == DECLARATION.system.title


def test_find_by_phone_in_any_written_form_and_only_the_whole_number(conn: Any) -> None:
    # Stored as "040 123 4567"; Mikko's "+358 50 123 4567" shares the last seven digits.
    refs = conn.find([phone(AINO_PHONE)])
    assert [(r.kind, r.record_id) for r in refs] == [("users", "1")]
    assert conn.find([phone("+358501234567")])[0].record_id == "2"


def test_export_holds_the_rows_and_their_orders_with_column_names_kept(conn: Any) -> None:
    export = conn.export(conn.find([email(AINO_EMAIL)]))
    by_source = {s.source: s.items for s in export.sections}
    assert set(by_source) == {"app_database:users", "app_database:orders"}
    (user,) = by_source["app_database:users"]
    assert user["email"] == "Aino.Virtanen@Example.fi" and user["marketing_consent"] is True
    assert "processing_restricted" in user and "erased_at" in user
    assert [o["id"] for o in by_source["app_database:orders"]] == [10, 11]
    assert by_source["app_database:orders"][0]["amount"] == "450.00"
    assert by_source["app_database:orders"][0]["ordered_on"] == "2026-03-04"
    json.dumps([s.items for s in export.sections])  # the bundle writes it as JSON
    assert export.evidence["rows"] == 1 and export.evidence["child_rows"] == 2


def test_export_reads_a_ref_from_the_journal_without_find(build: Any) -> None:
    """A retry's refs come from the journal: kind and id only, nothing ``find`` read."""
    export = build().export([RecordRef("app_database", "users", "1"),
                             RecordRef("app_database", "users", "not-a-key")])
    assert [s.source for s in export.sections] == ["app_database:users", "app_database:orders"]


# ------------------------------------------------------------------ erasure, read back


def test_anonymisation_blanks_the_person_keeps_the_orders_and_is_journalled(
        conn: Any, db: Db, journal: list[RecordOutcome]) -> None:
    refs = conn.find([email(AINO_EMAIL)])
    before = conn.api_calls
    outcome = conn.erase(refs, ANONYMISE)
    assert outcome.verified, outcome.records
    # The orders are kept under the Accounting Act's hold, each saying until when
    # (ordered in 2026: the hold runs to the end of 2032); the account is anonymised.
    assert [(r.ref.kind, r.ref.record_id, r.action, r.retained_until, r.legal_basis)
            for r in outcome.records] == [
        ("orders", "10", Action.RETAINED, date(2032, 12, 31), BOOKKEEPING),
        ("orders", "11", Action.RETAINED, date(2032, 12, 31), BOOKKEEPING),
        ("users", "1", Action.ANONYMISED, None, None)]
    assert outcome.retained and not outcome.not_found
    assert outcome.evidence["counts"] == {"retained": 2, "anonymised": 1}
    assert outcome.evidence["api_calls"] == conn.api_calls - before > 0
    assert outcome.evidence["kept_child_rows"] == {"orders": 2}
    assert [(r.ref.kind, r.action) for r in journal] == [
        ("orders", Action.RETAINED), ("orders", Action.RETAINED), ("users", Action.ANONYMISED)]
    aino = db.user(1)
    assert aino["email"] is None and aino["phone"] is None
    assert (aino["first_name"], aino["last_name"]) == ("anonymised", "anonymised")
    assert aino["erased_at"] is not None
    assert aino["marketing_consent"] is False  # the example withdraws it too
    assert db.orders_of(1) == [10, 11]  # bookkeeping records stay
    assert db.user(2)["email"] == "mikko.korhonen@example.fi"


def test_an_order_whose_hold_has_ended_is_deleted_not_retained(
        conn: Any, db: Db) -> None:
    """A hold whose end has passed is no hold (rule 5): an order of 2018 was kept to
    the end of 2024; the erasure deletes it and retains only the orders still held."""
    with db.engine.begin() as c:
        c.execute(ORDERS.insert(), [{"id": 9, "user_id": 1, "product": "Old course",
                                     "amount": "100.00", "ordered_on": date(2018, 5, 1)}])
    outcome = conn.erase(conn.find([email(AINO_EMAIL)]), ANONYMISE)
    assert outcome.verified, outcome.records
    by_order = {r.ref.record_id: r for r in outcome.records if r.ref.kind == "orders"}
    assert by_order["9"].action == Action.DELETED and by_order["9"].retained_until is None
    assert {by_order[k].action for k in ("10", "11")} == {Action.RETAINED}
    assert db.orders_of(1) == [10, 11]


def test_holds_end_by_the_companys_clock_not_helsinkis(build: Any, monkeypatch) -> None:
    """Found: the connector counted "today" in Helsinki whatever HUB_TIMEZONE said, so a
    company elsewhere had its holds end (and its rows deleted) up to a day off."""
    days = {}
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):  # UTC+14 and UTC-11
        monkeypatch.setenv("HUB_TIMEZONE", zone)
        days[zone] = build().today()
    assert days["Pacific/Kiritimati"] > days["Pacific/Pago_Pago"]  # 25 hours apart


def test_the_sweeps_erasure_of_a_kept_order_deletes_it_once_its_hold_has_ended(
        conn: Any, db: Db, journal: list[RecordOutcome]) -> None:
    """Found in review: when a hold ends, the retention sweep files an erasure aimed at
    the kept row itself (its account, anonymised long ago, is found by nobody). The
    connector knew only the mapped tables: it dropped the ref, the outcome was empty,
    the task ended not_found and the order stayed for good."""
    first = conn.erase(conn.find([email(AINO_EMAIL)]), ANONYMISE)
    kept = [r.ref for r in first.records if r.action == Action.RETAINED]
    assert kept and db.orders_of(1) == [10, 11]
    with db.engine.begin() as c:  # order 10's hold has ended; order 11's runs on
        c.execute(update(ORDERS).where(ORDERS.c.id == 10).values(ordered_on=date(2010, 1, 4)))
    second = conn.erase(kept, ANONYMISE)
    assert second.verified
    by_order = {r.ref.record_id: r for r in second.records}
    assert by_order["10"].action == Action.DELETED
    assert by_order["11"].action == Action.RETAINED and by_order["11"].retained_until
    assert db.orders_of(1) == [11]
    assert ("10", Action.DELETED) in {(r.ref.record_id, r.action)
                                                   for r in journal}
    third = conn.erase(kept, ANONYMISE)
    assert {r.ref.record_id: r.action for r in third.records} == {
        "10": Action.NOT_FOUND, "11": Action.RETAINED}


KEEP_ORDERS = {  # an application that refuses to delete orders, silently
    "sqlite": ["CREATE TRIGGER keep_orders BEFORE DELETE ON orders "
               "BEGIN SELECT RAISE(IGNORE); END"],
    "postgresql": ["CREATE OR REPLACE FUNCTION keep_orders() RETURNS trigger AS $$ BEGIN "
                   "RETURN NULL; END $$ LANGUAGE plpgsql",
                   "CREATE TRIGGER keep_orders BEFORE DELETE ON orders FOR EACH ROW "
                   "EXECUTE FUNCTION keep_orders()"],
}


def test_an_order_whose_hold_has_ended_and_that_stays_fails_the_read_back(
        conn: Any, db: Db) -> None:
    """Rule 3: the erasure deletes an order whose hold has ended; one the database
    keeps anyway leaves the outcome unverified, on that order's record."""
    with db.engine.begin() as c:
        c.execute(ORDERS.insert(), [{"id": 9, "user_id": 1, "product": "Old course",
                                     "amount": "100.00", "ordered_on": date(2018, 5, 1)}])
        for statement in KEEP_ORDERS[db.engine.dialect.name]:
            c.exec_driver_sql(statement)
    outcome = conn.erase(conn.find([email(AINO_EMAIL)]), ANONYMISE)
    assert not outcome.verified
    (old,) = [r for r in outcome.records if r.ref.kind == "orders" and r.ref.record_id == "9"]
    assert "still there, although its hold has ended" in old.detail
    assert 9 in db.orders_of(1)


def test_a_kept_row_without_its_date_is_left_to_an_operator(
        build: Any, db: Db, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A payment whose date column is empty has no hold end to count: neither retained
    for ever nor deleted; a person decides (the task waits, manual_pending)."""
    from hub.ledger import TaskState
    from hub.outcomes import state_for

    payments = Table("payments", MetaData(), Column("id", Integer, primary_key=True),
                     Column("user_id", Integer, nullable=False),
                     Column("paid_on", Date, nullable=True))
    payments.create(db.engine)
    try:
        with db.engine.begin() as c:
            c.execute(payments.insert(), [{"id": 1, "user_id": 1, "paid_on": None}])
        use_mapping(monkeypatch, tmp_path, EXAMPLE.read_text("utf-8") + (
            '\n[[tables.users.children]]\ntable = "payments"\nforeign_key = "user_id"\n'
            'erase = "keep"\ndated_by = "paid_on"\n'))
        conn = build()
        outcome = conn.erase(conn.find([email(AINO_EMAIL)]), ANONYMISE)
        (payment,) = [r for r in outcome.records if r.ref.kind == "payments"]
        assert payment.action == Action.KEPT and "paid_on is empty" in payment.detail
        assert state_for(outcome) == TaskState.MANUAL_PENDING
        assert {r.action for r in outcome.records if r.ref.kind == "orders"} == {
            Action.RETAINED}
    finally:
        payments.drop(db.engine)


def test_kept_rows_without_an_end_to_their_hold_are_refused_before_any_write(
        conn: Any, db: Db) -> None:
    """A hold needs its end: a policy without retention_years cannot keep the orders."""
    refs = conn.find([email(AINO_EMAIL)])
    with pytest.raises(ConfigError) as caught:
        conn.erase(refs, SystemPolicy(erase="anonymise"))
    assert "dated_by" in str(caught.value) and "retention_years" in str(caught.value)
    assert conn.writes.count == 0 and db.user(1)["email"] is not None


def test_deletion_removes_the_orders_then_the_row_each_journalled(
        build: Any, db: Db, journal: list[RecordOutcome], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    use_mapping(monkeypatch, tmp_path, DELETE_MAPPING)
    conn = build()
    refs = conn.find([email(AINO_EMAIL)])
    outcome = conn.erase(refs, DELETE)  # the table names no erase: the policy's
    assert outcome.verified, outcome.records
    done = [(r.ref.kind, r.ref.record_id, r.action) for r in outcome.records]
    assert done == [("orders", "10", Action.DELETED), ("orders", "11", Action.DELETED),
                    ("users", "1", Action.DELETED)]
    assert [(r.ref.kind, r.ref.record_id, r.action) for r in journal] == done
    assert db.user(1) is None and db.orders_of(1) == []
    assert db.orders_of(2) == [12]


def test_an_anonymised_row_that_is_not_blank_fails_the_read_back(conn: Any, db: Db) -> None:
    """Rule 3: "done" only when the database shows it. An application trigger that puts
    the e-mail back leaves the outcome unverified, saying why."""
    with db.engine.begin() as c:
        for statement in KEEP_EMAIL[db.engine.dialect.name]:
            c.exec_driver_sql(statement)
    outcome = conn.erase(conn.find([email(AINO_EMAIL)]), ANONYMISE)
    assert not outcome.verified
    (aino,) = [r for r in outcome.records if r.ref.kind == "users"]
    assert "identifying columns are not blank" in aino.detail
    assert outcome.evidence["still_present"] == 1


def test_an_overwrite_may_keep_a_column_unique_with_the_rows_key(
        build: Any, db: Db, journal: list[RecordOutcome], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    text = EXAMPLE.read_text("utf-8")
    for old, new in (('null = ["email", "phone"]', 'null = ["phone"]'),
                     ("overwrite = { ", 'overwrite = { email = "erased-{pk}@invalid", ')):
        assert old in text
        text = text.replace(old, new)
    use_mapping(monkeypatch, tmp_path, text)
    conn = build()
    refs = conn.find([email(AINO_EMAIL)])
    assert conn.erase(refs, ANONYMISE).verified
    assert db.user(1)["email"] == "erased-1@invalid"
    journalled = len(journal)
    again = build().erase(refs, ANONYMISE)  # read back as the same state: nothing to do
    assert again.verified
    assert {r.ref.kind: r.action for r in again.records} == {
        "users": Action.NOTHING_TO_DO, "orders": Action.RETAINED}  # the hold still runs
    assert [r.action for r in journal[journalled:]] == [Action.RETAINED] * 2


def test_a_second_deletion_finds_nothing_and_writes_nothing(
        build: Any, journal: list[RecordOutcome], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """The contract suite's second erasure is of the example (anonymise); a mapping
    that deletes leaves nothing to find by e-mail or phone, in a new process too."""
    use_mapping(monkeypatch, tmp_path, DELETE_MAPPING)
    conn = build()
    refs = conn.find([email(AINO_EMAIL)])
    assert conn.erase(refs, DELETE).verified
    writes, journalled = conn.writes.count, len(journal)
    assert conn.find([email(AINO_EMAIL)]) == []
    assert conn.find([phone(AINO_PHONE)]) == []
    second = build().erase(refs, DELETE)  # a retry in a new process: a new connector
    assert second.verified
    assert {r.action for r in second.records} == {Action.NOT_FOUND}
    assert conn.writes.count == writes and len(journal) == journalled


def test_a_policy_erase_a_row_cannot_express_is_refused_before_any_write(
        build: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = use_mapping(monkeypatch, tmp_path, DELETE_MAPPING)
    conn = build()
    refs = conn.find([email(AINO_EMAIL)])
    with pytest.raises(ConfigError) as caught:
        conn.erase(refs, SystemPolicy(erase="retain_if_required"))
    assert str(path) in str(caught.value) and "[tables.users]" in str(caught.value)
    assert conn.writes.count == 0


# ------------------------------------------------------------------ opt-out


def test_opt_out_withdraws_consent_reads_it_back_and_twice_is_harmless(
        conn: Any, db: Db, journal: list[RecordOutcome]) -> None:
    refs = conn.find([email(AINO_EMAIL)])
    outcome = conn.opt_out(refs)
    assert outcome.verified
    assert [(r.ref, r.action) for r in outcome.records] == [(refs[0], Action.UNSUBSCRIBED)]
    assert [(r.ref, r.action) for r in journal] == [(refs[0], Action.UNSUBSCRIBED)]
    assert db.user(1)["marketing_consent"] is False
    assert db.user(1)["email"] == "Aino.Virtanen@Example.fi"  # an opt-out erases nothing
    writes = conn.writes.count
    again = conn.opt_out(refs)
    assert again.verified and {r.action for r in again.records} == {Action.NOTHING_TO_DO}
    assert conn.writes.count == writes and len(journal) == 1


def test_opt_out_without_a_consent_column_is_nothing_to_do(
        build: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_mapping(monkeypatch, tmp_path, DELETE_MAPPING.replace(
        'marketing_consent = "marketing_consent"\n', ""))
    conn = build()
    outcome = conn.opt_out(conn.find([email(AINO_EMAIL)]))
    assert outcome.verified and {r.action for r in outcome.records} == {Action.NOTHING_TO_DO}
    assert conn.writes.count == 0


# ------------------------------------------------------------------ restriction


def test_restriction_sets_the_flag_withdraws_consent_and_lifting_clears_only_the_flag(
        conn: Any, db: Db, journal: list[RecordOutcome]) -> None:
    refs = conn.find([email(AINO_EMAIL)])
    outcome = conn.restrict(refs, lift=False)
    assert outcome.verified
    assert [(r.ref, r.action) for r in outcome.records] == [(refs[0], Action.RESTRICTED)]
    row = db.user(1)
    assert row["processing_restricted"] is True and row["marketing_consent"] is False
    assert row["email"] == "Aino.Virtanen@Example.fi"  # a restriction erases nothing
    writes = conn.writes.count
    assert conn.restrict(refs, lift=False).verified and conn.writes.count == writes
    lifted = conn.restrict(refs, lift=True)
    assert lifted.verified and [r.action for r in lifted.records] == [Action.LIFTED]
    row = db.user(1)
    assert row["processing_restricted"] is False
    assert row["marketing_consent"] is False  # consent is the subject's to give again
    assert [r.action for r in journal] == [Action.RESTRICTED, Action.LIFTED]


def test_restriction_without_a_restriction_column_is_left_to_an_operator(
        build: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert "restricted" not in DELETE_MAPPING
    use_mapping(monkeypatch, tmp_path, DELETE_MAPPING)
    conn = build()
    outcome = conn.restrict(conn.find([email(AINO_EMAIL)]), lift=False)
    assert outcome.verified and {r.action for r in outcome.records} == {Action.KEPT}
    assert "no restriction column" in outcome.records[0].detail
    assert conn.writes.count == 0


# ------------------------------------------------------------------ sync


def test_sync_reads_every_row_then_only_what_changed(conn: Any, db: Db) -> None:
    pages = list(conn.sync(None))
    records = {r.record_id: r for p in pages for r in p.records}
    assert set(records) == {"users/1", "users/2", "users/3"}
    assert records["users/1"].emails == ("Aino.Virtanen@Example.fi",)
    assert records["users/1"].display_name == "Aino Virtanen"
    assert records["users/3"].subscribed is False and records["users/1"].subscribed is True
    assert records["users/3"].updated_at == T0 + timedelta(hours=3)
    cursor = pages[-1].cursor
    assert set(json.loads(cursor)) == {"users"}

    # held back by the overlap (5 minutes): a late commit is read next time
    assert datetime.fromisoformat(json.loads(cursor)["users"]).replace(tzinfo=UTC) == \
        T0 + timedelta(hours=3, minutes=-5)

    db.touch(2, T0 + timedelta(days=1))
    again = list(conn.sync(cursor))
    assert {r.record_id for p in again for r in p.records} == {"users/2", "users/3"}
    assert all(p.cursor == cursor for p in again[:-1])  # a crash mid-pass re-reads
    newer = again[-1].cursor
    assert json.loads(newer) != json.loads(cursor)

    db.touch(3, T0 - timedelta(days=1))  # an old stamp: nothing newer than the cursor
    quiet = list(conn.sync(newer))
    assert {r.record_id for p in quiet for r in p.records} == {"users/2"}
    assert quiet[-1].cursor == newer  # kept, not dropped back to a full pass


def test_sync_reports_an_anonymised_row_gone(conn: Any) -> None:
    assert conn.erase(conn.find([email(AINO_EMAIL)]), ANONYMISE).verified
    pages = list(conn.sync(None))
    assert {r.record_id for p in pages for r in p.records} == {"users/2", "users/3"}
    assert [g for p in pages for g in p.gone] == ["users/1"]


def test_sync_pages_through_a_table(build: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_DATABASE_PAGE_SIZE", "2")
    pages = list(build().sync(None))
    assert [len(p.records) for p in pages] == [2, 1, 0]


# ------------------------------------------------------------------ failures


def test_a_database_that_is_down_is_connection_failed_not_not_found(
        env: Path, db: Db, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = "s3cret-pw-7"
    url = make_url(db.url)
    if url.get_backend_name() == "sqlite":  # SQLite would create it, empty: nobody found
        down, says = f"sqlite:///{tmp_path / 'gone' / 'app.db'}", "does not exist"
    else:  # nothing listens on port 1
        down = url.set(host="127.0.0.1", port=1, password=secret).render_as_string(
            hide_password=False)
        says = "is unavailable: OperationalError"
    monkeypatch.setenv("APP_DATABASE_URL", down)
    with pytest.raises(ConnectionFailed) as caught:
        registry.build_connector("app_database")
    assert caught.value.retryable
    assert says in str(caught.value)
    assert secret not in str(caught.value)
    if url.get_backend_name() == "postgresql":
        assert ":***@127.0.0.1:1/" in str(caught.value)


class Forwarder:
    """A TCP forwarder in front of PostgreSQL: stopping it is the server going away
    (open connections cut, new ones refused)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # stopped
            upstream = socket.create_connection(self.target)
            self.open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass

    def stop(self) -> None:
        for sock in (self.listener, *self.open):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def test_a_database_going_down_mid_request_is_connection_failed(
        env: Path, db: Db, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The lookup of a request whose database went away fails; it never finds nobody."""
    url = make_url(db.url)
    forwarder = None
    if url.get_backend_name() == "postgresql":
        forwarder = Forwarder(url.host or "127.0.0.1", url.port or 5432)
        monkeypatch.setenv("APP_DATABASE_URL", url.set(host="127.0.0.1", port=forwarder.port)
                           .render_as_string(hide_password=False))
    with registry.build_connector("app_database") as conn:
        assert conn.find([email(AINO_EMAIL)])
        if forwarder is not None:
            forwarder.stop()
        else:  # the file replaced by something SQLite cannot open, new connections made
            Path(url.database).rename(tmp_path / "moved.db")
            Path(url.database).mkdir()
            conn.engine.dispose()
        with pytest.raises(ConnectionFailed) as caught:
            conn.find([email(AINO_EMAIL)])
    assert "find: the database at" in str(caught.value)
    assert AINO_EMAIL not in str(caught.value)


def test_a_mapping_naming_a_missing_column_fails_at_start(
        env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = use_mapping(monkeypatch, tmp_path, DELETE_MAPPING.replace(
        'phone = "phone"', 'phone = "mobile"'))
    with pytest.raises(ConfigError) as caught:
        registry.build_connector("app_database")
    message = str(caught.value)
    assert str(path) in message and "[tables.users]" in message and "'mobile'" in message
    assert "its columns: id, email, phone" in message


def test_a_mapping_naming_a_missing_table_fails_at_start(
        env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = use_mapping(monkeypatch, tmp_path, DELETE_MAPPING.replace(
        'table = "orders"', 'table = "purchases"'))
    with pytest.raises(ConfigError) as caught:
        registry.build_connector("app_database")
    assert str(path) in str(caught.value) and "'purchases'" in str(caught.value)


@pytest.mark.parametrize(("change", "says"), [
    (('null = ["email", "phone"]', 'null = ["email"]'),
     "tables.users: Value error, anonymise leaves column 'phone'"),
    (('erase = "keep"', 'erase = "archive"'), "tables.users.children.0.erase"),
    (('erase = "anonymise"', 'erase = "delete"'), "kept child rows of 'orders'"),
])
def test_a_mapping_of_the_wrong_shape_names_the_file_and_the_place(
        env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        change: tuple[str, str], says: str) -> None:
    text = EXAMPLE.read_text("utf-8")
    assert change[0] in text
    path = use_mapping(monkeypatch, tmp_path, text.replace(*change))
    with pytest.raises(ConfigError) as caught:
        registry.build_connector("app_database")
    assert str(caught.value).startswith(f"{path}: ") and says in str(caught.value)


def test_an_anonymise_column_that_cannot_be_null_is_refused(
        env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    text = EXAMPLE.read_text("utf-8")
    for old, new in (('null = ["email", "phone"]', 'null = ["email", "phone", "first_name"]'),
                     ('first_name = "anonymised", ', "")):
        assert old in text
        text = text.replace(old, new)
    use_mapping(monkeypatch, tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        registry.build_connector("app_database")
    assert "'first_name', which is NOT NULL" in str(caught.value)


# ------------------------------------------------------------------ one task of a request


@pytest.fixture
def hub(env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The hub's own store (a database of its own) and a policy with the section."""
    from hub.settings import Settings
    from hub.store import open_store
    from tests.conftest import TEST_SECRET

    policy_file = tmp_path / "policy.toml"
    policy_file.write_text((ROOT / "hub" / "default_policy.toml").read_text("utf-8")
                           + POLICY_SECTION, "utf-8")
    store = open_store(Settings(_env_file=None, secret=TEST_SECRET, home=tmp_path / ".hub",
                                database_url=f"sqlite:///{tmp_path / 'hub-store.db'}"))
    yield store, load_policy(policy_file, systems=registry.declarations())
    store.close()


def test_an_erasure_task_killed_after_journalling_resumes_and_settles(
        hub: Any, db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub's whole task path (pipelines.requests.run_task): the first attempt dies
    right after journalling the anonymisation; the retry finds Aino no more by e-mail,
    acts on the journalled ref (already anonymised: nothing written) and settles the
    task retained (the orders are held under the Accounting Act, each with its basis
    and end) with the first attempt's action, verified."""
    from hub import journal, ledger
    from hub.ledger import RequestKind, TaskState
    from pipelines import requests
    from pipelines.resources import ConnectorsResource
    from tests.pipelines.jobs import file_request

    store, policy = hub
    rid = file_request(store, RequestKind.ERASURE, AINO_EMAIL, name="Aino Virtanen")
    with store.session() as session:
        ledger.ensure_tasks(session, ledger.get_request(session, rid), ["app_database"])
    real = requests._journal_writer
    attempts: list[int] = []

    def dies_after_journalling(store: Any, request_id: str, attempt: int) -> Any:
        write = real(store, request_id, attempt)
        attempts.append(attempt)

        def once(done: RecordOutcome) -> None:
            write(done)
            if len(attempts) == 1 and done.action == Action.ANONYMISED:
                raise requests.TaskStopped("killed after journalling")
        return once

    monkeypatch.setattr(requests, "_journal_writer", dies_after_journalling)
    with pytest.raises(requests.TaskFailed):
        requests.run_task(store, ConnectorsResource(), policy, rid, "app_database",
                          last_attempt=False)
    assert db.user(1)["email"] is None  # done at the database, and journalled
    summary = requests.run_task(store, ConnectorsResource(), policy, rid, "app_database",
                                last_attempt=True)
    assert summary["state"] == TaskState.RETAINED.value and summary["verified"]
    assert summary["action"] == Action.RETAINED.value
    with store.session() as session:
        task = ledger.get_task(session, rid, "app_database")
        done = journal.actions(session, rid, "app_database")
    records = {(r["kind"], r["record_id"]): r for r in task.evidence["records"]}
    assert records[("users", "1")]["action"] == "anonymised"
    for order in ("10", "11"):
        assert records[("orders", order)]["action"] == "retained"
        assert records[("orders", order)]["retained_until"] == "2032-12-31"
        assert records[("orders", order)]["legal_basis"].startswith("Kirjanpitolaki")
    assert ("users", "1", Action.ANONYMISED) in {
        (r.ref.kind, r.ref.record_id, r.action) for r in done}
    assert task.evidence["vendor"]["kept_child_rows"] == {"orders": 2}
