"""Waiting for asynchronous state in tests: bounded polling, never a bare sleep."""

import time
from collections.abc import Callable
from typing import Any


def poll(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Call `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s")
        time.sleep(interval)
