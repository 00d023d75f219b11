"""Pipedrive: persons (API v2) and what hangs off them (v2 deals/activities, v1 notes,
leads, mail messages, files).

Reference: docs/vendors/pipedrive.md. Choices:

- v2 wherever it exists (v1 persons endpoints are out of support since 2026-08);
  v1 only for the sub-resources that are still v1-only.
- The token goes in the ``x-api-token`` header, never the query string, so it does
  not end up in access logs.
- Sync pages ``/api/v2/persons`` by cursor, 500 a page, ``sort_by=update_time`` asc,
  ``updated_since=<cursor>`` incrementally; the cursor is the last ``update_time``
  seen. ``updated_since`` is inclusive, so the boundary records are re-read (the
  index upserts: harmless) and none is ever skipped.
- Find searches ``/api/v2/persons/search`` with ``exact_match`` by each e-mail and
  by each way a phone number may be written, then keeps only the persons whose
  own values normalise to a wanted identifier; each ref carries the person's name,
  e-mails and phones (``facts``) so the hub can tell the subject from a namesake.
- Erase deletes the person (soft: Pipedrive purges after 30 days) and what only
  describes them (notes, leads, archived leads too: ``/v1/leads`` leaves those out);
  deals are unlinked and kept, or deleted, per ``policy.deals``. An activity where
  the person is only a participant or attendee is kept with the person taken off it.
  Activities whose main person they are, files and synced mail are not touched but
  reported one by one as ``kept`` with what the operator must do. Anonymising blanks
  every personal field the person holds (Contact Sync and custom fields too). Every
  action is journalled (``self.done``) as Pipedrive confirms it; then everything is
  read back, and what the read-back still shows is named on its record.
- Activities are read by listing them all: ``person_id`` matches only an activity's
  main person, and a participant or attendee is found only in the activity's own
  ``participants``/``attendees`` (Pipedrive API reference; checked 2026-12).
- Opt out PATCHes ``marketing_status`` to ``unsubscribed`` and reads it back.
- Rectify PATCHes the person (``/api/v2/persons/{id}``): ``name``, the primary
  e-mail's and phone's ``value`` (other items and labels kept), ``postal_address``;
  only what differs is sent, then the person is read back and every corrected field
  must show the new value.
- Restrict adds the person label named ``GDPR restricted`` (``label_ids``, looked up
  by name in ``/api/v2/personFields``: the company creates it once) and sets
  ``marketing_status`` unsubscribed; lifting takes the label off and leaves the
  marketing status alone (lifting a restriction is not consent). Without such a label
  each person is left to an operator (``kept``), saying so.
- Every body is validated by ``models.py``: a 200 without what is read there is a
  protocol error (BadResponse), never "not found".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors import gates
from connectors.base import (
    ConnectorBase,
    matches,
    parse_time,
    phone_variants,
    wanted,
)
from connectors.errors import BadResponse, NotFound
from connectors.http import (
    BurstWindowLimiter,
    CombinedLimiter,
    HttpClient,
    Limiter,
    RetryPolicy,
    make_client,
    parse_json,
    request_id,
    validate,
)
from connectors.pipedrive.models import (
    Activity,
    ActivityEnvelope,
    ActivityPage,
    Attendee,
    Deal,
    DealEnvelope,
    DealPage,
    Deleted,
    Item,
    ItemEnvelope,
    MailMessage,
    MailPage,
    Participant,
    Person,
    PersonEnvelope,
    PersonFieldPage,
    PersonPage,
    SearchPage,
    SearchPerson,
    V1Page,
    dump,
)
from connectors.settings import ENV_FILES, load_settings
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
from hub.identity import normalise_email, normalise_phone
from hub.policy import DealsMode, EraseMode, SystemPolicy

SYSTEM = "pipedrive"
PAGE_LIMIT = 500
# Searches per second for the company, across processes: its limit is 10 per 2 s, and
# a little under it leaves room for the jitter between our clock and its window.
SEARCH_PACE = 4.5
V1_LIMIT = 100
ANONYMISED_NAME = "Erased person"
RESTRICTED_LABEL = "GDPR restricted"
# The access export's parts, in the order the subject reads them: (en, fi, sv) titles.
SECTION_TITLES = {
    "person": ("Pipedrive person", "Henkilö Pipedrivessa", "Person i Pipedrive"),
    "custom_fields": ("Custom fields of the person, by name", "Henkilön lisäkentät nimineen",
                      "Personens egna fält, med namn"),
    "organization": ("Organisation the person is linked to",
                     "Organisaatio, johon henkilö on liitetty",
                     "Organisationen som personen är kopplad till"),
    "deals": ("Deals", "Kaupat", "Affärer"),
    "activities": ("Activities", "Toiminnot", "Aktiviteter"),
    "notes": ("Notes", "Muistiinpanot", "Anteckningar"),
    "leads": ("Leads", "Liidit", "Potentiella affärer"),
    "mail_messages": ("Mail messages", "Sähköpostiviestit", "E-postmeddelanden"),
    "files": ("Files", "Tiedostot", "Filer"),
}
M = TypeVar("M", bound=BaseModel)


class PipedriveSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PIPEDRIVE_", env_file=ENV_FILES,
                                      extra="ignore")

    base_url: str
    api_token: SecretStr


class PipedriveConnector(ConnectorBase):
    system = SYSTEM

    def __init__(
        self,
        base_url: str,
        api_token: str,
        *,
        client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        limiter: Limiter | None = None,
        search_limiter: Limiter | None = None,
    ) -> None:
        if client is None:
            client = make_client(base_url, headers={"x-api-token": api_token},
                                 transport=transport)
        else:
            client.headers["x-api-token"] = api_token
            if not str(client.base_url).strip("/"):
                client.base_url = httpx.URL(base_url.rstrip("/"))
        retry = retry or RetryPolicy.from_env()
        self.http = HttpClient(
            SYSTEM,
            client,
            retry=retry,
            limiter=limiter or BurstWindowLimiter(sleep=retry.sleep),
            daily_budget_header="x-ratelimit-remaining",
        )
        # The Search API has its own 2-second window (10 requests on every plan), told
        # in the x-ratelimit-* headers of search answers: kept apart from the main one.
        self._search_limiter = search_limiter or BurstWindowLimiter(sleep=retry.sleep)

    @classmethod
    def from_env(cls, *, client: httpx.Client | None = None, **kwargs: Any
                 ) -> PipedriveConnector:
        """As the hub builds it: the Search API's 10 requests per 2 s hold for the
        company, so searches are paced across every process that calls Pipedrive
        (``connectors.gates``), a little under the limit; each process still watches
        the window's headers, which also count other integrations' calls."""
        settings = load_settings(PipedriveSettings)
        token = settings.api_token.get_secret_value()
        if "search_limiter" not in kwargs:
            kwargs["search_limiter"] = CombinedLimiter(
                gates.pace(SYSTEM, settings.base_url, token, SEARCH_PACE, part="search"),
                BurstWindowLimiter())
        return cls(settings.base_url, token, client=client, **kwargs)


    # ------------------------------------------------------------------ plumbing

    def _get(self, path: str, model: type[M], params: dict[str, Any] | None = None, *,
             limiter: Limiter | None = None) -> M:
        """A read, validated as ``model``: a wrong-shaped 200 is retried, then BadResponse."""
        return self.http.json("GET", path, params=params, parse=model, limiter=limiter)

    def _write(self, method: str, path: str, model: type[M], json: Any = None
               ) -> tuple[M, httpx.Response]:
        """A write and its validated answer: only an answer of the documented shape
        confirms the action (and lets it be journalled). Never repeated for a bad body."""
        response = self.http.request(method, path, json=json)
        body = validate(SYSTEM, model, parse_json(SYSTEM, response), response=response)
        return body, response

    def _v2_pages(self, path: str, params: dict[str, Any], model: type[Any], *,
                  limiter: Limiter | None = None) -> Iterator[list[Any]]:
        """Pages of a v2 cursor-paged list (or search); stops when ``next_cursor`` is
        absent/null. A cursor that does not move is a protocol error, not the end."""
        cursor: str | None = None
        while True:
            page = self._get(path, model, {**params, "cursor": cursor}, limiter=limiter)
            yield page.data.items if isinstance(page, SearchPage) else page.data
            following = page.additional_data.next_cursor if page.additional_data else None
            if not following:
                return
            if following == cursor:
                raise BadResponse(SYSTEM, f"{path}: next_cursor does not advance")
            cursor = following

    def _v1_items(self, path: str, model: type[Any] = V1Page,
                  params: dict[str, Any] | None = None) -> Iterator[Any]:
        """Items of a v1 start/limit list (``data: null`` is an empty list there)."""
        start = 0
        while True:
            page = self._get(path, model, {**(params or {}), "start": start, "limit": V1_LIMIT})
            yield from page.data or []
            extra = page.additional_data
            pagination = extra.pagination if extra else None
            if pagination is None or not pagination.more_items_in_collection:
                return
            following = pagination.next_start
            if following is None or following <= start:
                raise BadResponse(SYSTEM, f"{path}: more items promised, pagination stuck")
            start = following

    def _person(self, person_id: str) -> Person | None:
        """The live person, or None when Pipedrive says it is not there (or deleted)."""
        try:
            body = self._get(f"/api/v2/persons/{person_id}", PersonEnvelope,
                             {"include_fields": "marketing_status,doi_status"})
        except NotFound:
            return None
        return None if body.data.is_deleted else body.data

    # ----------------------------------------------------------------- protocol

    def check(self) -> None:
        self._get("/api/v2/persons", PersonPage, {"limit": 1})

    def sync(self, since: str | None) -> Iterator[SyncPage]:
        params: dict[str, Any] = {"limit": PAGE_LIMIT, "sort_by": "update_time",
                                  "sort_direction": "asc", "include_fields": "marketing_status"}
        if since:
            params["updated_since"] = since
        cursor = since
        for page in self._v2_pages("/api/v2/persons", params, PersonPage):
            records: list[SourceRecord] = []
            gone: list[str] = []
            newest: str | None = None
            for person in page:
                if person.is_deleted:
                    gone.append(str(person.id))
                else:
                    records.append(_source_record(person))
                updated = person.update_time
                # sorted by update_time asc: the newest is normally the last; compare
                # anyway (cheap on equal-format strings) so a vendor quirk cannot
                # move the cursor backwards.
                if updated and (newest is None or _later(updated, newest)):
                    newest = updated
            if newest is not None and (cursor is None or _later(newest, cursor)):
                cursor = newest
            yield SyncPage(records=tuple(records), gone=tuple(gone), cursor=cursor)

    def find(self, identifiers: Sequence[Identifier]) -> list[RecordRef]:
        """Persons whose own e-mails or phones match, each with what it holds (facts):
        the hub, not the connector, decides whose record it is (rule 9)."""
        want_emails, want_phones = wanted(identifiers)
        searches: list[tuple[str, str]] = [(e, "email") for e in sorted(want_emails)]
        for phone in sorted(want_phones):
            # Every way the number may be written, "040 123 4567" too: whether Pipedrive
            # compares digits only is not documented (our emulator does), and a lookup
            # before an erasure must not miss a record to save a call.
            searches.extend((variant, "phone") for variant in phone_variants(phone))
        found: dict[str, RecordRef] = {}
        for term, field_name in searches:
            params = {"term": term, "fields": field_name, "exact_match": "true",
                      "limit": PAGE_LIMIT}
            for page in self._v2_pages("/api/v2/persons/search", params, SearchPage,
                                       limiter=self._search_limiter):
                for result in page:
                    item = result.item
                    if matches(item.emails, item.phones, want_emails, want_phones):
                        found.setdefault(str(item.id), _person_ref(item))
        return list(found.values())

    def export(self, refs: Sequence[RecordRef]) -> Export:
        self.begin()
        sections: dict[str, tuple[str, list[dict[str, Any]]]] = {
            key: (titles[0], []) for key, titles in SECTION_TITLES.items()}
        missing = 0
        names: dict[str, str] | None = None
        for ref in _persons(refs):
            person = self._person(ref.record_id)
            if person is None:
                missing += 1
                continue
            pid = ref.record_id
            sections["person"][1].append(dump(person))
            if person.custom_fields:
                names = self._field_names() if names is None else names
                sections["custom_fields"][1].extend(
                    {"person": person.id, "field": names.get(key, key), "key": key,
                     "value": value}
                    for key, value in person.custom_fields.items() if value is not None)
            if person.org_id:
                try:
                    org = self._get(f"/api/v2/organizations/{person.org_id}", ItemEnvelope)
                    sections["organization"][1].append(dump(org.data))
                except NotFound:
                    pass
            sections["deals"][1].extend(dump(d) for d in self._deals(pid))
            emails = _emails(person)
            sections["activities"][1].extend(
                _own_part(a, int(pid), emails) for a in self._activities(pid, emails))
            sections["notes"][1].extend(dump(n) for n in self._notes(pid))
            sections["leads"][1].extend(dump(x) for x in self._leads(pid))
            sections["mail_messages"][1].extend(dump(m) for m in self._mails(pid))
            sections["files"][1].extend(dump(f) for f in self._files(pid))
        out = tuple(
            ExportSection(label=label, source=f"{SYSTEM}:{key}", items=tuple(items),
                          titles=dict(zip(("fi", "sv"), SECTION_TITLES[key][1:], strict=True)))
            for key, (label, items) in sections.items()
        )
        return Export(system=SYSTEM, sections=out,
                      evidence={"persons": len(sections["person"][1]),
                                "not_found": missing,
                                "counts": {k: len(v[1]) for k, v in sections.items()},
                                "api_calls": self.op_calls})

    # ------------------------------------------------------ what hangs off a person

    def _field_names(self) -> dict[str, str]:
        """Custom person field key -> its name in this company (``/api/v2/personFields``),
        so an export says "LinkedIn", not a 40-character hash."""
        return {f.field_code: f.field_name or f.field_code
                for page in self._v2_pages("/api/v2/personFields", {"limit": PAGE_LIMIT},
                                           PersonFieldPage)
                for f in page}

    def _deals(self, person_id: str) -> list[Deal]:
        """Open, won, lost and archived deals whose main person is this person."""
        deals: dict[int | str, Deal] = {}
        params = {"person_id": person_id, "limit": PAGE_LIMIT}
        for page in self._v2_pages("/api/v2/deals", params, DealPage):
            for deal in page:
                deals.setdefault(deal.id, deal)
        try:
            for page in self._v2_pages("/api/v2/deals/archived", params, DealPage):
                for deal in page:
                    deals.setdefault(deal.id, deal)
        except NotFound:
            pass  # an account (or emulator) without archived deals
        return [d for d in deals.values()
                if str(d.person_id) == person_id and d.status != "deleted"]

    def _activities(self, person_id: str, emails: frozenset[str]) -> list[Activity]:
        """Every activity that names the person: as its main person, a participant or
        an attendee (by person id, or by one of the person's e-mails). ``person_id=``
        would find only the first kind, so the whole list is read."""
        params = {"limit": PAGE_LIMIT}
        return [a for page in self._v2_pages("/api/v2/activities", params, ActivityPage)
                for a in page if _names(a, int(person_id), emails)]

    def _notes(self, person_id: str) -> list[Item]:
        return list(self._v1_items("/v1/notes", V1Page, {"person_id": person_id}))

    def _leads(self, person_id: str) -> list[Item]:
        """Leads and archived leads: ``/v1/leads`` lists only those not archived."""
        leads: dict[int | str, Item] = {}
        for path in ("/v1/leads", "/v1/leads/archived"):
            for lead in self._v1_items(path, V1Page, {"person_id": person_id}):
                leads.setdefault(lead.id, lead)
        return list(leads.values())

    def _mails(self, person_id: str) -> list[MailMessage]:
        return list(self._v1_items(f"/v1/persons/{person_id}/mailMessages", MailPage))

    def _files(self, person_id: str) -> list[Item]:
        return list(self._v1_items(f"/v1/persons/{person_id}/files", V1Page))

    # ------------------------------------------------------------------ erasure

    def erase(self, refs: Sequence[RecordRef], policy: SystemPolicy) -> Outcome:
        self.begin()
        results: list[RecordOutcome] = []
        checks: list[bool] = []
        for ref in _persons(refs):
            results_for, verified = self._erase_person(ref, policy)
            results.extend(results_for)
            checks.append(verified)
        return self.outcome(results, all(checks), mode=str(policy.erase),
                            deals=str(policy.deals))

    def _erase_person(self, ref: RecordRef, policy: SystemPolicy
                      ) -> tuple[list[RecordOutcome], bool]:
        """Act on what only describes the person, report what is left for an operator,
        then the person; each action journalled as Pipedrive confirms it. Then read
        back; whatever the read-back still shows is named on its record."""
        pid = ref.record_id
        person = self._person(pid)
        if person is None:
            return [RecordOutcome(ref, Action.NOT_FOUND, "no such person (already erased?)",
                                  status_code=404)], True
        emails = _emails(person)
        out: list[RecordOutcome] = []
        deals = self._deals(pid)
        for deal in deals:
            out.append(self._act_on_deal(deal, policy))
        for note in self._notes(pid):
            out.append(self._delete(_ref("note", note.id), f"/v1/notes/{note.id}",
                                    Action.DELETED, "note about the person deleted"))
        for lead in self._leads(pid):
            out.append(self._delete(_ref("lead", lead.id), f"/v1/leads/{lead.id}",
                                    Action.DELETED, "lead of the person deleted"))
        activities = self._activities(pid, emails)
        for activity in activities:
            if not _is_main(activity, int(pid)):
                out.append(self._unlink_activity(activity, int(pid), emails))
        out.extend(self._leftovers(pid, [a for a in activities if _is_main(a, int(pid))]))
        out.append(self._erase_person_record(ref, person, policy))
        written = {r.ref.kind for r in out if r.action != Action.KEPT}
        problems = _onto_known(self._read_back(ref, deals, emails, policy, written), out, ref)
        return [_with_read_back(r, problems.get(r.ref)) for r in out], not problems

    def _act_on_deal(self, deal: Deal, policy: SystemPolicy) -> RecordOutcome:
        ref = _ref("deal", deal.id)
        if policy.deals == DealsMode.DELETE:
            return self._delete(ref, f"/api/v2/deals/{deal.id}", Action.DELETED,
                                "deal deleted (policy deals=delete)")
        return self._unlink_deal(ref)

    def _leftovers(self, pid: str, activities: list[Activity]) -> list[RecordOutcome]:
        """What names the person and this connector does not remove: each its own KEPT
        record with what the operator must do (ids and kinds only, no personal data)."""
        out = [RecordOutcome(_ref("activity", a.id), Action.KEPT,
                             f"activity {a.id} ({a.type or 'activity'}) has the person as "
                             "its main participant: delete it, or edit it to remove the "
                             "person, in Pipedrive")
               for a in activities]
        out += [RecordOutcome(_ref("file", f.id), Action.KEPT,
                              f"file {f.id} is attached to the person: delete it in "
                              "Pipedrive (Files of the person) unless it must be kept")
                for f in self._files(pid)]
        out += [RecordOutcome(_ref("mailMessage", m.data.id), Action.KEPT,
                              f"mail message {m.data.id} is synced to the person and "
                              "Pipedrive's API cannot delete it: delete it in the mailbox "
                              "or the Pipedrive UI")
                for m in self._mails(pid)]
        return out

    def _erase_person_record(self, ref: RecordRef, person: Person, policy: SystemPolicy
                             ) -> RecordOutcome:
        pid = ref.record_id
        if policy.erase != EraseMode.ANONYMISE:
            return self._delete(ref, f"/api/v2/persons/{pid}", Action.DELETED,
                                "soft-deleted; Pipedrive purges it for good after 30 days")
        blanks = _blanks(person)
        try:
            _, response = self._write("PATCH", f"/api/v2/persons/{pid}", PersonEnvelope,
                                      {"name": f"{ANONYMISED_NAME} {pid}", "emails": [],
                                       "phones": [], **blanks})
        except NotFound as exc:
            return self.gone(ref, exc, "person gone before it could be anonymised")
        fields = ", ".join(["name", "e-mails", "phones", *sorted(blanks)])
        return self.done(RecordOutcome(ref, Action.ANONYMISED, f"blanked: {fields}",
                                       status_code=response.status_code,
                                       vendor_request_id=_rid(response)))

    def _unlink_activity(self, activity: Activity, pid: int, emails: frozenset[str]
                         ) -> RecordOutcome:
        """Take the person off an activity they only took part in; the activity (another
        person's meeting, say) is kept."""
        ref = _ref("activity", activity.id)
        body = {key: [dump(x) for x in items if not _is_them(x, pid, emails)]
                for key, items in (("participants", activity.participants),
                                   ("attendees", activity.attendees)) if items}
        try:
            _, response = self._write("PATCH", f"/api/v2/activities/{activity.id}",
                                      ActivityEnvelope, body)
        except NotFound as exc:
            return self.gone(ref, exc, "activity already gone")
        return self.done(RecordOutcome(
            ref, Action.UNLINKED,
            "activity kept; the person taken off its participants and attendees",
            status_code=response.status_code, vendor_request_id=_rid(response)))

    def _delete(self, ref: RecordRef, path: str, action: Action, detail: str) -> RecordOutcome:
        try:
            _, response = self._write("DELETE", path, Deleted)
        except NotFound as exc:
            return self.gone(ref, exc, "already gone")
        return self.done(RecordOutcome(ref, action, detail, status_code=response.status_code,
                                       vendor_request_id=_rid(response)))

    def _unlink_deal(self, ref: RecordRef) -> RecordOutcome:
        try:
            _, response = self._write("PATCH", f"/api/v2/deals/{ref.record_id}", DealEnvelope,
                                      {"person_id": None})
        except NotFound as exc:
            return self.gone(ref, exc, "deal already gone")
        return self.done(RecordOutcome(
            ref, Action.UNLINKED,
            "deal kept as a business record; person unlinked (policy deals=keep)",
            status_code=response.status_code, vendor_request_id=_rid(response)))

    def _read_back(self, ref: RecordRef, deals: list[Deal], emails: frozenset[str],
                   policy: SystemPolicy, written: set[str]) -> dict[RecordRef, str]:
        """What the vendor still shows after the erasure, per record (empty: all done).

        While the person record is kept (anonymised), colleagues can still attach
        activities, notes and leads to it, so every list is read again. Once the person
        is gone, a list is read again only when the erasure wrote to it (``written``: the
        kinds of record acted on): one that was empty a moment ago has nothing to prove."""
        problems: dict[RecordRef, str] = {}
        pid = ref.record_id
        person = self._person(pid)
        if person is not None:
            written = written | {"activity", "note", "lead"}
        if person is not None and policy.erase != EraseMode.ANONYMISE:
            problems[ref] = "read back: the person is still there"
        elif person is not None and (person.emails or person.phones or _blanks(person)):
            left = ", ".join(["e-mails or phones"] if person.emails or person.phones
                             else sorted(_blanks(person)))
            problems[ref] = f"read back: the person still has {left}"
        for activity in self._activities(pid, emails) if "activity" in written else ():
            if not _is_main(activity, int(pid)):
                problems[_ref("activity", activity.id)] = (
                    "read back: the activity still names the person")
        for deal in deals:
            seen = self._deal_state(deal, policy)
            if seen:
                problems[_ref("deal", deal.id)] = f"read back: {seen}"
        for kind, lister in (("note", self._notes), ("lead", self._leads)):
            for item in lister(pid) if kind in written else ():
                problems[_ref(kind, item.id)] = f"read back: {kind} still linked to the person"
        return problems

    def _deal_state(self, deal: Deal, policy: SystemPolicy) -> str | None:
        """What is wrong with a deal after the erasure, or None."""
        try:
            live = self._get(f"/api/v2/deals/{deal.id}", DealEnvelope).data
        except NotFound:
            return None
        if policy.deals == DealsMode.DELETE:
            if live.status != "deleted" and live.is_deleted is not True:
                return "the deal is still there"
        elif live.person_id not in (None, 0):
            return "the deal is still linked to the person"
        return None

    # ------------------------------------------------------------------ opt-out

    def opt_out(self, refs: Sequence[RecordRef]) -> Outcome:
        self.begin()
        results = [self._opt_out_one(ref) for ref in _persons(refs)]
        return self.outcome([record for record, _ in results], all(ok for _, ok in results))

    def _opt_out_one(self, ref: RecordRef) -> tuple[RecordOutcome, bool]:
        """(outcome, whether the read-back shows it) for one person."""
        person = self._person(ref.record_id)
        if person is None:
            return RecordOutcome(ref, Action.NOT_FOUND, "no such person", status_code=404), True
        status = person.marketing_status
        if status == "unsubscribed":
            return RecordOutcome(ref, Action.UNSUBSCRIBED, "already unsubscribed"), True
        if status == "no_consent":
            return RecordOutcome(ref, Action.NOTHING_TO_DO, "no marketing consent on record"), True
        try:
            _, response = self._write("PATCH", f"/api/v2/persons/{ref.record_id}",
                                      PersonEnvelope, {"marketing_status": "unsubscribed"})
        except NotFound as exc:
            return self.gone(ref, exc, "person gone before the opt-out"), True
        record = self.done(RecordOutcome(ref, Action.UNSUBSCRIBED,
                                         f"marketing_status {status} -> unsubscribed",
                                         status_code=response.status_code,
                                         vendor_request_id=_rid(response)))
        live = self._person(ref.record_id)
        if live is None or live.marketing_status == "unsubscribed":
            return record, True
        seen = f"read back: marketing_status is still {live.marketing_status}"
        return _with_read_back(record, seen), False

    # -------------------------------------------------------------- rectification

    def rectify(self, refs: Sequence[RecordRef], corrections: Corrections) -> Outcome:
        self.begin()
        self.forget_found()
        results = [self._rectify_one(ref, corrections) for ref in _persons(refs)]
        return self.outcome([record for record, _ in results], all(ok for _, ok in results),
                            corrected=list(corrections.fields()))

    def _rectify_one(self, ref: RecordRef, corrections: Corrections
                     ) -> tuple[RecordOutcome, bool]:
        """(outcome, whether the read-back shows every corrected value) for one person."""
        person = self._person(ref.record_id)
        if person is None:
            return RecordOutcome(ref, Action.NOT_FOUND, "no such person", status_code=404), True
        told = ", ".join(corrections.fields())
        body = _corrected(person, corrections)
        if not body:
            record = RecordOutcome(ref, Action.RECTIFIED, f"already holds the corrected {told}")
        else:
            try:
                _, response = self._write("PATCH", f"/api/v2/persons/{ref.record_id}",
                                          PersonEnvelope, body)
            except NotFound as exc:
                return self.gone(ref, exc, "person gone before the rectification"), True
            record = self.done(RecordOutcome(
                ref, Action.RECTIFIED, f"told the corrected {told} ({', '.join(body)})",
                status_code=response.status_code, vendor_request_id=_rid(response)))
        live = self._person(ref.record_id)
        wrong = ["the person"] if live is None else _uncorrected(live, corrections)
        if wrong:
            return _with_read_back(record, f"read back: {', '.join(wrong)} not as corrected"), \
                False
        return _with_read_back(record, "read back: shows the corrected values"), True

    # ---------------------------------------------------------------- restriction

    def restrict(self, refs: Sequence[RecordRef], lift: bool) -> Outcome:
        self.forget_found()
        label = self._restricted_label()
        if label is None:
            return self.by_hand(refs, f"this Pipedrive company has no person label named "
                                      f"'{RESTRICTED_LABEL}': create it, or mark the person "
                                      "restricted (or not) by hand")
        self.begin()
        results = [self._restrict_one(ref, label, lift) for ref in _persons(refs)]
        return self.outcome([record for record, _ in results], all(ok for _, ok in results),
                            label_id=label)

    def _restricted_label(self) -> int | None:
        """The id of the person label that marks restricted processing, or None."""
        for page in self._v2_pages("/api/v2/personFields", {"limit": PAGE_LIMIT},
                                   PersonFieldPage):
            for field_ in page:
                if field_.field_code == "label_ids":
                    return next((o.id for o in field_.options or ()
                                 if o.label.strip().lower() == RESTRICTED_LABEL.lower()), None)
        return None

    def _restrict_one(self, ref: RecordRef, label: int, lift: bool
                      ) -> tuple[RecordOutcome, bool]:
        """(outcome, whether the read-back shows the label on, or off) for one person."""
        person = self._person(ref.record_id)
        if person is None:
            return RecordOutcome(ref, Action.NOT_FOUND, "no such person", status_code=404), True
        action = Action.LIFTED if lift else Action.RESTRICTED
        labels = list(person.label_ids or [])
        body: dict[str, Any] = {}
        if lift and label in labels:
            body["label_ids"] = [x for x in labels if x != label]
        if not lift and label not in labels:
            body["label_ids"] = [*labels, label]
        if not lift and person.marketing_status == "subscribed":
            body["marketing_status"] = "unsubscribed"
        if not body:
            record = RecordOutcome(ref, action, "label already " + ("off" if lift else "on"))
        else:
            try:
                _, response = self._write("PATCH", f"/api/v2/persons/{ref.record_id}",
                                          PersonEnvelope, body)
            except NotFound as exc:
                return self.gone(ref, exc, "person gone before the restriction"), True
            what = (f"label '{RESTRICTED_LABEL}' " + ("removed" if lift else "added")
                    + ("; marketing_status subscribed -> unsubscribed"
                       if "marketing_status" in body else ""))
            record = self.done(RecordOutcome(ref, action, what,
                                             status_code=response.status_code,
                                             vendor_request_id=_rid(response)))
        live = self._person(ref.record_id)
        if live is None:
            return _with_read_back(record, "read back: the person is gone"), False
        marked = label in (live.label_ids or [])
        ok = not marked if lift else marked and live.marketing_status != "subscribed"
        seen = (f"label {'on' if marked else 'off'}, "
                f"marketing_status {live.marketing_status or 'absent'}")
        return _with_read_back(record, f"read back: {seen}"), ok


# ---------------------------------------------------------------------- helpers


def _corrected(person: Person, c: Corrections) -> dict[str, Any]:
    """The PATCH that writes the corrected values the person does not hold yet ({} if
    it holds them all). The primary e-mail and phone are corrected in place: their
    labels, and the person's other addresses and numbers, stay as they were."""
    body: dict[str, Any] = {}
    if c.name is not None and (person.name or "") != c.name:
        body["name"] = c.name
    if c.email is not None and c.email not in _normalised_emails(person):
        body["emails"] = _with_primary(person.emails, c.email)
    if c.phone is not None and c.phone not in _phones(person):
        body["phones"] = _with_primary(person.phones, c.phone)
    if c.address is not None and _address(person) != c.address.line():
        body["postal_address"] = {"value": c.address.line()}
    return body


def _uncorrected(person: Person, c: Corrections) -> list[str]:
    """The corrected fields the person, read back, does not show."""
    wrong = []
    if c.name is not None and (person.name or "") != c.name:
        wrong.append("name")
    if c.email is not None and c.email not in _normalised_emails(person):
        wrong.append("email")
    if c.phone is not None and c.phone not in _phones(person):
        wrong.append("phone")
    if c.address is not None and _address(person) != c.address.line():
        wrong.append("address")
    return wrong


def _with_primary(items: Sequence[Any], value: str) -> list[dict[str, Any]]:
    """The items with the primary one's value replaced (a new primary when none)."""
    out = [{k: v for k, v in dump(item).items() if k in ("value", "primary", "label")}
           for item in items]
    primary = next((i for i in out if i.get("primary")), out[0] if out else None)
    if primary is None:
        return [{"value": value, "primary": True}]
    primary["value"] = value
    return out


def _phones(person: Person) -> frozenset[str]:
    return frozenset(p.value for p in (normalise_phone(x.value) for x in person.phones
                                       if x.value and x.value.strip()))


def _address(person: Person) -> str | None:
    address = person.postal_address
    return address.get("value") if isinstance(address, dict) else address


def _emails(person: Person) -> frozenset[str]:
    return frozenset(e.value.strip().lower() for e in person.emails if e.value)


def _normalised_emails(person: Person) -> frozenset[str]:
    return frozenset(filter(None, (normalise_email(e.value) for e in person.emails if e.value)))


def _is_main(activity: Activity, pid: int) -> bool:
    """Whether the person is the activity's main person (``person_id`` finds these)."""
    return activity.person_id == pid or any(
        p.primary and p.person_id == pid for p in activity.participants or ())


def _is_them(entry: Participant | Attendee, pid: int, emails: frozenset[str]) -> bool:
    """Whether a participant or attendee is the subject. A linked entry is whoever it is
    linked to: an attendee of another person who shares the subject's address (info@,
    a team mailbox) is not the subject's to unlink or export (rule 9); only an entry
    linked to nobody is known by its e-mail alone."""
    if entry.person_id is not None:
        return entry.person_id == pid
    email = getattr(entry, "email", None)
    return bool(email) and email.strip().lower() in emails


def _names(activity: Activity, pid: int, emails: frozenset[str]) -> bool:
    """Whether the activity names the person: main person, participant or attendee."""
    return _is_main(activity, pid) or any(
        _is_them(x, pid, emails)
        for x in [*(activity.participants or ()), *(activity.attendees or ())])


def _own_part(activity: Activity, pid: int, emails: frozenset[str]) -> dict[str, Any]:
    """The activity for the subject's export: the other participants and attendees
    (their ids, names and e-mails) are theirs, not the subject's, and stay out."""
    out = dump(activity)
    for key in ("participants", "attendees"):
        if key in out:
            out[key] = [dump(x) for x in getattr(activity, key) or ()
                        if _is_them(x, pid, emails)]
    return out


# What anonymising sends to blank the personal fields beyond name, e-mails and phones.
# Only those the person holds are sent: an account without Contact Sync refuses them.
_BLANK: dict[str, Any] = {"postal_address": None, "birthday": None, "job_title": None,
                          "notes": None, "im": []}


def _blanks(person: Person) -> dict[str, Any]:
    """The PATCH that blanks what the person still holds in those fields ({} if none)."""
    out = {key: blank for key, blank in _BLANK.items()
           if getattr(person, key) not in (None, "", [])}
    custom = {key: None for key, value in (person.custom_fields or {}).items()
              if value not in (None, "", [], {})}
    if custom:
        out["custom_fields"] = custom
    return out


def _person_ref(item: SearchPerson) -> RecordRef:
    pid = str(item.id)
    return RecordRef(SYSTEM, "person", pid, label=f"person {pid}",
                     facts=RecordFacts(name=item.name or None, emails=tuple(item.emails),
                                       phones=tuple(item.phones)))


def _ref(kind: str, rid: int | str) -> RecordRef:
    return RecordRef(SYSTEM, kind, str(rid), label=f"{kind} {rid}")


def _persons(refs: Sequence[RecordRef]) -> list[RecordRef]:
    return [r for r in refs if r.system == SYSTEM and r.kind == "person"]


def _with_read_back(record: RecordOutcome, seen: str | None) -> RecordOutcome:
    """The record with what the read-back saw appended (unchanged when all was well)."""
    return record if not seen else replace(record, detail=f"{record.detail}; {seen}")


def _onto_known(problems: dict[RecordRef, str], records: list[RecordOutcome],
                person: RecordRef) -> dict[RecordRef, str]:
    """Problems keyed by the records acted on; one about something not acted on (a note
    that appeared meanwhile) is told on the person's record, so none is lost."""
    known = {r.ref for r in records}
    out = {k: v for k, v in problems.items() if k in known}
    stray = [f"{k.kind} {k.record_id}: {v}" for k, v in problems.items() if k not in known]
    if stray:
        out[person] = "; ".join(([out[person]] if person in out else []) + stray)
    return out


def _source_record(person: Person) -> SourceRecord:
    return SourceRecord(
        system=SYSTEM,
        record_id=str(person.id),
        emails=tuple(e.value for e in person.emails if e.value),
        phones=tuple(p.value for p in person.phones if p.value),
        display_name=person.name or None,
        updated_at=parse_time(person.update_time),
        # Absent when the account has no Campaigns add-on: then Pipedrive sends nothing.
        subscribed=(person.marketing_status == "subscribed"
                    if person.marketing_status is not None else None),
    )


def _later(a: str, b: str) -> bool:
    if len(a) == len(b) and a[-1:] == b[-1:] == "Z":
        return a > b  # same RFC 3339 shape: string order is time order
    ta, tb = parse_time(a), parse_time(b)
    if ta is None or tb is None:
        return a > b
    return ta > tb


def _rid(response: httpx.Response) -> str | None:
    return request_id(response.headers)
