"""What the Netvisor connector reads from each answer, declared once (DESIGN.md rule 3).

Netvisor answers XML with HTTP 200 even through a proxy's error page or a half-
migrated endpoint, so "OK and no customers" must mean Netvisor said so, not that
the elements we read were missing. :func:`plain` turns a parsed ``<Root>`` into
nested dicts keyed by lower-case element names (Netvisor's names are case-
insensitive), and these models are checked with :func:`connectors.http.validate`:
a body without what the connector reads is BadResponse, never "not found".
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import Annotated, Any, NotRequired, get_args, get_type_hints

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from typing_extensions import TypedDict, is_typeddict  # pydantic takes this one on 3.11

from connectors.netvisor.parsing import Element, _local, add, to_dict

# Invoice states in which the customer still owes money (updatesalesinvoicestatus.nv:
# open, overdue, reminded, requested = sent to collection, collected = in collection).
# Paid and credit loss close the claim; any state Netvisor adds later counts as open,
# because keeping a collection channel a little longer can be undone and erasing it
# cannot.
CLOSED_STATUSES = frozenset({"paid", "creditloss", "credit loss", "maksettu", "luottotappio"})


def plain(el: Element, model: type | None = None) -> Any:
    """An element as data with lower-case tags, what the models validate.

    With ``model`` (a pydantic model or a TypedDict), only the elements the model (and
    its nested models) declare are turned into data: a page of 500 customers is
    validated by its keys and names, and converting every address and contact person
    only to have pydantic ignore them was most of a Netvisor sync (a list of 12,000
    customers: 0.039 s converting every field of each, 0.030 s its key alone). What is
    declared is converted exactly as without it.
    """
    if model is None or not len(el):
        return to_dict(el, lower=True)
    fields = _declared(model)
    out: dict[str, Any] = {}
    for child in el:
        key = _local(child.tag)
        if key not in fields:
            continue
        add(out, key, plain(child, fields[key]))
    return out


@lru_cache(maxsize=128)
def _declared(model: type) -> dict[str, type | None]:
    """A model's fields by name, each with the model its value is read as (if any)."""
    if is_typeddict(model):
        hints = get_type_hints(model, include_extras=True)
        return {name: _model_in(hint) for name, hint in hints.items()}
    return {name: _model_in(field.annotation) for name, field in model.model_fields.items()}


def _model_in(annotation: Any) -> type | None:  # noqa: ANN401 - a type hint
    """The pydantic model or TypedDict inside ``list[M]``, ``M | None``,
    ``Annotated[M, ...]``."""
    if is_typeddict(annotation) or (
            isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _listed(value: Any) -> Any:
    """One child is a dict, several a list, none an empty string: always a list."""
    if value is None or value == "":
        return []
    return value if isinstance(value, list) else [value]


def _section(value: Any) -> Any:
    """An empty section (``<Customerlist />``) is present and empty, not missing."""
    return {} if value == "" else value


def _netvisor_date(value: Any) -> Any:
    """``yyyy-mm-dd`` (format="ansi") or ``dd.mm.yyyy``, as Netvisor writes dates."""
    if isinstance(value, str):
        text = value.strip()[:10]
        for fmt in ("%Y-%m-%d", "%d.%m.%Y"):
            try:
                return datetime.strptime(text, fmt).date()
            except ValueError:
                continue
    return value


Key = Annotated[str, StringConstraints(pattern=r"^\d+$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ListedCustomer(TypedDict):
    """A dict, not a model: a list answers every customer of the environment at once,
    and a model instance each made validating a list of 12,000 take 0.06 s, not 0.005."""

    netvisorkey: Key


class CustomerList(_Model):
    customer: Annotated[list[ListedCustomer], BeforeValidator(_listed)] = []


class CustomerListAnswer(_Model):
    """``customerlist.nv``: a ``<Customerlist>`` whose customers each carry a key."""

    customerlist: Annotated[CustomerList, BeforeValidator(_section)]


class BaseInformation(_Model):
    netvisorkey: Key
    name: str


class FullCustomer(_Model):
    customerbaseinformation: BaseInformation


class Customers(_Model):
    customer: Annotated[list[FullCustomer], BeforeValidator(_listed)] = []


class CustomersAnswer(_Model):
    """``getcustomer.nv?idlist=``: ``<Customers>`` (empty when no key is known); a bare
    ``<Customer>``, as ``?id=`` answers, is accepted too. Neither is a protocol error."""

    customers: Annotated[Customers | None, BeforeValidator(_section)] = None
    customer: Annotated[list[FullCustomer], BeforeValidator(_listed)] = []

    @model_validator(mode="after")
    def _has_customers(self) -> CustomersAnswer:
        if self.customers is None and not self.customer:
            raise ValueError("neither <Customers> nor <Customer> in the answer")
        return self

    @property
    def all(self) -> list[FullCustomer]:
        return [*(self.customers.customer if self.customers else []), *self.customer]

    @property
    def keys(self) -> set[str]:
        return {c.customerbaseinformation.netvisorkey for c in self.all}


class ListedInvoice(_Model):
    netvisorkey: Key


class InvoiceList(_Model):
    salesinvoice: Annotated[list[ListedInvoice], BeforeValidator(_listed)] = []


class InvoiceListAnswer(_Model):
    """``salesinvoicelist.nv``: a ``<SalesInvoiceList>`` of invoices with keys."""

    salesinvoicelist: Annotated[InvoiceList, BeforeValidator(_section)]


class BookedInvoice(_Model):
    """One sales invoice header as the erasure decides on it: without its date the
    hold cannot be dated, without its status an open claim cannot be seen."""

    netvisorkey: Key
    invoicenumber: str = ""
    invoicedate: Annotated[date | None, BeforeValidator(_netvisor_date)] = None
    invoicestatus: str = Field(min_length=1)

    @property
    def is_open(self) -> bool:
        return self.invoicestatus.strip().lower() not in CLOSED_STATUSES

    @property
    def label(self) -> str:
        """The invoice named by number and key: bookkeeping ids, not personal data."""
        number = f"no. {self.invoicenumber} " if self.invoicenumber else ""
        return f"{number}(NetvisorKey {self.netvisorkey})"


# ------------------------------------------------------------------ the sync's reading
# What a full or incremental sync reads of a getcustomer.nv page (parsing.sync_plain
# walks it once); the SourceRecords are made from these, nothing else is read. A
# customer and its parts are TypedDicts, checked by pydantic as the models above are
# but kept as the dicts they arrive as: a page of 500 customers was 1,500 model
# instances, and making them was most of the time validating a page took (a 25,000-
# person sync's pages: 0.11-0.15 s as models, 0.02-0.03 s as TypedDicts).


class SyncBase(TypedDict):
    netvisorkey: Key
    name: str
    email: NotRequired[str]
    emailinvoicingaddress: NotRequired[str]
    phonenumber: NotRequired[str]
    isprivatecustomer: NotRequired[str]


class SyncContact(TypedDict):
    """A contact person (or the customer's contact details) as the sync reads it."""

    id: NotRequired[str]
    name: NotRequired[str]
    email: NotRequired[str]
    phone: NotRequired[str]


class SyncCustomer(TypedDict):
    customerbaseinformation: SyncBase
    contactdetails: NotRequired[SyncContact | None]
    contactpersons: NotRequired[list[SyncContact]]
    lastmodified: NotRequired[str]


def person_name(customer: SyncCustomer) -> str:
    """A company customer's Name is the company's: no person's name to match by, so
    the hub sees the record as nameless (hub.linking), as ``Customer`` does."""
    base = customer["customerbaseinformation"]
    company = base.get("isprivatecustomer", "").strip().lower() in ("0", "false")
    return "" if company else base["name"]


def emails_of(customer: SyncCustomer) -> tuple[str, ...]:
    base = customer["customerbaseinformation"]
    return tuple(v for v in (base.get("email"), base.get("emailinvoicingaddress")) if v)


class SyncCustomers(_Model):
    customer: Annotated[list[SyncCustomer], BeforeValidator(_listed)] = []


class SyncAnswer(_Model):
    """``CustomersAnswer`` with what the sync reads of each customer."""

    customers: Annotated[SyncCustomers | None, BeforeValidator(_section)] = None
    customer: Annotated[list[SyncCustomer], BeforeValidator(_listed)] = []

    @model_validator(mode="after")
    def _has_customers(self) -> SyncAnswer:
        if self.customers is None and not self.customer:
            raise ValueError("neither <Customers> nor <Customer> in the answer")
        return self

    @property
    def all(self) -> list[SyncCustomer]:
        return [*(self.customers.customer if self.customers else []), *self.customer]

    @property
    def keys(self) -> set[str]:
        return {c["customerbaseinformation"]["netvisorkey"] for c in self.all}
