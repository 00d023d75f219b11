"""The one HTTP layer every connector talks through.

- :func:`make_client` builds an ``httpx.Client`` with sane timeouts and pooling;
  tests pass ``transport=httpx.MockTransport(...)`` (or use respx) instead of
  monkeypatching anything.
- :class:`RetryPolicy` is the single tenacity retry policy (stripe-python style):
  connection errors, 5xx and 429 are retried with exponential backoff and jitter;
  a 429 honours ``Retry-After`` or ``x-ratelimit-reset``; a Pipedrive 429 that
  means the daily budget is spent is raised at once. Attempts and total waiting
  are bounded; ``sleep`` and ``jitter`` are injectable so tests never sleep.
- Limiters (:class:`ConcurrencyLimiter`, :class:`SerialLimiter`,
  :class:`TokenBucket`, :class:`BurstWindowLimiter`) are the client-side limits per
  vendor, small and reusable.
- :class:`HttpClient` ties them together for one connector: every call goes
  through the limiter and the retry policy, its errors become the taxonomy of
  :mod:`connectors.errors`, and it counts API calls (``api_calls``).
- :class:`CallLimits` and :func:`exchange` make every wait end and every body
  bounded: a deadline for the whole exchange (a socket read timeout alone lets a
  trickling body run for ever), a size cap on the body, a depth cap on its JSON, and
  no redirect followed: a 3xx is an error, never a silent success or a trip to
  another host.
- :class:`CallCounter` is the thread-safe counter, shared with the Mailchimp SDK
  wrapper (which sends through :func:`exchange` under the SDK).
"""

from __future__ import annotations

import email.utils
import logging
import os
import random
import ssl
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from itertools import accumulate, islice
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import orjson
import pydantic
import tenacity

from connectors.errors import (
    AuthError,
    BadResponse,
    ConnectionFailed,
    ConnectorError,
    NotFound,
    RateLimited,
    RequestRejected,
    VendorError,
    scrub_identifiers,
)

T = TypeVar("T")
M = TypeVar("M", bound=pydantic.BaseModel)

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=30.0, write=30.0, pool=30.0)
# A whole exchange (connect, send, headers, body) of one attempt. Our largest answers
# (a Mailchimp page of 1000 members, ~3 MB) take a few seconds on a poor link; a
# minute is generous for them and still ends a trickle long before anyone waits on it.
DEFAULT_DEADLINE = 60.0
# About 6x the largest answer we read, so no honest page comes near it; a 100 MB
# answer (+200 MB of memory per attempt, found) is refused.
DEFAULT_MAX_BODY = 20 * 2**20
# Our vendors nest 6 levels at most. Python's JSON parser recurses (100,000 levels of
# `[` is a RecursionError) and pydantic refuses to dump a few hundred levels.
DEFAULT_MAX_DEPTH = 64
REQUEST_ID_HEADERS = ("x-request-id", "x-correlation-id", "request-id", "x-amzn-requestid",
                      "cf-ray")
USER_AGENT = "gdpr-hub-connectors/0.1 (+httpx)"


class _ScrubbedUrls(logging.Filter):
    """httpx logs each request's URL at INFO, and a lookup's URL holds the e-mail or phone
    searched for (`?term=`, `?emailkeyword=`, `?query=`). Whoever turns INFO logging on,
    including Dagster capturing the `httpx` logger, gets masked values only (rule 7)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = scrub_identifiers(record.getMessage()), None
        return True


logging.getLogger("httpx").addFilter(_ScrubbedUrls())


# --------------------------------------------------------------------------- client


@cache
def tls_context() -> ssl.SSLContext:
    """The process's one TLS context for every vendor client (certificates verified
    against certifi's roots, as httpx does by default).

    httpx builds a new context per client, loading the whole CA bundle: about 0.2 s of
    CPU per op process, paid again by every connector in every step. Made once (in the
    run before it forks its op processes, so each inherits it) and shared, as SSLContext allows.
    """
    return httpx.create_ssl_context()


def make_client(
    base_url: str,
    *,
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | tuple[str, str] | None = None,
    timeout: httpx.Timeout | float | None = None,
    transport: httpx.BaseTransport | None = None,
    max_connections: int = 20,
) -> httpx.Client:
    """An httpx client for one vendor: pooled, with timeouts, no redirects followed
    silently across hosts (httpx's default of not following redirects is kept)."""
    all_headers = {"user-agent": USER_AGENT, "accept": "application/json"}
    all_headers.update(headers or {})
    kwargs: dict[str, Any] = {}
    if transport is not None:
        kwargs["transport"] = transport
    return httpx.Client(
        base_url=base_url.rstrip("/"),
        verify=tls_context(),
        follow_redirects=False,
        headers=all_headers,
        auth=auth,
        timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
        limits=httpx.Limits(max_connections=max_connections,
                            max_keepalive_connections=max_connections),
        **kwargs,
    )


# ---------------------------------------------------------------------- retry policy


@dataclass(frozen=True)
class RetryPolicy:
    """The single retry policy.

    ``max_attempts`` counts the first try; ``max_total`` bounds the summed waits
    (seconds); ``max_retry_after`` is the longest vendor-requested wait we accept
    before giving up and reporting the 429 instead.
    """

    max_attempts: int = 6
    base: float = 0.5
    cap: float = 30.0
    max_total: float = 120.0
    max_retry_after: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random."""
        ceiling = min(self.cap, self.base * (2 ** max(attempt - 1, 0)))
        return ceiling / 2 + self.jitter() * ceiling / 2

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            # The vendor said when: wait that long plus a little jitter so parallel
            # workers do not come back in lockstep.
            return exc.retry_after + self.jitter() * min(self.base, 1.0)
        return self.backoff(state.attempt_number)

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= self.max_attempts:
            return True
        exc = state.outcome.exception() if state.outcome else None
        if (isinstance(exc, RateLimited) and exc.retry_after is not None
                and exc.retry_after > self.max_retry_after):
            return True
        return state.idle_for + state.upcoming_sleep > self.max_total

    @staticmethod
    def _retryable(exc: BaseException) -> bool:
        return isinstance(exc, ConnectorError) and exc.retryable

    @classmethod
    def from_env(cls) -> RetryPolicy:
        """The production policy, its backoff scaled by ``HUB_RETRY_BASE_SECONDS``.

        The one knob tests (and a deployment on a flaky network) turn: the test suite
        sets a millisecond base so it never waits real backoffs; Retry-After from a
        vendor is still honoured as the vendor said.
        """
        raw = os.environ.get("HUB_RETRY_BASE_SECONDS", "").strip()
        if not raw:
            return cls()
        try:
            base = float(raw)
        except ValueError:
            raise ValueError(f"HUB_RETRY_BASE_SECONDS is not a number: {raw!r}") from None
        if not 0 <= base <= 60:
            raise ValueError("HUB_RETRY_BASE_SECONDS must be between 0 and 60")
        return cls(base=base, cap=max(base * 60, base))

    def run(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` until it returns, a non-retryable error, or the bounds are hit;
        the last error is raised as it was (never a tenacity.RetryError)."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(self._retryable),
            wait=self._wait,
            stop=self._stop,
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(fn)


NO_RETRY = RetryPolicy(max_attempts=1)


# -------------------------------------------------------------------------- limiters


class Limiter:
    """No limit. Subclasses hold a slot around each request and may read headers."""

    @contextmanager
    def slot(self) -> Iterator[None]:
        yield

    def observe(self, headers: Mapping[str, str]) -> None:  # noqa: B027 - optional hook
        """Look at a response's headers (rate-limit state)."""


class ConcurrencyLimiter(Limiter):
    """At most ``limit`` requests in flight (Mailchimp: 10 simultaneous connections)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._sem = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._sem:
            with self._lock:
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
            try:
                yield
            finally:
                with self._lock:
                    self.in_flight -= 1


class SerialLimiter(ConcurrencyLimiter):
    """One request at a time (Netvisor)."""

    def __init__(self) -> None:
        super().__init__(1)


class TokenBucket(Limiter):
    """``rate`` requests per second on average, bursts up to ``burst`` (Typeform: 2/s)."""

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()
        self.waited = 0.0

    def acquire(self) -> None:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            wait = (1 - self._tokens) / self.rate
            # Reserve the token now; whoever comes next waits behind us.
            self._tokens -= 1
            self.waited += wait
        self._sleep(wait)

    @contextmanager
    def slot(self) -> Iterator[None]:
        self.acquire()
        yield


class BurstWindowLimiter(Limiter):
    """Pipedrive's 2-second burst window, respected proactively from its headers.

    Every response carries ``x-ratelimit-remaining`` and ``x-ratelimit-reset``
    (seconds left in the window). When the remaining count falls to ``reserve``
    the next request waits for the window to reset instead of earning a 429.
    """

    def __init__(
        self,
        *,
        reserve: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 10.0,
    ) -> None:
        self.reserve = reserve
        self._clock = clock
        self._sleep = sleep
        self.max_wait = max_wait
        self._lock = threading.Lock()
        self._remaining: int | None = None
        self._reset_at: float | None = None
        self.waited = 0.0

    def observe(self, headers: Mapping[str, str]) -> None:
        remaining = _int_header(headers, "x-ratelimit-remaining")
        reset = _float_header(headers, "x-ratelimit-reset")
        if remaining is None:
            return
        with self._lock:
            self._remaining = remaining
            self._reset_at = self._clock() + min(reset, self.max_wait) if reset else None

    @contextmanager
    def slot(self) -> Iterator[None]:
        wait = 0.0
        with self._lock:
            if (self._remaining is not None and self._remaining <= self.reserve
                    and self._reset_at is not None):
                wait = max(0.0, self._reset_at - self._clock())
                self._remaining = None
                self._reset_at = None
            elif self._remaining is not None:
                self._remaining -= 1
        if wait:
            self.waited += wait
            self._sleep(wait)
        yield


class CombinedLimiter(Limiter):
    """Several limits at once (e.g. a burst window and a concurrency cap)."""

    def __init__(self, *limiters: Limiter) -> None:
        self.limiters = limiters

    @contextmanager
    def slot(self) -> Iterator[None]:
        with _nested(self.limiters):
            yield

    def observe(self, headers: Mapping[str, str]) -> None:
        for limiter in self.limiters:
            limiter.observe(headers)


@contextmanager
def _nested(limiters: tuple[Limiter, ...]) -> Iterator[None]:
    if not limiters:
        yield
        return
    with limiters[0].slot(), _nested(limiters[1:]):
        yield


# ------------------------------------------------------------------- header helpers


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def _float_header(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP date) or
    ``x-ratelimit-reset`` (seconds left, or an epoch timestamp); None if absent."""
    now = time.time() if now is None else now
    value = headers.get("retry-after")
    if value is not None:
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                return max(0.0, when.timestamp() - now)
    reset = _float_header(headers, "x-ratelimit-reset")
    if reset is not None:
        if reset > 1_000_000_000:  # an epoch timestamp, not a countdown
            return max(0.0, reset - now)
        return max(0.0, reset)
    return None


def request_id(headers: Mapping[str, str], extra: tuple[str, ...] = ()) -> str | None:
    for name in (*extra, *REQUEST_ID_HEADERS):
        value = headers.get(name)
        if value:
            return value
    return None


def error_detail(body: Any) -> str:
    """The vendor's own words for an error, from the shapes our vendors use."""
    if isinstance(body, dict):
        parts = []
        for key in ("title", "error", "code", "detail", "description", "message"):
            value = body.get(key)
            if isinstance(value, str | int) and str(value) and str(value) not in parts:
                parts.append(str(value))
        return ": ".join(parts[:3])
    return ""


def _body_detail(response: httpx.Response) -> tuple[str, bool]:
    """(detail, body_is_json_or_empty)."""
    content = response.content
    if not content.strip():
        return "empty body", True
    try:
        return error_detail(load_json(content, DEFAULT_MAX_DEPTH)), True
    except TooDeep as exc:
        return str(exc), True
    except ValueError:
        ctype = response.headers.get("content-type", "unknown").split(";")[0]
        return f"non-JSON body ({ctype})", False


def classify(
    system: str,
    response: httpx.Response,
    *,
    daily_budget_header: str | None = None,
    request_id_headers: tuple[str, ...] = (),
) -> ConnectorError | None:
    """The taxonomy error for a response, or None when it is a success (2xx)."""
    status = response.status_code
    if status < 300:
        return None
    headers = response.headers
    if status < 400:
        return redirect_error(system, status, headers)
    rid = request_id(headers, request_id_headers)
    detail, _ = _body_detail(response)
    if status == 429 and daily_budget_header:
        remaining = _int_header(headers, daily_budget_header)
        if remaining is not None and remaining >= 1:
            return RateLimited(system, detail or "daily request budget exhausted",
                               status_code=429, vendor_request_id=rid,
                               daily_budget_exhausted=True)
    return error_for_status(system, status, detail, vendor_request_id=rid,
                            retry_after=retry_after_seconds(headers))


def error_for_status(system: str, status: int, detail: str = "", *,
                     vendor_request_id: str | None = None,
                     retry_after: float | None = None) -> ConnectorError:
    """The taxonomy class for an HTTP error status (shared by httpx and SDK paths)."""
    common: dict[str, Any] = {"status_code": status, "vendor_request_id": vendor_request_id}
    if status == 429:
        return RateLimited(system, detail, retry_after=retry_after, **common)
    if status in (401, 402, 403):
        return AuthError(system, detail, **common)
    if status in (404, 410):
        return NotFound(system, detail, **common)
    if status >= 500:
        return VendorError(system, detail, **common)
    return RequestRejected(system, detail, **common)


# ------------------------------------------------------------------ bounded exchange


@dataclass(frozen=True)
class CallLimits:
    """What one attempt at a vendor call may cost: time, bytes and JSON depth.

    ``deadline`` bounds the whole exchange of one attempt (connect, send, headers and
    body), because the read timeout only bounds the gap between two bytes: a body
    that trickles a byte every 2 s never trips a 3 s read timeout (found: 150 s and
    counting). Passing it is a ConnectionFailed, retryable like any timeout, so the
    worst case of a call is ``max_attempts`` deadlines plus the policy's waits.
    ``max_body`` caps the (decoded) body, checked against Content-Length before
    reading and again while reading: BadResponse, not retried (the same request gets
    the same answer). ``max_depth`` caps JSON nesting: BadResponse like any body that
    cannot be read, so a read retries it within the policy's bounds. ``clock`` is
    injectable like every other wait.

    What the deadline cannot cut short: response *headers* trickled byte by byte.
    httpcore reads them with the (capped) read timeout per byte and no overall clock;
    h11 stops them at 100 KiB. Closing that needs a network backend of our own.
    """

    deadline: float = DEFAULT_DEADLINE
    max_body: int = DEFAULT_MAX_BODY
    max_depth: int = DEFAULT_MAX_DEPTH
    clock: Callable[[], float] = time.monotonic

    def timeout(self, configured: httpx.Timeout) -> httpx.Timeout:
        """The client's timeouts, none longer than the deadline: every phase of the
        exchange must be able to end within it."""

        def capped(value: float | None) -> float:
            return self.deadline if value is None else min(value, self.deadline)

        return httpx.Timeout(connect=capped(configured.connect), read=capped(configured.read),
                             write=capped(configured.write), pool=capped(configured.pool))


DEFAULT_LIMITS = CallLimits()
# Headers that describe the bytes on the wire, not the body as read and decoded.
_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def exchange(system: str, client: httpx.Client, method: str, url: str, *,
             limits: CallLimits = DEFAULT_LIMITS, **kwargs: Any) -> httpx.Response:
    """One request and its whole answer, within ``limits``; never follows a redirect.

    The body is streamed so the deadline and the size cap are checked while it
    arrives; the response returned has it read. ``kwargs`` are those of
    ``httpx.Client.build_request`` (params, json, content, headers). A transport
    failure or the deadline is ConnectionFailed; a body over the cap is BadResponse.
    """
    started = limits.clock()
    request = client.build_request(method, url, timeout=limits.timeout(client.timeout),
                                   **kwargs)
    try:
        response = client.send(request, stream=True, follow_redirects=False)
    except httpx.TransportError as exc:
        raise ConnectionFailed(system, type(exc).__name__) from None
    try:
        body = _read_body(system, response, started, limits)
    finally:
        response.close()
    headers = [(k, v) for k, v in response.headers.multi_items()
               if k.lower() not in _WIRE_HEADERS]
    return httpx.Response(response.status_code, headers=headers, content=body,
                          request=request)


def _read_body(system: str, response: httpx.Response, started: float,
               limits: CallLimits) -> bytes:
    """The body, read chunk by chunk against the size cap and the deadline."""
    _refuse_declared_size(system, response, limits.max_body)
    chunks: list[bytes] = []
    size = 0
    try:
        _check_deadline(system, started, limits)
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limits.max_body:
                raise _too_large(system, response, limits.max_body)
            chunks.append(chunk)
            _check_deadline(system, started, limits)
    except httpx.TransportError as exc:
        raise ConnectionFailed(system, f"{type(exc).__name__} while reading the body"
                               ) from None
    except httpx.DecodingError:
        raise BadResponse(system, "body does not decode (content-encoding)",
                          status_code=response.status_code) from None
    return b"".join(chunks)


def _refuse_declared_size(system: str, response: httpx.Response, cap: int) -> None:
    declared = _int_header(response.headers, "content-length")
    if declared is not None and declared > cap:
        raise _too_large(system, response, cap, declared=declared)


def _too_large(system: str, response: httpx.Response, cap: int, *,
               declared: int | None = None) -> BadResponse:
    declared_text = f" ({declared} bytes declared)" if declared is not None else ""
    return BadResponse(system, f"body too large: over the cap of {cap} bytes{declared_text}",
                       status_code=response.status_code,
                       vendor_request_id=request_id(response.headers))


def _check_deadline(system: str, started: float, limits: CallLimits) -> None:
    if limits.clock() - started > limits.deadline:
        raise ConnectionFailed(system, f"no complete answer within the {limits.deadline:g} s "
                                       "deadline of one attempt")


def redirect_error(system: str, status: int, headers: Mapping[str, str]) -> BadResponse:
    """A 3xx as the error it is here: the APIs we call do not redirect, a redirect
    may lead to another host (with our credentials), and following it silently
    would make a move look like success. Names the target host, never its path."""
    target = urlsplit(headers.get("location") or "").netloc or "the same host"
    return BadResponse(system, f"redirect to {target} not followed", status_code=status,
                       vendor_request_id=request_id(headers))


_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 opens, -1 (signed) closes


def nesting_depth(content: bytes) -> int:
    """How deeply a JSON text nests its arrays and objects, read from the bytes.

    Escaped backslashes and quotes go first, then everything but quotes and brackets;
    what lies between quotes is string content, and the brackets left are steps up
    and down whose deepest running total is the depth. All in C (replace, translate,
    split, accumulate): walking the parsed value container by container cost as much
    as parsing every page. For text the parser accepted; other text gives a number,
    never an error."""
    kept = content
    if b"\\" in kept:  # most pages have no escape at all: two copies of the body saved
        kept = kept.replace(b"\\\\", b"").replace(b'\\"', b"")
    kept = kept.translate(None, _NOT_STRUCTURE)
    # Two quotes side by side enclose no bracket: an empty string, or one string's end
    # and the next one's start. Dropping them keeps the pairs of the rest, and as most
    # strings hold no bracket, few quotes are left to split on (the split was most of
    # the time a page of a thousand Mailchimp members took here).
    kept = kept.replace(b'""', b"")
    if b'"' in kept:
        kept = b"".join(kept.split(b'"')[::2])
    return max(accumulate(array("b", kept.translate(_STEPS))), default=0)


class TooDeep(ValueError):
    """JSON nested beyond the cap: as unusable as garbage, and said so."""


def load_json(content: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse JSON within the depth cap: ValueError for garbage (as ``json.loads``)
    and for nesting the parser cannot or we will not take (never RecursionError)."""
    try:
        # orjson: a page's decoding was most of a JSON sync's own time. It refuses
        # nesting past 1024 levels with a ValueError ("depth limit"), never recursing.
        value = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):
            raise TooDeep("JSON nested too deeply to parse") from None
        raise
    # No deeper than its number of containers: most bodies need no count at all.
    if (content.count(b"[") + content.count(b"{") > max_depth
            and nesting_depth(content) > max_depth):
        raise TooDeep(f"JSON nested too deeply (over {max_depth} levels)")
    return value


# ------------------------------------------------------------------------ read-ahead


def read_ahead(reads: Iterable[Callable[[], T]], ahead: int = 1) -> Iterator[T]:
    """The results of ``reads``, in order, each started before the caller has done with
    the one before it, at most ``ahead`` at a time.

    A sync's pages are independent reads whose addresses are known before the answers
    (Netvisor's id chunks, Mailchimp's offsets): while the caller maps one page to
    records, the next is already on the wire and, with lxml, being parsed (it lets go
    of the GIL). Each read is whole, as the caller would make it (limiter, retry
    policy, validation); the vendor's limits still hold because the limiter does: a
    serial vendor gets ``ahead=1``, one request in flight. A read's error is raised
    when its result is due; reads not started yet are dropped when the caller stops.
    """
    if ahead < 1:
        raise ValueError("ahead must be at least 1")
    todo = iter(reads)
    with ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="read-ahead") as pool:
        pending: deque[Future[T]] = deque(pool.submit(read) for read in islice(todo, ahead))
        try:
            while pending:
                result = pending.popleft().result()
                for read in islice(todo, 1):
                    pending.append(pool.submit(read))
                yield result
        finally:
            for future in pending:
                future.cancel()


# ------------------------------------------------------------------------ counting


class CallCounter:
    """A thread-safe count of API calls (every attempt that reached the wire)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0

    def add(self, n: int = 1) -> None:
        with self._lock:
            self._count += n

    @property
    def value(self) -> int:
        return self._count


# --------------------------------------------------------------------- HttpClient


@dataclass
class HttpClient:
    """One connector's door to its vendor: limiter + retry + taxonomy + counting.

    ``limits`` bound each attempt (deadline, body size, JSON depth); a connector
    sets its own where the defaults do not fit its vendor."""

    system: str
    client: httpx.Client
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limiter: Limiter = field(default_factory=Limiter)
    daily_budget_header: str | None = None
    request_id_headers: tuple[str, ...] = ()
    counter: CallCounter = field(default_factory=CallCounter)
    limits: CallLimits = DEFAULT_LIMITS

    @property
    def api_calls(self) -> int:
        return self.counter.value

    def _send_once(self, method: str, url: str, limiter: Limiter | None,
                   kwargs: dict[str, Any]) -> httpx.Response:
        lim = limiter or self.limiter
        with lim.slot():
            self.counter.add()
            response = exchange(self.system, self.client, method, url, limits=self.limits,
                                **kwargs)
            lim.observe(response.headers)
        if self.reads_error_body(response):
            return response
        error = classify(self.system, response, daily_budget_header=self.daily_budget_header,
                         request_id_headers=self.request_id_headers)
        if error is not None:
            raise error
        return response

    def reads_error_body(self, response: httpx.Response) -> bool:
        """Whether the connector reads this error status's body itself (none do by default)."""
        return False

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        limiter: Limiter | None = None,
        retry: RetryPolicy | None = None,
    ) -> httpx.Response:
        """Send with retries; return the 2xx response or raise the taxonomy."""
        kwargs: dict[str, Any] = {}
        if params is not None:
            kwargs["params"] = {k: v for k, v in params.items() if v is not None}
        if json is not None:
            kwargs["json"] = json
        if content is not None:
            kwargs["content"] = content
        if headers is not None:
            kwargs["headers"] = headers
        policy = retry or self.retry
        return policy.run(lambda: self._send_once(method, url, limiter, kwargs))

    def json(self, method: str, url: str, *, retry: RetryPolicy | None = None,
             parse: type[M] | None = None, **kwargs: Any) -> Any:
        """``request``, parse the JSON body and, with ``parse``, validate its shape.

        The one parse path: garbage (a truncated answer, a proxy's HTML page) and a
        body that is JSON but not what the connector reads (``{}``, a list where an
        object belongs) both become BadResponse, never "nothing here". For reads
        (GET/HEAD) either is retried like a 5xx; a write is never repeated for it."""
        policy = retry or self.retry
        safe = method.upper() in ("GET", "HEAD")

        def once() -> Any:
            response = self.request(method, url, retry=NO_RETRY, **kwargs)
            try:
                body = parse_json(self.system, response, self.request_id_headers,
                                  max_depth=self.limits.max_depth)
                if parse is None:
                    return body
                return validate(self.system, parse, body, response=response,
                                request_id_headers=self.request_id_headers)
            except BadResponse as exc:
                exc.retryable = safe
                raise

        return policy.run(once)

    def close(self) -> None:
        self.client.close()


def validate(system: str, model: type[M], body: Any, *,
             response: httpx.Response | None = None,
             request_id_headers: tuple[str, ...] = ()) -> M:
    """``body`` as the vendor model ``model``, or BadResponse naming what was wrong.

    The models (``connectors/<vendor>/models.py``) declare what each connector
    reads from each answer; a body without it is a vendor protocol error. The
    message names the field and the kind of problem, never the value.
    """
    try:
        return model.model_validate(body)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadResponse(
            system, f"unexpected response shape for {model.__name__}: {where}: {first['type']}",
            status_code=response.status_code if response is not None else None,
            vendor_request_id=(request_id(response.headers, request_id_headers)
                               if response is not None else None),
        ) from None


def parse_json(system: str, response: httpx.Response,
               request_id_headers: tuple[str, ...] = (), *,
               max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """The body as JSON; garbage or nesting beyond ``max_depth`` is BadResponse."""
    rid = request_id(response.headers, request_id_headers)
    try:
        return load_json(response.content, max_depth)
    except TooDeep as exc:
        raise BadResponse(system, str(exc), status_code=response.status_code,
                          vendor_request_id=rid) from None
    except ValueError:
        ctype = response.headers.get("content-type", "unknown").split(";")[0]
        raise BadResponse(system, f"body is not JSON ({ctype})",
                          status_code=response.status_code, vendor_request_id=rid) from None
