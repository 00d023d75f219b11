"""A real SMTP server on loopback (aiosmtpd) and a hub whose settings point at it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

import pytest
from aiosmtpd.controller import Controller

from hub.settings import Settings
from hub.store import Store, open_store
from tests.conftest import TEST_SECRET

SENDER = "Tietosuoja <privacy@valmennus.example>"
OPS = "ops@valmennus.example"


class Inbox:
    """The server's handler: keeps what arrived; `refuse` answers every RCPT with it."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content, policy=default))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


class SmtpServer:
    """Start, stop and start again on the same port: a server that goes down and comes back."""

    def __init__(self) -> None:
        self.inbox = Inbox()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


def hub_settings(db_url: str, home, port: int, **extra) -> Settings:
    values = dict(_env_file=None, database_url=db_url, secret=TEST_SECRET, home=home,
                  smtp_host="127.0.0.1", smtp_port=port, smtp_security="none",
                  smtp_timeout=5, mail_from=SENDER, ops_email=OPS,
                  controller_name="Valmennus Oy", controller_contact="Esimerkkikatu 1, Helsinki",
                  letter_retry_seconds=60, letter_max_attempts=3, ops_language="en")
    values.update(extra)
    return Settings(**values)


@pytest.fixture
def mail_store(db_url: str, tmp_path, smtp: SmtpServer) -> Iterator[Store]:
    """A hub store (SQLite, or PostgreSQL via db_url) that mails to the test server."""
    opened = open_store(hub_settings(db_url, tmp_path / ".hub", smtp.port))
    yield opened
    opened.close()


@pytest.fixture
def sqlite_mail_store(tmp_path, smtp: SmtpServer) -> Iterator[Store]:
    opened = open_store(hub_settings(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path / ".hub",
                                     smtp.port))
    yield opened
    opened.close()
