"""Typeform connector (reference §C): responses are the source records.

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
- ``export``: the responses by id, each answer given its question title from
  ``GET /forms/{id}``; vendor field names kept.
- ``erase``: Typeform's "right to be forgotten" job (``DELETE /rtbf/{account}/
  responses`` with the subject's e-mails), polled to ``Done`` with a bound; then
  every form is queried again for those e-mails and the referenced responses are
  read back. Whatever is still there (a response matched by phone only, or one
  the job did not cover) is deleted by id and read back until gone (bounded).
- ``opt_out``: Typeform holds no subscription or consent to withdraw: the outcome
  says so per record (``nothing_to_do``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.base import (
    ConnectorBase,
    matches,
    now_utc,
    parse_time,
    phone_variants,
    wanted,
)
from connectors.errors import BadResponse, NotFound, VendorError
from connectors.http import HttpClient, Limiter, RetryPolicy, TokenBucket, make_client
from connectors.settings import ENV_FILES, load_settings
from hub.domain import (
    Action,
    Export,
    ExportSection,
    Identifier,
    Outcome,
    RecordOutcome,
    RecordRef,
    SourceRecord,
    SyncPage,
)
from hub.identity import normalise_email
from hub.policy import SystemPolicy

SYSTEM = "typeform"
FORMS_PAGE_SIZE = 200  # the documented maximum for GET /forms
RESPONSES_PAGE_SIZE = 1000  # the documented maximum for GET /forms/{id}/responses
IDS_PER_CALL = 100  # included_response_ids per request: keeps the URL well under 8 kB
MAX_DELETE_IDS = 1000  # DELETE /forms/{id}/responses accepts up to 1000 ids
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
    # The RTBF job is asynchronous; Typeform gives no duration. Bounded: 90 x 2 s.
    rtbf_poll_interval: float = Field(default=2.0, ge=0)
    rtbf_max_polls: int = Field(default=90, ge=1)
    # Responses may show up in the API up to ~30 min after submission (§C.3):
    # an incremental cursor never moves past "now - lag", so none is skipped.
    visibility_lag_minutes: int = Field(default=30, ge=0)


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
            retry=retry or RetryPolicy(),
            limiter=limiter if limiter is not None else TokenBucket(PACE, burst=1),
        )
        self._headers = {"authorization": f"Bearer {settings.token.get_secret_value()}"}
        self._sleep = sleep
        self.page_size = max(1, min(page_size, RESPONSES_PAGE_SIZE))
        self._account: str | None = None
        self._form_list: list[dict[str, Any]] | None = None
        # Responses as `find` read them, by record id: an access export in the same op
        # reuses them. Erasure reads afresh and drops them: it deletes.
        self._found: dict[str, dict[str, Any]] = {}

    @classmethod
    def from_env(cls, *, client: httpx.Client | None = None, **kwargs: Any) -> TypeformConnector:
        return cls(load_settings(TypeformSettings), client=client, **kwargs)

    @property
    def api_calls(self) -> int:
        return self.http.api_calls

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------ plumbing

    def _call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
              json: Any = None) -> httpx.Response:
        return self.http.request(method, self.base_url + path, params=params, json=json,
                                 headers=self._headers)

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self._call("GET", path, params=params)
        try:
            body = response.json()
        except ValueError:
            raise BadResponse(SYSTEM, f"GET {_shape(path)}: body is not JSON",
                              status_code=response.status_code) from None
        if not isinstance(body, dict):
            raise BadResponse(SYSTEM, f"GET {_shape(path)}: expected a JSON object",
                              status_code=response.status_code)
        return body

    def _items(self, body: dict[str, Any], path: str) -> list[dict[str, Any]]:
        items = body.get("items")
        if items is None:
            items = []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise BadResponse(SYSTEM, f"GET {_shape(path)}: 'items' is not a list of objects")
        return items

    def _forms(self) -> list[dict[str, Any]]:
        """Every form, read once per connector: a connector lives for one sync or one
        request's op, and forms are made by hand, not within seconds."""
        if self._form_list is None:
            self._form_list = list(self._read_forms())
        return self._form_list

    def _read_forms(self) -> Iterator[dict[str, Any]]:
        page = 1
        while True:
            body = self._get("/forms", {"page": page, "page_size": FORMS_PAGE_SIZE})
            items = self._items(body, "/forms")
            for item in items:
                if isinstance(item.get("id"), str) and item["id"]:
                    yield item
            page_count = body.get("page_count")
            if (not items or len(items) < FORMS_PAGE_SIZE
                    or not isinstance(page_count, int) or page >= page_count):
                return
            page += 1

    def _response_pages(self, form_id: str, *, since: str | None = None,
                        query: str | None = None,
                        included: Sequence[str] | None = None) -> Iterator[list[dict[str, Any]]]:
        """Pages of a form's responses, oldest first, walked with ``after`` tokens.

        Ends at the first empty or short page, or when the vendor hands back a
        page whose last token does not advance (so a misbehaving API cannot loop).
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
            items = self._items(self._get(path, params), path)
            if not items:
                return
            yield items
            last = _token(items[-1])
            if len(items) < self.page_size or not last or last == after:
                return
            after = last

    def _fetch(self, form_id: str, tokens: Iterable[str]) -> list[dict[str, Any]]:
        """The responses with these ids that exist now (unknown ids are simply absent)."""
        wanted_tokens = list(dict.fromkeys(tokens))
        found: list[dict[str, Any]] = []
        for i in range(0, len(wanted_tokens), IDS_PER_CALL):
            chunk = wanted_tokens[i:i + IDS_PER_CALL]
            keep = set(chunk)
            for items in self._response_pages(form_id, included=chunk):
                found.extend(item for item in items if _token(item) in keep)
        return found

    def _account_id(self) -> str:
        """The account id RTBF needs: from ``/me``, else from the first workspace."""
        if self._account:
            return self._account
        me = self._get("/me")
        account = me.get("account_id")
        if not isinstance(account, str) or not account:
            workspaces = self._items(self._get("/workspaces", {"page_size": 1}), "/workspaces")
            account = workspaces[0].get("account_id") if workspaces else None
        if not isinstance(account, str) or not account:
            raise BadResponse(SYSTEM, "neither /me nor /workspaces gives an account_id")
        self._account = account
        return account

    # ------------------------------------------------------------------- protocol

    def check(self) -> None:
        self._get("/me")

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
            form_id = form["id"]
            try:
                name_fields = _name_fields(self._get(f"/forms/{form_id}"))
                for items in self._response_pages(form_id, since=since_param):
                    records = []
                    for item in items:
                        submitted = parse_time(item.get("submitted_at"))
                        if submitted and (newest is None or submitted > newest):
                            newest = submitted
                        record = _record(form_id, item, name_fields, submitted)
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
            form_id = form["id"]
            try:
                for needle in needles:
                    for items in self._response_pages(form_id, query=needle):
                        for item in items:
                            if _holds(item, emails, phones):
                                ref = _ref(form_id, form.get("title"), item)
                                refs.setdefault(ref.record_id, ref)
                                self._found[ref.record_id] = item
            except NotFound:
                continue
        return list(refs.values())

    def export(self, refs: Sequence[RecordRef]) -> Export:
        start = self.api_calls
        sections: list[ExportSection] = []
        found = missing = 0
        for form_id, tokens in _by_form(refs).items():
            try:
                definition = self._get(f"/forms/{form_id}")
                read = {t: self._found.get(f"{form_id}:{t}") for t in tokens}
                items = [i for i in read.values() if i is not None]
                items += self._fetch(form_id, [t for t, i in read.items() if i is None])
            except NotFound:
                missing += len(tokens)
                continue
            titles = {f["id"]: f.get("title") for f in _walk_fields(definition.get("fields"))}
            found += len(items)
            missing += len(set(tokens)) - len(items)
            if items:
                title = definition.get("title") or form_id
                sections.append(ExportSection(
                    label=f"Typeform: responses to the form “{title}”",
                    source=f"typeform:forms/{form_id}/responses",
                    items=tuple(_labelled(item, titles) for item in items),
                ))
        return Export(SYSTEM, tuple(sections),
                      evidence={"api_calls": self.api_calls - start, "responses": found,
                                "not_found": missing, "forms": len(sections)})

    def erase(self, refs: Sequence[RecordRef], policy: SystemPolicy) -> Outcome:
        """Delete the responses (RTBF job by e-mail, then by id for the rest), read back.

        Typeform cannot edit a response, so every erase mode means deletion here.
        """
        self._found.clear()
        start = self.api_calls
        by_form = _by_form(refs)
        present: dict[str, dict[str, Any]] = {}
        for form_id, tokens in by_form.items():
            try:
                for item in self._fetch(form_id, tokens):
                    present[f"{form_id}:{_token(item)}"] = item
            except NotFound:
                continue  # the form itself is gone, and its responses with it
        emails = _subject_emails(present.values())
        evidence: dict[str, Any] = {"rtbf_emails": len(emails), "rtbf_jobs": [],
                                    "deleted_by_id": 0}
        jobs: list[str] = []
        if emails:
            account = self._account_id()
            jobs = self._start_rtbf(account, emails)
            evidence["rtbf_jobs"] = jobs
            self._await_jobs(account, jobs)
        # Read back: every form queried again for each e-mail, and the references.
        leftover = self._matching(emails) if emails else {}
        for form_id, tokens in _by_form([r for r in refs if r.record_id in present]).items():
            try:
                for item in self._fetch(form_id, tokens):
                    leftover[f"{form_id}:{_token(item)}"] = item
            except NotFound:
                continue
        by_id: set[str] = set()
        if leftover:
            by_id = set(leftover)
            self._delete_by_id(leftover)
            evidence["deleted_by_id"] = len(by_id)
        records = []
        for ref in refs:
            if ref.record_id not in present:
                records.append(RecordOutcome(ref, Action.NOT_FOUND,
                                             detail="no such response (already deleted?)"))
            elif ref.record_id in by_id:
                records.append(RecordOutcome(ref, Action.DELETED, status_code=200,
                                             detail="deleted by id; read back: gone"))
            else:
                records.append(RecordOutcome(
                    ref, Action.DELETED, status_code=200,
                    vendor_request_id=",".join(jobs) or None,
                    detail="deleted by the RTBF job (Done); read back: gone"))
        evidence["api_calls"] = self.api_calls - start
        evidence["actions"] = {a.value: sum(1 for r in records if r.action == a)
                               for a in {r.action for r in records}}
        return Outcome(SYSTEM, tuple(records), verified=True, evidence=evidence, at=now_utc())

    def opt_out(self, refs: Sequence[RecordRef]) -> Outcome:
        records = tuple(RecordOutcome(ref, Action.NOTHING_TO_DO, detail=NOTHING_TO_DO)
                        for ref in refs)
        return Outcome(SYSTEM, records, verified=True,
                       evidence={"api_calls": 0, "reason": NOTHING_TO_DO}, at=now_utc())

    # ------------------------------------------------------------------ erasure parts

    def _start_rtbf(self, account: str, emails: Sequence[str]) -> list[str]:
        response = self._call("DELETE", f"/rtbf/{account}/responses", json=list(emails))
        try:
            jobs = response.json()
        except ValueError:
            raise BadResponse(SYSTEM, "RTBF: body is not JSON",
                              status_code=response.status_code) from None
        if not isinstance(jobs, list) or not all(isinstance(j, str) and j for j in jobs):
            raise BadResponse(SYSTEM, "RTBF: expected a JSON array of job ids",
                              status_code=response.status_code)
        return jobs

    def _await_jobs(self, account: str, jobs: Sequence[str]) -> None:
        """Poll each job until ``Done``, at most ``rtbf_max_polls`` rounds.

        A job-status endpoint that answers 404 (Typeform may retire it) is not an
        error: the read-back that follows proves the deletion either way.
        """
        pending = list(jobs)
        polls = self.settings.rtbf_max_polls
        for attempt in range(polls):
            still = []
            for job in pending:
                try:
                    body = self._get(f"/rtbf/{account}/job/{job}")
                except NotFound:
                    continue
                status = str(body.get("status", "")).lower()
                if status == "failed":
                    raise VendorError(SYSTEM, f"RTBF job {job} reported status Failed")
                if status != "done":
                    still.append(job)
            pending = still
            if not pending:
                return
            if attempt < polls - 1:
                self._sleep(self.settings.rtbf_poll_interval)
        waited = self.settings.rtbf_poll_interval * (polls - 1)
        raise VendorError(
            SYSTEM,
            f"RTBF job(s) {', '.join(pending)} not Done after {polls} polls "
            f"(~{waited:g} s); the deletion is not confirmed, retry the task later")

    def _matching(self, emails: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Responses in any form that still hold one of these e-mails."""
        want = set(emails)
        hits: dict[str, dict[str, Any]] = {}
        for form in self._forms():
            form_id = form["id"]
            try:
                for email in emails:
                    for items in self._response_pages(form_id, query=email):
                        for item in items:
                            if _holds(item, want, set()):
                                hits[f"{form_id}:{_token(item)}"] = item
            except NotFound:
                continue
        return hits

    def _delete_by_id(self, items: dict[str, dict[str, Any]]) -> None:
        by_form: dict[str, list[str]] = {}
        for key in items:
            form_id, _, token = key.partition(":")
            by_form.setdefault(form_id, []).append(token)
        for form_id, tokens in by_form.items():
            for i in range(0, len(tokens), IDS_PER_CALL):
                chunk = tokens[i:i + IDS_PER_CALL]
                try:
                    self._call("DELETE", f"/forms/{form_id}/responses",
                               params={"included_response_ids": ",".join(chunk)})
                except NotFound:
                    continue
        # Deletion is asynchronous (200 = registered): read back until gone, bounded.
        polls = self.settings.rtbf_max_polls
        remaining = dict(by_form)
        for attempt in range(polls):
            nxt: dict[str, list[str]] = {}
            for form_id, tokens in remaining.items():
                try:
                    left = [_token(i) for i in self._fetch(form_id, tokens)]
                except NotFound:
                    left = []
                if left:
                    nxt[form_id] = left
            remaining = nxt
            if not remaining:
                return
            if attempt < polls - 1:
                self._sleep(self.settings.rtbf_poll_interval)
        count = sum(len(t) for t in remaining.values())
        raise VendorError(SYSTEM, f"{count} response(s) still present after deletion by id "
                                  f"and {polls} read-backs; retry the task later")


# ---------------------------------------------------------------------- pure helpers


def _shape(path: str) -> str:
    """A path with ids replaced, for error messages (ids are not personal data, but
    a query string could carry an e-mail)."""
    return path.split("?", 1)[0]


def _token(item: dict[str, Any]) -> str:
    value = item.get("token") or item.get("response_id")
    return value if isinstance(value, str) else ""


def _by_form(refs: Sequence[RecordRef]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ref in refs:
        if ref.system != SYSTEM:
            continue
        form_id, sep, token = ref.record_id.partition(":")
        if ref.container:
            form_id = ref.container
        if not sep or not token or not form_id:
            continue
        out.setdefault(form_id, [])
        if token not in out[form_id]:
            out[form_id].append(token)
    return out


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


def _name_fields(definition: dict[str, Any]) -> dict[str, str]:
    """field id -> "first" | "last" | "full", recognised by ref or title."""
    roles: dict[str, str] = {}
    for f in _walk_fields(definition.get("fields")):
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


def _answers(item: dict[str, Any]) -> list[dict[str, Any]]:
    answers = item.get("answers")
    return [a for a in answers if isinstance(a, dict)] if isinstance(answers, list) else []


def _field_id(answer: dict[str, Any]) -> str | None:
    field = answer.get("field")
    return field.get("id") if isinstance(field, dict) else None


def _exact_values(item: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(e-mails, phones) the response holds as values of their own: e-mail and phone
    answers, hidden fields, text variables."""
    emails: list[str] = []
    phones: list[str] = []
    for a in _answers(item):
        if a.get("type") == "email" and isinstance(a.get("email"), str):
            emails.append(a["email"])
        elif a.get("type") == "phone_number" and isinstance(a.get("phone_number"), str):
            phones.append(a["phone_number"])
    hidden = item.get("hidden")
    if isinstance(hidden, dict):
        for key, value in hidden.items():
            if not isinstance(value, str) or not value.strip():
                continue
            if "@" in value and normalise_email(value.strip()):
                emails.append(value.strip())
            elif any(h in str(key).lower() for h in _PHONE_KEYS):
                phones.append(value)
    variables = item.get("variables")
    if isinstance(variables, list):
        for var in variables:
            if (isinstance(var, dict) and var.get("type") == "text"
                    and isinstance(var.get("text"), str) and "@" in var["text"]
                    and normalise_email(var["text"].strip())):
                emails.append(var["text"].strip())
    return emails, phones


def _texts(item: dict[str, Any]) -> list[str]:
    return [a["text"] for a in _answers(item)
            if a.get("type") == "text" and isinstance(a.get("text"), str)]


def _mentions(text: str, email: str) -> bool:
    """Whether free text mentions the e-mail as a whole address (any case)."""
    pattern = rf"(?<![{_EMAIL_CHARS}]){re.escape(email)}(?![a-z0-9-]|\.[a-z0-9])"
    return re.search(pattern, text.casefold()) is not None


def _holds(item: dict[str, Any], emails: set[str], phones: set[str]) -> bool:
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


def _record(form_id: str, item: dict[str, Any], name_fields: dict[str, str],
            submitted: datetime | None) -> SourceRecord | None:
    token = _token(item)
    emails, phones = _exact_values(item)
    if not token or (not emails and not phones):
        return None
    parts: dict[str, str] = {}
    for a in _answers(item):
        role = name_fields.get(_field_id(a) or "")
        if role and isinstance(a.get("text"), str) and a["text"].strip():
            parts.setdefault(role, a["text"].strip())
    name = parts.get("full") or " ".join(p for p in (parts.get("first"), parts.get("last")) if p)
    return SourceRecord(
        system=SYSTEM,
        record_id=f"{form_id}:{token}",
        emails=tuple(dict.fromkeys(emails)),
        phones=tuple(dict.fromkeys(phones)),
        display_name=name or None,
        updated_at=submitted,
    )


def _ref(form_id: str, title: Any, item: dict[str, Any]) -> RecordRef:
    submitted = str(item.get("submitted_at") or "")[:10]
    label = f"response to “{title or form_id}”" + (f" submitted {submitted}" if submitted else "")
    return RecordRef(system=SYSTEM, kind="response", record_id=f"{form_id}:{_token(item)}",
                     container=form_id, label=label)


def _labelled(item: dict[str, Any], titles: dict[str, Any]) -> dict[str, Any]:
    """The response as Typeform gave it, each answer with its question title added."""
    out = dict(item)
    answers = []
    for a in _answers(item):
        a = dict(a)
        a["question"] = titles.get(_field_id(a) or "")
        answers.append(a)
    out["answers"] = answers
    return out


def _subject_emails(items: Iterable[dict[str, Any]]) -> list[str]:
    """The e-mails to hand the RTBF job: those that are the *only* address a response
    holds in an e-mail answer, hidden field or variable.

    RTBF deletes every response of the account that holds an address, so an address
    that only ever appears next to another one (a "colleague's e-mail" question)
    is not given to it; such responses are deleted by id instead.
    """
    out: set[str] = set()
    for item in items:
        own, _ = _exact_values(item)
        normalised = {e for e in (normalise_email(x) for x in own) if e}
        if len(normalised) == 1:
            out |= normalised
    return sorted(out)
