"""The shared HTTP layer: taxonomy, the one retry policy, limiters, counting."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.errors import (
    AuthError,
    BadResponse,
    ConnectionFailed,
    ConnectorError,
    NotFound,
    RateLimited,
    RequestRejected,
    VendorError,
    scrub,
)
from connectors.http import (
    BurstWindowLimiter,
    CallLimits,
    ConcurrencyLimiter,
    HttpClient,
    RetryPolicy,
    TokenBucket,
    make_client,
    nesting_depth,
    retry_after_seconds,
)
from tests.hostile import Answer, HostileVendor, Seen


class Sleeps:
    """An injected sleep that records instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def scripted(*responses: httpx.Response | Exception):
    """A MockTransport handler answering with the given responses in order."""
    queue = list(responses)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    handler.seen = seen  # type: ignore[attr-defined]
    return handler


def client_for(handler, sleeps: Sleeps | None = None, **kw) -> HttpClient:
    policy = RetryPolicy(sleep=sleeps or Sleeps(), jitter=lambda: 0.0, **kw)
    return HttpClient("vendor", make_client("http://vendor.test",
                                            transport=httpx.MockTransport(handler)),
                      retry=policy)


def test_success_passes_through_and_counts_one_call():
    http = client_for(scripted(httpx.Response(200, json={"ok": True})))
    assert http.json("GET", "/x") == {"ok": True}
    assert http.api_calls == 1


def test_401_is_auth_error_not_retried():
    handler = scripted(httpx.Response(401, json={"error": "unauthorized access"}))
    http = client_for(handler)
    with pytest.raises(AuthError) as info:
        http.request("GET", "/x")
    assert info.value.status_code == 401
    assert info.value.system == "vendor"
    assert http.api_calls == 1


def test_404_is_not_found():
    http = client_for(scripted(httpx.Response(404, json={"error": "Person not found"},
                                              headers={"x-request-id": "req-9"})))
    with pytest.raises(NotFound) as info:
        http.request("GET", "/x")
    assert info.value.vendor_request_id == "req-9"
    assert "Person not found" in str(info.value)


def test_400_is_rejected_not_retried():
    http = client_for(scripted(httpx.Response(400, json={"error": "Name must be given."})))
    with pytest.raises(RequestRejected):
        http.request("POST", "/x", json={})
    assert http.api_calls == 1


def test_5xx_then_success_is_retried_with_backoff():
    sleeps = Sleeps()
    http = client_for(scripted(httpx.Response(500), httpx.Response(503),
                               httpx.Response(200, json=[1])), sleeps)
    assert http.json("GET", "/x") == [1]
    assert http.api_calls == 3
    # equal jitter with jitter()=0: half the exponential ceiling, growing
    assert sleeps.calls == [0.25, 0.5]


def test_429_honours_retry_after():
    sleeps = Sleeps()
    http = client_for(scripted(httpx.Response(429, headers={"retry-after": "7"}),
                               httpx.Response(200, json={})), sleeps)
    http.request("GET", "/x")
    assert sleeps.calls == [7.0]


def test_429_honours_x_ratelimit_reset():
    sleeps = Sleeps()
    http = client_for(scripted(httpx.Response(429, headers={"x-ratelimit-reset": "2",
                                                            "x-ratelimit-remaining": "0"}),
                               httpx.Response(200, json={})), sleeps)
    http.request("GET", "/x")
    assert sleeps.calls == [2.0]


def test_429_without_headers_backs_off_then_succeeds():
    sleeps = Sleeps()
    http = client_for(scripted(httpx.Response(429), httpx.Response(429),
                               httpx.Response(200, json={})), sleeps)
    http.request("GET", "/x")
    assert len(sleeps.calls) == 2 and all(s > 0 for s in sleeps.calls)


def test_daily_budget_429_is_raised_at_once():
    handler = scripted(httpx.Response(429, json={"success": False, "error": "limit"},
                                      headers={"x-ratelimit-remaining": "15"}))
    http = client_for(handler)
    http.daily_budget_header = "x-ratelimit-remaining"
    with pytest.raises(RateLimited) as info:
        http.request("GET", "/x")
    assert info.value.daily_budget_exhausted
    assert http.api_calls == 1


def test_attempts_are_bounded_and_last_error_raised():
    sleeps = Sleeps()
    http = client_for(scripted(*[httpx.Response(502)] * 10), sleeps, max_attempts=4)
    with pytest.raises(VendorError) as info:
        http.request("GET", "/x")
    assert info.value.status_code == 502
    assert http.api_calls == 4
    assert len(sleeps.calls) == 3


def test_total_wait_is_bounded():
    sleeps = Sleeps()
    http = client_for(scripted(*[httpx.Response(429, headers={"retry-after": "30"})] * 10),
                      sleeps, max_total=50, max_retry_after=40)
    with pytest.raises(RateLimited):
        http.request("GET", "/x")
    assert sum(sleeps.calls) <= 50
    assert http.api_calls == 2


def test_retry_after_beyond_the_limit_is_reported_not_waited():
    sleeps = Sleeps()
    http = client_for(scripted(httpx.Response(429, headers={"retry-after": "3600"})), sleeps)
    with pytest.raises(RateLimited) as info:
        http.request("GET", "/x")
    assert info.value.retry_after == 3600
    assert sleeps.calls == []


def test_connection_errors_retried_then_connection_failed():
    err = httpx.ConnectError("refused")
    http = client_for(scripted(err, err, err), max_attempts=3)
    with pytest.raises(ConnectionFailed):
        http.request("GET", "/x")
    assert http.api_calls == 3


def test_connection_error_then_success():
    http = client_for(scripted(httpx.ReadTimeout("slow"), httpx.Response(200, json={})))
    assert http.json("GET", "/x") == {}


def garbage() -> httpx.Response:
    return httpx.Response(200, content=b"<html>oops</html>",
                          headers={"content-type": "text/html"})


def test_garbage_body_is_bad_response_after_bounded_retries():
    http = client_for(scripted(*[garbage() for _ in range(3)]), max_attempts=3)
    with pytest.raises(BadResponse) as info:
        http.json("GET", "/x")
    assert "text/html" in str(info.value)
    assert http.api_calls == 3


def test_truncated_body_on_a_read_is_retried():
    http = client_for(scripted(httpx.Response(200, content=b'{"data":[{"id":1,"na'),
                               httpx.Response(200, json={"data": []})))
    assert http.json("GET", "/x") == {"data": []}


def test_garbage_body_on_a_write_is_not_repeated():
    http = client_for(scripted(garbage(), httpx.Response(200, json={})))
    with pytest.raises(BadResponse):
        http.json("POST", "/x", json={"a": 1})
    assert http.api_calls == 1


def test_html_403_is_auth_error_with_no_body_in_message():
    http = client_for(scripted(httpx.Response(403, content=b"<html>Cloudflare a@b.fi</html>",
                                              headers={"content-type": "text/html"})))
    with pytest.raises(AuthError) as info:
        http.request("GET", "/x")
    assert "Cloudflare" not in str(info.value)


def test_error_messages_mask_personal_data():
    http = client_for(scripted(httpx.Response(
        400, json={"title": "Member Exists",
                   "detail": "aino.virtanen@example.fi is already a list member."})))
    with pytest.raises(ConnectorError) as info:
        http.request("POST", "/x")
    assert "aino.virtanen" not in str(info.value)
    assert "a***@example.fi" in str(info.value)


def test_scrub_masks_phones():
    assert "4567" not in scrub("phone +358401234567 taken")


def test_retry_after_http_date():
    headers = {"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}
    assert retry_after_seconds(headers, now=1445412480.0) == pytest.approx(10.0)


def test_concurrency_limiter_caps_in_flight():
    import threading

    limiter = ConcurrencyLimiter(3)
    gate = threading.Event()
    started = threading.Semaphore(0)

    def work():
        with limiter.slot():
            started.release()
            gate.wait(5)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for _ in range(3):
        assert started.acquire(timeout=5)
    assert not started.acquire(timeout=0.2)
    assert limiter.in_flight == 3
    gate.set()
    for t in threads:
        t.join(5)
    assert limiter.peak == 3


def test_token_bucket_spaces_requests():
    now = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    bucket = TokenBucket(rate=2.0, burst=1, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        with bucket.slot():
            pass
    # 5 requests at 2/s: the first is free, each next waits half a second
    assert sleeps == [0.5] * 4
    assert now[0] == pytest.approx(2.0)


def test_burst_window_waits_when_exhausted():
    now = [100.0]
    sleeps: list[float] = []
    limiter = BurstWindowLimiter(clock=lambda: now[0], sleep=sleeps.append)
    with limiter.slot():
        pass
    limiter.observe({"x-ratelimit-remaining": "5", "x-ratelimit-reset": "2"})
    with limiter.slot():
        pass
    assert sleeps == []
    limiter.observe({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1.5"})
    with limiter.slot():
        pass
    assert sleeps == [1.5]


def test_burst_window_limiter_used_by_client():
    sleeps = Sleeps()
    limiter = BurstWindowLimiter(sleep=sleeps)
    handler = scripted(
        httpx.Response(200, json={}, headers={"x-ratelimit-remaining": "0",
                                              "x-ratelimit-reset": "1"}),
        httpx.Response(200, json={}),
    )
    http = HttpClient("pipedrive", make_client("http://v.test",
                                               transport=httpx.MockTransport(handler)),
                      limiter=limiter)
    http.request("GET", "/a")
    http.request("GET", "/b")
    assert len(sleeps.calls) == 1 and 0 < sleeps.calls[0] <= 1


def test_make_client_sets_timeouts_and_headers():
    client = make_client("http://v.test/", headers={"x-api-token": "t"})
    assert client.timeout.connect == 5.0
    assert client.headers["x-api-token"] == "t"
    assert str(client.base_url) == "http://v.test"
    client.close()


def test_connectors_read_the_sandbox_env_file_like_the_hub(tmp_path, monkeypatch):
    """`hub sandbox serve` writes .hub/sandbox.env; connectors must find it with
    nothing exported, and the environment still wins over it."""
    from connectors.registry import build_connector

    monkeypatch.chdir(tmp_path)
    for key in ("PIPEDRIVE_BASE_URL", "PIPEDRIVE_API_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / ".hub").mkdir()
    (tmp_path / ".hub" / "sandbox.env").write_text(
        "PIPEDRIVE_BASE_URL=http://127.0.0.1:1\nPIPEDRIVE_API_TOKEN=from-file\n")
    with build_connector("pipedrive") as connector:
        assert connector.system == "pipedrive"
    monkeypatch.setenv("PIPEDRIVE_BASE_URL", "http://127.0.0.1:2")
    from connectors.pipedrive.connector import PipedriveSettings
    from connectors.settings import load_settings
    assert load_settings(PipedriveSettings).base_url.startswith("http://127.0.0.1:2")


def test_scrub_masks_url_encoded_addresses_and_phones():
    from connectors.errors import scrub

    text = scrub("GET /forms/x/responses?query=aino.virtanen%40example.fi failed; "
                 "call +358401234567")
    assert "aino.virtanen" not in text and "a***@example.fi" in text
    assert "401234567" not in text


# ------------------------------------------ every wait ends, against a hostile vendor


def hostile(vendor: HostileVendor, *, attempts: int = 1, read: float = 0.5,
            **limits: float) -> HttpClient:
    """An HttpClient of the hostile vendor, with a short read timeout and ``limits``."""
    policy = RetryPolicy(max_attempts=attempts, sleep=Sleeps(), jitter=lambda: 0.0)
    client = make_client(vendor.url, timeout=httpx.Timeout(read, connect=1.0))
    return HttpClient("vendor", client, retry=policy, limits=CallLimits(**limits))


def test_a_trickling_body_ends_at_the_call_deadline_not_the_read_timeout():
    """Found: a body trickling one byte every 2 s kept a call with a 3 s read timeout
    waiting for 150 s. Each byte comes well within the read timeout; the call ends."""
    body = b'{"data": "' + b"x" * 400 + b'"}'  # 20 s at this pace
    with HostileVendor(lambda req: Answer(200, body, pace=0.05)) as vendor:
        http = hostile(vendor, attempts=2, read=0.5, deadline=1.0)
        started = time.monotonic()
        with pytest.raises(ConnectionFailed) as info:
            http.json("GET", "/x")
        assert time.monotonic() - started < 10  # generous: two attempts of ~1 s each
    assert info.value.retryable and "deadline" in info.value.detail
    assert http.api_calls == 2  # retried like a timeout


def test_a_body_declared_over_the_cap_is_refused_before_it_is_read():
    """Found: 100 MB accepted (+200 MB of memory per attempt). The default cap refuses
    it from the Content-Length alone, and does not retry it."""
    lie = Answer(200, b"[1]", headers={"content-length": str(100 * 2**20)})
    with HostileVendor(lambda req: lie) as vendor:
        http = hostile(vendor, attempts=3)
        with pytest.raises(BadResponse) as info:
            http.json("GET", "/x")
    assert "too large" in info.value.detail and info.value.status_code == 200
    assert http.api_calls == 1


def test_a_body_growing_over_the_cap_while_streamed_is_bad_response():
    big = Answer(200, b"[" + b"1," * 2**20 + b"1]", chunked=True)  # 2 MB, no length
    with HostileVendor(lambda req: big) as vendor:
        http = hostile(vendor, attempts=3, max_body=2**20)
        with pytest.raises(BadResponse) as info:
            http.json("GET", "/x")
    assert "too large" in info.value.detail
    assert http.api_calls == 1  # the vendor will not shrink it: not retried blindly


def test_a_body_under_the_cap_is_read_whole():
    body = b"[" + b"1," * 1000 + b"1]"
    with HostileVendor(lambda req: Answer(200, body, chunked=True)) as vendor:
        assert len(hostile(vendor, max_body=len(body)).json("GET", "/x")) == 1001


@pytest.mark.parametrize("body", [b"[" * 100_000, b"[" * 500 + b"]" * 500,
                                  b'{"a":' * 200 + b"1" + b"}" * 200],
                         ids=["100000 open brackets", "500 levels", "200 objects"])
def test_deeply_nested_json_is_bad_response_not_recursion_error(body):
    with HostileVendor(lambda req: Answer(200, body, {"content-type": "application/json"})
                       ) as vendor:
        http = hostile(vendor)
        with pytest.raises(BadResponse) as info:
            http.json("GET", "/x")
    assert "nested" in info.value.detail


def test_a_deeply_nested_error_body_still_gives_the_status():
    with HostileVendor(lambda req: Answer(400, b"[" * 100_000)) as vendor, \
            pytest.raises(RequestRejected) as info:
        hostile(vendor).request("GET", "/x")
    assert info.value.status_code == 400


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_host_is_never_followed(status):
    with HostileVendor(lambda req: Answer(200, {"data": "elsewhere"})) as other:
        moved = Answer(status, b"", headers={"location": other.url + "/steal?token=x"})
        with HostileVendor(lambda req: moved) as vendor:
            http = hostile(vendor, attempts=3)
            with pytest.raises(BadResponse) as info:
                http.json("POST", "/x", json={"a": 1})
    assert other.seen == []
    assert info.value.status_code == status and "redirect" in info.value.detail
    assert "127.0.0.1" in info.value.detail and "token" not in info.value.detail
    assert http.api_calls == 1


def test_a_redirect_on_the_same_host_is_not_success_either():
    def handler(req: Seen) -> Answer:
        if req.path == "/x":
            return Answer(302, b"", headers={"location": "/y"})
        return Answer(200, {"data": "moved"})

    with HostileVendor(handler) as vendor, pytest.raises(BadResponse) as info:
        hostile(vendor).request("GET", "/x")
    assert info.value.status_code == 302
    assert [s.path for s in vendor.seen] == ["/x"]


def test_call_limits_have_sane_defaults():
    limits = CallLimits()
    assert 10 <= limits.deadline <= 120
    assert 2**20 <= limits.max_body <= 100 * 2**20


# ------------------------------------------------------ vendor text: names scrubbed


FINNISH_NAMES = ["Aino Virtanen", "Mikko Häkkinen", "Eeva Mäkelä", "Jörö Öhman",
                 "Anna-Liisa Kärkkäinen", "Åsa Ström"]


@pytest.mark.parametrize("name", FINNISH_NAMES)
def test_a_pipedrive_400_echoing_the_subjects_name_is_scrubbed(name):
    """Found: a Pipedrive 400 that echoed the subject's name landed in Dagster's storage."""
    body = {"success": False, "error": f"Person '{name}' could not be updated",
            "error_info": "Please check developers.pipedrive.com", "code": "ERR_BAD_REQUEST"}
    with HostileVendor(lambda req: Answer(400, body)) as vendor, \
            pytest.raises(RequestRejected) as info:
        hostile(vendor).request("PATCH", "/api/v2/persons/7", json={"name": "x"})
    for part in name.replace("-", " ").split():
        assert part not in str(info.value) and part not in str(info.value.evidence())
    assert "could not be updated" in info.value.detail
    assert "ERR_BAD_REQUEST" in info.value.detail


@pytest.mark.parametrize("text, gone, kept", [
    ("Aino Virtanen is already a list member.", ["Aino", "Virtanen"],
     ["is already a list member"]),
    ("Member Exists: Mikko Häkkinen was permanently deleted", ["Mikko", "Häkkinen"],
     ["Member Exists", "was permanently deleted"]),
    ('Contact "eeva mäkelä" not unique', ["eeva", "mäkelä"], ["not unique"]),
    ("Resource Not Found", [], ["Resource Not Found"]),
    ("Method Not Allowed: This list member cannot be removed.", [],
     ["Method Not Allowed", "This list member cannot be removed"]),
    ("AUTHENTICATION_FAILED: Invalid token", [], ["AUTHENTICATION_FAILED", "Invalid token"]),
    ("unexpected response shape for MemberPage: members.0.id: missing", [],
     ["MemberPage", "members.0.id"]),
    ("field 'first_name' is required", [], ["'first_name'"]),
    ("Owner ÖSTEN JÄRVINEN not allowed", ["ÖSTEN", "JÄRVINEN"], ["not allowed"]),
])
def test_scrub_masks_names_and_quoted_values_keeps_vendor_words(text, gone, kept):
    out = scrub(text)
    for word in gone:
        assert word not in out
    for phrase in kept:
        assert phrase in out


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
                    max_leaves=30)


@given(JSON, st.booleans())
def test_nesting_depth_read_from_the_bytes_is_the_parsed_values(value, ascii_only):
    """Brackets, quotes and backslashes inside strings never count."""
    text = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert nesting_depth(text) == _depth(value)
