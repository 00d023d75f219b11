"""The hub's tables (SQLAlchemy 2, typed). Alembic migrations mirror these.

What is deliberately absent: vendor payloads (rule 6). The index holds
identifiers, a display name and pointers; requests hold the subject's identifiers
only until they complete, then keyed hashes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite forgets the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


BigId = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    pass


class SourceRecordRow(Base):
    __tablename__ = "source_records"
    __table_args__ = (
        UniqueConstraint("system", "record_id", name="uq_source_records_system_record"),
        # Partial (migration 0011): searched only for a person and for dirty records,
        # and a full build writes every record twice; rows outside cost no entry.
        Index("ix_source_records_person", "person_id",
              sqlite_where=text("person_id IS NOT NULL"),
              postgresql_where=text("person_id IS NOT NULL")),
        Index("ix_source_records_dirty", "dirty", sqlite_where=text("dirty = TRUE"),
              postgresql_where=text("dirty = TRUE")),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    system: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[str] = mapped_column(String(160))
    display_name: Mapped[str | None] = mapped_column(String(255))
    name_key: Mapped[str | None] = mapped_column(String(255))
    vendor_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    content_hash: Mapped[str] = mapped_column(String(32))
    # Hash of the identifiers alone: a change here, and only here, re-clusters.
    ident_hash: Mapped[str] = mapped_column(String(32))
    seen_sync: Mapped[int] = mapped_column(Integer, default=0)
    gone_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    person_id: Mapped[str | None] = mapped_column(String(32))
    dirty: Mapped[bool] = mapped_column(Boolean, default=True)
    # Marketing consent as last synced (None: the system sends no marketing); what the
    # reconciliation compares with the opt-out list.
    subscribed: Mapped[bool | None] = mapped_column(Boolean)
    # Special categories (art. 9) the record hints at, comma-joined names
    # (hub.categories); a flag for people to look, never the words themselves.
    categories: Mapped[str | None] = mapped_column(String(120))


class RecordIdentifierRow(Base):
    __tablename__ = "record_identifiers"
    # Without a rowid on SQLite the primary key is the table (one B-tree less to
    # write per identifier), and the value index holds the pk: clustering reads
    # identifiers in value order from the index alone.
    __table_args__ = (Index("ix_record_identifiers_value", "kind", "value"),
                      {"sqlite_with_rowid": False})

    record_pk: Mapped[int] = mapped_column(
        BigId, ForeignKey("source_records.pk", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(320), primary_key=True)


class PersonRow(Base):
    __tablename__ = "persons"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    record_count: Mapped[int] = mapped_column(Integer, default=0)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retired_into: Mapped[str | None] = mapped_column(String(32))


class PersonLineageRow(Base):
    """Merges and splits of persons, so an id that disappears can be followed."""

    __tablename__ = "person_lineage"

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(16))
    person_id: Mapped[str] = mapped_column(String(32), index=True)
    other_person_id: Mapped[str] = mapped_column(String(32), index=True)
    records: Mapped[int] = mapped_column(Integer)


class SyncStateRow(Base):
    __tablename__ = "sync_state"

    system: Mapped[str] = mapped_column(String(32), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(String(255))
    sync_counter: Mapped[int] = mapped_column(Integer, default=0)
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_full_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SubjectRequestRow(Base):
    __tablename__ = "subject_requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(24), index=True)
    origin: Mapped[str] = mapped_column(String(24), default="manual")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_on: Mapped[date] = mapped_column(Date)
    extended_due_on: Mapped[date | None] = mapped_column(Date)
    extension_reason: Mapped[str | None] = mapped_column(Text)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    state_reason: Mapped[str | None] = mapped_column(Text)
    subject_name: Mapped[str | None] = mapped_column(String(255))
    person_id: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Bumped each time an operator's decision lets the request run again: the sensor's
    # run key, so Dagster launches the next round instead of deduplicating it away.
    run_round: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # How the request arrived (email, letter, phone, desk) and the language the subject
    # is answered in (fi, sv, en): the letters follow both.
    channel: Mapped[str] = mapped_column(String(16), default="email", server_default="email")
    language: Mapped[str] = mapped_column(String(2), default="fi", server_default="fi")
    # A repeated access request in one calendar year: the first is free (controller D),
    # a later one may be charged for; the operator decides. None = not a repeat.
    chargeable: Mapped[bool | None] = mapped_column(Boolean)
    # Where a letter by post goes (name, street, postcode and town, as written on the
    # envelope); scrubbed with the identifiers when the request settles.
    postal_address: Mapped[str | None] = mapped_column(Text)


class RequestIdentifierRow(Base):
    """A subject's identifier: the value until the request completes, the hash always."""

    __tablename__ = "request_identifiers"
    __table_args__ = (Index("ix_request_identifiers_hash", "hash"),)

    request_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("subject_requests.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str | None] = mapped_column(String(320))
    masked: Mapped[str] = mapped_column(String(320))
    # "given": typed by the operator, what the request acts on; "found": read on a
    # record the request erased, kept (hashed, after scrubbing) for suppression.
    source: Mapped[str] = mapped_column(String(8), default="given", server_default="given")
    # Another person uses it too (a switchboard, info@): never suppressed, never used to
    # drop index records, or the colleague would be "erased" next.
    shared: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class TaskRow(Base):
    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("request_id", "system", name="uq_tasks_request_system"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("subject_requests.id", ondelete="CASCADE"), index=True
    )
    system: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(24), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    action: Mapped[str | None] = mapped_column(String(32))
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReviewItemRow(Base):
    """A record a request reached but may not act on until an operator decides (rule 9).

    Why it matched is masked text; the decision, who made it and when are kept.
    """

    __tablename__ = "review_items"
    __table_args__ = (UniqueConstraint("request_id", "system", "kind", "container", "record_id",
                                       name="uq_review_items_record"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("subject_requests.id", ondelete="CASCADE"), index=True
    )
    system: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    container: Mapped[str] = mapped_column(String(160), default="")
    record_id: Mapped[str] = mapped_column(String(160))
    reason: Mapped[str] = mapped_column(Text)
    decision: Mapped[str] = mapped_column(String(16), default="pending")
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TaskActionRow(Base):
    """The journal: each record a task set out to act on, and each action the vendor
    confirmed, written before the next one (rule 3), so a retry resumes from it."""

    __tablename__ = "task_actions"
    __table_args__ = (Index("ix_task_actions_task", "request_id", "system"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("subject_requests.id", ondelete="CASCADE")
    )
    system: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    container: Mapped[str] = mapped_column(String(160), default="")
    record_id: Mapped[str] = mapped_column(String(160))
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    status_code: Mapped[int | None] = mapped_column(Integer)
    vendor_request_id: Mapped[str | None] = mapped_column(String(160))
    legal_basis: Mapped[str | None] = mapped_column(Text)
    retained_until: Mapped[date | None] = mapped_column(Date)
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class SuppressionRow(Base):
    __tablename__ = "suppressions"

    hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(16), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RequestCorrectionRow(Base):
    """A corrected value a rectification request carries (art. 16): personal data, kept
    like the identifiers, plaintext until the request settles, then dropped (``value``
    None; the masked form stays for the operator and the audit)."""

    __tablename__ = "request_corrections"

    request_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("subject_requests.id", ondelete="CASCADE"), primary_key=True
    )
    field: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)
    masked: Mapped[str] = mapped_column(String(320))


class RestrictedRecordRow(Base):
    """An index record whose person's processing is restricted (art. 18): a pointer,
    like a legal hold, so the sync leaves the record as it was while restricted."""

    __tablename__ = "restricted_records"

    system: Mapped[str] = mapped_column(String(32), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(160), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LegalHoldRow(Base):
    """A record kept at a vendor by law after an erasure: a pointer, basis and end date.

    The reconciliation must not mistake a held record for a reappearance, and the
    hold's end is when the record becomes erasable.
    """

    __tablename__ = "legal_holds"

    system: Mapped[str] = mapped_column(String(32), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(160), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    legal_basis: Mapped[str] = mapped_column(Text)
    held_until: Mapped[date] = mapped_column(Date, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditEventRow(Base):
    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(32), index=True)
    payload: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    """The chain's tip: a row to lock while appending, and proof of the last event."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigId)
    hash: Mapped[str] = mapped_column(String(64))


class DeskUserRow(Base):
    """Someone who signs in to the desk (desk/auth.py): a name, an argon2 hash, a role.

    The failed-login count and the lock are here, not in a session, so a lockout holds
    across browsers, cookies thrown away and restarts of the desk.
    """

    __tablename__ = "desk_users"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    # The user's language for the desk's pages (fi, en); None: the browser's.
    language: Mapped[str | None] = mapped_column(String(2))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DeskSessionRow(Base):
    """A signed-in session of the desk, so that logging out ends it everywhere.

    The cookie holds a random token; only its SHA-256 is kept here, so a copy of the
    database signs nobody in. Deleting the row (logout, or the user) ends the session
    even for a copied cookie, which a signed cookie alone could not.
    """

    __tablename__ = "desk_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(
        String(64), ForeignKey("desk_users.name", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LetterRow(Base):
    """A letter to a subject or to the ops staff, queued until it is delivered.

    The recipient and the rendered body are personal data: they are kept in plain
    text only until the letter is sent, then replaced by a masked recipient and keyed
    hashes (`hub.outbox.scrub_sent`), like a request's identifiers (rule 6). The
    subject line names the request id only. ``key`` makes queuing idempotent: one
    acknowledgement per request, one digest per day, one alert per failed attempt.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "state", "next_attempt_at"),
                      UniqueConstraint("key", name="uq_outbox_key"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(160))
    kind: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("subject_requests.id", ondelete="CASCADE"), index=True)
    language: Mapped[str] = mapped_column(String(2))
    channel: Mapped[str] = mapped_column(String(8))
    recipient: Mapped[str | None] = mapped_column(Text)
    recipient_masked: Mapped[str] = mapped_column(String(320))
    recipient_hash: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str | None] = mapped_column(Text)
    body_hash: Mapped[str] = mapped_column(String(64))
    # Files under HUB_HOME sent with the letter (an access bundle), relative paths.
    attachments: Mapped[list[str] | None] = mapped_column(JSON)
    # The printable PDF of a letter by post, relative to HUB_HOME, once written.
    document: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class VendorGateRow(Base):
    """A vendor account's pace (seat -1: when its next call may start) and its seats
    (0..n-1: who holds each call in flight, until when), shared by every process that
    calls the vendor (``connectors.gates``). Nothing personal: the key is a system and
    a hash of the account's address and credential. On SQLite the gates use a file of
    their own, and this table stays empty."""

    __tablename__ = "vendor_gates"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    seat: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    next_at: Mapped[float] = mapped_column(Float)
    holder: Mapped[str | None] = mapped_column(String(100))
    held_until: Mapped[float | None] = mapped_column(Float)
