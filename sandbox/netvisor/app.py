"""Netvisor's `.nv` resources (reference §D.3) over `NetvisorState`.

Each request is authenticated the way Netvisor does it: every `X-Netvisor-*`
header present, known ids, a fresh timestamp, the SHA-256 MAC recomputed from
the keys the sandbox holds, and a TransactionId never seen before. Then the
environment is held for the duration of the request: Netvisor tells integrators
to send one message at a time, and a second overlapping request is refused.
Failures are HTTP 200 with `<Status>FAILED</Status>` unless the client asked for
real status codes with `X-Netvisor-Authentication-UseHTTPResponseStatusCodes: 1`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.faults import make_vendor_app
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
from sandbox.netvisor.xml import XmlInputError, children, el, failed_body, ok_body, parse
from sandbox.people import Person

H = "x-netvisor-"
REQUIRED_HEADERS = (
    "x-netvisor-authentication-sender", "x-netvisor-authentication-customerid",
    "x-netvisor-authentication-partnerid", "x-netvisor-authentication-timestamp",
    "x-netvisor-authentication-transactionid", "x-netvisor-authentication-mac",
    "x-netvisor-authentication-machashcalculationalgorithm",
    "x-netvisor-interface-language", "x-netvisor-organisation-id",
)
HTTP_STATUS = {"AUTHENTICATION_FAILED": 401, "REQUEST_NOT_UNIQUE": 409, "INVALID_DATA": 400,
               "INVALID_DATA_SIZE": 400, "DUPLICATE_DATA": 409, "REQUEST_NOT_ALLOWED": 429,
               "RESOURCE_NOT_FOUND": 404}
MAX_IDLIST = 500
MAX_CODELIST = 100


class NvError(Exception):
    """A Netvisor failure: `CATEGORY :: message`."""

    def __init__(self, category: str, message: str) -> None:
        super().__init__(f"{category} :: {message}")
        self.category = category
        self.message = message


def request_url(request: Request) -> str:
    """The URL the client sent: scheme://Host + raw path + '?' + raw query (if any)."""
    scope = request.scope
    host = request.headers.get("host", "")
    path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    path = path.split("?", 1)[0]
    qs = scope.get("query_string", b"").decode("latin-1")
    return f"{scope.get('scheme', 'http')}://{host}{path}" + (f"?{qs}" if qs else "")


def compute_mac(url: str, sender: str, customer_id: str, timestamp: str, language: str,
                organisation_id: str, transaction_id: str, customer_key: str,
                partner_key: str) -> str:
    """SHA-256 hex of the nine values joined with '&' (the order of reference §D.3)."""
    joined = "&".join([url, sender, customer_id, timestamp, language, organisation_id,
                       transaction_id, customer_key, partner_key])
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


def parse_timestamp(raw: str) -> datetime | None:
    """`YYYY-MM-DD HH:MM:SS.fff` (UTC); the fraction is optional."""
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(raw.strip(), fmt)
        except ValueError:
            continue
    return None


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


class NetvisorApi:
    """Route handlers bound to one environment."""

    def __init__(self, state: NetvisorState) -> None:
        self.state = state

    # --- envelope ----------------------------------------------------------------

    def _authenticate(self, request: Request) -> None:
        s = self.state
        h = request.headers
        missing = [name for name in REQUIRED_HEADERS if not h.get(name)]
        if missing:
            raise NvError("AUTHENTICATION_FAILED", f"Missing header {missing[0]}")
        if h[H + "authentication-machashcalculationalgorithm"].upper() != "SHA256":
            raise NvError("AUTHENTICATION_FAILED", "MAC hash calculation algorithm must be "
                          "SHA256")
        language = h[H + "interface-language"]
        if language.upper() not in ("FI", "EN", "SE"):
            raise NvError("AUTHENTICATION_FAILED", "Interface language must be FI, EN or SE")
        if (h[H + "authentication-customerid"] != s.customer_id
                or h[H + "authentication-partnerid"] != s.partner_id
                or h[H + "organisation-id"] != s.organisation_id):
            raise NvError("AUTHENTICATION_FAILED", "Integration keys are not valid or the "
                          "organisation is not found")
        ts_raw = h[H + "authentication-timestamp"]
        ts = parse_timestamp(ts_raw)
        if ts is None:
            raise NvError("AUTHENTICATION_FAILED", "Timestamp is not in format "
                          "YYYY-MM-DD HH:MM:SS.fff")
        skew = abs((datetime.now(UTC).replace(tzinfo=None) - ts).total_seconds())
        if skew > float(s.settings["timestamp_tolerance"]):
            raise NvError("AUTHENTICATION_FAILED", "Timestamp is too old or in the future")
        txid = h[H + "authentication-transactionid"]
        url = request_url(request)
        given = h[H + "authentication-mac"].strip().lower()
        candidates = {url, unquote(url)}
        if not any(hmac.compare_digest(given, compute_mac(
                u, h[H + "authentication-sender"], s.customer_id, ts_raw, language,
                s.organisation_id, txid, s.customer_key, s.partner_key))
                for u in candidates):
            raise NvError("AUTHENTICATION_FAILED", "Integration keys are not valid (MAC "
                          "does not match)")
        with s.lock:
            if txid in s.transaction_ids:
                raise NvError("REQUEST_NOT_UNIQUE", f"TransactionId {txid} has already been "
                              "used")
            s.transaction_ids.add(txid)

    def wrap(self, handler: Callable[[Request], Awaitable[str]]) -> Any:
        async def endpoint(request: Request) -> Response:
            use_codes = request.headers.get(
                H + "authentication-usehttpresponsestatuscodes", "").strip() == "1"
            s = self.state
            held = False
            try:
                self._authenticate(request)
                with s.lock:
                    if s.settings["concurrency_guard"] and s.in_flight:
                        raise NvError("REQUEST_NOT_ALLOWED", "Another request to this "
                                      "customer environment is still being processed; send "
                                      "one request at a time")
                    s.in_flight += 1
                    held = True
                if s.settings["response_delay"]:
                    await asyncio.sleep(float(s.settings["response_delay"]))
                inner = await handler(request)
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

    async def customerlist(self, request: Request) -> str:
        q = request.query_params
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
                + el("LastModified", c.modified.strftime("%Y-%m-%d %H:%M:%S"))
                + "</Customer>")

    async def getcustomer(self, request: Request) -> str:
        q = request.query_params
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

    async def customer(self, request: Request) -> str:
        q = request.query_params
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

    async def deletecustomer(self, request: Request) -> str:
        s = self.state
        key = _int("customerid", request.query_params.get("customerid"))
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

    async def contactperson(self, request: Request) -> str:
        q = request.query_params
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
        base = str(request.base_url).rstrip("/")
        open_sum = 0.0 if inv.status == "paid" else inv.amount
        return "".join((
            "<SalesInvoice>", el("NetvisorKey", inv.key), el("InvoiceNumber", inv.number),
            el("InvoicingDate", inv.invoice_date.isoformat(), ' format="ansi"'),
            el("InvoiceStatus", inv.status), el("CustomerCode", inv.customer_code),
            el("CustomerName", inv.customer_name), el("ReferenceNumber", inv.reference),
            el("InvoiceSum", _money(inv.amount)), el("OpenSum", _money(open_sum)),
            el("Uri", f"{base}/getsalesinvoice.nv?netvisorkey={inv.key}"), "</SalesInvoice>"))

    async def salesinvoicelist(self, request: Request) -> str:
        q = request.query_params
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
                and (status is None or inv.status == status)
                and (code is None or inv.customer_code == code)]
        return "<SalesInvoiceList>" + "".join(rows) + "</SalesInvoiceList>"

    async def getsalesinvoice(self, request: Request) -> str:
        key = _int("netvisorkey", request.query_params.get("netvisorkey"))
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

    async def deletesalesinvoice(self, request: Request) -> str:
        raise NvError("INVALID_DATA", "Sales invoices are statutory vouchers and cannot be "
                      "deleted through the sandbox API")

    async def unknown(self, request: Request) -> str:
        raise NvError("RESOURCE_NOT_FOUND", f"Unknown resource {request.url.path}")

    def routes(self) -> list[Route]:
        w = self.wrap
        both = ["GET", "POST"]
        return [
            Route("/customerlist.nv", w(self.customerlist), methods=["GET"]),
            Route("/getcustomer.nv", w(self.getcustomer), methods=["GET"]),
            Route("/customer.nv", w(self.customer), methods=["POST"]),
            Route("/deletecustomer.nv", w(self.deletecustomer), methods=both),
            Route("/contactperson.nv", w(self.contactperson), methods=["POST"]),
            Route("/salesinvoicelist.nv", w(self.salesinvoicelist), methods=["GET"]),
            Route("/getsalesinvoice.nv", w(self.getsalesinvoice), methods=["GET"]),
            Route("/deletesalesinvoice.nv", w(self.deletesalesinvoice), methods=both),
            Route("/{name:path}.nv", w(self.unknown), methods=both),
        ]


def _keyword_match(keyword: str, f: dict[str, str]) -> bool:
    """Prefix match on name (whole or any word), name extension, code and business id."""
    name = f["Name"].lower()
    if name.startswith(keyword) or any(w.startswith(keyword) for w in name.split()):
        return True
    return any(f[k].lower().startswith(keyword)
               for k in ("NameExtension", "InternalIdentifier", "ExternalIdentifier") if f[k])


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
