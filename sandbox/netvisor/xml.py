"""Netvisor XML in and out.

Output is built as strings (a 100,000-customer list must be quick), always
wrapped in `<Root><ResponseStatus>…</ResponseStatus>…</Root>`. Input is parsed
with defusedxml only (entity expansion and external entities refused); tag names
are compared lower-case because Netvisor's import documents use lower-case
element names while its responses use CamelCase.
"""

from __future__ import annotations

from datetime import date, datetime
from xml.etree.ElementTree import Element  # type only; parsing goes through defusedxml
from xml.sax.saxutils import escape

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from sandbox.netvisor.state import HELSINKI

PROLOG = '<?xml version="1.0" encoding="utf-8" standalone="yes"?>'


class NvError(Exception):
    """A Netvisor failure: `CATEGORY :: message`."""

    def __init__(self, category: str, message: str) -> None:
        super().__init__(f"{category} :: {message}")
        self.category = category
        self.message = message


def netvisor_time(moment: datetime) -> str:
    """A time as Netvisor writes it: `d.M.yyyy H:mm:ss`, e.g. `1.10.2009 16:03:24`
    (saas-apis.md Corrections, checked 2026-12)."""
    return f"{moment.day}.{moment.month}.{moment.year} {moment.hour}:{moment:%M:%S}"


def netvisor_date(day: date) -> str:
    """A date in a record as Netvisor writes it: `dd.mm.yyyy`."""
    return day.strftime("%d.%m.%Y")


def stamp() -> str:
    """ResponseStatus TimeStamp: Finnish local time, Netvisor's `d.M.yyyy H:mm:ss`."""
    return netvisor_time(datetime.now(HELSINKI))


def el(name: str, value: object, attrs: str = "") -> str:
    """`<Name attrs>escaped value</Name>` (empty value gives `<Name />`)."""
    text = "" if value is None else str(value)
    if text == "":
        return f"<{name}{attrs} />"
    return f"<{name}{attrs}>{escape(text)}</{name}>"


def ok_body(inner: str) -> str:
    """A successful response document."""
    return (f"{PROLOG}<Root><ResponseStatus><Status>OK</Status>"
            f"<TimeStamp>{stamp()}</TimeStamp></ResponseStatus>{inner}</Root>")


def failed_body(category: str, message: str) -> str:
    """A failed response document: two Status elements, the second `CATEGORY :: message`."""
    return (f"{PROLOG}<Root><ResponseStatus><Status>FAILED</Status>"
            f"<Status>{escape(category)} :: {escape(message)}</Status>"
            f"<TimeStamp>{stamp()}</TimeStamp></ResponseStatus></Root>")


class XmlInputError(ValueError):
    """The request body is not acceptable XML."""


def parse(raw: bytes) -> Element:
    """Parse a request body safely; UTF-8, else ISO-8859-15 (Netvisor's legacy charset)."""
    if not raw.strip():
        raise XmlInputError("The request body is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("iso-8859-15")
    if text.lstrip().startswith("<?xml"):
        text = text.split("?>", 1)[1] if "?>" in text else text
    try:
        return SafeET.fromstring(text)
    except DefusedXmlException as exc:
        raise XmlInputError(f"Forbidden XML construct: {type(exc).__name__}") from None
    except SafeET.ParseError as exc:
        raise XmlInputError(f"The request body is not well-formed XML: {exc}") from None


def children(node: Element) -> dict[str, Element]:
    """Child elements by lower-case tag (last one wins)."""
    return {child.tag.lower(): child for child in node}
