"""One error taxonomy for every connector.

Modelled on stripe-python: one base class carrying what the vendor answered
(status code, request id, a short detail), and a handful of subclasses a caller
can act on without knowing the vendor:

- ``AuthError``        credentials missing, wrong or without permission (401/402/403)
- ``NotFound``         the object is not there (404/410); actions turn it into
                       ``Action.NOT_FOUND``, it is never a failure of a request
- ``RateLimited``      429 or a vendor throttle; ``retry_after`` seconds when known,
                       ``daily_budget_exhausted`` when retrying today is pointless
- ``VendorError``      5xx, maintenance, or a vendor job that reports FAILED
- ``BadResponse``      a body that is not what the API documents (garbage, wrong shape)
- ``ConnectionFailed`` DNS, refused, reset, timeouts: no answer at all
- ``RequestRejected``  any other 4xx (validation, method not allowed, conflicts)

Messages never carry personal data or secrets: ``detail`` passes through
:func:`scrub`, which masks e-mail addresses and long digit runs.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from hub.identity import mask_email, mask_phone

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"\+?\d[\d \-]{6,}\d")
_MAX_DETAIL = 300


def scrub(text: object) -> str:
    """Mask e-mails and phone-like digit runs in a vendor message; keep it short."""
    # Decode percent-escapes first: a URL in a vendor message can carry
    # `aino.virtanen%40example.fi`, which the pattern would otherwise miss.
    value = " ".join(unquote(str(text)).split())
    value = _EMAIL.sub(lambda m: mask_email(m.group(0)), value)
    value = _PHONE.sub(lambda m: mask_phone(m.group(0).replace(" ", "").replace("-", "")), value)
    if len(value) > _MAX_DETAIL:
        value = value[: _MAX_DETAIL - 1] + "…"
    return value


class ConnectorError(Exception):
    """Base of every error a connector raises."""

    retryable = False

    def __init__(
        self,
        system: str,
        detail: str = "",
        *,
        status_code: int | None = None,
        vendor_request_id: str | None = None,
    ) -> None:
        self.system = system
        self.detail = scrub(detail) if detail else ""
        self.status_code = status_code
        self.vendor_request_id = vendor_request_id
        super().__init__(self._message())

    def _message(self) -> str:
        parts = [f"{self.system}: {self.kind}"]
        if self.status_code is not None:
            parts.append(f"HTTP {self.status_code}")
        if self.detail:
            parts.append(self.detail)
        if self.vendor_request_id:
            parts.append(f"request id {self.vendor_request_id}")
        return " - ".join(parts)

    @property
    def kind(self) -> str:
        return type(self).__name__

    def evidence(self) -> dict[str, object]:
        """JSON-safe facts for the task's evidence (no personal data)."""
        return {
            "error": self.kind,
            "status_code": self.status_code,
            "vendor_request_id": self.vendor_request_id,
            "detail": self.detail,
        }


class AuthError(ConnectorError):
    """Credentials missing or rejected, or the account may not do this."""


class NotFound(ConnectorError):
    """The vendor says the object does not exist (or no longer does)."""


class RateLimited(ConnectorError):
    retryable = True

    def __init__(
        self,
        system: str,
        detail: str = "",
        *,
        status_code: int | None = 429,
        vendor_request_id: str | None = None,
        retry_after: float | None = None,
        daily_budget_exhausted: bool = False,
    ) -> None:
        self.retry_after = retry_after
        self.daily_budget_exhausted = daily_budget_exhausted
        super().__init__(system, detail, status_code=status_code,
                         vendor_request_id=vendor_request_id)
        if daily_budget_exhausted:
            self.retryable = False

    def evidence(self) -> dict[str, object]:
        out = super().evidence()
        out["retry_after"] = self.retry_after
        out["daily_budget_exhausted"] = self.daily_budget_exhausted
        return out


class VendorError(ConnectorError):
    """The vendor failed: 5xx, maintenance, or one of its jobs reported FAILED."""

    retryable = True


class BadResponse(ConnectorError):
    """The answer is not what the API documents: not JSON, or the wrong shape."""


class ConnectionFailed(ConnectorError):
    """No answer: DNS, refused, reset or timed out."""

    retryable = True


class RequestRejected(ConnectorError):
    """Another 4xx: the vendor refused the request as made (validation, conflict...)."""


class ConfigError(ValueError):
    """A connector setting is missing or invalid; the message names the variable."""
