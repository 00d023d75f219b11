"""Typeform connector against the sandbox over real HTTP; every effect checked through
the emulator's /__sandbox/ inspection API, then the same under fault injection."""

from __future__ import annotations

import pytest

from connectors.errors import AuthError, ConfigError
from connectors.http import TokenBucket
from connectors.typeform import TypeformConnector
from hub.domain import Action, Corrections, Identifier, IdentifierKind
from hub.policy import load_policy

AINO = "aino.virtanen@example.fi"
MIKKO = "mikko.hakkinen@example.fi"
JUSSI = "jussi.lindstrom@example.fi"
POLICY = load_policy().for_system("typeform")


def email(value: str) -> Identifier:
    return Identifier(IdentifierKind.EMAIL, value)


@pytest.fixture
def live(fresh_vendor, monkeypatch):
    inspector, env = fresh_vendor("typeform")
    # Short asynchronous delays and poll interval: the connector still has to poll.
    inspector.settings(delete_delay=0.1, rate_limit_per_second=0)
    monkeypatch.setenv("TYPEFORM_DELETE_POLL_INTERVAL", "0.05")
    monkeypatch.setenv("TYPEFORM_DELETE_MAX_POLLS", "400")
    return inspector, env


@pytest.fixture
def tf_vendor(live):
    return live[0]


@pytest.fixture
def tf(live, fast_retry):
    # The emulator's own 2 req/s limit is off here (one test below keeps it on), so
    # the client-side bucket can be generous and the suite quick.
    with TypeformConnector.from_env(retry=fast_retry, limiter=TokenBucket(200, burst=20)
                                    ) as conn:
        yield conn


def active(tf_vendor, mail):
    return [r for r in tf_vendor.find(email=mail) if r["state"] == "active"]


def test_wrong_token_is_an_auth_error(live, fast_retry, monkeypatch):
    monkeypatch.setenv("TYPEFORM_TOKEN", "tfp_wrong")
    with TypeformConnector.from_env(retry=fast_retry) as conn, pytest.raises(AuthError):
        conn.check()


def test_sync_streams_people_and_an_incremental_pass_reads_only_newer(tf, tf_vendor):
    pages = list(tf.sync(None))
    records = [r for p in pages for r in p.records]
    emails = {e.lower() for r in records for e in r.emails}
    assert {AINO, MIKKO, JUSSI} <= emails
    assert all(r.record_id.count(":") == 1 and r.updated_at for r in records)
    aino = [r for r in records if AINO in (e.lower() for e in r.emails)]
    assert any(r.display_name == "Aino Virtanen" for r in aino)  # from the name questions
    cursor = pages[-1].cursor
    assert cursor
    again = [r for p in tf.sync(cursor) for r in p.records]
    assert len(again) < len(records) / 4


def test_find_and_export(tf, tf_vendor):
    refs = tf.find([email(AINO), Identifier(IdentifierKind.PHONE, "+358401234567")])
    expected = {r["id"] for r in active(tf_vendor, AINO)}
    assert {r.record_id.split(":", 1)[1] for r in refs} >= expected
    assert expected
    before = tf_vendor.count("/forms/{form_id}/responses")
    definitions = tf_vendor.count("/forms/{form_id}")
    assert definitions  # the lookup read the forms with hits, for their name questions
    export = tf.export(refs)
    assert sum(len(s.items) for s in export.sections) == len(refs)
    # the responses the lookup read are exported as read, with the definitions it read
    # (each read waits for Typeform's pace of 2 per second)
    assert tf_vendor.count("/forms/{form_id}/responses") == before
    assert tf_vendor.count("/forms/{form_id}") == definitions
    answers = [a for s in export.sections for item in s.items for a in item["answers"]]
    assert all(a["question"] for a in answers)


def test_find_fills_the_facts_each_response_holds(tf, tf_vendor):
    refs = tf.find([email(AINO)])
    assert refs
    for ref in refs:
        item = tf_vendor.record("response", ref.record_id.split(":", 1)[1])["item"]
        answers = item.get("answers") or []
        emails = [a["email"] for a in answers if a["type"] == "email"]
        emails += [v for v in (item.get("hidden") or {}).values() if "@" in str(v)]
        phones = [a["phone_number"] for a in answers if a["type"] == "phone_number"]
        assert set(ref.facts.emails) == set(emails)  # as the vendor holds them
        assert set(ref.facts.phones) <= set(phones) | set((item.get("hidden") or {}).values())
    assert any(AINO in {e.lower() for e in r.facts.emails} for r in refs)
    assert any(r.facts.name == "Aino Virtanen" for r in refs)


def test_erase_deletes_the_referenced_responses_by_id_and_they_are_gone(tf, tf_vendor):
    refs = tf.find([email(AINO)])
    mikko_before = active(tf_vendor, MIKKO)
    assert refs and mikko_before
    journal = []
    tf.journal = journal.append
    outcome = tf.erase(refs, POLICY)
    assert outcome.verified
    assert {r.action for r in outcome.records} == {Action.DELETED}
    assert {r.ref for r in journal} == set(refs)
    assert active(tf_vendor, AINO) == []
    for ref in refs:
        token = ref.record_id.split(":", 1)[1]
        assert tf_vendor.record("response", token)["state"] == "deleted"
    assert tf_vendor.count("/rtbf/{account_id}/responses", method="DELETE") == 0
    assert active(tf_vendor, MIKKO) == mikko_before  # nobody else touched
    assert tf_vendor.count("/forms") == 1  # one list of forms: the lookup and the read-back


def test_the_client_side_limit_keeps_under_the_vendors_2_per_second(live, tf_vendor):
    tf_vendor.settings(rate_limit_per_second=2)
    tf_vendor.http.delete("/__sandbox/calls")
    # Production defaults: the 2/s token bucket and the real retry policy.
    with TypeformConnector.from_env() as conn:
        refs = conn.find([email(JUSSI)])
    assert {r.record_id.split(":", 1)[1] for r in refs} == {
        r["id"] for r in active(tf_vendor, JUSSI)}
    calls = tf_vendor.calls()["calls"]
    ok = sum(c["count"] for c in calls if c["status"] == 200)
    limited = sum(c["count"] for c in calls if c["status"] == 429)
    assert ok >= 4
    assert limited <= max(1, ok // 4)  # at most a rare boundary hit, then retried


def test_the_pace_is_a_setting_below_the_vendors_limit(live, tf_vendor, monkeypatch):
    """An emulator with its limit lifted needs no half-second per call (the suite's
    Dagster tests); production keeps the pace under Typeform's 2 per second."""
    with TypeformConnector.from_env() as conn:
        assert 0 < conn.settings.requests_per_second < 2
    monkeypatch.setenv("TYPEFORM_REQUESTS_PER_SECOND", "1000")
    with TypeformConnector.from_env() as conn:
        assert conn.find([email(JUSSI)])
        assert conn.http.limiter.rate == 1000
    monkeypatch.setenv("TYPEFORM_REQUESTS_PER_SECOND", "0")
    with pytest.raises(ConfigError, match="TYPEFORM_REQUESTS_PER_SECOND is invalid"):
        TypeformConnector.from_env()


@pytest.mark.parametrize("seed", [4, 13])  # fault streams with early, repeated faults
def test_every_action_completes_under_faults(tf, tf_vendor, seed):
    tf_vendor.faults(error_rate=0.2, rate_limit_rate=0.1, seed=seed)
    records = [r for p in tf.sync(None) for r in p.records]
    assert any(JUSSI in (e.lower() for e in r.emails) for r in records)
    refs = tf.find([email(AINO)])
    assert refs
    export = tf.export(refs)
    assert sum(len(s.items) for s in export.sections) == len(refs)
    outcome = tf.erase(refs, POLICY)
    assert outcome.verified and {r.action for r in outcome.records} == {Action.DELETED}
    assert tf.opt_out(refs).records
    statuses = {c["status"] for c in tf_vendor.calls()["calls"]}
    assert statuses & {500, 502, 503} and 429 in statuses  # the faults did happen
    tf_vendor.faults(error_rate=0, rate_limit_rate=0)
    assert active(tf_vendor, AINO) == []


def test_sync_flags_special_diets_by_name_never_the_answer(tf):
    """Art. 9: a registration's diet hints at health or religion; the index gets the flag
    "diet", not the answer, and a response that chose no special diet gets none."""
    from hub.domain import RecordRef

    records = [r for p in tf.sync(None) for r in p.records]
    flagged = [r for r in records if r.categories]
    assert flagged and all(set(r.categories) <= {"diet", "health", "religion"} for r in flagged)
    refs = [RecordRef("typeform", "response", r.record_id, container=r.record_id.split(":")[0])
            for r in records]
    exported = tf.export(refs)
    answers = {item["token"] if "token" in item else item.get("response_id"): item
               for s in exported.sections for item in s.items}
    special = ("gluteeniton", "laktoositon", "maidoton")
    for record in records:
        text = str(answers[record.record_id.split(":")[1]]).lower()
        assert ("diet" in record.categories) == any(d in text for d in special), text


def test_rectify_and_restrict_leave_each_response_to_an_operator_saying_why(tf, tf_vendor):
    refs = tf.find([email(AINO)])
    assert refs
    before = tf_vendor.calls()["total"]
    fixed = tf.rectify(refs, Corrections(name="Aino Korhonen"))
    assert {r.action for r in fixed.records} == {Action.KEPT}
    assert all("cannot be edited" in r.detail and "name" in r.detail for r in fixed.records)
    restricted = tf.restrict(refs, lift=False)
    assert {r.action for r in restricted.records} == {Action.KEPT}
    assert all("cannot express a restriction" in r.detail for r in restricted.records)
    assert tf_vendor.calls()["total"] == before  # nothing was written at Typeform
    assert active(tf_vendor, AINO)
