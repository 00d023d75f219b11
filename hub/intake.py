"""Filing a request as an operator types it: at a terminal (`hub request new`) or the desk.

Both shells read the same fields (identifiers, a name, the receipt time in the
company's clock, channel and language) and must refuse and warn alike, so the rules
live here once: every identifier typed is kept, a name too long for its column is
refused without being echoed, an open request of the same kind for the subject is a
duplicate unless the operator says it is meant, and a repeated access request in the
same year is flagged chargeable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from hub import duplicates, ledger
from hub.deadlines import local_date
from hub.domain import Corrections, Identifier, IdentifierKind
from hub.hashing import Hasher
from hub.identity import (
    InvalidIdentifier,
    normalise_name,
    parse_address,
    parse_email,
    parse_phone,
)
from hub.ledger import Channel, Language, LedgerError, RequestKind
from hub.models import SubjectRequestRow

T = TypeVar("T")

KIND_NAMES = {"access": RequestKind.ACCESS, "erasure": RequestKind.ERASURE,
              "opt-out": RequestKind.OPT_OUT, "opt_out": RequestKind.OPT_OUT,
              "rectification": RequestKind.RECTIFICATION,
              "restriction": RequestKind.RESTRICTION}


class DuplicateRequest(LedgerError):
    """An open request of the same kind exists for the subject; `ids` names them."""

    def __init__(self, kind: RequestKind, ids: Sequence[str]) -> None:
        self.ids = tuple(ids)
        super().__init__(f"this subject already has an open {kind.value} request: "
                         f"{', '.join(ids)}")


@dataclass(frozen=True)
class Filed:
    """A request just filed, and its number among the subject's access requests this year."""

    row: SubjectRequestRow
    number: int


def request_kind(text: str) -> RequestKind:
    kind = KIND_NAMES.get(text.strip().lower())
    if kind is None:
        raise LedgerError(f"unknown request kind {text!r}: use access, erasure, opt-out, "
                          "rectification or restriction")
    return kind


def corrections(kind: RequestKind, *, email: str | None, phone: str | None,
                name: str | None, address: str | None,
                fields: tuple[str, str, str, str] = ("the corrected e-mail",
                                                     "the corrected phone",
                                                     "the corrected name",
                                                     "the corrected address")
                ) -> Corrections | None:
    """The corrected values typed, validated like the identifiers; only a rectification
    takes them, and it needs at least one (the ledger says so)."""
    given = dict(zip(fields, (email, phone, name, address), strict=True))
    if kind != RequestKind.RECTIFICATION:
        typed = [field for field, value in given.items() if value is not None]
        if typed:
            raise LedgerError(f"{', '.join(typed)}: only a rectification carries corrected "
                              "values")
        return None
    if name is not None and not name.strip():
        raise LedgerError(f"{fields[2]} is empty")
    return Corrections(email=_parsed(parse_email, email, fields[0]),
                       phone=_parsed(parse_phone, phone, fields[1]),
                       name=subject_name(name, fields[2]),
                       address=_parsed(parse_address, address, fields[3]))


def _parsed(parse: Callable[[str], T], value: str | None, field: str) -> T | None:
    """The value parsed, or a refusal that names the field (the subject's own e-mail
    and the corrected one are both on the form)."""
    if value is None:
        return None
    try:
        return parse(value)
    except InvalidIdentifier as exc:
        raise InvalidIdentifier(f"{field}: {exc}") from None


def identifiers(emails: Sequence[str] | None, phones: Sequence[str] | None
                ) -> list[Identifier]:
    """Every identifier typed, normalised, each once: nothing the operator gave is dropped."""
    found = [Identifier(IdentifierKind.EMAIL, parse_email(e)) for e in emails or []]
    found += [Identifier(IdentifierKind.PHONE, parse_phone(p)) for p in phones or []]
    if not found:
        raise InvalidIdentifier("give the subject's e-mail address or phone number (or both)")
    return list(dict.fromkeys(found))


def subject_name(name: str | None, field: str = "the name") -> str | None:
    """The name as stored, refused (without echoing it) when its column cannot hold it."""
    if name is None or not name.strip():
        return None
    normalised = normalise_name(name)
    limit = SubjectRequestRow.__table__.c.subject_name.type.length
    if limit is not None and len(normalised) > limit:
        raise LedgerError(f"{field} is {len(normalised)} characters; at most {limit} are kept")
    return normalised


def received(text: str | None, timezone: str, field: str = "the receipt date"
             ) -> datetime | None:
    """The receipt time typed by an operator, read in the company's time zone."""
    if text is None or not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise LedgerError(f"{field} is YYYY-MM-DD or YYYY-MM-DD HH:MM, not {text!r}"
                          ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment.astimezone(UTC)


def choice(enum: type[Channel] | type[Language], value: str, field: str
           ) -> Channel | Language:
    try:
        return enum(value.strip().lower())
    except ValueError:
        raise LedgerError(f"{field} is one of {', '.join(enum)}, not {value!r}") from None


def file_request(session: Session, hasher: Hasher, kind: RequestKind,
                 subject: Sequence[Identifier], *, name: str | None,
                 received_at: datetime | None, channel: Channel, language: Language,
                 timezone: str, allow_duplicate: bool = False,
                 actor: str = "operator", corrections: Corrections | None = None,
                 postal_address: str | None = None) -> Filed:
    """File the request; DuplicateRequest (nothing written) when one is already open."""
    open_ones = duplicates.open_duplicates(session, hasher, kind, subject)
    if open_ones and not allow_duplicate:
        raise DuplicateRequest(kind, open_ones)
    row = ledger.create_request(session, hasher, kind, subject, name=name, timezone=timezone,
                                received_at=received_at, channel=channel, language=language,
                                actor=actor, corrections=corrections,
                                postal_address=postal_address)
    number = ledger.flag_repeat_access(session, hasher, row,
                                       duplicates.same_subject(session, subject),
                                       timezone=timezone)
    return Filed(row, number)


def postal_address(text: str | None) -> str | None:
    """An address typed on one line or several: lines split on newlines or " / "."""
    if text is None:
        return None
    lines = [line.strip() for line in text.replace(" / ", "\n").splitlines() if line.strip()]
    return "\n".join(lines) or None


def receipt_year(row: SubjectRequestRow, timezone: str) -> int:
    return local_date(row.received_at, timezone).year
