"""The declared systems, and a connector by system name, its settings from the environment.

``VENDORS`` is the one list of systems: one line per vendor package, each package
declaring itself as ``DECLARATION`` in its ``__init__.py`` (``connectors.declaration``).
Everything that lists systems reads ``declarations()``: the Dagster assets and ops, the
policy check, the access letter's titles.

A system outside this package (a deployment's own, a test's toy system) is added by
naming its package in ``HUB_EXTRA_SYSTEMS`` (comma-separated module names), read when
the declarations are collected: in a Dagster code location that is at import.
"""

from __future__ import annotations

import os
from functools import cache
from importlib import import_module

import httpx

from connectors.base import Connector
from connectors.declaration import ConnectorDeclaration
from hub.systems import SystemDeclaration, by_name

VENDORS: tuple[str, ...] = (
    "connectors.pipedrive",
    "connectors.mailchimp",
    "connectors.typeform",
    "connectors.netvisor",
)
EXTRA_ENV = "HUB_EXTRA_SYSTEMS"


def packages() -> tuple[str, ...]:
    """The vendor packages: ``VENDORS``, then those named in ``HUB_EXTRA_SYSTEMS``."""
    extra = (p.strip() for p in os.environ.get(EXTRA_ENV, "").split(","))
    return (*VENDORS, *(p for p in extra if p))


@cache
def _collect(names: tuple[str, ...]) -> dict[str, ConnectorDeclaration]:
    found: list[ConnectorDeclaration] = []
    for package in names:
        declaration = getattr(import_module(package), "DECLARATION", None)
        if not isinstance(declaration, ConnectorDeclaration):
            raise TypeError(f"{package} has no DECLARATION (a ConnectorDeclaration)")
        found.append(declaration)
    by_name(d.system for d in found)  # refuses a name declared twice
    return {d.name: d for d in found}


def declared() -> dict[str, ConnectorDeclaration]:
    """Every declared system by name, in declaration order."""
    return dict(_collect(packages()))


def declarations() -> list[SystemDeclaration]:
    """The hub's side of every declaration (for ``load_policy(systems=...)``)."""
    return [d.system for d in _collect(packages()).values()]


def names() -> tuple[str, ...]:
    return tuple(_collect(packages()))


def available() -> list[str]:
    return sorted(names())


def build_connector(system: str, *, client: httpx.Client | None = None) -> Connector:
    """The connector for ``system`` configured from the environment (and ``.env``).

    ``client`` replaces the HTTP client the connector would build (tests inject one
    with a mock transport). Mailchimp talks through its SDK and ignores it.
    Raises KeyError for an unknown system and ConfigError for missing settings.
    """
    try:
        declaration = _collect(packages())[system]
    except KeyError:
        raise KeyError(f"no connector for system {system!r}; known: {', '.join(available())}"
                       ) from None
    return declaration.build(client=client)
