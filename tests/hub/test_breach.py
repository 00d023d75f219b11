"""The breach-impact query on SQLite and PostgreSQL, its command, and its deadline."""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from importlib import resources
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from connectors import registry
from hub import audit, breach
from hub.cli import app
from hub.domain import SourceRecord
from hub.index import IndexWriter, recluster
from hub.models import AuditEventRow
from hub.settings import Settings
from hub.store import open_store
from tests.conftest import TEST_SECRET

HELSINKI = ZoneInfo("Europe/Helsinki")
SYNCED = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
DETECTED = datetime(2026, 12, 2, 9, 0, tzinfo=HELSINKI)
DECLARED = breach.declared_systems(("pipedrive", "mailchimp", "typeform", "netvisor"),
                                   ("paper_archive",))


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=HELSINKI)


# Pipedrive holds Aino twice (one person), Mikko, a switchboard-only record nobody has
# clustered into anyone else, and a record gone since the last sync. Mailchimp holds
# Aino too: a Pipedrive breach must not count her Mailchimp record.
PIPEDRIVE = [
    SourceRecord("pipedrive", "1", ("aino.virtanen@example.fi",), ("040 123 4567",),
                 "Aino Virtanen", local(2026, 11, 1, 0, 10)),
    SourceRecord("pipedrive", "2", ("Aino.Virtanen@example.fi",), (), "Aino Virtanen",
                 local(2026, 10, 31, 23, 30)),
    SourceRecord("pipedrive", "3", ("mikko.hakkinen@yritys.fi",), (), "Mikko Häkkinen",
                 None, categories=("diet", "health")),
    SourceRecord("pipedrive", "4", ("liisa@example.fi",), (), "Liisa Laine",
                 local(2026, 11, 20, 12, 0)),
]
MAILCHIMP = [SourceRecord("mailchimp", "L1:c1", ("aino.virtanen@example.fi",), (), None,
                          local(2026, 11, 5, 8, 0))]


def build_index(store, *, gone: tuple[str, ...] = ("4",)) -> None:
    """The index as two syncs and a re-cluster leave it; `gone` left out of a later sync."""
    with store.session() as session:
        for system, records in (("pipedrive", PIPEDRIVE), ("mailchimp", MAILCHIMP)):
            writer = IndexWriter(session, system, full=True, now=SYNCED)
            writer.add(records)
            writer.finish()
        if gone:
            writer = IndexWriter(session, "pipedrive", full=True, now=SYNCED)
            writer.add(r for r in PIPEDRIVE if r.record_id not in gone)
            writer.finish()
        recluster(session, now=SYNCED)


def query(store, system="pipedrive", *, since=None, reveal=False, actor="dpo"):
    with store.session() as session:
        return breach.impact(session, system, since=since, detected_at=DETECTED,
                             declared=DECLARED, timezone="Europe/Helsinki", actor=actor,
                             reveal=reveal)


def breach_events(store) -> list[AuditEventRow]:
    with store.session() as session:
        rows = session.execute(select(AuditEventRow).where(
            AuditEventRow.action == "breach.queried").order_by(AuditEventRow.seq)).scalars()
        return list(rows)


def test_counts_only_the_systems_live_records_and_their_distinct_identifiers(store):
    build_index(store)
    found = query(store)
    assert (found.records, found.persons) == (3, 2)
    # Aino's address is on two records but is one address exposed.
    assert found.identifiers == {"email": 2, "phone": 1}
    # Flags, counted per category; never the words that raised them.
    assert found.categories == {"diet": 1, "health": 1}
    assert found.counts()["categories"] == {"diet": 1, "health": 1}
    assert found.indexed_at == SYNCED
    assert not found.by_hand
    aino = next(p for p in found.people if "1" in p.record_ids)
    assert aino.record_ids == ("1", "2") and aino.person_id is not None


def test_a_record_not_clustered_yet_counts_as_a_person_of_its_own(store):
    with store.session() as session:
        writer = IndexWriter(session, "pipedrive", full=True, now=SYNCED)
        writer.add(PIPEDRIVE[:2])
        writer.finish()
    found = query(store)
    # Before the nightly re-cluster nobody knows the two records are one Aino: two
    # persons is the count that does not understate.
    assert (found.records, found.persons) == (2, 2)
    assert [p.person_id for p in found.people] == [None, None]
    assert found.identifiers == {"email": 1, "phone": 1}


def test_since_keeps_what_changed_from_that_local_day_on_and_what_has_no_date(store):
    build_index(store)
    found = query(store, since=date(2026, 11, 1))
    # Record 1 changed at 00:10 on 1 November in Helsinki (22:10 UTC the day before):
    # in. Record 2 at 23:30 on 31 October: out. Record 3 has no update time: kept, and
    # said so.
    assert sorted(r for p in found.people for r in p.record_ids) == ["1", "3"]
    assert (found.records, found.undated, found.persons) == (2, 1, 2)
    assert query(store, since=date(2026, 11, 2)).records == 1


def test_persons_are_masked_unless_revealed(store):
    build_index(store)
    masked = query(store)
    shown = repr(masked.people)
    for plain in ("aino.virtanen@", "mikko.hakkinen@", "123 4567", "1234567", "Aino", "Mikko"):
        assert plain not in shown
    assert {i for p in masked.people for i in p.identifiers} == {
        "a***@example.fi", "m***@yritys.fi", "+358*******67"}
    assert {p.name for p in masked.people} == {"A*** V***", "M*** H***"}

    revealed = query(store, reveal=True)
    assert {i for p in revealed.people for i in p.identifiers} == {
        "aino.virtanen@example.fi", "mikko.hakkinen@yritys.fi", "+358401234567"}
    assert {p.name for p in revealed.people} == {"Aino Virtanen", "Mikko Häkkinen"}


def test_every_query_is_audited_with_who_what_and_whether_plaintext_was_shown(store):
    build_index(store)
    query(store, actor="liisa")
    query(store, since=date(2026, 11, 1), reveal=True, actor="dpo")
    first, second = breach_events(store)
    assert first.actor == "liisa" and second.actor == "dpo"
    payload = json.loads(second.payload)
    assert payload["system"] == "pipedrive" and payload["since"] == "2026-11-01"
    assert payload["revealed"] is True and json.loads(first.payload)["revealed"] is False
    assert payload["records"] == 2 and payload["persons"] == 2
    assert payload["notify_by"] == "2026-12-05T09:00+02:00"
    # Counts only: nothing of the people themselves, masked or not.
    for text in (first.payload, second.payload):
        assert "aino" not in text.lower() and "***" not in text
    with store.session() as session:
        assert audit.verify(session).ok


def test_unknown_system_names_the_declared_ones_and_is_not_audited(store):
    with pytest.raises(breach.UnknownSystem) as refused:
        query(store, "pipedriv")
    assert str(refused.value) == ("unknown system 'pipedriv'; declared systems: mailchimp, "
                                  "netvisor, paper_archive, pipedrive, typeform")
    assert breach_events(store) == []


def test_a_manual_system_is_known_and_says_the_index_holds_none_of_it(store):
    build_index(store)
    found = query(store, "paper_archive")
    assert found.by_hand and (found.records, found.persons) == (0, 0)


@pytest.mark.parametrize(("detected", "deadline"), [
    # Spring forward (29 March 2026, 03:00 EET -> 04:00 EEST): 72 hours end an hour
    # later on the clock.
    (local(2026, 3, 27, 10, 0), local(2026, 3, 30, 11, 0)),
    # Fall back (25 October 2026, 04:00 EEST -> 03:00 EET): an hour earlier.
    (local(2026, 10, 23, 12, 0), local(2026, 10, 26, 11, 0)),
    (local(2026, 12, 2, 9, 0), local(2026, 12, 5, 9, 0)),
])
def test_deadline_is_72_elapsed_hours_on_the_controllers_clock(detected, deadline):
    due = breach.notify_by(detected, "Europe/Helsinki")
    # In UTC: Python subtracts two times of one ZoneInfo by their wall clocks, which is
    # the very mistake (detected + 72h on the wall clock) this guards against.
    assert (due.astimezone(UTC) - detected.astimezone(UTC)).total_seconds() == 72 * 3600
    assert (due.hour, due.utcoffset()) == (deadline.hour, deadline.utcoffset())
    # Whatever zone the detection time was given in, the deadline reads in Helsinki's.
    assert breach.notify_by(detected.astimezone(UTC), "Europe/Helsinki").hour == deadline.hour


def test_detection_time_is_read_on_the_controllers_clock():
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    assert breach.parse_detected("2026-03-27 10:00", "Europe/Helsinki", now=now) == \
        datetime(2026, 3, 27, 8, 0, tzinfo=UTC)
    # 03:30 on 25 October 2026 happened twice in Helsinki: the earlier, the earlier deadline.
    assert breach.parse_detected("2026-10-25 03:30", "Europe/Helsinki", now=now) == \
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="skipped"):
        breach.parse_detected("2026-03-29 03:30", "Europe/Helsinki", now=now)
    with pytest.raises(ValueError, match="in the future"):
        breach.parse_detected("2026-12-02 14:30", "Europe/Helsinki", now=now)
    with pytest.raises(ValueError, match="YYYY-MM-DD HH:MM"):
        breach.parse_detected("2.12.2026 10:00", "Europe/Helsinki", now=now)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        breach.parse_since("1.11.2026")


# --- the command ---------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """`hub` in-process in an empty directory, on a SQLite index built as above."""
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("HUB_")]:
        monkeypatch.delenv(key)
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    opened = open_store(Settings(_env_file=None, database_url=url, secret=TEST_SECRET))
    build_index(opened)
    runner = CliRunner()

    def invoke(*args: str, **env: str):
        return runner.invoke(app, list(args), env={
            "HUB_DATABASE_URL": url, "HUB_SECRET": TEST_SECRET, "HUB_OPERATOR": "dpo", **env})

    invoke.store = opened  # type: ignore[attr-defined]
    yield invoke
    opened.close()


def test_command_prints_counts_deadline_and_masked_persons(cli):
    result = cli("breach", "pipedrive", "--detected", "2026-03-27 10:00")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "notify by     2026-03-30 11:00 EEST" in out and "PASSED" in out
    assert "records       3" in out and "persons       2" in out
    assert "identifiers   email 2, phone 1" in out
    assert "categories    diet 1, health 1 (special categories, art. 9)" in out
    assert "a***@example.fi, +358*******67" in out and "A*** V***" in out
    assert "aino.virtanen" not in out.lower() and "Aino" not in out
    event, = breach_events(cli.store)
    assert event.actor == "dpo" and json.loads(event.payload)["revealed"] is False


def test_reveal_prints_plaintext_and_the_audit_trail_says_who_saw_it(cli):
    result = cli("breach", "pipedrive", "--since", "2026-11-01", "--reveal",
                 "--operator", "tuula")
    assert result.exit_code == 0, result.output
    assert "aino.virtanen@example.fi, +358401234567" in result.stdout
    assert "Aino Virtanen" in result.stdout and "records       2 (1 without" in result.stdout
    event, = breach_events(cli.store)
    payload = json.loads(event.payload)
    assert event.actor == "tuula" and payload["revealed"] is True
    assert payload["system"] == "pipedrive" and payload["since"] == "2026-11-01"


@pytest.mark.parametrize(("args", "says"), [
    (("--since", "1.11.2026"), "--since is a date as YYYY-MM-DD"),
    (("--detected", "2026-12-01"), '--detected is a local time as "YYYY-MM-DD HH:MM"'),
    (("--detected", "2026-03-29 03:15"), "the clocks skipped that hour"),
])
def test_a_bad_date_is_one_line_exit_1_and_nothing_audited(cli, args, says):
    result = cli("breach", "pipedrive", *args)
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert says in result.stderr and "Traceback" not in result.output
    assert breach_events(cli.store) == []


def test_unknown_system_is_exit_1_naming_the_declared_ones(cli):
    result = cli("breach", "pipedriv")
    assert result.exit_code == 1
    assert f"declared systems: {', '.join(registry.available())}" in result.stderr
    assert breach_events(cli.store) == []


def test_a_manual_system_from_the_policy_is_known_to_the_command(cli, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text(resources.files("hub").joinpath("default_policy.toml").read_text("utf-8")
                      + '\n[systems.paper_archive]\nkind = "manual"\ntitle = "Paper contracts"\n'
                      'instructions = "Look in the cabinet."\n', "utf-8")
    result = cli("breach", "paper_archive", HUB_POLICY_FILE=str(policy))
    assert result.exit_code == 0, result.output
    assert "paper_archive is kept by hand" in result.stdout
    assert "records       0" in result.stdout
