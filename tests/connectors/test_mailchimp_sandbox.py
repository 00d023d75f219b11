"""Mailchimp connector against the sandbox over real HTTP (through the official SDK);
effects checked through the emulator's /__sandbox/ inspection API, then under faults."""

from __future__ import annotations

import pytest

from connectors.errors import AuthError
from connectors.mailchimp import MailchimpConnector, subscriber_hash
from connectors.mailchimp import connector as connector_module
from hub.domain import Action, Address, Corrections, Identifier, IdentifierKind, RecordRef
from hub.policy import EraseMode, SystemPolicy

AINO = "aino.virtanen@example.fi"
MIKKO = "mikko.hakkinen@example.fi"
EEVA = "eeva.makela@example.fi"


@pytest.fixture
def mc_vendor(vendor):
    return vendor("mailchimp")  # reset to the seed before (and after) the test


@pytest.fixture
def mc(mc_vendor, sandbox_env, fast_retry):
    with MailchimpConnector(sandbox_env["MAILCHIMP_BASE_URL"], sandbox_env["MAILCHIMP_API_KEY"],
                            retry=fast_retry) as conn:
        yield conn


def email(value):
    return Identifier(IdentifierKind.EMAIL, value)


def members_at_vendor(mc_vendor, address):
    return {r["id"]: r["state"] for r in mc_vendor.find(email=address)}


def vendor_key(ref):
    """The emulator's (and the index's) key of a found member: `<list>:<md5>`. The ref
    itself carries the opaque contact id; the hash is recomputed from its facts."""
    return f"{ref.container}:{subscriber_hash(ref.facts.emails[0])}"


def test_wrong_key_is_auth_error(mc_vendor, sandbox_env):
    conn = MailchimpConnector(sandbox_env["MAILCHIMP_BASE_URL"], "f" * 32 + "-us21")
    with pytest.raises(AuthError):
        conn.check()


def test_full_then_incremental_sync(mc, mc_vendor):
    pages = list(mc.sync(None))
    records = [r for p in pages for r in p.records]
    ids = [r.record_id for r in records]
    assert len(ids) == len(set(ids))
    mikko = [r for r in records if MIKKO in (e.lower() for e in r.emails)]
    assert len(mikko) == 2  # a member of both audiences: one record each
    assert mc_vendor.calls()["total"] == mc.api_calls
    cursor = pages[-1].cursor
    assert cursor
    quiet = [r for p in mc.sync(cursor) for r in p.records]
    assert len(quiet) < len(records) / 10
    refs = mc.find([email(AINO)])
    mc.opt_out(refs)
    changed = {r.record_id for p in mc.sync(cursor) for r in p.records}
    assert {vendor_key(r) for r in refs} <= changed


def test_find_every_audience(mc, mc_vendor):
    refs = mc.find([email("Mikko.Hakkinen@Example.FI")])
    at_vendor = members_at_vendor(mc_vendor, MIKKO)
    assert {vendor_key(r) for r in refs} == set(at_vendor)
    assert len(refs) == 2
    for ref in refs:  # the opaque contact id, never the MD5 of the e-mail
        assert ref.record_id == mc_vendor.record("member", vendor_key(ref))["contact_id"]
        assert ref.record_id != subscriber_hash(MIKKO)
    assert mc.find([email("nobody.here@example.fi")]) == []


def test_find_fills_the_facts_the_member_holds(mc, mc_vendor):
    refs = mc.find([email(MIKKO)])
    assert len(refs) == 2
    for ref in refs:
        held = mc_vendor.record("member", vendor_key(ref))
        merge = held["merge_fields"]
        assert ref.facts.emails == (held["email_address"],)
        assert ref.facts.name == f"{merge['FNAME']} {merge['LNAME']}"
        assert merge["PHONE"] and ref.facts.phones == (merge["PHONE"],)


def test_export_member_tags_notes_activity_events(mc, mc_vendor):
    refs = mc.find([email(AINO)])
    export = mc.export(refs)
    subscriber = [s for s in export.sections if s.label.endswith(": subscriber")]
    assert subscriber and subscriber[0].items[0]["email_address"].lower() == AINO
    labels = {s.label.split(": ", 1)[1] for s in export.sections}
    assert {"subscriber", "merge fields", "tags", "notes", "activity", "events",
            "goals (pages visited)"} <= labels
    assert mc_vendor.count("/3.0/lists") == 1  # audiences read once for find and export
    # each member is read once, by the lookup, and exported as read
    assert mc_vendor.count("/3.0/lists/{list_id}/members/{hash}", status=200) == len(subscriber)


def test_erase_permanently_in_every_audience(mc, mc_vendor):
    refs = mc.find([email(MIKKO)])
    out = mc.erase(refs, SystemPolicy(erase=EraseMode.PERMANENT_DELETE))
    assert out.verified
    assert [r.action for r in out.records] == [Action.PERMANENTLY_DELETED] * 2
    for ref in refs:
        rec = mc_vendor.record("member", vendor_key(ref))
        assert rec is None or rec["status"] == "deleted_permanently"
    assert members_at_vendor(mc_vendor, MIKKO) == {}
    # what the lookup read before the erasure is not exported after it
    assert mc.export(refs).evidence["not_found"] == len(refs)


def test_erase_archives_when_policy_says_delete(mc, mc_vendor):
    refs = mc.find([email(AINO)])
    out = mc.erase(refs, SystemPolicy(erase=EraseMode.DELETE))
    assert out.verified and {r.action for r in out.records} == {Action.DELETED}
    assert set(members_at_vendor(mc_vendor, AINO).values()) == {"archived"}
    assert mc.erase(refs, SystemPolicy(erase=EraseMode.DELETE)).verified  # twice: harmless


def test_opt_out_in_every_audience(mc, mc_vendor):
    refs = mc.find([email(EEVA)])
    out = mc.opt_out(refs)
    assert out.verified
    assert {r.action for r in out.records} <= {Action.UNSUBSCRIBED, Action.NOTHING_TO_DO}
    states = members_at_vendor(mc_vendor, EEVA)
    assert states and all(s in ("unsubscribed", "archived", "cleaned") for s in states.values())
    assert "unsubscribed" in states.values()


def test_every_action_completes_under_faults(mc, mc_vendor):
    mc_vendor.faults(error_rate=0.2, rate_limit_rate=0.1)
    records = [r for p in mc.sync(None) for r in p.records]
    assert len({r.record_id for r in records}) == len(records) > 0
    refs = mc.find([email(AINO)])
    assert refs
    assert mc.export(refs).sections
    assert mc.opt_out(refs).verified
    out = mc.erase(refs, SystemPolicy(erase=EraseMode.PERMANENT_DELETE))
    assert out.verified
    calls = mc_vendor.calls()
    mc_vendor.faults(error_rate=0, rate_limit_rate=0)
    assert members_at_vendor(mc_vendor, AINO) == {}
    statuses = {c["status"] for c in calls["calls"]}
    faulted = sum(c["count"] for c in calls["calls"] if c["status"] in (429, 500, 503))
    assert faulted > 0 and statuses & {429, 500, 503}  # faults were injected and survived
    assert calls["total"] == mc.api_calls


def test_export_labels_merge_fields_pages_the_activity_feed_and_has_goals(
        mc, mc_vendor, monkeypatch):
    """The access export reads activity-feed to its end (Aino has more than the 50
    /activity gives), names every merge field and includes the pages she visited."""
    monkeypatch.setattr(connector_module, "PAGE", 7)  # several pages at the emulator
    refs = mc.find([email(AINO)])
    export = mc.export(refs)
    news = {s.label.split(": ", 1)[1]: s.items for s in export.sections
            if s.label.startswith("Audience 'Uutiskirje'")}
    activity = news["activity"]
    assert len(activity) > 50
    assert {"generic_signup", "sent", "note", "event"} <= {a["activity_type"]
                                                          for a in activity}
    assert mc_vendor.count("/3.0/lists/{list_id}/members/{hash}/activity") == 0
    assert mc_vendor.count("/3.0/lists/{list_id}/members/{hash}/activity-feed") >= 2 * len(
        refs)
    fields = {f["tag"]: f for f in news["merge fields"]}
    held = mc_vendor.record("member", vendor_key(refs[0]))["merge_fields"]
    assert fields["FNAME"] == {"field": "Etunimi", "tag": "FNAME", "value": held["FNAME"]}
    assert fields["MMERGE6"]["field"] == "Yritys"
    assert all(f["field"] != f["tag"] for f in fields.values())  # every one has its name
    goals = news["goals (pages visited)"]
    assert goals and all(g["event"].startswith("/") for g in goals)


def test_export_names_merge_fields_beyond_the_first_page(mc, mc_vendor):
    """Kurssit has more merge fields than Mailchimp's default page of ten."""
    refs = mc.find([email(MIKKO)])
    export = mc.export(refs)
    courses = [s for s in export.sections
               if s.label == "Audience 'Kurssit': merge fields"][0].items
    assert "Kotikunta" in {f["field"] for f in courses}  # the eleventh field


def test_erase_from_a_journal_ref_sends_the_subscriber_hash(mc, mc_vendor, sandbox_env,
                                                           fast_retry):
    """A ref without facts (from the journal or review) carries only the contact id;
    the emulator, like Mailchimp, takes only the hash for delete-permanent, so the
    erasure works only if the connector sends the hash."""
    found = mc.find([email(MIKKO)])
    bare = [RecordRef(r.system, r.kind, r.record_id, container=r.container) for r in found]
    with MailchimpConnector(sandbox_env["MAILCHIMP_BASE_URL"],
                            sandbox_env["MAILCHIMP_API_KEY"], retry=fast_retry) as fresh:
        out = fresh.erase(bare, SystemPolicy(erase=EraseMode.PERMANENT_DELETE))
    assert out.verified
    assert [r.action for r in out.records] == [Action.PERMANENTLY_DELETED] * len(bare)
    assert members_at_vendor(mc_vendor, MIKKO) == {}
    assert mc_vendor.count("/3.0/lists/{list_id}/members/{hash}/actions/delete-permanent",
                           method="POST", status=204) == len(bare)


FIXED = Corrections(email="aino.korhonen@example.fi", phone="+358401112233",
                    name="Aino Korhonen",
                    address=Address("Mannerheimintie 1 A 2", "00100", "Helsinki"))


def test_rectify_changes_address_and_merge_fields_and_reads_them_back(mc, mc_vendor):
    refs = mc.find([email(AINO)])
    assert refs
    outcome = mc.rectify(refs, FIXED)
    assert outcome.verified, [r.detail for r in outcome.records]
    assert {r.action for r in outcome.records} == {Action.RECTIFIED}
    for ref in refs:
        member = mc_vendor.record("member", f"{ref.container}:aino.korhonen@example.fi")
        assert member is not None and member["email_address"] == "aino.korhonen@example.fi"
        fields = member["merge_fields"]
        assert (fields["FNAME"], fields["LNAME"]) == ("Aino", "Korhonen")
        assert fields["PHONE"] == "+358401112233"
        assert fields["ADDRESS"]["addr1"] == "Mannerheimintie 1 A 2"
        assert fields["ADDRESS"]["zip"] == "00100"
    assert not members_at_vendor(mc_vendor, AINO)  # nobody holds the wrong address
    assert all("korhonen" not in r.detail.lower() for r in outcome.records)
    again = mc.rectify(mc.find([email("aino.korhonen@example.fi")]), FIXED)
    assert again.verified and all("already holds" in r.detail for r in again.records)


def test_rectify_to_an_address_another_member_has_is_left_to_an_operator(mc, mc_vendor):
    refs = mc.find([email(AINO)])
    taken = mc.find([email(MIKKO)])
    common = {r.container for r in refs} & {r.container for r in taken}
    assert common
    outcome = mc.rectify([r for r in refs if r.container in common],
                         Corrections(email=MIKKO))
    assert {r.action for r in outcome.records} == {Action.KEPT}
    assert all("merge or re-add by hand" in r.detail for r in outcome.records)


def test_restrict_tags_and_unsubscribes_and_lift_removes_the_tag(mc, mc_vendor):
    refs = mc.find([email(AINO)])
    outcome = mc.restrict(refs, lift=False)
    assert outcome.verified and {r.action for r in outcome.records} == {Action.RESTRICTED}
    for ref in refs:
        member = mc_vendor.record("member", vendor_key(ref))
        assert "gdpr-restricted" in [t["name"] for t in member["tags"]]
        assert member["status"] not in ("subscribed", "pending")
    lifted = mc.restrict(refs, lift=True)
    assert lifted.verified and {r.action for r in lifted.records} == {Action.LIFTED}
    for ref in refs:
        member = mc_vendor.record("member", vendor_key(ref))
        assert "gdpr-restricted" not in [t["name"] for t in member["tags"]]
        assert member["status"] not in ("subscribed", "pending")  # lifting is no consent


def test_a_retry_after_the_address_changed_resumes_from_the_journals_ref(
        mc, mc_vendor, sandbox_env, fast_retry):
    """A retry finds nobody by the old address; the journal's ref (contact id, no facts)
    still reaches the member, which already holds the values: nothing is written."""
    refs = mc.find([email(AINO)])
    assert mc.rectify(refs, FIXED).verified
    journalled = [RecordRef(r.system, r.kind, r.record_id, container=r.container)
                  for r in refs]
    assert mc.find([email(AINO)]) == []

    def patches() -> int:
        return sum(c["count"] for c in mc_vendor.calls()["calls"] if c["method"] == "PATCH")

    before = patches()
    with MailchimpConnector(sandbox_env["MAILCHIMP_BASE_URL"],
                            sandbox_env["MAILCHIMP_API_KEY"], retry=fast_retry) as fresh:
        again = fresh.rectify(journalled, FIXED)
    assert again.verified and {r.action for r in again.records} == {Action.RECTIFIED}
    assert all("already holds" in r.detail for r in again.records)
    assert patches() == before


def test_erasing_a_ref_found_before_the_address_changed_reaches_the_member(
        mc, mc_vendor, sandbox_env, fast_retry):
    """A ref found in an earlier run (an approved candidate, a retry) carries the
    e-mail as it was; the member has changed address since (a rectification). Hashing
    the old e-mail finds nobody: wrongly not_found, the member kept. The member is
    reached by its stable contact id first."""
    refs = mc.find([email(AINO)])
    assert refs and all(r.facts.emails == (AINO,) for r in refs)
    assert mc.rectify(refs, Corrections(email="aino.korhonen@example.fi")).verified
    with MailchimpConnector(sandbox_env["MAILCHIMP_BASE_URL"],
                            sandbox_env["MAILCHIMP_API_KEY"], retry=fast_retry) as fresh:
        out = fresh.erase(refs, SystemPolicy(erase=EraseMode.PERMANENT_DELETE))
    assert out.verified, [r.detail for r in out.records]
    assert [r.action for r in out.records] == [Action.PERMANENTLY_DELETED] * len(refs)
    assert members_at_vendor(mc_vendor, "aino.korhonen@example.fi") == {}
    for ref in refs:
        member = mc_vendor.record("member", f"{ref.container}:aino.korhonen@example.fi")
        assert member is None or member["status"] == "deleted_permanently"


def test_an_opt_out_decides_from_what_find_read_and_reads_back_each_write(mc, mc_vendor):
    refs = mc.find([email(EEVA)])
    route = "/3.0/lists/{list_id}/members/{hash}"
    before = mc_vendor.count(route)
    out = mc.opt_out(refs)
    assert out.verified
    patched = mc_vendor.count(route, method="PATCH")
    assert patched
    assert mc_vendor.count(route) - before == patched  # each write read back, nothing more
    assert "unsubscribed" in members_at_vendor(mc_vendor, EEVA).values()
