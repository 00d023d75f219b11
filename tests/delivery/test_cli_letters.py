"""`hub request ...` queues the subject's letters; `hub letters list/send/retry`."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from hub.cli import app
from tests.conftest import TEST_SECRET
from tests.delivery.conftest import SENDER

EMAIL = "aino.virtanen@example.fi"


@pytest.fixture
def cli(tmp_path, monkeypatch, smtp):
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("HUB_")]:
        monkeypatch.delenv(key)
    env = {"HUB_DATABASE_URL": f"sqlite:///{tmp_path / 'hub.db'}", "HUB_SECRET": TEST_SECRET,
           "HUB_HOME": str(tmp_path / ".hub"), "HUB_SMTP_HOST": "127.0.0.1",
           "HUB_SMTP_PORT": str(smtp.port), "HUB_SMTP_SECURITY": "none",
           "HUB_MAIL_FROM": SENDER, "HUB_DIGEST_HOUR": "23"}
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), env=env)

    return invoke


def test_each_step_queues_its_letter_and_send_delivers_them(cli, smtp):
    filed = cli("request", "new", "erasure", "--email", EMAIL, "--name", "Aino Virtanen",
                "--language", "sv")
    assert filed.exit_code == 0, filed.output
    rid = filed.stdout.split()[0]
    assert "letter queued: acknowledgement by email to a***@example.fi" in filed.stdout
    asked = cli("request", "ask-identity", rid, "--ask", "ditt kundnummer")
    assert "letter queued: identity by email" in asked.stdout
    extended = cli("request", "extend", rid, "--reason", "många system")
    assert "letter queued: extension" in extended.stdout
    rejected = cli("request", "reject", rid, "--reason", "identiteten kunde inte bekräftas")
    assert "letter queued: refusal by email to a***@example.fi" in rejected.stdout

    listed = cli("letters", "list", rid)
    assert listed.exit_code == 0 and listed.stdout.count("queued") == 4
    assert EMAIL not in listed.stdout and "a***@example.fi" in listed.stdout

    shown = cli("letters", "show", "4")
    assert shown.exit_code == 0, shown.output
    assert f"to        {EMAIL}" in shown.stdout and "Skäl: identiteten kunde" in shown.stdout

    sent = cli("letters", "send")
    assert sent.exit_code == 0, sent.output
    assert "0 queued for ops, 4 sent, 0 failed" in sent.stdout
    shown = cli("letters", "show", "4").stdout
    assert "to        a***@example.fi" in shown and "no longer kept" in shown
    assert EMAIL not in shown and "Skäl" not in shown
    subjects = [m["Subject"] for m in smtp.inbox.to(EMAIL)]
    assert subjects == [f"Din begäran {rid} har tagits emot",
                        f"Din begäran {rid}: kontroll av identitet",
                        f"Din begäran {rid}: svarstiden förlängs",
                        f"Din begäran {rid}: vi kan inte tillmötesgå begäran"]
    refusal = smtp.inbox.messages[-1].get_body(preferencelist=("plain",)).get_content()
    assert "Bästa Aino Virtanen" in refusal  # the name read before reject scrubbed it
    assert "Skäl: identiteten kunde inte bekräftas" in refusal
    assert cli("letters", "list", rid).stdout.count("email sent ") == 4
    again = cli("request", "ask-identity", rid)
    assert again.exit_code == 1 and "rejected" in again.output


def test_a_failed_send_exits_non_zero_and_is_retried_on_request(cli, smtp):
    rid = cli("request", "new", "access", "--email", EMAIL).stdout.split()[0]
    smtp.inbox.refuse = "550 5.1.1 mailbox unavailable"
    failed = cli("letters", "send")
    assert failed.exit_code == 3 and "letters not delivered: 1" in failed.output
    listed = cli("letters", "list", rid).stdout
    assert "failed" in listed and "550" in listed and "next try" not in listed
    smtp.inbox.refuse = None
    assert "queued again: 1" in cli("letters", "retry", "1").stdout
    assert cli("letters", "send").exit_code == 0
    assert len(smtp.inbox.messages) == 1


def test_a_letter_request_with_an_address_is_answered_by_post(cli, smtp, tmp_path):
    filed = cli("request", "new", "access", "--email", EMAIL, "--name", "Aino Virtanen",
                "--channel", "letter", "--address", "Esimerkkikatu 1 A 2 / 00100 Helsinki")
    assert "letter queued: acknowledgement by post to post: A*** V***" in filed.stdout
    assert cli("letters", "send").exit_code == 0
    assert smtp.inbox.messages == []
    assert len(list((tmp_path / ".hub" / "letters").rglob("*.pdf"))) == 1
