"""What the hub knows about a connected system: one typed declaration per system.

The declarations live next to their connectors (``connectors/<vendor>/__init__.py``,
collected by ``connectors/registry.py``). The hub cannot import the connectors
(architecture.md, layering), so the layer that knows the declarations passes them in:
``load_policy(path, systems=...)`` checks the policy against them and the loaded
``Policy`` carries them to whoever needs a title (the access bundle).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    """What sort of system it is; says what erasure and access can mean there."""

    SAAS = "saas"
    ACCOUNTING = "accounting"
    DATABASE = "database"
    FILES = "files"
    MANUAL = "manual"


class Capability(StrEnum):
    SYNC = "sync"
    FIND = "find"
    EXPORT = "export"
    ERASE = "erase"
    OPT_OUT = "opt_out"
    RECTIFY = "rectify"
    RESTRICT = "restrict"


NAME = re.compile(r"[a-z][a-z0-9_]*")
"""A system's name: the policy section, the asset prefix, the op prefix and the pool."""


@dataclass(frozen=True)
class SystemDeclaration:
    """The domain facts about one system.

    ``name`` is lower case, one word (``NAME``); ``title`` is what a person reads in
    the access letter and bundle, in English, and ``titles`` the same in the subject's
    other languages (``fi``, ``sv``); ``marketing`` says whether people are subscribed
    there (so an opt-out acts in it).
    """

    name: str
    title: str
    kind: Kind
    capabilities: frozenset[Capability]
    marketing: bool = False
    titles: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.name):
            raise ValueError(f"system name {self.name!r} must be lower case letters, digits "
                             "and _, starting with a letter")
        if not self.title.strip():
            raise ValueError(f"system {self.name!r} needs a title for people")
        object.__setattr__(self, "kind", Kind(self.kind))
        object.__setattr__(self, "capabilities",
                           frozenset(Capability(c) for c in self.capabilities))

    def title_in(self, language: str) -> str:
        return self.titles.get(language) or self.title

    def can(self, capability: Capability | str) -> bool:
        return Capability(capability) in self.capabilities


def by_name(declarations: Iterable[SystemDeclaration]) -> dict[str, SystemDeclaration]:
    """Declarations by name, refusing two that share one."""
    named: dict[str, SystemDeclaration] = {}
    for declaration in declarations:
        if declaration.name in named:
            raise ValueError(f"system {declaration.name!r} is declared twice")
        named[declaration.name] = declaration
    return named
