"""Sending one e-mail over SMTP, as the settings say (HUB_SMTP_*).

STARTTLS (port 587) and implicit TLS (465) verify the server's certificate with the
system's trust store (or HUB_SMTP_CA_FILE, for a relay with an internal CA); a server
that does not offer STARTTLS when it was asked for is an error, never a silent
fall-back to plain text. `none` is for a relay on the same host. Every connection has
a timeout, so a server that accepts and never answers fails the letter instead of
hanging the sensor.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from hub.settings import Settings, SmtpSecurity


class Transport(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Hand the message to the server; raise on any refusal."""


class NotConfigured(RuntimeError):
    """A setting e-mail needs is missing; the message names it."""


@dataclass(frozen=True)
class SmtpTransport:
    host: str
    port: int
    security: SmtpSecurity
    user: str | None
    password: str | None
    timeout: float
    ca_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpTransport:
        if not settings.smtp_host:
            raise NotConfigured("HUB_SMTP_HOST is not set: e-mail cannot be sent")
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return cls(settings.smtp_host, settings.smtp_port, settings.smtp_security,
                   settings.smtp_user, password, settings.smtp_timeout, settings.smtp_ca_file)

    def send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.security == SmtpSecurity.SSL:
            client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                                    context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with client:
            if self.security == SmtpSecurity.STARTTLS:
                client.starttls(context=context)
            if self.user:
                client.login(self.user, self.password or "")
            client.send_message(message)


def describe(exc: BaseException) -> str:
    """One line for the outbox: the server's code and answer, or what went wrong."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [f"{code} {reply.decode(errors='replace')}"
                 for code, reply in exc.recipients.values()]
        return "recipient refused: " + "; ".join(codes)
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = exc.smtp_error.decode(errors="replace") if isinstance(
            exc.smtp_error, bytes) else str(exc.smtp_error)
        return f"{type(exc).__name__}: {exc.smtp_code} {reply}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
