"""The ops staff's alerts and digest in Slack too, through dagster-slack's SlackResource.

A small HTTP server on loopback stands in for Slack's Web API (HUB_SLACK_API_URL) and
keeps the chat.postMessage calls it received; a hostile one answers 500 or ok:false.
The e-mail goes whatever Slack does, and a failed post is kept, masked, in the outbox.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
from dagster import build_sensor_context, instance_for_test
from pydantic import SecretStr

from delivery import worker
from hub import alerts, outbox
from hub.outbox import Channel
from hub.store import open_store
from pipelines import sensors
from pipelines.resources import HubResource
from tests.conftest import TEST_SECRET
from tests.delivery.conftest import OPS, SENDER, hub_settings
from tests.delivery.test_ops import EMAIL, failing_request
from tests.hostile import Answer, HostileVendor, Seen

TOKEN = "xoxb-test-0000-not-a-real-token"
CHANNEL = "#tietosuoja-ops"
NOW = datetime(2026, 4, 6, 7, 30, tzinfo=UTC)  # 10:30 in Helsinki, after the 8:00 digest


def slack_ok(req: Seen) -> Answer:
    return Answer(200, {"ok": True, "channel": "C0123", "ts": "1712390000.000100"})


def posted(req: Seen) -> dict[str, str]:
    """What chat.postMessage was called with, JSON or url-encoded as the client chose."""
    if req.headers.get("content-type", "").startswith("application/json"):
        return req.json()
    return {k: v[0] for k, v in parse_qs(req.body.decode()).items()}


@pytest.fixture
def slack_store(tmp_path, smtp):
    def make(url: str):
        return open_store(hub_settings(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path / ".hub",
                                       smtp.port, slack_token=TOKEN, slack_channel=CHANNEL,
                                       slack_api_url=url))
    return make


def test_alert_and_digest_are_posted_to_the_channel_with_masked_values_only(slack_store,
                                                                           smtp):
    with HostileVendor(slack_ok) as slack:
        store = slack_store(slack.url)
        rid = failing_request(store, now=NOW)
        report = worker.tick(store, now=NOW)
        store.close()
    assert len(report.queued) == 4 and len(report.sent) == 4 and report.failed == []
    assert len(smtp.inbox.to(OPS)) == 2  # the e-mails as before
    calls = [s for s in slack.seen if s.path == "/chat.postMessage"]
    assert len(calls) == 2 and len(slack.seen) == 2
    assert {c.headers["authorization"] for c in calls} == {f"Bearer {TOKEN}"}
    alert, digest = sorted((posted(c) for c in calls), key=lambda p: "digest" in p["text"])
    assert alert["channel"] == digest["channel"] == CHANNEL
    assert alert["text"].startswith(f"*[hub] pipedrive failed for request {rid}*\n")
    assert "Error: HTTP 503 from Pipedrive (request id pd-17)" in alert["text"]
    assert digest["text"].startswith("*[hub] digest 2026-04-06: 1 open, 1 overdue, 1 failed*")
    assert "a***@example.fi" in digest["text"]
    for message in (alert, digest):
        assert EMAIL not in message["text"] and "Virtanen" not in message["text"]

    store = slack_store("http://127.0.0.1:9")  # nothing new: nothing posted again
    again = worker.tick(store, now=NOW + timedelta(hours=1))
    assert (again.queued, again.sent, again.failed) == ([], [], [])
    store.close()


@pytest.mark.parametrize("answer, kept, failed_posts", [
    # Slack down: the pass stops posting after the first failure (the other waits)
    (Answer(500, "<html>Internal Server Error</html>"), "Slack answered HTTP 500", 1),
    # this message refused: the next is still tried, and refused too
    (Answer(200, {"ok": False, "error": "channel_not_found"}),
     "Slack answered HTTP 200: channel_not_found", 2),
])
def test_slack_refusing_keeps_the_failure_visible_and_the_email_still_goes(
        slack_store, smtp, answer, kept, failed_posts):
    with HostileVendor(lambda req: answer) as slack:
        store = slack_store(slack.url)
        failing_request(store, now=NOW)
        report = worker.tick(store, now=NOW)
    assert len(report.sent) == 2 and len(smtp.inbox.to(OPS)) == 2
    assert len(report.failed) == failed_posts
    assert all("slack: SlackRefused" in p for p in report.problems())
    with store.session() as session:
        failed = outbox.failed(session)
        assert {x.channel for x in failed} == {Channel.SLACK.value}
        assert all(kept in x.last_error for x in failed)
        assert all(TOKEN not in (x.last_error or "") for x in failed)
        assert all(x.next_attempt_at is not None for x in failed)  # retried later
    store.close()


def test_the_sensor_logs_a_slack_failure_without_the_token(smtp, tmp_path, monkeypatch,
                                                           capfd):
    for key, value in {"HUB_SMTP_HOST": "127.0.0.1", "HUB_SMTP_PORT": str(smtp.port),
                       "HUB_SMTP_SECURITY": "none", "HUB_MAIL_FROM": SENDER,
                       "HUB_OPS_EMAIL": OPS, "HUB_OPS_LANGUAGE": "en",
                       "HUB_DIGEST_HOUR": "0", "HUB_SECRET": TEST_SECRET,
                       "HUB_SLACK_TOKEN": TOKEN, "HUB_SLACK_CHANNEL": CHANNEL,
                       "HUB_HOME": str(tmp_path / ".hub")}.items():
        monkeypatch.setenv(key, value)
    with HostileVendor(lambda req: Answer(200, {"ok": False, "error": "invalid_auth"})) as slack:
        monkeypatch.setenv("HUB_SLACK_API_URL", slack.url)
        resource = HubResource(database_url=f"sqlite:///{tmp_path / 'hub.db'}")
        with resource.store() as store:
            failing_request(store, now=datetime.now(UTC))
        with instance_for_test() as instance:
            result = sensors.letter_outbox(build_sensor_context(
                instance=instance, resources={"hub": resource}))
    assert result.skip_message.endswith("2 sent, 2 failed")
    logged = capfd.readouterr().err  # Dagster's sensor log writes to stderr
    assert "letter 2: slack: SlackRefused; letter 4: slack: SlackRefused" in logged
    assert TOKEN not in logged and EMAIL not in logged
    assert len(smtp.inbox.to(OPS)) == 2


def test_without_a_channel_nothing_goes_to_slack(sqlite_mail_store, smtp):
    store = sqlite_mail_store
    store.settings.slack_token = SecretStr(TOKEN)
    failing_request(store, now=NOW)
    report = worker.tick(store, now=NOW)
    with store.session() as session:
        assert {x.channel for x in outbox.letters_of(session)} == {Channel.EMAIL.value}
    assert len(report.sent) == 2


def test_a_failed_nightly_check_is_posted_too(slack_store, smtp):
    with HostileVendor(slack_ok) as slack:
        store = slack_store(slack.url)
        with store.session() as session:
            queued = alerts.queue_check_alert(session, store.hasher, store.settings,
                                              check="suppressed_absent", run_id="run-7")
        worker.deliver_due(store, now=NOW)
        store.close()
    assert len(queued) == 2  # one e-mail, one Slack message
    [call] = [posted(s) for s in slack.seen]
    assert call["text"].startswith("*[hub] nightly check suppressed_absent failed*")
    assert "run-7" in call["text"]
