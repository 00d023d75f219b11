"""Netvisor request signing: HMACSHA256 (saas-apis.md Corrections, checked 2026-12).

Every request carries ten ``X-Netvisor-*`` headers. The MAC is the lower-case hex
HMAC-SHA256, keyed ``CustomerKey&PartnerKey``, of
``URL&Sender&CustomerId&Timestamp&Language&OrganisationId&TransactionId&
TimestampUnix&CustomerKey&PartnerKey``, both ISO-8859-1; the keys themselves are never
sent. The URL is the full request URL as sent, query string included. Netvisor
checks ``TimestampUnix`` against its clock (this replaces the old transaction-id
rule) and announced the removal of the plain SHA256 and MD5 MACs, so no other
algorithm is offered. ``UseHTTPResponseStatusCodes: 1`` asks for real status codes
(400, 401, 403, 500 with the XML body), the mode Netvisor is moving every
integration to; ``NetvisorHttp`` reads those bodies.

Signing is an ``httpx.Auth`` so it runs for every attempt: a retry goes out with a
new TransactionId and timestamps, and the MAC always covers the URL actually sent.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Callable, Generator
from datetime import UTC, datetime

import httpx

ALGORITHM = "HMACSHA256"
# The id Netvisor logs a request by, and support asks for: every answer is told by it.
TRANSACTION_HEADER = "X-Netvisor-Authentication-TransactionId"


def netvisor_timestamp(now: datetime | None = None) -> str:
    """UTC ``YYYY-MM-DD HH:MM:SS.fff``."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def compute_mac(url: str, sender: str, customer_id: str, timestamp: str, language: str,
                organisation_id: str, transaction_id: str, timestamp_unix: str,
                customer_key: str, partner_key: str) -> str:
    """The HMACSHA256 MAC (lower-case hex). Text outside ISO-8859-1 cannot be signed
    (UnicodeEncodeError): Netvisor encodes both key and message that way."""
    message = "&".join([url, sender, customer_id, timestamp, language, organisation_id,
                        transaction_id, timestamp_unix, customer_key, partner_key])
    key = f"{customer_key}&{partner_key}"
    return hmac.new(key.encode("iso-8859-1"), message.encode("iso-8859-1"),
                    hashlib.sha256).hexdigest()


class NetvisorAuth(httpx.Auth):
    """Adds fresh Netvisor authentication headers to each request it sees."""

    def __init__(
        self,
        *,
        sender: str,
        customer_id: str,
        partner_id: str,
        customer_key: str,
        partner_key: str,
        organisation_id: str,
        language: str = "FI",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.sender = sender
        self.customer_id = customer_id
        self.partner_id = partner_id
        self._customer_key = customer_key
        self._partner_key = partner_key
        self.organisation_id = organisation_id
        self.language = language
        self._clock = clock
        self._new_id = new_id

    def __repr__(self) -> str:  # never show the keys
        return f"NetvisorAuth(sender={self.sender!r}, customer_id={self.customer_id!r})"

    def headers_for(self, url: str) -> dict[str, str]:
        now = self._clock()
        timestamp = netvisor_timestamp(now)
        timestamp_unix = str(int(now.timestamp()))
        transaction_id = self._new_id()
        mac = compute_mac(url, self.sender, self.customer_id, timestamp, self.language,
                          self.organisation_id, transaction_id, timestamp_unix,
                          self._customer_key, self._partner_key)
        return {
            "X-Netvisor-Authentication-Sender": self.sender,
            "X-Netvisor-Authentication-CustomerId": self.customer_id,
            "X-Netvisor-Authentication-PartnerId": self.partner_id,
            "X-Netvisor-Authentication-Timestamp": timestamp,
            TRANSACTION_HEADER: transaction_id,
            "X-Netvisor-Authentication-TimestampUnix": timestamp_unix,
            "X-Netvisor-Authentication-MAC": mac,
            "X-Netvisor-Authentication-MACHashCalculationAlgorithm": ALGORITHM,
            "X-Netvisor-Authentication-UseHTTPResponseStatusCodes": "1",
            "X-Netvisor-Interface-Language": self.language,
            "X-Netvisor-Organisation-ID": self.organisation_id,
        }

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self.headers_for(str(request.url)))
        yield request
