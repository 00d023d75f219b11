"""Breach impact: whose data one system holds (since a date), and when to notify.

GDPR art. 33 gives the controller 72 hours from becoming aware of a breach to notify
the supervisory authority (in Finland, the Data Protection Ombudsman), and art. 34
asks it to tell the people affected. Both start from the same question: whose data
is in the breached system. The person index answers it without asking the vendor,
which may be the very system that is down or compromised.

What the answer can and cannot say:

- It is the index as of the system's last sync (`Impact.indexed_at`): records added
  at the vendor after that are not in it.
- `since` keeps the records the vendor last changed on or after that day (the
  controller's calendar). A record without a vendor update time may have changed any
  time, so it is kept too and counted as `undated`: leaving it out would understate a
  breach, and an overstated count costs only a closer look.
- Special categories of data (art. 9: health, union membership, ...) are counted from
  the index's flags (hub/categories.py: a sync flags what a record hints at, by name
  only); a system whose connector does not look for them has none flagged.
- A system without an API (a paper archive, rule 10) has nothing in the index; its
  impact is zero records with `by_hand` set, which says so rather than "nobody".

Every query is written to the audit trail (who, when, which system, whether plaintext
was shown, the counts): looking at whose data was exposed is itself a use of it.
The payload holds counts only, never an identifier.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from hub import audit
from hub.domain import Identifier, IdentifierKind
from hub.identity import mask, mask_text
from hub.models import RecordIdentifierRow, SourceRecordRow, SyncStateRow

# GDPR art. 33(1): "without undue delay and, where feasible, not later than 72 hours
# after having become aware of it". Elapsed hours, so a DST change moves the clock
# time of the deadline, never its length.
NOTIFY_WITHIN = timedelta(hours=72)
DETECTED_FORMAT = "%Y-%m-%d %H:%M"

SR = SourceRecordRow
RI = RecordIdentifierRow


class UnknownSystem(ValueError):
    """The system named is not declared; the message lists those that are."""


@dataclass(frozen=True)
class AffectedPerson:
    """One person of the index with records in the system; values masked unless revealed.

    `person_id` is None for a record the index has not clustered yet: it stands alone.
    """

    person_id: str | None
    record_ids: tuple[str, ...]
    identifiers: tuple[str, ...]
    name: str | None


@dataclass(frozen=True)
class Impact:
    system: str
    since: date | None
    detected_at: datetime
    notify_by: datetime
    indexed_at: datetime | None
    by_hand: bool
    records: int
    undated: int
    identifiers: dict[str, int]
    categories: dict[str, int]
    people: tuple[AffectedPerson, ...]
    revealed: bool

    @property
    def persons(self) -> int:
        return len(self.people)

    def counts(self) -> dict[str, Any]:
        """Counts and dates only: what the audit trail and Dagster may keep (rule 7)."""
        return {
            "system": self.system,
            "since": self.since.isoformat() if self.since else None,
            "detected_at": self.detected_at.isoformat(timespec="minutes"),
            "notify_by": self.notify_by.isoformat(timespec="minutes"),
            "indexed_at": (self.indexed_at.isoformat(timespec="seconds")
                           if self.indexed_at else None),
            "by_hand": self.by_hand,
            "records": self.records,
            "undated_records": self.undated,
            "persons": self.persons,
            "identifiers": dict(self.identifiers),
            "categories": dict(self.categories),
        }


def notify_by(detected_at: datetime, timezone: str) -> datetime:
    """72 hours after detection, shown on the controller's clock (art. 33(1))."""
    if detected_at.tzinfo is None:
        raise ValueError("the detection time needs its time zone")
    return (detected_at.astimezone(UTC) + NOTIFY_WITHIN).astimezone(ZoneInfo(timezone))


def parse_since(text: str, *, name: str = "--since") -> date:
    """`YYYY-MM-DD`, or a ValueError that names the option (`name`) and what it takes."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{name} is a date as YYYY-MM-DD, not {text!r}") from None


def parse_detected(text: str, timezone: str, *, now: datetime, name: str = "--detected"
                   ) -> datetime:
    """`YYYY-MM-DD HH:MM` on the controller's clock, as the operator reads it off theirs.

    A time the clock skipped (spring forward) is refused rather than guessed; a time it
    showed twice (fall back) is the earlier one, which gives the earlier deadline. A
    detection in the future is a typing error, not a plan.
    """
    zone = ZoneInfo(timezone)
    try:
        wall = datetime.strptime(text.strip(), DETECTED_FORMAT)
    except ValueError:
        raise ValueError(f"{name} is a local time as \"YYYY-MM-DD HH:MM\", not "
                         f"{text!r}") from None
    # In UTC at once: a local time the clock showed twice compares unequal to everything
    # (PEP 495), so it must not travel as one.
    moment = wall.replace(tzinfo=zone).astimezone(UTC)
    if moment.astimezone(zone).replace(tzinfo=None) != wall:
        raise ValueError(f"{name} {text.strip()} did not happen in {timezone}: the "
                         "clocks skipped that hour; give the time as the clock showed it")
    if moment > now:
        raise ValueError(f"{name} {text.strip()} is in the future ({timezone})")
    return moment


def declared_systems(connectors: Collection[str], manual: Collection[str]
                     ) -> dict[str, bool]:
    """Every system a breach can be in, each with whether it is kept by hand."""
    return {**dict.fromkeys(connectors, False), **dict.fromkeys(manual, True)}


def check_system(system: str, declared: Collection[str]) -> None:
    """Refuse a system nobody declared, naming those that are (a typo is not "nobody")."""
    if system not in declared:
        known = ", ".join(sorted(declared)) or "none"
        raise UnknownSystem(f"unknown system {system!r}; declared systems: {known}")


def impact(session: Session, system: str, *, since: date | None, detected_at: datetime,
           declared: dict[str, bool], timezone: str, actor: str, reveal: bool = False,
           now: datetime | None = None) -> Impact:
    """Whose data `system` holds per the index, and the art. 33 deadline; audited.

    `declared` is `declared_systems(...)` from the layer that knows the connectors (the
    hub cannot import them). Identifiers and names are masked unless `reveal`, which is
    for the DPO at a terminal and is recorded as such.
    """
    check_system(system, declared)
    zone = ZoneInfo(timezone)
    rows = _records(session, system, since, zone)
    idents = _identifiers(session, system, since, zone)
    result = Impact(
        system=system, since=since, detected_at=detected_at.astimezone(zone),
        notify_by=notify_by(detected_at, timezone), indexed_at=_indexed_at(session, system),
        by_hand=declared[system], records=len(rows),
        undated=sum(1 for r in rows if r.vendor_updated_at is None),
        identifiers=_by_kind(idents),
        categories=_categories(rows),
        people=_people(rows, idents, reveal=reveal), revealed=reveal,
    )
    audit.append(session, "breach.queried", {**result.counts(), "revealed": reveal},
                 actor=actor or "unknown", now=now)
    return result


def _window(since: date | None, zone: ZoneInfo) -> list[Any]:
    where: list[Any] = [SR.gone_at.is_(None)]
    if since is not None:
        start = datetime.combine(since, time(0), tzinfo=zone).astimezone(UTC)
        where.append(or_(SR.vendor_updated_at >= start, SR.vendor_updated_at.is_(None)))
    return where


def _records(session: Session, system: str, since: date | None, zone: ZoneInfo) -> list[Any]:
    return list(session.execute(
        select(SR.pk, SR.record_id, SR.person_id, SR.display_name, SR.vendor_updated_at,
               SR.categories)
        .where(SR.system == system, *_window(since, zone))
        .order_by(SR.record_id)
    ))


def _identifiers(session: Session, system: str, since: date | None, zone: ZoneInfo
                 ) -> list[tuple[int, str, str]]:
    return [(pk, kind, value) for pk, kind, value in session.execute(
        select(RI.record_pk, RI.kind, RI.value).join(SR, SR.pk == RI.record_pk)
        .where(SR.system == system, *_window(since, zone))
        .order_by(RI.record_pk, RI.kind, RI.value)
    )]


def _by_kind(idents: list[tuple[int, str, str]]) -> dict[str, int]:
    """Distinct identifiers per kind: an address on two records is one address exposed."""
    return dict(sorted(Counter(kind for kind, _ in {(k, v) for _, k, v in idents}).items()))


def _indexed_at(session: Session, system: str) -> datetime | None:
    state = session.get(SyncStateRow, system)
    return state.last_sync_at if state else None


def _categories(rows: list[Any]) -> dict[str, int]:
    """Records per special category (art. 9) the index flagged, by name."""
    counted = Counter(name for row in rows if row.categories
                      for name in row.categories.split(","))
    return dict(sorted(counted.items()))


def _people(rows: list[Any], idents: list[tuple[int, str, str]], *, reveal: bool
            ) -> tuple[AffectedPerson, ...]:
    """The records grouped by index person; a record not clustered yet stands alone."""
    held: dict[int, list[Identifier]] = {}
    for pk, kind, value in idents:
        held.setdefault(pk, []).append(Identifier(IdentifierKind(kind), value))
    groups: dict[tuple[str | None, int | None], list[Any]] = {}
    for row in rows:
        key = (row.person_id, None) if row.person_id else (None, row.pk)
        groups.setdefault(key, []).append(row)
    people = []
    for (person_id, _), members in groups.items():
        found = dict.fromkeys(i for r in members for i in held.get(r.pk, []))
        names = sorted({r.display_name for r in members if r.display_name})
        people.append(AffectedPerson(
            person_id=person_id, record_ids=tuple(r.record_id for r in members),
            identifiers=tuple(i.value if reveal else mask(i) for i in found),
            name=" / ".join(n if reveal else mask_text(n) for n in names) or None,
        ))
    # Clustered persons by id, then the unclustered records: the same order on every
    # backend (SQLite and PostgreSQL sort NULL at opposite ends).
    return tuple(sorted(people, key=lambda p: (p.person_id is None, p.person_id or "",
                                               p.record_ids)))
