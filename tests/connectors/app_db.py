"""The own application's database as tests see it: its schema, its seed, and an
inspector that reads it back with SQL (what ``/__sandbox/`` is to a vendor emulator).

Controller A's application keeps user accounts (``users``) and the orders they placed
(``orders``); the sandbox persona Aino Virtanen is user 1 with two orders. Shared by
the contract suite (test_contract.py) and the database-specific tests
(test_app_database.py).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    event,
    func,
    select,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "connectors" / "app_database" / "example_mapping.toml"
PACKAGE = "connectors.app_database"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
# What the example mapping needs of the policy: the orders it keeps are vouchers,
# held six years from the end of the year of the last one (Kirjanpitolaki 2:10).
POLICY_SECTION = """
[systems.app_database]
erase = "anonymise"
retention_years = 6
retention_basis = "Kirjanpitolaki (1336/1997) 2 luku 10 §; GDPR art. 17(3)(b)"
legal_basis = "GDPR art. 6(1)(b) contract"
"""

metadata = MetaData()
USERS = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(200), nullable=True),
    Column("phone", String(40), nullable=True),
    Column("first_name", String(100), nullable=False),
    Column("last_name", String(100), nullable=False),
    Column("marketing_consent", Boolean, nullable=False),
    Column("processing_restricted", Boolean, nullable=False, default=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("erased_at", DateTime(timezone=True), nullable=True),
)
ORDERS = Table(
    "orders", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("product", String(100), nullable=False),
    Column("amount", Numeric(10, 2), nullable=False),
    Column("ordered_on", Date, nullable=False),
)
# Aino writes her number the Finnish way and her address in capitals; Mikko's number
# ends in the same seven digits (a candidate the suffix search fetches, Python drops).
PEOPLE = [
    {"id": 1, "email": "Aino.Virtanen@Example.fi", "phone": "040 123 4567",
     "first_name": "Aino", "last_name": "Virtanen", "marketing_consent": True},
    {"id": 2, "email": "mikko.korhonen@example.fi", "phone": "+358 50 123 4567",
     "first_name": "Mikko", "last_name": "Korhonen", "marketing_consent": True},
    {"id": 3, "email": "liisa.makinen@example.fi", "phone": None,
     "first_name": "Liisa", "last_name": "Mäkinen", "marketing_consent": False},
]
ORDER_ROWS = [
    {"id": 10, "user_id": 1, "product": "Coaching, 5 sessions", "amount": "450.00",
     "ordered_on": date(2026, 3, 4)},
    {"id": 11, "user_id": 1, "product": "Leadership course", "amount": "890.00",
     "ordered_on": date(2026, 9, 1)},
    {"id": 12, "user_id": 2, "product": "Leadership course", "amount": "890.00",
     "ordered_on": date(2026, 9, 1)},
]
WRITE_VERBS = ("INSERT", "UPDATE", "DELETE")


def seed(engine: Engine) -> None:
    """The tables as the seed has them: dropped (with any trigger a test added), made
    again and filled, so one schema serves a whole test module."""
    metadata.drop_all(engine)
    metadata.create_all(engine)
    with engine.begin() as c:
        c.execute(USERS.insert(), [{**p, "processing_restricted": False,
                                    "updated_at": T0 + timedelta(hours=p["id"])}
                                   for p in PEOPLE])
        c.execute(ORDERS.insert(), ORDER_ROWS)


class DatabaseInspector:
    """The database read back with SQL, and the writes anyone else sent it.

    Writes are counted at the driver for every engine on this database except the
    inspector's own: the connector's statements, whatever it thinks it did.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self._writes = 0
        event.listen(Engine, "before_cursor_execute", self._saw)

    def _saw(self, conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if conn.engine is self.engine or str(conn.engine.url) != str(self.engine.url):
            return
        if statement.lstrip().split(None, 1)[0].upper() in WRITE_VERBS:
            self._writes += 1

    def reset(self) -> None:
        seed(self.engine)
        self._writes = 0

    @property
    def writes(self) -> int:
        return self._writes

    def users(self, email: str) -> set[str]:
        """Ids of the accounts whose e-mail is ``email`` (any case)."""
        with self.engine.connect() as c:
            return {str(i) for i in c.execute(select(USERS.c.id).where(
                func.lower(USERS.c.email) == email.lower())).scalars()}

    def record(self, kind: str, rid: str) -> dict[str, Any] | None:
        table = {"users": USERS, "orders": ORDERS}[kind]
        with self.engine.connect() as c:
            row = c.execute(select(table).where(table.c.id == int(rid))).mappings().first()
        return dict(row) if row else None

    def close(self) -> None:
        event.remove(Engine, "before_cursor_execute", self._saw)
        self.engine.dispose()
