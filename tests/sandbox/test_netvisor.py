"""The Netvisor emulator, driven over real HTTP on loopback (reference §D.6).

The client here signs requests exactly as sandbox/netvisor/README.md tells the
connector author to: HMACSHA256 by default (an HMAC-SHA256 keyed
`CustomerKey&PartnerKey` over the full URL as sent, the header values and
TimestampUnix), or the legacy plain SHA256/MD5 recipe when a test asks for it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from xml.etree.ElementTree import Element
from zoneinfo import ZoneInfo

import httpx
import pytest
from defusedxml import ElementTree as SafeET

from sandbox import Sandbox

AINO = "aino.virtanen@example.fi"
EEVA = "eeva.makela@example.fi"


@pytest.fixture(scope="module")
def box() -> Iterator[Sandbox]:
    with Sandbox(people=200, seed=42, vendors=["netvisor"]) as sb:
        yield sb


class Nv:
    """A minimal signing client (what the connector must do)."""

    def __init__(self, box: Sandbox) -> None:
        self.env = box.env
        self.base = box.urls["netvisor"]
        self.http = httpx.Client(timeout=10)

    def headers(self, url: str, algorithm: str = "HMACSHA256", **override: str
                ) -> dict[str, str]:
        e = self.env
        ts = override.pop("timestamp", None) or datetime.now(UTC).strftime(
            "%Y-%m-%d %H:%M:%S.%f")[:-3]
        txid = override.pop("txid", None) or uuid.uuid4().hex
        unix = override.pop("unix", None) or str(int(time.time()))
        customer_key = override.pop("customer_key", e["NETVISOR_CUSTOMER_KEY"])
        partner_key = e["NETVISOR_PARTNER_KEY"]
        values = [url, e["NETVISOR_SENDER"], e["NETVISOR_CUSTOMER_ID"], ts,
                  e["NETVISOR_LANGUAGE"], e["NETVISOR_ORGANISATION_ID"], txid]
        if algorithm == "HMACSHA256":
            message = "&".join([*values, unix, customer_key, partner_key])
            mac = hmac.new(f"{customer_key}&{partner_key}".encode("iso-8859-1"),
                           message.encode("iso-8859-1"), hashlib.sha256).hexdigest()
        else:
            joined = "&".join([*values, customer_key, partner_key]).encode()
            mac = hashlib.new(algorithm.lower(), joined).hexdigest()
        h = {
            "X-Netvisor-Authentication-Sender": e["NETVISOR_SENDER"],
            "X-Netvisor-Authentication-CustomerId": e["NETVISOR_CUSTOMER_ID"],
            "X-Netvisor-Authentication-PartnerId": e["NETVISOR_PARTNER_ID"],
            "X-Netvisor-Authentication-Timestamp": ts,
            "X-Netvisor-Authentication-TransactionId": txid,
            "X-Netvisor-Authentication-MAC": mac,
            "X-Netvisor-Authentication-MACHashCalculationAlgorithm": algorithm,
            "X-Netvisor-Interface-Language": e["NETVISOR_LANGUAGE"],
            "X-Netvisor-Organisation-ID": e["NETVISOR_ORGANISATION_ID"],
        }
        if algorithm == "HMACSHA256":
            h["X-Netvisor-Authentication-TimestampUnix"] = unix
        h.update(override)
        return h

    def call(self, method: str, resource: str, params: dict[str, Any] | None = None,
             body: str | None = None, algorithm: str = "HMACSHA256", **override: str
             ) -> httpx.Response:
        request = self.http.build_request(method, f"{self.base}/{resource}", params=params,
                                          content=body.encode() if body else None)
        request.headers.update(self.headers(str(request.url), algorithm, **override))
        return self.http.send(request)

    def xml(self, method: str, resource: str, params: dict[str, Any] | None = None,
            body: str | None = None, algorithm: str = "HMACSHA256", **override: str
            ) -> Element:
        r = self.call(method, resource, params, body, algorithm, **override)
        assert r.status_code == 200, r.text
        return SafeET.fromstring(r.content)


def status(root: Element) -> list[str]:
    return [s.text or "" for s in root.find("ResponseStatus").findall("Status")]


def ok(root: Element) -> Element:
    assert status(root) == ["OK"], status(root)
    assert root.find("ResponseStatus/TimeStamp") is not None
    return root


def failed(root: Element, category: str) -> str:
    st = status(root)
    assert st[0] == "FAILED" and st[1].startswith(f"{category} :: "), st
    return st[1]


@pytest.fixture
def nv(box: Sandbox) -> Iterator[Nv]:
    httpx.post(f"{box.urls['netvisor']}/__sandbox/reset").raise_for_status()
    httpx.put(f"{box.urls['netvisor']}/__sandbox/settings",
              json={"response_delay": 0, "concurrency_guard": True,
                    "timestamp_tolerance": 300, "accept_legacy_mac": True}
              ).raise_for_status()
    state = box.apps["netvisor"].state.netvisor
    clock = state.clock
    client = Nv(box)
    yield client
    client.http.close()
    state.clock = clock


def customer_key(nv: Nv, email: str) -> int:
    root = ok(nv.xml("GET", "customerlist.nv", {"emailkeyword": email}))
    keys = [int(c.findtext("Netvisorkey")) for c in root.iter("Customer")]
    assert len(keys) == 1, keys
    return keys[0]


def get_customer(nv: Nv, key: int) -> Element:
    return ok(nv.xml("GET", "getcustomer.nv", {"id": key})).find("Customer")


# --- authentication -----------------------------------------------------------------------


def test_signed_request_is_ok(nv: Nv) -> None:
    root = ok(nv.xml("GET", "customerlist.nv"))
    assert root.tag == "Root"
    assert len(root.findall("Customerlist/Customer")) > 10


def test_bad_mac_is_http_200_failed_authentication(nv: Nv) -> None:
    root = nv.xml("GET", "customerlist.nv", customer_key="WRONG")
    failed(root, "AUTHENTICATION_FAILED")
    # The MAC covers the query string: changing it after signing must fail.
    request = nv.http.build_request("GET", f"{nv.base}/customerlist.nv?keyword=a")
    request.headers.update(nv.headers(f"{nv.base}/customerlist.nv?keyword=b"))
    failed(SafeET.fromstring(nv.http.send(request).content), "AUTHENTICATION_FAILED")


CODES = {"X-Netvisor-Authentication-UseHTTPResponseStatusCodes": "1"}


def test_http_status_codes_on_request(nv: Nv) -> None:
    """Netvisor's documented codes (400, 401, 403, 500), each with the XML body."""
    r = nv.call("GET", "customerlist.nv", customer_key="WRONG", **CODES)
    assert r.status_code == 401
    failed(SafeET.fromstring(r.content), "AUTHENTICATION_FAILED")
    r = nv.call("GET", "getcustomer.nv", {"id": "999999"}, **CODES)
    assert r.status_code == 400
    failed(SafeET.fromstring(r.content), "INVALID_DATA")
    eeva, aino = customer_key(nv, EEVA), customer_key(nv, AINO)
    r = nv.call("GET", "deletecustomer.nv", {"customerid": aino}, **CODES)
    assert r.status_code == 400
    assert "has invoices" in failed(SafeET.fromstring(r.content), "INVALID_DATA")
    code = get_customer(nv, aino).findtext("CustomerBaseInformation/InternalIdentifier")
    body = (f"<root><customer><customerbaseinformation><internalidentifier>{code}"
            "</internalidentifier></customerbaseinformation></customer></root>")
    r = nv.call("POST", "customer.nv", {"method": "edit", "id": eeva}, body, **CODES)
    assert r.status_code == 400
    failed(SafeET.fromstring(r.content), "DUPLICATE_DATA")
    r = nv.call("GET", "nosuchresource.nv", **CODES)
    assert r.status_code == 400
    failed(SafeET.fromstring(r.content), "RESOURCE_NOT_FOUND")
    ok(SafeET.fromstring(nv.call("GET", "customerlist.nv", **CODES).content))


def test_unknown_ids_and_missing_headers_fail(nv: Nv) -> None:
    failed(nv.xml("GET", "customerlist.nv",
                  **{"X-Netvisor-Authentication-CustomerId": "SOMEONE_ELSE"}),
           "AUTHENTICATION_FAILED")
    failed(nv.xml("GET", "customerlist.nv", **{"X-Netvisor-Organisation-ID": "0000000-0"}),
           "AUTHENTICATION_FAILED")
    failed(nv.xml("GET", "customerlist.nv",
                  **{"X-Netvisor-Authentication-MACHashCalculationAlgorithm": "SHA512"}),
           "AUTHENTICATION_FAILED")
    r = httpx.get(f"{nv.base}/customerlist.nv")
    assert r.status_code == 200
    failed(SafeET.fromstring(r.content), "AUTHENTICATION_FAILED")


def test_legacy_reused_transaction_id_is_request_not_unique(nv: Nv) -> None:
    txid = uuid.uuid4().hex
    ok(nv.xml("GET", "customerlist.nv", algorithm="SHA256", txid=txid))
    failed(nv.xml("GET", "customerlist.nv", algorithm="SHA256", txid=txid),
           "REQUEST_NOT_UNIQUE")


def test_legacy_stale_timestamp_fails(nv: Nv) -> None:
    stale = (datetime.now(UTC) - timedelta(minutes=30)).strftime("%Y-%m-%d %H:%M:%S.000")
    failed(nv.xml("GET", "customerlist.nv", algorithm="SHA256", timestamp=stale),
           "AUTHENTICATION_FAILED")


def test_hmacsha256_replaces_the_transaction_id_rule_with_the_timestamp_check(nv: Nv) -> None:
    # With HMACSHA256 the TimestampUnix check replaces the transaction-id rule.
    txid = uuid.uuid4().hex
    ok(nv.xml("GET", "customerlist.nv", txid=txid))
    ok(nv.xml("GET", "customerlist.nv", txid=txid))
    # The TimestampUnix header is signed and required.
    request = nv.http.build_request("GET", f"{nv.base}/customerlist.nv")
    headers = nv.headers(str(request.url))
    del headers["X-Netvisor-Authentication-TimestampUnix"]
    request.headers.update(headers)
    failed(SafeET.fromstring(nv.http.send(request).content), "AUTHENTICATION_FAILED")
    request = nv.http.build_request("GET", f"{nv.base}/customerlist.nv")
    headers = nv.headers(str(request.url))
    headers["X-Netvisor-Authentication-TimestampUnix"] = str(int(time.time()) - 1)
    request.headers.update(headers)
    failed(SafeET.fromstring(nv.http.send(request).content), "AUTHENTICATION_FAILED")


def test_hmacsha256_outside_the_server_clocks_window_fails_401(box: Sandbox, nv: Nv) -> None:
    state = box.apps["netvisor"].state.netvisor
    real = datetime.now(UTC)
    state.clock = lambda: real + timedelta(seconds=299)
    ok(nv.xml("GET", "customerlist.nv", unix=str(int(real.timestamp()))))
    state.clock = lambda: real + timedelta(seconds=301)  # the server's clock moved on
    failed(nv.xml("GET", "customerlist.nv", unix=str(int(real.timestamp()))),
           "AUTHENTICATION_FAILED")
    r = nv.call("GET", "customerlist.nv", unix=str(int(real.timestamp())),
                **{"X-Netvisor-Authentication-UseHTTPResponseStatusCodes": "1"})
    assert r.status_code == 401
    assert "TimestampUnix" in failed(SafeET.fromstring(r.content), "AUTHENTICATION_FAILED")


def test_hmac_mac_is_keyed_not_a_plain_hash(nv: Nv) -> None:
    """A plain SHA256 MAC announced as HMACSHA256 is refused."""
    request = nv.http.build_request("GET", f"{nv.base}/customerlist.nv")
    legacy = nv.headers(str(request.url), "SHA256")
    legacy["X-Netvisor-Authentication-MACHashCalculationAlgorithm"] = "HMACSHA256"
    legacy["X-Netvisor-Authentication-TimestampUnix"] = str(int(time.time()))
    request.headers.update(legacy)
    failed(SafeET.fromstring(nv.http.send(request).content), "AUTHENTICATION_FAILED")


@pytest.mark.parametrize("algorithm", ["SHA256", "MD5"])
def test_legacy_algorithms_work_until_switched_off(nv: Nv, algorithm: str) -> None:
    ok(nv.xml("GET", "customerlist.nv", algorithm=algorithm))
    httpx.put(f"{nv.base}/__sandbox/settings", json={"accept_legacy_mac": False}
              ).raise_for_status()
    message = failed(nv.xml("GET", "customerlist.nv", algorithm=algorithm),
                     "AUTHENTICATION_FAILED")
    assert "HMACSHA256" in message
    ok(nv.xml("GET", "customerlist.nv"))  # HMACSHA256 still works
    bad = httpx.put(f"{nv.base}/__sandbox/settings", json={"accept_legacy_mac": "no"})
    assert bad.status_code == 400


# --- customers ------------------------------------------------------------------------------


def test_emailkeyword_and_getcustomer_full_shape(nv: Nv) -> None:
    key = customer_key(nv, "Aino.Virtanen@EXAMPLE.fi")
    c = get_customer(nv, key)
    base = c.find("CustomerBaseInformation")
    assert base.findtext("NetvisorKey") == str(key)
    assert base.findtext("Email").lower() == AINO
    assert base.findtext("PhoneNumber") and base.findtext("IsActive") == "1"
    for name in ("Name", "StreetAddress", "City", "PostNumber", "Country", "InternalIdentifier"):
        assert base.find(name) is not None, name
    assert c.find("CustomerContactDetails") is not None
    assert c.find("ContactPersons") is not None


def test_getcustomer_idlist_and_limits(nv: Nv) -> None:
    keys = [c.findtext("Netvisorkey")
            for c in ok(nv.xml("GET", "customerlist.nv")).iter("Customer")][:3]
    root = ok(nv.xml("GET", "getcustomer.nv", {"idlist": ",".join(keys)}))
    assert [c.findtext("CustomerBaseInformation/NetvisorKey")
            for c in root.findall("Customers/Customer")] == keys
    too_many = ",".join(str(i) for i in range(501))
    failed(nv.xml("GET", "getcustomer.nv", {"idlist": too_many}), "INVALID_DATA_SIZE")
    failed(nv.xml("GET", "getcustomer.nv", {"id": 1}), "INVALID_DATA")


def test_keyword_prefix_overrides_changedsince_and_codelist(nv: Nv) -> None:
    future = (datetime.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")
    assert ok(nv.xml("GET", "customerlist.nv", {"changedsince": future})
              ).findall("Customerlist/Customer") == []
    hits = ok(nv.xml("GET", "customerlist.nv", {"keyword": "virta", "changedsince": future}))
    names = [c.findtext("Name") for c in hits.iter("Customer")]
    assert "Aino Virtanen" in names
    assert all(any(w.lower().startswith("virta") for w in n.split()) for n in names)
    infix = ok(nv.xml("GET", "customerlist.nv", {"keyword": "irtanen"}))
    assert "Aino Virtanen" not in [c.findtext("Name") for c in infix.iter("Customer")]
    code = hits.find("Customerlist/Customer/Code").text
    by_code = ok(nv.xml("GET", "customerlist.nv", {"customercodelist": code}))
    assert [c.findtext("Code") for c in by_code.iter("Customer")] == [code]


def test_edit_blanks_empty_elements_and_bumps_modified(nv: Nv) -> None:
    key = customer_key(nv, AINO)
    before = get_customer(nv, key).find("CustomerBaseInformation")
    since = datetime.now().strftime("%Y-%m-%dT%H:%M:%S")
    body = ("<root><customer><customerbaseinformation><phonenumber></phonenumber>"
            "<streetaddress /><name>Anonyymi asiakas</name></customerbaseinformation>"
            "</customer></root>")
    ok(nv.xml("POST", "customer.nv", {"method": "edit", "id": key}, body))
    after = get_customer(nv, key).find("CustomerBaseInformation")
    assert after.findtext("PhoneNumber") == "" and after.findtext("StreetAddress") == ""
    assert after.findtext("Name") == "Anonyymi asiakas"
    assert after.findtext("City") == before.findtext("City")  # absent element: untouched
    assert after.findtext("Email") == before.findtext("Email")
    changed = ok(nv.xml("GET", "customerlist.nv", {"changedsince": since}))
    assert [int(c.findtext("Netvisorkey")) for c in changed.iter("Customer")] == [key]


def test_deactivate_and_unknown_id(nv: Nv) -> None:
    key = customer_key(nv, AINO)
    body = ("<root><customer><customerbaseinformation><isactive>0</isactive>"
            "</customerbaseinformation></customer></root>")
    ok(nv.xml("POST", "customer.nv", {"method": "edit", "id": key}, body))
    assert get_customer(nv, key).findtext("CustomerBaseInformation/IsActive") == "0"
    failed(nv.xml("POST", "customer.nv", {"method": "edit", "id": 999999}, body),
           "INVALID_DATA")
    failed(nv.xml("POST", "customer.nv", {"id": key}, body), "INVALID_DATA")
    bad = "<root><customer><customerbaseinformation><emial>x</emial>" \
          "</customerbaseinformation></customer></root>"
    failed(nv.xml("POST", "customer.nv", {"method": "edit", "id": key}, bad), "INVALID_DATA")


def test_xml_entity_bomb_is_refused(nv: Nv) -> None:
    bomb = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
            '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            "<root><customer><customerbaseinformation><name>&b;</name>"
            "</customerbaseinformation></customer></root>")
    failed(nv.xml("POST", "customer.nv", {"method": "add"}, bomb), "INVALID_DATA")


def test_add_then_delete_customer_without_invoices(box: Sandbox, nv: Nv) -> None:
    body = ("<root><customer><customerbaseinformation><name>Testi Oy</name>"
            "<email>testi@example.com</email></customerbaseinformation></customer></root>")
    root = ok(nv.xml("POST", "customer.nv", {"method": "add"}, body))
    key = int(root.findtext("Replies/InsertedDataIdentifier"))
    assert get_customer(nv, key).findtext("CustomerBaseInformation/Name") == "Testi Oy"
    ok(nv.xml("GET", "deletecustomer.nv", {"customerid": key}))
    failed(nv.xml("GET", "getcustomer.nv", {"id": key}), "INVALID_DATA")
    rec = httpx.get(f"{box.urls['netvisor']}/__sandbox/records/customer/{key}").json()
    assert rec["state"] == "deleted"


def test_delete_refused_for_invoiced_customer_allowed_without(box: Sandbox, nv: Nv) -> None:
    aino = customer_key(nv, AINO)
    message = failed(nv.xml("GET", "deletecustomer.nv", {"customerid": aino}), "INVALID_DATA")
    assert "The customer has invoices" in message
    assert get_customer(nv, aino) is not None
    eeva = customer_key(nv, EEVA)
    ok(nv.xml("GET", "deletecustomer.nv", {"customerid": eeva}))
    rec = httpx.get(f"{box.urls['netvisor']}/__sandbox/records/customer/{eeva}").json()
    assert rec["state"] == "deleted"
    assert httpx.get(f"{box.urls['netvisor']}/__sandbox/find",
                     params={"email": EEVA}).json()["records"] == []


# --- contact persons -----------------------------------------------------------------------


def test_contact_person_add_edit_delete_and_default_guard(nv: Nv) -> None:
    key = customer_key(nv, AINO)
    add = ("<root><contactperson><firstname>Matti</firstname><lastname>Meikäläinen"
           "</lastname><email>matti@example.com</email><isdefault>1</isdefault>"
           "</contactperson></root>")
    first = int(ok(nv.xml("POST", "contactperson.nv", {"method": "add", "customerid": key},
                          add)).findtext("Replies/InsertedDataIdentifier"))
    second = int(ok(nv.xml("POST", "contactperson.nv", {"method": "add", "customerid": key},
                           add.replace("<isdefault>1", "<isdefault>0")))
                 .findtext("Replies/InsertedDataIdentifier"))
    edit = "<root><contactperson><email></email><phonenumber>040 1</phonenumber>" \
           "</contactperson></root>"
    ok(nv.xml("POST", "contactperson.nv", {"method": "edit", "id": second}, edit))
    people = {int(p.findtext("NetvisorKey")): p
              for p in get_customer(nv, key).findall("ContactPersons/ContactPerson")}
    assert people[second].findtext("Email") == "" and people[first].findtext("IsDefault") == "1"
    message = failed(nv.xml("POST", "contactperson.nv", {"method": "delete", "id": first}),
                     "INVALID_DATA")
    assert "default" in message
    ok(nv.xml("POST", "contactperson.nv", {"method": "delete", "id": second}))
    keys = [p.findtext("NetvisorKey")
            for p in get_customer(nv, key).findall("ContactPersons/ContactPerson")]
    assert keys == [str(first)]


# --- invoices ---------------------------------------------------------------------------------


def test_aino_has_open_invoice_this_year_eeva_none(nv: Nv) -> None:
    aino = customer_key(nv, AINO)
    rows = ok(nv.xml("GET", "salesinvoicelist.nv", {"customernetvisorkey": aino}))
    invoices = rows.findall("SalesInvoiceList/SalesInvoice")
    this_year = [i for i in invoices
                 if i.findtext("Invoicedate").endswith(f".{date.today().year}")]
    assert any(i.findtext("InvoiceStatus") == "open" for i in this_year)
    key = this_year[0].findtext("NetvisorKey")
    detail = ok(nv.xml("GET", "getsalesinvoice.nv", {"netvisorkey": key})).find("SalesInvoice")
    assert detail.findtext("SalesInvoiceNetvisorKey") == key
    assert detail.findtext("InvoicingCustomerNetvisorKey") == str(aino)
    assert detail.findall("InvoiceLines/InvoiceLine")
    eeva = customer_key(nv, EEVA)
    none = ok(nv.xml("GET", "salesinvoicelist.nv", {"customernetvisorkey": eeva}))
    assert none.findall("SalesInvoiceList/SalesInvoice") == []


def test_invoice_list_filters_and_retention_spread(nv: Nv) -> None:
    rows = ok(nv.xml("GET", "salesinvoicelist.nv")).findall("SalesInvoiceList/SalesInvoice")
    statuses = {r.findtext("InvoiceStatus") for r in rows}
    assert {"open", "paid"} <= statuses
    dates = [datetime.strptime(r.findtext("Invoicedate"), "%d.%m.%Y").date() for r in rows]
    assert min(dates) < date.today() - timedelta(days=10 * 366)  # past the 10-year period
    keys = sorted(int(r.findtext("NetvisorKey")) for r in rows)
    above = ok(nv.xml("GET", "salesinvoicelist.nv", {"invoicesabovenetvisorkey": keys[-3]}))
    assert [int(r.findtext("NetvisorKey")) for r in above.iter("SalesInvoice")] == keys[-2:]
    recent = (date.today() - timedelta(days=30)).isoformat() + "T00:00:00"
    some = ok(nv.xml("GET", "salesinvoicelist.nv", {"lastmodifiedstart": recent}))
    assert 0 < len(some.findall("SalesInvoiceList/SalesInvoice")) < len(rows)
    number = rows[0].findtext("InvoiceNumber")
    one = ok(nv.xml("GET", "salesinvoicelist.nv", {"invoicenumber": number}))
    assert [r.findtext("InvoiceNumber") for r in one.iter("SalesInvoice")] == [number]


NETVISOR_TIME = re.compile(r"^\d{1,2}\.\d{1,2}\.\d{4} \d{1,2}:\d{2}:\d{2}$")


def test_times_and_dates_as_netvisor_writes_them(box: Sandbox, nv: Nv) -> None:
    """`TimeStamp` and `LastModified` like `1.10.2009 16:03:24` (Finnish local time),
    list dates `dd.mm.yyyy`, the status with its `substatus` (checked 2026-12)."""
    root = ok(nv.xml("GET", "customerlist.nv", {"keyword": "gdpr-hub-nobody"}))
    stamp = root.findtext("ResponseStatus/TimeStamp")
    assert NETVISOR_TIME.match(stamp), stamp
    written = datetime.strptime(stamp, "%d.%m.%Y %H:%M:%S")
    helsinki = datetime.now(ZoneInfo("Europe/Helsinki")).replace(tzinfo=None)
    assert abs((helsinki - written).total_seconds()) < 60
    modified = get_customer(nv, customer_key(nv, AINO)).findtext("LastModified")
    assert NETVISOR_TIME.match(modified), modified
    rows = ok(nv.xml("GET", "salesinvoicelist.nv")).findall("SalesInvoiceList/SalesInvoice")
    assert all(re.fullmatch(r"\d{2}\.\d{2}\.\d{4}", r.findtext("Invoicedate")) for r in rows)
    assert rows[0].find("InvoicingDate") is None
    assert all(r.find("InvoiceStatus").get("substatus") is not None for r in rows)
    assert {r.findtext("InvoiceStatus") for r in rows} <= {"open", "paid"}
    opened = ok(nv.xml("GET", "salesinvoicelist.nv", {"invoicestatus": "open"}))
    assert {r.findtext("InvoiceStatus") for r in opened.iter("SalesInvoice")} == {"open"}
    # An overdue invoice is open, with the substatus saying so.
    state = box.apps["netvisor"].state.netvisor
    key = int(opened.find("SalesInvoiceList/SalesInvoice/NetvisorKey").text)
    state.invoices[key].status = "overdue"
    row = ok(nv.xml("GET", "salesinvoicelist.nv", {"invoicenumber": state.invoices[key].number}))
    status = row.find("SalesInvoiceList/SalesInvoice/InvoiceStatus")
    assert (status.text, status.get("substatus")) == ("open", "overdue")
    overdue = ok(nv.xml("GET", "salesinvoicelist.nv", {"invoicestatus": "overdue"}))
    rows = list(overdue.iter("SalesInvoice"))
    assert str(key) in [r.findtext("NetvisorKey") for r in rows]
    assert {r.find("InvoiceStatus").get("substatus") for r in rows} == {"overdue"}


# --- names --------------------------------------------------------------------------------


def test_resource_and_parameter_names_are_case_insensitive(box: Sandbox, nv: Nv) -> None:
    key = customer_key(nv, AINO)
    root = ok(nv.xml("GET", "CustomerList.nv", {"EmailKeyword": AINO}))
    assert [c.findtext("Netvisorkey") for c in root.iter("Customer")] == [str(key)]
    ok(nv.xml("GET", "GETCUSTOMER.NV", {"Id": key}))
    # the call counts keep the resource's own name
    calls = httpx.get(f"{nv.base}/__sandbox/calls").json()["calls"]
    assert any(c["route"] == "/getcustomer.nv" for c in calls)


def test_an_unknown_parameter_is_refused_never_ignored(nv: Nv) -> None:
    # A misspelt filter must not answer the whole customer list.
    message = failed(nv.xml("GET", "customerlist.nv", {"emailkeywrd": AINO}), "INVALID_DATA")
    assert "emailkeywrd" in message
    failed(nv.xml("GET", "salesinvoicelist.nv", {"customerkey": "1000"}), "INVALID_DATA")
    r = nv.call("GET", "getcustomer.nv", {"id": "1000", "details": "1"}, **CODES)
    assert r.status_code == 400
    failed(SafeET.fromstring(r.content), "INVALID_DATA")


def test_invoices_cannot_be_deleted(nv: Nv) -> None:
    rows = ok(nv.xml("GET", "salesinvoicelist.nv")).findall("SalesInvoiceList/SalesInvoice")
    key = rows[0].findtext("NetvisorKey")
    failed(nv.xml("GET", "deletesalesinvoice.nv", {"netvisorkey": key}), "INVALID_DATA")
    ok(nv.xml("GET", "getsalesinvoice.nv", {"netvisorkey": key}))


# --- one request at a time --------------------------------------------------------------------


def test_second_concurrent_request_is_refused(box: Sandbox, nv: Nv) -> None:
    state = box.apps["netvisor"].state.netvisor
    httpx.put(f"{nv.base}/__sandbox/settings", json={"response_delay": 1.0}).raise_for_status()
    results: dict[str, httpx.Response] = {}

    def slow() -> None:
        with httpx.Client(timeout=10) as other:
            request = other.build_request("GET", f"{nv.base}/customerlist.nv")
            request.headers.update(nv.headers(str(request.url)))
            results["slow"] = other.send(request)

    thread = threading.Thread(target=slow)
    thread.start()
    deadline = time.monotonic() + 5
    while not state.in_flight:
        assert time.monotonic() < deadline, "first request never started"
        time.sleep(0.01)
    second = nv.xml("GET", "customerlist.nv")
    thread.join(timeout=10)
    failed(second, "REQUEST_NOT_ALLOWED")
    ok(SafeET.fromstring(results["slow"].content))


def test_scandinavian_keyword_signs_over_the_encoded_url(nv: Nv) -> None:
    root = ok(nv.xml("GET", "customerlist.nv", {"keyword": "Mäk"}))
    assert "Eeva Mäkelä" in [c.findtext("Name") for c in root.iter("Customer")]


def test_injected_faults_are_netvisor_shaped_and_counted(box: Sandbox, nv: Nv) -> None:
    httpx.put(f"{nv.base}/__sandbox/faults", json={"rate_limit_rate": 1}).raise_for_status()
    failed(nv.xml("GET", "customerlist.nv"), "REQUEST_NOT_ALLOWED")
    # Asked for status codes (as the hub's connector asks), the refusal is a 403 with
    # the same body, as every other refusal is in that mode.
    refused = nv.call("GET", "customerlist.nv", **CODES)
    assert refused.status_code == 403
    failed(SafeET.fromstring(refused.content), "REQUEST_NOT_ALLOWED")
    httpx.put(f"{nv.base}/__sandbox/faults", json={"rate_limit_rate": 0, "error_rate": 1}
              ).raise_for_status()
    assert nv.call("GET", "customerlist.nv").status_code == 503
    calls = httpx.get(f"{nv.base}/__sandbox/calls").json()["calls"]
    assert any(c["route"] == "/customerlist.nv" and c["status"] == 503 for c in calls)


def test_head_on_a_delete_resource_never_deletes(box: Sandbox, nv: Nv) -> None:
    """Found in review: Starlette answers HEAD on every GET route, so a HEAD probe of
    deletecustomer.nv ran the delete (Pipedrive's and Mailchimp's were fixed alike)."""
    eeva = customer_key(nv, EEVA)
    probe = nv.call("HEAD", "deletecustomer.nv", {"customerid": eeva})
    assert probe.status_code == 405
    assert get_customer(nv, eeva) is not None
    rec = httpx.get(f"{box.urls['netvisor']}/__sandbox/records/customer/{eeva}").json()
    assert rec["state"] != "deleted"
