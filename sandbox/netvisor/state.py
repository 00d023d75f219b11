"""Netvisor's world: customers, their contact persons and sales invoices.

Generated once from the shared `Person` list and the seed. Customers are kept in
a dict by NetvisorKey (insertion order = key order) with an index by customer
code; invoices in a dict by NetvisorKey plus an index by customer, so the
"refuse to delete a customer that has invoices" check is a dict lookup even at
100,000 customers. Times are Finnish local time (Europe/Helsinki), as Netvisor
shows them; the data is anchored on today's date, so "an open invoice this year"
and "older than the 6/10-year retention periods" hold whenever the sandbox runs.
"""

from __future__ import annotations

import gc
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.datastructures import Headers
from starlette.responses import Response

from sandbox.faults import VendorState
from sandbox.people import Person, render_email, render_phone
from sandbox.server import credentials as server_credentials

HELSINKI = ZoneInfo("Europe/Helsinki")

DEFAULT_SETTINGS: dict[str, Any] = {
    # Allowed clock skew of X-Netvisor-Authentication-TimestampUnix (HMACSHA256) or of
    # X-Netvisor-Authentication-Timestamp (SHA256, MD5), in seconds.
    "timestamp_tolerance": 300,
    # Accept the SHA256 and MD5 MACs Netvisor announced it will remove; false refuses
    # them with AUTHENTICATION_FAILED, as production will after the removal.
    "accept_legacy_mac": True,
    # Added to every authenticated request while it holds the environment (seconds).
    "response_delay": 0.0,
    # Refuse a second request while one is in flight for the same environment.
    "concurrency_guard": True,
}

_SWITCHES = frozenset({"accept_legacy_mac", "concurrency_guard"})

# getcustomer.nv CustomerBaseInformation elements, in output order.
BASE_FIELDS = (
    "InternalIdentifier", "ExternalIdentifier", "OrganizationUnitNumber",
    "CustomerGroupNetvisorKey", "CustomerGroupName", "Name", "NameExtension",
    "StreetAddress", "AdditionalAddressLine", "City", "PostNumber", "Country",
    "PhoneNumber", "FaxNumber", "Email", "EmailInvoicingAddress", "HomePageUri",
    "IsActive", "IsPrivateCustomer",
)
CONTACT_DETAIL_FIELDS = ("ContactName", "ContactPerson", "ContactPersonEmail",
                         "ContactPersonPhone")
ADDITIONAL_FIELDS = ("Comment", "ReferenceNumber")

# customer.nv import element (lower-case) -> stored field, per section.
IMPORT_BASE = {
    "internalidentifier": "InternalIdentifier", "externalidentifier": "ExternalIdentifier",
    "organizationunitnumber": "OrganizationUnitNumber", "name": "Name",
    "nameextension": "NameExtension", "streetaddress": "StreetAddress",
    "additionaladdressline": "AdditionalAddressLine", "city": "City",
    "postnumber": "PostNumber", "country": "Country",
    "customergroupname": "CustomerGroupName", "phonenumber": "PhoneNumber",
    "faxnumber": "FaxNumber", "email": "Email", "homepageuri": "HomePageUri",
    "isactive": "IsActive", "isprivatecustomer": "IsPrivateCustomer",
    "emailinvoicingaddress": "EmailInvoicingAddress",
}
IMPORT_CONTACT_DETAILS = {
    "contactname": "ContactName", "contactperson": "ContactPerson",
    "contactpersonemail": "ContactPersonEmail", "contactpersonphone": "ContactPersonPhone",
}
IMPORT_ADDITIONAL = {"comment": "Comment", "referencenumber": "ReferenceNumber"}
IMPORT_SECTIONS = {
    "customerbaseinformation": IMPORT_BASE,
    "customercontactdetails": IMPORT_CONTACT_DETAILS,
    "customeradditionalinformation": IMPORT_ADDITIONAL,
}
CONTACT_IMPORT = {"firstname": "first_name", "lastname": "last_name",
                  "phonenumber": "phone", "email": "email", "title": "title",
                  "isdefault": "is_default"}

PRODUCTS = (("Tietosuojakoulutus", 450.0), ("Konsultointi (h)", 120.0),
            ("Ohjelmistolisenssi", 79.0), ("Tukipalvelu / kk", 39.0),
            ("Kurssimateriaali", 25.0))


def local_now() -> datetime:
    """Naive Finnish local time, the way Netvisor shows times."""
    return datetime.now(HELSINKI).replace(tzinfo=None, microsecond=0)


@dataclass
class Contact:
    """A customer's contact person (contactperson.nv)."""

    key: int
    first_name: str
    last_name: str
    phone: str
    email: str
    title: str
    is_default: bool


@dataclass
class Customer:
    """A customer: element-named fields, contact persons, last modified (local time)."""

    key: int
    fields: dict[str, str]
    contacts: list[Contact]
    modified: datetime


@dataclass
class Invoice:
    """A sales invoice; never changed or deleted through this API (statutory voucher)."""

    key: int
    number: int
    invoice_date: date
    due_date: date
    status: str
    customer_key: int
    customer_code: str
    customer_name: str
    address: tuple[str, str, str]
    reference: str
    lines: list[tuple[str, float, float]] = field(default_factory=list)  # name, price, qty
    modified: datetime = field(default_factory=local_now)

    @property
    def amount(self) -> float:
        return round(sum(p * q for _, p, q in self.lines) * 1.255, 2)


def reference_number(base: int) -> str:
    """Finnish creditor reference (viitenumero) with its 7-3-1 check digit."""
    digits = str(base)
    weights = (7, 3, 1)
    total = sum(int(d) * weights[i % 3] for i, d in enumerate(reversed(digits)))
    return digits + str((10 - total % 10) % 10)


class NetvisorState(VendorState):
    """One Netvisor customer environment (organisation 1967543-8)."""

    name = "netvisor"

    def __init__(self, people: list[Person], seed: int,
                 settings: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.people = people
        self.seed = seed
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        creds = server_credentials(seed)
        self.sender = creds["NETVISOR_SENDER"]
        self.customer_id = creds["NETVISOR_CUSTOMER_ID"]
        self.partner_id = creds["NETVISOR_PARTNER_ID"]
        self.customer_key = creds["NETVISOR_CUSTOMER_KEY"]
        self.partner_key = creds["NETVISOR_PARTNER_KEY"]
        self.organisation_id = creds["NETVISOR_ORGANISATION_ID"]
        self.lock = threading.RLock()
        # The server's clock for the authentication time checks (UTC, aware): a test
        # replaces it to send a stale request without sleeping.
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.reset()

    def update_settings(self, values: dict[str, Any]) -> dict[str, Any]:
        """Only the documented knobs (see DEFAULT_SETTINGS)."""
        for key, value in values.items():
            if key not in DEFAULT_SETTINGS:
                raise ValueError(f"unknown netvisor setting {key!r}")
            if key in _SWITCHES:
                if not isinstance(value, bool):
                    raise ValueError(f"{key} must be true or false")
            elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{key} must be a non-negative number")
        self.settings.update(values)
        return self.settings

    # --- lifecycle ---------------------------------------------------------------

    def reset(self) -> None:
        """Back to the seeded state (transaction ids are forgotten too)."""
        with self.lock:
            self.today = local_now().date()
            self.customers: dict[int, Customer] = {}
            self.by_code: dict[str, int] = {}
            self.deleted: dict[int, datetime] = {}
            self.deleted_contacts: set[int] = set()
            self.invoices: dict[int, Invoice] = {}
            self.invoices_by_customer: dict[int, list[int]] = {}
            self.transaction_ids: set[str] = set()
            self.in_flight = 0
            self.next_customer = 1000
            self.next_contact = 5000
            self.next_invoice = 20000
            # Millions of small objects at 100,000 people: pause the cyclic GC meanwhile.
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                self._generate()
            finally:
                if gc_was_enabled:
                    gc.enable()

    def _generate(self) -> None:
        rng = random.Random(f"netvisor:{self.seed}")
        now = datetime.combine(self.today, datetime.min.time()) + timedelta(hours=8)
        invoice_no = 1
        for p in self.people:
            if "netvisor" not in p.systems:
                continue
            private = p.idx in (0, 2) or rng.random() < 0.5
            key = self.next_customer
            self.next_customer += 1
            code = str(key - 1000 + 10001)
            email = render_email(p, "netvisor")
            phone = render_phone(p, "netvisor")
            fields = {f: "" for f in (*BASE_FIELDS, *CONTACT_DETAIL_FIELDS, *ADDITIONAL_FIELDS)}
            fields.update({
                "InternalIdentifier": code,
                "Name": p.name if private else p.company,
                "StreetAddress": p.street, "City": p.city, "PostNumber": p.postcode,
                "Country": "FI", "PhoneNumber": phone, "Email": email,
                "IsActive": "1", "IsPrivateCustomer": "1" if private else "0",
                "CustomerGroupNetvisorKey": "1" if private else "2",
                "CustomerGroupName": "Yksityisasiakkaat" if private else "Yritysasiakkaat",
                "ReferenceNumber": reference_number(int(code)),
            })
            contacts: list[Contact] = []
            if not private:
                fields["ExternalIdentifier"] = p.business_id
                fields["ContactPerson"] = p.name
                fields["ContactPersonEmail"] = email
                fields["ContactPersonPhone"] = phone
                contacts.append(Contact(self.next_contact, p.first_name, p.last_name,
                                        render_phone(p, "netvisor:contact"),
                                        render_email(p, "netvisor:contact"),
                                        rng.choice(("Toimitusjohtaja", "Talouspäällikkö",
                                                    "Myyntipäällikkö", "")), True))
                self.next_contact += 1
            if rng.random() < 0.1:
                fields["Comment"] = f"Yhteyshenkilö {p.first_name}, puh. {phone}"
            modified = now - timedelta(days=rng.randint(1, 4000), minutes=rng.randint(0, 600))
            cust = Customer(key, fields, contacts, modified)
            self.customers[key] = cust
            self.by_code[code] = key
            # Invoices: Aino has an open one this year (and an old paid one), Eeva none.
            if p.idx == 2:
                dates: list[tuple[date, str | None]] = []
            elif p.idx == 0:
                this_year = max(date(self.today.year, 1, 1), self.today - timedelta(days=5))
                dates = [(this_year, "open"),
                         (self.today - timedelta(days=11 * 365 + 40), "paid")]
            else:
                n = rng.choice((0, 1, 1, 2, 3, 5))
                dates = [(self.today - timedelta(days=rng.randint(1, 12 * 365)), None)
                         for _ in range(n)]
            for inv_date, forced in sorted(dates):
                key_i = self.next_invoice
                self.next_invoice += 1
                due = inv_date + timedelta(days=14)
                if forced:
                    status = forced
                elif (self.today - inv_date).days > 90 or rng.random() < 0.6:
                    status = "paid"
                else:
                    status = "overdue" if due < self.today else "open"
                lines = [(name, price, float(rng.randint(1, 5)))
                         for name, price in rng.sample(PRODUCTS, rng.randint(1, 3))]
                inv = Invoice(key_i, invoice_no, inv_date, due, status, key, code,
                              fields["Name"], (p.street, p.postcode, p.city),
                              reference_number(invoice_no + 1000), lines,
                              datetime.combine(min(due, self.today), datetime.min.time())
                              + timedelta(hours=9))
                invoice_no += 1
                self.invoices[key_i] = inv
                self.invoices_by_customer.setdefault(key, []).append(key_i)
                if cust.modified < inv.modified:
                    cust.modified = inv.modified

    # --- inspection (sandbox.faults.VendorState contract) ------------------------

    def record(self, kind: str, id: str) -> dict[str, Any] | None:
        """`customer` (deleted ones: state "deleted"), `contactperson`, `salesinvoice`."""
        try:
            key = int(id)
        except ValueError:
            return None
        with self.lock:
            if kind == "customer":
                c = self.customers.get(key)
                if c is None:
                    if key in self.deleted:
                        return {"kind": "customer", "id": id, "state": "deleted"}
                    return None
                return {"kind": "customer", "id": id,
                        "state": "active" if c.fields["IsActive"] == "1" else "inactive",
                        "fields": dict(c.fields), "modified": c.modified.isoformat(),
                        "contacts": [vars(x) for x in c.contacts],
                        "invoices": list(self.invoices_by_customer.get(key, []))}
            if kind == "contactperson":
                for c in self.customers.values():
                    for x in c.contacts:
                        if x.key == key:
                            return {"kind": "contactperson", "id": id, "state": "active",
                                    "customer": c.key, **vars(x)}
                if key in self.deleted_contacts:
                    return {"kind": "contactperson", "id": id, "state": "deleted"}
                return None
            if kind == "salesinvoice":
                inv = self.invoices.get(key)
                if inv is None:
                    return None
                return {"kind": "salesinvoice", "id": id, "state": inv.status,
                        "customer": inv.customer_key, "customer_name": inv.customer_name,
                        "invoice_date": inv.invoice_date.isoformat(), "amount": inv.amount}
        return None

    def find(self, email: str | None = None, phone: str | None = None) -> list[dict[str, Any]]:
        """Customers and contact persons holding the e-mail (any case) or phone (any format)."""
        needle = (email or "").strip().lower()
        digits = _phone_key(phone) if phone else None
        out: list[dict[str, Any]] = []
        with self.lock:
            for c in self.customers.values():
                f = c.fields
                state = "active" if f["IsActive"] == "1" else "inactive"
                if (needle and needle in (f["Email"].lower(), f["ContactPersonEmail"].lower(),
                                          f["EmailInvoicingAddress"].lower())) or (
                        digits and digits in (_phone_key(f["PhoneNumber"]),
                                              _phone_key(f["ContactPersonPhone"]))):
                    out.append({"kind": "customer", "id": str(c.key), "state": state})
                for x in c.contacts:
                    if (needle and x.email.lower() == needle) or (
                            digits and _phone_key(x.phone) == digits):
                        out.append({"kind": "contactperson", "id": str(x.key),
                                    "state": "active", "customer": str(c.key)})
        return out

    def fault_response(self, kind: str, headers: Headers) -> Response:
        """Injected faults: a FAILED status, as HTTP 200 or, when the request asked for
        status codes, as the code Netvisor gives it (the app's HTTP_STATUS); or a 503."""
        from sandbox.netvisor.app import HTTP_STATUS, USE_STATUS_CODES
        from sandbox.netvisor.xml import failed_body, ok_body

        if kind == "malformed":
            return Response(ok_body("<Customerlist><Customer><Netvisorkey>1")[:-20],
                            media_type="text/xml")
        if kind == "rate_limit":
            codes = headers.get(USE_STATUS_CODES, "").strip() == "1"
            return Response(failed_body("REQUEST_NOT_ALLOWED",
                                        "Too many simultaneous requests, try again later"),
                            status_code=HTTP_STATUS["REQUEST_NOT_ALLOWED"] if codes else 200,
                            media_type="text/xml")
        return Response("<html><body>503 Service Unavailable</body></html>",
                        status_code=503, media_type="text/html")


def _phone_key(phone: str | None) -> str:
    """Last nine digits: +358 40 123 4567, 040 1234567 and +358401234567 agree."""
    digits = "".join(c for c in phone or "" if c.isdigit())
    return digits[-9:] if len(digits) >= 6 else ""
