"""Dagster resources: the hub's store and the connectors, built from the environment.

Resources carry no secrets in their config: the hub and the connectors read
theirs from the environment or `.env`, so nothing sensitive reaches Dagster's
run storage (DESIGN.md rule 7).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dagster import ConfigurableResource

from connectors.base import Connector
from connectors.registry import build_connector, declarations
from hub.policy import Policy, load_policy
from hub.settings import load_settings
from hub.store import Store, open_store


class HubResource(ConfigurableResource):
    """The hub's database; `database_url` overrides HUB_DATABASE_URL (tests)."""

    database_url: str | None = None

    @contextmanager
    def store(self) -> Iterator[Store]:
        overrides = {"database_url": self.database_url} if self.database_url else {}
        opened = open_store(load_settings(**overrides))
        try:
            yield opened
        finally:
            opened.close()

    def policy(self) -> Policy:
        """The policy, checked against the declared systems (a section for each, no other)."""
        settings = load_settings()
        return load_policy(settings.policy_file, systems=declarations())


class ConnectorsResource(ConfigurableResource):
    """Builds a connector per system, each configured from the environment."""

    @contextmanager
    def connect(self, system: str) -> Iterator[Connector]:
        with build_connector(system) as connector:
            yield connector
