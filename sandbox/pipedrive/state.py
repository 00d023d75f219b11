"""Pipedrive's data: persons, organisations, deals, activities, notes, leads, mail, files.

Plain dicts keyed by id plus indexes (e-mail → ids, phone digits → ids, person → related
ids) so that a page or a lookup never scans the whole company. Persons are stored in
v2 shape; v1 views are rendered from it (see `v1_person`).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import random
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response

from sandbox.faults import VendorState
from sandbox.people import Person, render_email, render_phone
from sandbox.server import credentials

ERROR_INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."
MARKETING = ("no_consent", "unsubscribed", "subscribed", "archived")
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)

# Pipedrive's own limits (rate-limiting docs, read 2026-09; checked 2026-12) for the
# plan a small company starts on, Essential/Lite with an API token and three seats:
# 20 requests per 2-second window, search 10 per 2 s on every plan, and a daily token
# budget of 30,000 x plan multiplier (Lite 1) x seats. A burst over the window is
# answered 429 with a 10-second penalty (x-ratelimit-reset: 10 and Retry-After: 10, as
# Pipedrive answered on its developer forum, 2023-10). Tests and the demo relax them
# through SETTINGS_ENV, or per test through /__sandbox/settings.
DEFAULT_SETTINGS: dict[str, Any] = {
    "rate_limits": True,
    "burst_limit": 20,  # per API token per window: Essential/Lite (Advanced 40 ... 120)
    "burst_window_s": 2.0,
    "search_burst_limit": 10,  # the Search API, every plan
    "penalty_s": 10.0,  # after a burst 429, the window stays shut this long
    "daily_budget": 30_000 * 1 * 3,  # tokens: 30,000 x multiplier (Lite 1) x 3 seats
    "cloudflare_after": 0,  # 0 = off; else a 403 HTML page after N ignored 429s
    "maintenance": False,  # True: every API call answers 503 (planned maintenance)
    "search_lag_s": 0.0,  # persons created/changed less than this ago are not yet searchable
}

# JSON object of settings that replace the defaults for every emulator built in this
# process and its children (tests/conftest.py and the demo relax the rate limits).
SETTINGS_ENV = "SANDBOX_PIPEDRIVE_SETTINGS"
RECENTS_HISTORY = timedelta(days=31)  # /v1/recents: one month since 2024-12-01

HIDDEN_V2 = ("delete_time", "marketing_status", "merged_into")
_DIGITS = re.compile(r"\D+")


def iso(dt: datetime) -> str:
    """RFC 3339 with Z, second precision: the v2 timestamp format."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def v1_time(ts: str | None) -> str | None:
    """v2 "2024-01-01T00:00:00Z" -> v1 "2024-01-01 00:00:00"."""
    return None if ts is None else ts.replace("T", " ").rstrip("Z")


def now_iso() -> str:
    return iso(datetime.now(UTC))


def digits(phone: str) -> str:
    return _DIGITS.sub("", phone)


def national(phone: str) -> str:
    """Finnish national significant number: "+358 40 123", "040 123" -> "40123"."""
    d = digits(phone)
    if d.startswith("358"):
        return d[3:]
    return d[1:] if d.startswith("0") else d


def env_settings() -> dict[str, Any]:
    """Settings from SETTINGS_ENV (a JSON object), so a test run or the demo can relax
    the real limits for every emulator it starts, threads and child processes alike."""
    raw = os.environ.get(SETTINGS_ENV, "").strip()
    if not raw:
        return {}
    values = json.loads(raw)
    if not isinstance(values, dict) or set(values) - set(DEFAULT_SETTINGS):
        raise ValueError(f"{SETTINGS_ENV} must be a JSON object of known settings")
    return values


def field_key(name: str) -> str:
    """A custom field's key: 40 hex characters, as Pipedrive's hashes look."""
    return hashlib.sha1(f"pipedrive-person-field:{name}".encode()).hexdigest()


# The company's custom person fields (personFields): key -> (name, field_type).
PERSON_FIELDS: dict[str, tuple[str, str]] = {
    field_key("linkedin"): ("LinkedIn", "varchar"),
    field_key("customer_number"): ("Asiakasnumero", "varchar"),
    field_key("dietary"): ("Ruokavalio", "varchar"),
}
LINKEDIN, CUSTOMER_NUMBER, DIETARY = PERSON_FIELDS
# Person labels (options of the `label_ids` field): Pipedrive's four defaults, and the
# one this company added for restricted processing (GDPR art. 18), as the hub's docs
# tell a deployment to do.
PERSON_LABELS: dict[int, tuple[str, str]] = {
    1: ("Customer", "green"), 2: ("Hot lead", "red"), 3: ("Warm lead", "yellow"),
    4: ("Cold lead", "blue"), 5: ("GDPR restricted", "purple"),
}


def error_body(message: str, code: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"success": False, "error": message, "error_info": ERROR_INFO,
                            "data": None, "additional_data": None}
    if code:
        body["code"] = code
    return body


class PipedriveState(VendorState):
    """The whole company account; `reset()` rebuilds it from the people and seed."""

    name = "pipedrive"

    def __init__(self, people: list[Person], seed: int, settings: dict[str, Any]) -> None:
        super().__init__()
        self.people = people
        self.seed = seed
        self.base_settings = {**DEFAULT_SETTINGS, **env_settings(), **settings}
        self.token = settings.get("api_token") or credentials(seed)["PIPEDRIVE_API_TOKEN"]
        self.reset()

    # -- seeding --------------------------------------------------------------------
    def reset(self) -> None:
        """Rebuild the seeded account (also resets rate-limit windows and budgets)."""
        self.settings = dict(self.base_settings)
        rng = random.Random(self.seed * 7919 + 1)
        self.persons: dict[int, dict[str, Any]] = {}
        self.person_ids: list[int] = []  # ascending, includes deleted
        self.orgs: dict[int, dict[str, Any]] = {}
        self.deals: dict[int, dict[str, Any]] = {}
        self.activities: dict[int, dict[str, Any]] = {}
        self.notes: dict[int, dict[str, Any]] = {}
        self.leads: dict[str, dict[str, Any]] = {}
        self.mails: dict[int, dict[str, Any]] = {}
        self.files: dict[int, dict[str, Any]] = {}
        self.flow: dict[int, list[dict[str, Any]]] = {}
        self.by_email: dict[str, set[int]] = {}
        self.by_phone: dict[str, set[int]] = {}
        self.mails_by_email: dict[str, set[int]] = {}
        self.rel: dict[str, dict[int, list[Any]]] = {
            k: {} for k in ("deals", "activities", "notes", "leads", "mails", "files")
        }
        self.org_by_name: dict[str, int] = {}
        self.next_id = {"person": 1, "org": 1, "deal": 1, "activity": 1, "note": 1,
                        "mail": 1, "file": 1}
        self.sorted_cache: dict[str, tuple[int, list[tuple[str, int]]]] = {}
        self.pjson: dict[int, str] = {}  # id -> v2 JSON without include_fields
        self.version = 0
        self.windows: dict[str, list[float]] = {}
        self.budget_left: dict[str, int] = {}
        self.budget_day = datetime.now(UTC).date()
        self.writes_today: dict[str, int] = {}
        self.blocked_until: dict[str, float] = {}
        self.ignored_429: dict[str, int] = {}
        self.pid_by_idx: dict[int, int] = {}
        for p in self.people:
            if "pipedrive" in p.systems:
                self._seed_person(p, rng)
        # Added after every person so that no earlier id or random draw moves.
        for p in self.people:
            if p.idx in self.pid_by_idx:
                self._seed_contact_fields(p)
        self._seed_archived_lead()
        self._seed_participation()
        # Serialise every person once now: even a first pass over 500-person pages is
        # then a string join (load time is cheaper than a slow first sync).
        for pid, person in self.persons.items():
            self.pjson[pid] = self.person_json(person)

    def _new_id(self, kind: str) -> int:
        value = self.next_id[kind]
        self.next_id[kind] = value + 1
        return value

    def _seed_person(self, p: Person, rng: random.Random) -> None:
        added = EPOCH + timedelta(seconds=rng.randint(0, 400 * 86400))
        updated = added + timedelta(seconds=rng.randint(0, 200 * 86400))
        org_id = self.org_by_name.get(p.company)
        if org_id is None:
            org_id = self._new_id("org")
            self.org_by_name[p.company] = org_id
            self.orgs[org_id] = {
                "id": org_id, "name": p.company, "owner_id": 1, "add_time": iso(added),
                "update_time": iso(added), "is_deleted": False, "visible_to": 3,
                "address": {"value": f"{p.street}, {p.postcode} {p.city}, Suomi"},
                "label_ids": [], "custom_fields": {},
            }
        email = render_email(p, "pipedrive")
        phones = [{"value": render_phone(p, "pipedrive"), "primary": True, "label": "work"}]
        emails = [{"value": email, "primary": True, "label": "work"}]
        if p.idx > 3 and rng.random() < 0.1:
            emails.append({"value": f"{p.first_name.lower()}.{p.idx}@example.net",
                           "primary": False, "label": "home"})
        status = rng.choice(("subscribed", "subscribed", "unsubscribed", "no_consent",
                             "archived"))
        if p.idx in (0, 1):
            status = "subscribed"
        person = {
            "id": self._new_id("person"), "name": p.name, "first_name": p.first_name,
            "last_name": p.last_name, "owner_id": 1, "org_id": org_id,
            "add_time": iso(added), "update_time": iso(updated), "emails": emails,
            "phones": phones, "is_deleted": False, "visible_to": 3, "label_ids": [],
            "picture_id": None, "custom_fields": {}, "marketing_status": status,
            "delete_time": None,
        }
        pid = person["id"]
        self.pid_by_idx[p.idx] = pid
        self._index_person(person)
        self.persons[pid] = person
        self.person_ids.append(pid)
        t = iso(updated)
        if p.idx < 3 or rng.random() < 0.5:
            did = self._new_id("deal")
            self.deals[did] = {
                "id": did, "title": f"{p.company} – koulutus", "person_id": pid,
                "org_id": org_id, "owner_id": 1, "value": rng.randint(5, 200) * 100,
                "currency": "EUR", "status": rng.choice(("open", "won", "lost")),
                "add_time": t, "update_time": t, "is_deleted": False, "is_archived": False,
            }
            self.rel["deals"].setdefault(pid, []).append(did)
            aid = self._new_id("activity")
            self.activities[aid] = {
                "id": aid, "subject": f"Soitto: {p.first_name}", "type": "call",
                "person_id": pid, "org_id": org_id, "deal_id": did, "owner_id": 1,
                "due_date": t[:10], "done": rng.random() < 0.5, "add_time": t,
                "update_time": t, "is_deleted": False, "note": None,
                "participants": [{"person_id": pid, "primary": True}],
                "attendees": [],
            }
            self.rel["activities"].setdefault(pid, []).append(aid)
        if p.idx < 3 or rng.random() < 0.4:
            nid = self._new_id("note")
            self.notes[nid] = {
                "id": nid, "content": f"<p>Tapasimme {p.first_name} {p.last_name}n kanssa. "
                f"Puhelin {phones[0]['value']}.</p>",
                "person_id": pid, "org_id": org_id, "deal_id": None, "lead_id": None,
                "user_id": 1, "add_time": t, "update_time": t, "active_flag": True,
                "pinned_to_person_flag": False,
            }
            self.rel["notes"].setdefault(pid, []).append(nid)
        if p.idx < 2 or rng.random() < 0.2:
            lid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            self.leads[lid] = {
                "id": lid, "title": f"{p.name} liidi", "person_id": pid,
                "organization_id": org_id, "owner_id": 1, "is_archived": False,
                "add_time": t, "update_time": t, "source_name": "API",
                "value": None, "label_ids": [],
            }
            self.rel["leads"].setdefault(pid, []).append(lid)
        if p.idx < 2 or rng.random() < 0.3:
            mid = self._new_id("mail")
            self.mails[mid] = {
                "id": mid, "subject": "Kurssitarjous", "snippet": f"Hei {p.first_name}, ...",
                "from": [{"email_address": "myynti@example.com", "name": "Myynti"}],
                "to": [{"email_address": email, "name": p.name}], "cc": [], "bcc": [],
                "message_time": t, "person_id": pid,
            }
            self.rel["mails"].setdefault(pid, []).append(mid)
            self.mails_by_email.setdefault(email.lower(), set()).add(mid)
        if p.idx < 1 or rng.random() < 0.1:
            fid = self._new_id("file")
            self.files[fid] = {
                "id": fid, "name": f"sopimus_{ascii_name(p)}.pdf", "file_type": "pdf",
                "file_size": rng.randint(10_000, 900_000), "person_id": pid,
                "add_time": t, "update_time": t, "active_flag": True,
            }
            self.rel["files"].setdefault(pid, []).append(fid)

    def _seed_contact_fields(self, p: Person) -> None:
        """Contact Sync fields and custom fields (personal data too), from a random
        stream of their own so the rest of the seed stays as it was."""
        rng = random.Random(f"{self.seed}:{p.idx}:pipedrive-contact")
        person = self.persons[self.pid_by_idx[p.idx]]
        full = p.idx == 0  # Aino holds every field, so the suites meet each one
        person["job_title"] = (rng.choice(("Toimitusjohtaja", "Myyntipäällikkö",
                                           "Hankintapäällikkö", "Asiantuntija"))
                               if full or rng.random() < 0.6 else None)
        person["birthday"] = (f"{p.birth_year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                              if full or rng.random() < 0.3 else None)
        person["postal_address"] = (postal_address(p) if full or rng.random() < 0.4
                                    else None)
        person["notes"] = (f"Tavattu messuilla; soita {p.first_name}lle syksyllä."
                           if full or rng.random() < 0.2 else None)
        person["im"] = ([{"value": f"{p.first_name.lower()}.{p.idx}", "primary": True,
                          "label": "skype"}] if full or rng.random() < 0.1 else [])
        custom: dict[str, Any] = {}
        if full or rng.random() < 0.3:
            custom[LINKEDIN] = f"https://www.linkedin.com/in/{ascii_name(p).lower()}-{p.idx}"
        if full or rng.random() < 0.5:
            custom[CUSTOMER_NUMBER] = f"AS-{10000 + p.idx}"
        if p.special_diet:
            custom[DIETARY] = p.special_diet
        person["custom_fields"] = custom

    def _seed_archived_lead(self) -> None:
        """Aino also has an archived lead: /v1/leads leaves it out (checked 2026-12)."""
        pid = self.pid_by_idx.get(0)
        if pid is None:
            return
        rng = random.Random(f"{self.seed}:pipedrive-archived-lead")
        lid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        t = self.persons[pid]["update_time"]
        self.leads[lid] = {
            "id": lid, "title": f"{self.persons[pid]['name']} – vanha liidi", "person_id": pid,
            "organization_id": self.persons[pid]["org_id"], "owner_id": 1,
            "is_archived": True, "add_time": t, "update_time": t, "source_name": "Web forms",
            "value": None, "label_ids": [],
        }
        self.rel["leads"].setdefault(pid, []).append(lid)

    def _seed_participation(self) -> None:
        """A meeting whose main person is Mikko, with Aino only a participant and an
        attendee: /api/v2/activities?person_id= finds it for Mikko, never for Aino."""
        main, guest = self.pid_by_idx.get(1), self.pid_by_idx.get(0)
        if main is None or guest is None:
            return
        m, g = self.persons[main], self.persons[guest]
        aid = self._new_id("activity")
        t = max(m["update_time"], g["update_time"])
        self.activities[aid] = {
            "id": aid, "subject": "Palaveri: koulutussuunnitelma", "type": "meeting",
            "person_id": main, "org_id": m["org_id"], "deal_id": None, "owner_id": 1,
            "due_date": t[:10], "done": False, "add_time": t, "update_time": t,
            "is_deleted": False, "note": None,
            "participants": [{"person_id": main, "primary": True},
                             {"person_id": guest, "primary": False}],
            "attendees": [{"email": g["emails"][0]["value"], "name": g["name"],
                           "status": "accepted", "is_organizer": False,
                           "person_id": guest, "user_id": None}],
        }
        self.rel["activities"].setdefault(main, []).append(aid)

    # -- indexes --------------------------------------------------------------------
    def _index_person(self, person: dict[str, Any]) -> None:
        for e in person["emails"]:
            self.by_email.setdefault(e["value"].lower(), set()).add(person["id"])
        for ph in person["phones"]:
            self.by_phone.setdefault(digits(ph["value"]), set()).add(person["id"])

    def _unindex_person(self, person: dict[str, Any]) -> None:
        for e in person["emails"]:
            self.by_email.get(e["value"].lower(), set()).discard(person["id"])
        for ph in person["phones"]:
            self.by_phone.get(digits(ph["value"]), set()).discard(person["id"])

    @staticmethod
    def public_v2(person: dict[str, Any]) -> dict[str, Any]:
        """The v2 PersonItem without include_fields (no marketing_status, no internals)."""
        return {k: v for k, v in person.items()
                if not k.startswith("_") and k not in HIDDEN_V2}

    def person_json(self, person: dict[str, Any]) -> str:
        """Cached compact JSON of `public_v2(person)`."""
        js = self.pjson.get(person["id"])
        if js is None:
            js = json.dumps(self.public_v2(person), ensure_ascii=False, separators=(",", ":"))
            self.pjson[person["id"]] = js
        return js

    def touch(self, pid: int | None = None) -> None:
        """Invalidate sorted views (and one person's cached JSON) after a write."""
        self.version += 1
        if pid is not None:
            self.pjson.pop(pid, None)

    def sorted_keys(self, sort_by: str) -> list[tuple[str, int]]:
        """(sort value, id) ascending for update_time/add_time; cached until a write."""
        cached = self.sorted_cache.get(sort_by)
        if cached and cached[0] == self.version:
            return cached[1]
        keys = sorted((p[sort_by], p["id"]) for p in self.persons.values())
        self.sorted_cache[sort_by] = (self.version, keys)
        return keys

    # -- writes ---------------------------------------------------------------------
    def create_person(self, body: dict[str, Any]) -> dict[str, Any]:
        t = now_iso()
        emails = body.get("emails") or []
        person = {
            "id": self._new_id("person"), "name": body["name"], "first_name": None,
            "last_name": None, "owner_id": body.get("owner_id", 1),
            "org_id": body.get("org_id"), "add_time": body.get("add_time", t),
            "update_time": t, "emails": emails, "phones": body.get("phones") or [],
            "is_deleted": False, "visible_to": body.get("visible_to", 3),
            "label_ids": body.get("label_ids", []), "picture_id": None,
            "custom_fields": {k: v for k, v in body.get("custom_fields", {}).items()
                              if v is not None},
            "postal_address": body.get("postal_address"), "notes": body.get("notes"),
            "im": body.get("im") or [], "birthday": body.get("birthday"),
            "job_title": body.get("job_title"),
            "marketing_status": body.get("marketing_status", "no_consent")
            if emails else "no_consent",
            "delete_time": None,
        }
        parts = person["name"].split(" ", 1)
        person["first_name"] = parts[0]
        person["last_name"] = parts[1] if len(parts) > 1 else None
        person["_indexed_at"] = time.monotonic() + float(self.settings["search_lag_s"])
        self.persons[person["id"]] = person
        self.person_ids.append(person["id"])
        self._index_person(person)
        self.touch()
        return person

    def update_person(self, person: dict[str, Any], body: dict[str, Any]) -> None:
        self._unindex_person(person)
        for key, value in body.items():
            if key == "marketing_status":
                continue
            if key == "custom_fields":  # only the keys sent change; null clears one
                merged = {**person["custom_fields"], **value}
                person[key] = {k: v for k, v in merged.items() if v is not None}
                continue
            person[key] = value
        if "name" in body:
            parts = body["name"].split(" ", 1)
            person["first_name"] = parts[0]
            person["last_name"] = parts[1] if len(parts) > 1 else None
        if "marketing_status" in body:
            self.change_marketing(person, body["marketing_status"])
        if not person["emails"]:
            person["marketing_status"] = "no_consent"
        self._index_person(person)
        person["update_time"] = now_iso()
        person["_indexed_at"] = time.monotonic() + float(self.settings["search_lag_s"])
        self.touch(person["id"])

    def change_marketing(self, person: dict[str, Any], new: str) -> None:
        """Only one change from an old status to a new one; a forbidden change is ignored."""
        old = person["marketing_status"]
        if new == old:
            return
        if not person["emails"] or person.get("_marketing_changed"):
            return
        person["marketing_status"] = new
        person["_marketing_changed"] = True
        self.flow.setdefault(person["id"], []).append({
            "object": "marketing_status_change", "timestamp": v1_time(now_iso()),
            "data": {"old_status": old, "new_status": new},
        })

    def delete_person(self, person: dict[str, Any]) -> None:
        """Soft delete; related deals/notes/activities are NOT touched (no cascade)."""
        person["is_deleted"] = True
        person["delete_time"] = now_iso()
        person["update_time"] = person["delete_time"]
        self.touch(person["id"])

    def merge(self, absorbed: dict[str, Any], survivor: dict[str, Any]) -> None:
        """`absorbed` disappears; survivor's values win, its empty fields are filled."""
        self._unindex_person(survivor)
        for key in ("org_id", "owner_id", "first_name", "last_name", "postal_address",
                    "notes", "birthday", "job_title"):
            if survivor.get(key) in (None, "", []):
                survivor[key] = absorbed.get(key)
        seen = {e["value"].lower() for e in survivor["emails"]}
        for e in absorbed["emails"]:
            if e["value"].lower() not in seen:
                survivor["emails"].append({**e, "primary": False})
        survivor["im"] = survivor.get("im") or absorbed.get("im") or []
        survivor["custom_fields"] = {**absorbed.get("custom_fields", {}),
                                     **survivor.get("custom_fields", {})}
        seen = {digits(p["value"]) for p in survivor["phones"]}
        for ph in absorbed["phones"]:
            if digits(ph["value"]) not in seen:
                survivor["phones"].append({**ph, "primary": False})
        self._index_person(survivor)
        sid, aid = survivor["id"], absorbed["id"]
        for kind, table in (("deals", self.deals), ("activities", self.activities),
                            ("notes", self.notes), ("leads", self.leads),
                            ("mails", self.mails), ("files", self.files)):
            ids = self.rel[kind].pop(aid, [])
            for rid in ids:
                table[rid]["person_id"] = sid
                for part in table[rid].get("participants", []):
                    if part["person_id"] == aid:
                        part["person_id"] = sid
            self.rel[kind].setdefault(sid, []).extend(ids)
        self.flow.setdefault(sid, []).extend(self.flow.pop(aid, []))
        self._unindex_person(absorbed)
        absorbed["is_deleted"] = True
        absorbed["merged_into"] = sid
        absorbed["delete_time"] = now_iso()
        survivor["update_time"] = now_iso()
        self.touch(sid)
        self.touch(aid)

    # -- inspection -----------------------------------------------------------------
    def record(self, kind: str, id: str) -> dict[str, Any] | None:
        tables: dict[str, dict[Any, dict[str, Any]]] = {
            "person": self.persons, "organization": self.orgs, "deal": self.deals,
            "activity": self.activities, "note": self.notes, "lead": self.leads,
            "mailMessage": self.mails, "file": self.files,
        }
        table = tables.get(kind)
        if table is None:
            return None
        key: Any = id if kind == "lead" else (int(id) if id.isdigit() else None)
        rec = table.get(key)
        if rec is None:
            return None
        return {k: v for k, v in rec.items() if not k.startswith("_")}

    def find(self, email: str | None = None, phone: str | None = None) -> list[dict[str, Any]]:
        """Generous on purpose (unlike the API's search): any case of the e-mail, any
        Finnish notation of the phone, and notes whose text holds either."""
        out: list[dict[str, Any]] = []
        seen: set[tuple[str, Any]] = set()

        def add(kind: str, rid: Any, state: str) -> None:
            if (kind, rid) not in seen:
                seen.add((kind, rid))
                out.append({"kind": kind, "id": rid, "state": state})

        def person_state(pid: int) -> str:
            return "deleted" if self.persons[pid]["is_deleted"] else "active"

        e = email.strip().lower() if email else None
        n = national(phone) if phone else None
        if e:
            for pid in sorted(self.by_email.get(e, ())):
                add("person", pid, person_state(pid))
            for mid in sorted(self.mails_by_email.get(e, ())):
                if mid in self.mails:
                    add("mailMessage", mid, "active")
        if n:
            for variant in ("358" + n, "0" + n, n):
                for pid in sorted(self.by_phone.get(variant, ())):
                    add("person", pid, person_state(pid))
        for note in self.notes.values():
            text = note["content"].lower()
            if (e and e in text) or (n and n in digits(text)):
                add("note", note["id"], "active" if note["active_flag"] else "deleted")
        return out

    def fault_response(self, kind: str, headers: Headers) -> Response:  # noqa: ARG002
        if kind == "rate_limit":
            return JSONResponse(error_body("Request over limit"), status_code=429,
                                headers={"x-ratelimit-limit": str(self.settings["burst_limit"]),
                                         "x-ratelimit-remaining": "0",
                                         "x-ratelimit-reset": "2"})
        if kind == "malformed":
            return Response('{"success":true,"data":[{"id":1,"name":"Ai',
                            media_type="application/json")
        return JSONResponse(error_body("Internal server error"), status_code=500)

    def update_settings(self, values: dict[str, Any]) -> dict[str, Any]:
        unknown = set(values) - set(DEFAULT_SETTINGS)
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}")
        self.settings.update(values)
        if "daily_budget" in values:
            self.budget_left.clear()
        self.blocked_until.clear()
        return self.settings


def postal_address(p: Person) -> dict[str, Any]:
    """A v2 person's postal_address: the typed value and its parsed parts."""
    street, _, number = p.street.rpartition(" ")
    value = f"{p.street}, {p.postcode} {p.city}, Suomi"
    return {"value": value, "route": street or p.street, "street_number": number or None,
            "subpremise": None, "postal_code": p.postcode, "locality": p.city,
            "sublocality": None, "admin_area_level_1": None, "admin_area_level_2": None,
            "country": "Suomi", "formatted_address": value}


def ascii_name(p: Person) -> str:
    from sandbox.people import ascii_fold

    return ascii_fold(p.last_name)


def find_start(keys: list[tuple[str, int]], after: tuple[str, int]) -> int:
    """Index of the first key strictly after `after` (cursor position)."""
    return bisect.bisect_right(keys, after)
