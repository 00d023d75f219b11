"""Netvisor's door to the shared HTTP layer (``connectors.http.HttpClient``)."""

from __future__ import annotations

import httpx

from connectors.http import HttpClient


class NetvisorHttp(HttpClient):
    """The shared HTTP door, except that an error status with Netvisor's XML is read.

    With standard status codes (which the connector asks for, and Netvisor is moving
    every integration to; checked 2026-12) a refusal arrives as 400, 401, 403 or 500
    *with* the usual ``ResponseStatus`` body saying why: "The customer has invoices" is
    a 400. Such an
    answer is handed to the connector to read like a 200 + FAILED; one without that
    body (a proxy's 503 page) is classified as usual.
    """

    def reads_error_body(self, response: httpx.Response) -> bool:
        return response.status_code >= 400 and b"responsestatus" in response.content.lower()
