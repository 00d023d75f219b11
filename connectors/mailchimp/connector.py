"""Mailchimp Marketing API v3 through the official SDK (docs/vendors/mailchimp.md).

- Sync: every audience's members, ``count=1000``/``offset``, ``exclude_fields`` for
  ``_links``, ``since_last_changed`` incrementally (with a one-second look-back, as
  Airbyte does, so an equal-second change is never missed). ``record_id`` =
  ``"<list_id>:<member id>"``. The next pages are read ahead (``READ_AHEAD`` of
  Mailchimp's ten connections) while one is mapped. Archived and cleaned members still
  hold data, so they are indexed like any other. Because the audiences are read one
  after another, every page but the last carries the cursor the sync started from and
  only the last carries the newest ``last_changed`` seen: a crash half-way re-reads,
  never skips.
- Find: in every audience, GET the member by subscriber hash (MD5 of the
  lower-cased e-mail); 404 is simply "not a member there". Each ref carries what the
  member holds (e-mail, FNAME+LNAME, PHONE) for the hub to judge whose it is.
- A ref's ``record_id`` is the member's ``contact_id``, never its ``id``: the id is
  the MD5 of the e-mail, an unkeyed hash that a dictionary reverses (found: 3 of 3
  erased e-mails recovered from task evidence), and a ref's id lands in evidence,
  the journal and failure messages. ``contact_id`` is Mailchimp's opaque id, and the
  member path takes it for GET. To act, the connector uses the subscriber hash, in
  memory only: as ``find`` read it, else from a GET of the member by its
  ``contact_id`` (a ref from an earlier run may carry an e-mail the member no longer
  has), else from the e-mail in ``ref.facts`` if that member is the same contact;
  nothing there is "not a member". The sync's index pointer
  (``<list_id>:<id>``) keeps the MD5: the index also holds the e-mail itself, and
  forgets both when an erasure completes.
- Export: per audience, the member as read, its merge fields labelled by name (from
  ``/lists/{id}/merge-fields``, every page, once per audience), then tags, notes, the
  whole activity history (every page of ``activity-feed``, not ``/activity``'s last
  50), events and goals (pages visited).
- Erase: ``delete-permanent`` in every audience (policy ``permanent_delete``),
  or archive (policy ``delete``); read back: 404, or status archived.
- Opt out: PATCH ``status`` unsubscribed in every audience; read back.
- Rectify: PATCH the member in every audience: ``email_address`` (Mailchimp changes
  the address, and with it the subscriber hash), and the merge fields the audience
  defines (``FNAME``/``LNAME``, ``PHONE``, ``ADDRESS`` as an object); a field the
  audience does not define is not held there and is not told. Read back by the new
  hash. A corrected address that is already another member of the audience is left
  to an operator (``kept``): merging two members is not the API's to do.
- Restrict: the tag ``gdpr-restricted`` (``POST …/tags``) and PATCH ``status``
  unsubscribed; lift marks the tag inactive (removed) and leaves the status alone:
  lifting a restriction is not consent to campaigns. Read back through ``…/tags``.
- Every action is journalled (``self.done``) the moment Mailchimp confirms it; a
  read-back that does not show the intended state leaves the outcome unverified and
  says what it saw on the record.
- Every read the SDK returns is validated by ``models.py`` (``MailchimpApi.read``):
  ``{}``, an HTML page or a list where a member belongs is a BadResponse, never
  "not a member".
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors import gates
from connectors.base import ConnectorBase, parse_time, wanted
from connectors.errors import NotFound, RequestRejected
from connectors.http import (
    DEFAULT_LIMITS,
    CallLimits,
    CombinedLimiter,
    Limiter,
    RetryPolicy,
    read_ahead,
)
from connectors.mailchimp.models import (
    ActivityFeedPage,
    Audience,
    AudiencePage,
    Events,
    FoundMember,
    Goals,
    Member,
    MemberIds,
    MemberKey,
    MemberPage,
    MemberStatus,
    MergeFieldPage,
    Notes,
    Ping,
    Tags,
    dump,
)
from connectors.mailchimp.sdk import (
    DEFAULT_TIMEOUT,
    MAX_CONCURRENT,
    MailchimpApi,
    shared_limiter,
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
from hub.policy import EraseMode, SystemPolicy

SYSTEM = "mailchimp"
PAGE = 1000
# Pages of an audience on the wire at once during a sync (of Mailchimp's ten
# connections): one waits on the network while the other is parsed.
READ_AHEAD = 2
LOOKBACK = timedelta(seconds=1)
RESTRICTED_TAG = "gdpr-restricted"
M = TypeVar("M", bound=BaseModel)
# The access export's parts of one membership: (en, fi, sv) titles; {audience} is the
# audience's name.
SECTION_TITLES = {
    "subscriber": ("Audience '{audience}': subscriber", "Postituslista '{audience}': tilaaja",
                   "Målgrupp '{audience}': prenumerant"),
    "merge_fields": ("Audience '{audience}': merge fields", "Postituslista '{audience}': "
                     "tietosi", "Målgrupp '{audience}': dina uppgifter"),
    "tags": ("Audience '{audience}': tags", "Postituslista '{audience}': tunnisteet",
             "Målgrupp '{audience}': taggar"),
    "notes": ("Audience '{audience}': notes", "Postituslista '{audience}': muistiinpanot",
              "Målgrupp '{audience}': anteckningar"),
    "activity": ("Audience '{audience}': activity", "Postituslista '{audience}': toiminta",
                 "Målgrupp '{audience}': aktivitet"),
    "events": ("Audience '{audience}': events", "Postituslista '{audience}': tapahtumat",
               "Målgrupp '{audience}': händelser"),
    "goals": ("Audience '{audience}': goals (pages visited)",
              "Postituslista '{audience}': tavoitteet (vieraillut sivut)",
              "Målgrupp '{audience}': mål (besökta sidor)"),
}


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
        limits: CallLimits = DEFAULT_LIMITS,
    ) -> None:
        self.api = MailchimpApi(base_url, api_key, timeout=timeout, retry=retry,
                                limiter=limiter, limits=limits)
        self._audience_list: list[Audience] | None = None
        self._field_names: dict[str, dict[str, str]] = {}  # list id -> tag -> name
        # (list id, contact id) -> subscriber hash, as Mailchimp answered it: in memory
        # only, for the calls that take nothing else (delete-permanent, tags, notes).
        self._hashes: dict[tuple[str, str], str] = {}

    @classmethod
    def from_env(cls, *, client: Any = None, **kwargs: Any) -> MailchimpConnector:
        """``client`` is accepted for the registry's signature and ignored: the SDK
        does its own HTTP (requests)."""
        settings = load_settings(MailchimpSettings)
        api_key = settings.api_key.get_secret_value()
        if "limiter" not in kwargs:
            # 10 connections per account, whichever process holds them; the process's
            # own semaphore first, so its threads queue in memory, not in the table.
            kwargs["limiter"] = CombinedLimiter(
                shared_limiter(api_key),
                gates.seats(SYSTEM, settings.base_url, api_key, MAX_CONCURRENT,
                            ttl=kwargs.get("limits", DEFAULT_LIMITS).deadline + 10))
        return cls(settings.base_url, api_key, **kwargs)

    @property
    def api_calls(self) -> int:
        return self.api.api_calls

    def close(self) -> None:
        self.api.close()

    # ----------------------------------------------------------------- plumbing

    def _audiences(self) -> list[Audience]:
        """Every audience, read once per connector: a connector lives for one sync or
        one request's op, and audiences are created by hand, not within seconds."""
        if self._audience_list is None:
            self._audience_list = self._read_audiences()
        return self._audience_list

    def _read_audiences(self) -> list[Audience]:
        out: list[Audience] = []
        offset = 0
        while True:
            page = self.api.read(AudiencePage, self.api.lists.get_all_lists, count=PAGE,
                                 offset=offset, fields=["lists.id", "lists.name", "total_items"])
            out.extend(page.lists)
            offset += len(page.lists)
            if not page.lists or offset >= page.total_items:
                return out

    def _merge_field_names(self, list_id: str) -> dict[str, str]:
        """Tag -> name of every merge field of the audience (all pages), read once per
        connector: an export labels ``MMERGE6`` by what it is (``Yritys``)."""
        if list_id not in self._field_names:
            names: dict[str, str] = {}
            offset = 0
            while True:
                page = self.api.read(MergeFieldPage, self.api.lists.get_list_merge_fields,
                                     list_id, count=PAGE, offset=offset,
                                     fields=["merge_fields.tag", "merge_fields.name",
                                             "total_items"])
                names.update({f.tag: f.name for f in page.merge_fields})
                offset += len(page.merge_fields)
                if not page.merge_fields or offset >= page.total_items:
                    break
            self._field_names[list_id] = names
        return self._field_names[list_id]

    def _every_page(self, model: type[M], read: Any, key: str, list_id: str,  # noqa: ANN401
                    member_hash: str) -> list[dict[str, Any]]:
        """Every item of a member's paged sub-resource: Mailchimp gives 10 a page by
        default, so one call would export the first ten notes, tags or events only."""
        items: list[dict[str, Any]] = []
        while True:
            page = self.api.read(model, read, list_id, member_hash, count=PAGE,
                                 offset=len(items), exclude_fields=["_links"])
            got = getattr(page, key)
            items.extend(got)
            if not got or len(items) >= page.total_items:
                return items

    def _activity_feed(self, list_id: str, member_hash: str) -> list[dict[str, Any]]:
        """The member's whole activity history, every page of ``activity-feed``."""
        return self._every_page(ActivityFeedPage, self.api.lists.get_list_member_activity_feed,
                                "activity", list_id, member_hash)

    def _member(self, list_id: str, member_hash: str, model: type[M], **kwargs: Any
                ) -> M | None:
        """The member as ``model``, or None on a 404 (the only "not a member")."""
        try:
            return self.api.read(model, self.api.lists.get_list_member, list_id, member_hash,
                                 **kwargs)
        except NotFound:
            return None

    def _hash(self, ref: RecordRef) -> str | None:
        """The subscriber hash to address ``ref`` by, or None when it is not a member.

        As this op's ``find`` read it; else asked of Mailchimp by the member's stable
        contact id. A ref found in an earlier run (the journal, an approved candidate)
        may carry an e-mail the member no longer has (a rectification changed it, and
        with it the hash): hashing that first made the member "not found" and left it
        in place. Only when the contact id names no member is the e-mail's hash tried,
        and taken only if that member is the same contact."""
        key = (ref.container or "", ref.record_id)
        if key not in self._hashes:
            member = self._member(key[0], ref.record_id, MemberKey, fields=["id"])
            if member is None:
                member = self._by_email(ref)
            if member is None:
                return None
            self._hashes[key] = member.id
        return self._hashes[key]

    def _by_email(self, ref: RecordRef) -> MemberKey | None:
        """The member the ref's e-mail names, if it is the ref's contact."""
        emails = ref.facts.emails if ref.facts is not None else ()
        if not emails:
            return None
        member = self._member(ref.container or "", subscriber_hash(emails[0]), MemberIds,
                              fields=["id", "contact_id"])
        if member is None or member.contact_id != ref.record_id:
            return None
        return MemberKey(id=member.id)

    def _status(self, ref: RecordRef, member_hash: str) -> str | None:
        """The member's live status, or None when it is not a member (404)."""
        member = self._member(ref.container or "", member_hash, MemberStatus,
                              fields=["status"])
        return None if member is None else member.status

    # ----------------------------------------------------------------- protocol

    def check(self) -> None:
        self.api.read(Ping, self.api.client.ping.get)

    def sync(self, since: str | None) -> Iterator[SyncPage]:
        since_param = None
        if since:
            parsed = parse_time(since)
            since_param = (parsed - LOOKBACK).isoformat() if parsed else since
        newest = since
        newest_at = parse_time(since)
        pending: SyncPage | None = None
        audiences = self._audiences()
        firsts = read_ahead(partial(self._member_page, a.id, since_param, 0) for a in audiences)
        for audience, first in zip(audiences, firsts, strict=True):
            for page in self._member_pages(audience.id, since_param, first):
                records = []
                for m in page.members:
                    record = _source_record(audience.id, m)
                    records.append(record)
                    # Later by time (each parsed once, as the record's updated_at), or
                    # by text where either is not a time.
                    changed = record.updated_at
                    if m.last_changed and (newest is None or (
                            changed > newest_at if changed and newest_at
                            else m.last_changed > newest)):
                        newest, newest_at = m.last_changed, changed
                if pending is not None:
                    yield pending
                pending = SyncPage(records=tuple(records), cursor=since)
        if pending is None:
            pending = SyncPage(cursor=since)
        yield SyncPage(records=pending.records, gone=pending.gone, cursor=newest)

    def _member_page(self, list_id: str, since: str | None, offset: int) -> MemberPage:
        """One page of the audience's members (changed since ``since``)."""
        kwargs: dict[str, Any] = {"count": PAGE, "offset": offset,
                                  "exclude_fields": ["members._links", "_links"]}
        if since:
            kwargs["since_last_changed"] = since
        return self.api.read(MemberPage, self.api.lists.get_list_members_info, list_id,
                             **kwargs)

    def _member_pages(self, list_id: str, since: str | None, first: MemberPage
                      ) -> Iterator[MemberPage]:
        """Every page of the audience's members: the ``first``, which tells how many
        there are, then the rest by offset, READ_AHEAD of them on the wire while the
        sync maps the one before (Mailchimp takes ten connections at once, and the
        shared limiter holds that; the next audience's first page is read ahead
        beside them). Pages are full but the last, so the offsets are known; an empty
        page ends the audience early."""
        yield first
        if not first.members:
            return
        offsets = range(len(first.members), first.total_items, PAGE)
        for page in read_ahead((partial(self._member_page, list_id, since, offset)
                                for offset in offsets), READ_AHEAD):
            yield page
            if not page.members:
                return

    def find(self, identifiers: Sequence[Identifier]) -> list[RecordRef]:
        """The subject's membership in every audience, each with what the member holds
        (e-mail, FNAME+LNAME, PHONE) so the hub can tell whose it is (rule 9)."""
        emails, _phones = wanted(identifiers)
        if not emails:
            return []
        refs: list[RecordRef] = []
        for audience in self._audiences():
            for email in sorted(emails):
                member = self._member(audience.id, subscriber_hash(email), FoundMember,
                                      exclude_fields=["_links"])
                if member is None:
                    continue
                self.remember((audience.id, member.contact_id), dump(member))
                self._hashes[(audience.id, member.contact_id)] = member.id
                refs.append(RecordRef(SYSTEM, "member", member.contact_id,
                                      container=audience.id,
                                      label=f"member of audience {audience.id}",
                                      facts=_facts(member)))
        return refs

    def export(self, refs: Sequence[RecordRef]) -> Export:
        self.begin()
        names = {a.id: a.name or a.id for a in self._audiences()}
        sections: list[ExportSection] = []
        missing = 0
        for ref in _members(refs):
            lid = ref.container or ""
            member = self.recall((lid, ref.record_id))
            mh = self._hash(ref)
            if member is None and mh is not None:
                live = self._member(lid, mh, Member, exclude_fields=["_links"])
                member = dump(live) if live is not None else None
            if member is None or mh is None:
                missing += 1
                continue
            name = names.get(lid, lid)
            src = f"{SYSTEM}:lists/{lid}/members/{ref.record_id}"
            sections.append(_section(name, "subscriber", src, (member,)))
            sections.append(_section(
                name, "merge_fields", f"{src}/merge_fields",
                _labelled(member.get("merge_fields"), self._merge_field_names(lid))))
            for key, items in self._member_parts(lid, mh):
                sections.append(_section(name, key, f"{src}/{key}", items))
        return Export(SYSTEM, tuple(sections),
                      evidence={"members": len(_members(refs)) - missing,
                                "not_found": missing, "api_calls": self.op_calls})

    def _member_parts(self, lid: str, mh: str
                      ) -> Iterator[tuple[str, tuple[dict[str, Any], ...]]]:
        """(key, items) of the member's tags, notes, whole activity history (every
        page of activity-feed), events and goals (pages visited)."""
        lists = self.api.lists
        parts: tuple[tuple[str, Any], ...] = (
            ("tags", lambda: self._every_page(Tags, lists.get_list_member_tags, "tags",
                                              lid, mh)),
            ("notes", lambda: self._every_page(Notes, lists.get_list_member_notes, "notes",
                                               lid, mh)),
            ("activity", lambda: self._activity_feed(lid, mh)),
            ("events", lambda: self._every_page(Events, lists.get_list_member_events,
                                                "events", lid, mh)),
            # the SDK's generator named this one in camelCase
            ("goals", lambda: self.api.read(Goals, lists.getListMemberGoals, lid,
                                            mh).goals),
        )
        for key, read in parts:
            try:
                items = read()
            except NotFound:
                items = []
            yield key, tuple(items)

    def erase(self, refs: Sequence[RecordRef], policy: SystemPolicy) -> Outcome:
        """Permanently delete (or archive, per policy) each membership, journalled as
        Mailchimp confirms it, then read back: a member still there (or not archived)
        makes the outcome unverified, with what the read-back saw on its record."""
        self.begin()
        read_now = self.forget_found()  # members this op's find has just read
        archive = policy.erase == EraseMode.DELETE
        results: list[RecordOutcome] = []
        verified = True
        for ref in _members(refs):
            member_hash = self._hash(ref)
            if member_hash is None or (
                    not archive and (ref.container or "", ref.record_id) not in read_now
                    and self._status(ref, member_hash) is None):
                # A ref from the journal or an earlier run: read before writing, so a
                # second run writes nothing (delete-permanent answers 404 anyway).
                results.append(RecordOutcome(ref, Action.NOT_FOUND,
                                             "not a member (or already forgotten)",
                                             status_code=404))
                continue
            record = (self._archive(ref, member_hash) if archive
                      else self._forget(ref, member_hash))
            status = self._status(ref, member_hash)
            if archive and status not in (None, "archived"):
                record = _with_read_back(record, f"read back: status is still {status}")
                verified = False
            elif not archive and status is not None:
                record = _with_read_back(record, f"read back: still a member ({status})")
                verified = False
            results.append(record)
        return self.outcome(results, verified, mode="archive" if archive else "delete-permanent")

    def _forget(self, ref: RecordRef, member_hash: str) -> RecordOutcome:
        try:
            self.api.call(self.api.lists.delete_list_member_permanent, ref.container,
                          member_hash)
        except NotFound as exc:
            return self.gone(ref, exc, "not a member (or already forgotten)")
        return self.done(RecordOutcome(ref, Action.PERMANENTLY_DELETED,
                                       "delete-permanent: PII removed, cannot be re-imported",
                                       status_code=204,
                                       vendor_request_id=self.api.last_request_id))

    def _archive(self, ref: RecordRef, member_hash: str) -> RecordOutcome:
        try:
            self.api.call(self.api.lists.delete_list_member, ref.container, member_hash)
        except NotFound as exc:
            return self.gone(ref, exc, "not a member")
        except RequestRejected as exc:
            # 405: cannot archive an archived/cleaned/pending member
            if exc.status_code == 405 and self._status(ref, member_hash) == "archived":
                return RecordOutcome(ref, Action.DELETED, "already archived", status_code=405,
                                     vendor_request_id=exc.vendor_request_id)
            raise
        return self.done(RecordOutcome(ref, Action.DELETED, "archived (policy erase=delete)",
                                       status_code=204,
                                       vendor_request_id=self.api.last_request_id))

    def opt_out(self, refs: Sequence[RecordRef]) -> Outcome:
        self.begin()
        # The status this op's find has just read decides whether to write; the
        # read-back after the write is what proves it.
        statuses = {ref: member.get("status") for ref in _members(refs)
                    if isinstance(member := self.recall((ref.container or "", ref.record_id)),
                                  dict)}
        self.forget_found()
        return self.settle(self._opt_out_one(ref, statuses.get(ref)) for ref in _members(refs))

    def _opt_out_one(self, ref: RecordRef, status: str | None = None
                     ) -> tuple[RecordOutcome, bool]:
        """(outcome, whether the read-back shows it) for one membership; ``status`` as
        this op's find read it, else read now."""
        member_hash = self._hash(ref)
        if member_hash is None:
            status = None
        elif status is None:
            status = self._status(ref, member_hash)
        if member_hash is None or status is None:
            return RecordOutcome(ref, Action.NOT_FOUND, "not a member", status_code=404), True
        if status == "unsubscribed":
            return RecordOutcome(ref, Action.UNSUBSCRIBED, "already unsubscribed"), True
        if status in ("archived", "cleaned"):
            return RecordOutcome(ref, Action.NOTHING_TO_DO,
                                 f"status {status}: receives no campaigns"), True
        self.api.call(self.api.lists.update_list_member, ref.container, member_hash,
                      {"status": "unsubscribed"})
        record = self.done(RecordOutcome(ref, Action.UNSUBSCRIBED,
                                         f"status {status} -> unsubscribed", status_code=200))
        live = self._status(ref, member_hash)
        if live == "unsubscribed":
            return record, True
        seen = "not a member any more" if live is None else f"status is still {live}"
        return _with_read_back(record, f"read back: {seen}"), False

    # -------------------------------------------------------------- rectification

    def rectify(self, refs: Sequence[RecordRef], corrections: Corrections) -> Outcome:
        self.begin()
        self.forget_found()
        results = [self._rectify_one(ref, corrections) for ref in _members(refs)]
        return self.outcome([record for record, _ in results], all(ok for _, ok in results),
                            corrected=list(corrections.fields()))

    def _rectify_one(self, ref: RecordRef, c: Corrections) -> tuple[RecordOutcome, bool]:
        """(outcome, whether the read-back shows the corrected values) for one membership."""
        member_hash = self._hash(ref)
        member = None if member_hash is None else self._member(ref.container or "",
                                                                 member_hash, Member)
        if member_hash is None or member is None:
            return RecordOutcome(ref, Action.NOT_FOUND, "not a member", status_code=404), True
        tags = set(self._merge_field_names(ref.container or ""))
        body = _corrected(member, c, tags)
        told = _told(c, tags)
        if not body:
            record = RecordOutcome(ref, Action.RECTIFIED,
                                   f"already holds the corrected {', '.join(told)}")
        else:
            try:
                self.api.call(self.api.lists.update_list_member, ref.container, member_hash,
                              body)
            except RequestRejected as exc:
                if "email_address" not in body:
                    raise
                return RecordOutcome(
                    ref, Action.KEPT, "Mailchimp refused the corrected e-mail address "
                    f"({exc.status_code}): it is another member of this audience already, "
                    "or was permanently deleted there; merge or re-add by hand",
                    status_code=exc.status_code), True
            if "email_address" in body:  # the subscriber hash follows the address
                member_hash = subscriber_hash(body["email_address"])
                self._hashes[(ref.container or "", ref.record_id)] = member_hash
            record = self.done(RecordOutcome(
                ref, Action.RECTIFIED, f"told the corrected {', '.join(told)}",
                status_code=200, vendor_request_id=self.api.last_request_id))
        live = self._member(ref.container or "", member_hash, Member)
        wrong = ["the member"] if live is None else _uncorrected(live, c, tags)
        if wrong:
            return _with_read_back(record, f"read back: {', '.join(wrong)} not as "
                                           "corrected"), False
        return _with_read_back(record, "read back: shows the corrected values"), True

    # ---------------------------------------------------------------- restriction

    def restrict(self, refs: Sequence[RecordRef], lift: bool) -> Outcome:
        self.begin()
        self.forget_found()
        results = [self._restrict_one(ref, lift) for ref in _members(refs)]
        return self.outcome([record for record, _ in results], all(ok for _, ok in results),
                            tag=RESTRICTED_TAG)

    def _tagged(self, ref: RecordRef, member_hash: str) -> bool:
        tags = self.api.read(Tags, self.api.lists.get_list_member_tags, ref.container,
                             member_hash, count=PAGE)
        return any(t.get("name") == RESTRICTED_TAG for t in tags.tags)

    def _restrict_one(self, ref: RecordRef, lift: bool) -> tuple[RecordOutcome, bool]:
        """(outcome, whether the read-back shows the tag on, or off) for one membership."""
        member_hash = self._hash(ref)
        status = None if member_hash is None else self._status(ref, member_hash)
        if member_hash is None or status is None:
            return RecordOutcome(ref, Action.NOT_FOUND, "not a member", status_code=404), True
        action = Action.LIFTED if lift else Action.RESTRICTED
        done: list[str] = []
        if self._tagged(ref, member_hash) == lift:
            self.api.call(self.api.lists.update_list_member_tags, ref.container, member_hash,
                          {"tags": [{"name": RESTRICTED_TAG,
                                     "status": "inactive" if lift else "active"}]})
            done.append(f"tag {RESTRICTED_TAG} " + ("removed" if lift else "added"))
        if not lift and status in SENDS_TO:
            self.api.call(self.api.lists.update_list_member, ref.container, member_hash,
                          {"status": "unsubscribed"})
            done.append(f"status {status} -> unsubscribed")
        if done:
            record = self.done(RecordOutcome(ref, action, "; ".join(done), status_code=200,
                                             vendor_request_id=self.api.last_request_id))
        else:
            record = RecordOutcome(ref, action, "tag already " + ("off" if lift else "on"))
        tagged = self._tagged(ref, member_hash)
        live = self._status(ref, member_hash)
        ok = not tagged if lift else tagged and live not in SENDS_TO
        seen = f"tag {'on' if tagged else 'off'}, status {live}"
        return _with_read_back(record, f"read back: {seen}"), ok


SENDS_TO = ("subscribed", "pending")


def _told(c: Corrections, tags: set[str]) -> list[str]:
    """The corrected fields this audience holds (the e-mail always; the rest by tag)."""
    held = {"email": True, "name": bool({"FNAME", "LNAME"} & tags),
            "phone": "PHONE" in tags, "address": "ADDRESS" in tags}
    return [f for f in c.fields() if held[f]]


def _wanted_fields(c: Corrections, tags: set[str]) -> dict[str, Any]:
    """The merge field values the corrections give, for the tags the audience defines."""
    first, last = c.split_name()
    out: dict[str, Any] = {}
    if c.name is not None:
        out.update({k: v for k, v in (("FNAME", first), ("LNAME", last)) if k in tags})
    if c.phone is not None and "PHONE" in tags:
        out["PHONE"] = c.phone
    if c.address is not None and "ADDRESS" in tags:
        a = c.address
        out["ADDRESS"] = {"addr1": a.street, "addr2": "", "city": a.city, "state": "",
                          "zip": a.postcode, "country": a.country}
    return out


def _holds(member: Member, tag: str, value: Any) -> bool:
    current = member.merge_fields.get(tag)
    if tag == "PHONE":
        return isinstance(current, str) and normalise_phone(current).value == value
    if tag == "ADDRESS":
        return isinstance(current, dict) and all(current.get(k) == v for k, v in value.items()
                                                  if k not in ("addr2", "state"))
    return current == value


def _corrected(member: Member, c: Corrections, tags: set[str]) -> dict[str, Any]:
    """The PATCH body with what the member does not hold yet ({} when it holds it all)."""
    body: dict[str, Any] = {}
    if c.email is not None and normalise_email(member.email_address) != c.email:
        body["email_address"] = c.email
    fields = {tag: value for tag, value in _wanted_fields(c, tags).items()
              if not _holds(member, tag, value)}
    if fields:
        body["merge_fields"] = fields
    return body


def _uncorrected(member: Member, c: Corrections, tags: set[str]) -> list[str]:
    """The corrected fields the member, read back, does not show."""
    wrong = []
    if c.email is not None and normalise_email(member.email_address) != c.email:
        wrong.append("email")
    off = {tag for tag, value in _wanted_fields(c, tags).items()
           if not _holds(member, tag, value)}
    for field, field_tags in (("name", {"FNAME", "LNAME"}), ("phone", {"PHONE"}),
                              ("address", {"ADDRESS"})):
        if off & field_tags:
            wrong.append(field)
    return wrong


def _members(refs: Sequence[RecordRef]) -> list[RecordRef]:
    return [r for r in refs if r.system == SYSTEM and r.kind == "member" and r.container]


def _phones(m: Member) -> tuple[str, ...]:
    return tuple(p for p in (m.merge_fields.get("PHONE"), m.sms_phone_number)
                 if isinstance(p, str) and p.strip())


def _name(m: Member) -> str | None:
    """FNAME and LNAME joined (as the member holds them), else Mailchimp's full_name."""
    parts = [m.merge_fields.get(k) for k in ("FNAME", "LNAME")]
    joined = " ".join(str(x).strip() for x in parts if isinstance(x, str) and x.strip())
    return joined or m.full_name or None


def _facts(m: Member) -> RecordFacts:
    return RecordFacts(name=_name(m), emails=(m.email_address,), phones=_phones(m))


def _source_record(list_id: str, m: Member) -> SourceRecord:
    return SourceRecord(
        system=SYSTEM,
        record_id=f"{list_id}:{m.id}",
        emails=(m.email_address,) if m.email_address else (),
        phones=_phones(m),
        display_name=m.full_name or _name(m),
        updated_at=parse_time(m.last_changed),
        # "pending" is a double opt-in on its way: it will receive campaigns once confirmed.
        subscribed=m.status in SENDS_TO,
    )


def _section(audience: str, key: str, source: str, items: tuple[dict[str, Any], ...]
             ) -> ExportSection:
    en, fi, sv = (t.format(audience=audience) for t in SECTION_TITLES[key])
    return ExportSection(en, source, items, titles={"fi": fi, "sv": sv})


def _labelled(values: Any, names: dict[str, str]) -> tuple[dict[str, Any], ...]:
    """The member's merge field values, each labelled by the field's name (its tag
    kept beside it), in the audience's order; empty values are no data and left out.
    A tag the audience no longer defines keeps its tag as its label."""
    if not isinstance(values, dict):
        return ()
    order = [*names, *(tag for tag in values if tag not in names)]
    return tuple({"field": names.get(tag, tag), "tag": tag, "value": values[tag]}
                 for tag in order if values.get(tag) not in (None, "", {}))


def _with_read_back(record: RecordOutcome, seen: str) -> RecordOutcome:
    """The record with what the read-back saw appended."""
    return replace(record, detail=f"{record.detail}; {seen}")

