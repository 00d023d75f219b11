"""Letters to the subject, in Finnish, Swedish or English, queued in the outbox.

The statements promise an answer in writing within a month; GDPR art. 12 says what
it must contain. Each step of a request that the subject must hear about is an
`Event`; `queue_for` renders its letter from the request, its tasks' evidence, the
policy and the hub's holds, and queues it once (the key is request id and letter
kind), in the transaction of the step itself.

Who calls it: the places that change a request's state, after the change: `hub
request new/extend/reject/ask-identity` (hub/cli.py), the request job's `complete`
op (pipelines/requests.py), and the desk. The ledger itself stays free of letters:
rendering needs the policy and the hub home, which the ledger does not know.

Templates are Jinja2 with autoescaping: a name or a reason typed by anyone is text,
never markup. The body is HTML; the plain-text part and the PDF are made from it
(`as_text`), so the three never say different things.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy.orm import Session

from hub import audit, deadlines, holds, ledger
from hub.bundle import EXPORTS
from hub.domain import IdentifierKind
from hub.hashing import Hasher
from hub.identity import mask_email, mask_text
from hub.ledger import Language, RequestKind
from hub.models import SubjectRequestRow, TaskRow
from hub.outbox import Channel, Draft, enqueue
from hub.policy import Policy
from hub.settings import Settings


class Event(StrEnum):
    """A step of a request the subject is told about, and the letter it gets."""

    RECEIVED = "acknowledgement"
    IDENTITY = "identity"
    EXTENDED = "extension"
    REJECTED = "refusal"
    COMPLETED = "completion"


# Requests the hub files itself (an erased person reappearing in a sync): nobody
# asked, so nobody is written to.
HUB_ORIGINS = frozenset({"reappearance", "resubscription"})

# The supervisory authority (GDPR art. 77), as it publishes its contact details.
DPO = {
    "fi": {"name": "Tietosuojavaltuutetun toimisto", "visit": "Lintulahdenkuja 4, "
           "00530 Helsinki", "post": "PL 800, 00531 Helsinki"},
    "sv": {"name": "Dataombudsmannens byrå", "visit": "Fågelviksgränden 4, "
           "00530 Helsingfors", "post": "PB 800, 00531 Helsingfors"},
    "en": {"name": "Office of the Data Protection Ombudsman (Tietosuojavaltuutetun toimisto)",
           "visit": "Lintulahdenkuja 4, 00530 Helsinki, Finland",
           "post": "P.O. Box 800, FI-00531 Helsinki, Finland"},
}
DPO_CONTACT = {"email": "tietosuoja@om.fi", "phone": "029 566 6700", "web": "tietosuoja.fi"}

SUBJECTS = {
    "fi": {"acknowledgement": "Pyyntösi {id} on vastaanotettu",
           "identity": "Pyyntösi {id}: henkilöllisyyden varmistaminen",
           "extension": "Pyyntösi {id}: vastausaikaa jatketaan",
           "refusal": "Pyyntösi {id}: emme voi toteuttaa pyyntöä",
           "completion": "Pyyntösi {id} on käsitelty"},
    "sv": {"acknowledgement": "Din begäran {id} har tagits emot",
           "identity": "Din begäran {id}: kontroll av identitet",
           "extension": "Din begäran {id}: svarstiden förlängs",
           "refusal": "Din begäran {id}: vi kan inte tillmötesgå begäran",
           "completion": "Din begäran {id} har behandlats"},
    "en": {"acknowledgement": "Your request {id} has been received",
           "identity": "Your request {id}: confirming your identity",
           "extension": "Your request {id}: we need more time",
           "refusal": "Your request {id}: we cannot act on it",
           "completion": "Your request {id} has been dealt with"},
}

# What was done in a system, as the subject reads it (from the task's summary action).
ACTIONS = {
    "fi": {"rectified": "oikaistu", "restricted": "käsittelyä rajoitettu",
           "lifted": "rajoitus poistettu", "done_by_hand": "käsitelty käsin",
           "deleted": "poistettu", "permanently_deleted": "poistettu pysyvästi",
           "anonymised": "anonymisoitu", "deactivated": "poistettu käytöstä",
           "unsubscribed": "markkinointi lopetettu", "exported": "tiedot koottu",
           "retained": "säilytetään lain nojalla (ks. alla)", "not_found": "ei tietoja sinusta",
           "nothing_to_do": "ei toimenpiteitä tarvittu", "unlinked": "yhteys sinuun poistettu",
           "kept": "käsitelty käsin", "confirmed_done": "käsitelty käsin"},
    "sv": {"rectified": "rättade", "restricted": "behandlingen begränsad",
           "lifted": "begränsningen hävd", "done_by_hand": "hanterat manuellt",
           "deleted": "raderade", "permanently_deleted": "raderade permanent",
           "anonymised": "anonymiserade", "deactivated": "avaktiverade",
           "unsubscribed": "marknadsföringen avslutad", "exported": "uppgifterna sammanställda",
           "retained": "sparas enligt lag (se nedan)", "not_found": "inga uppgifter om dig",
           "nothing_to_do": "inga åtgärder behövdes", "unlinked": "kopplingen till dig borttagen",
           "kept": "hanterat manuellt", "confirmed_done": "hanterat manuellt"},
    "en": {"rectified": "corrected", "restricted": "processing restricted",
           "lifted": "restriction lifted", "done_by_hand": "dealt with by hand",
           "deleted": "deleted", "permanently_deleted": "permanently deleted",
           "anonymised": "anonymised", "deactivated": "deactivated",
           "unsubscribed": "marketing stopped", "exported": "data gathered",
           "retained": "kept by law (see below)", "not_found": "nothing about you held",
           "nothing_to_do": "nothing needed doing", "unlinked": "the link to you removed",
           "kept": "dealt with by hand", "confirmed_done": "dealt with by hand"},
}

MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August",
             "September", "October", "November", "December")


def _day(value: date, language: str) -> str:
    """A date as people in that language write it: 2.12.2026, or 2 December 2026."""
    if language == "en":
        return f"{value.day} {MONTHS_EN[value.month - 1]} {value.year}"
    return f"{value.day}.{value.month}.{value.year}"


_ENV = Environment(loader=PackageLoader("hub", "templates"),
                   autoescape=select_autoescape(["html"], default=True),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render(template: str, language: str, **context: Any) -> str:
    """Render `templates/<template>` with the language's date format; HTML, escaped."""
    env = _ENV.overlay()
    env.filters["day"] = lambda value: _day(value, language)
    return env.get_template(template).render(lang=language, **context).strip() + "\n"


# ---------------------------------------------------------------- HTML to plain text


class _Text(HTMLParser):
    BLOCKS = {"p", "h1", "h2", "h3", "ul", "ol", "table", "address", "div"}

    HIDDEN = {"style", "script", "title", "head"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag in self.BLOCKS or tag == "pre":
            self.out.append("\n\n")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in ("br", "tr"):
            self.out.append("\n")
        elif tag in ("td", "th"):
            self.out.append("  ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self.BLOCKS:
            self.out.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        self.out.append(" ".join(data.split()) if data.strip() else (" " if data else ""))


def as_text(body: str) -> str:
    """The plain-text version of a letter's HTML body: paragraphs, bullets, line breaks."""
    parser = _Text()
    parser.feed(body)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.out).split("\n")]
    text, blank = [], False
    for line in lines:
        if not line:
            blank = bool(text)
            continue
        if blank:
            text.append("")
        text.append(line)
        blank = False
    return "\n".join(text) + "\n"


# ---------------------------------------------------------------------- recipients


@dataclass(frozen=True)
class Recipient:
    """Where a letter goes: an e-mail address, or a name and postal address for post."""

    channel: Channel
    address: str
    masked: str
    name: str | None = None
    """The subject's name for the greeting: gone from the request once it settles."""


def recipient_of(session: Session, row: SubjectRequestRow) -> Recipient | None:
    """The subject's address for letters, while the request still holds it.

    A request that came by letter is answered by post when a postal address was
    given; otherwise (and for every other channel) by e-mail to the first e-mail
    address given. None when the request holds neither: nobody can be written to.
    Call it before a step that scrubs the request (reject, finalise) and pass the
    result to `queue_for`.
    """
    emails = [i.value for i in ledger.identifiers_of(session, row.id)
              if i.kind == IdentifierKind.EMAIL]
    post = None
    if row.postal_address:
        lines = [line.strip() for line in row.postal_address.splitlines() if line.strip()]
        block = "\n".join(([row.subject_name] if row.subject_name else []) + lines)
        post = Recipient(Channel.POST, block, "post: " + mask_text(block.splitlines()[0]),
                         row.subject_name)
    if post is not None and (row.channel == ledger.Channel.LETTER or not emails):
        return post
    if emails:
        return Recipient(Channel.EMAIL, emails[0], mask_email(emails[0]), row.subject_name)
    return None


# -------------------------------------------------------------------------- queuing


def reject(session: Session, request_id: str, reason: str, *, actor: str,
           settings: Settings, hasher: Hasher) -> tuple[SubjectRequestRow, Draft | None]:
    """Reject the request and queue the letter that tells the subject why.

    The one way to reject, for the command line and the desk alike: the recipient is
    read before the rejection drops the request's identifiers, or no letter could go.
    """
    to = recipient_of(session, ledger.get_request(session, request_id))
    row = ledger.reject(session, request_id, reason, actor=actor)
    return row, queue_for(session, row, Event.REJECTED, settings=settings, hasher=hasher,
                          recipient=to)


def queue_for(session: Session, row: SubjectRequestRow, event: Event, *, settings: Settings,
              hasher: Hasher, policy: Policy | None = None, recipient: Recipient | None = None,
              note: str | None = None, now: datetime | None = None) -> Draft | None:
    """Render the letter for `event` and queue it once; None when there is no one to
    write to (a request the hub filed itself, or one with no address left).

    ``recipient`` is for steps that scrub the request: read it with `recipient_of`
    before the step. ``note`` is what the identity letter asks for.
    """
    if row.origin in HUB_ORIGINS:
        return None
    if event == Event.EXTENDED:
        _within_first_month(row, settings.timezone, now)
    to = recipient or recipient_of(session, row)
    if to is None:
        audit.append(session, "letter.no_address", {"kind": event.value},
                     request_id=row.id, now=now)
        return None
    language = Language(row.language).value
    context = _context(session, row, event, settings, policy, to, note, now)
    body = render(f"letters/{language}/{event.value}.html", language, **context)
    draft = Draft(
        key=f"{row.id}:{event.value}", kind=event.value, language=language,
        channel=to.channel, recipient=to.address, recipient_masked=to.masked,
        subject=SUBJECTS[language][event.value].format(id=row.id), body=body,
        request_id=row.id, attachments=tuple(context.get("attachments", ())),
    )
    enqueue(session, hasher, draft, now=now)
    return draft


def _within_first_month(row: SubjectRequestRow, timezone: str, now: datetime | None) -> None:
    """Art. 12(3): the subject must be told of an extension within the first month."""
    if row.extended_due_on is None:
        raise ledger.LedgerError(f"request {row.id} was not extended: no extension letter")
    if deadlines.local_date(now or datetime.now(UTC), timezone) > row.due_on:
        raise ledger.LedgerError(
            f"request {row.id} was due on {row.due_on}: the extension must be told to the "
            "subject within the first month")


def _context(session: Session, row: SubjectRequestRow, event: Event, settings: Settings,
             policy: Policy | None, to: Recipient, note: str | None,
             now: datetime | None) -> dict[str, Any]:
    language = Language(row.language).value
    today = deadlines.local_date(now or datetime.now(UTC), settings.timezone)
    context: dict[str, Any] = {
        "request_id": row.id, "kind": row.kind, "name": to.name or row.subject_name,
        "received": deadlines.local_date(row.received_at, settings.timezone),
        "due": ledger.effective_due(row), "original_due": row.due_on,
        "extension_reason": row.extension_reason, "reason": row.state_reason,
        "controller": settings.controller_name, "contact": settings.controller_contact,
        "dpo": DPO[language], "dpo_contact": DPO_CONTACT, "note": note,
        "by_post": to.channel == Channel.POST, "today": today,
    }
    if event == Event.COMPLETED:
        tasks = ledger.tasks_of(session, row.id)
        context.update(_outcomes(session, row, tasks, language, policy, today))
        if RequestKind(row.kind) == RequestKind.ACCESS:
            context.update(_access(settings.home, row.id, tasks, policy, language))
    return context


def _title(policy: Policy | None, system: str, language: str) -> str:
    return policy.title(system, language) if policy is not None else system


def _outcomes(session: Session, row: SubjectRequestRow, tasks: list[TaskRow], language: str,
              policy: Policy | None, today: date) -> dict[str, Any]:
    """What was done where, and what is kept, from the tasks' evidence and the holds."""
    systems, kept = [], []
    for task in tasks:
        evidence = task.evidence or {}
        action = task.action or task.state
        if evidence.get("confirmed") and action not in ACTIONS[language]:
            action = "confirmed_done"
        systems.append({"title": _title(policy, task.system, language),
                        "outcome": ACTIONS[language].get(action, action)})
        for rec in evidence.get("records", []):
            if rec.get("retained_until"):
                kept.append({"title": _title(policy, task.system, language),
                             "basis": rec.get("legal_basis") or "",
                             "until": date.fromisoformat(rec["retained_until"])})
    for hold in holds.holds_of_subject(session, row.id, today):
        item = {"title": _title(policy, hold.system, language), "basis": hold.legal_basis,
                "until": hold.held_until}
        if item not in kept:
            kept.append(item)
    return {"systems": systems, "kept": kept}


def _retention(policy: Policy | None, system: str) -> dict[str, Any] | None:
    rules = policy.systems.get(system) if policy is not None else None
    if rules is None or rules.retention_years is None:
        return None
    return {"years": rules.retention_years, "basis": rules.retention_basis or ""}


def _access(home: Path, request_id: str, tasks: list[TaskRow],
            policy: Policy | None, language: str) -> dict[str, Any]:
    """Art. 15(1) from the bundle and the tasks: per system that holds anything (data or
    a record kept by law), its purposes and basis, categories and retention; the
    bundle's files go with the letter."""
    folder = home / EXPORTS / request_id
    data_file = folder / "data.json"
    data = json.loads(data_file.read_text("utf-8")) if data_file.exists() else {"systems": {}}
    holding = {t.system for t in tasks if t.state != ledger.TaskState.NOT_FOUND.value}
    described = []
    for system in sorted(set(data.get("systems", {})) | set(data.get("retained") or {})
                         | holding):
        sections = data["systems"].get(system, {}).get("sections", [])
        rules = policy.systems.get(system) if policy is not None else None
        described.append({
            "title": _title(policy, system, language),
            "basis": rules.legal_basis if rules is not None else "",
            "categories": [(s.get("titles") or {}).get(language) or s["label"]
                           for s in sections if s.get("items")],
            "records": sum(len(s.get("items", [])) for s in sections),
            "retention": _retention(policy, system),
        })
    files = [f"{EXPORTS}/{request_id}/{name}" for name in ("index.html", "data.json")
             if (folder / name).exists()]
    return {"described": described, "attachments": files}
