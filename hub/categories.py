"""Special categories of personal data (GDPR art. 9): noticed, flagged, never copied.

A course registration asks for a special diet; a feedback form gets "I use a wheelchair";
a note says someone is in a union. Such data needs an art. 9(2) basis and extra care,
so the hub flags where it is: in the person index (a category name per record, never
the words that triggered it, rule 6) and in the access export (per section), and the
breach query counts it.

The detection is by word stems in Finnish, Swedish and English. It errs towards
flagging: a flag asks an operator to look, while a miss hides data that needs the
strictest care. It never decides a legal question; it says where to look.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Any


class Category(StrEnum):
    HEALTH = "health"
    DIET = "diet"  # a hint of health (an allergy) or of religion (halal, kosher)
    RELIGION = "religion"
    TRADE_UNION = "trade_union"
    POLITICS = "politics"
    ETHNICITY = "ethnicity"
    SEXUALITY = "sexuality"


# Word beginnings: Finnish inflects and compounds, so "keliaakikko", "keliakiaa" and
# "gluteenittomana" all start with what is listed here.
_STEMS: dict[Category, tuple[str, ...]] = {
    Category.HEALTH: (
        "allerg", "astma", "diabet", "keliak", "keliaak", "epilep", "migreen", "sairau", "sairast",
        "terveyd", "terveys", "lääki", "lääke", "raskau", "raskaana", "vamma", "pyörätuol",
        "kuulovam", "näkövam", "masennu", "mielenterv", "diagno",
        "sjukdom", "hälsa", "allergi", "gravid", "funktionsneds", "rullstol", "läkemed",
        "illness", "disease", "health", "medicat", "pregnan", "disabilit", "wheelchair",
        "hearing aid", "depression", "asthma", "epilepsy", "coeliac", "celiac",
    ),
    Category.DIET: (
        # the diets themselves: "special diet" alone is also the question, or "none"
        "gluteeni", "laktoosi", "maidoton", "pähkinäton", "glutenfri", "laktosfri",
        "gluten-free", "gluten free", "lactose", "dairy-free", "nut-free",
        "halal", "kosher",
    ),
    Category.RELIGION: (
        "uskonn", "uskonto", "seurakun", "moskei", "synagog",
        "ramadan", "paasto", "religi", "församling", "kyrka", "church", "mosque",
        "muslim", "juutala", "jewish", "judisk", "kristit", "christian", "buddhal",
        "buddhist", "hindu", "islam", "ateist", "atheist",
    ),
    Category.TRADE_UNION: (
        "ammattiliit", "ammattiosast", "luottamusmie", "fackförbund", "trade union",
        "labour union", "union member",
    ),
    Category.POLITICS: (
        "puolue", "poliittis", "politisk", "political", "parti ",
    ),
    Category.ETHNICITY: (
        "etninen", "etnis", "etnisk", "ethnic", "rotu", "romani", "saamelai",
    ),
    Category.SEXUALITY: (
        "seksuaal", "sexuell", "sexual orientation", "homoseks", "homosex", "lesbo",
        "bisexual", "biseksu", "transsukup", "transgender",
    ),
}
# Stems also found inside Finnish and Swedish compounds ("pähkinäallergia",
# "nötallergi", "työsairaus"); the others only at a word's start, where a compound
# would give false hints ("Kirkkonummi" is a town, not a church).
_INSIDE_WORDS = ("allerg", "astma", "diabet", "keliak", "keliaak", "sairau", "gluteeni",
                 "laktoosi")


def _pattern(stems: tuple[str, ...]) -> re.Pattern[str]:
    inside = [re.escape(s) for s in stems if s in _INSIDE_WORDS]
    start = [re.escape(s) for s in stems if s not in _INSIDE_WORDS]
    alternatives = ([r"(?<![\w])(?:" + "|".join(start) + ")"] if start else []) + inside
    return re.compile("|".join(alternatives), re.IGNORECASE)


_PATTERNS = {category: _pattern(stems) for category, stems in _STEMS.items()}


def detect(texts: Iterable[str]) -> tuple[str, ...]:
    """The categories any of these texts hint at, by name, sorted; () when none."""
    found: set[str] = set()
    for text in texts:
        if not text:
            continue
        for category, pattern in _PATTERNS.items():
            if category not in found and pattern.search(text):
                found.add(category.value)
    return tuple(sorted(found))


# Keys whose values describe the question or the field, not the person's answer: a
# form that asks about diets is not a hint about everyone who answered "no".
_NOT_ANSWERS = frozenset({"title", "question", "label", "field", "description", "ref",
                          "type", "key", "tag", "name_of_field"})


def _values(value: Any) -> Iterable[str]:  # noqa: ANN401 - any JSON value
    if isinstance(value, dict):
        for key, inner in value.items():
            if key not in _NOT_ANSWERS:
                yield from _values(inner)
    elif isinstance(value, list | tuple):
        for inner in value:
            yield from _values(inner)
    elif isinstance(value, str):
        yield value


def in_items(items: Iterable[dict[str, Any]]) -> tuple[str, ...]:
    """The categories hinted at in these export items' values (never their field names)."""
    return detect(text for item in items for text in _values(item))


def joined(categories: Iterable[str]) -> str | None:
    """How the index stores a record's categories: sorted names, comma-joined."""
    if not categories:  # nearly every record: skip building a set per record
        return None
    names = sorted(set(categories))
    return ",".join(names) if names else None
