"""Typeform connector against an injected transport: every error path the reference
documents (§C), paging, deletion by id and its bounded read-back, local confirmation of
matches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from connectors.errors import AuthError, BadResponse, ConfigError, RateLimited
from connectors.http import Limiter, RetryPolicy, TokenBucket
from connectors.typeform import TypeformConnector, TypeformSettings
from hub.domain import Action, Identifier, IdentifierKind, RecordRef
from hub.policy import SystemPolicy

BASE = "http://typeform.test"
TOKEN = "tfp_" + "x" * 44
FORM_A, FORM_B = "formA", "formB"


def email(v: str) -> Identifier:
    return Identifier(IdentifierKind.EMAIL, v)


def response(token: str, mail: str | None = "aino.virtanen@example.fi", *,
             submitted: str = "2026-03-01T10:00:00Z", text: str | None = None,
             phone: str | None = None, **extra: Any) -> dict[str, Any]:
    answers: list[dict[str, Any]] = [
        {"field": {"id": "f_first", "type": "short_text", "ref": "first_name"},
         "type": "text", "text": "Aino"},
        {"field": {"id": "f_last", "type": "short_text", "ref": "last_name"},
         "type": "text", "text": "Virtanen"},
    ]
    if mail:
        answers.append({"field": {"id": "f_mail", "type": "email"}, "type": "email",
                        "email": mail})
    if phone:
        answers.append({"field": {"id": "f_phone", "type": "phone_number"},
                        "type": "phone_number", "phone_number": phone})
    if text:
        answers.append({"field": {"id": "f_notes", "type": "long_text"}, "type": "text",
                        "text": text})
    return {"landing_id": token, "token": token, "response_id": token,
            "response_type": "completed", "landed_at": submitted, "submitted_at": submitted,
            "metadata": {"network_id": "abc"}, "hidden": {}, "calculated": {"score": 0},
            "variables": [], "answers": answers, **extra}


DEFINITION = {
    "id": FORM_A, "title": "Kurssi-ilmoittautuminen",
    "fields": [
        {"id": "f_first", "ref": "first_name", "title": "Etunimi", "type": "short_text"},
        {"id": "f_last", "ref": "last_name", "title": "Sukunimi", "type": "short_text"},
        {"id": "f_mail", "ref": "email", "title": "Sähköposti", "type": "email"},
        {"id": "f_phone", "ref": "phone", "title": "Puhelinnumero", "type": "phone_number"},
        {"id": "f_notes", "ref": "notes", "title": "Lisätietoja", "type": "long_text"},
    ],
}


class FakeTypeform:
    """A scripted Typeform: per-path queues of canned answers, every request logged."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.routes: dict[tuple[str, str], list[Callable[[httpx.Request], httpx.Response]]] = {}
        self.default: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = {}

    def on(self, method: str, path: str, *answers: Any, always: Any = None) -> None:
        queue = self.routes.setdefault((method, path), [])
        for a in answers:
            queue.append(a if callable(a) else (lambda _r, a=a: a))
        if always is not None:
            self.default[(method, path)] = always if callable(always) else (lambda _r: always)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = (request.method, request.url.path)
        queue = self.routes.get(key)
        if queue:
            return queue.pop(0)(request)
        if key in self.default:
            return self.default[key](request)
        return httpx.Response(404, json={"code": "NOT_FOUND", "description": "no route"})

    def calls(self, method: str, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == method and r.url.path == path]


def page(items: list[dict[str, Any]], total: int | None = None) -> httpx.Response:
    return httpx.Response(200, json={"total_items": len(items) if total is None else total,
                                     "page_count": 1, "items": items})


def forms(*ids: str) -> httpx.Response:
    return httpx.Response(200, json={"total_items": len(ids), "page_count": 1,
                                     "items": [{"id": i, "title": f"Form {i}"} for i in ids]})


@pytest.fixture
def fake() -> FakeTypeform:
    return FakeTypeform()


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make(fake: FakeTypeform, sleeps: list[float], **settings: Any) -> TypeformConnector:
    conf = TypeformSettings(_env_file=None, base_url=BASE, token=TOKEN,
                            **{"delete_poll_interval": 1.0, "delete_max_polls": 5, **settings})
    return TypeformConnector(conf, transport=httpx.MockTransport(fake),
                             retry=RetryPolicy(sleep=sleeps.append, jitter=lambda: 0.0),
                             limiter=Limiter(), sleep=sleeps.append, page_size=2)


# ------------------------------------------------------------------------ pacing


def test_default_pacing_leaves_headroom_under_two_requests_per_sliding_second():
    """Typeform counts arrivals in a sliding second: three requests paced exactly 500 ms
    apart land on its edge and a little jitter turns the third into a 429.

    The connector's own pace, on a virtual clock: gaps measured on the wall clock
    between two arrivals at the transport shrank by however late the first one was
    recorded, and a loaded CI machine once measured 1.097 s."""
    conf = TypeformSettings(_env_file=None, base_url=BASE, token=TOKEN)
    with TypeformConnector(conf, transport=httpx.MockTransport(
            lambda _request: httpx.Response(200))) as built:
        default = built.http.limiter
    assert isinstance(default, TokenBucket) and default.burst == 1
    now = [0.0]
    sent: list[float] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(now[0])
        return httpx.Response(200, json={"user_id": "u", "account_id": "a"})

    def sleep(seconds: float) -> None:
        now[0] += seconds

    paced = TokenBucket(default.rate, burst=1, clock=lambda: now[0], sleep=sleep)
    connector = TypeformConnector(conf, transport=httpx.MockTransport(record), limiter=paced)
    for _ in range(4):
        connector.check()
    gaps = [later - first for first, later in zip(sent, sent[2:], strict=False)]
    assert len(gaps) == 2
    assert min(gaps) >= 1.1


# ------------------------------------------------------------------------ settings


def test_missing_token_is_a_config_error_naming_the_variable(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TYPEFORM_BASE_URL", BASE)
    monkeypatch.delenv("TYPEFORM_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="TYPEFORM_TOKEN is not set"):
        TypeformConnector.from_env()


def test_settings_come_from_the_environment_and_the_token_is_sent(monkeypatch, tmp_path, fake):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TYPEFORM_BASE_URL", BASE)
    monkeypatch.setenv("TYPEFORM_TOKEN", TOKEN)
    fake.on("GET", "/me", httpx.Response(200, json={"account_id": "acc"}))
    with TypeformConnector.from_env(client=httpx.Client(transport=httpx.MockTransport(fake))
                                    ) as conn:
        conn.check()
        assert TOKEN not in repr(conn.settings)
    assert fake.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


# -------------------------------------------------------------------------- errors


def test_401_is_an_auth_error_and_not_retried(fake, sleeps):
    fake.on("GET", "/me", always=httpx.Response(401, json={
        "code": "AUTHENTICATION_FAILED", "description": "Authentication credentials are "
                                                       "not valid"}))
    conn = make(fake, sleeps)
    with pytest.raises(AuthError, match="AUTHENTICATION_FAILED"):
        conn.check()
    assert conn.api_calls == 1 and sleeps == []


def test_429_with_retry_after_waits_that_long_then_succeeds(fake, sleeps):
    fake.on("GET", "/me", httpx.Response(429, headers={"Retry-After": "3"},
                                         json={"code": "RATE_LIMITED"}),
            always=httpx.Response(200, json={"account_id": "acc"}))
    conn = make(fake, sleeps)
    conn.check()
    assert conn.api_calls == 2
    assert sleeps == [3.0]


def test_429_without_headers_backs_off_then_succeeds(fake, sleeps):
    fake.on("GET", "/me", httpx.Response(429), httpx.Response(429),
            always=httpx.Response(200, json={"account_id": "acc"}))
    conn = make(fake, sleeps)
    conn.check()
    assert conn.api_calls == 3
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0] > 0


def test_429_forever_is_reported_as_rate_limited(fake, sleeps):
    fake.on("GET", "/me", always=httpx.Response(429, headers={"Retry-After": "1"}))
    conn = make(fake, sleeps)
    with pytest.raises(RateLimited):
        conn.check()
    assert conn.api_calls == RetryPolicy().max_attempts


def test_5xx_then_success(fake, sleeps):
    fake.on("GET", "/forms", httpx.Response(502, text="<html>bad gateway</html>"),
            httpx.Response(500, json={"code": "INTERNAL"}), always=forms())
    conn = make(fake, sleeps)
    assert list(conn.sync(None))[-1].records == ()
    assert len(fake.calls("GET", "/forms")) == 3


@pytest.mark.parametrize("body", [b"<html>oops</html>", b'{"total_items": 3, "items": [{"tok',
                                  b'["not", "an", "object"]', b'{"items": {"a": 1}}',
                                  b'{"items": [1, 2]}'])
def test_garbage_or_wrong_shape_is_a_bad_response(fake, sleeps, body):
    fake.on("GET", "/forms", always=httpx.Response(200, content=body))
    conn = make(fake, sleeps)
    with pytest.raises(BadResponse):
        list(conn.sync(None))


def test_unknown_form_during_find_is_skipped_not_fatal(fake, sleeps):
    fake.on("GET", "/forms", always=forms(FORM_A, FORM_B))
    fake.on("GET", f"/forms/{FORM_A}/responses",
            always=httpx.Response(404, json={"code": "FORM_NOT_FOUND"}))
    fake.on("GET", f"/forms/{FORM_B}/responses", always=page([response("t1")]))
    fake.on("GET", f"/forms/{FORM_B}", always=httpx.Response(200, json={**DEFINITION,
                                                                        "id": FORM_B}))
    refs = make(fake, sleeps).find([email("aino.virtanen@example.fi")])
    assert [r.record_id for r in refs] == [f"{FORM_B}:t1"]


# --------------------------------------------------------------------------- sync


def test_sync_pages_with_after_tokens_and_ignores_unknown_fields(fake, sleeps):
    fake.on("GET", "/forms", always=forms(FORM_A))
    fake.on("GET", f"/forms/{FORM_A}", always=httpx.Response(200, json=DEFINITION))
    fake.on("GET", f"/forms/{FORM_A}/responses",
            page([response("t1", submitted="2026-03-01T10:00:00Z", brand_new={"x": 1}),
                  response("t2", "Jussi.Lindstrom@Example.fi", phone="+358405556677",
                           submitted="2026-03-02T10:00:00Z")], total=3),
            page([response("t3", None, submitted="2026-03-03T10:00:00Z",
                           hidden={"email": "Mikko.Hakkinen@example.fi", "utm": "x"})]))
    conn = make(fake, sleeps)
    pages = list(conn.sync(None))
    records = [r for p in pages for r in p.records]
    assert [r.record_id for r in records] == [f"{FORM_A}:t1", f"{FORM_A}:t2", f"{FORM_A}:t3"]
    assert records[0].display_name == "Aino Virtanen"
    assert records[1].emails == ("Jussi.Lindstrom@Example.fi",)  # as the vendor wrote it
    assert records[1].phones == ("+358405556677",)
    assert records[2].emails == ("Mikko.Hakkinen@example.fi",)  # from a hidden field
    calls = fake.calls("GET", f"/forms/{FORM_A}/responses")
    first, second = (dict(c.url.params) for c in calls)
    assert first["sort"] == "submitted_at,asc" and "after" not in first
    assert second["after"] == "t2" and "sort" not in second
    assert first["page_size"] == "2"
    assert pages[-1].cursor == "2026-03-03T10:00:00"  # the newest submitted_at seen


def test_sync_paging_that_ends_early_stops_cleanly(fake, sleeps):
    fake.on("GET", "/forms", always=forms(FORM_A))
    fake.on("GET", f"/forms/{FORM_A}", always=httpx.Response(200, json=DEFINITION))
    # A full page claiming 10 items, then an empty page: no error, no loop.
    fake.on("GET", f"/forms/{FORM_A}/responses",
            page([response("t1"), response("t2")], total=10), page([], total=10))
    records = [r for p in make(fake, sleeps).sync(None) for r in p.records]
    assert len(records) == 2
    assert len(fake.calls("GET", f"/forms/{FORM_A}/responses")) == 2


def test_sync_stops_when_the_vendor_repeats_the_same_page(fake, sleeps):
    fake.on("GET", "/forms", always=forms(FORM_A))
    fake.on("GET", f"/forms/{FORM_A}", always=httpx.Response(200, json=DEFINITION))
    fake.on("GET", f"/forms/{FORM_A}/responses",
            always=page([response("t1"), response("t2")], total=10))
    list(make(fake, sleeps).sync(None))
    assert len(fake.calls("GET", f"/forms/{FORM_A}/responses")) == 2


def test_incremental_sync_sends_since_and_keeps_the_cursor_when_nothing_is_new(fake, sleeps):
    fake.on("GET", "/forms", always=forms(FORM_A))
    fake.on("GET", f"/forms/{FORM_A}", always=httpx.Response(200, json=DEFINITION))
    fake.on("GET", f"/forms/{FORM_A}/responses", always=page([]))
    pages = list(make(fake, sleeps).sync("2026-03-03T10:00:00"))
    (call,) = fake.calls("GET", f"/forms/{FORM_A}/responses")
    assert call.url.params["since"] == "2026-03-03T10:00:00"
    assert pages[-1].cursor == "2026-03-03T10:00:00"


# --------------------------------------------------------------------------- find


def test_find_queries_each_form_and_confirms_matches_locally(fake, sleeps):
    fake.on("GET", "/forms", always=forms(FORM_A))
    fake.on("GET", f"/forms/{FORM_A}", always=httpx.Response(200, json=DEFINITION))
    fake.on("GET", f"/forms/{FORM_A}/responses", always=lambda r: page([
        response("own", "AINO.VIRTANEN@example.fi"),
        response("mention", None, text="Lähettäkää osoitteeseen Aino.Virtanen@Example.fi"),
        # Typeform's query is a substring search: these must not count as hers.
        response("other", "xaino.virtanen@example.fi"),
        response("longer", None, text="aino.virtanen@example.fi.invalid"),
    ]))
    refs = make(fake, sleeps).find([email("aino.virtanen@example.fi")])
    assert sorted(r.record_id for r in refs) == [f"{FORM_A}:mention", f"{FORM_A}:own"]
    assert all(r.kind == "response" and r.container == FORM_A for r in refs)
    call = fake.calls("GET", f"/forms/{FORM_A}/responses")[0]
    assert call.url.params["query"] == "aino.virtanen@example.fi"
    facts = {r.record_id: r.facts for r in refs}
    own, mention = facts[f"{FORM_A}:own"], facts[f"{FORM_A}:mention"]
    assert own.emails == ("AINO.VIRTANEN@example.fi",) and own.name == "Aino Virtanen"
    # only mentioned in free text: none of her identifiers is the response's own
    assert mention.emails == () and mention.phones == ()


def test_find_by_phone_matches_the_normalised_number(fake, sleeps):
    fake.on("GET", "/forms", always=forms(FORM_A))
    fake.on("GET", f"/forms/{FORM_A}", always=httpx.Response(200, json=DEFINITION))
    fake.on("GET", f"/forms/{FORM_A}/responses",
            always=page([response("p", None, phone="+358401234567")]))
    refs = make(fake, sleeps).find([Identifier(IdentifierKind.PHONE, "+358401234567")])
    assert [r.record_id for r in refs] == [f"{FORM_A}:p"]
    assert refs[0].facts.phones == ("+358401234567",)


# ------------------------------------------------------------------------- export


def test_export_gives_each_answer_its_question_title(fake, sleeps):
    fake.on("GET", f"/forms/{FORM_A}", always=httpx.Response(200, json=DEFINITION))
    fake.on("GET", f"/forms/{FORM_A}/responses", always=page([response("t1")]))
    ref = RecordRef("typeform", "response", f"{FORM_A}:t1", container=FORM_A)
    gone = RecordRef("typeform", "response", f"{FORM_A}:t9", container=FORM_A)
    export = make(fake, sleeps).export([ref, gone])
    (section,) = export.sections
    assert "Kurssi-ilmoittautuminen" in section.label
    (item,) = section.items
    assert item["token"] == "t1"  # vendor field names kept
    questions = {a["question"] for a in item["answers"]}
    assert {"Etunimi", "Sukunimi", "Sähköposti"} <= questions
    assert export.evidence["not_found"] == 1


# -------------------------------------------------------------------------- erase


class Deletions:
    """A form whose responses Typeform deletes by id, asynchronously: each is gone
    after ``lag`` read-backs (never, with ``lag=None``)."""

    def __init__(self, fake: FakeTypeform, items: list[dict[str, Any]],
                 lag: int | None = 0) -> None:
        self.items = {i["token"]: i for i in items}
        self.lag = lag
        self.asked: list[str] = []
        self.reads_after_delete = 0
        fake.on("GET", f"/forms/{FORM_A}/responses", always=self.read)
        fake.on("DELETE", f"/forms/{FORM_A}/responses", always=self.delete)

    def read(self, request: httpx.Request) -> httpx.Response:
        wanted = request.url.params.get("included_response_ids", "")
        if self.asked:
            self.reads_after_delete += 1
            if self.lag is not None and self.reads_after_delete > self.lag:
                for token in self.asked:
                    self.items.pop(token, None)
        return page([i for t, i in self.items.items() if not wanted or t in wanted.split(",")])

    def delete(self, request: httpx.Request) -> httpx.Response:
        self.asked += request.url.params["included_response_ids"].split(",")
        return httpx.Response(200)


REF_T1 = RecordRef("typeform", "response", f"{FORM_A}:t1", container=FORM_A)


def test_erase_deletes_exactly_the_referenced_responses_and_reads_back(fake, sleeps):
    world = Deletions(fake, [response("t1"), response("t2")], lag=1)
    journal: list[Any] = []
    conn = make(fake, sleeps)
    conn.journal = journal.append
    outcome = conn.erase([REF_T1], SystemPolicy())
    assert world.asked == ["t1"]  # t2 holds the same e-mail but was not referenced
    assert "t2" in world.items
    (rec,) = outcome.records
    assert rec.action == Action.DELETED and rec.status_code == 200
    assert outcome.verified and outcome.evidence["deleted_by_id"] == 1
    assert journal == [rec]  # journalled as Typeform accepted it
    assert sleeps == [1.0]  # one read-back still showed it: poll interval, injected
    assert not [r for r in fake.requests if "/rtbf/" in r.url.path]


def test_erase_read_back_still_present_after_the_bound_is_unverified(fake, sleeps):
    Deletions(fake, [response("t1")], lag=None)
    journal: list[Any] = []
    conn = make(fake, sleeps)
    conn.journal = journal.append
    outcome = conn.erase([REF_T1], SystemPolicy())
    assert outcome.verified is False
    (rec,) = outcome.records
    assert rec.action == Action.DELETED
    assert "read back: still present after 5 polls" in rec.detail
    assert [r.action for r in journal] == [Action.DELETED]
    assert outcome.evidence["still_present"] == 1


def test_erase_of_a_response_already_gone_is_not_found_and_deletes_nothing(fake, sleeps):
    fake.on("GET", f"/forms/{FORM_A}/responses", always=page([]))
    outcome = make(fake, sleeps).erase([REF_T1], SystemPolicy())
    assert [r.action for r in outcome.records] == [Action.NOT_FOUND]
    assert outcome.not_found and outcome.verified
    assert fake.calls("DELETE", f"/forms/{FORM_A}/responses") == []


def test_forbidden_delete_is_an_auth_error_and_nothing_is_journalled(fake, sleeps):
    fake.on("GET", f"/forms/{FORM_A}/responses", always=page([response("t1")]))
    fake.on("DELETE", f"/forms/{FORM_A}/responses", always=httpx.Response(
        403, json={"code": "FORBIDDEN", "description": "no access"}))
    journal: list[Any] = []
    conn = make(fake, sleeps)
    conn.journal = journal.append
    with pytest.raises(AuthError):
        conn.erase([REF_T1], SystemPolicy())
    assert journal == []


# ------------------------------------------------------------------------ opt out


def test_opt_out_has_nothing_to_do_and_says_so(fake, sleeps):
    ref = RecordRef("typeform", "response", f"{FORM_A}:t1", container=FORM_A)
    outcome = make(fake, sleeps).opt_out([ref])
    (rec,) = outcome.records
    assert rec.action == Action.NOTHING_TO_DO and "no subscription" in rec.detail
    assert fake.requests == []
