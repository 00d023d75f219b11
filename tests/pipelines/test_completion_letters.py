"""The request job queues the subject's completion letter once the request settles."""

from hub import letters, outbox
from hub.ledger import RequestKind
from tests.pipelines.jobs import file_request, run, run_to_the_end

EMAIL = "aino.virtanen@example.fi"


def completion(store, request_id):
    with store.session() as session:
        return [(x.kind, x.recipient, x.body, x.attachments)
                for x in outbox.letters_of(session, request_id)]


def test_erasure_then_access_letters_say_what_was_erased_and_what_is_kept(indexed, vendors,
                                                                         resources):
    erasure = file_request(indexed, RequestKind.ERASURE, EMAIL, name="Aino Virtanen")
    first = run(erasure, resources)
    assert first.success and completion(indexed, erasure) == []  # waits for an operator
    assert run_to_the_end(indexed, erasure, resources).success
    [(kind, recipient, body, _)] = completion(indexed, erasure)
    assert (kind, recipient) == ("completion", EMAIL)  # kept until it is sent
    text = letters.as_text(body)
    assert "Hyvä Aino Virtanen" in text
    assert "Pipedrive (asiakkuudenhallinta): poistettu" in text
    assert "Mailchimp (postituslistat): poistettu pysyvästi" in text
    assert "Visma Netvisor (kirjanpito): säilytetään" in text
    assert "Peruste: Kirjanpitolaki" in text and "31.12.20" in text
    assert "Tietosuojavaltuutetun toimisto" in text

    access = file_request(indexed, RequestKind.ACCESS, EMAIL)
    assert run_to_the_end(indexed, access, resources).success
    [(kind, _, body, attachments)] = completion(indexed, access)
    assert attachments == [f"exports/{access}/index.html", f"exports/{access}/data.json"]
    text = letters.as_text(body)
    assert "15 artikla" in text and "Mitä säilytämme ja miksi" in text
    assert "Visma Netvisor (kirjanpito)" in text and "Säilytysaika: 6 vuotta" in text
