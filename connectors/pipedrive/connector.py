"""Pipedrive: persons (API v2) and what hangs off them (v2 deals/activities, v1 notes,
leads, mail messages, files).

Reference: /work/shared/reference/saas-apis.md section A. Choices:

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
  own values normalise to a wanted identifier.
- Erase deletes the person (soft: Pipedrive purges after 30 days) and what only
  describes them (notes, leads); deals are unlinked and kept, or deleted, per
  ``policy.deals``; every record gets its own outcome; then everything is read back.
- Opt out PATCHes ``marketing_status`` to ``unsubscribed`` and reads it back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import httpx
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.base import (
    ConnectorBase,
    matches,
    now_utc,
    parse_time,
    phone_variants,
    wanted,
)
from connectors.errors import BadResponse, NotFound
from connectors.http import (
    BurstWindowLimiter,
    HttpClient,
    Limiter,
    RetryPolicy,
    TokenBucket,
    make_client,
    parse_json,
    request_id,
)
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
from hub.policy import DealsMode, EraseMode, SystemPolicy

SYSTEM = "pipedrive"
PAGE_LIMIT = 500
V1_LIMIT = 100
ANONYMISED_NAME = "Erased person"


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
        retry = retry or RetryPolicy()
        self.http = HttpClient(
            SYSTEM,
            client,
            retry=retry,
            limiter=limiter or BurstWindowLimiter(sleep=retry.sleep),
            daily_budget_header="x-ratelimit-remaining",
        )
        # The Search API has its own burst limit: 10 requests per 2 s on every plan.
        self._search_limiter = search_limiter or TokenBucket(rate=5.0, burst=10,
                                                                 sleep=retry.sleep)

    @classmethod
    def from_env(cls, *, client: httpx.Client | None = None, **kwargs: Any
                 ) -> PipedriveConnector:
        settings = load_settings(PipedriveSettings)
        return cls(settings.base_url, settings.api_token.get_secret_value(), client=client,
                   **kwargs)

    @property
    def api_calls(self) -> int:
        return self.http.api_calls

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------ plumbing

    def _get(self, path: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        body = self.http.json("GET", path, params=params, **kw)
        if not isinstance(body, dict) or body.get("success") is not True:
            raise BadResponse(SYSTEM, f"{path}: response is not a success envelope")
        return body

    def _envelope(self, response: httpx.Response) -> Any:
        body = parse_json(SYSTEM, response)
        if not isinstance(body, dict) or body.get("success") is not True:
            raise BadResponse(SYSTEM, "response is not a success envelope",
                              status_code=response.status_code)
        return body

    def _v2_items(self, path: str, params: dict[str, Any], *, limiter: Limiter | None = None
                  ) -> Iterator[list[dict[str, Any]]]:
        """Pages of a v2 cursor-paged list; stops when ``next_cursor`` is absent/null."""
        cursor: str | None = None
        while True:
            body = self._get(path, {**params, "cursor": cursor}, limiter=limiter)
            data = body.get("data")
            if data is None:
                data = []
            if isinstance(data, dict) and "items" in data:  # search results
                data = data["items"]
            if not isinstance(data, list):
                raise BadResponse(SYSTEM, f"{path}: data is not a list")
            yield [item for item in data if isinstance(item, dict)]
            extra = body.get("additional_data") or {}
            cursor = extra.get("next_cursor") if isinstance(extra, dict) else None
            if not cursor:
                return

    def _v1_items(self, path: str, params: dict[str, Any] | None = None
                  ) -> Iterator[dict[str, Any]]:
        """Items of a v1 start/limit list."""
        start = 0
        while True:
            body = self._get(path, {**(params or {}), "start": start, "limit": V1_LIMIT})
            data = body.get("data") or []
            if not isinstance(data, list):
                raise BadResponse(SYSTEM, f"{path}: data is not a list")
            yield from (item for item in data if isinstance(item, dict))
            pagination = (body.get("additional_data") or {}).get("pagination") or {}
            next_start = pagination.get("next_start")
            if not pagination.get("more_items_in_collection") or not isinstance(next_start,
                                                                                 int):
                return
            if next_start <= start:
                raise BadResponse(SYSTEM, f"{path}: pagination does not advance")
            start = next_start

    def _person(self, person_id: str) -> dict[str, Any] | None:
        """The live person, or None when Pipedrive says it is not there (or deleted)."""
        try:
            body = self._get(f"/api/v2/persons/{person_id}",
                             {"include_fields": "marketing_status,doi_status"})
        except NotFound:
            return None
        person = body.get("data")
        if not isinstance(person, dict):
            raise BadResponse(SYSTEM, "person is not an object")
        if person.get("is_deleted") is True:
            return None
        return person

    # ----------------------------------------------------------------- protocol

    def check(self) -> None:
        self._get("/api/v2/persons", {"limit": 1})

    def sync(self, since: str | None) -> Iterator[SyncPage]:
        params: dict[str, Any] = {"limit": PAGE_LIMIT, "sort_by": "update_time",
                                  "sort_direction": "asc", "include_fields": "marketing_status"}
        if since:
            params["updated_since"] = since
        cursor = since
        for page in self._v2_items("/api/v2/persons", params):
            records: list[SourceRecord] = []
            gone: list[str] = []
            newest: str | None = None
            for person in page:
                if "id" not in person:
                    raise BadResponse(SYSTEM, "person without id")
                if person.get("is_deleted") is True:
                    gone.append(str(person["id"]))
                else:
                    records.append(_source_record(person))
                updated = person.get("update_time")
                # sorted by update_time asc: the newest is normally the last; compare
                # anyway (cheap on equal-format strings) so a vendor quirk cannot
                # move the cursor backwards.
                if isinstance(updated, str) and (newest is None or _later(updated, newest)):
                    newest = updated
            if newest is not None and (cursor is None or _later(newest, cursor)):
                cursor = newest
            yield SyncPage(records=tuple(records), gone=tuple(gone), cursor=cursor)

    def find(self, identifiers: Sequence[Identifier]) -> list[RecordRef]:
        want_emails, want_phones = wanted(identifiers)
        searches: list[tuple[str, str]] = [(e, "email") for e in sorted(want_emails)]
        for phone in sorted(want_phones):
            searches.extend((variant, "phone") for variant in phone_variants(phone))
        found: dict[str, RecordRef] = {}
        for term, field_name in searches:
            params = {"term": term, "fields": field_name, "exact_match": "true",
                      "limit": PAGE_LIMIT}
            for page in self._v2_items("/api/v2/persons/search", params,
                                       limiter=self._search_limiter):
                for result in page:
                    item = result.get("item")
                    if not isinstance(item, dict) or item.get("id") is None:
                        continue
                    emails = [e for e in item.get("emails") or [] if isinstance(e, str)]
                    phones = [p for p in item.get("phones") or [] if isinstance(p, str)]
                    if matches(emails, phones, want_emails, want_phones):
                        pid = str(item["id"])
                        found.setdefault(pid, _person_ref(pid))
        return list(found.values())

    def export(self, refs: Sequence[RecordRef]) -> Export:
        sections: dict[str, tuple[str, list[dict[str, Any]]]] = {
            "person": ("Pipedrive person", []),
            "organization": ("Organisation the person is linked to", []),
            "deals": ("Deals", []),
            "activities": ("Activities", []),
            "notes": ("Notes", []),
            "leads": ("Leads", []),
            "mail_messages": ("Mail messages", []),
            "files": ("Files", []),
        }
        missing = 0
        for ref in _persons(refs):
            person = self._person(ref.record_id)
            if person is None:
                missing += 1
                continue
            pid = ref.record_id
            sections["person"][1].append(person)
            org_id = person.get("org_id")
            if isinstance(org_id, dict):
                org_id = org_id.get("value")
            if org_id:
                try:
                    org = self._get(f"/api/v2/organizations/{org_id}").get("data")
                except NotFound:
                    org = None
                if isinstance(org, dict):
                    sections["organization"][1].append(org)
            sections["deals"][1].extend(self._deals(pid))
            for page in self._v2_items("/api/v2/activities", {"person_id": pid,
                                                              "limit": PAGE_LIMIT}):
                sections["activities"][1].extend(page)
            sections["notes"][1].extend(self._v1_items("/v1/notes", {"person_id": pid}))
            sections["leads"][1].extend(self._v1_items("/v1/leads", {"person_id": pid}))
            sections["mail_messages"][1].extend(
                self._v1_items(f"/v1/persons/{pid}/mailMessages"))
            sections["files"][1].extend(self._v1_items(f"/v1/persons/{pid}/files"))
        out = tuple(
            ExportSection(label=label, source=f"{SYSTEM}:{key}", items=tuple(items))
            for key, (label, items) in sections.items()
        )
        return Export(system=SYSTEM, sections=out,
                      evidence={"persons": len(sections["person"][1]),
                                "not_found": missing,
                                "counts": {k: len(v[1]) for k, v in sections.items()},
                                "api_calls": self.api_calls})

    def _deals(self, person_id: str) -> list[dict[str, Any]]:
        """Open, won, lost and archived deals whose main person is this person."""
        deals: dict[Any, dict[str, Any]] = {}
        for page in self._v2_items("/api/v2/deals", {"person_id": person_id,
                                                     "limit": PAGE_LIMIT}):
            for deal in page:
                deals.setdefault(deal.get("id"), deal)
        try:
            for page in self._v2_items("/api/v2/deals/archived",
                                       {"person_id": person_id, "limit": PAGE_LIMIT}):
                for deal in page:
                    deals.setdefault(deal.get("id"), deal)
        except NotFound:
            pass  # an account (or emulator) without archived deals
        return [d for d in deals.values()
                if str(d.get("person_id")) == person_id and d.get("status") != "deleted"]

    def erase(self, refs: Sequence[RecordRef], policy: SystemPolicy) -> Outcome:
        results: list[RecordOutcome] = []
        checks: list[bool] = []
        for ref in _persons(refs):
            results_for, verified = self._erase_person(ref, policy)
            results.extend(results_for)
            checks.append(verified)
        return _outcome(results, all(checks), self.api_calls, mode=str(policy.erase),
                        deals=str(policy.deals))

    def _erase_person(self, ref: RecordRef, policy: SystemPolicy
                      ) -> tuple[list[RecordOutcome], bool]:
        pid = ref.record_id
        person = self._person(pid)
        if person is None:
            return [RecordOutcome(ref, Action.NOT_FOUND, "no such person (already erased?)",
                                  status_code=404)], True
        out: list[RecordOutcome] = []
        deals = self._deals(pid)
        for deal in deals:
            deal_ref = RecordRef(SYSTEM, "deal", str(deal.get("id")), label=f"deal {deal['id']}")
            if policy.deals == DealsMode.DELETE:
                out.append(self._delete(deal_ref, f"/api/v2/deals/{deal['id']}", Action.DELETED,
                                        "deal deleted (policy deals=delete)"))
            else:
                out.append(self._unlink_deal(deal_ref, deal))
        for note in list(self._v1_items("/v1/notes", {"person_id": pid})):
            note_ref = RecordRef(SYSTEM, "note", str(note.get("id")), label=f"note {note['id']}")
            out.append(self._delete(note_ref, f"/v1/notes/{note['id']}", Action.DELETED,
                                    "note about the person deleted"))
        for lead in list(self._v1_items("/v1/leads", {"person_id": pid})):
            lead_ref = RecordRef(SYSTEM, "lead", str(lead.get("id")), label=f"lead {lead['id']}")
            out.append(self._delete(lead_ref, f"/v1/leads/{lead['id']}", Action.DELETED,
                                    "lead of the person deleted"))
        for item in list(self._v1_items(f"/v1/persons/{pid}/mailMessages")):
            # Pipedrive's API cannot delete synced mail; say so on the record.
            mail = item.get("data") if isinstance(item.get("data"), dict) else item
            mail_ref = RecordRef(SYSTEM, "mailMessage", str(mail.get("id")),
                                 label=f"mail message {mail.get('id')}")
            out.append(RecordOutcome(mail_ref, Action.KEPT,
                                     "synced mail message: no API to delete it; remove it in "
                                     "the mailbox or the Pipedrive UI"))
        if policy.erase == EraseMode.ANONYMISE:
            response = self.http.request(
                "PATCH", f"/api/v2/persons/{pid}",
                json={"name": f"{ANONYMISED_NAME} {pid}", "emails": [], "phones": []})
            self._envelope(response)
            out.append(RecordOutcome(ref, Action.ANONYMISED, "name, e-mails and phones blanked",
                                     status_code=response.status_code,
                                     vendor_request_id=_rid(response)))
        else:
            detail = "soft-deleted; Pipedrive purges it for good after 30 days"
            out.append(self._delete(ref, f"/api/v2/persons/{pid}", Action.DELETED, detail))
        return out, self._verify_erased(pid, deals, policy)

    def _delete(self, ref: RecordRef, path: str, action: Action, detail: str) -> RecordOutcome:
        try:
            response = self.http.request("DELETE", path)
        except NotFound as exc:
            return RecordOutcome(ref, Action.NOT_FOUND, "already gone",
                                 status_code=exc.status_code,
                                 vendor_request_id=exc.vendor_request_id)
        return RecordOutcome(ref, action, detail, status_code=response.status_code,
                             vendor_request_id=_rid(response))

    def _unlink_deal(self, ref: RecordRef, deal: dict[str, Any]) -> RecordOutcome:
        try:
            response = self.http.request("PATCH", f"/api/v2/deals/{deal['id']}",
                                         json={"person_id": None})
        except NotFound as exc:
            return RecordOutcome(ref, Action.NOT_FOUND, "deal already gone",
                                 status_code=exc.status_code)
        self._envelope(response)
        return RecordOutcome(ref, Action.UNLINKED,
                             "deal kept as a business record; person unlinked (policy deals=keep)",
                             status_code=response.status_code, vendor_request_id=_rid(response))

    def _verify_erased(self, pid: str, deals: list[dict[str, Any]],
                       policy: SystemPolicy) -> bool:
        if policy.erase == EraseMode.ANONYMISE:
            person = self._person(pid)
            if person is not None and (person.get("emails") or person.get("phones")):
                return False
        elif self._person(pid) is not None:
            return False
        for deal in deals:
            try:
                live = self._get(f"/api/v2/deals/{deal['id']}").get("data")
            except NotFound:
                continue
            if not isinstance(live, dict):
                return False
            if policy.deals == DealsMode.DELETE:
                if live.get("status") != "deleted" and live.get("is_deleted") is not True:
                    return False
            elif live.get("person_id") not in (None, 0):
                return False
        if any(True for _ in self._v1_items("/v1/notes", {"person_id": pid})):
            return False
        return not any(True for _ in self._v1_items("/v1/leads", {"person_id": pid}))

    def opt_out(self, refs: Sequence[RecordRef]) -> Outcome:
        results: list[RecordOutcome] = []
        verified = True
        for ref in _persons(refs):
            person = self._person(ref.record_id)
            if person is None:
                results.append(RecordOutcome(ref, Action.NOT_FOUND, "no such person",
                                             status_code=404))
                continue
            status = person.get("marketing_status")
            if status == "unsubscribed":
                results.append(RecordOutcome(ref, Action.UNSUBSCRIBED, "already unsubscribed"))
                continue
            if status == "no_consent":
                results.append(RecordOutcome(ref, Action.NOTHING_TO_DO,
                                             "no marketing consent on record"))
                continue
            response = self.http.request("PATCH", f"/api/v2/persons/{ref.record_id}",
                                         json={"marketing_status": "unsubscribed"})
            self._envelope(response)
            results.append(RecordOutcome(ref, Action.UNSUBSCRIBED,
                                         f"marketing_status {status} -> unsubscribed",
                                         status_code=response.status_code,
                                         vendor_request_id=_rid(response)))
            live = self._person(ref.record_id)
            if live is not None and live.get("marketing_status") != "unsubscribed":
                verified = False
        return _outcome(results, verified, self.api_calls)


# ---------------------------------------------------------------------- helpers


def _person_ref(pid: str) -> RecordRef:
    return RecordRef(SYSTEM, "person", pid, label=f"person {pid}")


def _persons(refs: Sequence[RecordRef]) -> list[RecordRef]:
    return [r for r in refs if r.system == SYSTEM and r.kind == "person"]


def _values(items: Any) -> tuple[str, ...]:
    if not items:
        return ()
    out = []
    for item in items:
        value = item.get("value") if type(item) is dict else item
        if type(value) is str and value:
            out.append(value)
    return tuple(out)


def _source_record(person: dict[str, Any]) -> SourceRecord:
    return SourceRecord(
        system=SYSTEM,
        record_id=str(person["id"]),
        emails=_values(person.get("emails", person.get("email"))),
        phones=_values(person.get("phones", person.get("phone"))),
        display_name=person.get("name") or None,
        updated_at=parse_time(person.get("update_time")),
        # Absent when the account has no Campaigns add-on: then Pipedrive sends nothing.
        subscribed=(person["marketing_status"] == "subscribed"
                    if "marketing_status" in person else None),
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


def _outcome(results: list[RecordOutcome], verified: bool, api_calls: int,
             **extra: Any) -> Outcome:
    counts: dict[str, int] = {}
    for r in results:
        counts[str(r.action)] = counts.get(str(r.action), 0) + 1
    return Outcome(system=SYSTEM, records=tuple(results), verified=verified,
                   evidence={"counts": counts, "api_calls": api_calls, **extra}, at=now_utc())
