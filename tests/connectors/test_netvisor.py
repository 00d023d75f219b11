"""Netvisor connector against an injected transport: signing, the XML envelope and its
FAILED answers (HTTP 200), retries, chunking, and the delete-or-retain erasure (§D.3)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from defusedxml import ElementTree as SafeET
from pydantic import ValidationError

from connectors.errors import AuthError, BadResponse, ConfigError, RateLimited, VendorError
from connectors.http import RetryPolicy, SerialLimiter
from connectors.netvisor import NetvisorConnector, NetvisorSettings, compute_mac
from hub.domain import Action, Identifier, IdentifierKind, RecordFacts, RecordOutcome, RecordRef
from hub.policy import EraseMode, SystemPolicy

BASE = "http://netvisor.test"
CREDS = {
    "base_url": BASE, "sender": "hub-test", "customer_id": "CID_1", "partner_id": "PID_1",
    "customer_key": "C" * 32, "partner_key": "P" * 32, "organisation_id": "1967543-8",
}
H = "x-netvisor-"
TODAY = date(2026, 12, 2)
POLICY = SystemPolicy(erase=EraseMode.RETAIN_IF_REQUIRED, retention_years=6,
                      retention_basis="Kirjanpitolaki (1336/1997) 2 luku 10 §",
                      legal_basis="GDPR art. 6(1)(c)")


def ok(inner: str = "") -> httpx.Response:
    return httpx.Response(200, text=(
        '<?xml version="1.0" encoding="utf-8"?><Root><ResponseStatus><Status>OK</Status>'
        f"<TimeStamp>4.5.2026 12:00:00</TimeStamp></ResponseStatus>{inner}</Root>"),
        headers={"content-type": "text/xml"})


def failed(message: str, status: int = 200) -> httpx.Response:
    """Netvisor's FAILED answer: HTTP 200, or with ``UseHTTPResponseStatusCodes`` the
    status Netvisor gives it (400, 401, 403, 500), the same XML body either way."""
    return httpx.Response(status, text=(
        "<Root><ResponseStatus><Status>FAILED</Status>"
        f"<Status>{message}</Status><TimeStamp>4.5.2026 12:00:00</TimeStamp>"
        "</ResponseStatus></Root>"), headers={"content-type": "text/xml"})


def customer_xml(key: int, mail: str = "aino.virtanen@example.fi", phone: str = "040 123 4567",
                 *, active: int = 1, comment: str = "", contacts: str = "",
                 contact_person: str = "", extra: str = "", name: str = "Aino Virtanen",
                 street: str = "", einvoice: str = "") -> str:
    return (f"<Customer><CustomerBaseInformation><NetvisorKey>{key}</NetvisorKey>"
            f"<InternalIdentifier>{key + 9000}</InternalIdentifier><Name>{name}</Name>"
            f"<StreetAddress>{street}</StreetAddress>"
            f"<PhoneNumber>{phone}</PhoneNumber><Email>{mail}</Email>"
            f"<EmailInvoicingAddress>{einvoice}</EmailInvoicingAddress>"
            f"<IsActive>{active}</IsActive>{extra}"
            "</CustomerBaseInformation>"
            f"<CustomerContactDetails><ContactName /><ContactPerson>{contact_person}"
            "</ContactPerson><ContactPersonEmail /><ContactPersonPhone />"
            "</CustomerContactDetails>"
            f"<ContactPersons>{contacts}</ContactPersons>"
            f"<CustomerAdditionalInformation><Comment>{comment}</Comment>"
            "<ReferenceNumber>1234</ReferenceNumber></CustomerAdditionalInformation>"
            "<LastModified>1.5.2026 10:00:00</LastModified></Customer>")


def contact_xml(key: int, mail: str, phone: str = "+358401234567", *, first: str = "Aino",
                last: str = "Virtanen") -> str:
    return (f"<ContactPerson><NetvisorKey>{key}</NetvisorKey><FirstName>{first}</FirstName>"
            f"<LastName>{last}</LastName><PhoneNumber>{phone}</PhoneNumber>"
            f"<Email>{mail}</Email><IsDefault>1</IsDefault></ContactPerson>")


class FakeNetvisor:
    """Checks every request's signature like Netvisor would, then answers from a script."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.handlers: dict[str, Callable[[httpx.Request], httpx.Response]] = {}
        self.queues: dict[str, list[httpx.Response]] = {}
        self.in_flight = 0
        self.peak = 0
        self.lock = threading.Lock()

    def on(self, resource: str, handler: Any) -> None:
        self.handlers[resource] = handler if callable(handler) else (lambda _r: handler)

    def queue(self, resource: str, *answers: httpx.Response) -> None:
        self.queues.setdefault(resource, []).extend(answers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            self.requests.append(request)
            resource = request.url.path.lstrip("/")
            if self.queues.get(resource):
                return self.queues[resource].pop(0)
            handler = self.handlers.get(resource)
            if handler is None:
                return failed(f"RESOURCE_NOT_FOUND :: {resource}")
            return handler(request)
        finally:
            with self.lock:
                self.in_flight -= 1

    def of(self, resource: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path.lstrip("/") == resource]


def mac_is_valid(request: httpx.Request) -> bool:
    h = request.headers
    expected = compute_mac(str(request.url), h[H + "authentication-sender"],
                           CREDS["customer_id"], h[H + "authentication-timestamp"],
                           h[H + "interface-language"], CREDS["organisation_id"],
                           h[H + "authentication-transactionid"],
                           h[H + "authentication-timestampunix"], CREDS["customer_key"],
                           CREDS["partner_key"])
    return h[H + "authentication-mac"] == expected


@pytest.fixture
def fake() -> FakeNetvisor:
    return FakeNetvisor()


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make(fake: FakeNetvisor, sleeps: list[float], **kwargs: Any) -> NetvisorConnector:
    settings = NetvisorSettings(_env_file=None, **CREDS)
    return NetvisorConnector(settings, transport=httpx.MockTransport(fake),
                             retry=RetryPolicy(sleep=sleeps.append, jitter=lambda: 0.0),
                             **kwargs)


# ------------------------------------------------------------------ settings, signing


def test_missing_settings_name_the_variables_and_never_show_a_key(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for key, value in CREDS.items():
        monkeypatch.setenv(f"NETVISOR_{key.upper()}", value)
    monkeypatch.delenv("NETVISOR_PARTNER_KEY")
    monkeypatch.delenv("NETVISOR_SENDER")
    with pytest.raises(ConfigError) as info:
        NetvisorConnector.from_env()
    message = str(info.value)
    assert "NETVISOR_PARTNER_KEY is not set" in message and "NETVISOR_SENDER" in message
    assert CREDS["customer_key"] not in message


def test_defaults_language_fi_and_a_timeout_of_at_least_120_seconds():
    settings = NetvisorSettings(_env_file=None, **CREDS)
    assert settings.language == "FI"
    conn = NetvisorConnector(settings)
    assert conn.http.client.timeout.read >= 120
    assert isinstance(conn.http.limiter, SerialLimiter)
    conn.close()


def test_every_request_is_signed_with_hmacsha256_and_asks_for_status_codes(fake, sleeps):
    fake.on("customerlist.nv", ok("<Customerlist />"))
    conn = make(fake, sleeps)
    conn.check()
    conn.find([Identifier(IdentifierKind.EMAIL, "aino.virtanen@example.fi")])
    assert len(fake.requests) == 2
    for request in fake.requests:
        names = {k.lower() for k in request.headers if k.lower().startswith(H)}
        assert len(names) == 11
        assert request.headers[H + "authentication-machashcalculationalgorithm"] == "HMACSHA256"
        assert request.headers[H + "authentication-usehttpresponsestatuscodes"] == "1"
        assert mac_is_valid(request)
        ts = request.headers[H + "authentication-timestamp"]
        assert len(ts) == len("2026-05-04 12:00:00.123") and ts[10] == " " and ts[19] == "."
        unix = int(request.headers[H + "authentication-timestampunix"])
        assert abs(unix - time.time()) < 60
        assert CREDS["customer_key"] not in str(request.headers)
        assert CREDS["partner_key"] not in str(request.headers)
    ids = {r.headers[H + "authentication-transactionid"] for r in fake.requests}
    assert len(ids) == 2
    # The e-mail travels in the query: the MAC covers the URL as sent (encoded).
    assert "emailkeyword=aino.virtanen%40example.fi" in str(fake.requests[1].url)
    assert unquote(str(fake.requests[1].url)).endswith("aino.virtanen@example.fi")


def test_a_retry_is_signed_again_with_a_new_transaction_id(fake, sleeps):
    fake.queue("customerlist.nv", httpx.Response(503, text="<html>503</html>"),
               failed("REQUEST_NOT_UNIQUE :: TransactionId has already been used"))
    fake.on("customerlist.nv", ok("<Customerlist />"))
    conn = make(fake, sleeps)
    conn.check()
    assert len(fake.requests) == 3
    assert len({r.headers[H + "authentication-transactionid"] for r in fake.requests}) == 3
    assert all(mac_is_valid(r) for r in fake.requests)
    assert len(sleeps) == 2


# -------------------------------------------------------------------------- errors


def test_http_200_failed_authentication_is_an_auth_error_not_retried(fake, sleeps):
    fake.on("customerlist.nv", failed("AUTHENTICATION_FAILED :: Integration keys are not "
                                      "valid"))
    conn = make(fake, sleeps)
    with pytest.raises(AuthError, match="AUTHENTICATION_FAILED"):
        conn.check()
    assert conn.api_calls == 1 and sleeps == []


@pytest.mark.parametrize("status", [200, 401])
def test_failed_authentication_is_the_same_auth_error_in_both_modes(fake, sleeps, status):
    fake.on("customerlist.nv", failed("AUTHENTICATION_FAILED :: TimestampUnix is too old",
                                      status))
    conn = make(fake, sleeps)
    with pytest.raises(AuthError, match="TimestampUnix is too old") as caught:
        conn.check()
    assert caught.value.status_code == status and conn.api_calls == 1


@pytest.mark.parametrize("status", [200, 400])
def test_invalid_data_is_the_same_vendor_error_in_both_modes(fake, sleeps, status):
    fake.on("customerlist.nv", failed("INVALID_DATA :: Unknown parameter emailkeywrd", status))
    conn = make(fake, sleeps)
    with pytest.raises(VendorError, match="Unknown parameter") as caught:
        conn.check()
    assert not caught.value.retryable and conn.api_calls == 1


def test_a_403_service_access_error_is_an_auth_error(fake, sleeps):
    fake.on("customerlist.nv", failed("FAILED :: No access to the service", 403))
    with pytest.raises(AuthError):
        make(fake, sleeps).check()


def test_a_500_with_netvisors_body_is_retried_then_succeeds(fake, sleeps):
    fake.queue("customerlist.nv", failed("FAILED :: Internal error", 500))
    fake.on("customerlist.nv", ok("<Customerlist />"))
    conn = make(fake, sleeps)
    conn.check()
    assert conn.api_calls == 2


def test_http_401_is_an_auth_error(fake, sleeps):
    fake.on("customerlist.nv", httpx.Response(401, text="Unauthorized"))
    with pytest.raises(AuthError):
        make(fake, sleeps).check()


def test_invalid_data_is_a_vendor_error_and_not_retried(fake, sleeps):
    fake.on("customerlist.nv", failed("INVALID_DATA :: Parameter changedsince is not a "
                                      "valid date"))
    conn = make(fake, sleeps)
    with pytest.raises(VendorError, match="INVALID_DATA"):
        list(conn.sync("yesterday"))
    assert conn.api_calls == 1


@pytest.mark.parametrize("headers", [{"Retry-After": "2"}, {}])
def test_429_with_and_without_retry_after_then_success(fake, sleeps, headers):
    fake.queue("customerlist.nv", httpx.Response(429, headers=headers))
    fake.on("customerlist.nv", ok("<Customerlist />"))
    conn = make(fake, sleeps)
    conn.check()
    assert conn.api_calls == 2
    assert sleeps == ([2.0] if headers else [sleeps[0]]) and sleeps[0] > 0


def test_netvisor_throttle_answer_is_rate_limited_and_retried(fake, sleeps):
    fake.queue("customerlist.nv", failed("REQUEST_NOT_ALLOWED :: Too many simultaneous "
                                         "requests, try again later"))
    fake.on("customerlist.nv", ok("<Customerlist />"))
    conn = make(fake, sleeps)
    conn.check()
    assert conn.api_calls == 2


def test_throttled_forever_is_reported(fake, sleeps):
    fake.on("customerlist.nv", failed("REQUEST_NOT_ALLOWED :: Too many simultaneous requests"))
    with pytest.raises(RateLimited):
        make(fake, sleeps).check()


@pytest.mark.parametrize("body", [
    "<html><body>Service Unavailable</body></html",  # not XML at all
    '{"json": "instead"}',
    "<Reply><ResponseStatus><Status>OK</Status></ResponseStatus></Reply>",  # wrong root
    "<Root><Customerlist /></Root>",  # no ResponseStatus
    "<Root><ResponseStatus><Status>MAYBE</Status></ResponseStatus></Root>",
    '<!DOCTYPE r [<!ENTITY a "aaaa">]><Root><ResponseStatus><Status>OK</Status>'
    "</ResponseStatus>&a;</Root>",  # a DOCTYPE: Netvisor sends none, its entities unread
    # billion laughs: nine levels of ten-fold entities, a gigabyte if expanded
    '<?xml version="1.0"?><!DOCTYPE Root [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
    + "]><Root><ResponseStatus><Status>OK</Status></ResponseStatus>"
    "<Customerlist><Customer><Name>&i;</Name></Customer></Customerlist></Root>",
    # an external entity: a local file (or a URL) must never be read into the answer
    '<?xml version="1.0"?><!DOCTYPE Root [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    "<Root><ResponseStatus><Status>OK</Status></ResponseStatus>"
    "<Customerlist><Customer><Name>&x;</Name></Customer></Customerlist></Root>",
])
def test_garbage_is_a_bad_response(fake, sleeps, body):
    fake.on("customerlist.nv", httpx.Response(200, text=body))
    with pytest.raises(BadResponse):
        make(fake, sleeps).check()


# ---------------------------------------------------------------------------- sync


@pytest.mark.parametrize(("stamp", "cursor"), [
    ("1.10.2009 16:03:24", "2009-10-01T16:03:24"),  # as Netvisor's documents write it
    ("01.01.2018 12:00:00", "2018-01-01T12:00:00"),
    ("31.12.2026 0:05:09", "2026-12-31T00:05:09"),
])
def test_the_sync_cursor_is_netvisors_timestamp_as_changedsince_takes_it(fake, sleeps, stamp,
                                                                          cursor):
    fake.on("customerlist.nv", httpx.Response(200, text=(
        "<Root><ResponseStatus><Status>OK</Status>"
        f"<TimeStamp>{stamp}</TimeStamp></ResponseStatus><Customerlist /></Root>")))
    conn = make(fake, sleeps)
    assert [p.cursor for p in conn.sync(None)] == [cursor]
    list(conn.sync(cursor))
    assert fake.of("customerlist.nv")[-1].url.params["changedsince"] == cursor


@pytest.mark.parametrize("stamp", ["", "2026-13-45 10:00:00", "yesterday", "32.1.2026 10:00:00"])
def test_a_timestamp_that_is_not_netvisors_is_a_bad_response_not_a_cursor(fake, sleeps, stamp):
    fake.on("customerlist.nv", httpx.Response(200, text=(
        "<Root><ResponseStatus><Status>OK</Status>"
        f"<TimeStamp>{stamp}</TimeStamp></ResponseStatus><Customerlist /></Root>")))
    with pytest.raises(BadResponse, match="TimeStamp"):
        list(make(fake, sleeps).sync(None))


def test_last_modified_is_read_as_finnish_local_time(fake, sleeps):
    fake.on("customerlist.nv", ok("<Customerlist><Customer><Netvisorkey>1000</Netvisorkey>"
                                  "</Customer></Customerlist>"))
    fake.on("getcustomer.nv", ok("<Customers>" + customer_xml(1000) + "</Customers>"))
    [record] = [r for p in make(fake, sleeps).sync(None) for r in p.records
                if r.record_id == "1000"]
    # "1.5.2026 10:00:00" in Helsinki (summer time, UTC+3)
    assert record.updated_at == datetime(2026, 5, 1, 7, 0, tzinfo=UTC)


def test_keys_outside_iso_8859_1_are_refused_at_start_up():
    with pytest.raises(ValidationError, match="ISO-8859-1"):
        NetvisorSettings(_env_file=None, **{**CREDS, "sender": "hub ☃"})


def test_sync_lists_then_reads_details_in_chunks_of_500_one_at_a_time(fake, sleeps):
    keys = list(range(1000, 2201))
    listing = "".join(f"<Customer><Netvisorkey>{k}</Netvisorkey><Name>X</Name>"
                      "<NewElement>ignored</NewElement></Customer>" for k in keys)
    fake.on("customerlist.nv", ok(f"<Customerlist>{listing}</Customerlist>"))

    def details(request: httpx.Request) -> httpx.Response:
        ids = [int(x) for x in request.url.params["idlist"].split(",")]
        assert len(ids) <= 500
        return ok("<Customers>" + "".join(customer_xml(
            k, f"p{k}@example.fi", contacts=contact_xml(k + 50000, f"c{k}@example.fi")
            if k == 1000 else "") for k in ids) + "</Customers>")

    fake.on("getcustomer.nv", details)
    conn = make(fake, sleeps)
    pages = list(conn.sync("2026-05-01T00:00:00"))
    assert [len(r.url.params["idlist"].split(",")) for r in fake.of("getcustomer.nv")] == [
        500, 500, 201]
    assert fake.of("customerlist.nv")[0].url.params["changedsince"] == "2026-05-01T00:00:00"
    records = [r for p in pages for r in p.records]
    assert len(records) == len(keys) + 1  # one contact person, as its own record
    first = records[0]
    assert first.record_id == "1000" and first.emails == ("p1000@example.fi",)
    assert first.phones == ("040 123 4567",) and first.display_name == "Aino Virtanen"
    assert first.updated_at is not None
    contact = records[1]
    assert contact.record_id == "1000/contact/51000" and contact.emails == ("c1000@example.fi",)
    # the vendor's own clock, its "4.5.2026 12:00:00" as changedsince takes it
    assert pages[-1].cursor == "2026-05-04T12:00:00"
    assert all(p.cursor == "2026-05-01T00:00:00" for p in pages[:-1])
    assert fake.peak == 1


def test_threads_sharing_one_connector_never_overlap_requests(fake, sleeps):
    def slow(request: httpx.Request) -> httpx.Response:
        time.sleep(0.01)  # widen the window an overlap would need
        return ok("<Customerlist />")

    fake.on("customerlist.nv", slow)
    conn = make(fake, sleeps)
    threads = [threading.Thread(target=conn.check) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert conn.api_calls == 6 and fake.peak == 1


# ---------------------------------------------------------------------------- find


def test_find_by_email_keyword_confirms_locally(fake, sleeps):
    fake.on("customerlist.nv", ok("<Customerlist><Customer><Netvisorkey>7</Netvisorkey>"
                                  "</Customer><Customer><Netvisorkey>8</Netvisorkey>"
                                  "</Customer></Customerlist>"))
    fake.on("getcustomer.nv", ok(
        customer_xml(7, "Aino.Virtanen@Example.fi")
        # 8 is a company whose e-mail merely contains hers; its contact person is her.
        + customer_xml(8, "info.aino.virtanen@example.fi.fi", phone="09 123",
                       contacts=contact_xml(55, "aino.virtanen@example.fi"))))
    refs = make(fake, sleeps).find([Identifier(IdentifierKind.EMAIL,
                                               "aino.virtanen@example.fi")])
    assert [(r.kind, r.record_id, r.container) for r in refs] == [
        ("customer", "7", None), ("contact_person", "8/contact/55", "8")]
    assert fake.of("customerlist.nv")[0].url.params["emailkeyword"] == "aino.virtanen@example.fi"


def test_find_with_nothing_matching_returns_nothing(fake, sleeps):
    fake.on("customerlist.nv", ok("<Customerlist />"))
    assert make(fake, sleeps).find([Identifier(IdentifierKind.EMAIL, "x@example.fi")]) == []
    assert fake.of("getcustomer.nv") == []


# -------------------------------------------------------------------------- export


def test_export_gives_customer_contacts_and_invoice_headers(fake, sleeps):
    fake.on("getcustomer.nv", ok(customer_xml(7, contacts=contact_xml(55, "a@example.fi"))))
    fake.on("salesinvoicelist.nv", ok(
        "<SalesInvoiceList><SalesInvoice><NetvisorKey>20000</NetvisorKey>"
        "<InvoiceNumber>1</InvoiceNumber><Invoicedate>01.03.2025</Invoicedate>"
        "</SalesInvoice></SalesInvoiceList>"))
    export = make(fake, sleeps).export([RecordRef("netvisor", "customer", "7")])
    labels = [s.label for s in export.sections]
    assert len(labels) == 3 and "invoices" in labels[2]
    customer = export.sections[0].items[0]
    assert customer["CustomerBaseInformation"]["Email"] == "aino.virtanen@example.fi"
    assert export.sections[1].items[0]["Email"] == "a@example.fi"
    assert export.sections[2].items[0]["Invoicedate"] == "01.03.2025"
    assert fake.of("salesinvoicelist.nv")[0].url.params["customernetvisorkey"] == "7"


# --------------------------------------------------------------------------- erase


class Ledger:
    """A one-customer Netvisor that applies edits, to check the read-back."""

    def __init__(self, invoices: list[str | tuple[str, str]], **customer: Any) -> None:
        self.fields = {"mail": "aino.virtanen@example.fi", "phone": "040 123 4567",
                       "active": 1, "comment": "Soita iltaisin 040 123 4567",
                       "contact_person": "Aino Virtanen", "name": "Aino Virtanen",
                       "street": "Mannerheimintie 1 A 2", "einvoice": ""}
        self.fields.update(customer)
        self.contact = {"mail": "aino@example.fi", "phone": "+358401234567"}
        self.contact_name = {"first": "Aino", "last": "Virtanen"}
        self.invoices = invoices
        self.refusal_status = 200
        self.deleted = False
        self.edits: list[bytes] = []

    def install(self, fake: FakeNetvisor) -> None:
        fake.on("getcustomer.nv", self.get)
        fake.on("deletecustomer.nv", self.delete)
        fake.on("customer.nv", self.edit)
        fake.on("contactperson.nv", self.edit_contact)
        fake.on("salesinvoicelist.nv", lambda r: ok("<SalesInvoiceList>" + "".join(
            f"<SalesInvoice><NetvisorKey>{20000 + i}</NetvisorKey>"
            f"<InvoiceNumber>{i + 1}</InvoiceNumber>"
            f"<Invoicedate>{date.fromisoformat(d):%d.%m.%Y}</Invoicedate>"
            f'<InvoiceStatus substatus="">{status}</InvoiceStatus></SalesInvoice>'
            for i, (d, status) in enumerate(self.dated())) + "</SalesInvoiceList>"))

    def dated(self) -> list[tuple[str, str]]:
        """(date, status) per invoice; a bare date is a paid invoice."""
        return [(inv, "paid") if isinstance(inv, str) else inv for inv in self.invoices]

    def get(self, request: httpx.Request) -> httpx.Response:
        if self.deleted:
            return ok("<Customers />")
        f = self.fields
        contacts = contact_xml(55, self.contact["mail"], self.contact["phone"],
                               **self.contact_name)
        return ok("<Customers>" + customer_xml(
            7, f["mail"], f["phone"], active=f["active"], comment=f["comment"],
            contacts=contacts, contact_person=f["contact_person"], name=f["name"],
            street=f["street"], einvoice=f["einvoice"]) + "</Customers>")

    def delete(self, request: httpx.Request) -> httpx.Response:
        if self.invoices:
            return failed("INVALID_DATA :: The customer has invoices and cannot be deleted",
                          self.refusal_status)
        self.deleted = True
        return ok()

    def edit(self, request: httpx.Request) -> httpx.Response:
        assert request.url.params["method"] == "edit" and request.url.params["id"] == "7"
        self.edits.append(request.content)
        root = SafeET.fromstring(request.content)
        for section in root.find("customer"):
            for item in section:
                value = (item.text or "").strip()
                key = {"email": "mail", "phonenumber": "phone", "isactive": "active",
                       "comment": "comment", "contactperson": "contact_person",
                       "name": "name", "streetaddress": "street",
                       "emailinvoicingaddress": "einvoice"}.get(item.tag)
                if key:
                    self.fields[key] = value
        return ok()

    def edit_contact(self, request: httpx.Request) -> httpx.Response:
        assert request.url.params["id"] == "55"
        if request.url.params["method"] == "delete":  # 55 is the default contact
            return failed("INVALID_DATA :: The default contact person cannot be deleted")
        root = SafeET.fromstring(request.content)
        for item in root.find("contactperson"):
            if item.tag in ("email", "phonenumber"):
                self.contact[{"email": "mail", "phonenumber": "phone"}[item.tag]] = (
                    item.text or "")
            elif item.tag in ("firstname", "lastname"):
                self.contact_name[item.tag[:-4]] = item.text or ""
        return ok()


def test_customer_without_invoices_is_deleted_and_read_back_gone(fake, sleeps):
    ledger = Ledger([])
    ledger.install(fake)
    outcome = make(fake, sleeps).erase([RecordRef("netvisor", "customer", "7")], POLICY)
    (rec,) = outcome.records
    assert rec.action == Action.DELETED and rec.retained_until is None
    assert rec.vendor_request_id  # the TransactionId of the delete
    assert outcome.verified and ledger.deleted
    assert fake.of("deletecustomer.nv")[0].url.params["customerid"] == "7"


@pytest.mark.parametrize(("years", "until"), [(6, date(2032, 12, 31)), (10, date(2036, 12, 31))])
def test_customer_with_invoices_is_retained_minimised_and_deactivated(fake, sleeps, years, until):
    ledger = Ledger(["2025-02-01", "2026-03-15", "2024-12-31"])
    ledger.install(fake)
    policy = POLICY.model_copy(update={"retention_years": years})
    outcome = make(fake, sleeps, today=lambda: TODAY).erase(
        [RecordRef("netvisor", "customer", "7")], policy)
    # The contact person blanked with the customer is an action on a record of its own,
    # so it has its own outcome (it used to be done without a trace in the evidence).
    rec, contact = outcome.records
    assert (contact.ref.record_id, contact.action) == ("7/contact/55", Action.ANONYMISED)
    assert rec.action == Action.RETAINED
    assert rec.retained_until == until  # end of the last invoice's year + N years
    assert rec.legal_basis == POLICY.retention_basis
    assert outcome.verified
    assert ledger.fields["active"] == "0"
    assert ledger.fields["mail"] == "" and ledger.fields["phone"] == ""
    assert ledger.fields["comment"] == "" and ledger.fields["contact_person"] == ""
    assert ledger.contact == {"mail": "", "phone": ""}
    (body,) = ledger.edits
    # Only the changed elements are sent; blanks are empty elements.
    root = SafeET.fromstring(body)
    sent = {item.tag for section in root.find("customer") for item in section}
    assert sent == {"phonenumber", "email", "isactive", "contactperson", "comment"}
    assert "name" not in sent and "streetaddress" not in sent


def test_a_delete_refused_with_a_400_is_retained_like_one_refused_with_200(fake, sleeps):
    """With real status codes the refusal arrives as a 400 with the XML body: read, it
    is the same "has invoices" and the customer is retained, not failed."""
    ledger = Ledger(["2026-03-15"])
    ledger.refusal_status = 400
    ledger.install(fake)
    outcome = make(fake, sleeps, today=lambda: TODAY).erase(
        [RecordRef("netvisor", "customer", "7")], POLICY)
    assert outcome.records[0].action == Action.RETAINED and outcome.verified
    assert outcome.records[0].retained_until == date(2032, 12, 31)


def test_erasing_twice_is_harmless(fake, sleeps):
    ledger = Ledger(["2026-03-15"])
    ledger.install(fake)
    conn = make(fake, sleeps)
    ref = RecordRef("netvisor", "customer", "7")
    first = conn.erase([ref], POLICY)
    second = conn.erase([ref], POLICY)
    assert first.records[0].action == second.records[0].action == Action.RETAINED
    assert second.records[0].retained_until == first.records[0].retained_until
    assert second.verified


def test_erase_of_an_unknown_customer_is_not_found(fake, sleeps):
    fake.on("getcustomer.nv", ok("<Customers />"))
    outcome = make(fake, sleeps).erase([RecordRef("netvisor", "customer", "99")], POLICY)
    assert outcome.not_found and outcome.verified
    assert fake.of("deletecustomer.nv") == []


def test_a_delete_that_went_through_before_a_lost_answer_is_still_deleted(fake, sleeps):
    state = {"calls": 0}

    def get(request: httpx.Request) -> httpx.Response:
        state["calls"] += 1
        return ok("<Customers>" + (customer_xml(7) if state["calls"] == 1 else "")
                  + "</Customers>")

    fake.on("getcustomer.nv", get)
    fake.on("deletecustomer.nv", failed("INVALID_DATA :: Customer with NetvisorKey 7 not found"))
    outcome = make(fake, sleeps).erase([RecordRef("netvisor", "customer", "7")], POLICY)
    assert [r.action for r in outcome.records] == [Action.DELETED] and outcome.verified


def test_a_delete_refused_for_another_reason_is_an_error_not_a_success(fake, sleeps):
    fake.on("getcustomer.nv", ok(customer_xml(7)))
    fake.on("deletecustomer.nv", failed("INVALID_DATA :: Something else entirely"))
    with pytest.raises(VendorError, match="Something else"):
        make(fake, sleeps).erase([RecordRef("netvisor", "customer", "7")], POLICY)


def test_the_default_contact_person_is_blanked_when_it_cannot_be_deleted(fake, sleeps):
    ledger = Ledger(["2026-03-15"])
    ledger.install(fake)

    def contact(request: httpx.Request) -> httpx.Response:
        if request.url.params["method"] == "delete":
            return failed("INVALID_DATA :: The default contact person cannot be deleted")
        return ledger.edit_contact(request)

    fake.on("contactperson.nv", contact)
    ref = RecordRef("netvisor", "contact_person", "7/contact/55", container="7")
    outcome = make(fake, sleeps).erase([ref], POLICY)
    assert [r.action for r in outcome.records] == [Action.ANONYMISED] and outcome.verified
    assert ledger.contact == {"mail": "", "phone": ""}
    assert ledger.fields["active"] == 1  # the company customer itself is untouched


# ------------------------------------------------------------------------- opt out


def test_opt_out_has_nothing_to_do_without_a_marketing_field(fake, sleeps):
    fake.on("getcustomer.nv", ok(customer_xml(7)))
    outcome = make(fake, sleeps).opt_out([RecordRef("netvisor", "customer", "7")])
    assert [r.action for r in outcome.records] == [Action.NOTHING_TO_DO]
    assert fake.of("customer.nv") == []


def test_opt_out_clears_a_marketing_field_when_there_is_one(fake, sleeps):
    state = {"flag": "1"}
    fake.on("getcustomer.nv", lambda r: ok(customer_xml(
        7, extra=f"<MarketingPermission>{state['flag']}</MarketingPermission>")))

    def edit(request: httpx.Request) -> httpx.Response:
        assert b"<marketingpermission>0</marketingpermission>" in request.content
        state["flag"] = "0"
        return ok()

    fake.on("customer.nv", edit)
    outcome = make(fake, sleeps).opt_out([RecordRef("netvisor", "customer", "7")])
    assert [r.action for r in outcome.records] == [Action.UNSUBSCRIBED]
    assert outcome.verified


# ------------------------------------------------- what find read (RecordFacts)


def test_find_fills_each_records_own_facts_never_another_records(fake, sleeps):
    fake.on("customerlist.nv", ok("<Customerlist><Customer><Netvisorkey>7</Netvisorkey>"
                                  "</Customer></Customerlist>"))
    fake.on("getcustomer.nv", ok("<Customers>" + customer_xml(
        7, "Aino.Virtanen@Example.fi", einvoice="laskut.aino@example.fi",
        contacts=contact_xml(55, "aino.virtanen@example.fi", "050 765 4321",
                             first="Aino", last="Virtanen-Koski")) + "</Customers>"))
    refs = make(fake, sleeps).find([Identifier(IdentifierKind.EMAIL,
                                               "aino.virtanen@example.fi")])
    customer, contact = refs
    assert customer.facts == RecordFacts("Aino Virtanen", (
        "Aino.Virtanen@Example.fi", "laskut.aino@example.fi"), ("040 123 4567",))
    assert contact.facts == RecordFacts("Aino Virtanen-Koski", ("aino.virtanen@example.fi",),
                                        ("050 765 4321",))


# ------------------------------------------------------------- the action journal


class Journal:
    """Records each journalled action with how many requests the vendor had seen."""

    def __init__(self, fake: FakeNetvisor, fail_at: int | None = None) -> None:
        self.fake = fake
        self.fail_at = fail_at
        self.entries: list[tuple[str, Action, int]] = []

    def __call__(self, outcome: RecordOutcome) -> None:
        self.entries.append((outcome.ref.record_id, outcome.action, len(self.fake.requests)))
        if self.fail_at is not None and len(self.entries) == self.fail_at:
            raise RuntimeError("the hub's database is gone")


def _resource(request: httpx.Request) -> str:
    return f"{request.url.path.lstrip('/')}?{request.url.params.get('method', '')}"


def test_each_action_is_journalled_as_soon_as_netvisor_confirmed_it(fake, sleeps):
    ledger = Ledger(["2026-03-15"])
    ledger.install(fake)
    conn = make(fake, sleeps, today=lambda: TODAY)
    conn.journal = journal = Journal(fake)
    outcome = conn.erase([RecordRef("netvisor", "customer", "7")], POLICY)
    assert [(rid, action) for rid, action, _ in journal.entries] == [
        ("7", Action.RETAINED), ("7/contact/55", Action.ANONYMISED)]
    # Each entry came right after the write it records, before the next request.
    writes = [_resource(fake.requests[seen - 1]) for _, _, seen in journal.entries]
    assert writes == ["customer.nv?edit", "contactperson.nv?edit"]
    assert [r.ref.record_id for r in outcome.records] == ["7", "7/contact/55"]
    assert outcome.records[0].detail.endswith("read back: minimised")


def test_a_delete_is_journalled_before_its_read_back(fake, sleeps):
    ledger = Ledger([])
    ledger.install(fake)
    conn = make(fake, sleeps)
    conn.journal = journal = Journal(fake)
    conn.erase([RecordRef("netvisor", "customer", "7")], POLICY)
    ((rid, action, seen),) = journal.entries
    assert (rid, action) == ("7", Action.DELETED)
    assert _resource(fake.requests[seen - 1]) == "deletecustomer.nv?"
    assert _resource(fake.requests[seen]) == "getcustomer.nv?"  # the read-back came after


def test_a_journal_that_fails_stops_the_connector_before_its_next_action(fake, sleeps):
    ledger = Ledger(["2026-03-15"])
    ledger.install(fake)
    conn = make(fake, sleeps, today=lambda: TODAY)
    conn.journal = Journal(fake, fail_at=1)
    with pytest.raises(RuntimeError):
        conn.erase([RecordRef("netvisor", "customer", "7")], POLICY)
    assert fake.of("contactperson.nv") == []  # the contact was not touched unrecorded
    assert ledger.contact["mail"] == "aino@example.fi"


def test_a_contact_person_delete_is_journalled(fake, sleeps):
    fake.on("getcustomer.nv", lambda r: ok("<Customers>" + customer_xml(
        8, "info@yritys.fi", contacts="" if fake.of("contactperson.nv") else contact_xml(
            55, "aino@example.fi")) + "</Customers>"))
    fake.on("contactperson.nv", ok())
    conn = make(fake, sleeps)
    conn.journal = journal = Journal(fake)
    ref = RecordRef("netvisor", "contact_person", "8/contact/55", container="8")
    outcome = conn.erase([ref], POLICY)
    assert [(rid, action) for rid, action, _ in journal.entries] == [
        ("8/contact/55", Action.DELETED)]
    assert outcome.verified and outcome.records[0].detail.endswith("read back: gone")


# ------------------------------------------------------------ holds that end


def test_a_hold_that_ended_is_no_hold_the_customer_is_anonymised_now(fake, sleeps):
    # Found: last invoice 2017, the six years ended 31.12.2023, and in 2026 the customer
    # was recorded as lawfully retained until a date already past.
    ledger = Ledger(["2016-04-01", "2017-05-02"])
    ledger.install(fake)
    outcome = make(fake, sleeps, today=lambda: TODAY).erase(
        [RecordRef("netvisor", "customer", "7")], POLICY)
    rec, contact = outcome.records
    assert rec.action == Action.ANONYMISED
    assert rec.legal_basis is None and rec.retained_until is None
    assert "hold ended on 2023-12-31" in rec.detail
    assert "invoices keep their own copy of the name and address" in rec.detail
    assert outcome.verified and rec.detail.endswith("read back: anonymised")
    f = ledger.fields
    assert f["name"] == "Anonymised customer" and f["street"] == "" and f["active"] == "0"
    assert f["mail"] == f["phone"] == f["comment"] == f["contact_person"] == ""
    # The default contact person cannot be deleted: it is anonymised instead.
    assert contact.action == Action.ANONYMISED
    assert ledger.contact == {"mail": "", "phone": ""}
    assert ledger.contact_name == {"first": "", "last": "Anonymised"}


def test_the_hold_runs_through_its_last_day_and_not_a_day_longer(fake, sleeps):
    ledger = Ledger(["2017-05-02"])
    ledger.install(fake)
    held = make(fake, sleeps, today=lambda: date(2023, 12, 31)).erase(
        [RecordRef("netvisor", "customer", "7")], POLICY)
    assert held.records[0].action == Action.RETAINED
    assert held.records[0].retained_until == date(2023, 12, 31)
    ended = make(fake, sleeps, today=lambda: date(2024, 1, 1)).erase(
        [RecordRef("netvisor", "customer", "7")], POLICY)
    assert ended.records[0].action == Action.ANONYMISED


def test_a_july_june_company_keeps_the_customer_a_year_longer(fake, sleeps):
    # 15.9.2017 belongs to the financial year ending 30.6.2018: six years from the end
    # of 2018, not of 2017. In 2024 the hold still runs.
    ledger = Ledger(["2017-09-15"])
    ledger.install(fake)
    policy = POLICY.model_copy(update={"financial_year_end": "06-30"})
    outcome = make(fake, sleeps, today=lambda: date(2024, 6, 1)).erase(
        [RecordRef("netvisor", "customer", "7")], policy)
    assert outcome.records[0].action == Action.RETAINED
    assert outcome.records[0].retained_until == date(2024, 12, 31)


# ------------------------------------------------------- an open invoice is a claim


@pytest.mark.parametrize("status", ["open", "overdue", "reminded", "requested", "collected"])
def test_an_open_invoice_keeps_what_collecting_it_needs_with_that_reason(fake, sleeps,
                                                                         status):
    # Found: the e-mail and the e-invoicing address the unpaid invoice is sent to were
    # blanked, and the record named only the Accounting Act.
    ledger = Ledger(["2019-01-01", ("2026-11-20", status)], einvoice="laskut.aino@example.fi")
    ledger.install(fake)
    outcome = make(fake, sleeps, today=lambda: TODAY).erase(
        [RecordRef("netvisor", "customer", "7")], POLICY)
    rec = outcome.records[0]
    assert rec.action == Action.RETAINED
    assert rec.retained_until == date(2032, 12, 31)  # the bookkeeping hold applies too
    assert rec.legal_basis.startswith(POLICY.retention_basis)
    assert "GDPR art. 17(3)(e)" in rec.legal_basis
    assert "no. 2 (NetvisorKey 20001)" in rec.legal_basis  # the open one, by number and key
    assert "20000" not in rec.legal_basis  # the paid one is no claim
    assert "@" not in rec.legal_basis and "@" not in rec.detail
    assert outcome.verified
    f = ledger.fields
    assert f["mail"] == "aino.virtanen@example.fi" and f["einvoice"] == "laskut.aino@example.fi"
    assert f["name"] == "Aino Virtanen" and f["street"]
    assert f["phone"] == f["comment"] == f["contact_person"] == "" and f["active"] == "0"
    sent = {item.tag for section in SafeET.fromstring(ledger.edits[0]).find("customer")
            for item in section}
    assert not sent & {"email", "emailinvoicingaddress", "name", "streetaddress"}


def test_a_paid_up_customer_loses_its_e_mail_while_the_bookkeeping_hold_runs(fake, sleeps):
    ledger = Ledger([("2026-11-20", "paid"), ("2025-01-03", "creditloss")],
                    einvoice="laskut.aino@example.fi")
    ledger.install(fake)
    rec = make(fake, sleeps, today=lambda: TODAY).erase(
        [RecordRef("netvisor", "customer", "7")], POLICY).records[0]
    assert rec.action == Action.RETAINED and "17(3)(e)" not in rec.legal_basis
    assert ledger.fields["mail"] == ledger.fields["einvoice"] == ""


def test_an_invoice_list_without_dates_or_states_is_a_bad_response(fake, sleeps):
    ledger = Ledger(["2026-03-15"])
    ledger.install(fake)
    fake.on("salesinvoicelist.nv", ok("<SalesInvoiceList><SalesInvoice><NetvisorKey>1"
                                      "</NetvisorKey><InvoiceStatus>open</InvoiceStatus>"
                                      "</SalesInvoice></SalesInvoiceList>"))
    with pytest.raises(BadResponse, match="Invoicedate"):
        make(fake, sleeps).erase([RecordRef("netvisor", "customer", "7")], POLICY)
    assert ledger.edits == []  # nothing was changed on a guess


def test_a_company_customer_has_no_persons_name_to_match_by(fake, sleeps):
    """A company's Name would 'disagree' with its contact's name and make the contact's
    own address look shared (hub.linking); a company customer is nameless to the hub."""
    fake.on("customerlist.nv", ok("<Customerlist><Customer><Netvisorkey>1000</Netvisorkey>"
                                  "<Name>X</Name></Customer></Customerlist>"))
    fake.on("getcustomer.nv", ok("<Customers>" + customer_xml(
        1000, name="Rakennus Virtanen Oy",
        extra="<IsPrivateCustomer>0</IsPrivateCustomer>") + "</Customers>"))
    conn = make(fake, sleeps)
    [record] = [r for p in conn.sync(None) for r in p.records]
    assert record.display_name is None and record.emails == ("aino.virtanen@example.fi",)
    [ref] = conn.find([Identifier(IdentifierKind.EMAIL, "aino.virtanen@example.fi")])
    assert ref.facts.name is None and ref.facts.emails == ("aino.virtanen@example.fi",)
