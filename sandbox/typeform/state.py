"""Typeform's world: one account, one workspace, three forms and their responses.

The state is generated once from the shared `Person` list and a seed, so the
same seed always gives the same forms, tokens and answers. Responses are kept
per form in one list sorted by (submitted_at, token) with a parallel key list,
so `since`/`until`/`before`/`after` are bisections and a 1,000-item page is a
slice plus a join of pre-serialised JSON (a few milliseconds even at 100,000
people). Deletions (by id and by RTBF job) are *asynchronous* like Typeform's:
they are registered with a due time and applied lazily by `settle()`, which
every route and inspection call runs first, so no background task is needed.
"""

from __future__ import annotations

import gc
import hashlib
import json
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.responses import Response as StarletteResponse

from sandbox.faults import VendorState
from sandbox.people import Person, render_email, render_phone
from sandbox.server import credentials as server_credentials

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

DEFAULT_SETTINGS: dict[str, Any] = {
    # Typeform allows 2 requests per second per account; 0 or None disables.
    "rate_limit_per_second": 2,
    # Seconds before a registered response deletion takes effect.
    "delete_delay": 0.3,
    # Seconds before an RTBF job reports "Done" (and its deletions take effect).
    "rtbf_delay": 1.0,
}


def hexid(seed: int, *parts: object, length: int = 32) -> str:
    """A stable lower-case hex id (tokens, network ids): cheap for 100,000 responses."""
    return hashlib.blake2b(f"{seed}:{':'.join(map(str, parts))}".encode(),
                           digest_size=(length + 1) // 2).hexdigest()[:length]


def uid(seed: int, *parts: object, length: int = 8) -> str:
    """A stable Typeform-looking id (base62) for a seed and some labels."""
    digest = hashlib.blake2b(f"{seed}:{':'.join(map(str, parts))}".encode(),
                             digest_size=24).digest()
    num = int.from_bytes(digest, "big")
    out = []
    for _ in range(length):
        num, rem = divmod(num, 62)
        out.append(ALPHABET[rem])
    return "".join(out)


def account_id(seed: int) -> str:
    """The account id for a seed (GET /me and /workspaces show it; RTBF needs it)."""
    return uid(seed, "account", length=10)


def iso(ts: int) -> str:
    """Typeform timestamps: ISO 8601 UTC to the second with a Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the three forms -------------------------------------------------------------

COURSES = ("Tietosuoja käytännössä", "Excel-jatkokurssi", "Asiakaspalvelun perusteet",
           "Projektinhallinta", "Kirjanpidon alkeet")
REQUEST_TYPES = ("Tietojen tarkastus", "Tietojen poisto", "Markkinoinnin kielto",
                 "Tietojen oikaisu")
DIET_LABELS = ("Ei erityisruokavaliota", "gluteeniton", "vegaani", "laktoositon",
               "kasvis", "maidoton")
FEEDBACK_TEXTS = (
    "Kurssi oli hyvä ja kouluttaja asiantunteva.",
    "Liikaa asiaa yhteen päivään, mutta esimerkit auttoivat.",
    "Tilat olivat ahtaat ja kahvi loppui kesken.",
    "Kiitos, opin paljon uutta!",
    "Materiaalit olisi voinut jakaa etukäteen.",
    "Harjoituksia olisi saanut olla enemmän.",
    "Erinomainen kurssi, suosittelen kollegoille.",
)
FEEDBACK_EMAIL_TEXTS = (
    "Lähettäkää todistus osoitteeseen {email}, kiitos.",
    "Voitte olla yhteydessä: {email}",
    "Haluaisin jatkokurssin tiedot sähköpostiin {email}.",
)
REQUEST_TEXTS = (
    "Pyydän poistamaan kaikki tietoni. Käytän osoitetta {email}.",
    "Haluan nähdä mitä tietoja minusta on tallennettu ({email}).",
    "En halua enää markkinointiviestejä osoitteeseeni {email}. Puh. {phone}",
    "Sähköpostini on vaihtunut, vanha oli {email}.",
)
AGENTS = (
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
     "other", "chrome"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
     "mobile", "safari"),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
     "other", "firefox"),
)


def _field(seed: int, form: str, ref: str, title: str, ftype: str,
           properties: dict | None = None, required: bool = False) -> dict[str, Any]:
    return {"id": uid(seed, form, ref, length=12), "ref": ref, "title": title, "type": ftype,
            "properties": properties or {}, "validations": {"required": required}}


def _choices(seed: int, form: str, ref: str, labels: tuple[str, ...]) -> dict[str, Any]:
    return {"choices": [{"id": uid(seed, form, ref, lab, length=12), "ref": f"{ref}_{i}",
                         "label": lab} for i, lab in enumerate(labels)]}


def build_forms(seed: int, created: int) -> list[dict[str, Any]]:
    """The form definitions, with the fields the hub has to look through."""
    fb, reg, req = (uid(seed, "form", k) for k in ("feedback", "registration", "request"))
    return [
        {"id": fb, "title": "Kurssipalaute", "type": "form",
         "hidden": ["course_id"], "variables": {"score": 0},
         "fields": [
             _field(seed, fb, "course", "Mikä kurssi?", "multiple_choice",
                    _choices(seed, fb, "course", COURSES), True),
             _field(seed, fb, "rating", "Kuinka tyytyväinen olit?", "opinion_scale",
                    {"steps": 11, "start_at_one": False}, True),
             _field(seed, fb, "comments", "Vapaa palaute", "long_text"),
         ], "created": created},
        {"id": reg, "title": "Kurssi-ilmoittautuminen", "type": "form",
         "hidden": ["utm_source"], "variables": {},
         "fields": [
             _field(seed, reg, "first_name", "Etunimi", "short_text", required=True),
             _field(seed, reg, "last_name", "Sukunimi", "short_text", required=True),
             _field(seed, reg, "email", "Sähköposti", "email", required=True),
             _field(seed, reg, "phone", "Puhelinnumero", "phone_number",
                    {"default_country_code": "FI"}),
             _field(seed, reg, "company", "Yritys", "short_text"),
             _field(seed, reg, "diet", "Erityisruokavalio", "multiple_choice",
                    {**_choices(seed, reg, "diet", DIET_LABELS), "allow_other_choice": True}),
             _field(seed, reg, "notes", "Lisätietoja", "long_text"),
         ], "created": created},
        {"id": req, "title": "Tietopyyntö", "type": "form",
         "hidden": ["email", "customer_ref"], "variables": {},
         "fields": [
             _field(seed, req, "request_type", "Mitä haluat tehdä?", "multiple_choice",
                    _choices(seed, req, "request_type", REQUEST_TYPES), True),
             _field(seed, req, "details", "Kerro tarkemmin", "long_text"),
             _field(seed, req, "contact_email", "Vastausosoite", "email"),
         ], "created": created},
    ]


def _vary_case(email: str, rng: random.Random) -> str:
    """Free text is typed by humans: e-mails show up in any case."""
    r = rng.random()
    if r < 0.25:
        return email.upper()
    if r < 0.5:
        local, _, dom = email.partition("@")
        return ".".join(p[:1].upper() + p[1:] for p in local.split(".")) + "@" + dom
    return email


@dataclass(slots=True)
class Response:
    """One stored response: its JSON item, its pre-serialised bytes and search keys."""

    form_id: str
    token: str
    submitted_at: int
    item: dict[str, Any]
    raw: bytes = b""
    blob: str = ""  # lower-cased text the `query` parameter searches
    texts: tuple[str, ...] = ()  # lower-cased text answers (RTBF: contains)
    exact: frozenset[str] = frozenset()  # lower-cased email/hidden/variable values (equals)

    @property
    def key(self) -> tuple[int, str]:
        return (self.submitted_at, self.token)


def finish(resp: Response) -> Response:
    """Compute the serialised form and the search keys once, at creation."""
    item = resp.item
    texts: list[str] = []
    exact: set[str] = set()
    parts: list[str] = []
    for ans in item["answers"]:
        t = ans["type"]
        if t == "text":
            texts.append(ans["text"].lower())
            parts.append(ans["text"])
        elif t == "email":
            exact.add(ans["email"].lower())
            parts.append(ans["email"])
        elif t == "phone_number":
            parts.append(ans["phone_number"])
        elif t == "choice":
            parts.append(ans["choice"].get("label") or ans["choice"].get("other") or "")
        elif t == "number":
            parts.append(str(ans["number"]))
    for value in item["hidden"].values():
        exact.add(str(value).lower())
        parts.append(str(value))
    for var in item["variables"]:
        if var["type"] == "text":
            exact.add(var["text"].lower())
            parts.append(var["text"])
        else:
            parts.append(str(var.get("number", "")))
    resp.raw = json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()
    resp.blob = "\n".join(parts).lower()
    resp.texts = tuple(texts)
    resp.exact = frozenset(exact)
    return resp


class FormStore:
    """One form's responses, sorted by (submitted_at, token)."""

    def __init__(self, definition: dict[str, Any]) -> None:
        self.definition = definition
        self.responses: list[Response] = []
        self.keys: list[tuple[int, str]] = []
        self.by_token: dict[str, Response] = {}
        # Deleted responses keep their position so `after=<deleted token>` still works.
        self.ghost_keys: dict[str, tuple[int, str]] = {}

    def load(self, responses: list[Response]) -> None:
        responses.sort(key=lambda r: r.key)
        self.responses = responses
        self.keys = [r.key for r in responses]
        self.by_token = {r.token: r for r in responses}

    def position_key(self, token: str) -> tuple[int, str] | None:
        r = self.by_token.get(token)
        if r is not None:
            return r.key
        return self.ghost_keys.get(token)

    def delete(self, tokens: set[str]) -> list[str]:
        gone = [t for t in tokens if t in self.by_token]
        if not gone:
            return []
        for t in gone:
            self.ghost_keys[t] = self.by_token.pop(t).key
        self.responses = [r for r in self.responses if r.token in self.by_token]
        self.keys = [r.key for r in self.responses]
        return gone


@dataclass(slots=True)
class Job:
    """An RTBF deletion job for one e-mail address."""

    job_id: str
    email: str
    due: float
    done: bool = False
    deleted: int = 0


class TypeformState(VendorState):
    """All of one Typeform account; thread-safe, settles pending deletes lazily."""

    name = "typeform"

    def __init__(self, people: list[Person], seed: int,
                 settings: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.people = people
        self.seed = seed
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self.account_id = account_id(seed)
        self.token = server_credentials(seed)["TYPEFORM_TOKEN"]
        self.workspace_id = uid(seed, "workspace")
        self.lock = threading.RLock()
        self.reset()

    def update_settings(self, values: dict[str, Any]) -> dict[str, Any]:
        """Only the documented knobs, as non-negative numbers (or null to disable)."""
        for key, value in values.items():
            if key not in DEFAULT_SETTINGS:
                raise ValueError(f"unknown typeform setting {key!r}")
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, int | float) or value < 0):
                raise ValueError(f"{key} must be a non-negative number or null")
        self.settings.update(values)
        return self.settings

    # --- lifecycle ---------------------------------------------------------------

    def reset(self) -> None:
        """Back to the seeded state: all responses back, no pending jobs."""
        with self.lock:
            # Anchor on today's UTC midnight: deterministic within a day for a seed,
            # and responses always look recent enough to matter.
            today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            self.anchor = int(today.timestamp())
            created = int((today - timedelta(days=3 * 365)).timestamp())
            self.forms: dict[str, FormStore] = {}
            for d in build_forms(self.seed, created):
                self.forms[d["id"]] = FormStore(d)
            self.form_order = list(self.forms)
            self.pending: list[tuple[float, str, set[str]]] = []
            self.jobs: dict[str, Job] = {}
            self.job_counter = 0
            # Generation allocates millions of small objects at 100,000 people; the
            # cyclic GC would rescan them over and over, so pause it meanwhile.
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                self._generate()
            finally:
                if gc_was_enabled:
                    gc.enable()

    def settle(self) -> None:
        """Apply deletions and finish RTBF jobs whose delay has passed."""
        now = time.monotonic()
        with self.lock:
            if self.pending:
                keep = []
                for due, form_id, tokens in self.pending:
                    if due <= now:
                        self.forms[form_id].delete(tokens)
                    else:
                        keep.append((due, form_id, tokens))
                self.pending = keep
            for job in self.jobs.values():
                if not job.done and job.due <= now:
                    job.deleted = self._rtbf_apply(job.email)
                    job.done = True

    # --- generation --------------------------------------------------------------

    def _generate(self) -> None:
        rng = random.Random(f"typeform:{self.seed}")
        fb, reg, req = (self.forms[f] for f in self.form_order)
        out: dict[str, list[Response]] = {fb.definition["id"]: [], reg.definition["id"]: [],
                                          req.definition["id"]: []}
        span = 2 * 365 * 86400
        for p in self.people:
            if "typeform" not in p.systems:
                continue
            if p.idx == 0:
                kinds = ("registration", "feedback")
            elif p.idx in (1, 2):
                kinds = ("registration",)
            elif p.idx == 3:
                kinds = ("request",)
            else:
                kinds = tuple(k for k, share in (("registration", 0.7), ("feedback", 0.5),
                                                 ("request", 0.08)) if rng.random() < share)
                kinds = kinds or ("registration",)
            for kind in kinds:
                submitted = self.anchor - rng.randint(3600, span)
                if p.idx < 4:  # personas: recent, so default ordering shows them early
                    submitted = self.anchor - 86400 * (p.idx + 1) - 3600 * (kinds.index(kind) + 1)
                form = {"registration": reg, "feedback": fb, "request": req}[kind]
                resp = self._response(form.definition, kind, p, submitted, rng)
                out[form.definition["id"]].append(resp)
        # Anonymous feedback without any e-mail: most real feedback looks like this.
        n_anon = max(3, len(self.people) // 10)
        for i in range(n_anon):
            submitted = self.anchor - rng.randint(3600, span)
            out[fb.definition["id"]].append(
                self._response(fb.definition, "feedback", None, submitted, rng, salt=i))
        for form_id, lst in out.items():
            self.forms[form_id].load(lst)

    def _response(self, form: dict[str, Any], kind: str, p: Person | None, submitted: int,
                  rng: random.Random, salt: int = 0) -> Response:
        fid = form["id"]
        token = hexid(self.seed, "response", fid, p.idx if p else f"anon{salt}")
        fields = {f["ref"]: f for f in form["fields"]}

        def ref(name: str) -> dict[str, str]:
            f = fields[name]
            return {"id": f["id"], "type": f["type"], "ref": f["ref"]}

        def choice(name: str, label: str, other: bool = False) -> dict[str, Any]:
            if other:
                return {"field": ref(name), "type": "choice", "choice": {"other": label}}
            ch = next(c for c in fields[name]["properties"]["choices"] if c["label"] == label)
            return {"field": ref(name), "type": "choice",
                    "choice": {"id": ch["id"], "ref": ch["ref"], "label": label}}

        answers: list[dict[str, Any]] = []
        hidden: dict[str, str] = {}
        variables: list[dict[str, Any]] = []
        email = render_email(p, "typeform") if p else ""
        if kind == "registration":
            assert p is not None
            answers += [
                {"field": ref("first_name"), "type": "text", "text": p.first_name},
                {"field": ref("last_name"), "type": "text", "text": p.last_name},
                {"field": ref("email"), "type": "email", "email": email},
                {"field": ref("phone"), "type": "phone_number", "phone_number": p.phone},
                {"field": ref("company"), "type": "text", "text": p.company},
            ]
            if p.special_diet:
                answers.append(choice("diet", p.special_diet))
            elif rng.random() < 0.1:
                answers.append(choice("diet", "pähkinäallergia", other=True))
            else:
                answers.append(choice("diet", DIET_LABELS[0]))
            if rng.random() < 0.2:
                answers.append({"field": ref("notes"), "type": "text",
                                "text": f"Tavoitatte minut myös numerosta "
                                        f"{render_phone(p, 'typeform:notes')}."})
            hidden["utm_source"] = rng.choice(("newsletter", "linkedin", "website"))
        elif kind == "feedback":
            course = COURSES[rng.randrange(len(COURSES))]
            score = rng.randint(4, 10)
            answers += [choice("course", course),
                        {"field": ref("rating"), "type": "number", "number": score}]
            if p is not None and (p.idx == 0 or rng.random() < 0.3):
                text = rng.choice(FEEDBACK_EMAIL_TEXTS).format(email=_vary_case(p.email, rng))
                if p.idx == 0:
                    text = FEEDBACK_EMAIL_TEXTS[0].format(email=p.email.upper())
            else:
                text = rng.choice(FEEDBACK_TEXTS)
            answers.append({"field": ref("comments"), "type": "text", "text": text})
            hidden["course_id"] = f"K{COURSES.index(course) + 101}"
            variables.append({"key": "score", "type": "number", "number": score})
        else:
            assert p is not None
            rtype = REQUEST_TYPES[0] if p.idx == 3 else rng.choice(REQUEST_TYPES)
            text = rng.choice(REQUEST_TEXTS).format(email=_vary_case(p.email, rng),
                                                    phone=render_phone(p, "typeform"))
            answers += [choice("request_type", rtype),
                        {"field": ref("details"), "type": "text", "text": text}]
            if rng.random() < 0.5:
                answers.append({"field": ref("contact_email"), "type": "email", "email": email})
            hidden["email"] = email
            hidden["customer_ref"] = f"CR-{p.idx:06d}"
        landed = submitted - rng.randint(40, 900)
        agent, platform, browser = AGENTS[rng.randrange(len(AGENTS))]
        item: dict[str, Any] = {
            "landing_id": token,
            "token": token,
            "response_id": token,
            "response_type": "completed",
            "landed_at": iso(landed),
            "submitted_at": iso(submitted),
            "metadata": {
                "user_agent": agent,
                "platform": platform,
                "referer": f"https://gdprhub.typeform.com/to/{fid}",
                "network_id": hexid(self.seed, "net", token, length=10),
                "browser": "touch" if platform == "mobile" else "default",
            },
            "hidden": hidden,
            "calculated": {"score": 0},
            "variables": variables,
            "answers": answers,
        }
        return finish(Response(fid, token, submitted, item))

    # --- operations --------------------------------------------------------------

    def register_delete(self, form_id: str, tokens: set[str]) -> None:
        """Typeform answers 200 at once; the responses vanish after `delete_delay`."""
        due = time.monotonic() + float(self.settings["delete_delay"] or 0)
        with self.lock:
            self.pending.append((due, form_id, set(tokens)))
        self.settle()

    def rtbf_matches(self, email: str) -> list[Response]:
        """§C.5: a text answer contains it, or an email/hidden/text variable equals it."""
        needle = email.strip().lower()
        if not needle:
            return []
        hits = []
        for form in self.forms.values():
            for r in form.responses:
                if needle in r.exact or any(needle in t for t in r.texts):
                    hits.append(r)
        return hits

    def _rtbf_apply(self, email: str) -> int:
        by_form: dict[str, set[str]] = {}
        for r in self.rtbf_matches(email):
            by_form.setdefault(r.form_id, set()).add(r.token)
        return sum(len(self.forms[f].delete(toks)) for f, toks in by_form.items())

    def start_rtbf(self, emails: list[str]) -> list[str]:
        """One job per e-mail; the deletion happens when the job turns Done."""
        due = time.monotonic() + float(self.settings["rtbf_delay"] or 0)
        ids = []
        with self.lock:
            for email in emails:
                self.job_counter += 1
                h = uid(self.seed, "job", self.job_counter, email, length=32).lower()
                job_id = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"
                self.jobs[job_id] = Job(job_id, email, due)
                ids.append(job_id)
        self.settle()
        return ids

    def find_response(self, token: str) -> Response | None:
        """A response by token (= response_id) in any form."""
        self.settle()
        for form in self.forms.values():
            r = form.by_token.get(token)
            if r is not None:
                return r
        return None

    # --- inspection (sandbox.faults.VendorState contract) ------------------------

    def record(self, kind: str, id: str) -> dict[str, Any] | None:
        """`response` (by token, any form; deleted ones answer state "deleted"), `form`, `job`."""
        self.settle()
        with self.lock:
            if kind == "response":
                for form in self.forms.values():
                    r = form.by_token.get(id)
                    if r is not None:
                        pending = any(id in toks for _, f, toks in self.pending
                                      if f == form.definition["id"])
                        return {"kind": "response", "id": id, "form_id": r.form_id,
                                "state": "pending_delete" if pending else "active",
                                "item": r.item}
                    if id in form.ghost_keys:
                        return {"kind": "response", "id": id,
                                "form_id": form.definition["id"], "state": "deleted"}
                return None
            if kind == "form":
                form = self.forms.get(id)
                if form is None:
                    return None
                return {"kind": "form", "id": id, "state": "active",
                        "title": form.definition["title"],
                        "responses": len(form.responses)}
            if kind == "job":
                job = self.jobs.get(id)
                if job is None:
                    return None
                return {"kind": "job", "id": id, "state": "Done" if job.done else "Queued",
                        "email": job.email, "deleted": job.deleted}
        return None

    def find(self, email: str | None = None, phone: str | None = None) -> list[dict[str, Any]]:
        """Responses that hold the e-mail (RTBF rules, case-insensitive) or the phone."""
        self.settle()
        with self.lock:
            hits: dict[str, Response] = {}
            if email:
                for r in self.rtbf_matches(email):
                    hits[r.token] = r
            if phone:
                variants = phone_variants(phone)
                for form in self.forms.values():
                    for r in form.responses:
                        if any(v in r.blob for v in variants):
                            hits[r.token] = r
            return [{"kind": "response", "id": r.token, "form_id": r.form_id,
                     "state": "active"} for r in hits.values()]

    def fault_response(self, kind: str, headers: Headers) -> StarletteResponse:  # noqa: ARG002
        """Injected faults in Typeform's error shape."""
        if kind == "rate_limit":
            return JSONResponse({"code": "RATE_LIMITED",
                                 "description": "Too many requests, slow down"},
                                status_code=429, headers={"Retry-After": "1"})
        if kind == "malformed":
            return StarletteResponse('{"total_items": 3, "items": [{"tok',
                                     media_type="application/json")
        return JSONResponse({"code": "INTERNAL_SERVER_ERROR",
                             "description": "Something went wrong on our side"},
                            status_code=500)


def phone_variants(phone: str) -> list[str]:
    """The ways a Finnish number is written in answers: E.164, 040 123 4567, +358 40 …."""
    digits = "".join(c for c in phone if c.isdigit())
    if digits.startswith("358"):
        national = digits[3:]
    elif digits.startswith("0"):
        national = digits[1:]
    else:
        national = digits
    if len(national) < 6:
        return [phone.lower()]
    return [f"+358{national}", f"0{national}", f"0{national[:2]} {national[2:5]} {national[5:]}",
            f"+358 {national[:2]} {national[2:]}"]
