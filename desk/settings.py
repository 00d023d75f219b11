"""The desk's settings (HUB_DESK_*), beside the hub's own.

The session cookie is signed with a key derived from HUB_SECRET under its own label
unless HUB_DESK_SESSION_SECRET is set: one secret to manage, and a key that is
neither an identifier hash nor the audit chain's.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.settings import Settings

SESSION_LABEL = b"hub/desk-session/v1"


class DeskSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_DESK_", env_file=".env",
                                      env_file_encoding="utf-8", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8470, ge=1, le=65535)
    session_secret: SecretStr | None = None
    # Behind a TLS proxy set this: the cookie is then never sent over plain HTTP.
    https_only: bool = False
    session_max_age_minutes: int = Field(default=8 * 60, ge=1)
    max_failed_logins: int = Field(default=5, ge=1)
    lockout_minutes: int = Field(default=15, ge=1)
    # Dagster's UI, for the link from a request's page to its runs.
    dagster_ui_url: str = "http://127.0.0.1:3000"
    audit_page_size: int = Field(default=50, ge=1, le=500)

    @property
    def session_max_age(self) -> timedelta:
        return timedelta(minutes=self.session_max_age_minutes)

    def session_key(self, hub: Settings) -> str:
        """The cookie-signing key: the explicit one, or derived from HUB_SECRET."""
        if self.session_secret is not None:
            return self.session_secret.get_secret_value()
        return hmac.new(hub.secret_bytes, SESSION_LABEL, hashlib.sha256).hexdigest()
