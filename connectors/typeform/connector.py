"""Typeform connector (docs/vendors/typeform.md): responses are the source records.

What each action does:

- ``sync(since)``: every form (``GET /forms``, 200 per page), then each form's
  responses with ``page_size=1000``: the first page ``sort=submitted_at,asc``,
  the next ones ``after=<last token>`` (Typeform refuses ``sort`` with ``after``).
  Incremental by ``since`` (inclusive, on submitted_at). A record is one response:
  ``record_id = "<form_id>:<token>"``, identifiers from e-mail and phone answers,
  hidden fields and text variables (never from free text, which may name someone
  else), the display name from name questions. Responses without any identifier
  (anonymous feedback) are not records of a person and are skipped.
- ``find``: per form and per identifier, the ``query`` parameter (Typeform's own
  free-text search over answers, hidden fields and variables), every hit then
  confirmed locally: an e-mail/hidden/variable value equal to the e-mail, a text
  answer that mentions it, or a phone answer equal to the number once normalised.
  Each ref carries what the response itself holds (its e-mail and phone answers,
  hidden fields, a name answer) so the hub can tell the subject's own response from
  one that only mentions them (rule 9).
- ``export``: the responses by id, each answer given its question title from
  ``GET /forms/{id}``; vendor field names kept.
- ``erase``: the referenced responses, and only those, deleted by id
  (``DELETE /forms/{id}/responses?included_response_ids=``), each journalled when
  Typeform accepts it, then read back until gone (bounded). Typeform's "right to be
  forgotten" job is not used: it deletes every response of the account whose text
  merely *contains* the address, other people's included, which nobody approved
  (rule 9), and it cannot say which responses it deleted (rule 3).
- ``opt_out``: Typeform holds no subscription or consent to withdraw: the outcome
  says so per record (``nothing_to_do``).
- ``rectify`` and ``restrict``: the Responses API reads and deletes responses; it
  cannot edit an answer or mark a response. Each response is left to an operator
  (``kept``, so the task waits in manual_pending) with what to do: correct it by
  hand (or, with the subject, delete it), or note the restriction where the company
  keeps such notes.

Every body is validated by ``models.py``: ``{}``, an HTML page or a list where an
object belongs is a BadResponse, never "no responses".
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors import gates
from connectors.base import (
    ConnectorBase,
    matches,
    now_utc,
    parse_time,
    phone_variants,
    wanted,
)
from connectors.errors import NotFound
from connectors.http import (
    HttpClient,
    Limiter,
    RetryPolicy,
    TokenBucket,
    make_client,
    request_id,
)
from connectors.settings import ENV_FILES, load_settings
from connectors.typeform.models import (
    Definition,
    FirstFormsPage,
    FirstResponsesPage,
    Form,
    FormsPage,
    Me,
    Response,
    ResponsesPage,
    dump,
)
from hub import categories
from hub.domain import (
    Action,
    Corrections,
    Export,
    ExportSection,
    Identifier,
    Outcome,
    RecordFacts,
    RecordOutcome,
    RecordRef,
    SourceRecord,
    SyncPage,
)
from hub.identity import normalise_email
from hub.policy import SystemPolicy

SYSTEM = "typeform"
M = TypeVar("M", bound=BaseModel)
FORMS_PAGE_SIZE = 200  # the documented maximum for GET /forms
RESPONSES_PAGE_SIZE = 1000  # the documented maximum for GET /forms/{id}/responses
IDS_PER_CALL = 100  # included_response_ids per request: keeps the URL well under 8 kB
# Typeform allows 2 requests/s per account (saas-apis §C.7) and counts arrivals in a
# sliding second. Requests paced exactly 500 ms apart reach it up to a network jitter
# apart, so every third one lands on the window's edge and earns a 429 and a one-second
# Retry-After (measured against the sandbox with 100 ms latency: 3 of 12 calls). A tenth
# of headroom absorbs 110 ms of jitter and costs less than one such retry.
PACE = 1.8
CURSOR_FORMAT = "%Y-%m-%dT%H:%M:%S"  # what Typeform documents for since/until
NOTHING_TO_DO = ("Typeform keeps no subscription or marketing consent: responses are "
                 "form submissions, erased by an erasure request, not by an opt-out")

_PHONE_KEYS = ("phone", "puhelin", "tel", "mobile", "gsm", "matkapuhelin")
_FIRST = ("first", "etunimi", "given")
_LAST = ("last", "sukunimi", "surname", "family")
_FULL = {"name", "full_name", "fullname", "nimi", "koko nimi", "your name", "full name"}
_EMAIL_CHARS = "a-z0-9._%+-"


class TypeformSettings(BaseSettings):
    """TYPEFORM_* variables (environment first, then ``.env``)."""

    model_config = SettingsConfigDict(env_prefix="TYPEFORM_", env_file=ENV_FILES,
                                      env_file_encoding="utf-8", extra="ignore")

    base_url: str = Field(min_length=1)
    token: SecretStr = Field(min_length=1)
    timeout: float = Field(default=30.0, gt=0)
    # Deletion is asynchronous (200 = registered); Typeform gives no duration. The
    # read-back polls until the responses are gone, bounded: 90 x 2 s.
    delete_poll_interval: float = Field(default=2.0, ge=0)
    delete_max_polls: int = Field(default=90, ge=1)
    # Responses may show up in the API up to ~30 min after submission (§C.3):
    # an incremental cursor never moves past "now - lag", so none is skipped.
    visibility_lag_minutes: int = Field(default=30, ge=0)
    # The client-side pace (PACE, below the vendor's 2/s). A setting so that a test
    # against an emulator whose limit is lifted does not wait half a second per call.
    requests_per_second: float = Field(default=PACE, gt=0)


class TypeformConnector(ConnectorBase):
    system = SYSTEM

    def __init__(
        self,
        settings: TypeformSettings,
        *,
        client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        limiter: Limiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        page_size: int = RESPONSES_PAGE_SIZE,
    ) -> None:
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        if client is None:
            client = make_client(self.base_url, transport=transport, timeout=settings.timeout)
        self.http = HttpClient(
            SYSTEM, client,
            retry=retry or RetryPolicy.from_env(),
            limiter=limiter if limiter is not None
            else TokenBucket(settings.requests_per_second, burst=1),
        )
        self._headers = {"authorization": f"Bearer {settings.token.get_secret_value()}"}
        self._sleep = sleep
        self.page_size = max(1, min(page_size, RESPONSES_PAGE_SIZE))
        self._form_list: list[Form] | None = None
        self._definitions: dict[str, Definition] = {}

    @classmethod
    def from_env(cls, *, client: httpx.Client | None = None, **kwargs: Any) -> TypeformConnector:
        """As the hub builds it: the pace is the account's, kept across every process
        that calls Typeform (``connectors.gates``), not this connector's alone."""
        settings = load_settings(TypeformSettings)
        if "limiter" not in kwargs:
            kwargs["limiter"] = gates.pace(SYSTEM, settings.base_url,
                                           settings.token.get_secret_value(),
                                           settings.requests_per_second)
        return cls(settings, client=client, **kwargs)


    # ------------------------------------------------------------------ plumbing

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              json: Any = None) -> httpx.Response:
        return self.http.request(method, self.base_url + path, params=params, json=json,
                                 headers=self._headers)

    def _get(self, path: str, model: type[M], params: dict[str, Any] | None = None) -> M:
        """A read validated as ``model``: a wrong-shaped 200 is retried, then BadResponse."""
        return self.http.json("GET", self.base_url + path, params=params,
                              headers=self._headers, parse=model)

    def _forms(self) -> list[Form]:
        """Every form, read once per connector: a connector lives for one sync or one
        request's op, and forms are made by hand, not within seconds."""
        if self._form_list is None:
            self._form_list = list(self._read_forms())
        return self._form_list

    def _read_forms(self) -> Iterator[Form]:
        page = 1
        while True:
            model = FirstFormsPage if page == 1 else FormsPage
            body = self._get("/forms", model, {"page": page, "page_size": FORMS_PAGE_SIZE})
            yield from (form for form in body.items if form.id)
            if (not body.items or len(body.items) < FORMS_PAGE_SIZE
                    or page >= body.page_count):
                return
            page += 1

    def _response_pages(self, form_id: str, *, since: str | None = None,
                        query: str | None = None,
                        included: Sequence[str] | None = None) -> Iterator[list[Response]]:
        """Pages of a form's responses, oldest first, walked with ``after`` tokens.

        Ends at the first empty or short page, or when the vendor hands back a
        page whose last token does not advance (so a misbehaving API cannot loop).
        A first page that is empty while counting items is a protocol error (the
        models say so).
        """
        path = f"/forms/{form_id}/responses"
        base: dict[str, Any] = {"page_size": self.page_size}
        if since:
            base["since"] = since
        if query:
            base["query"] = query
        if included:
            base["included_response_ids"] = ",".join(included)
        after: str | None = None
        while True:
            params = dict(base)
            if after:
                params["after"] = after
            else:
                params["sort"] = "submitted_at,asc"
            body = self._get(path, FirstResponsesPage if after is None else ResponsesPage,
                             params)
            if not body.items:
                return
            yield body.items
            last = body.items[-1].id
            if len(body.items) < self.page_size or last == after:
                return
            after = last

    def _fetch(self, form_id: str, tokens: Iterable[str]) -> list[Response]:
        """The responses with these ids that exist now (unknown ids are simply absent)."""
        wanted_tokens = list(dict.fromkeys(tokens))
        found: list[Response] = []
        for i in range(0, len(wanted_tokens), IDS_PER_CALL):
            chunk = wanted_tokens[i:i + IDS_PER_CALL]
            keep = set(chunk)
            for items in self._response_pages(form_id, included=chunk):
                found.extend(item for item in items if item.id in keep)
        return found

    def _definition(self, form_id: str) -> Definition:
        """A form's definition, read once per connector, as the form list is: an access
        request's lookup reads it for the name fields and its export for the question
        titles, and each read waits half a second for Typeform's pace."""
        if form_id not in self._definitions:
            self._definitions[form_id] = self._get(f"/forms/{form_id}", Definition)
        return self._definitions[form_id]

    # ------------------------------------------------------------------- protocol

    def check(self) -> None:
        self._get("/me", Me)

    def sync(self, since: str | None) -> Iterator[SyncPage]:
        """Every form's responses submitted at or after ``since``.

        Each page carries ``since`` itself as the cursor (resuming mid-pass re-reads,
        never skips); the last, empty page carries the new cursor: the latest
        ``submitted_at`` seen, held back by the visibility lag.
        """
        started = now_utc()
        since_dt = parse_time(since) if since else None
        since_param = since_dt.strftime(CURSOR_FORMAT) if since_dt else None
        newest: datetime | None = None
        for form in self._forms():
            try:
                name_fields = _name_fields(self._definition(form.id))
                for items in self._response_pages(form.id, since=since_param):
                    records = []
                    for item in items:
                        submitted = parse_time(item.submitted_at)
                        if submitted and (newest is None or submitted > newest):
                            newest = submitted
                        record = _record(form.id, item, name_fields, submitted)
                        if record is not None:
                            records.append(record)
                    yield SyncPage(records=tuple(records), cursor=since_param)
            except NotFound:
                continue  # the form was deleted while we walked the list
        cursor = since_param
        if newest is not None:
            horizon = started - timedelta(minutes=self.settings.visibility_lag_minutes)
            candidate = min(newest, horizon)
            if since_dt is None or candidate > since_dt:
                cursor = candidate.strftime(CURSOR_FORMAT)
        yield SyncPage(cursor=cursor)

    def find(self, identifiers: Sequence[Identifier]) -> list[RecordRef]:
        emails, phones = wanted(identifiers)
        if not emails and not phones:
            return []
        refs: dict[str, RecordRef] = {}
        # Phone answers are stored in E.164 (Typeform formats them), so the E.164
        # form is the query; free-text mentions are confirmed in all notations.
        needles = sorted(emails) + sorted(phones)
        for form in self._forms():
            try:
                hits = {item.id: item for needle in needles
                        for items in self._response_pages(form.id, query=needle)
                        for item in items if _holds(item, emails, phones)}
                name_fields = _name_fields(self._definition(form.id)) if hits else {}
            except NotFound:
                continue
            for item in hits.values():
                ref = _ref(form, item, name_fields, _mentioned(item, emails, phones))
                refs.setdefault(ref.record_id, ref)
                self.remember(ref.record_id, item)
        return list(refs.values())

    def export(self, refs: Sequence[RecordRef]) -> Export:
        self.begin()
        sections: list[ExportSection] = []
        found = missing = 0
        for form_id, by_token in _by_form(refs).items():
            tokens = list(by_token)
            try:
                definition = self._definition(form_id)
                read = {t: self.recall(f"{form_id}:{t}") for t in tokens}
                items = [i for i in read.values() if i is not None]
                items += self._fetch(form_id, [t for t, i in read.items() if i is None])
            except NotFound:
                missing += len(tokens)
                continue
            titles = {f["id"]: f.get("title") for f in _walk_fields(_fields(definition))}
            found += len(items)
            missing += len(tokens) - len(items)
            if items:
                title = definition.title or form_id
                sections.append(ExportSection(
                    label=f"Typeform: responses to the form “{title}”",
                    source=f"typeform:forms/{form_id}/responses",
                    items=tuple(_labelled(item, titles) for item in items),
                    titles={"fi": f"Typeform: vastaukset lomakkeeseen “{title}”",
                            "sv": f"Typeform: svar på formuläret “{title}”"},
                ))
        return Export(SYSTEM, tuple(sections),
                      evidence={"api_calls": self.op_calls, "responses": found,
                                "not_found": missing, "forms": len(sections)})

    def erase(self, refs: Sequence[RecordRef], policy: SystemPolicy) -> Outcome:
        """Delete exactly the referenced responses by id, journal each as Typeform
        accepts it, and read back until they are gone (bounded).

        Typeform cannot edit a response, so every erase mode means deletion here. A
        response the read-back still shows leaves the outcome unverified, and its
        record says so.
        """
        self.forget_found()
        self.begin()
        records: dict[RecordRef, RecordOutcome] = {}
        for form_id, by_token in _by_form(refs).items():
            records.update((o.ref, o) for o in self._erase_form(form_id, by_token))
        deleted = [ref for ref, o in records.items() if o.action == Action.DELETED]
        left = self._await_gone(deleted)
        polls = self.settings.delete_max_polls
        for ref in left:
            records[ref] = replace(records[ref], detail=(
                f"{records[ref].detail}; read back: still present after {polls} polls"))
        return self.outcome(list(records.values()), not left, deleted_by_id=len(deleted),
                            still_present=len(left))

    def opt_out(self, refs: Sequence[RecordRef]) -> Outcome:
        self.begin()
        records = [RecordOutcome(ref, Action.NOTHING_TO_DO, detail=NOTHING_TO_DO) for ref in refs]
        return self.outcome(records, True, reason=NOTHING_TO_DO)

    def rectify(self, refs: Sequence[RecordRef], corrections: Corrections) -> Outcome:
        return self.by_hand(refs, "Typeform answers cannot be edited through its API "
                                  "(responses are read and deleted only): correct "
                                  f"{', '.join(corrections.fields())} by hand in Typeform, or "
                                  "delete the response if the subject agrees")

    def restrict(self, refs: Sequence[RecordRef], lift: bool) -> Outcome:
        return self.by_hand(refs, "Typeform cannot express a restriction: a response has "
                                  "no field or tag the API can set; "
                                  + ("remove the company's note of the restriction"
                                     if lift else "note the restriction by hand and do not "
                                     "use the response meanwhile"))

    # ------------------------------------------------------------------ erasure parts

    def _erase_form(self, form_id: str, by_token: dict[str, RecordRef]
                    ) -> list[RecordOutcome]:
        """Not found for what is already gone; a deletion asked for the rest."""
        present = self._present(form_id, list(by_token))
        out = [RecordOutcome(ref, Action.NOT_FOUND, "no such response (already deleted?)")
               for token, ref in by_token.items() if token not in present]
        return out + self._delete(form_id, {t: r for t, r in by_token.items() if t in present})

    def _present(self, form_id: str, tokens: list[str]) -> set[str]:
        """The tokens that exist now (none when the form itself is gone)."""
        try:
            return {item.id for item in self._fetch(form_id, tokens)}
        except NotFound:
            return set()

    def _delete(self, form_id: str, by_token: dict[str, RecordRef]) -> list[RecordOutcome]:
        """Ask Typeform to delete these responses, a chunk at a time; each response is
        journalled the moment its chunk is accepted (200 = deletion registered)."""
        out: list[RecordOutcome] = []
        tokens = list(by_token)
        for i in range(0, len(tokens), IDS_PER_CALL):
            chunk = tokens[i:i + IDS_PER_CALL]
            try:
                response = self._call("DELETE", f"/forms/{form_id}/responses",
                                      params={"included_response_ids": ",".join(chunk)})
            except NotFound as exc:
                out += [self.gone(by_token[t], exc, "the form is gone") for t in chunk]
                continue
            out += [self.done(RecordOutcome(
                by_token[t], Action.DELETED, "deleted by id (Typeform deletes asynchronously)",
                status_code=response.status_code,
                vendor_request_id=request_id(response.headers))) for t in chunk]
        return out

    def _await_gone(self, refs: Sequence[RecordRef]) -> list[RecordRef]:
        """Read back until every deleted response is gone; those still there after
        ``delete_max_polls`` reads (empty: all gone)."""
        remaining = _by_form(refs)
        polls = self.settings.delete_max_polls
        for attempt in range(polls):
            remaining = {form_id: kept for form_id, by_token in remaining.items()
                         if (kept := _only(by_token, self._present(form_id, list(by_token))))}
            if not remaining:
                return []
            if attempt < polls - 1:
                self._sleep(self.settings.delete_poll_interval)
        return [ref for by_token in remaining.values() for ref in by_token.values()]


# ---------------------------------------------------------------------- pure helpers


def _by_form(refs: Sequence[RecordRef]) -> dict[str, dict[str, RecordRef]]:
    """form id -> token -> ref, for this system's response refs."""
    out: dict[str, dict[str, RecordRef]] = {}
    for ref in refs:
        if ref.system != SYSTEM:
            continue
        form_id, sep, token = ref.record_id.partition(":")
        if ref.container:
            form_id = ref.container
        if not sep or not token or not form_id:
            continue
        out.setdefault(form_id, {}).setdefault(token, ref)
    return out


def _only(by_token: dict[str, RecordRef], tokens: set[str]) -> dict[str, RecordRef]:
    return {t: r for t, r in by_token.items() if t in tokens}


def _fields(definition: Definition) -> list[dict[str, Any]]:
    return [dump(f) for f in definition.fields]


def _walk_fields(fields: Any) -> Iterator[dict[str, Any]]:
    """Every field of a definition, group and matrix sub-fields included."""
    if not isinstance(fields, list):
        return
    for f in fields:
        if not isinstance(f, dict):
            continue
        if isinstance(f.get("id"), str):
            yield f
        props = f.get("properties")
        if isinstance(props, dict):
            yield from _walk_fields(props.get("fields"))


def _name_fields(definition: Definition) -> dict[str, str]:
    """field id -> "first" | "last" | "full", recognised by ref or title."""
    roles: dict[str, str] = {}
    for f in _walk_fields(_fields(definition)):
        if f.get("type") not in ("short_text", None):
            continue
        words = " ".join(str(f.get(k) or "") for k in ("ref", "title")).lower()
        if any(h in words for h in _FIRST):
            roles[f["id"]] = "first"
        elif any(h in words for h in _LAST):
            roles[f["id"]] = "last"
        elif (str(f.get("ref") or "").lower() in _FULL
              or str(f.get("title") or "").strip().lower() in _FULL):
            roles[f["id"]] = "full"
    return roles


def _exact_values(item: Response) -> tuple[list[str], list[str]]:
    """(e-mails, phones) the response holds as values of their own: e-mail and phone
    answers, hidden fields, text variables."""
    emails: list[str] = []
    phones: list[str] = []
    for a in item.answers or []:
        if a.type == "email" and a.email:
            emails.append(a.email)
        elif a.type == "phone_number" and a.phone_number:
            phones.append(a.phone_number)
    for key, value in (item.hidden or {}).items():
        if not isinstance(value, str) or not value.strip():
            continue
        if "@" in value and normalise_email(value.strip()):
            emails.append(value.strip())
        elif any(h in str(key).lower() for h in _PHONE_KEYS):
            phones.append(value)
    for var in item.variables or []:
        if var.type == "text" and var.text and "@" in var.text and normalise_email(
                var.text.strip()):
            emails.append(var.text.strip())
    return emails, phones


def _texts(item: Response) -> list[str]:
    return [a.text for a in item.answers or [] if a.type == "text" and a.text]


def _mentions(text: str, email: str) -> bool:
    """Whether free text mentions the e-mail as a whole address (any case)."""
    pattern = rf"(?<![{_EMAIL_CHARS}]){re.escape(email)}(?![a-z0-9-]|\.[a-z0-9])"
    return re.search(pattern, text.casefold()) is not None


def _mentioned(item: Response, emails: set[str], phones: set[str]) -> tuple[str, ...]:
    """The wanted identifiers a response's free text names."""
    texts = _texts(item)
    found = [e for e in sorted(emails) if any(_mentions(t, e) for t in texts)]
    found += [p for p in sorted(phones)
              if any(v in t for t in texts for v in phone_variants(p))]
    return tuple(found)


def _holds(item: Response, emails: set[str], phones: set[str]) -> bool:
    """Local confirmation that a response holds one of the subject's identifiers."""
    own_emails, own_phones = _exact_values(item)
    if matches(own_emails, own_phones, emails, phones):
        return True
    for text in _texts(item):
        if any(_mentions(text, e) for e in emails):
            return True
        if any(v in text for p in phones for v in phone_variants(p)):
            return True
    return False


def _name(item: Response, name_fields: dict[str, str]) -> str | None:
    """The respondent's name from the form's name questions, if it has any."""
    parts: dict[str, str] = {}
    for a in item.answers or []:
        role = name_fields.get(a.field.id or "")
        if role and a.text and a.text.strip():
            parts.setdefault(role, a.text.strip())
    name = parts.get("full") or " ".join(p for p in (parts.get("first"), parts.get("last")) if p)
    return name or None


def _record(form_id: str, item: Response, name_fields: dict[str, str],
            submitted: datetime | None) -> SourceRecord | None:
    emails, phones = _exact_values(item)
    if not emails and not phones:
        return None
    return SourceRecord(
        system=SYSTEM,
        record_id=f"{form_id}:{item.id}",
        emails=tuple(dict.fromkeys(emails)),
        phones=tuple(dict.fromkeys(phones)),
        display_name=_name(item, name_fields),
        updated_at=submitted,
        categories=categories.detect(_answers(item)),
    )


def _answers(item: Response) -> list[str]:
    """What the respondent wrote or chose, as text: free text and the labels of choices."""
    out = _texts(item)
    for answer in item.answers or []:
        extra = answer.model_extra or {}
        chosen = [extra.get("choice") or {}, *((extra.get("choices") or {}).get("labels") or [])]
        for choice in chosen:
            if isinstance(choice, dict):
                out += [v for v in (choice.get("label"), choice.get("other")) if v]
            elif isinstance(choice, str):
                out.append(choice)
    return out


def _ref(form: Form, item: Response, name_fields: dict[str, str],
         mentions: tuple[str, ...] = ()) -> RecordRef:
    """A found response, with what it holds as its own values (facts): a response that
    only mentions the subject in free text has none of theirs there, only mentions."""
    submitted = (item.submitted_at or "")[:10]
    label = f"response to “{form.title or form.id}”" + (
        f" submitted {submitted}" if submitted else "")
    emails, phones = _exact_values(item)
    facts = RecordFacts(name=_name(item, name_fields), emails=tuple(dict.fromkeys(emails)),
                        phones=tuple(dict.fromkeys(phones)), mentions=mentions)
    return RecordRef(system=SYSTEM, kind="response", record_id=f"{form.id}:{item.id}",
                     container=form.id, label=label, facts=facts)


def _labelled(item: Response, titles: dict[str, Any]) -> dict[str, Any]:
    """The response as Typeform gave it, each answer with its question title added."""
    out = dump(item)
    out["answers"] = [{**dump(a), "question": titles.get(a.field.id or "")}
                      for a in item.answers or []]
    return out
