"""Pipedrive emulator (v2 persons & co, v1 legacy/sub-resources); see sandbox/README.md."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from sandbox.faults import make_vendor_app
from sandbox.people import Person
from sandbox.pipedrive.app import build_routes, gateway_401
from sandbox.pipedrive.state import PipedriveState

__all__ = ["PipedriveState", "build_app"]


def build_app(people: list[Person], seed: int, settings: dict[str, Any] | None = None,
              ) -> Starlette:
    """The Pipedrive app for these people; `settings` overrides rate-limit knobs."""
    state = PipedriveState(people, seed, dict(settings or {}))
    return make_vendor_app(state, build_routes(state),
                           exception_handlers={404: gateway_401, 405: gateway_401})
