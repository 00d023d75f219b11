"""Netvisor against a hostile vendor on a real socket: 200 answers that are not what
Netvisor sends are protocol errors, never "not found", and a read-back that does not
show the intended state is never verified (DESIGN.md rule 3)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date

import pytest

from connectors.errors import BadResponse, VendorError
from connectors.netvisor import NetvisorConnector, NetvisorSettings
from hub.domain import Action, Identifier, IdentifierKind, RecordRef
from hub.policy import EraseMode, SystemPolicy
from tests.hostile import Answer, HostileVendor, Seen, TruncatedOnce

POLICY = SystemPolicy(erase=EraseMode.RETAIN_IF_REQUIRED, retention_years=6,
                      retention_basis="Kirjanpitolaki (1336/1997) 2 luku 10 §")
AINO = Identifier(IdentifierKind.EMAIL, "aino.virtanen@example.fi")
CUSTOMER = RecordRef("netvisor", "customer", "7")
OK = "<ResponseStatus><Status>OK</Status><TimeStamp>2.12.2026 10:00:00</TimeStamp>" \
     "</ResponseStatus>"


def xml(inner: str = "") -> Answer:
    """A Netvisor answer: XML bytes (a str body would go out as text/html)."""
    return Answer(200, f"<Root>{OK}{inner}</Root>".encode(), {"content-type": "text/xml"})


def customer(key: str = "7", mail: str = "aino.virtanen@example.fi", *, active: str = "1",
             contacts: str = "") -> str:
    return (f"<Customer><CustomerBaseInformation><NetvisorKey>{key}</NetvisorKey>"
            f"<Name>Aino Virtanen</Name><PhoneNumber>040 123 4567</PhoneNumber>"
            f"<Email>{mail}</Email><IsActive>{active}</IsActive></CustomerBaseInformation>"
            f"<ContactPersons>{contacts}</ContactPersons></Customer>")


LISTING = xml("<Customerlist><Customer><Netvisorkey>7</Netvisorkey></Customer></Customerlist>")
PAID = xml("<SalesInvoiceList><SalesInvoice><NetvisorKey>20000</NetvisorKey>"
           "<InvoiceNumber>1</InvoiceNumber><Invoicedate>15.03.2026</Invoicedate>"
           "<InvoiceStatus>paid</InvoiceStatus></SalesInvoice></SalesInvoiceList>")
REFUSED = Answer(400, b"<Root><ResponseStatus><Status>FAILED</Status><Status>INVALID_DATA :: "
                      b"The customer has invoices and cannot be deleted</Status>"
                      b"</ResponseStatus></Root>", {"content-type": "text/xml"})


Script = dict[str, Answer | Callable[[Seen], Answer]]


class Scripted:
    """One hostile vendor for the module (its shutdown polls for half a second), whose
    answers each test scripts anew."""

    def __init__(self) -> None:
        self.script: Script = {}

    def __call__(self, seen: Seen) -> Answer:
        answer = self.script.get(seen.path.lstrip("/"), Answer(404, "<html>no</html>"))
        return answer(seen) if callable(answer) else answer


@pytest.fixture(scope="module")
def hostile() -> Iterator[tuple[Scripted, HostileVendor]]:
    scripted = Scripted()
    with HostileVendor(scripted) as vendor:
        yield scripted, vendor


@pytest.fixture
def netvisor(hostile, fast_retry) -> Iterator[Callable[[Script], tuple[NetvisorConnector,
                                                                       HostileVendor]]]:
    scripted, vendor = hostile
    opened: list[NetvisorConnector] = []

    def start(script: Script) -> tuple[NetvisorConnector, HostileVendor]:
        scripted.script = script
        vendor.seen.clear()
        settings = NetvisorSettings(
            _env_file=None, base_url=vendor.url, sender="hub", customer_id="C",
            partner_id="P", customer_key="k" * 16, partner_key="p" * 16,
            organisation_id="1967543-8")
        conn = NetvisorConnector(settings, retry=fast_retry, today=lambda: date(2026, 12, 2))
        opened.append(conn)
        return conn, vendor

    yield start
    for conn in opened:
        conn.close()


@pytest.mark.parametrize("answer", [
    Answer(200, "<!doctype html><html><head><meta charset=utf-8><title>Login</title>"
                "<body>Please sign in</body></html>"),  # a proxy's login page
    Answer(200, b"<html><body><p>Maintenance</p></body></html>"),  # well-formed, not Netvisor
    Answer(200, b"<Root><Customerlist><Customer><Netvisorkey>7</Netvisorkey></Customer>"
                b"</Customerlist></Root>"),  # no ResponseStatus
    xml(),  # OK, and no <Customerlist> at all: found to be read as "nobody here"
    xml("<CustomerList2><Customer><Netvisorkey>7</Netvisorkey></Customer></CustomerList2>"),
    xml("<Customerlist><Customer><Name>Aino Virtanen</Name></Customer></Customerlist>"),
    xml("<Customerlist><Customer><Netvisorkey>abc</Netvisorkey></Customer></Customerlist>"),
], ids=["html", "xhtml", "no-status", "no-list", "other-list", "no-key", "bad-key"])
def test_a_lookup_answer_netvisor_would_not_send_is_a_bad_response(netvisor, answer):
    conn, _ = netvisor({"customerlist.nv": answer})
    with pytest.raises(BadResponse):
        conn.find([AINO])


@pytest.mark.parametrize("answer", [
    xml(),  # found: an OK answer without <Customers> made the customer "not found"
    xml("<Customers><Customer><Name>Aino</Name></Customer></Customers>"),  # no base info
    xml("<Customers>" + customer("8") + "</Customers>"),  # someone not asked for
], ids=["no-customers", "no-base", "stranger"])
def test_a_customer_read_that_is_not_netvisors_never_becomes_not_found(netvisor, answer):
    conn, vendor = netvisor({"getcustomer.nv": answer})
    with pytest.raises(BadResponse):
        conn.erase([CUSTOMER], POLICY)
    # A read: retried like a 5xx (the one rule for garbage on a read); nothing written.
    assert {(s.method, s.path) for s in vendor.seen} == {("GET", "/getcustomer.nv")}


@pytest.mark.parametrize("page", [
    xml("<Customers><Customer><Name>Aino</Name></Customer></Customers>"),  # no base info
    xml("<Customers>" + customer("8") + "</Customers>"),  # someone not asked for
    xml("<Customers>" + customer("x7") + "</Customers>"),  # a key that is not one
    xml("<Customers><Customer><CustomerBaseInformation><NetvisorKey>7</NetvisorKey>"
        "</CustomerBaseInformation></Customer></Customers>"),  # no name
], ids=["no-base", "stranger", "bad-key", "no-name"])
def test_a_sync_page_that_is_not_netvisors_is_a_bad_response(netvisor, page):
    """The sync's own reading of a page (``SyncAnswer``) holds the same line as a
    customer read: no records are made from a page Netvisor would not send."""
    conn, _ = netvisor({"customerlist.nv": LISTING, "getcustomer.nv": page})
    with pytest.raises(BadResponse):
        list(conn.sync(None))


def test_an_empty_customers_answer_is_not_found(netvisor):
    conn, _ = netvisor({"getcustomer.nv": xml("<Customers />")})
    outcome = conn.erase([CUSTOMER], POLICY)
    assert outcome.not_found and outcome.verified


def test_an_invoice_list_that_is_not_there_is_a_bad_response_before_any_write(netvisor):
    conn, vendor = netvisor({"getcustomer.nv": xml("<Customers>" + customer() + "</Customers>"),
                             "deletecustomer.nv": REFUSED, "salesinvoicelist.nv": xml()})
    with pytest.raises(BadResponse, match="InvoiceListAnswer"):
        conn.erase([CUSTOMER], POLICY)
    assert not [s for s in vendor.seen if s.method == "POST"]


def test_a_delete_whose_read_back_still_shows_the_customer_is_not_verified(netvisor):
    conn, _ = netvisor({"getcustomer.nv": xml("<Customers>" + customer() + "</Customers>"),
                        "deletecustomer.nv": xml()})
    outcome = conn.erase([CUSTOMER], POLICY)
    (rec,) = outcome.records
    assert rec.action == Action.DELETED and not outcome.verified
    assert rec.detail.endswith("read back: STILL PRESENT")


def test_a_delete_found_done_already_names_the_deletes_own_transaction(netvisor):
    """The evidence names the call that did the write. A delete answered "not found"
    (its first attempt went through, the answer was lost) is read back, found gone and
    recorded: with the delete's TransactionId, the one Netvisor logged the delete
    under, not the read-back's that came after it."""
    reads: list[Seen] = []

    def customers(seen: Seen) -> Answer:
        reads.append(seen)
        return xml(("<Customers>" + customer() + "</Customers>") if len(reads) == 1
                   else "<Customers></Customers>")

    gone = Answer(400, b"<Root><ResponseStatus><Status>FAILED</Status><Status>INVALID_DATA"
                       b" :: Customer not found</Status></ResponseStatus></Root>",
                  {"content-type": "text/xml"})
    conn, vendor = netvisor({"getcustomer.nv": customers, "deletecustomer.nv": gone})
    outcome = conn.erase([CUSTOMER], POLICY)
    (rec,) = outcome.records
    (delete,) = [s for s in vendor.seen if s.path == "/deletecustomer.nv"]
    assert rec.action == Action.DELETED and outcome.verified and len(reads) == 2
    assert rec.vendor_request_id == delete.headers["x-netvisor-authentication-transactionid"]


def test_a_contact_delete_found_done_already_names_the_deletes_own_transaction(netvisor):
    """The same for a contact person erased alone: its delete's TransactionId, not the
    id of the read that found it gone."""
    contact = ("<ContactPerson><NetvisorKey>55</NetvisorKey><FirstName>Aino</FirstName>"
               "<LastName>Virtanen</LastName><Email>aino@example.fi</Email>"
               "<IsDefault>0</IsDefault></ContactPerson>")
    reads: list[Seen] = []

    def customers(seen: Seen) -> Answer:
        reads.append(seen)
        return xml("<Customers>" + customer("8", "info@yritys.fi",
                                            contacts=contact if len(reads) == 1 else "")
                   + "</Customers>")

    gone = Answer(400, b"<Root><ResponseStatus><Status>FAILED</Status><Status>INVALID_DATA"
                       b" :: Contact person not found</Status></ResponseStatus></Root>",
                  {"content-type": "text/xml"})
    conn, vendor = netvisor({"getcustomer.nv": customers, "contactperson.nv": gone})
    ref = RecordRef("netvisor", "contact_person", "8/contact/55", container="8")
    outcome = conn.erase([ref], POLICY)
    (rec,) = outcome.records
    (delete,) = [s for s in vendor.seen if s.path == "/contactperson.nv"]
    assert rec.action == Action.DELETED and outcome.verified and len(reads) >= 2
    assert rec.vendor_request_id == delete.headers["x-netvisor-authentication-transactionid"]


def test_a_minimisation_the_read_back_does_not_show_is_not_verified(netvisor):
    # Netvisor says OK to the edit, and the customer still has its e-mail and is active.
    conn, vendor = netvisor({"getcustomer.nv": xml("<Customers>" + customer() + "</Customers>"),
                             "deletecustomer.nv": REFUSED, "salesinvoicelist.nv": PAID,
                             "customer.nv": xml()})
    outcome = conn.erase([CUSTOMER], POLICY)
    (rec,) = outcome.records
    assert rec.action == Action.RETAINED and rec.retained_until == date(2032, 12, 31)
    assert not outcome.verified and rec.detail.endswith("read back: NOT minimised")
    assert [s.path for s in vendor.seen if s.method == "POST"] == ["/customer.nv"]


def test_an_anonymisation_the_read_back_does_not_show_is_not_verified(netvisor):
    old = xml("<SalesInvoiceList><SalesInvoice><NetvisorKey>20000</NetvisorKey>"
              '<Invoicedate format="ansi">2017-05-02</Invoicedate>'
              "<InvoiceStatus>paid</InvoiceStatus></SalesInvoice></SalesInvoiceList>")
    conn, _ = netvisor({"getcustomer.nv": xml("<Customers>" + customer() + "</Customers>"),
                        "deletecustomer.nv": REFUSED, "salesinvoicelist.nv": old,
                        "customer.nv": xml()})
    outcome = conn.erase([CUSTOMER], POLICY)
    assert outcome.records[0].action == Action.ANONYMISED and not outcome.verified
    assert outcome.records[0].detail.endswith("read back: NOT anonymised")


def test_a_contact_delete_the_read_back_does_not_show_is_not_verified(netvisor):
    contact = ("<ContactPerson><NetvisorKey>55</NetvisorKey><FirstName>Aino</FirstName>"
               "<LastName>Virtanen</LastName><Email>aino@example.fi</Email>"
               "<IsDefault>0</IsDefault></ContactPerson>")
    conn, _ = netvisor({"getcustomer.nv": xml("<Customers>" + customer(
        "8", "info@yritys.fi", contacts=contact) + "</Customers>"),
        "contactperson.nv": xml()})
    ref = RecordRef("netvisor", "contact_person", "8/contact/55", container="8")
    outcome = conn.erase([ref], POLICY)
    assert outcome.records[0].action == Action.DELETED and not outcome.verified
    assert outcome.records[0].detail.endswith("read back: STILL PRESENT")


def test_a_well_formed_answer_finds_and_confirms(netvisor):
    conn, _ = netvisor({"customerlist.nv": LISTING,
                        "getcustomer.nv": xml("<Customers>" + customer() + "</Customers>")})
    (ref,) = conn.find([AINO])
    assert ref.record_id == "7" and ref.facts.name == "Aino Virtanen"


def test_a_trickling_netvisor_answer_ends_at_the_call_deadline(netvisor):
    """Netvisor's own door (it reads the XML of an error status) goes through the same
    exchange as every vendor: a body trickling in ends at the deadline, not at 20 s."""
    import time

    from connectors.errors import ConnectionFailed
    from connectors.http import CallLimits

    slow = Answer(200, f"<Root>{OK}{' ' * 400}</Root>".encode(), {"content-type": "text/xml"},
                  pace=0.05)
    conn, vendor = netvisor({"customerlist.nv": slow})
    conn.http.limits = CallLimits(deadline=0.5)
    started = time.monotonic()
    with pytest.raises(ConnectionFailed, match="deadline"):
        conn.find([AINO])
    assert time.monotonic() - started < 15  # generous; the trickle alone would take 20 s


def test_a_truncated_read_is_retried_and_then_succeeds(netvisor):
    """Garbage on a read (XML cut mid-way) follows the one retry rule: read again."""
    good = xml("<Customers>" + customer() + "</Customers>")
    once = TruncatedOnce("/getcustomer.nv", lambda req: good)
    conn, vendor = netvisor({"customerlist.nv": LISTING, "getcustomer.nv": once})
    (ref,) = conn.find([AINO])
    assert ref.record_id == "7" and once.cut == 1
    assert [s.path for s in vendor.seen] == ["/customerlist.nv", "/getcustomer.nv",
                                             "/getcustomer.nv"]


def test_a_failed_page_names_its_own_transaction_not_the_next_pages(netvisor, monkeypatch):
    """The sync reads two pages at once: while the first page's FAILED answer is parsed
    (slowly: a large body), the second request is signed with a new transaction id.
    The error must carry the id Netvisor logged for the failed request, or support is
    sent looking for the wrong one."""
    from connectors.netvisor import connector as module

    monkeypatch.setattr(module, "IDLIST_MAX", 1)  # keys 7 and 8: two pages
    failed = Answer(400, b"<Root><ResponseStatus><Status>FAILED</Status><Status>"
                         b"SERVICE_BREAK :: not today</Status></ResponseStatus><Padding>"
                         + b"x" * 8_000_000 + b"</Padding></Root>",
                    {"content-type": "text/xml"})

    def page(seen: Seen) -> Answer:
        return failed if seen.query["idlist"] == ["7"] else xml(
            f"<Customers>{customer('8', 'eeva.makela@example.fi')}</Customers>")

    conn, vendor = netvisor({
        "customerlist.nv": xml("<Customerlist><Customer><Netvisorkey>7</Netvisorkey>"
                               "</Customer><Customer><Netvisorkey>8</Netvisorkey></Customer>"
                               "</Customerlist>"),
        "getcustomer.nv": page})
    with pytest.raises(VendorError) as raised:
        list(conn.sync(None))
    (first,) = [s for s in vendor.seen if s.query.get("idlist") == ["7"]]
    assert len([s for s in vendor.seen if s.path.endswith("getcustomer.nv")]) == 2
    assert raised.value.vendor_request_id == first.headers[
        "x-netvisor-authentication-transactionid"]
