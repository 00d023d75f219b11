"""The official ``mailchimp-marketing`` SDK, wrapped to behave like the rest of the
HTTP layer (reference section B.7).

The SDK calls ``requests`` at module level and takes no transport, so every call
goes through :meth:`MailchimpApi.call` (or ``read``), which

- holds a slot of the ≤10-concurrent limiter (shared by every client of the same
  API key in this process: Mailchimp's limit is per account),
- counts the call,
- turns ``ApiClientError`` into the taxonomy: ``status_code`` None is
  ConnectionFailed; ``.text`` is the raw problem+json *string* (its content type
  does not contain ``application/json``), so it is parsed for title/detail and
  the ``instance`` request id,
- treats a ``requests.Response`` handed back instead of raised (204s, and any
  error with an empty body or no content type) as what it is: ``not resp.ok`` is
  an error; an empty-bodied 403 is Mailchimp's throttle and is retried as such,
- runs under the one retry policy,
- has its host pointed at ``MAILCHIMP_BASE_URL``,
- and sends through the shared HTTP layer, not ``requests``: the SDK's one door to
  the network, ``ApiClient.request``, is replaced by :meth:`MailchimpApi._send`,
  which uses :func:`connectors.http.exchange`. So the SDK path gets what every other
  connector has: a deadline for the whole exchange and a body size cap
  (``CallLimits``), redirects never followed (``requests`` follows them, to any
  host, with the API key: found), and the answer's headers, so a 429's
  ``Retry-After`` reaches the retry policy (the SDK's ``ApiClientError`` carries no
  headers: found ignored). Any answer but a 2xx is turned into the taxonomy there,
  from the whole response, and travels out of the SDK inside its ``ApiClientError``.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import mailchimp_marketing
import requests
from mailchimp_marketing.api_client import ApiClientError
from pydantic import BaseModel
from requests.structures import CaseInsensitiveDict

from connectors.errors import BadResponse, ConnectionFailed, ConnectorError, RateLimited
from connectors.http import (
    DEFAULT_LIMITS,
    CallCounter,
    CallLimits,
    ConcurrencyLimiter,
    Limiter,
    RetryPolicy,
    TooDeep,
    error_detail,
    error_for_status,
    exchange,
    load_json,
    make_client,
    redirect_error,
    request_id,
    retry_after_seconds,
    validate,
)

SYSTEM = "mailchimp"
M = TypeVar("M", bound=BaseModel)
MAX_CONCURRENT = 10
DEFAULT_TIMEOUT = (5.0, 30.0)

_limiters: dict[str, ConcurrencyLimiter] = {}
_limiters_lock = threading.Lock()


def shared_limiter(api_key: str) -> ConcurrencyLimiter:
    """One ≤10-concurrent limiter per account (keyed by a hash, not the key itself)."""
    key = hashlib.sha256(api_key.encode()).hexdigest()
    with _limiters_lock:
        if key not in _limiters:
            _limiters[key] = ConcurrencyLimiter(MAX_CONCURRENT)
        return _limiters[key]


def dc_of(api_key: str) -> str:
    """The data centre from an API key ("…-us21" → "us21")."""
    _, sep, dc = api_key.rpartition("-")
    if not sep or not dc:
        raise ValueError("MAILCHIMP_API_KEY must end with -<dc>, e.g. -us21")
    return dc


def translate_error(exc: ApiClientError) -> ConnectorError:
    """An SDK exception as the taxonomy (problem+json parsed, secrets never shown).

    The SDK wraps whatever its transport raised; when that is already the taxonomy
    (our transport's verdict on the whole answer) it is returned as it is."""
    if isinstance(exc.text, ConnectorError):
        return exc.text
    if exc.status_code is None:
        return ConnectionFailed(SYSTEM, type(exc.text).__name__
                                if isinstance(exc.text, BaseException) else "no response")
    body: Any = exc.text
    if isinstance(body, str | bytes):
        try:
            body = json.loads(body)
        except ValueError:
            body = None
    detail = error_detail(body) if isinstance(body, dict) else "non-JSON body"
    rid = body.get("instance") if isinstance(body, dict) else None
    return error_for_status(SYSTEM, int(exc.status_code), detail,
                            vendor_request_id=rid if isinstance(rid, str) else None)


def translate_response(resp: requests.Response) -> ConnectorError | None:
    """None for a good ``requests.Response`` the SDK returned, else the error it hides.

    A 2xx comes back as a Response for 204s (fine) and also when the body is not
    JSON (the SDK swallows the error) or is an empty ``{}``/``[]`` (falsy, so the SDK
    does not return it): a BadResponse, retried when the request was a read."""
    if resp.ok:
        if resp.status_code == 204 or not resp.content.strip():
            return None
        error = BadResponse(SYSTEM, "body is not JSON, or an empty {} or []",
                            status_code=resp.status_code,
                            vendor_request_id=request_id(resp.headers))
        method = resp.request.method if resp.request is not None else None
        error.retryable = method in ("GET", "HEAD")
        return error
    rid = request_id(resp.headers)
    if resp.status_code == 403 and not resp.content.strip():
        # "At very high volume the throttle can surface as a bare 403 with no body."
        return RateLimited(SYSTEM, "bare 403 with an empty body (throttle)",
                           status_code=403, vendor_request_id=rid)
    detail = "empty body" if not resp.content.strip() else "error body without content type"
    return error_for_status(SYSTEM, resp.status_code, detail, vendor_request_id=rid)


def answer_error(response: httpx.Response) -> ConnectorError | None:
    """None for a 2xx, else the taxonomy error for the whole answer: a 3xx is a
    redirect not followed, an empty-bodied 403 is the throttle, a 429 keeps its
    ``Retry-After``, and problem+json gives its title, detail and ``instance``."""
    status = response.status_code
    if status < 300:
        return None
    if status < 400:
        return redirect_error(SYSTEM, status, response.headers)
    rid = request_id(response.headers)
    if not response.content.strip():
        if status == 403:
            # "At very high volume the throttle can surface as a bare 403 with no body."
            return RateLimited(SYSTEM, "bare 403 with an empty body (throttle)",
                               status_code=403, vendor_request_id=rid)
        return error_for_status(SYSTEM, status, "empty body", vendor_request_id=rid,
                                retry_after=retry_after_seconds(response.headers))
    try:
        body: Any = load_json(response.content)
    except ValueError:
        body = None
    detail = error_detail(body) if isinstance(body, dict) else "non-JSON body"
    instance = body.get("instance") if isinstance(body, dict) else None
    return error_for_status(SYSTEM, status, detail,
                            vendor_request_id=instance if isinstance(instance, str) else rid,
                            retry_after=retry_after_seconds(response.headers))


class ParsedResponse(requests.Response):
    """A ``requests.Response`` whose ``json()`` is the body as :func:`load_json` read
    it, once, in :meth:`MailchimpApi._send`: orjson within the depth cap, where
    ``requests`` would parse again with the standard library (twice orjson's time on
    a page of 1000 members, most of what the SDK path added to a sync). Garbage
    raises from ``json()`` as ``requests`` would, and the SDK then hands the Response
    back, which :func:`translate_response` turns into a BadResponse. A body not
    parsed in ``_send`` (not JSON by its content type) is parsed as ``requests``
    would."""

    parsed: Any = None

    def json(self, **kwargs: Any) -> Any:
        if isinstance(self.parsed, ValueError):
            raise self.parsed
        return super().json(**kwargs) if self.parsed is None else self.parsed


def as_requests_response(response: httpx.Response) -> ParsedResponse:
    """A 2xx answer read by httpx, as the ``requests.Response`` the SDK expects.

    The body is set the way ``requests``' own adapters do (``_content``): it has
    already been read, within the limits."""
    out = ParsedResponse()
    out.status_code = response.status_code
    out.reason = response.reason_phrase
    out.headers = CaseInsensitiveDict(response.headers.items())
    out._content = response.content
    out.encoding = response.charset_encoding
    out.url = str(response.request.url)
    out.request = requests.Request(response.request.method, out.url).prepare()
    return out


def _httpx_timeout(timeout: float | tuple[float, float]) -> httpx.Timeout:
    """The SDK's ``timeout`` (seconds, or requests' (connect, read)) for httpx."""
    if isinstance(timeout, tuple):
        connect, read = timeout
        return httpx.Timeout(read, connect=connect)
    return httpx.Timeout(timeout)


class MailchimpApi:
    """The SDK client plus limiter, retry policy, taxonomy and call counting, sending
    through the shared HTTP layer within ``limits``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        limiter: Limiter | None = None,
        counter: CallCounter | None = None,
        limits: CallLimits = DEFAULT_LIMITS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.client = mailchimp_marketing.Client()
        self.client.set_config({"api_key": api_key, "server": dc_of(api_key),
                                "timeout": timeout})
        # After set_config (it never touches host); the SDK then does
        # url.replace("server", dc), harmless as long as the URL does not contain
        # "server" - the sandbox's loopback URL does not.
        self.client.api_client.host = base_url.rstrip("/")
        self.retry = retry or RetryPolicy.from_env()
        self.limiter = limiter or shared_limiter(api_key)
        self.counter = counter or CallCounter()
        self.last_request_id: str | None = None
        # The SDK's transport, replaced (see the module docstring). Basic auth as the
        # SDK sends it: any user name, the API key as the password.
        self.http = make_client(base_url, auth=("user", api_key),
                                timeout=_httpx_timeout(timeout), transport=transport,
                                max_connections=MAX_CONCURRENT)
        self.limits = limits
        self.client.api_client.request = self._send

    def _send(self, method: str, url: str, query_params: Any = None,
              headers: dict[str, str] | None = None, body: Any = None) -> requests.Response:
        """``ApiClient.request`` done by :func:`exchange`: the SDK's URL, query and
        headers, its JSON body (``null`` for body-less actions, as the SDK sends);
        raises the taxonomy for anything but a 2xx (the SDK wraps it, and
        :func:`translate_error` unwraps it)."""
        kwargs: dict[str, Any] = {"params": query_params or None, "headers": headers}
        if method in ("POST", "PUT", "PATCH"):
            kwargs["content"] = json.dumps(body)
        response = exchange(SYSTEM, self.http, method, url, limits=self.limits, **kwargs)
        error = answer_error(response)
        if error is not None:
            raise error
        out = as_requests_response(response)
        if "application/json" in response.headers.get("content-type", ""):
            # What the SDK will parse (it parses nothing else), parsed here within the
            # depth cap: a few hundred levels make the export's dump raise.
            try:
                out.parsed = load_json(response.content, self.limits.max_depth)
            except TooDeep as exc:
                raise BadResponse(SYSTEM, str(exc)) from None
            except ValueError as exc:
                out.parsed = exc
        return out

    def close(self) -> None:
        self.http.close()

    @property
    def api_calls(self) -> int:
        return self.counter.value

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call an SDK method with retries; returns its data (None for a 204)."""
        return self.retry.run(lambda: self._once(fn, args, kwargs))

    def read(self, model: type[M], fn: Callable[..., Any], *args: Any, **kwargs: Any) -> M:
        """Call an SDK *read* (a GET) and validate what it returned as ``model``.

        The SDK hands back whatever it got: ``{}`` or an empty body as a bare Response
        (None here), an HTML page as its text, a list where an object belongs. None of
        those is what the connector reads, so each is a BadResponse, retried like a
        5xx because a GET can be repeated."""

        def once() -> M:
            result = self._once(fn, args, kwargs)  # a redirect or a cap: not retried
            try:
                return validate(SYSTEM, model, result)
            except BadResponse as exc:
                exc.retryable = True
                raise

        return self.retry.run(once)

    def _once(self, fn: Callable[..., Any], args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> Any:
        with self.limiter.slot():
            self.counter.add()
            try:
                result = fn(*args, **kwargs)
            except ApiClientError as exc:
                raise translate_error(exc) from None
        if isinstance(result, requests.Response):
            error = translate_response(result)
            if error is not None:
                raise error
            self.last_request_id = request_id(result.headers)
            return None
        return result

    @property
    def lists(self) -> Any:
        return self.client.lists
