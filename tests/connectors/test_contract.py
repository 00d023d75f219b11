"""The connector contract: what every declared system does against its emulator.

One suite, parametrised over ``connectors.registry.names()`` and the systems outside
``VENDORS`` that a deployment turns on (``EXTRA``: the own application's database, on
SQLite and on PostgreSQL); each connector is built as production builds it
(``build_connector(system)`` from the environment) and talks real HTTP to its vendor's
emulator, or real SQL to a real database. What differs between vendors is data,
not test code: each system's ``Contract`` below says which persona it holds, what
erasure must end as there, whether it sends marketing, and how the vendor's own
inspection API (``/__sandbox/``) confirms an effect (a database: SQL,
``tests/connectors/app_db.py``). The HTTP faults (429, 5xx, a wrong-shaped 200) apply
to HTTP systems only; a database's failures are in ``test_app_database.py``. A new
system is done when it has a ``Contract`` here and passes.

The vendor-specific behaviour (Netvisor's holds, Pipedrive's leftovers, Typeform's
mentions, Mailchimp's audiences, sync) stays in ``test_<vendor>_sandbox.py``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from connectors.errors import BadResponse, RateLimited, VendorError
from connectors.http import RetryPolicy
from connectors.mailchimp import subscriber_hash
from connectors.registry import build_connector, declarations, names
from hub.domain import (
    Action,
    Corrections,
    Identifier,
    IdentifierKind,
    RecordOutcome,
    RecordRef,
)
from hub.identity import normalise_email, normalise_phone
from hub.policy import load_policy
from tests.connectors.app_db import POLICY_SECTION, ROOT, DatabaseInspector
from tests.connectors.conftest import VendorInspector

AINO_EMAIL = "aino.virtanen@example.fi"
AINO_PHONE = "+358401234567"
NOBODY = "nobody.here.at.all@example.fi"
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Actions taken at the vendor, which the connector must journal as the vendor confirms.
CONFIRMED = frozenset({Action.DELETED, Action.PERMANENTLY_DELETED, Action.ANONYMISED,
                       Action.RETAINED, Action.UNLINKED, Action.DEACTIVATED,
                       Action.UNSUBSCRIBED, Action.RECTIFIED, Action.RESTRICTED,
                       Action.LIFTED})
# Fault streams (random.Random(seed) per server, one draw per call): seed 245 at
# rate 0.25 throttles the first call and none of the next 19; seed 3 at rate 0.5
# fails the first call, then never more than three in a row.
DEFAULT_POLICY = ROOT / "hub" / "default_policy.toml"
THROTTLE_ONCE = {"rate_limit_rate": 0.25, "seed": 245}
FLAKY = {"error_rate": 0.5, "seed": 3}

Inspector = Any  # a VendorInspector (HTTP emulator) or a DatabaseInspector (SQL)
Check = Callable[[Inspector, RecordOutcome], bool]


# ---------------------------------------------------------------- vendor read-backs

def _pipedrive_erased(v: VendorInspector, r: RecordOutcome) -> bool:
    kind, rid = r.ref.kind, r.ref.record_id
    if r.action == Action.KEPT:  # left for the operator, by design (reported, not touched)
        return v.record(kind, rid) is not None
    if kind == "person":
        return v.record("person", rid)["is_deleted"] is True
    if kind == "deal":
        return v.record("deal", rid)["person_id"] is None
    if kind == "note":
        return v.record("note", rid)["active_flag"] is False
    if kind == "lead":
        return v.record("lead", rid) is None
    if kind == "activity":  # another person's activity, the persona taken off it
        activity = v.record("activity", rid)
        return all(p["person_id"] == activity["person_id"] for p in activity["participants"])
    return False


def _pipedrive_unsubscribed(v: VendorInspector, ref: RecordRef) -> bool:
    return v.record("person", ref.record_id)["marketing_status"] == "unsubscribed"


def _mailchimp_member(v: VendorInspector, ref: RecordRef) -> dict[str, Any] | None:
    # The ref carries the opaque contact id; the emulator keys members by list and hash.
    assert ref.facts is not None and ref.facts.emails
    return v.record("member", f"{ref.container}:{subscriber_hash(ref.facts.emails[0])}")


def _mailchimp_erased(v: VendorInspector, r: RecordOutcome) -> bool:
    member = _mailchimp_member(v, r.ref)
    return member is None or member["status"] == "deleted_permanently"


def _mailchimp_unsubscribed(v: VendorInspector, ref: RecordRef) -> bool:
    member = _mailchimp_member(v, ref)
    return member is not None and member["status"] in ("unsubscribed", "archived", "cleaned")


def _typeform_erased(v: VendorInspector, r: RecordOutcome) -> bool:
    return v.record("response", r.ref.record_id.split(":", 1)[1])["state"] == "deleted"


def _netvisor_erased(v: VendorInspector, r: RecordOutcome) -> bool:
    if r.action == Action.RETAINED:  # kept for the bookkeeping hold: deactivated
        return v.record("customer", r.ref.record_id)["state"] == "inactive"
    return v.record("customer", r.ref.record_id)["state"] == "deleted"


def _pipedrive_held(v: VendorInspector, mail: str) -> set[str]:
    return {str(r["id"]) for r in v.find(email=mail)
            if r["kind"] == "person" and r["state"] == "active"}


def _mailchimp_held(v: VendorInspector, mail: str) -> set[str]:
    return {r["id"] for r in v.find(email=mail) if r["state"] != "deleted_permanently"}


def _mailchimp_key(ref: RecordRef) -> str:
    assert ref.facts is not None and ref.facts.emails
    return f"{ref.container}:{subscriber_hash(ref.facts.emails[0])}"


def _typeform_held(v: VendorInspector, mail: str) -> set[str]:
    return {r["id"] for r in v.find(email=mail) if r["state"] == "active"}


def _netvisor_held(v: VendorInspector, mail: str) -> set[str]:
    return {r["id"] for r in v.find(email=mail) if r["kind"] == "customer"}


def _app_database_erased(v: DatabaseInspector, r: RecordOutcome) -> bool:
    row = v.record(r.ref.kind, r.ref.record_id)
    if r.ref.kind == "orders":  # bookkeeping: kept, under a hold that ends
        return row is not None and bool(r.legal_basis) and r.retained_until is not None
    return row is not None and row["email"] is None and row["phone"] is None \
        and row["erased_at"] is not None


def _app_database_unsubscribed(v: DatabaseInspector, ref: RecordRef) -> bool:
    row = v.record(ref.kind, ref.record_id)
    return row is not None and row["marketing_consent"] is False


@dataclass(frozen=True)
class Contract:
    """What one system must do for the persona it holds (Aino, idx 0, is in all four)."""

    system: str
    held: Callable[[Inspector, str], set[str]]
    """The persona's records the vendor holds, by e-mail (its inspection API's ids)."""
    ref_key: Callable[[RecordRef], str]
    """A found ref's id in the inspection API."""
    erase_actions: dict[str, frozenset[Action]]
    """Per record kind the persona has here, the actions an erasure may end in."""
    erased_at_vendor: Check
    """Whether the vendor's inspection API shows a record's erasure took effect."""
    second_erase: frozenset[Action]
    """What erasing again reports: not found, or still retained under a hold."""
    phone_search: bool
    """Whether the vendor can be searched by a phone alone (docs/vendors/<system>.md)."""
    unsubscribed_at_vendor: Callable[[Inspector, RecordRef], bool] | None = None
    """Marketing systems: whether the vendor shows the record unsubscribed."""
    email: str = AINO_EMAIL
    phone: str = AINO_PHONE
    vendor_settings: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    throttle_status: int = 429
    """The status of the vendor's throttle answer (Netvisor: 200 with FAILED)."""
    retry_after: float = 0.0
    """The wait the throttle answer asks for (Retry-After, x-ratelimit-reset), if any."""
    write_routes: frozenset[str] = frozenset()
    """Routes that write whatever their method (Netvisor deletes with a GET)."""
    gaps: dict[str, str] = field(default_factory=dict)
    """Contract tests this connector does not pass yet: test name -> the gap (xfail)."""
    can_rectify: bool = True
    """Whether the API can change the records (else each is left to an operator)."""
    can_restrict: bool = True
    """Whether the system can carry a restriction mark (else left to an operator)."""
    database: bool = False
    """A SQL database, not an HTTP emulator: run on each backend in ``BACKENDS``."""
    policy_section: str = ""
    """The system's policy section, for a system the packaged policy does not name."""
    backend: str | None = None
    """The database backend this run uses (set by the ``contract`` fixture)."""

    @property
    def marketing(self) -> bool:
        return self.unsubscribed_at_vendor is not None


def _only(*actions: Action) -> frozenset[Action]:
    return frozenset(actions)


CONTRACTS: dict[str, Contract] = {c.system: c for c in (
    Contract(
        system="pipedrive",
        held=_pipedrive_held,
        ref_key=lambda ref: ref.record_id,
        # Policy: soft delete, deals kept and unlinked; activities she is the main
        # person of, files and mail messages are reported for the operator (KEPT); she
        # is taken off the meeting where she is only a participant (UNLINKED).
        erase_actions={"person": _only(Action.DELETED), "deal": _only(Action.UNLINKED),
                       "note": _only(Action.DELETED), "lead": _only(Action.DELETED),
                       "activity": _only(Action.KEPT, Action.UNLINKED),
                       "file": _only(Action.KEPT),
                       "mailMessage": _only(Action.KEPT)},
        erased_at_vendor=_pipedrive_erased,
        second_erase=_only(Action.NOT_FOUND),
        phone_search=True,
        unsubscribed_at_vendor=_pipedrive_unsubscribed,
        retry_after=2.0,  # x-ratelimit-reset of the burst window
    ),
    Contract(
        system="mailchimp",
        held=_mailchimp_held,
        ref_key=_mailchimp_key,
        erase_actions={"member": _only(Action.PERMANENTLY_DELETED)},
        erased_at_vendor=_mailchimp_erased,
        second_erase=_only(Action.NOT_FOUND),
        phone_search=False,  # "searched by e-mail only"
        unsubscribed_at_vendor=_mailchimp_unsubscribed,
    ),
    Contract(
        system="typeform",
        held=_typeform_held,
        ref_key=lambda ref: ref.record_id.split(":", 1)[1],  # "<form>:<token>"
        erase_actions={"response": _only(Action.DELETED)},
        erased_at_vendor=_typeform_erased,
        second_erase=_only(Action.NOT_FOUND),
        phone_search=True,
        # Deletion is asynchronous: a short delay and poll keep the read-back real and
        # quick; the emulator's 2 req/s limit and the connector's pacing to it are
        # tested in test_typeform_sandbox.py.
        vendor_settings={"delete_delay": 0.1, "rate_limit_per_second": 0},
        can_rectify=False,  # responses cannot be edited
        can_restrict=False,
        env={"TYPEFORM_DELETE_POLL_INTERVAL": "0.05", "TYPEFORM_DELETE_MAX_POLLS": "400",
             "TYPEFORM_REQUESTS_PER_SECOND": "500"},
        retry_after=1.0,
    ),
    Contract(
        system="netvisor",
        held=_netvisor_held,
        ref_key=lambda ref: ref.record_id,
        # Aino has an open invoice: her customer is retained (minimised, deactivated).
        erase_actions={"customer": _only(Action.RETAINED)},
        erased_at_vendor=_netvisor_erased,
        second_erase=_only(Action.RETAINED),
        phone_search=False,  # "Netvisor has no phone search"
        throttle_status=200,
        write_routes=frozenset({"/deletecustomer.nv", "/deletesalesinvoice.nv"}),
    ),
    Contract(
        system="app_database",
        held=lambda v, mail: v.users(mail),
        ref_key=lambda ref: ref.record_id,
        # The example mapping: the account anonymised, its orders kept as bookkeeping
        # records under the Accounting Act's hold (retained, with basis and end).
        erase_actions={"users": _only(Action.ANONYMISED), "orders": _only(Action.RETAINED)},
        erased_at_vendor=_app_database_erased,
        second_erase=_only(Action.NOTHING_TO_DO, Action.RETAINED),
        phone_search=True,
        unsubscribed_at_vendor=_app_database_unsubscribed,  # the consent column
        can_rectify=False,  # left to an operator, saying so (connectors.base)
        database=True,
        policy_section=POLICY_SECTION,
    ),
)}
# Systems outside VENDORS held to the contract: turned on per test as a deployment does
# (HUB_EXTRA_SYSTEMS, by the ``app_database`` fixture).
EXTRA = ("app_database",)
BACKENDS = ("sqlite", "postgres")
PARTICIPANTS = (*names(), *(f"{s}@{b}" for s in EXTRA for b in BACKENDS))


def test_every_declared_system_has_a_contract() -> None:
    assert set(CONTRACTS) == {*names(), *EXTRA}


# ---------------------------------------------------------------- fixtures

@pytest.fixture(params=PARTICIPANTS)
def contract(request: pytest.FixtureRequest) -> Contract:
    system, _, backend = request.param.partition("@")
    if system not in CONTRACTS:
        pytest.fail(f"{system} is declared but has no Contract in {__name__}")
    found = replace(CONTRACTS[system], backend=backend or None)
    gap = found.gaps.get(request.node.originalname)
    if gap:
        request.applymarker(pytest.mark.xfail(strict=True, reason=gap))
    return found


@pytest.fixture
def live(contract: Contract, request: pytest.FixtureRequest,
         monkeypatch: pytest.MonkeyPatch) -> Inspector:
    """The system's emulator (or database), reset to the seed, with the contract's settings."""
    if contract.database:
        assert contract.backend is not None
        return request.getfixturevalue(contract.system)(contract.backend)
    request.getfixturevalue("sandbox_env")
    inspector = request.getfixturevalue("vendor")(contract.system)
    if contract.vendor_settings:
        inspector.settings(**contract.vendor_settings)
    for key, value in contract.env.items():
        monkeypatch.setenv(key, value)
    return inspector


Journal = list[RecordOutcome]


@pytest.fixture
def journal() -> Journal:
    return []


@pytest.fixture
def conn(contract: Contract, live: VendorInspector, journal: Journal) -> Iterator[Any]:
    with build_connector(contract.system) as connector:
        connector.journal = journal.append
        yield connector


@pytest.fixture
def policy(contract: Contract, live: Inspector, tmp_path: Any) -> Any:
    if not contract.policy_section:
        return load_policy().for_system(contract.system)
    path = tmp_path / "policy.toml"
    path.write_text(DEFAULT_POLICY.read_text("utf-8") + contract.policy_section, "utf-8")
    return load_policy(path, systems=declarations()).for_system(contract.system)


@pytest.fixture
def http_only(contract: Contract) -> None:
    """The vendor-misbehaves cases: an HTTP system's, not a database's."""
    if contract.database:
        pytest.skip("no HTTP: a database's failures are in test_app_database.py")


def email(value: str) -> Identifier:
    return Identifier(IdentifierKind.EMAIL, value)


def phone(value: str) -> Identifier:
    return Identifier(IdentifierKind.PHONE, value)


def writes(v: Inspector, contract: Contract) -> int:
    if isinstance(v, DatabaseInspector):
        return v.writes
    return sum(c["count"] for c in v.calls()["calls"]
               if c["method"] in WRITES or c["route"] in contract.write_routes)


def statuses(v: VendorInspector) -> dict[int, int]:
    out: dict[int, int] = {}
    for c in v.calls()["calls"]:
        out[c["status"]] = out.get(c["status"], 0) + c["count"]
    return out


def held_emails(ref: RecordRef) -> set[str]:
    assert ref.facts is not None, ref
    return {normalise_email(e) for e in (*ref.facts.emails, *ref.facts.mentions)}


def held_phones(ref: RecordRef) -> set[str]:
    assert ref.facts is not None, ref
    return {normalise_phone(p).value for p in ref.facts.phones if p.strip()}


# ---------------------------------------------------------------- 1-4: find, export

def test_built_from_the_environment_and_checks(contract: Contract, conn: Any) -> None:
    before = conn.api_calls  # a database is reflected at start
    conn.check()
    assert conn.system == contract.system and conn.api_calls == before + 1


def test_find_by_email(contract: Contract, conn: Any, live: VendorInspector) -> None:
    refs = conn.find([email(contract.email.upper())])
    assert refs, "the persona is in this system"
    assert {r.system for r in refs} == {contract.system}
    for ref in refs:
        assert contract.email in held_emails(ref), ref
        assert ref.kind in contract.erase_actions, ref.kind
    # everything the vendor holds under the address is found
    held = contract.held(live, contract.email)
    assert held and held <= {contract.ref_key(r) for r in refs}


def test_find_by_phone(contract: Contract, conn: Any) -> None:
    by_phone = conn.find([phone(contract.phone)])
    if not contract.phone_search:
        assert by_phone == []  # documented: found by e-mail (or the index) only
        return
    assert by_phone
    for ref in by_phone:
        assert contract.phone in held_phones(ref), ref
    by_email = conn.find([email(contract.email)])
    # the persona's own records are reachable either way
    assert {r for r in by_email if contract.phone in held_phones(r)} <= set(by_phone)


def test_not_found_is_empty_never_an_error(contract: Contract, conn: Any, policy: Any,
                                           live: VendorInspector, journal: Journal) -> None:
    assert conn.find([email(NOBODY)]) == []
    assert conn.find([phone("+358409999999")]) == []
    erased = conn.erase([], policy)
    assert erased.records == () and erased.verified and erased.not_found
    opted = conn.opt_out([])
    assert opted.records == () and opted.verified
    assert writes(live, contract) == 0 and journal == []


def test_export_holds_the_persona(contract: Contract, conn: Any) -> None:
    refs = conn.find([email(contract.email)])
    before = conn.api_calls
    export = conn.export(refs)
    assert export.system == contract.system and export.sections
    # The one evidence shape: the calls this export made, not since the connector began.
    assert export.evidence["api_calls"] == conn.api_calls - before
    assert any(s.items for s in export.sections)
    text = json.dumps([s.items for s in export.sections], default=str).lower()
    assert contract.email in text
    # The subject reads each part's title in their language (fi, sv; en is the label).
    for section in export.sections:
        assert set(section.titles) == {"fi", "sv"}, section.label
        assert section.title("fi") != section.label and section.title("sv") != section.label


# ---------------------------------------------------------------- 5-7: act, read back

def test_erasure_is_read_back_and_journalled(contract: Contract, conn: Any, policy: Any,
                                            live: VendorInspector, journal: Journal) -> None:
    refs = conn.find([email(contract.email)])
    before = conn.api_calls
    outcome = conn.erase(refs, policy)
    assert outcome.system == contract.system
    assert outcome.verified, outcome.evidence
    # One evidence shape: counts per action, and the calls this erasure made (not since
    # the connector was built: the find above is not in them).
    assert outcome.evidence["counts"] == dict(Counter(r.action.value for r in outcome.records))
    assert outcome.evidence["api_calls"] == conn.api_calls - before > 0
    assert outcome.records
    assert {r.ref for r in outcome.records if r.ref.kind in {f.kind for f in refs}} >= set(refs)
    assert {r.ref.kind for r in outcome.records} == set(contract.erase_actions)
    for rec in outcome.records:
        allowed = contract.erase_actions.get(rec.ref.kind, frozenset())
        assert rec.action in allowed, (rec.ref.kind, rec.action)
        assert contract.erased_at_vendor(live, rec), (rec.ref, rec.action)
    confirmed = {(r.ref, r.action) for r in outcome.records if r.action in CONFIRMED}
    assert confirmed and confirmed <= {(r.ref, r.action) for r in journal}


def test_opt_out(contract: Contract, conn: Any, live: VendorInspector,
                 journal: Journal) -> None:
    refs = conn.find([email(contract.email)])
    outcome = conn.opt_out(refs)
    assert outcome.verified, outcome.evidence
    actions = {r.action for r in outcome.records}
    if contract.marketing:
        assert contract.unsubscribed_at_vendor is not None
        assert Action.UNSUBSCRIBED in actions
        assert actions <= {Action.UNSUBSCRIBED, Action.NOTHING_TO_DO}
        for rec in outcome.records:
            assert contract.unsubscribed_at_vendor(live, rec.ref), rec.ref
        done = {(r.ref, r.action) for r in outcome.records if r.action in CONFIRMED}
        assert done <= {(r.ref, r.action) for r in journal}
    else:
        assert actions <= {Action.NOTHING_TO_DO, Action.NOT_FOUND}
        assert writes(live, contract) == 0


def test_a_second_erasure_finds_nothing_and_writes_nothing(
        contract: Contract, conn: Any, policy: Any, live: VendorInspector,
        journal: Journal) -> None:
    refs = conn.find([email(contract.email)])
    assert conn.erase(refs, policy).verified
    before, journalled = writes(live, contract), len(journal)
    again_refs = conn.find([email(contract.email)])
    if contract.second_erase == {Action.NOT_FOUND}:
        assert again_refs == []
    again = conn.erase(refs, policy)
    assert again.verified
    assert {r.action for r in again.records} <= contract.second_erase
    assert writes(live, contract) == before
    if contract.second_erase == {Action.NOT_FOUND}:
        assert again.not_found and len(journal) == journalled


def test_rectify_is_read_back_journalled_and_idempotent(
        contract: Contract, conn: Any, live: VendorInspector, journal: Journal) -> None:
    refs = conn.find([email(contract.email)])
    fixed = Corrections(name="Aino Korhonen")
    assert conn.rectify([], fixed).records == ()
    outcome = conn.rectify(refs, fixed)
    assert outcome.verified and outcome.records, outcome.evidence
    actions = {r.action for r in outcome.records}
    if not contract.can_rectify:
        assert actions == {Action.KEPT} and writes(live, contract) == 0
        return
    assert actions == {Action.RECTIFIED}
    assert all("read back: shows the corrected values" in r.detail for r in outcome.records)
    assert {(r.ref, r.action) for r in outcome.records if r.action in CONFIRMED} <= {
        (r.ref, r.action) for r in journal}
    before = writes(live, contract)
    again = conn.rectify(conn.find([email(contract.email)]), fixed)
    assert again.verified and {r.action for r in again.records} == {Action.RECTIFIED}
    assert writes(live, contract) == before  # nothing differs: nothing written


def test_restrict_and_lift_are_read_back_and_idempotent(
        contract: Contract, conn: Any, live: VendorInspector, journal: Journal) -> None:
    refs = conn.find([email(contract.email)])
    outcome = conn.restrict(refs, lift=False)
    assert outcome.verified and outcome.records, outcome.evidence
    if not contract.can_restrict:
        assert {r.action for r in outcome.records} == {Action.KEPT}
        assert writes(live, contract) == 0
        return
    assert {r.action for r in outcome.records} == {Action.RESTRICTED}
    if contract.marketing:
        for rec in outcome.records:
            assert contract.unsubscribed_at_vendor(live, rec.ref), rec.ref
    before = writes(live, contract)
    assert conn.restrict(refs, lift=False).verified
    assert writes(live, contract) == before
    lifted = conn.restrict(refs, lift=True)
    assert lifted.verified and {r.action for r in lifted.records} == {Action.LIFTED}
    assert {(r.ref, r.action) for r in lifted.records if r.action in CONFIRMED} <= {
        (r.ref, r.action) for r in journal}


# ---------------------------------------------------------------- 8-10: the vendor misbehaves

@pytest.mark.usefixtures("http_only")
def test_a_wrong_shaped_200_is_bad_response(contract: Contract, conn: Any,
                                            live: VendorInspector) -> None:
    live.faults(malformed_rate=1.0)
    with pytest.raises(BadResponse):
        conn.find([email(contract.email)])
    assert statuses(live).get(200, 0) >= 1


def _fast_recorded_retries(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Make the production retry policy's sleep record its waits instead of waiting.

    Retry-After from the emulators is 1-2 s; the test asserts the wait asked for
    instead of spending it.
    """
    waits: list[float] = []
    real = RetryPolicy.from_env.__func__  # type: ignore[attr-defined]

    def from_env(cls: type[RetryPolicy]) -> RetryPolicy:
        policy = real(cls)
        return RetryPolicy(max_attempts=policy.max_attempts, base=policy.base, cap=policy.cap,
                           max_total=policy.max_total, max_retry_after=policy.max_retry_after,
                           sleep=waits.append)

    monkeypatch.setattr(RetryPolicy, "from_env", classmethod(from_env))
    return waits


@pytest.mark.usefixtures("http_only")
def test_a_429_is_retried_and_then_succeeds(contract: Contract, live: VendorInspector,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    waits = _fast_recorded_retries(monkeypatch)
    with build_connector(contract.system) as conn:
        expected = {r.record_id for r in conn.find([email(contract.email)])}
    calm = live.calls()["total"]
    live.http.delete("/__sandbox/calls").raise_for_status()
    waits.clear()
    live.faults(**THROTTLE_ONCE)
    with build_connector(contract.system) as conn:
        refs = conn.find([email(contract.email)])
        assert conn.api_calls == live.calls()["total"]
    assert {r.record_id for r in refs} == expected
    seen = statuses(live)
    assert live.calls()["total"] == calm + 1  # the one throttled call, then the same run
    if contract.throttle_status == 429:
        assert seen.get(429) == 1
    assert waits, "the retry waited before trying again"
    assert max(waits) >= contract.retry_after  # as long as the vendor asked


@pytest.mark.usefixtures("http_only")
def test_a_429_that_never_ends_is_rate_limited(contract: Contract, live: VendorInspector,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _fast_recorded_retries(monkeypatch)
    live.faults(rate_limit_rate=1.0)
    with build_connector(contract.system) as conn, pytest.raises(RateLimited):
        conn.find([email(contract.email)])
    assert live.calls()["total"] > 1  # retried before giving up


@pytest.mark.usefixtures("http_only")
def test_a_5xx_is_vendor_error_after_the_retries(contract: Contract, conn: Any,
                                                live: VendorInspector) -> None:
    live.faults(error_rate=1.0)
    with pytest.raises(VendorError) as caught:
        conn.find([email(contract.email)])
    assert caught.value.retryable
    assert live.calls()["total"] > 1  # retried before giving up
    assert all(s >= 500 for s in statuses(live))


@pytest.mark.usefixtures("http_only")
def test_flaky_5xx_succeed_after_retries(contract: Contract, conn: Any,
                                         live: VendorInspector) -> None:
    live.faults(**FLAKY)
    refs = conn.find([email(contract.email)])
    assert refs
    assert any(s >= 500 for s in statuses(live)) and statuses(live).get(200)
