"""Pipedrive emulator (v2 persons & co, v1 legacy/sub-resources); see sandbox/README.md."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from sandbox.faults import make_vendor_app
from sandbox.people import Person
from sandbox.pipedrive.app import ApiError, api_error, gateway_401, routes
from sandbox.pipedrive.state import PipedriveState

__all__ = ["PipedriveState", "build_app"]


def build_app(people: list[Person], seed: int, settings: dict[str, Any] | None = None,
              ) -> Starlette:
    """The Pipedrive app for these people; `settings` overrides rate-limit knobs."""
    state = PipedriveState(people, seed, dict(settings or {}))
    app = make_vendor_app(state, routes, exception_handlers={
        ApiError: api_error, 404: gateway_401, 405: gateway_401})
    app.state.pipedrive = state  # the endpoints' way to their state: request.app.state
    return app
