"""Fixtures of the hub's tests (the store fixtures live in tests/conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.hashing import Hasher
from tests.conftest import TEST_SECRET

NOW = datetime(2025, 1, 31, 10, 0, tzinfo=UTC)


@pytest.fixture
def hasher() -> Hasher:
    return Hasher(TEST_SECRET.encode())
