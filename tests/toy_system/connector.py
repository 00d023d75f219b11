"""An in-memory connector for the toy system: no HTTP, a dict of cards."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import httpx
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors.base import ConnectorBase
from hub.domain import Action, Export, Identifier, Outcome, RecordOutcome, RecordRef, SyncPage
from hub.policy import SystemPolicy


class ToySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOY_")

    drawer: str = "top"


class ToyConnector(ConnectorBase):
    system = "toy"

    def __init__(self, settings: ToySettings) -> None:
        self.settings = settings
        self.cards: dict[str, str] = {}
        self.calls = 0

    @classmethod
    def from_env(cls, *, client: httpx.Client | None = None, **kwargs: Any) -> ToyConnector:
        return cls(ToySettings(**kwargs))

    @property
    def api_calls(self) -> int:
        return self.calls

    def check(self) -> None:
        self.calls += 1

    def sync(self, since: str | None) -> Iterator[SyncPage]:
        self.calls += 1
        yield SyncPage(cursor="0")

    def find(self, identifiers: Sequence[Identifier]) -> list[RecordRef]:
        self.calls += 1
        return []

    def export(self, refs: Sequence[RecordRef]) -> Export:
        return Export(self.system, ())

    def erase(self, refs: Sequence[RecordRef], policy: SystemPolicy) -> Outcome:
        return Outcome(self.system, tuple(RecordOutcome(r, Action.NOT_FOUND) for r in refs),
                       verified=True)

    def opt_out(self, refs: Sequence[RecordRef]) -> Outcome:
        return Outcome(self.system, verified=True)

    def close(self) -> None:
        return None
