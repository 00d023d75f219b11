"""Objections to being published in lists: attendee lists, mailing labels (art. 21).

Controllers B and E promise that a person may forbid publishing them in lists. The
hub records the objection as keyed hashes of their identifiers (the suppression list,
reason ``lists``: no personal data kept), in the audit trail with who recorded it, and
answers the question the office asks before printing a list: who on it has objected?
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub import audit, suppression
from hub.domain import Identifier, IdentifierKind
from hub.hashing import Hasher
from hub.identity import InvalidIdentifier, mask, parse_email, parse_phone
from hub.models import SuppressionRow

LISTS = "lists"
_CELLS = re.compile(r"[,;\t|]")


def record(session: Session, hasher: Hasher, identifiers: Sequence[Identifier], *,
           actor: str, request_id: str | None = None) -> int:
    """Record the objection; returns how many identifiers were new to it."""
    added = suppression.add(session, hasher, identifiers, reason=LISTS, request_id=request_id)
    audit.append(session, "objection.lists", {"identifiers": [mask(i) for i in identifiers],
                                              "added": added},
                 request_id=request_id, actor=actor)
    return added


def objected(session: Session, hasher: Hasher, identifiers: Iterable[Identifier]) -> bool:
    return any(suppression.is_suppressed(session, hasher, i, LISTS) for i in identifiers)


def count(session: Session) -> int:
    """How many identifiers carry an objection (hashes: people cannot be listed back)."""
    return int(session.execute(select(func.count()).select_from(SuppressionRow)
                               .where(SuppressionRow.reason == LISTS)).scalar_one())


@dataclass(frozen=True)
class Flagged:
    """A row of a list to be published whose person has objected."""

    row: int
    masked: tuple[str, ...]


def identifiers_in(cells: Iterable[str]) -> list[Identifier]:
    """The e-mails and phones a row of a list holds, whatever its columns are called."""
    found: list[Identifier] = []
    for cell in cells:
        text = (cell or "").strip()
        if not text:
            continue
        for kind, parse in ((IdentifierKind.EMAIL, parse_email),
                            (IdentifierKind.PHONE, parse_phone)):
            try:
                found.append(Identifier(kind, parse(text)))
                break
            except InvalidIdentifier:
                continue
    return found


def screen(session: Session, hasher: Hasher, table: str) -> tuple[int, list[Flagged]]:
    """Check a list (CSV, or one entry per line) before it is published: (rows read,
    rows whose person objected). Rows are numbered as a spreadsheet shows them.

    Cells are split on any of , ; tab |: a Finnish Excel saves CSV with semicolons, and
    a list read with the wrong separator would find nobody and clear everyone.
    """
    rows = table.splitlines()
    flagged = []
    for number, line in enumerate(rows, start=1):
        found = identifiers_in(cell.strip().strip('"') for cell in _CELLS.split(line))
        if found and objected(session, hasher, found):
            flagged.append(Flagged(number, tuple(mask(i) for i in found)))
    return len(rows), flagged
