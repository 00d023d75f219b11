"""Shared sandbox fixtures: one server per module, reset before every test.

Tests talk to the emulators over real HTTP on 127.0.0.1 and check effects through
the `/__sandbox/` inspection API, never through Python objects, so they exercise the
same surface a connector does.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sandbox import Sandbox


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    """Pipedrive and Mailchimp with the default 200 people and seed 42."""
    with Sandbox(people=200, seed=42, vendors=("pipedrive", "mailchimp")) as box:
        yield box


def _reset(base: str) -> None:
    with httpx.Client(base_url=base, timeout=10) as admin:
        admin.post("/__sandbox/reset").raise_for_status()


@pytest.fixture
def pd(sb: Sandbox) -> Iterator[httpx.Client]:
    """Authenticated Pipedrive client on a freshly reset account."""
    _reset(sb.urls["pipedrive"])
    with httpx.Client(base_url=sb.urls["pipedrive"], timeout=10,
                      headers={"x-api-token": sb.env["PIPEDRIVE_API_TOKEN"]}) as client:
        yield client


@pytest.fixture
def mc(sb: Sandbox) -> Iterator[httpx.Client]:
    """Authenticated Mailchimp client (Basic auth) on freshly reset audiences."""
    _reset(sb.urls["mailchimp"])
    with httpx.Client(base_url=sb.env["MAILCHIMP_BASE_URL"], timeout=10,
                      auth=("anystring", sb.env["MAILCHIMP_API_KEY"])) as client:
        yield client


@pytest.fixture
def inspect_pd(sb: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sb.urls["pipedrive"] + "/__sandbox", timeout=10) as c:
        yield c


@pytest.fixture
def inspect_mc(sb: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sb.urls["mailchimp"] + "/__sandbox", timeout=10) as c:
        yield c
