"""Reading connector settings from the environment (and its env files) with clear errors.

A missing or invalid variable is a :class:`connectors.errors.ConfigError` naming
the variable, never showing a secret's value.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from connectors.errors import ConfigError
from hub.settings import Settings, SettingsError
from hub.settings import load_settings as load_hub_settings

S = TypeVar("S", bound=BaseSettings)

# The same files the hub reads, in the same order: the sandbox's credentials
# (written by `hub sandbox serve`), then the deployment's `.env`; the
# environment wins over both.
ENV_FILES = (".hub/sandbox.env", ".env")


def load_settings(cls: type[S], **overrides: object) -> S:
    try:
        return cls(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", ""))
        problems = []
        for err in exc.errors():
            name = (prefix + ".".join(str(p) for p in err["loc"])).upper()
            what = "is not set" if err["type"] == "missing" else f"is invalid ({err['msg']})"
            problems.append(f"{name} {what}")
        raise ConfigError("; ".join(problems)) from None


def hub_settings() -> Settings:
    """The hub's own settings (HUB_*), for what a connector shares with the hub: where
    the vendor gates live, the company's time zone. A ConfigError like any other."""
    try:
        return load_hub_settings()
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None
