"""Per-system policy: what erasure means in each system, and why.

The deployment owns the policy file (TOML); the hub ships a default that fits the
reference deployment (controller A in obligations.md). It is validated on load and
a mistake is reported with the file, the system and the field, because a wrong
policy silently deletes what the law says to keep, or keeps what it says to erase.
"""

from __future__ import annotations

import tomllib
from datetime import date
from enum import StrEnum
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class PolicyError(ValueError):
    """The policy file is missing, unreadable or invalid; the message says where."""


class EraseMode(StrEnum):
    DELETE = "delete"
    PERMANENT_DELETE = "permanent_delete"
    ANONYMISE = "anonymise"
    # Keep the record under a legal hold where one applies, erase where it does not.
    RETAIN_IF_REQUIRED = "retain_if_required"


class DealsMode(StrEnum):
    """Pipedrive deals outlive their person: keep them (they are business records) or delete."""

    KEEP = "keep"
    DELETE = "delete"


class SystemPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    erase: EraseMode = EraseMode.DELETE
    deals: DealsMode = DealsMode.KEEP
    legal_basis: str = Field(
        default="GDPR art. 6(1)(b) contract; art. 6(1)(f) legitimate interest",
        min_length=3,
    )
    # Years records are kept after the end of the calendar year of the last
    # bookkeeping entry (Kirjanpitolaki 2:10): 6 for vouchers, 10 for books.
    retention_years: int | None = Field(default=None, ge=0, le=30)
    retention_basis: str | None = None
    marketing: bool = False

    def hold_ends(self, last_entry: date) -> date | None:
        """The last day of the hold: end of the entry's year plus the retention years."""
        if self.retention_years is None:
            return None
        return date(last_entry.year + self.retention_years, 12, 31)


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    systems: dict[str, SystemPolicy]

    def for_system(self, system: str) -> SystemPolicy:
        try:
            return self.systems[system]
        except KeyError:
            raise PolicyError(f"the policy has no section [systems.{system}]") from None

    @property
    def enabled_systems(self) -> list[str]:
        return [name for name, p in self.systems.items() if p.enabled]


DEFAULT_POLICY_FILE = "default_policy.toml"


def load_policy(path: Path | None = None) -> Policy:
    """Load and validate a policy file; the packaged default when no path is given."""
    if path is None:
        text = resources.files("hub").joinpath(DEFAULT_POLICY_FILE).read_text("utf-8")
        where = f"the packaged {DEFAULT_POLICY_FILE}"
    else:
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise PolicyError(f"cannot read policy file {path}: {exc.strerror}") from None
        where = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{where} is not valid TOML: {exc}") from None
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise PolicyError(f"{where}: {loc}: {first['msg']}") from None
