"""Reading Netvisor's XML: the element helpers, and a ``getcustomer.nv`` customer and
its contact persons as the connector sees them (``Customer``, ``Contact``).

Pure functions of the parsed elements: no HTTP, no writes.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree
from lxml.etree import _Element as Element

from hub.domain import RecordFacts, RecordRef

SYSTEM = "netvisor"
HELSINKI = ZoneInfo("Europe/Helsinki")  # Netvisor's times are Finnish local time
# d.M.yyyy H:mm:ss: "1.10.2009 16:03:24", also written "01.01.2018 12:00:00".
_NETVISOR_TIME = re.compile(r"\s*(\d{1,2})\.(\d{1,2})\.(\d{4})\s+(\d{1,2}):(\d{2}):(\d{2})\s*")
_MARKETING = ("marketing", "markkinointi", "newsletter", "uutiskirje")


# ----------------------------------------------------------------------- XML helpers


class NotXml(ValueError):
    """A body that is not XML the connector will read; the message says why."""


def _parser(encoding: str | None = None) -> etree.XMLParser:
    # Safe by construction: no entity expansion, no DTD, no network, bounded trees
    # (billion laughs and external entities are refused or stay inert). Comments and
    # processing instructions are dropped so every node read is an element. A new
    # parser per body: lxml's parsers must not be shared between threads.
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                           load_dtd=False, remove_comments=True, remove_pis=True,
                           encoding=encoding)


def parse_xml(raw: bytes) -> Element:
    """A Netvisor body as its root element (lxml: the sync's pages parse in a fraction
    of the standard library's time); NotXml when it is not, or declares a DOCTYPE.

    Netvisor never sends a DOCTYPE, so one is refused outright rather than read with
    its entities left unexpanded. A body that is not UTF-8 and declares nothing is
    read in Netvisor's legacy charset, ISO-8859-15.
    """
    try:
        root = etree.fromstring(raw, _parser())
    except (etree.XMLSyntaxError, ValueError):
        try:
            root = etree.fromstring(raw, _parser("iso-8859-15"))
        except (etree.XMLSyntaxError, ValueError) as exc:
            raise NotXml(str(exc)[:120]) from None
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None:
        raise NotXml("a DOCTYPE (Netvisor sends none; its entities are not read)")
    return root



def _tag(el: Element) -> str:
    return _local(el.tag)


@lru_cache(maxsize=2048)
def _local(tag: str) -> str:
    """A tag without its namespace, lower-cased. Cached: a page of customers repeats
    a few dozen tag names some hundred thousand times, and this was a fifth of a sync."""
    return tag.rsplit("}", 1)[-1].lower()


@lru_cache(maxsize=512)
def _wanted(names: tuple[str, ...]) -> frozenset[str]:
    return frozenset(n.lower() for n in names)


def _child(el: Element | None, *names: str) -> Element | None:
    if el is None:
        return None
    wanted_names = _wanted(names)
    for child in el:
        if _local(child.tag) in wanted_names:
            return child
    return None


class _Children:
    """An element's children by lower-cased tag (the first of a name wins, as with
    ``_child``): a customer is read a dozen fields at a time, one pass instead of one
    scan per field."""

    def __init__(self, el: Element | None) -> None:
        self.by_tag: dict[str, Element] = {}
        if el is not None:
            for child in el:
                self.by_tag.setdefault(_local(child.tag), child)

    def text(self, name: str) -> str:
        node = self.by_tag.get(name.lower())
        if node is None or node.text is None:
            return ""
        return node.text.strip()


def _text(el: Element | None, *names: str) -> str:
    node = _child(el, *names) if names else el
    if node is None or node.text is None:
        return ""
    return node.text.strip()


def customer_elements(root: Element) -> list[Element]:
    """A ``getcustomer.nv`` answer's customers, where ``CustomersAnswer`` reads them:
    each ``<Customer>`` in ``<Customers>``, and a bare ``<Customer>`` (as ``?id=``
    answers). Only those two levels are looked at: walking every element of a page
    of 500 customers to find them was a fifth of a sync."""
    out = []
    for child in root:
        tag = _local(child.tag)
        if tag == "customer":
            out.append(child)
        elif tag == "customers":
            out.extend(node for node in child if _local(node.tag) == "customer")
    return out


def _find_all(el: Element, name: str) -> list[Element]:
    name = name.lower()
    return [node for node in el.iter() if _tag(node) == name]


def to_dict(el: Element, *, lower: bool = False) -> Any:
    """An element as plain data: leaves become text, repeated children lists,
    attributes (e.g. ``format``) are dropped. The vendor's element names are kept
    (an export shows them), or lower-cased (``lower``: for validating, since Netvisor's
    names are case-insensitive)."""
    if not len(el):
        return (el.text or "").strip()
    out: dict[str, Any] = {}
    for child in el:
        tag = child.tag
        key = _local(tag) if lower else tag.rsplit("}", 1)[-1]
        # A leaf inline: most elements are, and a call per leaf was most of a page.
        add(out, key, to_dict(child, lower=lower) if len(child) else (child.text or "").strip())
    return out


def add(out: dict[str, Any], key: str, value: Any) -> None:  # noqa: ANN401 - XML as data
    """One child's value under its tag; a tag seen again makes the value a list."""
    if key in out:
        if not isinstance(out[key], list):
            out[key] = [out[key]]
        out[key].append(value)
    else:
        out[key] = value


@lru_cache(maxsize=4096)
def netvisor_time(value: str) -> datetime | None:
    """A time as Netvisor writes it (``ResponseStatus/TimeStamp``, ``LastModified``:
    ``d.M.yyyy H:mm:ss``, Finnish local time; saas-apis.md Corrections, checked
    2026-12) as an aware datetime; None when the text is not one."""
    m = _NETVISOR_TIME.fullmatch(value or "")
    if m is None:
        return None
    day, month, year, hour, minute, second = map(int, m.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=HELSINKI)
    except ValueError:
        return None


def _is_true(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "kyllä", "on")


# ------------------------------------------------------------------------- parsing


class Customer:
    """One ``getcustomer.nv`` customer, read through the elements the hub needs."""

    def __init__(self, el: Element) -> None:
        self.el = el
        sections = _Children(el)
        self.base = sections.by_tag.get("customerbaseinformation")
        base = _Children(self.base)
        key = base.text("NetvisorKey") or sections.text("NetvisorKey")
        self.key = key
        self.name = base.text("Name")
        self.emails = [v for v in (base.text("Email"), base.text("EmailInvoicingAddress"))
                       if v]
        self.phones = [v for v in (base.text("PhoneNumber"),) if v]
        self.is_active = base.text("IsActive")
        # A company customer's Name is the company's: no person's name to match by, so
        # the hub sees the record as nameless (hub.linking) instead of "disagreeing".
        company = base.text("IsPrivateCustomer").strip().lower() in ("0", "false")
        self.person_name = "" if company else self.name
        self.contact_details = sections.by_tag.get("customercontactdetails")
        self.additional = sections.by_tag.get("customeradditionalinformation")
        self.last_modified = sections.text("LastModified")

    def contacts(self) -> list[Contact]:
        """The contact persons: the ``CustomerContactDetails`` contact (id "details")
        and each element of a contact-person list."""
        out: list[Contact] = []
        details = self.contact_details
        if details is not None:
            fields = _Children(details)
            email = fields.text("ContactPersonEmail")
            phone = fields.text("ContactPersonPhone")
            name = fields.text("ContactPerson") or fields.text("ContactName")
            if email or phone or name or fields.text("ContactName"):
                out.append(Contact(self.key, "details", name, email, phone, details))
        for i, node in enumerate(_contact_nodes(self.el)):
            by_tag, hinted = _read_contact(node)
            cid = (by_tag.get("netvisorkey") or by_tag.get("contactpersonnetvisorkey")
                   or by_tag.get("contactpersonid") or by_tag.get("id") or f"n{i + 1}")
            first, last = hinted.get("firstname", ""), hinted.get("lastname", "")
            name = " ".join(p for p in (first, last) if p) or hinted.get("name", "")
            out.append(Contact(self.key, cid, name, hinted.get("email", ""),
                               hinted.get("phone", ""), node,
                               is_default=_is_true(by_tag.get("isdefault", ""))))
        return out

    @property
    def facts(self) -> RecordFacts:
        """The customer's own name (a private customer's), e-mails and phone: never its
        contact persons'."""
        return RecordFacts(self.person_name or None, tuple(self.emails), tuple(self.phones))

    def marketing_fields(self) -> list[tuple[str, str, str]]:
        """(section tag, field tag, value) of every element that looks like a
        marketing permission or newsletter flag."""
        out = []
        for section in self.el:
            for node in section:
                if list(node):
                    continue
                if any(m in _tag(node) for m in _MARKETING):
                    out.append((_tag(section), _tag(node), (node.text or "").strip()))
        return out


class Contact:
    def __init__(self, customer_key: str, contact_id: str, name: str, email: str, phone: str,
                 el: Element, *, is_default: bool = False) -> None:
        self.customer_key = customer_key
        self.contact_id = contact_id
        self.name = name
        self.email = email
        self.phone = phone
        self.el = el
        self.is_default = is_default

    @property
    def record_id(self) -> str:
        return f"{self.customer_key}/contact/{self.contact_id}"

    @property
    def facts(self) -> RecordFacts:
        return RecordFacts(self.name or None, (self.email,) if self.email else (),
                           (self.phone,) if self.phone else ())

    def ref(self) -> RecordRef:
        return RecordRef(SYSTEM, "contact_person", self.record_id, container=self.customer_key,
                         label=f"contact person of customer {self.customer_key}",
                         facts=self.facts)


def _contact_nodes(customer: Element) -> list[Element]:
    """Elements of a contact-person list (``CustomerContactPersons/…``)."""
    return [node for section in customer if "contactperson" in _local(section.tag)
            for node in section if len(node)]


# What a contact person's fields are recognised by: the first non-empty field whose
# tag contains the hint ("name" also finds FirstName when there is no plain Name).
_HINTS = ("firstname", "lastname", "name", "email", "phone")


def _read_contact(node: Element) -> tuple[dict[str, str], dict[str, str]]:
    """One pass over a contact person's fields: each tag's text (the first of a tag
    wins, as with ``_text``) and, per hint, the first non-empty text whose tag holds
    it. A scan per field read each contact person six times over."""
    by_tag: dict[str, str] = {}
    hinted: dict[str, str] = {}
    for child in node:
        tag = _local(child.tag)
        text = (child.text or "").strip()
        by_tag.setdefault(tag, text)
        if text:
            for hint in _HINTS:
                if hint in tag:
                    hinted.setdefault(hint, text)
    return by_tag, hinted


# ------------------------------------------------------------------ the sync's reading

# What the sync reads of a customer's base information; the key and name as ``plain``
# reads them (the model checks them), the rest as ``Customer`` does (the first wins).
_CHECKED = frozenset({"netvisorkey", "name"})
_SYNCED = _CHECKED | {"email", "emailinvoicingaddress", "phonenumber", "isprivatecustomer"}


def sync_plain(root: Element) -> dict[str, Any]:
    """A ``getcustomer.nv`` answer as the data ``models.SyncAnswer`` validates, in one
    walk: what ``plain(root, CustomersAnswer)`` checks, and beside it what the sync's
    records are made of (e-mails, phone, private-customer flag, LastModified, the
    contact details and contact persons). One walk instead of three (validation,
    ``Customer``, ``Customer.contacts``) was most of a sync's own time."""
    out: dict[str, Any] = {}
    for child in root:
        tag = _local(child.tag)
        if tag == "customer":
            add(out, tag, _sync_customer(child))
        elif tag == "customers":
            if not len(child):
                add(out, tag, (child.text or "").strip())
                continue
            section: dict[str, Any] = {}
            for node in child:
                if _local(node.tag) == "customer":
                    add(section, "customer", _sync_customer(node))
            add(out, tag, section)
    return out


def _sync_customer(el: Element) -> Any:
    if not len(el):
        return (el.text or "").strip()
    out: dict[str, Any] = {}
    first: dict[str, Element] = {}
    persons: list[dict[str, str]] = []
    for section in el:
        tag = _local(section.tag)
        if tag == "customerbaseinformation":
            add(out, tag, _sync_base(section))
        elif "contactperson" in tag:
            for node in section:
                if len(node):
                    persons.append(_sync_person(node, len(persons)))
        else:
            first.setdefault(tag, section)
    details = first.get("customercontactdetails")
    if details is not None:
        fields = _Children(details)
        out["contactdetails"] = {
            "email": fields.text("ContactPersonEmail"),
            "phone": fields.text("ContactPersonPhone"),
            "name": fields.text("ContactPerson") or fields.text("ContactName")}
    modified = first.get("lastmodified")
    out["lastmodified"] = (modified.text or "").strip() if modified is not None else ""
    out["contactpersons"] = persons
    return out


def _sync_base(base: Element) -> Any:
    if not len(base):
        return (base.text or "").strip()
    out: dict[str, Any] = {}
    for child in base:
        tag = _local(child.tag)
        if tag in _CHECKED:
            add(out, tag, to_dict(child, lower=True))
        elif tag in _SYNCED and tag not in out:
            out[tag] = (child.text or "").strip()
    return out


def _sync_person(node: Element, index: int) -> dict[str, str]:
    """A contact person as ``Customer.contacts`` reads it: its id and, by hint, name,
    e-mail and phone."""
    by_tag, hinted = _read_contact(node)
    cid = (by_tag.get("netvisorkey") or by_tag.get("contactpersonnetvisorkey")
           or by_tag.get("contactpersonid") or by_tag.get("id") or f"n{index + 1}")
    first, last = hinted.get("firstname", ""), hinted.get("lastname", "")
    name = " ".join(p for p in (first, last) if p) or hinted.get("name", "")
    return {"id": cid, "name": name, "email": hinted.get("email", ""),
            "phone": hinted.get("phone", "")}
