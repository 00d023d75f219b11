"""Netvisor's `.nv` resources (reference §D.3) over `NetvisorState`.

Each request is authenticated the way Netvisor does it (`auth.py`: HMACSHA256, or
the legacy SHA256/MD5 while `accept_legacy_mac` allows), its parameters read by
case-insensitive name with unknown ones refused, and then the environment is held for
the duration of the request: Netvisor tells integrators to send one message at a time,
and a second overlapping request is refused. Failures are HTTP 200 with
`<Status>FAILED</Status>` unless the client asked for real status codes with
`X-Netvisor-Authentication-UseHTTPResponseStatusCodes: 1` (400, 401, 403, 500).
Times are written as Netvisor writes them (`d.M.yyyy H:mm:ss`, Finnish local time).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.faults import make_vendor_app
from sandbox.netvisor.auth import H, authenticate
from sandbox.netvisor.state import (
    BASE_FIELDS,
    CONTACT_DETAIL_FIELDS,
    CONTACT_IMPORT,
    IMPORT_SECTIONS,
    Contact,
    Customer,
    Invoice,
    NetvisorState,
    local_now,
)
from sandbox.netvisor.xml import (
    NvError,
    XmlInputError,
    children,
    el,
    failed_body,
    netvisor_date,
    netvisor_time,
    ok_body,
    parse,
)
from sandbox.people import Person

# With `UseHTTPResponseStatusCodes: 1` Netvisor answers 400 (invalid data), 401
# (authentication failed), 403 (service access error) and 500, each with the XML body
# (topic 77000289952, checked 2026-12). Which category gets 403 is not documented:
# refusing an overlapping request is the sandbox's reading of "service access".
HTTP_STATUS = {"AUTHENTICATION_FAILED": 401, "REQUEST_NOT_UNIQUE": 400, "INVALID_DATA": 400,
               "INVALID_DATA_SIZE": 400, "DUPLICATE_DATA": 400, "RESOURCE_NOT_FOUND": 400,
               "REQUEST_NOT_ALLOWED": 403}
USE_STATUS_CODES = H + "authentication-usehttpresponsestatuscodes"
MAX_IDLIST = 500
MAX_CODELIST = 100
# The parameters each resource takes (names case-insensitive, as at Netvisor). Any
# other is refused with INVALID_DATA: a misspelt filter must not widen a list.
PARAMS: dict[str, frozenset[str]] = {
    "customerlist": frozenset({"keyword", "emailkeyword", "changedsince",
                               "customercodelist"}),
    "getcustomer": frozenset({"id", "idlist"}),
    "customer": frozenset({"method", "id"}),
    "deletecustomer": frozenset({"customerid"}),
    "contactperson": frozenset({"method", "id", "customerid"}),
    "salesinvoicelist": frozenset({"listtype", "invoicesabovenetvisorkey", "customernetvisorkey",
                                   "lastmodifiedstart", "lastmodifiedend", "begininvoicedate",
                                   "endinvoicedate", "invoicenumber", "invoicestatus",
                                   "customercode"}),
    "getsalesinvoice": frozenset({"netvisorkey"}),
    "deletesalesinvoice": frozenset({"netvisorkey"}),
}
Query = dict[str, str]


def parse_local(name: str, raw: str) -> datetime:
    """`YYYY-MM-DDThh:mm:ss` or a date (`YYYY-MM-DD`), Finnish local time."""
    raw = raw.strip().replace(" ", "T")
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise NvError("INVALID_DATA", f"Parameter {name} is not a valid date") from None


def _int(name: str, raw: str | None) -> int:
    try:
        return int(str(raw).strip())
    except (TypeError, ValueError):
        raise NvError("INVALID_DATA", f"Parameter {name} must be a number") from None



# Resources Netvisor lets a GET write with (deletes by id): HEAD on them is refused.
WRITES_ON_GET = frozenset({"deletecustomer", "deletesalesinvoice"})

class NetvisorApi:
    """Route handlers bound to one environment."""

    def __init__(self, state: NetvisorState) -> None:
        self.state = state

    # --- envelope ----------------------------------------------------------------

    def wrap(self, resource: str, handler: Callable[[Request, Query], Awaitable[str]]) -> Any:
        """The envelope around one resource: authentication, its parameters (names
        case-insensitive, unknown ones refused), one request at a time, the XML answer
        with HTTP 200 or, when asked for, a real status code."""
        allowed = PARAMS.get(resource, frozenset())

        async def endpoint(request: Request) -> Response:
            if request.method == "HEAD" and resource in WRITES_ON_GET:
                # Starlette answers HEAD on every GET route; a probe must never delete.
                return Response(status_code=405, headers={"allow": "GET, POST"})
            use_codes = request.headers.get(USE_STATUS_CODES, "").strip() == "1"
            s = self.state
            held = False
            try:
                authenticate(s, request)
                q = _query(request, allowed)
                with s.lock:
                    if s.settings["concurrency_guard"] and s.in_flight:
                        raise NvError("REQUEST_NOT_ALLOWED", "Another request to this "
                                      "customer environment is still being processed; send "
                                      "one request at a time")
                    s.in_flight += 1
                    held = True
                if s.settings["response_delay"]:
                    await asyncio.sleep(float(s.settings["response_delay"]))
                inner = await handler(request, q)
                return Response(ok_body(inner), media_type="text/xml; charset=utf-8")
            except NvError as err:
                status = HTTP_STATUS.get(err.category, 500) if use_codes else 200
                return Response(failed_body(err.category, err.message), status_code=status,
                                media_type="text/xml; charset=utf-8")
            finally:
                if held:
                    with s.lock:
                        s.in_flight -= 1
        return endpoint

    # --- customers ---------------------------------------------------------------

    def _customer_uri(self, request: Request, key: int) -> str:
        return f"{str(request.base_url).rstrip('/')}/getcustomer.nv?id={key}"

    async def customerlist(self, request: Request, q: Query) -> str:
        s = self.state
        keyword = (q.get("keyword") or "").strip().lower()
        email_kw = (q.get("emailkeyword") or "").strip().lower()
        codes = [c.strip() for c in (q.get("customercodelist") or "").split(",") if c.strip()]
        if len(codes) > MAX_CODELIST:
            raise NvError("INVALID_DATA_SIZE", f"customercodelist takes at most {MAX_CODELIST}")
        since = None
        if q.get("changedsince") and not keyword:  # keyword overrides changedsince
            since = parse_local("changedsince", q["changedsince"])
        with s.lock:
            if codes:
                pool: list[Customer] = [s.customers[s.by_code[c]] for c in codes
                                        if c in s.by_code]
            else:
                pool = list(s.customers.values())
        out = []
        for c in pool:
            f = c.fields
            if keyword and not _keyword_match(keyword, f):
                continue
            if email_kw and email_kw not in f["Email"].lower() \
                    and email_kw not in f["EmailInvoicingAddress"].lower():
                continue
            if since is not None and c.modified < since:
                continue
            out.append("".join((
                "<Customer>", el("Netvisorkey", c.key), el("Name", f["Name"]),
                el("Code", f["InternalIdentifier"]),
                el("OrganisationIdentifier", f["ExternalIdentifier"]),
                el("CustomerGroupID", f["CustomerGroupNetvisorKey"]),
                el("CustomerGroupName", f["CustomerGroupName"]),
                el("Uri", self._customer_uri(request, c.key)), "</Customer>")))
        return "<Customerlist>" + "".join(out) + "</Customerlist>"

    def _customer_xml(self, c: Customer) -> str:
        f = c.fields
        base = "".join(el(name, f[name]) for name in BASE_FIELDS
                       if name not in ("Country",))
        base = (el("NetvisorKey", c.key) + base
                + el("Country", f["Country"], ' type="ISO-3166"'))
        details = "".join(el(n, f[n]) for n in CONTACT_DETAIL_FIELDS)
        contacts = "".join(
            "<ContactPerson>" + el("NetvisorKey", x.key) + el("FirstName", x.first_name)
            + el("LastName", x.last_name) + el("PhoneNumber", x.phone) + el("Email", x.email)
            + el("Title", x.title) + el("IsDefault", int(x.is_default)) + "</ContactPerson>"
            for x in c.contacts)
        return ("<Customer><CustomerBaseInformation>" + base + "</CustomerBaseInformation>"
                "<CustomerFinvoiceDetails>" + el("FinvoiceAddress", "")
                + el("FinvoiceRouterCode", "") + "</CustomerFinvoiceDetails>"
                "<CustomerDeliveryDetails>" + el("DeliveryName", "")
                + el("DeliveryStreetAddress", "") + el("DeliveryCity", "")
                + el("DeliveryPostNumber", "") + el("DeliveryCountry", "")
                + "</CustomerDeliveryDetails>"
                "<CustomerContactDetails>" + details + "</CustomerContactDetails>"
                "<ContactPersons>" + contacts + "</ContactPersons>"
                "<CustomerAdditionalInformation>" + el("Comment", f["Comment"])
                + el("ReferenceNumber", f["ReferenceNumber"])
                + "</CustomerAdditionalInformation>"
                + el("LastModified", netvisor_time(c.modified))
                + "</Customer>")

    async def getcustomer(self, request: Request, q: Query) -> str:
        s = self.state
        if q.get("idlist"):
            ids = [_int("idlist", x) for x in q["idlist"].split(",") if x.strip()]
            if len(ids) > MAX_IDLIST:
                raise NvError("INVALID_DATA_SIZE", f"idlist takes at most {MAX_IDLIST} ids")
            with s.lock:
                found = [s.customers[i] for i in ids if i in s.customers]
                return "<Customers>" + "".join(self._customer_xml(c) for c in found) \
                    + "</Customers>"
        key = _int("id", q.get("id"))
        with s.lock:
            c = s.customers.get(key)
            if c is None:
                raise NvError("INVALID_DATA", f"Customer with NetvisorKey {key} not found")
            return self._customer_xml(c)

    async def customer(self, request: Request, q: Query) -> str:
        s = self.state
        method = (q.get("method") or "").lower()
        if method not in ("add", "edit"):
            raise NvError("INVALID_DATA", "Parameter method must be add or edit")
        try:
            root = parse(await request.body())
        except XmlInputError as exc:
            raise NvError("INVALID_DATA", str(exc)) from None
        node = children(root).get("customer") if root.tag.lower() == "root" else None
        if node is None:
            raise NvError("INVALID_DATA", "Expected <root><customer>…</customer></root>")
        changes: dict[str, str] = {}
        for child in node:
            section = child.tag.lower()
            mapping = IMPORT_SECTIONS.get(section)
            if mapping is None:
                if section in ("customerfinvoicedetails", "customerdeliverydetails"):
                    continue  # accepted, not stored by the sandbox
                raise NvError("INVALID_DATA", f"Unknown element <{child.tag}> in <customer>")
            for item in child:
                name = item.tag.lower()
                if name not in mapping:
                    raise NvError("INVALID_DATA", f"Unknown element <{item.tag}> in "
                                  f"<{child.tag}>")
                changes[mapping[name]] = (item.text or "").strip()
        for flag in ("IsActive", "IsPrivateCustomer"):
            if flag in changes and changes[flag] not in ("0", "1", ""):
                raise NvError("INVALID_DATA", f"{flag.lower()} must be 0 or 1")
        now = local_now()
        with s.lock:
            if method == "add":
                if not changes.get("Name"):
                    raise NvError("INVALID_DATA", "Customer name is required")
                code = changes.get("InternalIdentifier") or str(s.next_customer - 1000 + 10001)
                if code in s.by_code:
                    raise NvError("DUPLICATE_DATA", f"Customer code {code} already exists")
                key = s.next_customer
                s.next_customer += 1
                fields = {n: "" for n in (*BASE_FIELDS, *CONTACT_DETAIL_FIELDS, "Comment",
                                          "ReferenceNumber")}
                fields.update({"IsActive": "1", "IsPrivateCustomer": "0", "Country": "FI"})
                fields.update(changes)
                fields["InternalIdentifier"] = code
                s.customers[key] = Customer(key, fields, [], now)
                s.by_code[code] = key
                return ("<Replies>" + el("InsertedDataIdentifier", key) + "</Replies>")
            key = _int("id", q.get("id"))
            c = s.customers.get(key)
            if c is None:
                raise NvError("INVALID_DATA", f"Customer with NetvisorKey {key} not found")
            if "Name" in changes and not changes["Name"]:
                raise NvError("INVALID_DATA", "Customer name cannot be empty")
            new_code = changes.get("InternalIdentifier")
            old_code = c.fields["InternalIdentifier"]
            if new_code is not None and new_code != old_code:
                if new_code in s.by_code:
                    raise NvError("DUPLICATE_DATA", f"Customer code {new_code} already exists")
                s.by_code.pop(old_code, None)
                if new_code:
                    s.by_code[new_code] = key
            if changes.get("IsActive") == "":
                changes["IsActive"] = "0"
            c.fields.update(changes)  # empty element -> blank field, absent -> untouched
            c.modified = max(now, c.modified + timedelta(seconds=1))
            return ""

    async def deletecustomer(self, request: Request, q: Query) -> str:
        s = self.state
        key = _int("customerid", q.get("customerid"))
        with s.lock:
            if key not in s.customers:
                raise NvError("INVALID_DATA", f"Customer with NetvisorKey {key} not found")
            if s.invoices_by_customer.get(key):
                raise NvError("INVALID_DATA", "The customer has invoices and cannot be "
                              "deleted")
            c = s.customers.pop(key)
            s.by_code.pop(c.fields["InternalIdentifier"], None)
            s.deleted_contacts.update(x.key for x in c.contacts)
            s.deleted[key] = local_now()
        return ""

    # --- contact persons -----------------------------------------------------------

    def _find_contact(self, key: int) -> tuple[Customer, Contact]:
        for c in self.state.customers.values():
            for x in c.contacts:
                if x.key == key:
                    return c, x
        raise NvError("INVALID_DATA", f"Contact person with NetvisorKey {key} not found")

    async def contactperson(self, request: Request, q: Query) -> str:
        s = self.state
        method = (q.get("method") or "").lower()
        if method not in ("add", "edit", "delete"):
            raise NvError("INVALID_DATA", "Parameter method must be add, edit or delete")
        changes: dict[str, str] = {}
        if method != "delete":
            try:
                root = parse(await request.body())
            except XmlInputError as exc:
                raise NvError("INVALID_DATA", str(exc)) from None
            node = children(root).get("contactperson") if root.tag.lower() == "root" else None
            if node is None:
                raise NvError("INVALID_DATA",
                              "Expected <root><contactperson>…</contactperson></root>")
            for item in node:
                name = item.tag.lower()
                if name not in CONTACT_IMPORT:
                    raise NvError("INVALID_DATA", f"Unknown element <{item.tag}> in "
                                  "<contactperson>")
                changes[CONTACT_IMPORT[name]] = (item.text or "").strip()
            if changes.get("is_default", "0") not in ("0", "1", ""):
                raise NvError("INVALID_DATA", "isdefault must be 0 or 1")
        now = local_now()
        with s.lock:
            if method == "add":
                ckey = _int("customerid", q.get("customerid"))
                c = s.customers.get(ckey)
                if c is None:
                    raise NvError("INVALID_DATA", f"Customer with NetvisorKey {ckey} not found")
                if not changes.get("last_name"):
                    raise NvError("INVALID_DATA", "lastname is required")
                make_default = changes.get("is_default") == "1" or not c.contacts
                if make_default:
                    for x in c.contacts:
                        x.is_default = False
                contact = Contact(s.next_contact, changes.get("first_name", ""),
                                  changes["last_name"], changes.get("phone", ""),
                                  changes.get("email", ""), changes.get("title", ""),
                                  make_default)
                s.next_contact += 1
                c.contacts.append(contact)
                c.modified = now
                return "<Replies>" + el("InsertedDataIdentifier", contact.key) + "</Replies>"
            c, contact = self._find_contact(_int("id", q.get("id")))
            if method == "delete":
                if contact.is_default:
                    raise NvError("INVALID_DATA", "The default contact person cannot be "
                                  "deleted")
                c.contacts.remove(contact)
                s.deleted_contacts.add(contact.key)
                c.modified = now
                return ""
            if changes.get("last_name") == "" and "last_name" in changes:
                raise NvError("INVALID_DATA", "lastname cannot be empty")
            flag = changes.pop("is_default", None)
            for attr, value in changes.items():
                setattr(contact, attr, value)
            if flag == "1":
                for x in c.contacts:
                    x.is_default = x is contact
            elif flag == "0" and contact.is_default:
                raise NvError("INVALID_DATA", "Mark another contact person as default first")
            c.modified = now
            return ""

    # --- sales invoices --------------------------------------------------------------

    def _invoice_row(self, request: Request, inv: Invoice) -> str:
        """One list item as real lists write it: `Invoicedate` as `dd.mm.yyyy`, the
        status `open` with an `overdue` substatus once past due (checked 2026-12)."""
        base = str(request.base_url).rstrip("/")
        open_sum = 0.0 if inv.status == "paid" else inv.amount
        status, substatus = ("open", "overdue") if inv.status == "overdue" else (inv.status,
                                                                                 "")
        return "".join((
            "<SalesInvoice>", el("NetvisorKey", inv.key), el("InvoiceNumber", inv.number),
            el("Invoicedate", netvisor_date(inv.invoice_date)),
            el("InvoiceStatus", status, f' substatus="{substatus}"'),
            el("CustomerCode", inv.customer_code),
            el("CustomerName", inv.customer_name), el("ReferenceNumber", inv.reference),
            el("InvoiceSum", _money(inv.amount)), el("OpenSum", _money(open_sum)),
            el("Uri", f"{base}/getsalesinvoice.nv?netvisorkey={inv.key}"), "</SalesInvoice>"))

    async def salesinvoicelist(self, request: Request, q: Query) -> str:
        s = self.state
        if q.get("listtype") == "preinvoice":
            return "<SalesInvoiceList />"
        above = _int("invoicesabovenetvisorkey", q["invoicesabovenetvisorkey"]) \
            if q.get("invoicesabovenetvisorkey") else None
        cust = _int("customernetvisorkey", q["customernetvisorkey"]) \
            if q.get("customernetvisorkey") else None
        start = parse_local("lastmodifiedstart", q["lastmodifiedstart"]) \
            if q.get("lastmodifiedstart") else None
        end = parse_local("lastmodifiedend", q["lastmodifiedend"]) \
            if q.get("lastmodifiedend") else None
        begin_d = parse_local("begininvoicedate", q["begininvoicedate"]).date() \
            if q.get("begininvoicedate") else None
        end_d = parse_local("endinvoicedate", q["endinvoicedate"]).date() \
            if q.get("endinvoicedate") else None
        status = (q.get("invoicestatus") or "").lower() or None
        code = q.get("customercode")
        number = _int("invoicenumber", q["invoicenumber"]) if q.get("invoicenumber") else None
        with s.lock:
            if cust is not None:
                pool = [s.invoices[k] for k in s.invoices_by_customer.get(cust, [])]
            else:
                pool = list(s.invoices.values())
        rows = [self._invoice_row(request, inv) for inv in sorted(pool, key=lambda i: i.key)
                if (above is None or inv.key > above)
                and (start is None or inv.modified >= start)
                and (end is None or inv.modified <= end)
                and (begin_d is None or inv.invoice_date >= begin_d)
                and (end_d is None or inv.invoice_date <= end_d)
                and (status is None or status in _statuses(inv))
                and (code is None or inv.customer_code == code)
                and (number is None or inv.number == number)]
        return "<SalesInvoiceList>" + "".join(rows) + "</SalesInvoiceList>"

    async def getsalesinvoice(self, request: Request, q: Query) -> str:
        key = _int("netvisorkey", q.get("netvisorkey"))
        with self.state.lock:
            inv = self.state.invoices.get(key)
        if inv is None:
            raise NvError("INVALID_DATA", f"Sales invoice with NetvisorKey {key} not found")
        street, postcode, city = inv.address
        lines = "".join(
            "<InvoiceLine><SalesInvoiceProductLine>" + el("ProductName", name)
            + el("ProductUnitPrice", _money(price)) + el("ProductVatPercentage", "25,5")
            + el("SalesInvoiceProductLineQuantity", f"{qty:g}")
            + el("SalesInvoiceProductLineSum", _money(price * qty))
            + "</SalesInvoiceProductLine></InvoiceLine>"
            for name, price, qty in inv.lines)
        return "".join((
            "<SalesInvoice>", el("SalesInvoiceNetvisorKey", inv.key),
            el("SalesInvoiceNumber", inv.number),
            el("SalesInvoiceDate", inv.invoice_date.isoformat(), ' format="ansi"'),
            el("SalesInvoiceDueDate", inv.due_date.isoformat(), ' format="ansi"'),
            el("SalesInvoiceReferenceNumber", inv.reference),
            el("SalesInvoiceAmount", _money(inv.amount)), el("InvoiceStatus", inv.status),
            el("InvoicingCustomerIdentifier", inv.customer_code),
            el("InvoicingCustomerNetvisorKey", inv.customer_key),
            el("InvoicingCustomerName", inv.customer_name),
            el("InvoicingCustomerAddressline", street),
            el("InvoicingCustomerPostnumber", postcode), el("InvoicingCustomerTown", city),
            el("InvoicingCustomerCountryCode", "FI"),
            "<InvoiceLines>", lines, "</InvoiceLines>", "</SalesInvoice>"))

    async def deletesalesinvoice(self, request: Request, q: Query) -> str:
        raise NvError("INVALID_DATA", "Sales invoices are statutory vouchers and cannot be "
                      "deleted through the sandbox API")

    async def unknown(self, request: Request, q: Query) -> str:
        raise NvError("RESOURCE_NOT_FOUND", f"Unknown resource {request.url.path}")

    def routes(self) -> list[Route]:
        both = ["GET", "POST"]
        table: list[tuple[str, Callable[[Request, Query], Awaitable[str]], list[str]]] = [
            ("customerlist", self.customerlist, ["GET"]),
            ("getcustomer", self.getcustomer, ["GET"]),
            ("customer", self.customer, ["POST"]),
            ("deletecustomer", self.deletecustomer, both),
            ("contactperson", self.contactperson, ["POST"]),
            ("salesinvoicelist", self.salesinvoicelist, ["GET"]),
            ("getsalesinvoice", self.getsalesinvoice, ["GET"]),
            ("deletesalesinvoice", self.deletesalesinvoice, both),
        ]
        routes = [_any_case(Route(f"/{name}.nv", self.wrap(name, handler), methods=methods))
                  for name, handler, methods in table]
        return [*routes, _any_case(Route("/{name:path}.nv", self.wrap("", self.unknown),
                                         methods=both))]


def _any_case(route: Route) -> Route:
    """Resource names are case-insensitive at Netvisor (`CustomerList.nv` is
    `customerlist.nv`); the route keeps its lower-case template for the call counts."""
    route.path_regex = re.compile(route.path_regex.pattern, re.IGNORECASE)
    return route


def _query(request: Request, allowed: frozenset[str]) -> Query:
    """The query parameters by lower-case name; an unknown or repeated one is
    INVALID_DATA (Netvisor refuses it rather than ignoring a filter it cannot read)."""
    out: Query = {}
    for name, value in request.query_params.multi_items():
        key = name.lower()
        if key not in allowed:
            raise NvError("INVALID_DATA", f"Unknown parameter {name}")
        if key in out:
            raise NvError("INVALID_DATA", f"Parameter {name} given more than once")
        out[key] = value
    return out


def _keyword_match(keyword: str, f: dict[str, str]) -> bool:
    """Prefix match on name (whole or any word), name extension, code and business id."""
    name = f["Name"].lower()
    if name.startswith(keyword) or any(w.startswith(keyword) for w in name.split()):
        return True
    return any(f[k].lower().startswith(keyword)
               for k in ("NameExtension", "InternalIdentifier", "ExternalIdentifier") if f[k])


def _statuses(inv: Invoice) -> tuple[str, ...]:
    """What `invoicestatus=` matches: an overdue invoice is open, substatus overdue."""
    return ("open", "overdue") if inv.status == "overdue" else (inv.status,)


def _money(value: float) -> str:
    """Netvisor amounts use a decimal comma."""
    return f"{value:.2f}".replace(".", ",")


def build_app(people: list[Person], seed: int, settings: dict[str, Any] | None = None
              ) -> Starlette:
    """The Netvisor emulator; `settings` knobs are in `state.DEFAULT_SETTINGS`."""
    state = NetvisorState(people, seed, settings)
    api = NetvisorApi(state)
    app = make_vendor_app(state, api.routes())
    app.state.netvisor = state
    return app
