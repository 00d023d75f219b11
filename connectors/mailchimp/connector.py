"""Mailchimp Marketing API v3 through the official SDK (reference section B).

- Sync: every audience's members, ``count=1000``/``offset``, ``exclude_fields``
  for ``_links``, ``since_last_changed`` incrementally (with a one-second
  look-back, as Airbyte does, so an equal-second change is never missed).
  ``record_id`` = ``"<list_id>:<member id>"``. Archived and cleaned members still
  hold data, so they are indexed like any other. Because the audiences are read
  one after another, every page but the last carries the cursor the sync started
  from and only the last carries the newest ``last_changed`` seen: a crash
  half-way re-reads, never skips.
- Find: in every audience, GET the member by subscriber hash (MD5 of the
  lower-cased e-mail); 404 is simply "not a member there".
- Erase: ``delete-permanent`` in every audience (policy ``permanent_delete``),
  or archive (policy ``delete``); read back: 404, or status archived.
- Opt out: PATCH ``status`` unsubscribed in every audience; read back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.base import ConnectorBase, now_utc, parse_time, wanted
from connectors.errors import BadResponse, NotFound, RequestRejected
from connectors.http import Limiter, RetryPolicy
from connectors.mailchimp.sdk import DEFAULT_TIMEOUT, MailchimpApi
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
from hub.policy import EraseMode, SystemPolicy

SYSTEM = "mailchimp"
PAGE = 1000
LOOKBACK = timedelta(seconds=1)


class MailchimpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MAILCHIMP_", env_file=ENV_FILES,
                                      extra="ignore")

    base_url: str
    api_key: SecretStr


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode()).hexdigest()  # noqa: S324 - vendor id


class MailchimpConnector(ConnectorBase):
    system = SYSTEM

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        limiter: Limiter | None = None,
    ) -> None:
        self.api = MailchimpApi(base_url, api_key, timeout=timeout, retry=retry,
                                limiter=limiter)
        self._audience_list: list[dict[str, Any]] | None = None
        # Members as `find` read them, whole: an access export in the same op reuses
        # them. Erasure and opt-out read afresh and drop them: they write.
        self._found: dict[tuple[str, str], dict[str, Any]] = {}

    @classmethod
    def from_env(cls, *, client: Any = None, **kwargs: Any) -> MailchimpConnector:
        """``client`` is accepted for the registry's signature and ignored: the SDK
        does its own HTTP (requests)."""
        settings = load_settings(MailchimpSettings)
        return cls(settings.base_url, settings.api_key.get_secret_value(), **kwargs)

    @property
    def api_calls(self) -> int:
        return self.api.api_calls

    def close(self) -> None:
        pass  # the SDK keeps no session

    # ----------------------------------------------------------------- plumbing

    def _audiences(self) -> list[dict[str, Any]]:
        """Every audience, read once per connector: a connector lives for one sync or
        one request's op, and audiences are created by hand, not within seconds."""
        if self._audience_list is None:
            self._audience_list = self._read_audiences()
        return self._audience_list

    def _read_audiences(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        offset = 0
        while True:
            body = self.api.call(self.api.lists.get_all_lists, count=PAGE, offset=offset,
                                 fields=["lists.id", "lists.name", "total_items"])
            lists = body.get("lists") if isinstance(body, dict) else None
            if not isinstance(lists, list):
                raise BadResponse(SYSTEM, "lists: no 'lists' array")
            out.extend(x for x in lists if isinstance(x, dict) and x.get("id"))
            offset += len(lists)
            total = body.get("total_items")
            if not lists or not isinstance(total, int) or offset >= total:
                return out

    def _member(self, list_id: str, member_hash: str, **kwargs: Any) -> dict[str, Any] | None:
        try:
            member = self.api.call(self.api.lists.get_list_member, list_id, member_hash,
                                   **kwargs)
        except NotFound:
            return None
        if not isinstance(member, dict):
            raise BadResponse(SYSTEM, "member is not an object")
        return member

    # ----------------------------------------------------------------- protocol

    def check(self) -> None:
        self.api.call(self.api.client.ping.get)

    def sync(self, since: str | None) -> Iterator[SyncPage]:
        since_param = None
        if since:
            parsed = parse_time(since)
            since_param = (parsed - LOOKBACK).isoformat() if parsed else since
        newest = since
        pending: SyncPage | None = None
        for audience in self._audiences():
            list_id = audience["id"]
            offset = 0
            while True:
                kwargs: dict[str, Any] = {"count": PAGE, "offset": offset,
                                          "exclude_fields": ["members._links", "_links"]}
                if since_param:
                    kwargs["since_last_changed"] = since_param
                body = self.api.call(self.api.lists.get_list_members_info, list_id, **kwargs)
                members = body.get("members") if isinstance(body, dict) else None
                if not isinstance(members, list):
                    raise BadResponse(SYSTEM, "members: no 'members' array")
                records = []
                for m in members:
                    if not isinstance(m, dict) or not m.get("id"):
                        continue
                    records.append(_source_record(list_id, m))
                    changed = m.get("last_changed")
                    if isinstance(changed, str) and (newest is None or _later(changed, newest)):
                        newest = changed
                if pending is not None:
                    yield pending
                pending = SyncPage(records=tuple(records), cursor=since)
                offset += len(members)
                total = body.get("total_items")
                if not members or not isinstance(total, int) or offset >= total:
                    break
        if pending is None:
            pending = SyncPage(cursor=since)
        yield SyncPage(records=pending.records, gone=pending.gone, cursor=newest)

    def find(self, identifiers: Sequence[Identifier]) -> list[RecordRef]:
        emails, _phones = wanted(identifiers)
        if not emails:
            return []
        refs: list[RecordRef] = []
        for audience in self._audiences():
            for email in sorted(emails):
                member = self._member(audience["id"], subscriber_hash(email),
                                      exclude_fields=["_links"])
                if member is None:
                    continue
                self._found[(audience["id"], str(member.get("id")))] = member
                refs.append(RecordRef(SYSTEM, "member", str(member.get("id")),
                                      container=audience["id"],
                                      label=f"member of audience {audience['id']}"))
        return refs

    def export(self, refs: Sequence[RecordRef]) -> Export:
        names = {a["id"]: a.get("name") or a["id"] for a in self._audiences()}
        sections: list[ExportSection] = []
        missing = 0
        for ref in _members(refs):
            lid, mh = ref.container or "", ref.record_id
            member = self._found.get((lid, mh)) or self._member(lid, mh,
                                                                exclude_fields=["_links"])
            if member is None:
                missing += 1
                continue
            name = names.get(lid, lid)
            src = f"{SYSTEM}:lists/{lid}/members/{mh}"
            sections.append(ExportSection(f"Audience '{name}': subscriber", src, (member,)))
            parts = (
                ("tags", self.api.lists.get_list_member_tags, "tags", "tags"),
                ("notes", self.api.lists.get_list_member_notes, "notes", "notes"),
                ("activity", self.api.lists.get_list_member_activity, "activity",
                 "recent activity"),
                ("events", self.api.lists.get_list_member_events, "events", "events"),
            )
            for key, fn, field_name, label in parts:
                try:
                    body = self.api.call(fn, lid, mh)
                except NotFound:
                    body = {}
                items = body.get(field_name, []) if isinstance(body, dict) else []
                sections.append(ExportSection(f"Audience '{name}': {label}", f"{src}/{key}",
                                              tuple(i for i in items if isinstance(i, dict))))
        return Export(SYSTEM, tuple(sections),
                      evidence={"members": len(_members(refs)) - missing,
                                "not_found": missing, "api_calls": self.api_calls})

    def erase(self, refs: Sequence[RecordRef], policy: SystemPolicy) -> Outcome:
        self._found.clear()
        archive = policy.erase == EraseMode.DELETE
        results: list[RecordOutcome] = []
        verified = True
        for ref in _members(refs):
            lid, mh = ref.container or "", ref.record_id
            if archive:
                results.append(self._archive(ref))
                member = self._member(lid, mh, fields=["status"])
                if member is not None and member.get("status") != "archived":
                    verified = False
            else:
                results.append(self._forget(ref))
                if self._member(lid, mh, fields=["status"]) is not None:
                    verified = False
        return _outcome(results, verified, self.api_calls,
                        mode="archive" if archive else "delete-permanent")

    def _forget(self, ref: RecordRef) -> RecordOutcome:
        try:
            self.api.call(self.api.lists.delete_list_member_permanent, ref.container,
                          ref.record_id)
        except NotFound as exc:
            return RecordOutcome(ref, Action.NOT_FOUND, "not a member (or already forgotten)",
                                 status_code=exc.status_code,
                                 vendor_request_id=exc.vendor_request_id)
        return RecordOutcome(ref, Action.PERMANENTLY_DELETED,
                             "delete-permanent: PII removed, cannot be re-imported",
                             status_code=204, vendor_request_id=self.api.last_request_id)

    def _archive(self, ref: RecordRef) -> RecordOutcome:
        try:
            self.api.call(self.api.lists.delete_list_member, ref.container, ref.record_id)
        except NotFound as exc:
            return RecordOutcome(ref, Action.NOT_FOUND, "not a member",
                                 status_code=exc.status_code,
                                 vendor_request_id=exc.vendor_request_id)
        except RequestRejected as exc:
            if exc.status_code == 405:  # cannot archive an archived/cleaned/pending member
                member = self._member(ref.container or "", ref.record_id, fields=["status"])
                if member is not None and member.get("status") == "archived":
                    return RecordOutcome(ref, Action.DELETED, "already archived",
                                         status_code=405,
                                         vendor_request_id=exc.vendor_request_id)
            raise
        return RecordOutcome(ref, Action.DELETED, "archived (policy erase=delete)",
                             status_code=204, vendor_request_id=self.api.last_request_id)

    def opt_out(self, refs: Sequence[RecordRef]) -> Outcome:
        self._found.clear()
        results: list[RecordOutcome] = []
        verified = True
        for ref in _members(refs):
            lid, mh = ref.container or "", ref.record_id
            member = self._member(lid, mh, fields=["status"])
            if member is None:
                results.append(RecordOutcome(ref, Action.NOT_FOUND, "not a member",
                                             status_code=404))
                continue
            status = member.get("status")
            if status == "unsubscribed":
                results.append(RecordOutcome(ref, Action.UNSUBSCRIBED, "already unsubscribed"))
                continue
            if status in ("archived", "cleaned"):
                results.append(RecordOutcome(ref, Action.NOTHING_TO_DO,
                                             f"status {status}: receives no campaigns"))
                continue
            self.api.call(self.api.lists.update_list_member, lid, mh,
                          {"status": "unsubscribed"})
            results.append(RecordOutcome(ref, Action.UNSUBSCRIBED,
                                         f"status {status} -> unsubscribed", status_code=200))
            live = self._member(lid, mh, fields=["status"])
            if live is None or live.get("status") != "unsubscribed":
                verified = False
        return _outcome(results, verified, self.api_calls)


SENDS_TO = ("subscribed", "pending")


def _members(refs: Sequence[RecordRef]) -> list[RecordRef]:
    return [r for r in refs if r.system == SYSTEM and r.kind == "member" and r.container]


def _source_record(list_id: str, m: dict[str, Any]) -> SourceRecord:
    merge = m.get("merge_fields") if isinstance(m.get("merge_fields"), dict) else {}
    phones = tuple(p for p in (merge.get("PHONE"), m.get("sms_phone_number"))
                   if isinstance(p, str) and p.strip())
    name = m.get("full_name") or " ".join(
        str(x) for x in (merge.get("FNAME"), merge.get("LNAME")) if x) or None
    email = m.get("email_address")
    return SourceRecord(
        system=SYSTEM,
        record_id=f"{list_id}:{m['id']}",
        emails=(email,) if isinstance(email, str) and email else (),
        phones=phones,
        display_name=name,
        updated_at=parse_time(m.get("last_changed")),
        # "pending" is a double opt-in on its way: it will receive campaigns once confirmed.
        subscribed=m.get("status") in SENDS_TO,
    )


def _later(a: str, b: str) -> bool:
    ta, tb = parse_time(a), parse_time(b)
    if ta is None or tb is None:
        return a > b
    return ta > tb


def _outcome(results: list[RecordOutcome], verified: bool, api_calls: int,
             **extra: Any) -> Outcome:
    counts: dict[str, int] = {}
    for r in results:
        counts[str(r.action)] = counts.get(str(r.action), 0) + 1
    return Outcome(system=SYSTEM, records=tuple(results), verified=verified,
                   evidence={"counts": counts, "api_calls": api_calls, **extra}, at=now_utc())
