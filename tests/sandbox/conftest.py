"""Shared sandbox fixtures: one server per module, reset before every test.

Tests talk to the emulators over real HTTP on 127.0.0.1 and check effects through
the `/__sandbox/` inspection API, never through Python objects, so they exercise the
same surface a connector does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from sandbox import Sandbox


def poll(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Call `check` until it returns something truthy; bounded, never a bare sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)


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
