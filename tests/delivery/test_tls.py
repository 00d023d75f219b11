"""STARTTLS against a real server that requires it: the certificate is verified, and
plain text is never a fall-back."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from delivery import worker
from hub import ledger, letters, outbox
from hub.domain import Identifier, IdentifierKind
from hub.ledger import RequestKind
from hub.store import open_store
from tests.delivery.conftest import SmtpServer, hub_settings

EMAIL = "aino.virtanen@example.fi"


@pytest.fixture
def certificate(tmp_path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (openssl from the OS)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


@pytest.fixture
def tls_smtp(certificate) -> Iterator[SmtpServer]:
    server = SmtpServer()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)

    def start() -> None:
        server.controller = Controller(server.inbox, hostname="127.0.0.1", port=server.port,
                                       tls_context=context, require_starttls=True)
        server.controller.start()

    server.start = start  # type: ignore[method-assign]
    server.start()
    yield server
    server.stop()


def deliver_one(tmp_path, port: int, **settings) -> tuple[str, str | None]:
    store = open_store(hub_settings(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path / ".hub",
                                    port, **settings))
    try:
        with store.session() as session:
            row = ledger.create_request(session, store.hasher, RequestKind.ACCESS,
                                        [Identifier(IdentifierKind.EMAIL, EMAIL)])
            letters.queue_for(session, row, letters.Event.RECEIVED, settings=store.settings,
                              hasher=store.hasher)
        worker.deliver_due(store)
        with store.session() as session:
            [letter] = outbox.letters_of(session)
            return letter.state, letter.last_error
    finally:
        store.close()


def test_starttls_with_a_verified_certificate_is_sent(tmp_path, tls_smtp, certificate):
    state, error = deliver_one(tmp_path, tls_smtp.port, smtp_security="starttls",
                               smtp_ca_file=certificate[0])
    assert (state, error) == ("sent", None)
    [message] = tls_smtp.inbox.messages
    assert message["To"] == EMAIL


def test_an_unverifiable_certificate_is_refused(tmp_path, tls_smtp):
    state, error = deliver_one(tmp_path, tls_smtp.port, smtp_security="starttls")
    assert state == "failed" and "CERTIFICATE_VERIFY_FAILED" in error
    assert tls_smtp.inbox.messages == []


def test_a_server_requiring_tls_refuses_plain_text(tmp_path, tls_smtp):
    state, error = deliver_one(tmp_path, tls_smtp.port, smtp_security="none")
    assert state == "failed" and "530" in error
    assert tls_smtp.inbox.messages == []

