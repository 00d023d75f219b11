"""Mailchimp Marketing API v3 emulator (two audiences); see sandbox/README.md."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from sandbox.faults import make_vendor_app
from sandbox.mailchimp.app import build_routes, method_not_allowed, not_found_handler
from sandbox.mailchimp.state import MailchimpState, subscriber_hash
from sandbox.people import Person

__all__ = ["MailchimpState", "build_app", "subscriber_hash"]


def build_app(people: list[Person], seed: int, settings: dict[str, Any] | None = None,
              ) -> Starlette:
    """The Mailchimp app; `settings` overrides the connection limit and throttle mode."""
    state = MailchimpState(people, seed, dict(settings or {}))
    return make_vendor_app(state, build_routes(state),
                           exception_handlers={404: not_found_handler,
                                               405: method_not_allowed})
