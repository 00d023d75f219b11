"""Netvisor's door to the shared HTTP layer (``connectors.http.HttpClient``)."""

from __future__ import annotations

import httpx

from connectors.http import HttpClient


class NetvisorHttp(HttpClient):
    """The shared HTTP door, except that an error status with Netvisor's XML is read.

    With standard status codes (Netvisor's default since the end of 2025, see the
    reference's corrections) a refusal arrives as 400, 401 or 500 *with* the usual
    ``ResponseStatus`` body saying why: "The customer has invoices" is a 400. Such an
    answer is handed to the connector to read like a 200 + FAILED; one without that
    body (a proxy's 503 page) is classified as usual.
    """

    def reads_error_body(self, response: httpx.Response) -> bool:
        return response.status_code >= 400 and b"responsestatus" in response.content.lower()
