"""The Connector protocol: what every system offers the hub, each a plain method.

A connector is a context manager owning its HTTP client; the Dagster layer
treats every system alike through this protocol:

- ``check()``: credentials and reachability, one cheap call (raises the taxonomy);
- ``sync(since)``: the system's people as ``SourceRecord`` pages, incremental from
  the cursor the hub stored (None = full pass), each page with the cursor to
  resume from;
- ``find(identifiers)``: live lookup by every e-mail and phone;
- ``export(refs)``: everything held, vendor field names kept;
- ``erase(refs, policy)`` / ``opt_out(refs)``: act, read back, report per record.
  Not found is a success (``Action.NOT_FOUND``); doing it twice is harmless.
  Their evidence has one shape (:meth:`ConnectorBase.outcome`): ``counts`` per
  action, ``api_calls`` the operation made, then what is particular to the vendor.
- ``rectify(refs, corrections)``: write the corrected values (art. 16) to every
  record holding the field, read them back, say per record which fields were told;
- ``restrict(refs, lift)``: put the system's "restricted" mark on each record (art.
  18) and stop its marketing, or take the mark off again (``lift``); read back.
  A system that cannot express either answers ``Action.KEPT`` records saying so
  (:meth:`ConnectorBase.rectify`, :meth:`ConnectorBase.restrict`): its task waits
  for an operator to do it by hand and confirm.
- ``api_calls``: API calls made so far (every attempt, retries included).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from connectors.errors import NotFound
from connectors.http import HttpClient
from hub.domain import (
    Action,
    Corrections,
    Export,
    Identifier,
    IdentifierKind,
    Outcome,
    RecordOutcome,
    RecordRef,
    SyncPage,
)
from hub.identity import normalise_email, normalise_phone
from hub.policy import SystemPolicy


@runtime_checkable
class Connector(Protocol):
    system: str

    @property
    def api_calls(self) -> int: ...

    def check(self) -> None: ...

    def sync(self, since: str | None) -> Iterator[SyncPage]: ...

    def find(self, identifiers: Sequence[Identifier]) -> list[RecordRef]: ...

    def export(self, refs: Sequence[RecordRef]) -> Export: ...

    def erase(self, refs: Sequence[RecordRef], policy: SystemPolicy) -> Outcome: ...

    def opt_out(self, refs: Sequence[RecordRef]) -> Outcome: ...

    def rectify(self, refs: Sequence[RecordRef], corrections: Corrections) -> Outcome: ...

    def restrict(self, refs: Sequence[RecordRef], lift: bool) -> Outcome: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


def _no_journal(outcome: RecordOutcome) -> None:
    return None


class ConnectorBase:
    """What every connector shares: its HTTP client, call counting, closing, the action
    journal, the per-op reuse cache and the one evidence shape.

    ``journal`` is called with each action on a vendor record the moment the vendor
    confirmed it, before the next one is taken (DESIGN.md rule 3). The hub writes it
    to its database, so a retry after a lost write or a killed process resumes from
    what was done instead of finding nothing and concluding "not found". A journal
    that raises stops the connector before its next action.
    """

    system: str = ""
    journal: Callable[[RecordOutcome], None] = staticmethod(_no_journal)
    # The connector's client (connectors/http.py) when it talks HTTP itself: the base
    # counts its calls and closes it. A connector that talks otherwise (an SDK, SQL, a
    # folder) overrides `api_calls` and `close`.
    http: HttpClient | None = None
    # `api_calls` when the current operation began (see `begin`).
    _op_start: int = 0

    @property
    def api_calls(self) -> int:
        """Calls made so far, every attempt and retry included."""
        return self.http.api_calls if self.http is not None else 0

    def begin(self) -> None:
        """Mark the start of an operation (export, erase, opt-out): the ``api_calls`` of
        its evidence are the calls made from here, not since the connector was built."""
        self._op_start = self.api_calls

    @property
    def op_calls(self) -> int:
        """API calls the current operation has made (since `begin`)."""
        return self.api_calls - self._op_start

    def outcome(self, records: Sequence[RecordOutcome], verified: bool,
                **extra: Any) -> Outcome:
        """The one evidence shape of every connector's Outcome: ``counts`` per action,
        ``api_calls`` this operation made (since `begin`), then the vendor's extras."""
        counts = dict(Counter(r.action.value for r in records))
        evidence = {"counts": counts, "api_calls": self.op_calls, **extra}
        return Outcome(system=self.system, records=tuple(records), verified=verified,
                       evidence=evidence, at=now_utc())

    def settle(self, steps: Iterable[tuple[RecordOutcome, bool]], **extra: Any) -> Outcome:
        """The Outcome of acting on each record in turn: each step is the record's
        outcome and whether its read-back showed it; verified only if every one did."""
        records: list[RecordOutcome] = []
        verified = True
        for record, shown in steps:
            records.append(record)
            verified = verified and shown
        return self.outcome(records, verified, **extra)

    # The reuse cache of one op: what `find` read, whole, by the vendor's key, so the
    # access export that follows within seconds reuses it instead of reading again.
    # Erasure and opt-out write, so they drop it (`forget_found`) before writing; they
    # may first decide from it what to write (what find read seconds ago in this op,
    # each record once), and the read-back after the write proves the result.
    _found: dict[Hashable, Any] | None = None

    def remember(self, key: Hashable, value: Any) -> None:
        """Keep what `find` read under ``key`` for the export of the same op."""
        if self._found is None:
            self._found = {}
        self._found[key] = value

    def recall(self, key: Hashable) -> Any | None:
        """What `find` read under ``key`` in this op, or None."""
        return None if self._found is None else self._found.get(key)

    def forget_found(self) -> set[Hashable]:
        """Drop the reuse cache (before a write); return the keys it held."""
        keys = set(self._found or ())
        self._found = None
        return keys

    def rectify(self, refs: Sequence[RecordRef], corrections: Corrections) -> Outcome:
        """A system whose API cannot change the records: each is left to an operator
        (``kept``), so the task waits in manual_pending saying so."""
        return self.by_hand(refs, f"the {self.system} API cannot change this record: "
                                  f"correct {', '.join(corrections.fields())} by hand")

    def restrict(self, refs: Sequence[RecordRef], lift: bool) -> Outcome:
        """A system that cannot express a restriction: an operator marks (or unmarks)
        each record by hand and confirms."""
        what = "lift the restriction of" if lift else "restrict processing of"
        return self.by_hand(refs, f"{self.system} cannot express a restriction through its "
                                  f"API: {what} this record by hand")

    def by_hand(self, refs: Sequence[RecordRef], why: str) -> Outcome:
        """Every record of this system left to an operator, with why (nothing read back:
        nothing was done)."""
        self.begin()
        records = [RecordOutcome(ref, Action.KEPT, why) for ref in refs
                   if ref.system == self.system]
        return self.outcome(records, True)

    def done(self, outcome: RecordOutcome) -> RecordOutcome:
        """Journal an action the vendor confirmed; return it for the outcome list."""
        self.journal(outcome)
        return outcome

    @staticmethod
    def gone(ref: RecordRef, exc: NotFound, detail: str = "not found") -> RecordOutcome:
        """A 404 to an action: the record is not there (any more), which is an answer
        (rule 2), kept with the vendor's status and request id as evidence."""
        return RecordOutcome(ref, Action.NOT_FOUND, detail, status_code=exc.status_code,
                             vendor_request_id=exc.vendor_request_id)

    def close(self) -> None:
        if self.http is not None:
            self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def now_utc() -> datetime:
    return datetime.now(UTC)


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 / ISO 8601 / Pipedrive-v1 timestamp as an aware datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:  # the common case, fast: RFC 3339 / ISO 8601 (3.11 accepts "Z")
        parsed = datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except ValueError:
        pass
    text = value.strip().replace("Z", "+00:00")
    if " " in text and "T" not in text:
        text = text.replace(" ", "T", 1)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def wanted(identifiers: Sequence[Identifier]) -> tuple[set[str], set[str]]:
    """The normalised e-mails and E.164 phones to match against (raw phones never match)."""
    emails: set[str] = set()
    phones: set[str] = set()
    for ident in identifiers:
        if ident.kind == IdentifierKind.EMAIL:
            value = normalise_email(ident.value)
            if value:
                emails.add(value)
        elif ident.kind == IdentifierKind.PHONE:
            phone = normalise_phone(ident.value)
            if phone.kind == IdentifierKind.PHONE:
                phones.add(phone.value)
    return emails, phones


def matches(emails: Sequence[str], phones: Sequence[str], want_emails: set[str],
            want_phones: set[str]) -> bool:
    """Whether a vendor record's own values, normalised, hit any wanted identifier."""
    for raw in emails:
        if raw and normalise_email(raw) in want_emails:
            return True
    for raw in phones:
        if raw and raw.strip():
            phone = normalise_phone(raw)
            if phone.kind == IdentifierKind.PHONE and phone.value in want_phones:
                return True
    return False


def phone_variants(e164: str) -> list[str]:
    """The ways a Finnish-style number may be written in a vendor: E.164 and national
    forms, for vendors whose search needs the literal text. Filtering afterwards
    by normalised value keeps only true matches."""
    out = [e164]
    if e164.startswith("+358"):
        national = "0" + e164[4:]
        out.append(national)
        # "040 123 4567": area/operator prefix of 3, then 3 + rest.
        if len(national) >= 7:
            out.append(f"{national[:3]} {national[3:6]} {national[6:]}")
    return list(dict.fromkeys(out))
