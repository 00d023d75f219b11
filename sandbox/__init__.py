"""Local emulators of the vendor APIs the hub talks to (see sandbox/README.md).

Imports nothing from hub, connectors or pipelines: a connector and its emulator
must not share a misunderstanding.
"""

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use (PEP 562): `hub` mounts the sandbox's commands, and importing the
# web server, Starlette and Faker for every other command cost each a tenth of a second.
_HOME = {"Faults": "sandbox.faults", "Person": "sandbox.people",
         "generate_people": "sandbox.people", "Sandbox": "sandbox.server",
         "credentials": "sandbox.server"}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
