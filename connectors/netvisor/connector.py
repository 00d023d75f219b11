"""Visma Netvisor connector (docs/vendors/netvisor.md): XML over HTTPS, one request at a time.

Records. A customer is a record (``record_id`` = its NetvisorKey) with its own
e-mail, e-invoicing address and phone. Each contact person is a record of its
own (``record_id`` = ``<customer key>/contact/<contact id>``, kind
``contact_person``), not folded into the customer's identifiers: a company
customer's contact persons are different people, and folding them would make
the index link them into one person.

- ``sync(since)``: ``customerlist.nv?changedsince=`` (all customers on a full pass),
  then ``getcustomer.nv?idlist=`` in chunks of ≤ 500, strictly one request at a time
  (the next chunk is asked for while the last answer is read). The next cursor is the
  vendor's own ResponseStatus TimeStamp of the list call (its clock and time zone, so no
  skew), taken before the details: Netvisor writes it ``d.M.yyyy H:mm:ss`` (Finnish
  local time), the cursor keeps it as ``YYYY-MM-DDThh:mm:ss``, the form ``changedsince``
  takes.
- ``find``: ``customerlist.nv?emailkeyword=`` per e-mail, the hits read with
  ``getcustomer.nv`` and confirmed locally: the customer when its own e-mail or
  phone matches, each contact person whose e-mail or phone matches. Netvisor has
  no phone search, so a phone is matched only on customers found by e-mail. Each
  ref carries the record's own name, e-mails and phones (``RecordFacts``).
- Every answer is checked against what the connector reads from it
  (``models.py``): an OK answer without the list, the customers or the invoices is
  BadResponse, never "not found"; on a read it is retried like a 5xx first, the
  rule of ``HttpClient.json`` (a truncated body on a second try is whole).
- ``export``: the customer, its contact persons and its invoice headers
  (``salesinvoicelist.nv?customernetvisorkey=``); for a contact person alone, only
  that contact person.
- ``erase``: ``deletecustomer.nv``. When Netvisor refuses because the customer has
  invoices, the invoices decide:
  - the bookkeeping hold (``policy.hold_ends(last invoice date)``, from the end of
    the financial year) still runs, or an invoice is open: *retained*. What neither
    bookkeeping nor collecting needs is blanked (phone, fax, the contact details,
    contact persons' phone and e-mail, the comment, marketing fields; the e-mail and
    e-invoicing address too unless an invoice is open, GDPR art. 17(3)(e)); name,
    address, business id and codes stay; deactivated. The legal basis names each
    reason, the open invoices by number and key, and the hold's end.
  - the hold has ended (a hold whose end has passed is no hold) or there is none:
    *anonymised*: the name replaced, address, business id, e-mail, phone and every
    contact detail blanked, contact persons deleted (the default one anonymised),
    deactivated. The booked invoices keep their own copy of name and address, which
    the API cannot change; the evidence says so.
  Only changed elements are sent (an empty element blanks). Each write Netvisor
  confirmed is journalled (``self.done``) before the next; then it is read back.
  A contact-person ref alone (another customer's contact) is deleted, or blanked
  when it is the default one.
- ``opt_out``: nothing to do unless the customer carries a marketing field.
- ``rectify``: a ``customer.nv`` edit of the customer's own fields: ``Email`` (and
  ``EmailInvoicingAddress`` when it held the same address), ``PhoneNumber``, and for a
  private customer ``Name`` and the street address (a company customer's name and
  address are the company's, not told). A contact person: its name, e-mail and phone,
  in the customer's ``CustomerContactDetails`` or by ``contactperson.nv`` edit. Only
  what differs is sent (an empty element blanks); read back with ``getcustomer.nv``.
- ``restrict``: Netvisor has no restriction flag; the customer's
  ``CustomerAdditionalInformation/Comment`` gets the line ``GDPR: processing
  restricted (art. 18)`` (kept beside what the comment already says) and marketing
  fields go to 0; lifting removes that line. Read back. A contact person is left to
  an operator.

Every request is signed with HMACSHA256 and asks for real HTTP status codes
(``signing.py``); a failure reads the same from a 200 or a 400/401/403/500 body.
This module holds the protocol methods and the erasure rules; reading a customer's
XML is in ``parsing.py``, the HTTP door (Netvisor's error bodies) in ``http.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from functools import partial
from typing import Any, TypeVar
from xml.sax.saxutils import escape

import httpx
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors import gates
from connectors.base import ConnectorBase, matches, now_utc, wanted
from connectors.errors import (
    AuthError,
    BadResponse,
    ConnectorError,
    RateLimited,
    VendorError,
)
from connectors.http import (
    DEFAULT_LIMITS,
    NO_RETRY,
    Limiter,
    RetryPolicy,
    SerialLimiter,
    make_client,
    read_ahead,
    validate,
)
from connectors.netvisor.http import NetvisorHttp
from connectors.netvisor.models import (
    BookedInvoice,
    CustomerListAnswer,
    CustomersAnswer,
    InvoiceListAnswer,
    SyncAnswer,
    emails_of,
    person_name,
    plain,
)
from connectors.netvisor.parsing import (
    HELSINKI,
    SYSTEM,
    Contact,
    Customer,
    Element,
    NotXml,
    _child,
    _find_all,
    _is_true,
    _tag,
    _text,
    customer_elements,
    netvisor_time,
    parse_xml,
    sync_plain,
    to_dict,
)
from connectors.netvisor.signing import TRANSACTION_HEADER, NetvisorAuth
from connectors.settings import ENV_FILES, load_settings
from hub.domain import (
    Action,
    Corrections,
    Export,
    ExportSection,
    Identifier,
    Outcome,
    RecordOutcome,
    RecordRef,
    SourceRecord,
    SyncPage,
)
from hub.identity import normalise_email, normalise_phone
from hub.policy import EraseMode, SystemPolicy

IDLIST_MAX = 500  # getcustomer.nv?idlist= takes at most 500 keys
CHECK_KEYWORD = "gdpr-hub-connection-check"
# CustomerContactDetails: a named contact on the customer itself (all personal data).
_DETAIL_TAGS = ("contactname", "contactperson", "contactpersonemail", "contactpersonphone")
# The customer's own contact channels: not bookkeeping data (the invoices carry the
# name and address the books need), so blanked when the customer must be kept.
_BASE_CONTACT = (("phonenumber", "PhoneNumber"), ("faxnumber", "FaxNumber"),
                 ("email", "Email"), ("emailinvoicingaddress", "EmailInvoicingAddress"))
_BASE_ORDER = ("phonenumber", "faxnumber", "email", "isactive", "emailinvoicingaddress")
# What collecting an open invoice needs besides the name and address: where it is sent.
_COLLECTION = ("email", "emailinvoicingaddress")
# Once the bookkeeping hold has ended, what remains of an invoiced customer (Netvisor
# refuses to delete it) loses everything that says who it was: the name is replaced,
# these are blanked. The code, reference number and country stay (not personal).
ANONYMISED_NAME = "Anonymised customer"
ANONYMISED_CONTACT = "Anonymised"
_ANON_BASE = (("externalidentifier", "ExternalIdentifier"), ("nameextension", "NameExtension"),
              ("streetaddress", "StreetAddress"),
              ("additionaladdressline", "AdditionalAddressLine"), ("city", "City"),
              ("postnumber", "PostNumber"), ("phonenumber", "PhoneNumber"),
              ("faxnumber", "FaxNumber"), ("email", "Email"),
              ("homepageuri", "HomePageUri"),
              ("emailinvoicingaddress", "EmailInvoicingAddress"))
_ANON_ORDER = ("externalidentifier", "name", "nameextension", "streetaddress",
               "additionaladdressline", "city", "postnumber", "phonenumber", "faxnumber",
               "email", "homepageuri", "isactive", "emailinvoicingaddress")
# Finvoice and delivery details: sent only when Netvisor showed a value (the sandbox
# keeps none); element names as getcustomer.nv writes them, lower-cased.
_ANON_SECTIONS = {
    "customerfinvoicedetails": ("finvoiceaddress", "finvoiceroutercode"),
    "customerdeliverydetails": ("deliveryname", "deliverystreetaddress", "deliverycity",
                                "deliverypostnumber"),
}
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class NetvisorSettings(BaseSettings):
    """NETVISOR_* variables (environment first, then ``.env``)."""

    model_config = SettingsConfigDict(env_prefix="NETVISOR_", env_file=ENV_FILES,
                                      env_file_encoding="utf-8", extra="ignore")

    base_url: str = Field(min_length=1)
    sender: str = Field(min_length=1)
    customer_id: str = Field(min_length=1)
    partner_id: str = Field(min_length=1)
    customer_key: SecretStr = Field(min_length=1)
    partner_key: SecretStr = Field(min_length=1)
    organisation_id: str = Field(min_length=1)
    language: str = "FI"
    # Netvisor's guidance: wait at least 120 s for an answer.
    timeout: float = Field(default=120.0, gt=0)

    @field_validator("sender", "customer_id", "partner_id", "customer_key", "partner_key",
                     "organisation_id", "language")
    @classmethod
    def _latin1(cls, value: str | SecretStr) -> str | SecretStr:
        """The HMACSHA256 MAC is computed over ISO-8859-1 text: fail at start-up, not
        on the first request."""
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        try:
            text.encode("iso-8859-1")
        except UnicodeEncodeError:
            raise ValueError("must be ISO-8859-1 text (Netvisor signs in that "
                             "encoding)") from None
        return value


class HasInvoices(VendorError):
    """deletecustomer.nv refused: the customer has invoicing history (not a failure)."""

    retryable = False


# ----------------------------------------------------------------------- connector

class NetvisorConnector(ConnectorBase):
    system = SYSTEM

    def __init__(
        self,
        settings: NetvisorSettings,
        *,
        client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        limiter: Limiter | None = None,
        auth: NetvisorAuth | None = None,
        today: Callable[[], date] = lambda: now_utc().date(),
    ) -> None:
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.auth = auth or NetvisorAuth(
            sender=settings.sender, customer_id=settings.customer_id,
            partner_id=settings.partner_id,
            customer_key=settings.customer_key.get_secret_value(),
            partner_key=settings.partner_key.get_secret_value(),
            organisation_id=settings.organisation_id, language=settings.language,
        )
        if client is None:
            client = make_client(self.base_url, auth=self.auth, transport=transport,
                                 timeout=httpx.Timeout(settings.timeout, connect=10.0),
                                 max_connections=1)
        else:
            client.auth = self.auth
        self.http = NetvisorHttp(SYSTEM, client, retry=retry or RetryPolicy.from_env(),
                               # "Send one message at a time and wait for a response."
                               limiter=limiter if limiter is not None else SerialLimiter())
        self._today = today

    @classmethod
    def from_env(cls, *, client: httpx.Client | None = None, **kwargs: Any
                 ) -> NetvisorConnector:
        """As the hub builds it: "one request at a time" holds for the customer
        environment, so the seat is shared by every process that calls it
        (``connectors.gates``); a lease outlives no call's deadline by much."""
        settings = load_settings(NetvisorSettings)
        if "limiter" not in kwargs:
            kwargs["limiter"] = gates.seats(SYSTEM, settings.base_url, settings.customer_id,
                                            1, ttl=DEFAULT_LIMITS.deadline + 10)
        return cls(settings, client=client, **kwargs)


    # ------------------------------------------------------------------ transport

    def _write(self, method: str, resource: str, params: dict[str, Any] | None = None,
               body: str | None = None) -> str | None:
        """One Netvisor write through the shared retry policy; the TransactionId it was
        signed with, which Netvisor logs it under: the evidence names the write by it."""
        return self._exchange(method, resource, params, body)[2]

    def _exchange(self, method: str, resource: str, params: dict[str, Any] | None = None,
                  body: str | None = None, model: type[M] | None = None, *,
                  read: bool = False, reading: Callable[[Element], Any] | None = None
                  ) -> tuple[Element, M | None, str | None]:
        """The parsed ``<Root>``, with ``model`` its validated reading, and the
        TransactionId of the attempt that answered.

        Parsing and validating happen inside each attempt, the rule of
        ``HttpClient.json``: an answer with an error status and Netvisor's XML body is
        read like a 200 with FAILED (``NetvisorHttp``), and on a ``read`` a body
        that is not XML or not what ``model`` declares (a truncated answer, a proxy's
        page) is retried too. A write is never repeated for it; ``read`` is explicit
        because Netvisor writes by GET too (``deletecustomer.nv``). ``reading`` turns
        the root into the data ``model`` validates (default: ``plain``).
        """
        url = f"{self.base_url}/{resource}"
        headers = {"content-type": "text/xml; charset=utf-8"} if body is not None else None
        content = body.encode("utf-8") if body is not None else None

        def attempt() -> tuple[Element, M | None, str | None]:
            response = self.http.request(method, url, params=params, content=content,
                                         headers=headers, retry=NO_RETRY)
            transaction = response.request.headers.get(TRANSACTION_HEADER)
            try:
                root = self._parse(resource, response, transaction)
                if model is None:
                    return root, None, transaction
                data = reading(root) if reading else plain(root, model)
                return root, validate(SYSTEM, model, data), transaction
            except BadResponse as exc:
                exc.retryable = read
                raise

        return self.http.retry.run(attempt)

    def _parse(self, resource: str, response: httpx.Response, transaction: str | None
               ) -> Element:
        # ``transaction``: the id this answer's own request was signed with (the sync
        # reads two pages at once, so no shared "last id" would do).
        answered = {"status_code": response.status_code, "vendor_request_id": transaction}
        try:
            root = parse_xml(response.content)
        except NotXml:
            raise BadResponse(SYSTEM, f"{resource}: body is not XML", **answered) from None
        if _tag(root) != "root":
            raise BadResponse(SYSTEM, f"{resource}: root element is <{root.tag}>, not <Root>",
                              **answered)
        status_el = _child(root, "ResponseStatus")
        statuses = ([_text(s) for s in status_el if _tag(s) == "status"]
                    if status_el is not None else [])
        if not statuses:
            raise BadResponse(SYSTEM, f"{resource}: no ResponseStatus/Status", **answered)
        if statuses[0].upper() == "OK":
            if response.status_code >= 400:
                raise BadResponse(SYSTEM, f"{resource}: status OK in an HTTP "
                                  f"{response.status_code} answer", **answered)
            return root
        if statuses[0].upper() != "FAILED":
            raise BadResponse(SYSTEM, f"{resource}: unknown status {statuses[0][:40]!r}",
                              **answered)
        raise _failure(resource, " ".join(statuses[1:]), response.status_code, transaction)

    # ------------------------------------------------------------------ reading

    def _read(self, resource: str, params: dict[str, Any], model: type[M],
              reading: Callable[[Element], Any] | None = None) -> tuple[Element, M]:
        """A read whose answer must hold what ``model`` declares (BadResponse if not)."""
        root, answer, _ = self._exchange("GET", resource, params, model=model, read=True,
                                         reading=reading)
        assert answer is not None  # a model was given
        return root, answer

    def _customers(self, keys: Sequence[str]) -> Iterator[list[Customer]]:
        """``getcustomer.nv?idlist=`` in chunks of ≤ 500; unknown keys are absent."""
        for root in self._read_chunks(keys, self._customer_chunk):
            yield [] if root is None else [
                Customer(el) for el in customer_elements(root)
                if _child(el, "CustomerBaseInformation") is not None]

    def _read_chunks(self, keys: Sequence[str], read: Callable[[Sequence[str]], T]
                     ) -> Iterator[T]:
        """``read`` of each chunk of ≤ 500 keys, in order.

        Two chunks are read at once (``read_ahead``): while one answer is parsed and
        checked, the next request is already with Netvisor, which spends about as long
        answering it. Netvisor still hears one request at a time, as it asks: the seat
        (``connectors.gates``) and the client's one connection are held for each
        exchange, not for the parsing after it. bench/sync.py: a full sync of 25,000
        people took 1.69 s with one read at a time, 1.36 s with two."""
        chunks = [keys[i:i + IDLIST_MAX] for i in range(0, len(keys), IDLIST_MAX)]
        yield from read_ahead((partial(read, chunk) for chunk in chunks), ahead=2)

    def _customer_chunk(self, chunk: Sequence[str]) -> Element | None:
        """The answer to one ``idlist``, checked; None for a single unknown key."""
        answer = self._chunk(chunk, CustomersAnswer)
        return None if answer is None else answer[0]

    def _chunk(self, chunk: Sequence[str], model: type[CustomersAnswer | SyncAnswer],
               reading: Callable[[Element], Any] | None = None
               ) -> tuple[Element, CustomersAnswer | SyncAnswer] | None:
        """One ``idlist`` read as ``model``; None for a single unknown key. A customer
        in the answer that was not asked for is a protocol error: acting on it would
        act on someone else."""
        try:
            root, answer = self._read("getcustomer.nv", {"idlist": ",".join(chunk)},
                                      model, reading)
        except VendorError as exc:
            if len(chunk) == 1 and "INVALID_DATA" in exc.detail.upper():
                return None  # a single unknown key: Netvisor calls it invalid data
            raise
        stray = answer.keys - set(chunk)
        if stray:
            raise BadResponse(SYSTEM, f"getcustomer.nv answered {len(stray)} customer(s) "
                              "not asked for")
        return root, answer

    def _sync_chunk(self, chunk: Sequence[str]) -> list[SourceRecord]:
        """One ``idlist`` as the sync's records, made from the validated answer alone
        (``SyncAnswer``): one walk of the page, in the reading thread."""
        read = self._chunk(chunk, SyncAnswer, sync_plain)
        if read is None:
            return []
        answer = read[1]
        assert isinstance(answer, SyncAnswer)
        records: list[SourceRecord] = []
        for c in answer.all:
            base = c["customerbaseinformation"]
            key = base["netvisorkey"]
            updated = netvisor_time(c.get("lastmodified", ""))
            phone = base.get("phonenumber")
            records.append(SourceRecord(
                system=SYSTEM, record_id=key, emails=emails_of(c),
                phones=(phone,) if phone else (), display_name=person_name(c) or None,
                updated_at=updated))
            details = c.get("contactdetails")
            for contact in [*([details] if details else []), *c.get("contactpersons", [])]:
                email, phone = contact.get("email"), contact.get("phone")
                if email or phone:
                    records.append(SourceRecord(
                        system=SYSTEM, record_id=f"{key}/contact/{contact.get('id', 'details')}",
                        emails=(email,) if email else (), phones=(phone,) if phone else (),
                        display_name=contact.get("name") or None, updated_at=updated))
        return records

    def _customer(self, key: str) -> Customer | None:
        for batch in self._customers([key]):
            for customer in batch:
                if customer.key == key:
                    return customer
        return None

    def _list_keys(self, params: dict[str, Any]) -> tuple[list[str], str]:
        root, listing = self._read("customerlist.nv", params, CustomerListAnswer)
        keys = [c["netvisorkey"] for c in listing.customerlist.customer]
        stamp = _text(_child(root, "ResponseStatus"), "TimeStamp")
        return list(dict.fromkeys(keys)), stamp

    def _invoice_elements(self, key: str) -> list[Element]:
        root, _ = self._read("salesinvoicelist.nv", {"customernetvisorkey": key},
                             InvoiceListAnswer)
        return [el for el in _find_all(root, "SalesInvoice") if list(el)]

    def _invoices(self, key: str) -> list[dict[str, Any]]:
        """The customer's invoice headers as Netvisor wrote them (for an export)."""
        return [to_dict(el) for el in self._invoice_elements(key)]

    def _booked_invoices(self, key: str) -> list[BookedInvoice]:
        """The invoice headers an erasure decides on: each dated and with its status."""
        out = []
        for el in self._invoice_elements(key):
            invoice = validate(SYSTEM, BookedInvoice, plain(el))
            if invoice.invoicedate is None:
                raise BadResponse(SYSTEM, "salesinvoicelist.nv: an invoice without a "
                                  "readable Invoicedate")
            out.append(invoice)
        return out

    # ------------------------------------------------------------------- protocol

    def check(self) -> None:
        self._exchange("GET", "customerlist.nv", {"keyword": CHECK_KEYWORD}, read=True)

    def sync(self, since: str | None) -> Iterator[SyncPage]:
        params: dict[str, Any] = {"changedsince": since} if since else {}
        keys, stamp = self._list_keys(params)
        listed_at = netvisor_time(stamp)
        if listed_at is None:
            raise BadResponse(SYSTEM, "customerlist.nv: ResponseStatus/TimeStamp is not a "
                              "time in Netvisor's d.M.yyyy H:mm:ss")
        cursor_next = _changedsince(listed_at)
        for records in self._read_chunks(keys, self._sync_chunk):
            yield SyncPage(records=tuple(records), cursor=since)
        yield SyncPage(cursor=cursor_next)

    def find(self, identifiers: Sequence[Identifier]) -> list[RecordRef]:
        emails, phones = wanted(identifiers)
        keys: list[str] = []
        for email in sorted(emails):
            found, _ = self._list_keys({"emailkeyword": email})
            keys.extend(k for k in found if k not in keys)
        refs: list[RecordRef] = []
        for batch in self._customers(keys):
            for c in batch:
                self.remember(c.key, c)
                if matches(c.emails, c.phones, emails, phones):
                    refs.append(RecordRef(SYSTEM, "customer", c.key,
                                          label=f"Netvisor customer {c.key}", facts=c.facts))
                for contact in c.contacts():
                    if matches([contact.email], [contact.phone], emails, phones):
                        refs.append(contact.ref())
        return refs

    def export(self, refs: Sequence[RecordRef]) -> Export:
        self.begin()
        whole, contacts_only = _split(refs)
        sections: list[ExportSection] = []
        missing = 0
        keys = list(dict.fromkeys([*whole, *contacts_only]))
        customers: dict[str, Customer] = {k: c for k in keys if (c := self.recall(k)) is not None}
        for batch in self._customers([k for k in keys if k not in customers]):
            customers.update((c.key, c) for c in batch)
        for key in whole:
            c = customers.get(key)
            if c is None:
                missing += 1
                continue
            sections.append(ExportSection(
                f"Netvisor customer {key}", f"netvisor:customer/{key}", (to_dict(c.el),),
                titles={"fi": f"Asiakas {key} Netvisorissa", "sv": f"Kund {key} i Netvisor"}))
            contacts = [to_dict(ct.el) for ct in c.contacts() if ct.contact_id != "details"]
            if contacts:
                sections.append(ExportSection(
                    f"Netvisor contact persons of customer {key}",
                    f"netvisor:customer/{key}/contacts", tuple(contacts),
                    titles={"fi": f"Asiakkaan {key} yhteyshenkilöt Netvisorissa",
                            "sv": f"Kontaktpersoner för kund {key} i Netvisor"}))
            invoices = self._invoices(key)
            sections.append(ExportSection(
                f"Netvisor sales invoices of customer {key} (headers)",
                f"netvisor:salesinvoicelist?customernetvisorkey={key}", tuple(invoices),
                titles={"fi": f"Asiakkaan {key} myyntilaskut Netvisorissa (otsikkotiedot)",
                        "sv": f"Försäljningsfakturor till kund {key} i Netvisor (huvuden)"}))
        for key, ids in contacts_only.items():
            c = customers.get(key)
            picked = [to_dict(ct.el) for ct in (c.contacts() if c else []) if ct.record_id in ids]
            missing += len(ids) - len(picked)
            if picked:
                sections.append(ExportSection(
                    f"Netvisor contact person(s) at customer {key}",
                    f"netvisor:customer/{key}/contacts", tuple(picked),
                    titles={"fi": f"Yhteyshenkilö(t) asiakkaalla {key} Netvisorissa",
                            "sv": f"Kontaktperson(er) hos kund {key} i Netvisor"}))
        return Export(SYSTEM, tuple(sections),
                      evidence={"api_calls": self.op_calls, "not_found": missing,
                                "customers": len(whole)})

    def erase(self, refs: Sequence[RecordRef], policy: SystemPolicy) -> Outcome:
        whole, contacts_only = _split(refs)
        # The customers this op's find has just read: each serves the first step on it
        # once (a second step reads afresh, after the first one's writes); the read-back
        # after the writes is what proves the erasure.
        read = {k: c for k in [*whole, *contacts_only] if (c := self.recall(k)) is not None}
        self.forget_found()
        self.begin()
        by_id = {r.record_id: r for r in refs if r.system == SYSTEM}
        results: list[RecordOutcome] = []
        verified = True
        for key in whole:
            ref = by_id.get(key) or RecordRef(SYSTEM, "customer", key)
            outcomes, ok = self._erase_customer(ref, key, policy, read.pop(key, None))
            results.extend(outcomes)
            verified = verified and ok
        for key, ids in contacts_only.items():
            for rid in ids:
                outcome, ok = self._erase_contact(by_id[rid], key, rid, read.pop(key, None))
                results.append(outcome)
                verified = verified and ok
        results.extend(_with_their_customer(refs, whole, results))
        return self.outcome(results, verified)

    def opt_out(self, refs: Sequence[RecordRef]) -> Outcome:
        whole, contacts_only = _split(refs)
        keys = list(dict.fromkeys([*whole, *contacts_only]))
        # What this op's find has just read decides which fields to clear; the read-back
        # after the edit is what proves it.
        customers: dict[str, Customer] = {k: c for k in keys if (c := self.recall(k)) is not None}
        self.forget_found()
        self.begin()
        for batch in self._customers([k for k in keys if k not in customers]):
            customers.update((c.key, c) for c in batch)
        results: list[RecordOutcome] = []
        verified = True
        for ref in refs:
            if ref.system != SYSTEM:
                continue
            key = ref.container if ref.kind == "contact_person" else ref.record_id
            c = customers.get(key or "")
            if c is None:
                results.append(RecordOutcome(ref, Action.NOT_FOUND, detail="no such customer"))
                continue
            on = [(s, f) for s, f, v in c.marketing_fields() if _is_true(v)]
            if not on:
                results.append(RecordOutcome(
                    ref, Action.NOTHING_TO_DO,
                    detail="the Netvisor customer has no marketing permission or newsletter "
                           "field set; an accounting system sends no marketing"))
                continue
            transaction = self._edit_customer(c.key, {s: {f: "0" for ss, f in on if ss == s}
                                                      for s, _ in on})
            record = self.done(RecordOutcome(
                ref, Action.UNSUBSCRIBED, status_code=200, vendor_request_id=transaction,
                detail=f"marketing field(s) {', '.join(f for _, f in on)} set to 0"))
            after = self._customer(c.key)
            still = [f for s, f, v in (after.marketing_fields() if after else []) if _is_true(v)]
            verified = verified and not still
            results.append(_read_back(record, "still set" if still else "cleared"))
        return self.outcome(results, verified)

    # ------------------------------------------------------------------ erasure parts
    #
    # Every write the vendor confirmed goes through `self.done` before the next one
    # (DESIGN.md rule 3): once the e-mail is blanked, a retry can no longer find the
    # customer by it, and only the journal remembers what was done. The read-back
    # then adds what it saw to the record's detail and decides `verified`.

    def _erase_customer(self, ref: RecordRef, key: str, policy: SystemPolicy,
                        read: Customer | None = None) -> tuple[list[RecordOutcome], bool]:
        """Delete the customer; when Netvisor refuses (it has invoices), keep it while
        the law says so and anonymise it when nothing does. ``read``: the customer as
        this op has just read it, else it is read now."""
        customer = read or self._customer(key)
        if customer is None:
            return [RecordOutcome(ref, Action.NOT_FOUND, detail="no such customer")], True
        if _inactive(customer):
            kept = self._kept_already(ref, customer, policy)
            if kept is not None:
                return [kept], True
        refused = False
        if policy.erase != EraseMode.ANONYMISE:
            deleted = self._try_delete(ref, key)
            if deleted is not None:
                return [deleted[0]], deleted[1]
            refused = True
        invoices = self._booked_invoices(key)
        if refused and not invoices:
            raise BadResponse(SYSTEM, "deletecustomer.nv refused for invoices, but "
                              "salesinvoicelist.nv lists none for the customer")
        hold = Hold.of(invoices, policy, self._today())
        why = ("Netvisor refused deletion (the customer has invoices)" if refused
               else "policy says anonymise")
        if hold.held or hold.open:
            return self._retain(ref, customer, hold, policy, why)
        return self._anonymise(ref, customer, hold, why)

    def _kept_already(self, ref: RecordRef, customer: Customer, policy: SystemPolicy
                      ) -> RecordOutcome | None:
        """A customer an earlier erasure already minimised under a hold still running:
        reported retained again, with its basis and end, and nothing written (rule 8).
        None when there is something left to do."""
        hold = Hold.of(self._booked_invoices(customer.key), policy, self._today())
        keep = _COLLECTION if hold.open else ()
        if not (hold.held or hold.open) or not _minimised(customer, keep):
            return None
        bases = [policy.retention_basis or policy.legal_basis] if hold.held else []
        if hold.open:
            bases.append("GDPR art. 17(3)(e) establishment, exercise or defence of legal "
                         f"claims: open invoice(s) {', '.join(i.label for i in hold.open)}")
        return RecordOutcome(ref, Action.RETAINED, status_code=200,
                             detail="already minimised and deactivated under the hold by an "
                                    "earlier erasure; nothing written; read back: minimised",
                             legal_basis="; ".join(bases),
                             retained_until=hold.until if hold.held else None)

    def _try_delete(self, ref: RecordRef, key: str) -> tuple[RecordOutcome, bool] | None:
        """``deletecustomer.nv`` and its read-back; None when refused for invoices."""
        try:
            transaction = self._write("GET", "deletecustomer.nv", {"customerid": key})
        except HasInvoices:
            return None
        except VendorError as exc:
            # A retried delete whose first attempt went through answers "not found":
            # read back before calling it a failure.
            if self._customer(key) is not None:
                raise
            return self.done(RecordOutcome(
                ref, Action.DELETED, status_code=200, vendor_request_id=exc.vendor_request_id,
                detail="deleted (the retried call found it gone); read back: gone")), True
        record = self.done(RecordOutcome(ref, Action.DELETED, status_code=200,
                                         vendor_request_id=transaction,
                                         detail="deletecustomer.nv OK"))
        gone = self._customer(key) is None
        return _read_back(record, "gone" if gone else "STILL PRESENT"), gone

    def _retain(self, ref: RecordRef, customer: Customer, hold: Hold, policy: SystemPolicy,
                why: str) -> tuple[list[RecordOutcome], bool]:
        """Kept by law: minimised and deactivated, with every reason and its end recorded.

        The bookkeeping hold keeps name, address and codes until it ends; an open
        invoice (a claim still to collect, GDPR art. 17(3)(e)) also keeps where the
        invoice is sent, the e-mail and e-invoicing address, while it is open."""
        keep = _COLLECTION if hold.open else ()
        bases, parts = [], [f"{why}: {len(hold.invoices)} invoice(s), last {hold.last}"]
        if hold.held:
            bases.append(policy.retention_basis or policy.legal_basis)
            parts.append(f"kept under the Accounting Act until {hold.until} (name, address "
                         "and codes kept)")
        if hold.open:
            labels = ", ".join(i.label for i in hold.open)
            bases.append("GDPR art. 17(3)(e) establishment, exercise or defence of legal "
                         f"claims: open invoice(s) {labels}")
            parts.append(f"{len(hold.open)} invoice(s) still open ({labels}): name, address, "
                         "e-mail and e-invoicing address kept to collect them while open")
        parts.append(("" if keep else "e-mail, e-invoicing address, ")
                     + "phone, fax, contact details, contact persons' e-mail and phone, "
                       "comment and marketing fields blanked; deactivated")
        record = RecordOutcome(ref, Action.RETAINED, detail="; ".join(parts), status_code=200,
                               legal_basis="; ".join(bases),
                               retained_until=hold.until if hold.held else None)
        outcomes = self._minimise(customer, record, keep)
        after = self._customer(customer.key)
        ok = after is not None and _minimised(after, keep)
        outcomes[0] = _read_back(outcomes[0], "minimised" if ok else "NOT minimised")
        return outcomes, ok

    def _minimise(self, customer: Customer, record: RecordOutcome,
                  keep: tuple[str, ...]) -> list[RecordOutcome]:
        """Blank what bookkeeping (and collecting, ``keep``) does not need, deactivate;
        only changed elements go. The customer's record first, then its contacts'."""
        base = {tag: "" for tag, name in _BASE_CONTACT
                if tag not in keep and _text(customer.base, name)}
        base["isactive"] = "0"
        sections: dict[str, dict[str, str]] = {
            # in the order of the DTD: phonenumber, faxnumber, email, ..., isactive, ...
            "customerbaseinformation": dict(sorted(base.items(),
                                                   key=lambda kv: _BASE_ORDER.index(kv[0]))),
            **_personal_sections(customer),
        }
        transaction = self._edit_customer(customer.key, sections)
        outcomes = [self.done(replace(record, vendor_request_id=transaction))]
        for contact in customer.contacts():
            if contact.contact_id != "details" and (contact.email or contact.phone):
                transaction = self._blank_contact(customer.key, contact)
                outcomes.append(self.done(RecordOutcome(
                    contact.ref(), Action.ANONYMISED, status_code=200,
                    vendor_request_id=transaction,
                    detail="contact person's e-mail and phone blanked with its customer")))
        return outcomes

    def _anonymise(self, ref: RecordRef, customer: Customer, hold: Hold, why: str
                   ) -> tuple[list[RecordOutcome], bool]:
        """No hold (ended, or none): what Netvisor will not delete loses who it was.

        An invoiced customer cannot be deleted, so erasure here means: the name
        replaced, address, business id, e-mail, phone and every contact detail
        blanked, contact persons deleted (the default one anonymised: Netvisor keeps
        it), deactivated. The booked invoices keep their own copy of the name and
        address as billed; the API cannot change a booked invoice, and the detail
        says so."""
        if hold.until is not None:
            reason = f"the Accounting Act hold ended on {hold.until}"
        elif hold.invoices:
            reason = "the policy sets no retention period"
        else:
            reason = "no invoices"
        invoices = (f"{len(hold.invoices)} invoice(s), last {hold.last}; " if hold.invoices
                    else "")
        note = ("; the invoices keep their own copy of the name and address as billed "
                "(Netvisor's API cannot change a booked invoice)" if hold.invoices else "")
        transaction = self._edit_customer(customer.key, _anonymous_sections(customer))
        record = self.done(RecordOutcome(
            ref, Action.ANONYMISED, status_code=200, vendor_request_id=transaction,
            detail=f"{why}; {reason}; {invoices}name replaced, address, business id, e-mail, "
                   "phone, contact details and comment blanked, deactivated" + note))
        outcomes = [record]
        for contact in customer.contacts():
            if contact.contact_id != "details":
                outcomes.append(self._anonymise_contact(customer.key, contact))
        after = self._customer(customer.key)
        ok = after is not None and _anonymised(after)
        outcomes[0] = _read_back(record, "anonymised" if ok else "NOT anonymised")
        return outcomes, ok

    def _anonymise_contact(self, key: str, contact: Contact) -> RecordOutcome:
        """Delete a contact person of an anonymised customer; Netvisor keeps the default
        one, so that one's name is replaced and its e-mail, phone and title blanked."""
        if not contact.is_default:
            try:
                transaction = self._write("POST", "contactperson.nv",
                                          {"method": "delete", "id": contact.contact_id})
            except VendorError as exc:
                if "DEFAULT" not in exc.detail.upper():
                    raise
            else:
                return self.done(RecordOutcome(
                    contact.ref(), Action.DELETED, status_code=200,
                    vendor_request_id=transaction,
                    detail="contact person deleted with its anonymised customer"))
        body = ("<root><contactperson><firstname></firstname>"
                f"{_element('lastname', ANONYMISED_CONTACT)}<phonenumber></phonenumber>"
                "<email></email><title></title></contactperson></root>")
        transaction = self._write("POST", "contactperson.nv",
                                  {"method": "edit", "id": contact.contact_id}, body)
        return self.done(RecordOutcome(
            contact.ref(), Action.ANONYMISED, status_code=200, vendor_request_id=transaction,
            detail="default contact person (Netvisor keeps it) anonymised with its customer: "
                   "name replaced, e-mail, phone and title blanked"))

    def _edit_customer(self, key: str, sections: dict[str, dict[str, str]]) -> str | None:
        order = ("customerbaseinformation", "customerfinvoicedetails",
                 "customerdeliverydetails", "customercontactdetails",
                 "customeradditionalinformation")
        parts = []
        for section in sorted(sections, key=lambda s: order.index(s) if s in order else 99):
            inner = "".join(_element(f, v) for f, v in sections[section].items())
            parts.append(f"<{section}>{inner}</{section}>")
        body = f"<root><customer>{''.join(parts)}</customer></root>"
        return self._write("POST", "customer.nv", {"method": "edit", "id": key}, body)

    def _blank_contact(self, key: str, contact: Contact) -> str | None:
        fields = "".join(_element(t, "") for t, v in (("phonenumber", contact.phone),
                                                     ("email", contact.email)) if v)
        body = f"<root><contactperson>{fields}</contactperson></root>"
        return self._write("POST", "contactperson.nv",
                           {"method": "edit", "id": contact.contact_id}, body)

    def _erase_contact(self, ref: RecordRef, key: str, rid: str,
                       read: Customer | None = None) -> tuple[RecordOutcome, bool]:
        """A contact person alone (another customer's): deleted, or blanked when it is
        the default one Netvisor keeps; the customer itself is not touched. ``read``:
        the customer as this op has just read it, else it is read now."""
        customer = read or self._customer(key)
        contact = next((c for c in (customer.contacts() if customer else [])
                        if c.record_id == rid), None)
        if customer is None or contact is None:
            return RecordOutcome(ref, Action.NOT_FOUND, detail="no such contact person"), True
        if contact.contact_id == "details":
            transaction = self._edit_customer(
                key, {"customercontactdetails": {t: "" for t in _DETAIL_TAGS}})
            record = self.done(RecordOutcome(
                ref, Action.ANONYMISED, status_code=200, vendor_request_id=transaction,
                detail="the customer's contact details (name, e-mail, phone) blanked"))
            after = self._customer(key)
            ok = after is not None and not any(_text(after.contact_details, t)
                                               for t in _DETAIL_TAGS)
            return _read_back(record, "blank" if ok else "NOT blank"), ok
        record = self._delete_or_blank(ref, key, contact)
        after = self._customer(key)
        left = next((c for c in (after.contacts() if after else []) if c.record_id == rid), None)
        if record.action == Action.DELETED:
            ok = left is None
            return _read_back(record, "gone" if ok else "STILL PRESENT"), ok
        ok = left is None or (not left.email and not left.phone)
        return _read_back(record, "blank" if ok else "NOT blank"), ok

    def _delete_or_blank(self, ref: RecordRef, key: str, contact: Contact) -> RecordOutcome:
        try:
            transaction = self._write("POST", "contactperson.nv",
                                      {"method": "delete", "id": contact.contact_id})
        except VendorError as exc:
            now = self._customer(key)
            if not any(c.record_id == contact.record_id for c in (now.contacts() if now else [])):
                return self.done(RecordOutcome(
                    ref, Action.DELETED, status_code=200, vendor_request_id=exc.vendor_request_id,
                    detail="contact person deleted (the retried call found it gone)"))
            if "DEFAULT" not in exc.detail.upper():
                raise
            # The default contact cannot be deleted: blank its e-mail and phone.
            transaction = self._blank_contact(key, contact)
            return self.done(RecordOutcome(
                ref, Action.ANONYMISED, status_code=200, vendor_request_id=transaction,
                detail="default contact person (Netvisor keeps it): e-mail and phone blanked"))
        return self.done(RecordOutcome(ref, Action.DELETED, status_code=200,
                                       vendor_request_id=transaction,
                                       detail="contact person deleted"))

    # -------------------------------------------------------- rectification, restriction

    def rectify(self, refs: Sequence[RecordRef], corrections: Corrections) -> Outcome:
        self.forget_found()
        self.begin()
        return self.settle(((self._rectify_customer if ref.kind == "customer"
                             else self._rectify_contact)(ref, corrections)
                            for ref in refs if ref.system == SYSTEM),
                           corrected=list(corrections.fields()))

    def _rectify_customer(self, ref: RecordRef, c: Corrections) -> tuple[RecordOutcome, bool]:
        customer = self._customer(ref.record_id)
        if customer is None:
            return RecordOutcome(ref, Action.NOT_FOUND, detail="no such customer"), True
        told = _told(customer, c)
        base = _corrected_base(customer, c)
        if not base:
            record = RecordOutcome(ref, Action.RECTIFIED,
                                   detail=f"already holds the corrected {', '.join(told)}")
        else:
            transaction = self._edit_customer(customer.key, {"customerbaseinformation": base})
            record = self.done(RecordOutcome(
                ref, Action.RECTIFIED, status_code=200, vendor_request_id=transaction,
                detail=f"told the corrected {', '.join(told)}"))
        untold = [f for f in c.fields() if f not in told]
        if untold:
            record = replace(record, detail=f"{record.detail}; {', '.join(untold)}: a company "
                                            "customer's, not the person's (not told)")
        after = self._customer(customer.key)
        wrong = ["the customer"] if after is None else [
            f for f in told if _corrected_base(after, Corrections(**{f: getattr(c, f)}))]
        if wrong:
            return _read_back(record, f"{', '.join(wrong)} not as corrected"), False
        return _read_back(record, "shows the corrected values"), True

    def _rectify_contact(self, ref: RecordRef, c: Corrections) -> tuple[RecordOutcome, bool]:
        """A contact person: the customer's contact details (``customer.nv``) or one of
        its contact persons (``contactperson.nv``); the address is the company's."""
        key = ref.container or ""
        contact = self._contact(key, ref.record_id)
        if contact is None:
            return RecordOutcome(ref, Action.NOT_FOUND, detail="no such contact person"), True
        told = [f for f in c.fields() if f != "address"]
        edit = _corrected_contact(contact, c)
        if not edit:
            record = RecordOutcome(ref, Action.RECTIFIED,
                                   detail=f"already holds the corrected {', '.join(told)}")
        else:
            if contact.contact_id == "details":
                transaction = self._edit_customer(key, {"customercontactdetails": edit})
            else:
                inner = "".join(_element(t, v) for t, v in edit.items())
                transaction = self._write("POST", "contactperson.nv",
                                          {"method": "edit", "id": contact.contact_id},
                                          f"<root><contactperson>{inner}</contactperson></root>")
            record = self.done(RecordOutcome(
                ref, Action.RECTIFIED, status_code=200, vendor_request_id=transaction,
                detail=f"told the corrected {', '.join(told)}"))
        if c.address is not None:
            record = replace(record, detail=f"{record.detail}; address: the company's, not "
                                            "the contact person's (not told)")
        after = self._contact(key, ref.record_id)
        if after is None:
            return _read_back(record, "the contact person is gone"), False
        if _corrected_contact(after, c):
            return _read_back(record, "not as corrected"), False
        return _read_back(record, "shows the corrected values"), True

    def _contact(self, key: str, rid: str) -> Contact | None:
        customer = self._customer(key)
        return next((x for x in (customer.contacts() if customer else [])
                     if x.record_id == rid), None)

    def restrict(self, refs: Sequence[RecordRef], lift: bool) -> Outcome:
        self.forget_found()
        self.begin()
        by_hand = _CONTACT_BY_HAND % ("lift the restriction" if lift else "restrict processing")
        return self.settle((self._restrict_customer(ref, lift) if ref.kind == "customer"
                            else (RecordOutcome(ref, Action.KEPT, by_hand), True))
                           for ref in refs if ref.system == SYSTEM)

    def _restrict_customer(self, ref: RecordRef, lift: bool) -> tuple[RecordOutcome, bool]:
        customer = self._customer(ref.record_id)
        if customer is None:
            return RecordOutcome(ref, Action.NOT_FOUND, detail="no such customer"), True
        action = Action.LIFTED if lift else Action.RESTRICTED
        comment = _text(customer.additional, "Comment")
        wanted_comment = _without_mark(comment) if lift else _with_mark(comment)
        sections: dict[str, dict[str, str]] = {}
        if wanted_comment != comment:
            sections["customeradditionalinformation"] = {"comment": wanted_comment}
        if not lift:
            for section, field_tag, value in customer.marketing_fields():
                if _is_true(value):
                    sections.setdefault(section, {})[field_tag] = "0"
        if not sections:
            record = RecordOutcome(ref, action,
                                   detail="comment already " + ("without" if lift else "with")
                                   + " the restriction line")
        else:
            transaction = self._edit_customer(customer.key, sections)
            record = self.done(RecordOutcome(
                ref, action, status_code=200, vendor_request_id=transaction,
                detail="restriction line " + ("removed from" if lift else "added to")
                + " the comment" + ("; marketing field(s) set to 0"
                                    if len(sections) > ("customeradditionalinformation"
                                                        in sections) else "")))
        after = self._customer(customer.key)
        if after is None:
            return _read_back(record, "the customer is gone"), False
        marked = RESTRICTED_MARK in _text(after.additional, "Comment")
        marketing = any(_is_true(v) for _, _, v in after.marketing_fields())
        ok = not marked if lift else marked and not marketing
        return _read_back(record, f"restriction line {'present' if marked else 'absent'}"
                                  + ("; a marketing field still set" if marketing else "")), ok


@dataclass(frozen=True)
class Hold:
    """Why an invoiced customer is kept, decided from its invoices, the policy and today.

    ``until`` is the end of the bookkeeping hold (None without invoices or without a
    retention period); ``held`` whether it still runs today (a hold whose end has
    passed is no hold); ``open`` the invoices still to be collected.
    """

    invoices: tuple[BookedInvoice, ...]
    last: date | None
    until: date | None
    held: bool
    open: tuple[BookedInvoice, ...]

    @classmethod
    def of(cls, invoices: Sequence[BookedInvoice], policy: SystemPolicy, today: date) -> Hold:
        last = max((i.invoicedate for i in invoices if i.invoicedate is not None),
                   default=None)
        until = policy.hold_ends(last) if last is not None else None
        return cls(tuple(invoices), last, until, until is not None and until >= today,
                   tuple(i for i in invoices if i.is_open))


RESTRICTED_MARK = "GDPR: processing restricted (art. 18)"
_CONTACT_BY_HAND = ("a Netvisor contact person has no field that could carry a "
                    "restriction: %s by hand in Netvisor")


def _with_mark(comment: str) -> str:
    if RESTRICTED_MARK in comment:
        return comment
    return f"{comment}\n{RESTRICTED_MARK}" if comment else RESTRICTED_MARK


def _without_mark(comment: str) -> str:
    lines = [line for line in comment.splitlines() if line.strip() != RESTRICTED_MARK]
    return "\n".join(lines).strip()


def _corrected_contact(contact: Contact, c: Corrections) -> dict[str, str]:
    """The edit of a contact person with what it does not hold yet, in the element names
    and order of its kind: the customer's contact details, or a contact person."""
    details = contact.contact_id == "details"
    edit: dict[str, str] = {}
    if c.name is not None and contact.name != c.name:
        if details:
            edit["contactperson"] = c.name
        else:
            edit["firstname"], edit["lastname"] = c.split_name()
    if c.phone is not None and normalise_phone(contact.phone).value != c.phone:
        edit["contactpersonphone" if details else "phonenumber"] = c.phone
    if c.email is not None and normalise_email(contact.email or "") != c.email:
        edit["contactpersonemail" if details else "email"] = c.email
    if details:  # the DTD's order
        return dict(sorted(edit.items(), key=lambda kv: _DETAIL_TAGS.index(kv[0])))
    return edit


def _private(customer: Customer) -> bool:
    return bool(customer.person_name)


def _told(customer: Customer, c: Corrections) -> list[str]:
    """The corrected fields this customer holds as the person's own: a company
    customer's name and address are the company's."""
    return [f for f in c.fields() if f in ("email", "phone") or _private(customer)]


def _corrected_base(customer: Customer, c: Corrections) -> dict[str, str]:
    """The base-information edit with what the customer does not hold yet, in the DTD's
    element order ({} when it holds it all)."""
    base = customer.base
    edit: dict[str, str] = {}
    email = _text(base, "Email")
    if c.email is not None and normalise_email(email or "") != c.email:
        edit["email"] = c.email
        invoicing = _text(base, "EmailInvoicingAddress")
        if invoicing and invoicing.strip().lower() == email.strip().lower():
            edit["emailinvoicingaddress"] = c.email
    phone = _text(base, "PhoneNumber")
    if c.phone is not None and normalise_phone(phone).value != c.phone:
        edit["phonenumber"] = c.phone
    if _private(customer) and c.name is not None and customer.name != c.name:
        edit["name"] = c.name
    if _private(customer) and c.address is not None:
        a = c.address
        for tag, name, value in (("streetaddress", "StreetAddress", a.street),
                                 ("postnumber", "PostNumber", a.postcode),
                                 ("city", "City", a.city)):
            if _text(base, name) != value:
                edit[tag] = value
    return dict(sorted(edit.items(), key=lambda kv: _ANON_ORDER.index(kv[0])))


# ---------------------------------------------------------------------- pure helpers


def _element(tag: str, value: str) -> str:
    return f"<{tag}>{escape(value)}</{tag}>" if value else f"<{tag}></{tag}>"


def _read_back(record: RecordOutcome, seen: str) -> RecordOutcome:
    """The journalled action with what the read-back saw added to its detail."""
    return replace(record, detail=f"{record.detail}; read back: {seen}")


def _with_their_customer(refs: Sequence[RecordRef], whole: Sequence[str],
                         results: Sequence[RecordOutcome]) -> list[RecordOutcome]:
    """Contact-person refs under a customer erased as a whole: the customer's outcome,
    unless the customer's erasure acted on the contact person itself."""
    acted = {r.ref.record_id for r in results}
    out = []
    for ref in refs:
        if (ref.kind == "contact_person" and (ref.container or "") in whole
                and ref.record_id not in acted):
            parent = next(r for r in results if r.ref.record_id == ref.container)
            out.append(RecordOutcome(
                ref, parent.action, detail=f"with its customer: {parent.detail}",
                status_code=parent.status_code, vendor_request_id=parent.vendor_request_id,
                legal_basis=parent.legal_basis, retained_until=parent.retained_until))
    return out


def _personal_sections(customer: Customer) -> dict[str, dict[str, str]]:
    """Blanks for the named contact on the customer and its comment, and marketing
    flags off: personal data neither bookkeeping nor collection needs."""
    sections: dict[str, dict[str, str]] = {}
    details = customer.contact_details
    if details is not None:
        blank = {t: "" for t in _DETAIL_TAGS if _text(details, t)}
        if blank:
            sections["customercontactdetails"] = blank
    if customer.additional is not None and _text(customer.additional, "Comment"):
        sections["customeradditionalinformation"] = {"comment": ""}
    for section, field_tag, value in customer.marketing_fields():
        if _is_true(value):
            sections.setdefault(section, {})[field_tag] = "0"
    return sections


def _anonymous_sections(customer: Customer) -> dict[str, dict[str, str]]:
    """The edit that leaves nothing of who the customer was (only values present go)."""
    base = {tag: "" for tag, name in _ANON_BASE if _text(customer.base, name)}
    if customer.name != ANONYMISED_NAME:
        base["name"] = ANONYMISED_NAME
    base["isactive"] = "0"
    sections = {"customerbaseinformation": dict(sorted(
        base.items(), key=lambda kv: _ANON_ORDER.index(kv[0])))}
    for section, tags in _ANON_SECTIONS.items():
        blank = {t: "" for t in tags if _text(_child(customer.el, section), t)}
        if blank:
            sections[section] = blank
    sections.update(_personal_sections(customer))
    return sections


def _inactive(customer: Customer) -> bool:
    return customer.is_active.strip().lower() in ("0", "false", "ei")


def _no_personal_sections(customer: Customer) -> bool:
    details = customer.contact_details
    blank_details = details is None or not any(_text(details, t) for t in _DETAIL_TAGS)
    blank_comment = customer.additional is None or not _text(customer.additional, "Comment")
    marketing_off = not any(_is_true(v) for _, _, v in customer.marketing_fields())
    return blank_details and blank_comment and marketing_off


def _minimised(customer: Customer, keep: tuple[str, ...] = ()) -> bool:
    """What `_minimise` intended, read back: ``keep`` (collection channels) may stay."""
    contacts_blank = all(not c.email and not c.phone for c in customer.contacts()
                         if c.contact_id != "details")
    blank_own = not any(_text(customer.base, name) for tag, name in _BASE_CONTACT
                        if tag not in keep)
    return (_no_personal_sections(customer) and contacts_blank and _inactive(customer)
            and blank_own)


def _anonymised(customer: Customer) -> bool:
    """What `_anonymise` intended, read back: nothing left that says who it was."""
    blank_base = not any(_text(customer.base, name) for _, name in _ANON_BASE)
    blank_sections = not any(_text(_child(customer.el, section), t)
                             for section, tags in _ANON_SECTIONS.items() for t in tags)
    contacts_gone = all(not c.email and not c.phone and c.name in ("", ANONYMISED_CONTACT)
                        for c in customer.contacts() if c.contact_id != "details")
    return (customer.name == ANONYMISED_NAME and blank_base and blank_sections
            and contacts_gone and _no_personal_sections(customer) and _inactive(customer))


def _split(refs: Sequence[RecordRef]) -> tuple[list[str], dict[str, list[str]]]:
    """(customer keys erased/exported whole, {customer key: contact record ids} for
    contact persons whose customer is not itself referenced)."""
    whole = list(dict.fromkeys(r.record_id for r in refs
                               if r.system == SYSTEM and r.kind == "customer"))
    contacts: dict[str, list[str]] = {}
    for r in refs:
        if r.system == SYSTEM and r.kind == "contact_person":
            key = r.container or r.record_id.split("/", 1)[0]
            if key not in whole:
                contacts.setdefault(key, []).append(r.record_id)
    return whole, contacts


def _changedsince(moment: datetime) -> str:
    """A Netvisor time as ``changedsince`` takes it: ``YYYY-MM-DDThh:mm:ss``, Finnish
    local time (reference §D.3). The cursor is kept in this form."""
    return moment.astimezone(HELSINKI).strftime("%Y-%m-%dT%H:%M:%S")


def _failure(resource: str, message: str, status: int, transaction_id: str | None
             ) -> ConnectorError:
    """The taxonomy error for a ``<Status>FAILED</Status>`` answer, the same whether
    it came as HTTP 200 or, with ``UseHTTPResponseStatusCodes``, as 400/401/403/500:
    the category in the body decides, the status only where the body names none."""
    upper = message.upper()
    common: dict[str, Any] = {"status_code": status, "vendor_request_id": transaction_id}
    if "AUTHENTICATION_FAILED" in upper:
        return AuthError(SYSTEM, f"{resource}: {message}", **common)
    if "HAS INVOICES" in upper or "INVOICING HISTORY" in upper:
        return HasInvoices(SYSTEM, f"{resource}: {message}", **common)
    if "REQUEST_NOT_ALLOWED" in upper or "TOO MANY" in upper or "SIMULTANEOUS" in upper:
        # Netvisor's throttle (overlapping or too many requests): no Retry-After given.
        return RateLimited(SYSTEM, f"{resource}: {message}", status_code=status,
                           vendor_request_id=transaction_id)
    if status in (401, 403):
        # 403 is Netvisor's "service access error": the identifiers lack a right.
        return AuthError(SYSTEM, f"{resource}: {message}", **common)
    err = VendorError(SYSTEM, f"{resource}: {message}", **common)
    # A reused TransactionId (the legacy MACs' rule) is worth another try with a fresh
    # one (the auth signs every attempt anew), and so is Netvisor's own 5xx; invalid or
    # duplicate data would fail the same way again.
    err.retryable = ("REQUEST_NOT_UNIQUE" in upper or "TRY AGAIN" in upper
                     or status >= 500)
    return err
