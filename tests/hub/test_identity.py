"""Normalising and masking identifiers: what decides whether two records are one person."""

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hub.domain import Identifier, IdentifierKind
from hub.identity import (
    InvalidIdentifier,
    identifiers_of,
    mask,
    mask_email,
    mask_phone,
    mask_text,
    name_key,
    normalise_email,
    normalise_name,
    normalise_phone,
    parse_email,
    parse_phone,
)

# --- properties: never crash, idempotent -----------------------------------------


@given(st.text())
@example("  Aino.Virtanen@Example.FI ")
@example("aino@bücher.de")
@example("İ@example.fi")
def test_normalise_email_never_crashes_and_is_idempotent(raw):
    once = normalise_email(raw)
    assert once is None or isinstance(once, str)
    if once is not None:
        assert normalise_email(once) == once


@given(st.emails())
def test_normalise_email_accepts_valid_addresses_idempotently(raw):
    once = normalise_email(raw)
    if once is not None:
        assert once == once.strip()
        assert normalise_email(once) == once
        assert normalise_email(raw.upper()) in (once, None)


@given(st.text())
@example("040 123 4567")
@example("+358 (0)40 123 4567")
@example("ext. 12")
def test_normalise_phone_never_crashes_and_is_idempotent(raw):
    once = normalise_phone(raw)
    assert isinstance(once, Identifier)
    assert once.kind in (IdentifierKind.PHONE, IdentifierKind.PHONE_RAW)
    assert normalise_phone(once.value) == once


@given(st.text(alphabet="0123456789 +-()", max_size=20))
def test_normalise_phone_on_digit_soup_is_idempotent(raw):
    once = normalise_phone(raw)
    assert normalise_phone(once.value) == once
    if once.kind == IdentifierKind.PHONE:
        assert once.value.startswith("+") and once.value[1:].isdigit()


@given(st.text())
@example("  Aino \t  Virtanen ")
@example("A\u0308kkinen")
def test_normalise_name_never_crashes_and_is_idempotent(raw):
    once = normalise_name(raw)
    assert normalise_name(once) == once
    assert "  " not in once and once == once.strip()


@given(st.text())
@example("Straße")
@example("\u01f0")
@example("ΣΑΣ")
def test_name_key_never_crashes_and_is_idempotent(raw):
    once = name_key(raw)
    assert name_key(once) == once


# --- e-mail ----------------------------------------------------------------------


def test_email_case_and_whitespace_are_normalised():
    assert normalise_email("  Aino.Virtanen@Example.FI ") == "aino.virtanen@example.fi"
    assert normalise_email("AINO.VIRTANEN@EXAMPLE.FI") == normalise_email(
        "aino.virtanen@example.fi")


def test_email_domain_is_idna_encoded():
    assert normalise_email("aino@Bücher.de") == "aino@xn--bcher-kva.de"
    # The ASCII form and the Unicode form are the same mailbox.
    assert normalise_email("aino@xn--bcher-kva.de") == normalise_email("aino@bücher.de")


def test_email_plus_tags_are_kept():
    assert normalise_email("aino+news@example.fi") == "aino+news@example.fi"
    assert normalise_email("aino+news@example.fi") != normalise_email("aino@example.fi")


@pytest.mark.parametrize("raw", ["", "aino", "aino@", "@example.fi", "aino@@example.fi",
                                 "aino virtanen@example.fi", "aino@example", "a..b@example.fi"])
def test_not_an_email_is_none_and_parse_explains(raw):
    assert normalise_email(raw) is None
    with pytest.raises(InvalidIdentifier, match="not a valid e-mail"):
        parse_email(raw)


# --- phone -----------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["040 123 4567", "+358 40 1234567", "+358401234567",
                                 "040-123 4567", "00358 40 123 4567", "(040) 1234567"])
def test_finnish_phone_formats_are_one_number(raw):
    assert normalise_phone(raw) == Identifier(IdentifierKind.PHONE, "+358401234567")


def test_foreign_numbers_keep_their_country():
    assert normalise_phone("+46 70 123 45 67") == Identifier(IdentifierKind.PHONE,
                                                              "+46701234567")


@pytest.mark.parametrize("raw", ["call me", "12", "  ask  at   reception ", "+"])
def test_unparseable_phone_is_kept_raw(raw):
    result = normalise_phone(raw)
    assert result.kind == IdentifierKind.PHONE_RAW
    assert result.value == " ".join(raw.split())
    with pytest.raises(InvalidIdentifier):
        parse_phone(raw)


def test_identifiers_of_dedupes_and_orders_emails_first():
    found = identifiers_of(["Aino@Example.fi", "aino@example.fi", "not-an-email", ""],
                           ["040 123 4567", "+358401234567", "n/a", "  "])
    assert found == [
        Identifier(IdentifierKind.EMAIL, "aino@example.fi"),
        Identifier(IdentifierKind.PHONE, "+358401234567"),
        Identifier(IdentifierKind.PHONE_RAW, "n/a"),
    ]


# --- masking ---------------------------------------------------------------------


def test_mask_email_shows_first_letter_and_domain_only():
    assert mask_email("mari.virtanen@example.fi") == "m***@example.fi"


@given(st.emails())
def test_mask_email_never_reveals_the_local_part(raw):
    value = normalise_email(raw)
    if value is None:
        return
    local, _, domain = value.rpartition("@")
    masked = mask_email(value)
    assert masked.endswith("@" + domain)
    # Only the first character of the local part survives, whatever its length.
    assert masked == f"{local[:1]}***@{domain}"


def test_mask_phone_hides_the_subscriber():
    assert mask_phone("+358401234567") == "+358*******67"
    assert "1234" not in mask_phone("+358401234567")
    assert mask_phone("12345") == "***"


@given(st.from_regex(r"\+[1-9][0-9]{7,14}", fullmatch=True))
def test_mask_phone_never_reveals_middle_digits(value):
    masked = mask_phone(value)
    assert len(masked) == len(value)
    assert masked[:4] == value[:4] and masked[-2:] == value[-2:]
    assert set(masked[4:-2]) == {"*"}


def test_mask_text_and_mask():
    assert mask_text("Aino Virtanen") == "A*** V***"
    assert mask_text("") == "***"
    assert mask(Identifier(IdentifierKind.EMAIL, "aino@example.fi")) == "a***@example.fi"
    assert mask(Identifier(IdentifierKind.PHONE, "+358401234567")) == "+358*******67"
