"""The hub's settings: environment first, then `.env`, then the sandbox's env file.

`hub sandbox serve` writes `.hub/sandbox.env` (the emulated vendors' URLs and
credentials); reading it last means a person who started the sandbox can run the
connectors against it without exporting anything, while a real deployment's
environment always wins.

That file is a by-product of running the emulators, not the operator's decision, so
it never changes the hub's security posture: its `HUB_MODE` is ignored (sandbox mode,
with its public built-in key, is switched on only by the environment, `.env` or
explicit configuration), and in production the built-in key and any secret with fewer
than 32 meaningful characters are refused, naming the file or variable they came from.
A leftover file can therefore make the hub refuse to start, never run on a key that
everyone knows.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

MIN_SECRET_LENGTH = 32
# A secret must also not be a repetition of a few characters ("aaaa...", "abab...").
MIN_SECRET_DISTINCT = 6
# Known to everyone, therefore only acceptable where no real person's data is.
SANDBOX_SECRET = "sandbox-only-not-a-secret-0123456789abcdef"
SANDBOX_ENV_FILE = ".hub/sandbox.env"
# Settings a file of the sandbox may not supply: they decide whether real data is safe.
_NOT_FROM_SANDBOX_FILE = ("mode",)
_ENVIRONMENT = "the environment"
_EXPLICIT = "explicit configuration"

# Which source supplied each setting, collected while one Settings object is built.
_ORIGINS: ContextVar[dict[str, str] | None] = ContextVar("hub_settings_origins", default=None)


class SettingsError(RuntimeError):
    """A setting is missing or unusable; the message names it and what to do."""


class Mode(StrEnum):
    PRODUCTION = "production"
    SANDBOX = "sandbox"


OpsLanguage = Literal["fi", "en"]


class SmtpSecurity(StrEnum):
    """STARTTLS on 587, implicit TLS on 465; none only for a relay on the same host."""

    STARTTLS = "starttls"
    SSL = "ssl"
    NONE = "none"


def _record(label: str, data: dict[str, Any]) -> None:
    origins = _ORIGINS.get()
    if origins is not None:
        for key in data:
            origins.setdefault(key, label)


def _tagged(source: Callable[[], dict[str, Any]], label: str) -> Callable[[], dict[str, Any]]:
    def call() -> dict[str, Any]:
        data = source()
        _record(label, data)
        return data

    return call


class _EnvFileSource(DotEnvSettingsSource):
    """One env file, remembered as the origin of what it supplies."""

    def __init__(self, settings_cls: type[BaseSettings], env_file: str | Path) -> None:
        super().__init__(settings_cls, env_file=env_file)
        self.label = str(env_file)
        self.is_sandbox_file = Path(env_file).as_posix().endswith(SANDBOX_ENV_FILE)

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        if self.is_sandbox_file:
            for key in _NOT_FROM_SANDBOX_FILE:
                if key in data:
                    data.pop(key)
                    _record(self.label, {f"ignored {key}": True})
        _record(self.label, data)
        return data


def _env_files(dotenv: PydanticBaseSettingsSource) -> list[str | Path]:
    files = getattr(dotenv, "env_file", None)
    if files is None:
        return []
    return [files] if isinstance(files, str | Path) else list(files)


def _meaningful(value: str) -> str:
    return "".join(value.split())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HUB_",
        env_file=(SANDBOX_ENV_FILE, ".env"),
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
    # Every wait on the database ends: connecting (and, on SQLite, waiting for a lock)
    # and, on PostgreSQL, each statement. A server that accepts and never answers gives
    # one line and exit 3 instead of a hang. 30 s is SQLite's earlier busy timeout, which
    # concurrent system ops writing to one SQLite file rely on.
    db_connect_timeout: float = Field(default=30.0, gt=0)
    db_statement_timeout: float = Field(default=300.0, gt=0)
    # Letters (hub.letters, delivered by delivery/): who writes them and how they leave.
    controller_name: str | None = None
    controller_contact: str | None = None
    mail_from: str | None = None
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, gt=0, lt=65536)
    smtp_security: SmtpSecurity = SmtpSecurity.STARTTLS
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout: float = Field(default=30.0, gt=0)
    # A private CA that signed the mail server's certificate (an internal relay); the
    # system's trust store otherwise. The certificate is always verified.
    smtp_ca_file: Path | None = None
    # A failed send waits retry_seconds, doubling each time, and is given up (left
    # failed, in the digest) after max_attempts.
    letter_retry_seconds: float = Field(default=60.0, ge=0)
    letter_max_attempts: int = Field(default=8, ge=1)
    # The ops staff's address for the daily digest and alerts, and the local hour
    # after which the day's digest is sent.
    ops_email: str | None = None
    digest_hour: int = Field(default=8, ge=0, le=23)
    # The language of the ops staff's alerts and digest: Finnish (the company's) or English.
    ops_language: OpsLanguage = "fi"
    # The same alerts and digest in a Slack channel too, when both are set (a bot token
    # with chat:write, invited to the channel). The API address is Slack's unless a relay
    # (or a test's server) stands in for it.
    slack_token: SecretStr | None = None
    slack_channel: str | None = None
    slack_api_url: str = "https://slack.com/api/"

    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

    def __init__(self, **values: Any) -> None:
        origins: dict[str, str] = {}
        token = _ORIGINS.set(origins)
        try:
            super().__init__(**values)
        finally:
            _ORIGINS.reset(token)
        self._origins = origins

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[Any, ...]:
        """One source per env file, later files first (they win), each tagged with its name."""
        files = [_EnvFileSource(settings_cls, f) for f in reversed(_env_files(dotenv_settings))]
        return (_tagged(init_settings, _EXPLICIT), _tagged(env_settings, _ENVIRONMENT),
                *files, file_secret_settings)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except Exception:  # noqa: BLE001 - not found, malformed key, path tricks: all unusable
            raise ValueError(f"{value!r} is not a time zone name (e.g. Europe/Helsinki)") \
                from None
        return value

    def origin(self, name: str) -> str:
        """Where a setting came from: the environment, an env file, or explicit configuration."""
        return self._origins.get(name, "the default")

    @property
    def slack_configured(self) -> bool:
        return bool(self.slack_token and self.slack_token.get_secret_value() and
                    self.slack_channel)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'hub.db'}"

    @cached_property
    def secret_bytes(self) -> bytes:
        """The HMAC key of DESIGN.md rule 6; outside the sandbox, never guessed nor weak."""
        value = self.secret.get_secret_value() if self.secret else ""
        if self.mode == Mode.SANDBOX:
            return (value or SANDBOX_SECRET).encode()
        if not value:
            raise SettingsError(
                "HUB_SECRET is not set: run `hub init` to write a new one to .env, or set it "
                f"in the environment (at least {MIN_SECRET_LENGTH} characters)"
                + self._sandbox_hint()
            )
        self._refuse_weak(value)
        return value.encode()

    def _refuse_weak(self, value: str) -> None:
        where = self.origin("secret")
        if value.strip() == SANDBOX_SECRET:
            raise SettingsError(
                f"HUB_SECRET from {where} is the sandbox's built-in key, which everyone knows; "
                "production refuses it: run `hub init` for a real one" + self._sandbox_hint()
            )
        meaningful = _meaningful(value)
        if len(meaningful) < MIN_SECRET_LENGTH or len(set(meaningful)) < MIN_SECRET_DISTINCT:
            raise SettingsError(
                f"HUB_SECRET from {where} is too weak ({len(meaningful)} characters besides "
                f"spaces, {len(set(meaningful))} different; at least {MIN_SECRET_LENGTH}, "
                f"not a few repeated): run `hub init --force` for a new one"
            )

    def _sandbox_hint(self) -> str:
        ignored = self._origins.get("ignored mode")
        if ignored is None or "mode" in self._origins:
            return ""
        return (f"; {ignored} asks for HUB_MODE=sandbox, which only the environment or "
                ".env can switch on")


def _describe(error: Any) -> str:
    name = "HUB_" + "_".join(str(part) for part in error["loc"]).upper()
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{name}: {message}"


def load_settings(**overrides: object) -> Settings:
    """The settings, or a SettingsError of one line naming each unusable variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        # Only the variable and the rule: never the value, which may be a secret.
        raise SettingsError("; ".join(_describe(e) for e in exc.errors())) from None
