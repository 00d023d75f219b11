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
:func:`scrub`, which masks e-mail addresses, long digit runs and names, and keeps
it short; the rule is in its docstring.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from hub.identity import mask_email, mask_phone

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"\+?\d[\d \-]{6,}\d")
_MAX_DETAIL = 300
MASK = "***"
# A quoted value. A single quote opens only after a non-word character and closes only
# before one, so the apostrophes of "can't" and "member's" quote nothing.
_QUOTED = re.compile(r"(?<!\w)'([^']+)'(?!\w)|\"([^\"]+)\"|‘([^’]+)’|“([^”]+)”|«([^»]+)»"
                     r"|`([^`]+)`")
# A word: letters (any script: ä, ö, å), joined by hyphens or apostrophes (Anna-Liisa).
_WORD = re.compile(r"[^\W\d_][\w'’\-]*")
_WORD_PARTS = re.compile(r"[-'’]")
# Words vendors use in their error titles and messages (lower case). A capitalised
# word in a run of capitalised words is kept only if it is one of these.
_VENDOR_WORDS_TEXT = """
a about access account accounts activities activity address after again all allowed
already an and another api archive archived are as at audience audiences auth
authentication authorization bad batch batches be been body by can cannot check
cleaned client code company compliance conflict connection contact contacts content
could count created customer customers data datacenter date deal deals delete deleted
denied detail developers disabled do does duplicate email emails encoding entity error
errors event events exceeded exists expired failed false field fields file for forbidden
form forms forgotten found from gateway get gone has have header headers hello http
https id in info internal invalid invoice invoices is it item items its json key large
lead leads limit list lists mailchimp maintenance many may member members message
method missing must name netvisor new no not note notes null of offset ok on only or
organisation organization other out owner page payload pending permanent permanently
permission person persons pipedrive plan please post precondition product products
protocol proxy put query rate read real record records redirect refused request
requests required reset resource response responses retry scope search see server
service should slow state status subscribed success support tag tags temporarily
temporary term the these this timed timeout to token too transactional true try type
typeform unauthorized unavailable unexpected unique unknown unprocessable unsubscribed
update updated upstream uri url use user users valid value values visma was we were
will with would write wrong you your
"""
_VENDOR_WORDS = frozenset(_VENDOR_WORDS_TEXT.split())


def scrub_identifiers(text: object) -> str:
    """Mask e-mails and phone-like digit runs; keep it short. For our own text (a URL
    in a log line); vendor text goes through :func:`scrub`."""
    # Decode percent-escapes first: a URL in a vendor message can carry
    # `aino.virtanen%40example.fi`, which the pattern would otherwise miss.
    value = " ".join(unquote(str(text)).split())
    value = _EMAIL.sub(lambda m: mask_email(m.group(0)), value)
    value = _PHONE.sub(lambda m: mask_phone(m.group(0).replace(" ", "").replace("-", "")), value)
    return _bounded(value)


def scrub(text: object) -> str:
    """Vendor (or any error) text made fit for logs, the ledger and Dagster: no
    e-mail, phone or name of a person, at most 300 characters.

    Vendors echo what they were sent ("Person 'Aino Virtanen' …", found in Dagster's
    storage), and no list of names can be complete, so the rule is about shape:

    1. e-mail addresses and phone-like digit runs are masked (``a***@example.fi``);
    2. a quoted value ('…', "…", ‘…’, “…”, «…», `…`) becomes ``'***'`` unless it is a
       single code-like token: with ``_`` or a digit, or a known vendor word
       (``'first_name'``, ``'email'``);
    3. in a run of two or more capitalised words (Aino Virtanen, Mikko Häkkinen,
       Person Aino, ÖSTEN JÄRVINEN) each word is masked unless it is a known vendor
       word: titles such as "Member Exists" or "Resource Not Found" stay readable;
    4. codes stay: words with ``_`` or digits (ERR_BAD_REQUEST, AUTHENTICATION_FAILED)
       and CamelCase identifiers (MemberPage, ReadTimeout).

    What it cannot see: a lone capitalised first name outside quotes ("Aino is …"),
    or a name written in lower case outside quotes. Our vendors echo names in quotes
    or whole, which rules 2 and 3 cover; the status code and request id always stay.
    """
    value = scrub_identifiers(text)
    value = _QUOTED.sub(_mask_quoted, value)
    return _bounded(_mask_name_runs(value))


def _bounded(value: str) -> str:
    if len(value) > _MAX_DETAIL:
        value = value[: _MAX_DETAIL - 1] + "…"
    return value


def _mask_quoted(match: re.Match[str]) -> str:
    inner = next(g for g in match.groups() if g is not None)
    if _code_like(inner) or (" " not in inner and _known_word(inner)):
        return match.group(0)
    return match.group(0)[0] + MASK + match.group(0)[-1]


def _code_like(token: str) -> bool:
    return " " not in token and any(c == "_" or c.isdigit() for c in token)


def _known_word(word: str) -> bool:
    """A vendor word or a code: never a person's name."""
    if _code_like(word):
        return True
    parts = [p for p in _WORD_PARTS.split(word) if p]
    if any(p[1:] != p[1:].lower() and p != p.upper() for p in parts):
        return True  # CamelCase: an identifier (MemberPage), not a name
    return all(p.lower() in _VENDOR_WORDS for p in parts)


def _mask_name_runs(text: str) -> str:
    """Rule 3 of :func:`scrub`: unknown words in runs of capitalised words masked."""
    runs: list[list[re.Match[str]]] = []
    previous: re.Match[str] | None = None
    for match in _WORD.finditer(text):
        capitalised = match.group(0)[0].isupper()
        joined = previous is not None and not text[previous.end():match.start()].strip()
        if capitalised and joined and runs and runs[-1][-1] is previous:
            runs[-1].append(match)
        elif capitalised:
            runs.append([match])
        previous = match if capitalised else None
    masked = [m for run in runs if len(run) > 1 for m in run if not _known_word(m.group(0))]
    for match in reversed(masked):
        text = text[:match.start()] + MASK + text[match.end():]
    return text


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
