"""Typeform emulator (reference §C): forms, responses, deletes, RTBF jobs, 2 req/s.

See sandbox/typeform/README.md for what is emulated and what is left out.
"""

from sandbox.typeform.app import build_app
from sandbox.typeform.state import account_id

__all__ = ["account_id", "build_app"]
