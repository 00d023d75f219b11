"""Drift: what the nightly index shows against what the company promised.

An erased person who reappears in a system (an identifier's keyed hash is on the
suppression list for erasure) gets a new erasure request, and an opted-out person
found subscribed again gets a new opt-out: both filed verified, flagged by their
origin, so the subject-request job acts on them with evidence like any other
request. Records kept under a legal hold are not drift. Findings hold plaintext
identifiers for filing only; what leaves this module for Dagster is counts,
systems and request ids.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import audit, holds, index, ledger
from hub.domain import Identifier
from hub.hashing import Hasher
from hub.ledger import RequestKind, RequestState
from hub.models import RequestIdentifierRow, SubjectRequestRow, SuppressionRow

ORIGIN = {RequestKind.ERASURE: "reappearance", RequestKind.OPT_OUT: "resubscription"}
ACTOR = "reconciliation"
_STILL_TO_RUN = (RequestState.RECEIVED.value, RequestState.VERIFIED.value,
                 RequestState.IN_PROGRESS.value)


@dataclass(frozen=True)
class Finding:
    """A live record that breaks a promise; `identifier` is plaintext, for filing only."""

    kind: RequestKind
    system: str
    record_id: str
    person_id: str | None
    identifier: Identifier


@dataclass
class Drift:
    reappeared: list[Finding] = field(default_factory=list)
    resubscribed: list[Finding] = field(default_factory=list)

    def per_system(self, kind: RequestKind) -> dict[str, int]:
        found = self.reappeared if kind == RequestKind.ERASURE else self.resubscribed
        return dict(Counter(f.system for f in {(f.system, f.record_id): f
                                                for f in found}.values()))


@dataclass(frozen=True)
class Filing:
    """A request that answers drift: newly filed, or one already open for it."""

    request_id: str
    kind: RequestKind
    systems: tuple[str, ...]
    new: bool


def find(session: Session, hasher: Hasher, today: date) -> Drift:
    """Every live index record whose identifiers are suppressed and that breaks the promise."""
    suppressed: dict[str, set[str]] = defaultdict(set)
    for digest, reason in session.execute(select(SuppressionRow.hash, SuppressionRow.reason)):
        suppressed[digest].add(reason)
    drift = Drift()
    if not suppressed:
        return drift
    held = holds.held_records(session, today)
    shared: dict[Identifier, bool] = {}
    for item in index.live_identifiers(session):
        reasons = suppressed.get(hasher.identifier(item.identifier))
        if not reasons:
            continue
        if item.identifier not in shared:
            shared[item.identifier] = bool(index.shared_identifiers(session, [item.identifier]))
        if shared[item.identifier]:
            continue  # a switchboard or info@ address: it says nothing about who is back
        if "erasure" in reasons:
            if (item.system, item.record_id) not in held:
                drift.reappeared.append(Finding(RequestKind.ERASURE, item.system,
                                                item.record_id, item.person_id,
                                                item.identifier))
        elif reasons & {"opt_out", "restriction"} and item.subscribed:  # not lists alone
            drift.resubscribed.append(Finding(RequestKind.OPT_OUT, item.system, item.record_id,
                                              item.person_id, item.identifier))
    return drift


def _groups(findings: Sequence[Finding]) -> list[list[Finding]]:
    """One request per person (or per record the index could not cluster)."""
    grouped: dict[tuple[str, str], list[Finding]] = defaultdict(list)
    for f in findings:
        grouped[("person", f.person_id) if f.person_id else (f.system, f.record_id)].append(f)
    return list(grouped.values())


def open_request_for(session: Session, hasher: Hasher, kind: RequestKind,
                     identifiers: Sequence[Identifier]) -> str | None:
    """A request of this kind for any of these identifiers that has yet to run, if any."""
    hashes = [hasher.identifier(i) for i in identifiers]
    return session.execute(
        select(SubjectRequestRow.id).join(
            RequestIdentifierRow, RequestIdentifierRow.request_id == SubjectRequestRow.id)
        .where(SubjectRequestRow.kind == kind.value,
               SubjectRequestRow.state.in_(_STILL_TO_RUN),
               RequestIdentifierRow.hash.in_(hashes))
        .order_by(SubjectRequestRow.received_at).limit(1)
    ).scalar_one_or_none()


def act(session: Session, hasher: Hasher, drift: Drift, *, now: datetime | None = None,
        timezone: str = "Europe/Helsinki") -> list[Filing]:
    """File (verified) one request per drifting person unless one is already waiting."""
    filings = []
    for findings in (*_groups(drift.reappeared), *_groups(drift.resubscribed)):
        kind = findings[0].kind
        identifiers = list(dict.fromkeys(f.identifier for f in findings))
        systems = tuple(sorted({f.system for f in findings}))
        waiting = open_request_for(session, hasher, kind, identifiers)
        if waiting is not None:
            filings.append(Filing(waiting, kind, systems, new=False))
            continue
        row = ledger.create_request(
            session, hasher, kind, identifiers, now=now, timezone=timezone,
            origin=ORIGIN[kind],
            state_reason=f"found again by the reconciliation in {', '.join(systems)}")
        ledger.verify(session, row.id, actor=ACTOR, now=now)
        audit.append(session, f"drift.{ORIGIN[kind]}", {
            "systems": list(systems), "records": len({(f.system, f.record_id)
                                                      for f in findings}),
        }, request_id=row.id, actor=ACTOR, now=now)
        filings.append(Filing(row.id, kind, systems, new=True))
    return filings


def answered_by(session: Session, hasher: Hasher, findings: Sequence[Finding]
                ) -> tuple[list[str], int]:
    """Request ids waiting to answer these findings, and how many findings have none."""
    ids: list[str] = []
    unanswered = 0
    for group in _groups(findings):
        found = open_request_for(session, hasher, group[0].kind,
                                 [f.identifier for f in group])
        if found is None:
            unanswered += len(group)
        elif found not in ids:
            ids.append(found)
    return ids, unanswered
