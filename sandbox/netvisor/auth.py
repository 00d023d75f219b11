"""Netvisor's request authentication, as the emulator checks it.

Three MAC algorithms, named by `X-Netvisor-Authentication-MACHashCalculationAlgorithm`
(Netvisor support, "API authentication"; saas-apis.md Corrections, checked 2026-12):

- `HMACSHA256`, the current one: an extra header
  `X-Netvisor-Authentication-TimestampUnix` (seconds since the epoch) must lie within
  `timestamp_tolerance` of the server's clock, and the MAC is the hex HMAC-SHA256,
  keyed `CustomerKey&PartnerKey`, of
  `URL&Sender&CustomerId&Timestamp&Language&OrganisationId&TransactionId&TimestampUnix&CustomerKey&PartnerKey`,
  both ISO-8859-1. The timestamp check replaces the transaction-id rule.
- `SHA256` and `MD5`, the old ones Netvisor announced it will remove: the plain hash
  of the nine values without `TimestampUnix`, the `Timestamp` header within the
  tolerance, and a TransactionId never seen before. The setting `accept_legacy_mac`
  (default true, so old clients keep working) set to false refuses them, as
  production will.

The server's clock is `NetvisorState.clock`, so a test moves it instead of sleeping.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request

from sandbox.netvisor.state import NetvisorState
from sandbox.netvisor.xml import NvError

H = "x-netvisor-"
REQUIRED_HEADERS = (
    "x-netvisor-authentication-sender", "x-netvisor-authentication-customerid",
    "x-netvisor-authentication-partnerid", "x-netvisor-authentication-timestamp",
    "x-netvisor-authentication-transactionid", "x-netvisor-authentication-mac",
    "x-netvisor-authentication-machashcalculationalgorithm",
    "x-netvisor-interface-language", "x-netvisor-organisation-id",
)
HMAC_ALGORITHM = "HMACSHA256"
LEGACY: dict[str, Callable[..., Any]] = {
    "SHA256": hashlib.sha256, "MD5": hashlib.md5,
}


def request_url(request: Request) -> str:
    """The URL the client sent: scheme://Host + raw path + '?' + raw query (if any)."""
    scope = request.scope
    host = request.headers.get("host", "")
    path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
    path = path.split("?", 1)[0]
    qs = scope.get("query_string", b"").decode("latin-1")
    return f"{scope.get('scheme', 'http')}://{host}{path}" + (f"?{qs}" if qs else "")


def compute_mac(url: str, sender: str, customer_id: str, timestamp: str, language: str,
                organisation_id: str, transaction_id: str, customer_key: str,
                partner_key: str, algorithm: str = "SHA256") -> str:
    """The legacy MAC: the hex hash (SHA256 or MD5) of the nine values joined with '&'."""
    joined = "&".join([url, sender, customer_id, timestamp, language, organisation_id,
                       transaction_id, customer_key, partner_key])
    return LEGACY[algorithm](joined.encode("utf-8")).hexdigest()


def compute_hmac(url: str, sender: str, customer_id: str, timestamp: str, language: str,
                 organisation_id: str, transaction_id: str, timestamp_unix: str,
                 customer_key: str, partner_key: str) -> str:
    """The HMACSHA256 MAC; raises UnicodeEncodeError for text outside ISO-8859-1."""
    message = "&".join([url, sender, customer_id, timestamp, language, organisation_id,
                        transaction_id, timestamp_unix, customer_key, partner_key])
    key = f"{customer_key}&{partner_key}"
    return hmac.new(key.encode("iso-8859-1"), message.encode("iso-8859-1"),
                    hashlib.sha256).hexdigest()


def parse_timestamp(raw: str) -> datetime | None:
    """`YYYY-MM-DD HH:MM:SS.fff` (UTC); the fraction is optional."""
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(raw.strip(), fmt)
        except ValueError:
            continue
    return None


def authenticate(s: NetvisorState, request: Request) -> None:
    """Raise `NvError` unless the request is signed as Netvisor requires."""
    h = request.headers
    missing = [name for name in REQUIRED_HEADERS if not h.get(name)]
    if missing:
        raise NvError("AUTHENTICATION_FAILED", f"Missing header {missing[0]}")
    algorithm = h[H + "authentication-machashcalculationalgorithm"].strip().upper()
    if algorithm != HMAC_ALGORITHM and algorithm not in LEGACY:
        raise NvError("AUTHENTICATION_FAILED", "MAC hash calculation algorithm must be "
                      "HMACSHA256")
    if algorithm in LEGACY and not s.settings["accept_legacy_mac"]:
        raise NvError("AUTHENTICATION_FAILED", f"MAC hash calculation algorithm {algorithm} "
                      "is no longer supported; use HMACSHA256")
    language = h[H + "interface-language"]
    if language.upper() not in ("FI", "EN", "SE"):
        raise NvError("AUTHENTICATION_FAILED", "Interface language must be FI, EN or SE")
    if (h[H + "authentication-customerid"] != s.customer_id
            or h[H + "authentication-partnerid"] != s.partner_id
            or h[H + "organisation-id"] != s.organisation_id):
        raise NvError("AUTHENTICATION_FAILED", "Integration keys are not valid or the "
                      "organisation is not found")
    ts_raw = h[H + "authentication-timestamp"]
    ts = parse_timestamp(ts_raw)
    if ts is None:
        raise NvError("AUTHENTICATION_FAILED", "Timestamp is not in format "
                      "YYYY-MM-DD HH:MM:SS.fff")
    if algorithm == HMAC_ALGORITHM:
        _check_hmac(s, request, ts_raw, language)
    else:
        _check_legacy(s, request, algorithm, ts, ts_raw, language)


def _check_hmac(s: NetvisorState, request: Request, ts_raw: str, language: str) -> None:
    h = request.headers
    unix_raw = h.get(H + "authentication-timestampunix", "").strip()
    if not unix_raw.isdigit():
        raise NvError("AUTHENTICATION_FAILED", "Missing or invalid header "
                      "X-Netvisor-Authentication-TimestampUnix")
    skew = abs(s.clock().timestamp() - int(unix_raw))
    if skew > float(s.settings["timestamp_tolerance"]):
        raise NvError("AUTHENTICATION_FAILED", "TimestampUnix is too old or in the future")
    try:
        expected = [compute_hmac(url, h[H + "authentication-sender"], s.customer_id, ts_raw,
                                 language, s.organisation_id,
                                 h[H + "authentication-transactionid"], unix_raw,
                                 s.customer_key, s.partner_key) for url in _urls(request)]
    except UnicodeEncodeError:
        raise NvError("AUTHENTICATION_FAILED", "Header values must be ISO-8859-1") from None
    if not _matches(h[H + "authentication-mac"], expected):
        raise NvError("AUTHENTICATION_FAILED", "Integration keys are not valid (MAC does "
                      "not match)")


def _check_legacy(s: NetvisorState, request: Request, algorithm: str, ts: datetime,
                  ts_raw: str, language: str) -> None:
    """SHA256 or MD5: the Timestamp window, the MAC, then a TransactionId never seen
    (a request that passed the MAC consumes its id even if it then fails)."""
    h = request.headers
    skew = abs((s.clock().astimezone(UTC).replace(tzinfo=None) - ts).total_seconds())
    if skew > float(s.settings["timestamp_tolerance"]):
        raise NvError("AUTHENTICATION_FAILED", "Timestamp is too old or in the future")
    txid = h[H + "authentication-transactionid"]
    expected = [compute_mac(url, h[H + "authentication-sender"], s.customer_id, ts_raw,
                            language, s.organisation_id, txid, s.customer_key,
                            s.partner_key, algorithm) for url in _urls(request)]
    if not _matches(h[H + "authentication-mac"], expected):
        raise NvError("AUTHENTICATION_FAILED", "Integration keys are not valid (MAC does "
                      "not match)")
    with s.lock:
        if txid in s.transaction_ids:
            raise NvError("REQUEST_NOT_UNIQUE", f"TransactionId {txid} has already been used")
        s.transaction_ids.add(txid)


def _urls(request: Request) -> list[str]:
    """The URL as sent, and (for robustness) its percent-decoded form."""
    url = request_url(request)
    return list(dict.fromkeys((url, unquote(url))))


def _matches(given: str, expected: list[str]) -> bool:
    mac = given.strip().lower()
    return any(hmac.compare_digest(mac, e) for e in expected)
