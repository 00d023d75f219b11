"""Normalising and masking identifiers.

Matching a person across four systems stands or falls on normalising the same way
everywhere: `Aino.Virtanen@Example.fi` in the CRM and `aino.virtanen@example.fi`
in the mailing list are one person, and so are `040 123 4567` and `+358401234567`.
Everything here is pure and never raises on odd input except the explicit
``parse_*`` functions, which are for input a person typed and deserve a message.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import phonenumbers
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from hub.domain import Address, Identifier, IdentifierKind

DEFAULT_REGION = "FI"

# Fast paths. Indexing 400,000 records cannot afford ~300 µs of email-validator and
# phonenumbers per record, yet nearly all vendor data is plain ASCII e-mail and
# Finnish numbers. The patterns below accept only what the libraries certainly
# accept and produce the same result (tests/hub/test_identity_fastpath.py proves
# it on generated input); anything else takes the libraries' path.
_SIMPLE_EMAIL = re.compile(
    r"[a-z0-9_%+-]+(?:\.[a-z0-9_%+-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)
_SPECIAL_DOMAINS = tuple(SPECIAL_USE_DOMAIN_NAMES)
_PHONE_PUNCTUATION = str.maketrans("", "", " -().\u00a0")
# Bound of the per-value caches below. An entry costs about 200 bytes, and a build of
# the index meets every address once: large caches were tens of MB that grew with the
# index (memory must stay flat), while a hit saves only a few microseconds.
CACHED_VALUES = 8192
_EMAIL, _PHONE, _PHONE_RAW = (IdentifierKind.EMAIL.value, IdentifierKind.PHONE.value,
                              IdentifierKind.PHONE_RAW.value)
_FI_LENGTHS = frozenset(
    phonenumbers.PhoneMetadata.metadata_for_region("FI").general_desc.possible_length
)


def _fast_email(text: str) -> str | None:
    lowered = text.lower()
    if len(lowered) > 254 or not lowered.isascii() or not _SIMPLE_EMAIL.fullmatch(lowered):
        return None
    local, _, domain = lowered.partition("@")
    if len(local) > 64 or "--" in domain or _special_use(domain):
        return None
    return lowered


@lru_cache(maxsize=4096)
def _special_use(domain: str) -> bool:
    """Whether email-validator refuses this domain as special-use; cached, because a
    sync sees the same few domains on thousands of addresses."""
    return any(domain == d or domain.endswith("." + d) for d in _SPECIAL_DOMAINS)


def _fast_fi_phone(raw: str) -> str | None:
    digits = raw.translate(_PHONE_PUNCTUATION)
    if digits.startswith("+358"):
        national = digits[4:]
    elif digits.startswith("00358"):
        national = digits[5:]
    elif digits.startswith("0") and not digits.startswith("00"):
        national = digits[1:]
    else:
        return None
    if (national.isascii() and national.isdigit() and national[:1] != "0"
            and len(national) in _FI_LENGTHS):
        return "+358" + national
    return None


class InvalidIdentifier(ValueError):
    """Input a person typed is not a usable e-mail or phone; the message says why."""


def parse_email(raw: str) -> str:
    """Validate and normalise an e-mail typed by an operator; raise InvalidIdentifier.

    Syntax only (no DNS lookups: the hub must work offline and subjects may write
    from domains that no longer exist). Plus-tags are kept: `a+news@x` is a
    different mailbox as far as any vendor is concerned.
    """
    text = unicodedata.normalize("NFC", raw.strip())
    fast = _fast_email(text)
    if fast is not None:
        return fast
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidIdentifier(f"not a valid e-mail address: {exc}") from None
    local = result.local_part
    domain = result.ascii_domain
    return f"{local.lower()}@{domain.lower()}"


@lru_cache(maxsize=CACHED_VALUES)
def normalise_email(raw: str) -> str | None:
    """Normalise an e-mail from vendor data; None when it is not an e-mail at all."""
    try:
        return parse_email(raw)
    except InvalidIdentifier:
        return None


def parse_phone(raw: str, region: str = DEFAULT_REGION) -> str:
    """Validate and normalise a phone number typed by an operator to E.164."""
    if region == "FI":
        fast = _fast_fi_phone(raw.strip())
        if fast is not None:
            return fast
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidIdentifier(f"not a phone number: {exc}") from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidIdentifier("not a possible phone number for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_phone(raw: str, region: str = DEFAULT_REGION) -> Identifier:
    """Normalise a phone from vendor data to E.164, or keep it raw and unmatched.

    A number phonenumbers cannot make sense of is kept as written (stripped) under
    kind PHONE_RAW, so an access export still shows it but no two people are ever
    linked by a guess.
    """
    kind, value = _phone_pair(raw, region)
    return Identifier(IdentifierKind(kind), value)


@lru_cache(maxsize=CACHED_VALUES)
def _phone_pair(raw: str, region: str = DEFAULT_REGION) -> tuple[str, str]:
    """`normalise_phone` as plain (kind, value) strings, cached."""
    try:
        return _PHONE, parse_phone(raw, region)
    except InvalidIdentifier:
        return _PHONE_RAW, " ".join(raw.split())


def normalise_name(raw: str) -> str:
    """Unicode NFC with collapsed white space: how a name is stored and shown."""
    return " ".join(unicodedata.normalize("NFC", raw).split())


def name_key(raw: str) -> str:
    """Case-folded NFC name, for matching only (`Häkkinen` == `HÄKKINEN`)."""
    return unicodedata.normalize("NFC", normalise_name(raw).casefold())


def identifiers_of(emails: tuple[str, ...] | list[str], phones: tuple[str, ...] | list[str]
                   ) -> list[Identifier]:
    """The normalised, de-duplicated identifiers of a record, e-mails first."""
    return [Identifier(IdentifierKind(kind), value)
            for kind, value in identifier_pairs(emails, phones)]


def identifier_pairs(emails: tuple[str, ...] | list[str], phones: tuple[str, ...] | list[str]
                     ) -> list[tuple[str, str]]:
    """`identifiers_of` as plain (kind, value) strings: what the index stores. A build
    meets hundreds of thousands of values, and an Identifier object for each cost more
    than normalising it."""
    seen: dict[tuple[str, str], None] = {}
    for raw in emails:
        if raw and (pair := _email_pair(raw)) is not None:
            seen[pair] = None
    for raw in phones:
        if raw and raw.strip():
            seen[_phone_pair(raw)] = None
    return list(seen)


@lru_cache(maxsize=CACHED_VALUES)
def _email_pair(raw: str) -> tuple[str, str] | None:
    """`normalise_email` as a (kind, value) pair, cached whole (through the uncached
    function, so one address is not kept in two caches)."""
    value = normalise_email.__wrapped__(raw)
    return (_EMAIL, value) if value else None


def mask_email(value: str) -> str:
    """`mari.virtanen@example.fi` → `m***@example.fi`: enough for ops to tell requests apart."""
    local, sep, domain = value.partition("@")
    if not sep:
        return mask_text(value)
    return f"{local[:1]}***@{domain}"


_ANY_EMAIL = re.compile(r"[^\s<>()\[\]\"',;:]+@[^\s<>()\[\]\"',;:]+")


def mask_emails_in(text: str | None) -> str:
    """Free text (a server's answer, an error) with every e-mail address in it masked."""
    return _ANY_EMAIL.sub(lambda m: mask_email(m.group()), text or "")


def mask_phone(value: str) -> str:
    """`+358401234567` → `+358*******67`: country visible, the subscriber not."""
    digits = value.strip()
    if len(digits) <= 6:
        return "***"
    return f"{digits[:4]}{'*' * (len(digits) - 6)}{digits[-2:]}"


def mask_text(value: str) -> str:
    """`Aino Virtanen` → `A*** V***`."""
    return " ".join(f"{word[:1]}***" for word in value.split()) or "***"


def mask(identifier: Identifier) -> str:
    if identifier.kind == IdentifierKind.EMAIL:
        return mask_email(identifier.value)
    return mask_phone(identifier.value)


_ADDRESS = re.compile(r"^(?P<street>[^,]+),\s*(?P<postcode>\d{5})\s+(?P<city>\S.*)$")


def parse_address(raw: str) -> Address:
    """A Finnish postal address typed by an operator, "street, postcode city"
    (``Mannerheimintie 1 A 2, 00100 Helsinki``); raise InvalidIdentifier otherwise."""
    match = _ADDRESS.match(" ".join(raw.split()))
    if match is None:
        raise InvalidIdentifier('an address is written "street, postcode city" with a '
                                "five-digit postcode")
    return Address(match["street"].strip(), match["postcode"], match["city"].strip())

