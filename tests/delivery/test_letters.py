"""Every letter the subject gets, in every language, read from a real SMTP server."""

from __future__ import annotations

import stat
from datetime import UTC, date, datetime, timedelta

import pytest
from pypdf import PdfReader

from connectors.registry import declarations
from delivery import worker
from hub import bundle, ledger, letters, outbox
from hub.domain import Export, ExportSection, Identifier, IdentifierKind
from hub.ledger import Channel, Language, RequestKind, RequestState, TaskState
from hub.models import LetterRow
from hub.policy import load_policy

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=3)
EMAIL = "aino.virtanen@example.fi"
POLICY = load_policy(systems=declarations())
HOLD = {"kind": "customer", "record_id": "C-17", "container": None, "action": "retained",
        "detail": "", "status_code": 200, "vendor_request_id": None,
        "legal_basis": "Kirjanpitolaki (1336/1997) 2 luku 10 §", "retained_until": "2032-12-31"}


def file(store, kind: RequestKind, language: str, **extra) -> str:
    with store.session() as session:
        row = ledger.create_request(session, store.hasher, kind,
                                    [Identifier(IdentifierKind.EMAIL, EMAIL)],
                                    name="Aino Virtanen", now=T0,
                                    language=Language(language), **extra)
        return row.id


def queue(store, request_id: str, event: letters.Event, now: datetime = NOW, **extra):
    with store.session() as session:
        row = ledger.get_request(session, request_id)
        return letters.queue_for(session, row, event, settings=store.settings,
                                 hasher=store.hasher, policy=POLICY, now=now, **extra)


def settle(store, request_id: str, results: dict[str, tuple[TaskState, str, list]]) -> None:
    """Run the request's tasks to the given outcomes, finalise, queue the completion
    letter with the address read before finalise scrubbed it (as the job does)."""
    with store.session() as session:
        row = ledger.verify(session, request_id, now=NOW)
        ledger.transition(session, row, RequestState.IN_PROGRESS, now=NOW)
        for task in ledger.ensure_tasks(session, row, sorted(results), now=NOW):
            state, action, records = results[task.system]
            ledger.move_task(session, task, TaskState.RUNNING, now=NOW)
            ledger.move_task(session, task, state, action=action, now=NOW,
                             evidence={"counts": {action: 1}, "records": records})
        to = letters.recipient_of(session, row)
        ledger.finalise(session, store.hasher, row, now=NOW)
        assert not ledger.identifiers_of(session, request_id)  # scrubbed
        letters.queue_for(session, row, letters.Event.COMPLETED, settings=store.settings,
                          hasher=store.hasher, policy=POLICY, recipient=to, now=NOW)


def write_access_bundle(store, request_id: str, language: str = "en") -> None:
    person = Export("pipedrive", (ExportSection("Person", "pipedrive:persons", (
        {"name": "Aino Virtanen", "email": EMAIL},)),))
    bundle.write_bundle(store.settings.home / bundle.EXPORTS, request_id, [person], POLICY,
                        now=NOW, language=language)


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


DPO = {"fi": ["Tietosuojavaltuutetun toimisto", "Lintulahdenkuja 4, 00530 Helsinki",
              "PL 800, 00531 Helsinki", "tietosuoja@om.fi", "029 566 6700", "tietosuoja.fi"],
       "sv": ["Dataombudsmannens byrå", "PB 800, 00531 Helsingfors", "tietosuoja@om.fi"],
       "en": ["Office of the Data Protection Ombudsman", "P.O. Box 800, FI-00531 Helsinki",
              "tietosuoja@om.fi", "+358 29 566 6700"]}

EXPECTED = {
    "fi": {
        "acknowledgement": ("Pyyntösi {id} on vastaanotettu",
                            ["Hyvä Aino Virtanen", "vastaanottaneet 2.3.2026",
                             "Vastaamme viimeistään 2.4.2026", "15 artikla", "Valmennus Oy"]),
        "identity": ("henkilöllisyyden varmistaminen",
                     ["varmistettava henkilöllisyytesi", "Pyydämme sinulta: asiakasnumerosi"]),
        "extension": ("vastausaikaa jatketaan",
                      ["Syy: monta järjestelmää", "viimeistään 2.6.2026",
                       "alkuperäinen määräpäivä oli 2.4.2026"]),
        "refusal": ("emme voi toteuttaa", ["Syy: henkilöllisyys ei varmistunut", *DPO["fi"]]),
    },
    "sv": {
        "acknowledgement": ("Din begäran {id} har tagits emot",
                            ["Bästa Aino Virtanen", "den 2.3.2026 tagit emot",
                             "senast den 2.4.2026", "artikel 15"]),
        "identity": ("kontroll av identitet",
                     ["kontrollera din identitet", "Vi ber dig om följande: asiakasnumerosi"]),
        "extension": ("svarstiden förlängs",
                      ["Skäl: monta järjestelmää", "senast den 2.6.2026",
                       "var den 2.4.2026"]),
        "refusal": ("vi kan inte tillmötesgå",
                    ["Skäl: henkilöllisyys ei varmistunut", *DPO["sv"]]),
    },
    "en": {
        "acknowledgement": ("Your request {id} has been received",
                            ["Dear Aino Virtanen", "on 2 March 2026", "by 2 April 2026",
                             "article 15"]),
        "identity": ("confirming your identity",
                     ["confirm your identity", "Please send us: asiakasnumerosi"]),
        "extension": ("we need more time",
                      ["Reason: monta järjestelmää", "answer by 2 June 2026",
                       "original deadline was 2 April 2026"]),
        "refusal": ("we cannot act on it",
                    ["Reason: henkilöllisyys ei varmistunut", *DPO["en"]]),
    },
}

COMPLETION = {
    "fi": {"access": ["15 artikla", "Pipedrive (asiakkuudenhallinta)",
                      "Käsittelyn tarkoitus ja oikeusperuste: GDPR art. 6(1)(b)",
                      "Tietoryhmät: Person", "Säilytysaika: 6 vuotta", "index.html",
                      "Visma Netvisor (kirjanpito): säilytetään 31.12.2032 asti",
                      "Emme luovuta tietojasi suoramarkkinointiin", *DPO["fi"]],
           "erasure": ["Pipedrive (asiakkuudenhallinta): poistettu",
                       "Typeform (kyselyt ja lomakkeet): ei tietoja sinusta",
                       "säilytetään 31.12.2032 asti. Peruste: Kirjanpitolaki", *DPO["fi"]],
           "opt_out": ["Mailchimp (postituslistat): markkinointi lopetettu", "estolistalle"]},
    "sv": {"access": ["artikel 15", "Ändamål och rättslig grund: GDPR art. 6(1)(b)",
                      "Kategorier av uppgifter: Person", "Lagringstid: 6 år",
                      "sparas till och med den 31.12.2032", *DPO["sv"]],
           "erasure": ["Pipedrive (kundrelationshantering): raderade",
                       "sparas till och med den 31.12.2032. Grund: Kirjanpitolaki", *DPO["sv"]],
           "opt_out": ["Mailchimp (e-postlistor): marknadsföringen avslutad", "spärrlista"]},
    "en": {"access": ["article 15", "Purpose and legal basis: GDPR art. 6(1)(b)",
                      "Categories of data: Person", "Retention: 6 years",
                      "kept until 31 December 2032", *DPO["en"]],
           "erasure": ["Pipedrive (customer relationship management): deleted",
                       "kept until 31 December 2032. Basis: Kirjanpitolaki", *DPO["en"]],
           "opt_out": ["Mailchimp (mailing lists): marketing stopped", "suppression list"]},
}


@pytest.mark.parametrize("language", ["fi", "sv", "en"])
def test_every_letter_arrives_in_the_subjects_language(sqlite_mail_store, smtp, language):
    store = sqlite_mail_store
    steps = file(store, RequestKind.ACCESS, language)
    queue(store, steps, letters.Event.RECEIVED)
    queue(store, steps, letters.Event.IDENTITY, note="asiakasnumerosi")
    with store.session() as session:
        ledger.extend(session, steps, "monta järjestelmää", now=NOW)
    queue(store, steps, letters.Event.EXTENDED)
    refused = file(store, RequestKind.ACCESS, language)
    with store.session() as session:
        to = letters.recipient_of(session, ledger.get_request(session, refused))
        ledger.reject(session, refused, "henkilöllisyys ei varmistunut", now=NOW)
    queue(store, refused, letters.Event.REJECTED, recipient=to)

    access = file(store, RequestKind.ACCESS, language)
    write_access_bundle(store, access)
    settle(store, access, {"pipedrive": (TaskState.DONE, "exported", []),
                           "netvisor": (TaskState.RETAINED, "retained", [HOLD])})
    erasure = file(store, RequestKind.ERASURE, language)
    settle(store, erasure, {"pipedrive": (TaskState.DONE, "deleted", []),
                            "typeform": (TaskState.NOT_FOUND, "not_found", []),
                            "netvisor": (TaskState.RETAINED, "retained", [HOLD])})
    opt_out = file(store, RequestKind.OPT_OUT, language)
    settle(store, opt_out, {"mailchimp": (TaskState.DONE, "unsubscribed", [])})

    report = worker.deliver_due(store, now=NOW)
    assert len(report.sent) == 7 and not report.failed

    mail = {m["Subject"]: m for m in smtp.inbox.to(EMAIL)}
    assert len(mail) == 7
    for kind, (subject, parts) in EXPECTED[language].items():
        request_id = refused if kind == "refusal" else steps
        [message] = [m for s, m in mail.items() if request_id in s and
                     subject.format(id=request_id) in s]
        body = text_of(message)
        for part in parts:
            assert part in body, (kind, part)
        assert message["From"] == "Tietosuoja <privacy@valmennus.example>"
    for request_id, kind in ((access, "access"), (erasure, "erasure"), (opt_out, "opt_out")):
        [message] = [m for s, m in mail.items() if request_id in s]
        body = text_of(message)
        for part in COMPLETION[language][kind]:
            assert part in body, (kind, part)
        html = message.get_body(preferencelist=("html",)).get_content()
        assert f"lang='{language}'" in html
        if kind == "access":  # the bundle goes with its cover letter
            names = sorted(a.get_filename() for a in message.iter_attachments())
            assert names == ["data.json", "index.html"]


def test_the_letter_escapes_what_people_typed(sqlite_mail_store, smtp):
    store = sqlite_mail_store
    with store.session() as session:
        row = ledger.create_request(session, store.hasher, RequestKind.ERASURE,
                                    [Identifier(IdentifierKind.EMAIL, EMAIL)],
                                    name="<script>alert(1)</script>", now=T0)
        rid = row.id
    queue(store, rid, letters.Event.RECEIVED)
    worker.deliver_due(store, now=NOW)
    [message] = smtp.inbox.messages
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<script>alert(1)</script>" in text_of(message)  # plain text shows it as text


def test_one_acknowledgement_per_request_and_the_outbox_keeps_no_plaintext(mail_store, smtp):
    """On SQLite and PostgreSQL: queuing twice is harmless; once sent, only the masked
    recipient and keyed hashes remain (rule 6)."""
    store = mail_store
    rid = file(store, RequestKind.ERASURE, "fi")
    first = queue(store, rid, letters.Event.RECEIVED)
    queue(store, rid, letters.Event.RECEIVED)
    with store.session() as session:
        [letter] = outbox.letters_of(session, rid)
        assert letter.recipient == EMAIL and letter.state == "queued"
    assert first.recipient_masked == "a***@example.fi"
    assert worker.deliver_due(store, now=NOW).sent == [letter.id]
    assert worker.deliver_due(store, now=NOW).sent == []  # never twice
    with store.session() as session:
        [letter] = outbox.letters_of(session, rid)
        assert (letter.state, letter.attempts, letter.recipient, letter.body) == (
            "sent", 1, None, None)
        assert letter.recipient_masked == "a***@example.fi" and len(letter.body_hash) == 64
        assert letter.sent_at == NOW
    assert len(smtp.inbox.messages) == 1


def test_a_refusing_or_absent_server_fails_the_letter_visibly_then_it_is_sent(mail_store,
                                                                            smtp):
    store = mail_store
    rid = file(store, RequestKind.ACCESS, "en")
    queue(store, rid, letters.Event.RECEIVED)
    smtp.inbox.refuse = f"550 5.1.1 <{EMAIL}>: Recipient address rejected"
    report = worker.deliver_due(store, now=NOW)
    assert report.failed and not report.sent
    with store.session() as session:
        [letter] = outbox.letters_of(session, rid)
        assert (letter.state, letter.attempts) == ("failed", 1)
        assert "550" in letter.last_error and EMAIL not in letter.last_error
        assert "a***@example.fi" in letter.last_error
        assert letter.next_attempt_at == NOW + timedelta(seconds=60)
        assert letter.recipient == EMAIL  # kept until it is sent
    assert worker.deliver_due(store, now=NOW + timedelta(seconds=30)).failed == []  # backoff

    smtp.inbox.refuse = None
    smtp.stop()  # the server is down
    later = NOW + timedelta(seconds=61)
    assert worker.deliver_due(store, now=later).failed
    with store.session() as session:
        [letter] = outbox.letters_of(session, rid)
        assert (letter.state, letter.attempts) == ("failed", 2)
        assert "ConnectionRefusedError" in letter.last_error
        assert letter.next_attempt_at == later + timedelta(seconds=120)  # doubled

    smtp.start()  # and back
    assert worker.deliver_due(store, now=later + timedelta(seconds=121)).sent
    with store.session() as session:
        [letter] = outbox.letters_of(session, rid)
        assert (letter.state, letter.attempts, letter.last_error) == ("sent", 3, None)
    [message] = smtp.inbox.messages
    assert message["Subject"] == f"Your request {rid} has been received"


def test_a_letter_given_up_on_stays_failed_until_retried(sqlite_mail_store, smtp):
    store = sqlite_mail_store
    rid = file(store, RequestKind.ACCESS, "fi")
    queue(store, rid, letters.Event.RECEIVED)
    smtp.inbox.refuse = "550 mailbox unavailable"
    when = NOW
    for _ in range(3):  # letter_max_attempts = 3
        worker.deliver_due(store, now=when)
        when += timedelta(days=1)
    with store.session() as session:
        [letter] = outbox.letters_of(session, rid)
        assert (letter.state, letter.attempts, letter.next_attempt_at) == ("failed", 3, None)
        assert [x.id for x in outbox.failed(session)] == [letter.id]
    assert worker.deliver_due(store, now=when + timedelta(days=30)).failed == []
    smtp.inbox.refuse = None
    with store.session() as session:
        assert outbox.retry(session, [letter.id]) == [letter.id]
    assert worker.deliver_due(store, now=when).sent == [letter.id]


def test_starttls_asked_for_but_not_offered_is_an_error_never_plain_text(sqlite_mail_store,
                                                                         smtp):
    store = sqlite_mail_store
    store.settings.smtp_security = "starttls"
    rid = file(store, RequestKind.ACCESS, "fi")
    queue(store, rid, letters.Event.RECEIVED)
    assert worker.deliver_due(store, now=NOW).failed
    with store.session() as session:
        [letter] = outbox.letters_of(session, rid)
        assert "STARTTLS" in letter.last_error
    assert smtp.inbox.messages == []


def test_a_letter_by_post_is_a_private_pdf_with_the_address(sqlite_mail_store, smtp):
    store = sqlite_mail_store
    rid = file(store, RequestKind.ACCESS, "sv", channel=Channel.LETTER,
               postal_address="Storgatan 5 B 12\n65100 Vasa")
    write_access_bundle(store, rid, "sv")
    queue(store, rid, letters.Event.RECEIVED)
    assert "skriva till oss med en uppgift" in letters.as_text(  # no "reply to this e-mail"
        queue(store, rid, letters.Event.IDENTITY).body)
    settle(store, rid, {"pipedrive": (TaskState.DONE, "exported", [])})
    report = worker.deliver_due(store, now=NOW)
    assert len(report.sent) == 3 and smtp.inbox.messages == []
    home = store.settings.home
    with store.session() as session:
        rows = [x for x in outbox.letters_of(session, rid) if x.kind != "identity"]
        assert [x.channel for x in rows] == ["post", "post"]
        assert rows[0].recipient_masked == "post: A*** V***"
        documents = [home / x.document for x in rows]
        with store.session() as s2:
            assert s2.get(ledger.SubjectRequestRow, rid).postal_address is None  # scrubbed
    for path in documents:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    ack = "\n".join(p.extract_text() for p in PdfReader(documents[0]).pages)
    for part in ("Aino Virtanen", "Storgatan 5 B 12", "65100 Vasa",
                 f"Din begäran {rid} har tagits emot", "senast den 2.4.2026",
                 "Valmennus Oy"):
        assert part in ack, part
    cover = "\n".join(p.extract_text() for p in PdfReader(documents[1]).pages)
    for part in ("artikel 15", "En utskriven kopia", "Bilaga: index.html",
                 "Uppgifterna vi har om dig", "E-postadress", "Dataombudsmannens byrå"):
        assert part in cover, part


def test_the_extension_letter_only_within_the_first_month(sqlite_mail_store):
    store = sqlite_mail_store
    rid = file(store, RequestKind.ERASURE, "fi")
    with store.session() as session:
        ledger.extend(session, rid, "monta järjestelmää", now=NOW)
    with pytest.raises(ledger.LedgerError, match="within the first month"):
        queue(store, rid, letters.Event.EXTENDED, now=datetime(2026, 4, 3, 9, tzinfo=UTC))
    other = file(store, RequestKind.ERASURE, "fi")
    with pytest.raises(ledger.LedgerError, match="not extended"):
        queue(store, other, letters.Event.EXTENDED)


def test_nobody_to_write_to_and_requests_the_hub_filed_itself(sqlite_mail_store):
    store = sqlite_mail_store
    with store.session() as session:
        phone_only = ledger.create_request(session, store.hasher, RequestKind.ERASURE, [
            Identifier(IdentifierKind.PHONE, "+358401234567")], now=T0)
        hub_filed = ledger.create_request(session, store.hasher, RequestKind.ERASURE, [
            Identifier(IdentifierKind.EMAIL, EMAIL)], now=T0, origin="reappearance")
        ids = phone_only.id, hub_filed.id
    assert queue(store, ids[0], letters.Event.RECEIVED) is None
    assert queue(store, ids[1], letters.Event.RECEIVED) is None
    with store.session() as session:
        assert session.query(LetterRow).count() == 0


def test_as_text_keeps_paragraphs_and_bullets():
    html = "<p>Hello,</p>\n<ul><li>one</li><li>two  words</li></ul><p>a<br>b</p>"
    assert letters.as_text(html) == "Hello,\n\n- one\n- two words\n\na\nb\n"
    assert date(2026, 12, 2).isoformat() in letters.as_text("<p>2026-12-02</p>")


def test_a_posted_letters_pdf_is_deleted_and_an_erasure_deletes_earlier_ones(
        sqlite_mail_store):
    store = sqlite_mail_store
    home = store.settings.home
    address = "Storgatan 5 B 12\n65100 Vasa"
    first = file(store, RequestKind.ACCESS, "sv", channel=Channel.LETTER,
                 postal_address=address)
    queue(store, first, letters.Event.RECEIVED)
    queue(store, first, letters.Event.IDENTITY)
    worker.deliver_due(store, now=NOW)
    with store.session() as session:
        ack, ask = outbox.letters_of(session, first)
        documents = [home / ack.document, home / ask.document]
        assert [x.id for x in outbox.awaiting_post(session)] == [ack.id, ask.id]
        assert outbox.posted(session, home, [ack.id], actor="maija") == [ack.id]
    assert not documents[0].exists() and documents[1].exists()

    erasure = file(store, RequestKind.ERASURE, "sv", channel=Channel.LETTER,
                   postal_address=address)
    queue(store, erasure, letters.Event.RECEIVED)
    worker.deliver_due(store, now=NOW)
    with store.session() as session:
        assert outbox.forget_subject(session, home, erasure) == [ask.id]
        [own] = outbox.letters_of(session, erasure)
        assert own.document is not None  # the erasure's own letter is still to be posted
    assert not documents[1].exists() and (home / own.document).exists()


def test_a_letter_given_up_on_loses_its_plaintext_when_the_subject_is_erased(
        sqlite_mail_store, smtp):
    store = sqlite_mail_store
    store.settings.letter_max_attempts = 1
    access = file(store, RequestKind.ACCESS, "fi")
    queue(store, access, letters.Event.RECEIVED)
    smtp.inbox.refuse = "550 mailbox unavailable"
    worker.deliver_due(store, now=NOW)  # failed, given up
    smtp.inbox.refuse = None
    erasure = file(store, RequestKind.ERASURE, "fi")
    queue(store, erasure, letters.Event.RECEIVED)  # still owed: it stays
    with store.session() as session:
        [given_up] = outbox.letters_of(session, access)
        assert outbox.forget_subject(session, store.settings.home, erasure) == [given_up.id]
        assert (given_up.recipient, given_up.body) == (None, None)
        assert given_up.recipient_masked == "a***@example.fi"
        assert outbox.retry(session, [given_up.id]) == []  # nothing left to send
        [owed] = outbox.letters_of(session, erasure)
        assert owed.recipient == EMAIL
    assert worker.deliver_due(store, now=NOW).sent == [owed.id]


def test_a_server_that_is_down_fails_one_letter_and_leaves_the_rest_queued(sqlite_mail_store,
                                                                           smtp):
    """Each letter would wait for the same dead server: one records why, the rest keep
    their attempts for when it is back."""
    store = sqlite_mail_store
    ids = [file(store, RequestKind.ACCESS, "fi") for _ in range(3)]
    for rid in ids:
        queue(store, rid, letters.Event.RECEIVED)
    smtp.stop()
    report = worker.deliver_due(store, now=NOW)
    assert (len(report.sent), len(report.failed)) == (0, 1)
    with store.session() as session:
        states = [(x.state, x.attempts) for x in outbox.letters_of(session)]
    assert states == [("failed", 1), ("queued", 0), ("queued", 0)]
    smtp.start()
    report = worker.deliver_due(store, now=NOW + timedelta(minutes=2))
    assert len(report.sent) == 3 and len(smtp.inbox.messages) == 3


def test_a_pass_ends_within_its_time_budget(sqlite_mail_store, smtp):
    store = sqlite_mail_store
    for _ in range(3):
        queue(store, file(store, RequestKind.ACCESS, "fi"), letters.Event.RECEIVED)
    ticks = iter(range(0, 1000, 8))  # each look at the clock: 8 s later
    report = worker.deliver_due(store, now=NOW, clock=lambda: next(ticks))
    assert len(report.sent) == 2  # at 8 s and 16 s; at 24 s the 20 s budget is spent
    assert len(worker.deliver_due(store, now=NOW).sent) == 1  # the next pass


def test_a_pdf_letter_sets_an_en_dash_as_a_hyphen_not_a_question_mark():
    """Found in review: the core font has no en dash and NFKD gives none either, so
    "klo 9–16" was printed "klo 9?16"; the replacement came after it was too late."""
    from delivery.post import _latin1

    assert _latin1("klo 9–16, Mäkelä, Erdős") == "klo 9-16, Mäkelä, Erdos"
