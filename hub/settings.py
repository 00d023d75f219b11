"""The hub's settings: environment first, then `.env`, then the sandbox's env file.

`hub sandbox serve` writes `.hub/sandbox.env`; reading it last means a person who
started the sandbox can run any hub command against it without exporting anything,
while a real deployment's environment always wins.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET_LENGTH = 32
# Known to everyone, therefore only acceptable where no real person's data is.
SANDBOX_SECRET = "sandbox-only-not-a-secret-0123456789abcdef"


class SettingsError(RuntimeError):
    """A setting is missing or unusable; the message names it and what to do."""


class Mode(StrEnum):
    PRODUCTION = "production"
    SANDBOX = "sandbox"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HUB_",
        env_file=(".hub/sandbox.env", ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )

    mode: Mode = Mode.PRODUCTION
    home: Path = Path(".hub")
    database_url: str | None = None
    secret: SecretStr | None = None
    policy_file: Path | None = None
    timezone: str = "Europe/Helsinki"
    due_soon_days: int = Field(default=7, ge=0)
    # A task running (or a verified request not started) longer than this is flagged.
    stuck_after_minutes: int = Field(default=120, ge=1)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'hub.db'}"

    @cached_property
    def secret_bytes(self) -> bytes:
        """The HMAC key of DESIGN.md rule 6; refuses to guess outside the sandbox."""
        value = self.secret.get_secret_value() if self.secret else ""
        if not value:
            if self.mode == Mode.SANDBOX:
                return SANDBOX_SECRET.encode()
            raise SettingsError(
                "HUB_SECRET is not set: run `hub init` to write a new one to .env, "
                f"or set it in the environment (at least {MIN_SECRET_LENGTH} characters)"
            )
        if len(value) < MIN_SECRET_LENGTH and self.mode != Mode.SANDBOX:
            raise SettingsError(
                f"HUB_SECRET is too short ({len(value)} characters; at least "
                f"{MIN_SECRET_LENGTH}): run `hub init --force` for a new one"
            )
        return value.encode()


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
