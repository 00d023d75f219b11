"""Telling the ops staff: an alert per failed task and a daily digest, masked values only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dagster import (
    AssetCheckResult,
    SkipReason,
    asset,
    asset_check,
    build_sensor_context,
    instance_for_test,
    materialize,
)

from delivery import worker
from hub import ledger, outbox
from hub.domain import Identifier, IdentifierKind
from hub.ledger import RequestKind, RequestState, TaskState
from hub.settings import Settings
from pipelines import sensors
from pipelines.resources import HubResource
from tests.conftest import TEST_SECRET
from tests.delivery.conftest import OPS, SENDER

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EMAIL = "aino.virtanen@example.fi"


def failing_request(store, *, now: datetime, email: str = EMAIL) -> str:
    with store.session() as session:
        row = ledger.create_request(session, store.hasher, RequestKind.ERASURE, [
            Identifier(IdentifierKind.EMAIL, email)], name="Aino Virtanen", now=T0)
        ledger.verify(session, row.id, now=T0)
        ledger.transition(session, row, RequestState.IN_PROGRESS, now=T0)
        [task] = ledger.ensure_tasks(session, row, ["pipedrive"], now=T0)
        ledger.move_task(session, task, TaskState.RUNNING, now=now)
        ledger.move_task(session, task, TaskState.FAILED, now=now,
                         error="HTTP 503 from Pipedrive (request id pd-17)")
        return row.id


def fail_again(store, request_id: str, now: datetime) -> None:
    with store.session() as session:
        task = ledger.get_task(session, request_id, "pipedrive")
        ledger.move_task(session, task, TaskState.RUNNING, now=now)
        ledger.move_task(session, task, TaskState.FAILED, error="HTTP 503", now=now)


def plain(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def test_a_failed_task_alerts_once_per_failure_and_the_digest_once_a_day(sqlite_mail_store,
                                                                        smtp):
    store = sqlite_mail_store
    now = datetime(2026, 4, 6, 7, 30, tzinfo=UTC)  # 10:30 in Helsinki, after the 8:00 digest
    rid = failing_request(store, now=now)
    report = worker.tick(store, now=now)
    assert len(report.queued) == 2 and len(report.sent) == 2
    alert, digest = sorted(smtp.inbox.to(OPS), key=lambda m: "digest" in m["Subject"])
    assert alert["Subject"] == f"[hub] pipedrive failed for request {rid}"
    assert "Error: HTTP 503 from Pipedrive (request id pd-17)" in plain(alert)
    assert f"hub request run {rid}" in plain(alert)
    assert digest["Subject"] == "[hub] digest 2026-04-06: 1 open, 1 overdue, 1 failed"
    text = plain(digest)
    assert f"{rid} erasure in_progress, due 2026-04-02 (4 days overdue), a***@example.fi" \
        in text
    assert f"{rid} pipedrive, 1 attempts: HTTP 503 from Pipedrive" in text
    for message in (alert, digest):
        assert EMAIL not in message.as_string() and "Virtanen" not in message.as_string()

    worker.tick(store, now=now + timedelta(hours=1))  # nothing new: nothing sent
    assert len(smtp.inbox.messages) == 2
    fail_again(store, rid, now + timedelta(hours=2))
    worker.tick(store, now=now + timedelta(hours=2))
    assert len(smtp.inbox.messages) == 3  # the task failed again: told again
    worker.tick(store, now=now + timedelta(days=1))
    assert sum("digest" in m["Subject"] for m in smtp.inbox.messages) == 2  # next day's


def test_no_digest_before_its_hour_and_none_without_an_ops_address(sqlite_mail_store, smtp):
    store = sqlite_mail_store
    early = datetime(2026, 4, 6, 4, 0, tzinfo=UTC)  # 07:00 in Helsinki
    assert worker.tick(store, now=early).queued == []
    store.settings.ops_email = None
    failing_request(store, now=early)
    assert worker.tick(store, now=early + timedelta(hours=5)).queued == []
    assert smtp.inbox.messages == []


def test_letter_outbox_sensor_delivers_and_tells_dagster_nothing_personal(
        smtp, tmp_path, monkeypatch):
    hub_db = f"sqlite:///{tmp_path / 'hub.db'}"
    for key, value in {"HUB_SMTP_HOST": "127.0.0.1", "HUB_SMTP_PORT": str(smtp.port),
                       "HUB_SMTP_SECURITY": "none", "HUB_MAIL_FROM": SENDER,
                       "HUB_OPS_EMAIL": OPS, "HUB_OPS_LANGUAGE": "en",
                       "HUB_DIGEST_HOUR": "0", "HUB_SECRET": TEST_SECRET,
                       "HUB_HOME": str(tmp_path / ".hub")}.items():
        monkeypatch.setenv(key, value)
    resource = HubResource(database_url=hub_db)
    with resource.store() as store:
        rid = failing_request(store, now=datetime.now(UTC))
        smtp.inbox.refuse = "550 5.1.1 <ops@valmennus.example>: no such user"
        with instance_for_test() as instance:
            context = build_sensor_context(instance=instance, resources={"hub": resource})
            result = sensors.letter_outbox(context)
            assert isinstance(result, SkipReason)
            assert result.skip_message == "2 queued for ops, 0 sent, 2 failed"
            smtp.inbox.refuse = None
            with store.session() as session:
                outbox.retry(session, [x.id for x in outbox.failed(session)])
            result = sensors.letter_outbox(build_sensor_context(
                instance=instance, resources={"hub": resource}))
        assert result.skip_message == "0 queued for ops, 2 sent, 0 failed"
        assert "@" not in result.skip_message
    assert {m["Subject"].split(" ")[1] for m in smtp.inbox.to(OPS)} == {"pipedrive", "digest"}
    assert rid in " ".join(m["Subject"] for m in smtp.inbox.messages)


def test_the_sensor_is_in_the_code_location_and_starts_running():
    from dagster import DefaultSensorStatus

    from pipelines.definitions import defs

    sensor = defs.get_repository_def().get_sensor_def("letter_outbox")
    assert sensor.default_status == DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 30


def test_a_failed_nightly_check_is_told_once_per_run(smtp, tmp_path, monkeypatch):
    import pipelines.checks

    @asset
    def index_stand_in():
        return 1

    @asset_check(asset=index_stand_in)
    def request_deadlines_stand_in():
        return AssetCheckResult(passed=False, metadata={"overdue": "R-1 (a***@example.fi)"})

    monkeypatch.setattr(pipelines.checks, "CHECKS", [request_deadlines_stand_in])
    for key, value in {"HUB_SMTP_HOST": "127.0.0.1", "HUB_SMTP_PORT": str(smtp.port),
                       "HUB_SMTP_SECURITY": "none", "HUB_MAIL_FROM": SENDER,
                       "HUB_OPS_EMAIL": OPS, "HUB_OPS_LANGUAGE": "en",
                       "HUB_DIGEST_HOUR": "23", "HUB_SECRET": TEST_SECRET,
                       "HUB_TIMEZONE": "UTC", "HUB_HOME": str(tmp_path / ".hub")}.items():
        monkeypatch.setenv(key, value)
    resource = HubResource(database_url=f"sqlite:///{tmp_path / 'hub.db'}")
    with instance_for_test() as instance:
        result = materialize([index_stand_in, request_deadlines_stand_in], instance=instance)
        assert result.success
        keys = list(request_deadlines_stand_in.check_keys)
        assert sensors.failed_checks(instance, keys, since=0) == [
            ("request_deadlines_stand_in", result.run_id)]
        for _ in range(2):  # the next tick does not tell it again
            sensors.letter_outbox(build_sensor_context(instance=instance,
                                                       resources={"hub": resource}))
    [alert] = [m for m in smtp.inbox.to(OPS) if "nightly check" in m["Subject"]]
    assert alert["Subject"] == "[hub] nightly check request_deadlines_stand_in failed"
    assert result.run_id in plain(alert)


def test_the_ops_staff_read_finnish_unless_told_otherwise(sqlite_mail_store, smtp):
    store = sqlite_mail_store
    store.settings.ops_language = Settings.model_fields["ops_language"].default
    now = datetime(2026, 4, 6, 7, 30, tzinfo=UTC)
    rid = failing_request(store, now=now)
    worker.tick(store, now=now)
    alert, digest = sorted(smtp.inbox.to(OPS), key=lambda m: "kooste" in m["Subject"])
    assert alert["Subject"] == f"[hub] pipedrive epäonnistui pyynnössä {rid}"
    assert "Virhe: HTTP 503 from Pipedrive (request id pd-17)" in plain(alert)
    assert "Muihin järjestelmiin tämä ei vaikuta" in plain(alert)
    assert digest["Subject"] == "[hub] kooste 2026-04-06: 1 avointa, 1 myöhässä, " \
                                "1 epäonnistunutta"
    assert f"{rid} erasure in_progress, määräpäivä 2026-04-02 (4 päivää myöhässä)" \
        in plain(digest)
    assert "Epäonnistuneet tehtävät" in plain(digest)
    assert "<html lang='fi'>" in digest.get_body(preferencelist=("html",)).get_content()


def test_the_sensors_log_line_names_the_kind_of_failure_not_the_servers_answer():
    """Found in review: the sensor logged the outbox's text, masked for e-mail addresses
    only; a server's reply that echoes a name or a phone number reached Dagster's logs."""
    from delivery.worker import Report

    report = Report(failed=[7, 8], errors={
        7: "email: recipient refused: 550 Mailbox of Aino Virtanen +358401234567 is full",
        8: "slack: Slack answered HTTP 500: internal_error"})
    assert report.problems() == ["letter 7: email: recipient refused",
                                 "letter 8: slack: Slack answered HTTP 500"]
