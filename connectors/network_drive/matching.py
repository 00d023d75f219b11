"""Finding a person's e-mail and phone in free text, however they were written.

A phone is written in many ways in documents: ``+358 40 123 4567``, ``040-1234567``,
``(040) 123 4567``, ``0401234567``, or as a spreadsheet number that lost its leading
zero (``401234567``). Rather than list the spellings, every run of digit groups is
read as a number the way the hub reads any phone (``hub.identity.normalise_phone``),
and so is every part of a run that starts a group, so two numbers written side by
side ("040 123 4567 050 765 4321") are each found. Only numbers equal to one of the
subject's count, so a lenient reading finds more spellings without finding more
people.

E-mails are found by a pattern and compared once normalised
(``hub.identity.normalise_email``): ``Aino.Virtanen@Example.FI`` is the subject's.

Nothing here logs: what it handles is the subject's data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import phonenumbers

from hub.domain import IdentifierKind
from hub.identity import DEFAULT_REGION, mask_email, mask_phone, normalise_email, normalise_phone

EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
# Digit groups joined by the separators people type in a number.
_RUN = re.compile(r"\(?\+?\d+(?:[ \t\u00a0\-./()]{1,3}\d+)*")
_GROUP = re.compile(r"\+?\d+")
_MAX_DIGITS = 15  # E.164
_MIN_DIGITS = 6
EXCERPT = 240
"""At most this many characters of a chunk are shown around a match."""


@dataclass(frozen=True, slots=True)
class Hit:
    """The subject's identifier at ``text[start:end]``; ``value`` normalised."""

    kind: IdentifierKind
    value: str
    start: int
    end: int


def _phone(written: str) -> str | None:
    identifier = normalise_phone(written)
    return identifier.value if identifier.kind == IdentifierKind.PHONE else None


def _phone_readings(run: str) -> Iterator[tuple[str, int, int]]:
    """Every reading of a digit run as a phone: (E.164, start, end) within ``run``.

    Spans start at a group that opens a number (``+``, a leading 0) and grow group by
    group up to 15 digits. A run of one bare group ("401234567", a spreadsheet cell)
    is also read as a national number that lost its 0, or a country code without +.
    """
    groups = list(_GROUP.finditer(run))
    if len(groups) == 1 and not run.startswith(("+", "0", "(")):
        digits = run
        if _MIN_DIGITS + 2 <= len(digits) <= 10:
            reading = _phone("0" + digits)
        elif digits.startswith("358"):
            reading = _phone("+" + digits)
        else:
            reading = None
        if reading:
            yield reading, 0, len(run)
    for i, first in enumerate(groups):
        if not first.group().startswith(("+", "0")):
            continue
        digits = 0
        for last in groups[i:]:
            digits += len(last.group().lstrip("+"))
            if digits > _MAX_DIGITS:
                break
            if digits >= _MIN_DIGITS:
                start = first.start() - (run[first.start() - 1:first.start()] == "(")
                reading = _phone(run[start:last.end()])
                if reading:
                    yield reading, start, last.end()


def subject_hits(text: str, emails: set[str], phones: set[str]) -> list[Hit]:
    """Where the subject's e-mails and phones (normalised) appear in ``text``."""
    hits: list[Hit] = []
    if emails and "@" in text:
        for match in EMAIL.finditer(text):
            value = normalise_email(match.group())
            if value in emails:
                hits.append(Hit(IdentifierKind.EMAIL, value, match.start(), match.end()))
    if phones:
        for run in _RUN.finditer(text):
            taken: set[str] = set()
            for value, start, end in _phone_readings(run.group()):
                if value in phones and value not in taken:
                    taken.add(value)
                    hits.append(Hit(IdentifierKind.PHONE, value, run.start() + start,
                                    run.start() + end))
    return sorted(hits, key=lambda h: h.start)


def identifiers_in(text: str) -> tuple[list[str], list[str]]:
    """Every e-mail (normalised) and every phone (E.164) the text names, in order.

    For the sync, which looks for everyone: phones are found by phonenumbers' own
    matcher (valid numbers only, dates and sums left out), not by the lenient
    readings above, which are safe only when compared with one person's numbers.
    """
    emails = [v for m in EMAIL.finditer(text) if (v := normalise_email(m.group()))]
    phones: list[str] = []
    if sum(c.isdigit() for c in text) >= _MIN_DIGITS:
        for match in phonenumbers.PhoneNumberMatcher(text, DEFAULT_REGION):
            phones.append(phonenumbers.format_number(match.number,
                                                     phonenumbers.PhoneNumberFormat.E164))
    return list(dict.fromkeys(emails)), list(dict.fromkeys(phones))


def excerpt(text: str, hit: Hit, emails: set[str], phones: set[str],
            width: int = EXCERPT) -> str:
    """The chunk around ``hit``, at most ``width`` characters, white space collapsed,
    with anyone else's e-mail or phone in it masked: the excerpt goes to the subject,
    and another person's details are not theirs to receive (DESIGN.md rule 9)."""
    start, end = 0, len(text)
    if len(text) > width:
        start = max(0, min(hit.start - (width - (hit.end - hit.start)) // 2,
                           len(text) - width))
        end = start + width
    shown = _mask_others(text[start:end], emails, phones)
    shown = " ".join(shown.split())
    return ("…" if start else "") + shown + ("…" if end < len(text) else "")


def _mask_others(text: str, emails: set[str], phones: set[str]) -> str:
    def email(match: re.Match[str]) -> str:
        value = normalise_email(match.group())
        return match.group() if value in emails else mask_email(match.group())

    text = EMAIL.sub(email, text)
    if sum(c.isdigit() for c in text) < _MIN_DIGITS:
        return text
    others = [m for m in phonenumbers.PhoneNumberMatcher(text, DEFAULT_REGION)
              if phonenumbers.format_number(m.number, phonenumbers.PhoneNumberFormat.E164)
              not in phones]
    for match in reversed(others):
        digits = "".join(c for c in match.raw_string if c.isdigit() or c == "+")
        text = text[:match.start] + mask_phone(digits) + text[match.end:]
    return text


_NAME_PART = re.compile(r"[._\-+]")


_CAPITALISED = re.compile(r"\b([A-ZÅÄÖÜ])[a-zåäöüéè]{2,}")


def masked_unsearched(path: str, emails: set[str], phones: set[str]) -> str:
    """The path of a file the hub could not read, as every request's task lists it: on
    top of `masked_path`, every capitalised word is cut to its first letter, because
    such a file names whoever it names, and the task is not theirs (found in review:
    "Matti Meikäläinen - sopimus.docx" listed in Aino's request). The folders' shape, the
    lower-case words and the type are left for the operator to find it by."""
    return _CAPITALISED.sub(lambda m: m.group(1) + "***", masked_path(path, emails, phones))


def masked_path(path: str, emails: set[str], phones: set[str]) -> str:
    """A path as a task or evidence shows it: a file name is often a person's name.

    E-mails and phone numbers in it are masked, whoever's they are, and the subject's
    name as their e-mail spells it (``aino.virtanen@`` → ``aino``, ``virtanen``) is cut
    to its first letter, however it is inflected (``Ainon`` → ``A***n``). The folders,
    the rest of the name and the type stay: enough for an operator to find the file.
    """
    shown = _mask_others(path, set(), set())  # nobody's spared: every address and number
    own = {d for p in phones for d in (p, "0" + p[4:] if p.startswith("+358") else p)}
    for number in own:  # the subject's own number, written without separators
        shown = shown.replace(number, mask_phone(number))
    for part in sorted({t for e in emails for t in _NAME_PART.split(e.partition("@")[0])
                        if len(t) >= 3 and t.isalpha()}, key=len, reverse=True):
        shown = re.sub(re.escape(part), lambda m: m.group()[0] + "***", shown,
                       flags=re.IGNORECASE)
    return shown
