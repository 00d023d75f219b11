"""The normalisers' fast paths must agree with the libraries they stand in for."""

import phonenumbers
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given
from hypothesis import strategies as st

from hub.identity import _fast_email, _fast_fi_phone

LOCAL = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCZ0123456789._%+-", min_size=1,
                max_size=70)
LABEL = st.text(alphabet="abcxyz0129-", min_size=1, max_size=66)
TLD = st.sampled_from(["fi", "com", "net", "test", "local", "x", "museum", "Fi", "a1"])


def library_email(text: str) -> str | None:
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        return None
    return f"{result.local_part.lower()}@{result.ascii_domain.lower()}"


@given(LOCAL, st.lists(LABEL, min_size=1, max_size=3), TLD)
@example("a..b", ["example"], "fi")
@example("aino", ["xn--bcher-kva"], "de")
@example("-a-", ["-x"], "fi")
def test_fast_email_agrees_with_email_validator(local, labels, tld):
    text = f"{local}@{'.'.join(labels)}.{tld}"
    fast = _fast_email(text)
    if fast is not None:
        assert fast == library_email(text)


DIGITS = st.text(alphabet="0123456789", min_size=0, max_size=14)
PREFIX = st.sampled_from(["+358", "00358", "0", "+358 ", "(0", "358", "+46", ""])
SEP = st.sampled_from(["", " ", "-", "."])


def library_phone(text: str) -> str | None:
    try:
        number = phonenumbers.parse(text, "FI")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@given(PREFIX, DIGITS, SEP, DIGITS)
@example("0", "40", " ", "1234567")
@example("+358", "0401234567", "", "")
@example("0", "", "", "")
def test_fast_fi_phone_agrees_with_phonenumbers(prefix, head, sep, tail):
    text = f"{prefix}{head}{sep}{tail}"
    fast = _fast_fi_phone(text)
    if fast is not None:
        assert fast == library_phone(text)


@pytest.mark.parametrize("text", ["aino.virtanen@example.fi", "a+news@example.com"])
def test_fast_email_takes_common_addresses(text):
    assert _fast_email(text) == text
