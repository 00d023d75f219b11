"""The linking rule (hub.linking): property-based, and through the real index."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from hub import index, linking
from hub.domain import Identifier, IdentifierKind, SourceRecord
from hub.linking import Holder, Subject, judge, name_words, names_agree, resolve
from hub.models import SourceRecordRow

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
SWITCHBOARD = "+358455708456"

# -- property-based: no cluster ever holds two disagreeing names ---------------------

FIRST = ["Mika", "Susanna", "Aino", "Liisa"]
LAST = ["Tuomi", "Mononen", "Virtanen", "Koskinen"]
names = st.one_of(st.none(), st.builds(lambda f, last: f"{f} {last}",
                                       st.sampled_from(FIRST), st.sampled_from(LAST)),
                  st.sampled_from(FIRST))
emails = st.frozensets(st.sampled_from(["a@x.fi", "b@x.fi", "info@x.fi", "c@y.fi"]),
                       max_size=2)
phones = st.frozensets(st.sampled_from(["+358401", "+358402", SWITCHBOARD]), max_size=2)
records = st.lists(st.tuples(names, emails, phones), min_size=1, max_size=12)


def holders(rows):
    return [Holder(i, name_words(n), e, p) for i, (n, e, p) in enumerate(rows)]


def people(mapping):
    out = {}
    for key, label in mapping.items():
        out.setdefault(label, set()).add(key)
    return list(out.values())


@settings(max_examples=400, deadline=None)
@given(records)
def test_no_person_ever_holds_two_disagreeing_names(rows):
    hs = holders(rows)
    for members in people(resolve(hs)):
        named = [hs[k].name for k in members if hs[k].name]
        assert linking.all_agree(named), [rows[k] for k in members]


def mail_groups(hs, members):
    """The parts of one person that e-mails alone hold together."""
    groups: list[set[int]] = []
    for k in sorted(members):
        touching = [g for g in groups if any(hs[k].emails & hs[j].emails for j in g)]
        merged = {k}.union(*touching)
        groups = [g for g in groups if g not in touching] + [merged]
    return groups


@settings(max_examples=400, deadline=None)
@given(records)
def test_a_phone_never_joins_two_e_mail_groups_without_names_on_both(rows):
    hs = holders(rows)
    for members in people(resolve(hs)):
        with_mail = [g for g in mail_groups(hs, members) if any(hs[k].emails for k in g)]
        if len(with_mail) > 1:
            assert all(any(hs[k].name for k in g) for g in with_mail), \
                [rows[k] for k in members]


@settings(max_examples=200, deadline=None)
@given(records, st.randoms(use_true_random=False))
def test_the_order_of_records_does_not_matter(rows, rnd: random.Random):
    hs = holders(rows)
    shuffled = list(hs)
    rnd.shuffle(shuffled)
    before, after = people(resolve(hs)), people(resolve(shuffled))
    assert sorted(map(sorted, before)) == sorted(map(sorted, after))


@settings(max_examples=200, deadline=None)
@given(names, emails, phones)
def test_the_same_record_in_two_systems_is_one_person(name, mail, phone):
    hs = [Holder(0, name_words(name), mail, phone), Holder(1, name_words(name), mail, phone)]
    assert len(people(resolve(hs))) == (1 if (mail or phone) else 2)


def test_names_agree_by_their_words():
    assert names_agree(name_words("Aino Virtanen"), name_words("virtanen  AINO"))
    assert names_agree(name_words("Aino"), name_words("Aino Virtanen"))
    assert names_agree(name_words("Aino Virtanen-Korhonen"), name_words("Aino Virtanen"))
    assert not names_agree(name_words("Aino Virtanen"), name_words("Aino Korhonen"))
    assert not names_agree(name_words("Mika Tuomi"), name_words("Susanna Mononen"))
    assert names_agree(None, name_words("Mika Tuomi"))


# -- through the index on SQLite and PostgreSQL --------------------------------------


def rec(system, rid, emails=(), phones=(), name=None):
    return SourceRecord(system=system, record_id=rid, emails=tuple(emails),
                        phones=tuple(phones), display_name=name)


def build(store, by_system):
    with store.session() as session:
        for system, recs in by_system.items():
            writer = index.IndexWriter(session, system, full=True, now=NOW)
            writer.add(recs)
            writer.finish()
        index.recluster(session, now=NOW)


def person_of(store, system, rid):
    with store.session() as session:
        return session.execute(select(SourceRecordRow.person_id).where(
            SourceRecordRow.system == system, SourceRecordRow.record_id == rid)).scalar_one()


def test_colleagues_sharing_the_company_phone_stay_two_people(store):
    build(store, {
        "pipedrive": [rec("pipedrive", "1", ["mika.tuomi@yritys.fi"], [SWITCHBOARD], "Mika Tuomi"),
                      rec("pipedrive", "2", ["susanna.mononen@yritys.fi"], ["045 570 8456"],
                          "Susanna Mononen")],
        "mailchimp": [rec("mailchimp", "m1", ["mika.tuomi@yritys.fi"], [], "Mika Tuomi"),
                      rec("mailchimp", "m2", ["susanna.mononen@yritys.fi"], [SWITCHBOARD],
                          "Susanna Mononen")],
        # a form answer with no name, only Susanna's address and the switchboard
        "typeform": [rec("typeform", "t1", ["susanna.mononen@yritys.fi"], [SWITCHBOARD])],
    })
    mika = {person_of(store, "pipedrive", "1"), person_of(store, "mailchimp", "m1")}
    susanna = {person_of(store, "pipedrive", "2"), person_of(store, "mailchimp", "m2"),
               person_of(store, "typeform", "t1")}
    assert len(mika) == 1 and len(susanna) == 1
    assert mika.isdisjoint(susanna)


def test_an_info_address_used_by_two_people_links_nobody(store):
    build(store, {
        "pipedrive": [rec("pipedrive", "1", ["info@yritys.fi"], ["040 111 1111"], "Mika Tuomi"),
                      rec("pipedrive", "2", ["info@yritys.fi"], ["040 222 2222"],
                          "Susanna Mononen")],
        "typeform": [rec("typeform", "t1", ["info@yritys.fi"])],
    })
    assert person_of(store, "pipedrive", "1") != person_of(store, "pipedrive", "2")
    assert person_of(store, "typeform", "t1") not in {person_of(store, "pipedrive", "1"),
                                                      person_of(store, "pipedrive", "2")}


def test_one_person_with_two_addresses_is_linked_by_their_own_mobile(store):
    build(store, {
        "pipedrive": [rec("pipedrive", "1", ["liisa.koskinen@yritys.fi"], ["050 765 4321"],
                          "Liisa Koskinen")],
        "mailchimp": [rec("mailchimp", "m1", ["liisa.k@example.com"], ["+358507654321"],
                          "Liisa Koskinen")],
    })
    assert person_of(store, "pipedrive", "1") == person_of(store, "mailchimp", "m1")


def test_a_colleague_added_later_with_the_switchboard_stays_apart(store):
    """The incremental re-cluster (only what changed) applies the same rule."""
    build(store, {"pipedrive": [
        rec("pipedrive", "1", ["mika.tuomi@yritys.fi"], [SWITCHBOARD], "Mika Tuomi")]})
    mika = person_of(store, "pipedrive", "1")
    with store.session() as session:
        writer = index.IndexWriter(session, "mailchimp", full=False, now=NOW)
        writer.add([rec("mailchimp", "m9", ["susanna.mononen@yritys.fi"], [SWITCHBOARD])])
        writer.finish()
        index.recluster(session, now=NOW)
    assert person_of(store, "pipedrive", "1") == mika
    assert person_of(store, "mailchimp", "m9") != mika


# -- a request's live lookup -----------------------------------------------------------


def subject(emails=(), phones=(), names=(), shared=()):
    return Subject(frozenset(emails), frozenset(phones),
                   frozenset(name_words(n) for n in names), frozenset(shared))


def test_a_colleague_reached_through_the_shared_phone_is_a_candidate():
    mika = subject(["mika.tuomi@yritys.fi"], [SWITCHBOARD], ["Mika Tuomi"])
    susanna = Holder(2, name_words("Susanna Mononen"), frozenset({"susanna.mononen@yritys.fi"}),
                     frozenset({SWITCHBOARD}))
    verdict = judge(mika, susanna)
    assert not verdict.subject
    assert "+358*******56" in verdict.reason and "Susanna" not in verdict.reason


def test_the_subjects_own_records_are_acted_on():
    mika = subject(["mika.tuomi@yritys.fi"], [SWITCHBOARD], ["Mika Tuomi"])
    by_mail = Holder(1, name_words("Mika Tuomi"), frozenset({"mika.tuomi@yritys.fi"}))
    by_phone_no_name = Holder(3, None, frozenset(), frozenset({SWITCHBOARD}))
    assert judge(mika, by_mail).subject
    assert judge(mika, by_phone_no_name).subject


def test_a_phone_the_index_knows_is_shared_needs_the_same_name():
    shared = Identifier(IdentifierKind.PHONE, SWITCHBOARD)
    phone_only = subject(phones=[SWITCHBOARD], shared=[shared])
    nameless = Holder(3, None, frozenset(), frozenset({SWITCHBOARD}))
    assert not judge(phone_only, nameless).subject
    named = subject(phones=[SWITCHBOARD], names=["Mika Tuomi"], shared=[shared])
    assert judge(named, Holder(1, name_words("Tuomi Mika"), frozenset(),
                               frozenset({SWITCHBOARD}))).subject


def test_records_found_only_through_the_index_cluster_are_candidates():
    liisa = subject(["liisa.koskinen@yritys.fi"], [], ["Liisa Koskinen"])
    other_address = Holder(1, name_words("Liisa Koskinen"), frozenset({"liisa.k@example.com"}))
    assert not judge(liisa, other_address).subject


def test_an_info_address_is_shared_when_one_lookup_meets_two_names():
    who = subject(["info@yritys.fi"])
    found = [Holder(1, name_words("Mika Tuomi"), frozenset({"info@yritys.fi"})),
             Holder(2, name_words("Susanna Mononen"), frozenset({"info@yritys.fi"}))]
    live = linking.shared_in(found, who)
    assert live == {Identifier(IdentifierKind.EMAIL, "info@yritys.fi")}
    assert not any(judge(who, h, live_shared=live).subject for h in found)
