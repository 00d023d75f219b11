"""Keyed hashes of identifiers (DESIGN.md rule 6).

After an erasure the hub must still recognise the person (so no import brings them
back) without holding who they were. An HMAC with the deployment's secret gives
that: equal identifiers hash equal, and without the secret the hash cannot be
reversed by trying every e-mail address.
"""

from __future__ import annotations

import hashlib
import hmac

from hub.domain import Identifier


class Hasher:
    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("an empty key would make the hashes reversible")
        self._key = key

    def identifier(self, identifier: Identifier) -> str:
        """HMAC-SHA256 of `kind:value`; identifiers must already be normalised."""
        message = f"{identifier.kind.value}:{identifier.value}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def text(self, purpose: str, value: str) -> str:
        """HMAC-SHA256 of `purpose:value`, for personal text that is not an identifier
        (a postal address, a letter's body): proof of what it was, never the text."""
        message = f"{purpose}:{value}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()
