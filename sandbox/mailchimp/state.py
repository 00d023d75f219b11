"""Mailchimp's data: two audiences, their merge fields and members (every status), tags,
notes, events, goals (pages visited) and campaign activity.

Members are stored per audience in a dict keyed by subscriber hash (md5 of the
lower-cased e-mail) plus an insertion-ordered hash list for offset paging; filtered and
sorted views are cached until the audience changes, so a 1000-member page costs only
the slice and the JSON encoding.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import Response

from sandbox.faults import VendorState
from sandbox.people import Person, render_email, render_phone
from sandbox.server import MAILCHIMP_DC, credentials

STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived")
EPOCH = datetime(2023, 6, 1, tzinfo=UTC)
ERROR_TYPE = "https://mailchimp.com/developer/marketing/docs/errors/"

DEFAULT_SETTINGS: dict[str, Any] = {
    "max_connections": 10,  # in-flight requests per key before 429 TooManyRequests
    "throttle_mode": "429",  # or "bare403": an empty 403, to exercise the SDK quirk
    "request_delay_ms": 0,  # time each request holds its connection slot (for tests)
    "list_archived": True,  # archived members appear in unfiltered member lists
}


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: md5 hex of the lower-cased e-mail."""
    return hashlib.md5(email.strip().lower().encode()).hexdigest()  # noqa: S324


def mc_time(dt: datetime) -> str:
    """ISO 8601 as Mailchimp writes it: 2015-10-21T15:41:36+00:00."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def now_mc() -> str:
    return mc_time(datetime.now(UTC))


# The audiences' merge fields (GET /lists/{id}/merge-fields): Mailchimp's five defaults
# (FNAME, LNAME, ADDRESS, PHONE, BIRTHDAY, merge ids 1-5) with the labels a Finnish
# account gives them, then custom MMERGE<n> fields, whose tag says nothing: only the
# name tells an export's reader what the value is. "Kurssit" has more than the
# default page of 10, so a reader that does not page loses some.
_DEFAULT_FIELDS = (
    ("FNAME", "Etunimi", "text", {"size": 25}),
    ("LNAME", "Sukunimi", "text", {"size": 25}),
    ("ADDRESS", "Osoite", "address", {"default_country": 72}),
    ("PHONE", "Puhelinnumero", "phone", {"phone_format": "none"}),
    ("BIRTHDAY", "Syntymäpäivä", "birthday", {"date_format": "MM/DD"}),
)
_CUSTOM_FIELDS = {
    "Uutiskirje": ("Yritys",),
    "Kurssit": ("Yritys", "Titteli", "Kurssi", "Ruokavalio", "Laskutusosoite",
                "Kotikunta"),
}
# Pages on the company's site that a goal-tracked member visited (member goals).
_GOAL_PAGES = ("/kurssit/gdpr-perusteet", "/kurssit/ilmoittaudu", "/hinnasto",
               "/yhteystiedot", "/blogi/tietosuoja-arjessa")
# People with a long campaign history: more than /activity's last 50 actions.
_LONG_HISTORY = 40


def _national(phone: str) -> str:
    """Finnish national significant number, so every notation of a phone matches."""
    d = "".join(c for c in phone if c.isdigit())
    if d.startswith("358"):
        return d[3:]
    return d[1:] if d.startswith("0") else d


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


class Audience:
    """One list: members by hash, insertion order, tombstones of forgotten e-mails."""

    def __init__(self, list_id: str, name: str, web_id: int) -> None:
        self.id = list_id
        self.name = name
        self.web_id = web_id
        self.members: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.tombstones: set[str] = set()
        self.by_contact: dict[str, str] = {}
        self.notes: dict[str, list[dict[str, Any]]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.goals: dict[str, list[dict[str, Any]]] = {}
        self.campaigns: dict[str, int] = {}  # hash -> campaigns received (activity)
        self.merge_fields: list[dict[str, Any]] = _merge_fields(list_id, name)
        self.version = 0
        self.json: dict[str, str] = {}  # hash -> member JSON without _links (lazy cache)
        self.views: dict[tuple, tuple[int, list[str]]] = {}


def _merge_fields(list_id: str, name: str) -> list[dict[str, Any]]:
    """The audience's merge field definitions, in display order."""
    fields = [(tag, label, kind, options) for tag, label, kind, options in _DEFAULT_FIELDS]
    fields += [(f"MMERGE{i}", label, "text", {"size": 25})
               for i, label in enumerate(_CUSTOM_FIELDS.get(name, ()), start=6)]
    return [{"merge_id": i, "tag": tag, "name": label, "type": kind, "required": False,
             "default_value": "", "public": tag in ("FNAME", "LNAME"), "display_order": i + 1,
             "options": options, "help_text": "", "list_id": list_id}
            for i, (tag, label, kind, options) in enumerate(fields, start=1)]


class MailchimpState(VendorState):
    """The Mailchimp account; `reset()` rebuilds both audiences from people and seed."""

    name = "mailchimp"

    def __init__(self, people: list[Person], seed: int, settings: dict[str, Any]) -> None:
        super().__init__()
        self.people = people
        self.seed = seed
        self.base_settings = {**DEFAULT_SETTINGS,
                              **{k: v for k, v in settings.items() if k != "api_key"}}
        self.api_key = settings.get("api_key") or credentials(seed)["MAILCHIMP_API_KEY"]
        self.dc = MAILCHIMP_DC
        self.in_flight: dict[str, int] = {}
        self.reset()

    def reset(self) -> None:
        """Back to the seeded audiences."""
        self.settings = dict(self.base_settings)
        rng = random.Random(self.seed * 104729 + 2)
        self.next_note = 1
        self.lists: dict[str, Audience] = {}
        for name, web_id in (("Uutiskirje", 100001), ("Kurssit", 100002)):
            aud = Audience(_hex(rng, 10), name, web_id)
            self.lists[aud.id] = aud
        news, courses = self.lists.values()
        forced = 0
        for p in self.people:
            if "mailchimp" not in p.systems:
                continue
            in_news = p.idx in (0, 1, 2) or rng.random() < 0.85
            in_courses = p.idx in (1, 2) or (p.idx > 3 and (not in_news or rng.random() < 0.4))
            if in_news:
                status = self._pick_status(rng)
                if p.idx in (0, 1):
                    status = "subscribed"
                elif p.idx == 2:
                    status = "unsubscribed"
                elif forced < len(STATUSES):
                    status = STATUSES[forced]
                    forced += 1
                self._seed_member(news, p, status, rng)
            if in_courses:
                status = "subscribed" if p.idx in (1, 2) else self._pick_status(rng)
                self._seed_member(courses, p, status, rng)
        # Serialise every member once now, so even the first pass over a 1000-member
        # page is a string join (load time is cheaper than a slow first sync).
        for aud in self.lists.values():
            for h, m in aud.members.items():
                aud.json[h] = json.dumps(m, ensure_ascii=False, separators=(",", ":"))

    @staticmethod
    def _pick_status(rng: random.Random) -> str:
        r = rng.random()
        for status, edge in (("subscribed", 0.7), ("unsubscribed", 0.82), ("cleaned", 0.87),
                             ("pending", 0.92), ("transactional", 0.95)):
            if r < edge:
                return status
        return "archived"

    def _seed_member(self, aud: Audience, p: Person, status: str, rng: random.Random) -> None:
        signup = EPOCH + timedelta(seconds=rng.randint(0, 500 * 86400))
        changed = signup + timedelta(seconds=rng.randint(0, 300 * 86400))
        email = render_email(p, "mailchimp")
        member = self.new_member(aud, email, status, mc_time(signup), rng)
        member["merge_fields"].update({
            "FNAME": p.first_name, "LNAME": p.last_name,
            "ADDRESS": {"addr1": p.street, "addr2": "", "city": p.city, "state": "",
                        "zip": p.postcode, "country": "FI"} if rng.random() < 0.5 else "",
            "PHONE": render_phone(p, "mailchimp") if rng.random() < 0.6 or p.idx < 3 else "",
            "BIRTHDAY": f"{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}",
        })
        member["full_name"] = p.name
        member["last_changed"] = mc_time(changed)
        member["member_rating"] = rng.randint(1, 5)
        member["stats"] = {"avg_open_rate": round(rng.random(), 2),
                           "avg_click_rate": round(rng.random() / 3, 2)}
        if p.idx < 3 or rng.random() < 0.3:
            tag = rng.choice(("asiakas", "webinaari", "messut", "kurssilainen"))
            member["tags"] = [{"id": 1000 + len(tag), "name": tag}]
            member["tags_count"] = 1
        h = member["id"]
        if p.idx < 3 or rng.random() < 0.1:
            self.add_note(aud, h, f"Soitti {p.first_name}lle {signup:%d.%m.%Y}.", member,
                          bump=False)
        self._seed_history(aud, p, member)
        if p.idx < 2:
            aud.events[h] = [{"occurred_at": mc_time(changed), "name": "kurssi_ilmoittautui",
                              "properties": {"kurssi": "GDPR-perusteet"}}]
        self.insert(aud, member)

    def _seed_history(self, aud: Audience, p: Person, member: dict[str, Any]) -> None:
        """Custom merge values, campaigns received and goals (pages visited), from a
        generator of their own, so the audiences' members stay what they were."""
        rng = random.Random(f"{self.seed}:{aud.id}:{member['id']}:history")
        h = member["id"]
        custom = {"Yritys": p.company or "", "Titteli": "Asiantuntija",
                  "Kurssi": "GDPR-perusteet", "Ruokavalio": "Laktoositon",
                  "Laskutusosoite": f"{p.street}, {p.postcode} {p.city}",
                  "Kotikunta": p.city}
        for field in aud.merge_fields[len(_DEFAULT_FIELDS):]:
            if p.idx < 3 or rng.random() < 0.5:
                member["merge_fields"][field["tag"]] = custom.get(field["name"], "")
        aud.campaigns[h] = _LONG_HISTORY if p.idx < 2 else rng.randint(0, 12)
        if p.idx < 3 or rng.random() < 0.2:
            t = datetime.fromisoformat(member["timestamp_signup"])
            visits = []
            for goal_id in range(1, rng.randint(2, 5) + 1):
                t += timedelta(hours=rng.randint(1, 400))
                visits.append({"goal_id": goal_id, "event": rng.choice(_GOAL_PAGES),
                               "last_visited_at": mc_time(t), "data": ""})
            aud.goals[h] = visits[::-1]

    def new_member(self, aud: Audience, email: str, status: str, when: str,
                   rng: random.Random | None = None) -> dict[str, Any]:
        """A complete member object with Mailchimp's fields (PII in merge_fields etc.)."""
        r = rng or random.Random()
        h = subscriber_hash(email)
        return {
            "id": h, "email_address": email, "unique_email_id": _hex(r, 10),
            "contact_id": _hex(r, 26), "full_name": "", "web_id": r.randint(10**8, 10**9),
            "email_type": "html", "status": status,
            "unsubscribe_reason": "N/A (Unsubscribed by admin)" if status == "unsubscribed"
            else None,
            "consents_to_one_to_one_messaging": True, "sms_phone_number": "",
            "sms_subscription_status": "",
            "merge_fields": {f["tag"]: "" for f in aud.merge_fields},
            "interests": {}, "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
            "ip_signup": f"192.0.2.{r.randint(1, 254)}", "timestamp_signup": when,
            "ip_opt": f"198.51.100.{r.randint(1, 254)}", "timestamp_opt": when,
            "member_rating": 2, "last_changed": when, "language": "fi", "vip": False,
            "email_client": "", "location": {"latitude": 60.17, "longitude": 24.94,
                                             "gmtoff": 2, "dstoff": 3, "country_code": "FI",
                                             "timezone": "Europe/Helsinki", "region": "18"},
            "marketing_permissions": [], "last_note": None, "source": "API - Generic",
            "tags_count": 0, "tags": [], "list_id": aud.id,
        }

    # -- mutation helpers --------------------------------------------------------------
    def insert(self, aud: Audience, member: dict[str, Any]) -> None:
        h = member["id"]
        if h not in aud.members:
            aud.order.append(h)
        aud.members[h] = member
        aud.by_contact[member["contact_id"]] = h
        aud.json.pop(h, None)
        aud.version += 1

    def changed(self, aud: Audience, member: dict[str, Any]) -> None:
        """Every change moves last_changed and invalidates cached views."""
        member["last_changed"] = now_mc()
        aud.json.pop(member["id"], None)
        aud.version += 1

    def forget(self, aud: Audience, h: str) -> None:
        """Permanent delete: PII gone, e-mail tombstoned, no way back in via the API."""
        member = aud.members.pop(h)
        aud.order.remove(h)
        aud.by_contact.pop(member["contact_id"], None)
        for table in (aud.notes, aud.events, aud.goals, aud.campaigns):
            table.pop(h, None)
        aud.tombstones.add(h)
        aud.json.pop(h, None)
        aud.version += 1

    def add_note(self, aud: Audience, h: str, text: str, member: dict[str, Any],
                 bump: bool = True) -> dict[str, Any]:
        now = now_mc() if bump else member["timestamp_signup"]
        note = {"id": self.next_note, "created_at": now, "created_by": "Sandbox Admin",
                "updated_at": now, "note": text, "list_id": aud.id, "email_id": h,
                "contact_id": member["contact_id"]}
        self.next_note += 1
        aud.notes.setdefault(h, []).append(note)
        member["last_note"] = {"note_id": note["id"], "created_at": now,
                               "created_by": "Sandbox Admin", "note": text}
        if bump:
            self.changed(aud, member)
        return note

    def campaign_actions(self, aud: Audience, member: dict[str, Any]
                         ) -> list[dict[str, Any]]:
        """Every campaign action (sent, open, click, unsub), oldest first, generated
        deterministically from the campaigns the member received (not stored)."""
        rng = random.Random(f"{self.seed}:{aud.id}:{member['id']}")
        out = []
        t = datetime.fromisoformat(member["timestamp_signup"])
        for i in range(aud.campaigns.get(member["id"], 0)):
            t += timedelta(days=rng.randint(1, 30))
            cid = _hex(rng, 10)
            title = f"Uutiskirje {i + 1}/{t:%Y}"
            for action in ("sent", "open", "click")[:rng.randint(1, 3)]:
                out.append({"action": action, "timestamp": mc_time(t),
                            "url": "https://example.com/kurssit" if action == "click" else "",
                            "type": "regular", "campaign_id": cid, "title": title,
                            "parent_campaign": ""})
                t += timedelta(minutes=rng.randint(1, 600))
        if member["status"] == "unsubscribed":
            out.append({"action": "unsub", "timestamp": member["last_changed"], "url": "",
                        "type": "regular", "campaign_id": "", "title": "", "parent_campaign": ""})
        return out

    def activity(self, aud: Audience, member: dict[str, Any]) -> list[dict[str, Any]]:
        """``/activity``: the last ≤50 campaign actions, newest first."""
        return self.campaign_actions(aud, member)[::-1][:50]

    def activity_feed(self, aud: Audience, member: dict[str, Any]) -> list[dict[str, Any]]:
        """``/activity-feed``: the member's whole history, newest first, in the feed's
        shapes (``activity_type``, ``created_at_timestamp``): sign-up, campaign actions,
        notes and events."""
        h = member["id"]
        feed: list[dict[str, Any]] = [{
            "activity_type": "generic_signup", "created_at_timestamp":
            member["timestamp_signup"], "signup_category": member["source"],
            "list_id": aud.id}]
        for a in self.campaign_actions(aud, member):
            item = {"activity_type": a["action"], "created_at_timestamp": a["timestamp"],
                    "campaign_id": a["campaign_id"], "campaign_title": a["title"]}
            if a["action"] == "click":
                item["link_clicked"] = a["url"]
            if a["action"] == "unsub":
                item["unsubscribe_reason"] = member["unsubscribe_reason"] or ""
            feed.append(item)
        for n in aud.notes.get(h, []):
            feed.append({"activity_type": "note", "created_at_timestamp": n["created_at"],
                         "note_id": n["id"], "note_text": n["note"],
                         "created_by": n["created_by"]})
        for e in aud.events.get(h, []):
            feed.append({"activity_type": "event", "created_at_timestamp": e["occurred_at"],
                         "event_name": e["name"], "event_properties": e["properties"]})
        feed.sort(key=lambda item: item["created_at_timestamp"], reverse=True)
        return feed

    def view(self, aud: Audience, key: tuple, build: Any) -> list[str]:
        cached = aud.views.get(key)
        if cached and cached[0] == aud.version:
            return cached[1]
        hashes = build()
        if len(aud.views) > 64:
            aud.views.clear()
        aud.views[key] = (aud.version, hashes)
        return hashes

    # -- inspection ----------------------------------------------------------------------
    def record(self, kind: str, id: str) -> dict[str, Any] | None:
        """kind "member" with id "<list_id>:<hash or email>", or kind "list"."""
        if kind == "list":
            aud = self.lists.get(id)
            return None if aud is None else {"id": aud.id, "name": aud.name,
                                             "member_count": len(aud.members)}
        if kind != "member":
            return None
        list_id, _, ident = id.partition(":")
        aud = self.lists.get(list_id)
        if aud is None:
            return None
        h = subscriber_hash(ident) if "@" in ident else ident.lower()
        if h in aud.tombstones:
            return {"id": h, "list_id": list_id, "status": "deleted_permanently",
                    "email_address": None}
        m = aud.members.get(h)
        return None if m is None else dict(m)

    def find(self, email: str | None = None, phone: str | None = None) -> list[dict[str, Any]]:
        out = []
        for aud in self.lists.values():
            if email:
                h = subscriber_hash(email)
                if h in aud.members:
                    out.append({"kind": "member", "id": f"{aud.id}:{h}",
                                "state": aud.members[h]["status"]})
            if phone:
                want = _national(phone)
                for h in aud.order:
                    m = aud.members[h]
                    if want and _national(m["merge_fields"].get("PHONE") or "") == want:
                        out.append({"kind": "member", "id": f"{aud.id}:{h}",
                                    "state": m["status"]})
        return out

    def fault_response(self, kind: str, headers: Headers) -> Response:  # noqa: ARG002
        from sandbox.mailchimp.app import problem

        if kind == "rate_limit":
            return problem(429, "TooManyRequests",
                           "You have exceeded the limit of 10 simultaneous connections.")
        if kind == "malformed":
            return Response('{"members":[{"id":"', media_type="application/json; charset=utf-8")
        return problem(500, "Internal Server Error",
                       "An unexpected internal error has occurred. Please contact Support.")

    def update_settings(self, values: dict[str, Any]) -> dict[str, Any]:
        unknown = set(values) - set(DEFAULT_SETTINGS)
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}")
        self.settings.update(values)
        return self.settings


def request_id() -> str:
    return str(uuid.uuid4())
