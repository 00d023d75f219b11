"""The seeded population every vendor emulator draws from.

One list of people is generated once per sandbox run and handed to every vendor,
so the same human shows up in several systems, which is what the hub's identity
matching and fan-out must cope with. Each vendor then *renders* the person its
own way (`render_email`, `render_phone`): real data has case differences and
different phone notations, and the connectors must normalise them.

Generation draws name/street/company pools from Faker("fi_FI") once and combines
them with a plain `random.Random(seed)`, because calling Faker per person is too
slow for 100,000 people and we need determinism for a seed anyway.
"""

from __future__ import annotations

import functools
import hashlib
import random
import unicodedata
from dataclasses import dataclass, replace

from faker import Faker

from sandbox.vendors import EMULATORS

SYSTEMS = EMULATORS
DOMAINS = ("example.fi", "example.com", "example.net")
DIETS = ("gluteeniton", "vegaani", "laktoositon", "kasvis", "maidoton")


@dataclass(frozen=True, slots=True)
class Person:
    """One human being, in canonical form (the vendors render variations)."""

    idx: int
    first_name: str
    last_name: str
    email: str
    phone: str
    company: str
    business_id: str
    street: str
    postcode: str
    city: str
    birth_year: int
    systems: frozenset[str]
    special_diet: str | None
    # A second, private address that some systems hold instead of `email`.
    private_email: str | None = None

    @property
    def name(self) -> str:
        """Full name as most vendors show it."""
        return f"{self.first_name} {self.last_name}"


def business_id_check_digit(seven: str) -> int | None:
    """Y-tunnus check digit, or None when the remainder is 1 (no valid id)."""
    weights = (7, 9, 10, 5, 8, 4, 2)
    rem = sum(int(d) * w for d, w in zip(seven, weights, strict=True)) % 11
    if rem == 0:
        return 0
    if rem == 1:
        return None
    return 11 - rem


def _business_id(rng: random.Random) -> str:
    while True:
        seven = f"{rng.randint(1000000, 3299999):07d}"
        check = business_id_check_digit(seven)
        if check is not None:
            return f"{seven}-{check}"


@functools.lru_cache(maxsize=4096)
def ascii_fold(text: str) -> str:
    """"Häkkinen" -> "hakkinen": e-mail local parts are ASCII."""
    norm = unicodedata.normalize("NFKD", text)
    out = "".join(c for c in norm if not unicodedata.combining(c)).lower()
    return "".join(c for c in out if c.isalnum() or c in ".-")


_PERSONAS = (
    ("Aino", "Virtanen", "aino.virtanen@example.fi", "+358401234567", frozenset(SYSTEMS), None),
    (
        "Mikko",
        "Häkkinen",
        "mikko.hakkinen@example.fi",
        "+358501112233",
        frozenset({"pipedrive", "mailchimp", "typeform"}),
        None,
    ),
    (
        "Eeva",
        "Mäkelä",
        "eeva.makela@example.fi",
        "+358442223344",
        frozenset({"pipedrive", "mailchimp", "typeform", "netvisor"}),
        "gluteeniton",
    ),
    ("Jussi", "Lindström", "jussi.lindstrom@example.fi", "+358405556677",
     frozenset({"typeform"}), None),
)

_FIXED_PHONES = {p[3] for p in _PERSONAS}


def _pools(seed: int) -> dict[str, list]:
    fake = Faker("fi_FI")
    fake.seed_instance(seed)
    first = list(dict.fromkeys(fake.first_name() for _ in range(600)))
    last = list(dict.fromkeys(fake.last_name() for _ in range(600)))
    # Names with ä/ö/å are common in Finland; make sure the pool shows it.
    first += ["Väinö", "Åke", "Sämpsä", "Jörö"]
    last += ["Mäkinen", "Hämäläinen", "Söderström", "Äijälä", "Kärkkäinen", "Ström"]
    streets = [fake.street_address() for _ in range(400)]
    cities = [(fake.postcode(), fake.city()) for _ in range(200)]
    companies = list(dict.fromkeys(fake.company() for _ in range(400)))
    return {"first": first, "last": last, "streets": streets, "cities": cities,
            "companies": companies}


def _systems(rng: random.Random) -> frozenset[str]:
    r = rng.random()
    if r < 0.4:
        k = 1
    elif r < 0.75:
        k = 2
    elif r < 0.92:
        k = 3
    else:
        k = 4
    return frozenset(rng.sample(SYSTEMS, k))


def generate_people(n: int = 200, seed: int = 42) -> list[Person]:
    """Deterministic population for a seed; the first four are the fixed personas.

    About 60% of people are in two or more systems. SHARED_CASES are planted on
    purpose (a switchboard phone, an info@ address, one person with two addresses),
    so every suite meets the cases identity resolution must not get wrong.
    """
    rng = random.Random(seed)
    pools = _pools(seed)
    people: list[Person] = []
    used_emails: set[str] = set()
    used_phones: set[str] = set(_FIXED_PHONES)
    shared_phone: str | None = None
    next_suffix: dict[str, int] = {}
    for idx in range(n):
        company = rng.choice(pools["companies"])
        business_id = _business_id(rng)
        street = rng.choice(pools["streets"])
        postcode, city = rng.choice(pools["cities"])
        birth_year = rng.randint(1950, 2004)
        diet = rng.choice(DIETS) if rng.random() < 0.15 else None
        if idx < len(_PERSONAS):
            first, last, email, phone, systems, pdiet = _PERSONAS[idx]
            diet = pdiet
        else:
            first = rng.choice(pools["first"])
            last = rng.choice(pools["last"])
            base = f"{ascii_fold(first)}.{ascii_fold(last)}"
            domain = DOMAINS[rng.randrange(3)]
            email = f"{base}@{domain}"
            k = next_suffix.get(email, 1)
            candidate = email
            while candidate in used_emails:
                k += 1
                candidate = f"{base}{k}@{domain}"
            next_suffix[email] = k
            email = candidate
            if idx == 5 and shared_phone is not None:
                phone = shared_phone
            else:
                while True:
                    prefix = rng.choice(("40", "41", "44", "45", "50"))
                    phone = f"+358{prefix}{rng.randint(0, 9999999):07d}"
                    if phone not in used_phones:
                        break
                if idx == 4:
                    shared_phone = phone
            systems = _systems(rng)
        used_emails.add(email)
        used_phones.add(phone)
        people.append(
            Person(idx, first, last, email, phone, company, business_id, street, postcode,
                   city, birth_year, systems, diet)
        )
    _seed_shared_identifiers(people)
    return people


SHARED_CASES = {
    "switchboard": (4, 5),  # two colleagues, one company phone
    "info_address": (6, 7),  # two colleagues, one info@ address
    "two_addresses": (8,),  # one person, a work and a private address, one own mobile
}


def _seed_shared_identifiers(people: list[Person]) -> None:
    """Plant the cases a conservative identity resolution must get right (SHARED_CASES).

    Done after generation so the random stream, and everyone else, stays as it was.
    """
    if len(people) > 5:  # idx 4 and 5 share the phone: colleagues at one company
        p4, p5 = people[4], people[5]
        people[5] = replace(p5, company=p4.company, business_id=p4.business_id,
                            systems=p5.systems | {"pipedrive"})
        people[4] = replace(p4, systems=p4.systems | {"pipedrive"})
    if len(people) > 7:  # idx 6 and 7 write from the company's shared info@ address
        p6, p7 = people[6], people[7]
        info = f"info@{ascii_fold(p6.company.split()[0]) or 'yritys'}.example.fi"
        people[6] = replace(p6, email=info, systems=frozenset({"pipedrive", "typeform"}))
        people[7] = replace(p7, email=info, company=p6.company, business_id=p6.business_id,
                            systems=frozenset({"pipedrive", "netvisor"}))
    if len(people) > 8:  # idx 8: work address in the CRM and books, private one elsewhere
        p8 = people[8]
        private = f"{ascii_fold(p8.first_name)}.{ascii_fold(p8.last_name)}.koti@example.com"
        people[8] = replace(p8, private_email=private, systems=frozenset(SYSTEMS))


def _variant(person: Person, system: str) -> int:
    """A stable small number per (person, system) that picks the rendering."""
    digest = hashlib.blake2b(f"{person.idx}:{system}".encode(), digest_size=2).digest()
    return int.from_bytes(digest, "big") % 10


PRIVATE_EMAIL_SYSTEMS = ("mailchimp", "typeform")


def render_email(person: Person, system: str) -> str:
    """The e-mail as `system` stores it: sometimes capitalised ("Aino.Virtanen@Example.fi").

    A person with a private address gives it to the mailing list and the forms.
    """
    if person.private_email and system.partition(":")[0] in PRIVATE_EMAIL_SYSTEMS:
        return person.private_email
    if person.idx == 0 and system == "pipedrive":
        return "Aino.Virtanen@Example.fi"
    if person.idx < 4:
        return person.email
    if _variant(person, system) < 2:
        local, _, domain = person.email.partition("@")
        parts = [p[:1].upper() + p[1:] for p in local.split(".")]
        return ".".join(parts) + "@" + domain[:1].upper() + domain[1:]
    return person.email


def render_phone(person: Person, system: str) -> str:
    """The phone as `system` stores it: "040 123 4567", "+358 40 1234567" or E.164."""
    if person.idx == 0 and system == "pipedrive":
        return "040 123 4567"
    if person.idx < 4:
        return person.phone
    national = person.phone[4:]  # e.g. "401234567"
    v = _variant(person, system + ":phone")
    if v < 3:
        return f"0{national[:2]} {national[2:5]} {national[5:]}"
    if v < 6:
        return f"+358 {national[:2]} {national[2:]}"
    return person.phone
