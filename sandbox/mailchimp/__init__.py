"""Mailchimp Marketing API v3 emulator (two audiences); see sandbox/README.md."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from sandbox.faults import make_vendor_app
from sandbox.mailchimp.app import (
    Problem,
    method_not_allowed,
    not_found_handler,
    problem_handler,
    routes,
)
from sandbox.mailchimp.state import MailchimpState, subscriber_hash
from sandbox.people import Person

__all__ = ["MailchimpState", "build_app", "subscriber_hash"]


def build_app(people: list[Person], seed: int, settings: dict[str, Any] | None = None,
              ) -> Starlette:
    """The Mailchimp app; `settings` overrides the connection limit and throttle mode."""
    state = MailchimpState(people, seed, dict(settings or {}))
    app = make_vendor_app(state, routes, exception_handlers={
        Problem: problem_handler, 404: not_found_handler, 405: method_not_allowed})
    app.state.mailchimp = state  # the endpoints' way to their state: request.app.state
    return app
