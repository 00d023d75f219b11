"""Per-system policy: what erasure means in each system, and why.

The deployment owns the policy file (TOML); the hub ships a default that fits the
reference deployment (controller A in obligations.md). It is validated on load and
a mistake is reported with the file, the system and the field, because a wrong
policy silently deletes what the law says to keep, or keeps what it says to erase.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from datetime import date
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from hub.ledger import RequestKind
from hub.systems import Kind, SystemDeclaration, by_name


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


class RetentionStart(StrEnum):
    """Where the Accounting Act (Kirjanpitolaki 2:10) starts counting the years.

    Vouchers (sales invoices) run from the end of the *calendar year* in which the
    financial year ended (2:10 § 2); the books and financial statements run from the
    end of the *financial year* itself (2:10 § 1). For a calendar-year company both
    are 31 December; for a July–June company they differ by half a year.
    """

    CALENDAR_YEAR_END = "calendar_year_end"
    FINANCIAL_YEAR_END = "financial_year_end"


def _month_day(value: str) -> tuple[int, int]:
    month, day = value.split("-")
    return int(month), int(day)


class SystemPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    erase: EraseMode = EraseMode.DELETE
    deals: DealsMode = DealsMode.KEEP
    legal_basis: str = Field(
        default="GDPR art. 6(1)(b) contract; art. 6(1)(f) legitimate interest",
        min_length=3,
    )
    # Years records are kept after the end of the financial year of the last
    # bookkeeping entry (Kirjanpitolaki 2:10): 6 for vouchers, 10 for books.
    retention_years: int | None = Field(default=None, ge=0, le=30)
    retention_basis: str | None = None
    # The last day of the company's financial year, "MM-DD" ("06-30" for July–June).
    financial_year_end: str = "12-31"
    retention_from: RetentionStart = RetentionStart.CALENDAR_YEAR_END
    marketing: bool = False
    # A system without an API (architecture rule 10): a paper archive, a cabinet, a
    # drive nobody can search. Declared here, not in code: each request gives it a
    # manual task with these instructions, due `due_days` after the task opens.
    kind: Literal["manual"] | None = None
    title: str | None = Field(default=None, min_length=3)
    # The title in the subjects' other languages (fi, sv): letters and bundles name the
    # system in the subject's language; `title` is the English one and the fallback.
    titles: dict[Literal["fi", "sv", "en"], str] = Field(default_factory=dict)
    instructions: str | dict[str, str] | None = None
    due_days: int = Field(default=7, ge=1, le=31)

    @model_validator(mode="after")
    def _manual_has_what_a_person_needs(self) -> Self:
        """A manual system needs a title and instructions; only a manual system has them."""
        if self.kind is None:
            if self.title is not None or self.titles or self.instructions is not None:
                raise PydanticCustomError(
                    "manual_only", "title and instructions are for a system without an API: "
                                   "add kind = \"manual\"")
            return self
        if not self.title:
            raise PydanticCustomError("manual_title", "a manual system needs a title, "
                                                      "as people will read it")
        texts = ([self.instructions] if isinstance(self.instructions, str)
                 else list((self.instructions or {}).values()))
        if not texts or not all(t.strip() for t in texts):
            raise PydanticCustomError("manual_instructions",
                                      "a manual system needs instructions for the person "
                                      "who checks it")
        if isinstance(self.instructions, dict):
            unknown = sorted(set(self.instructions) - {*RequestKind, "default"})
            if unknown:
                raise PydanticCustomError(
                    "manual_kinds", "instructions.{key} is not a request kind (use {kinds} "
                                    "or default)",
                    {"key": unknown[0], "kinds": ", ".join(RequestKind)})
        return self

    def instructions_for(self, kind: str) -> str:
        """What a person does in this manual system for a request of ``kind``."""
        if isinstance(self.instructions, str):
            return self.instructions.strip()
        chosen = (self.instructions or {}).get(kind) or (self.instructions or {}).get("default")
        if chosen is None:
            return (f"Look for the subject in {self.title} and do what the {kind} request "
                    "asks; note what you did.")
        return chosen.strip()

    @field_validator("financial_year_end")
    @classmethod
    def _valid_year_end(cls, value: str) -> str:
        """A wrong year end silently moves every hold, so refuse anything but a real MM-DD.

        29 February is refused: a financial year cannot end on a day most years lack.
        """
        try:
            if len(value) != 5 or value[2] != "-":
                raise ValueError
            month, day = _month_day(value)
            date(2001, month, day)  # a common year: 02-29 does not exist in it
        except ValueError:
            raise PydanticCustomError(
                "financial_year_end",
                "must be the last day of the financial year as MM-DD (e.g. \"12-31\" or "
                "\"06-30\"), not {value}", {"value": repr(value)}) from None
        return value

    def financial_year_end_of(self, entry: date) -> date:
        """The last day of the financial year an entry dated ``entry`` belongs to."""
        month, day = _month_day(self.financial_year_end)
        end = date(entry.year, month, day)
        return end if entry <= end else date(entry.year + 1, month, day)

    def hold_ends(self, last_entry: date) -> date | None:
        """The last day of the hold on records whose last entry is ``last_entry``.

        The retention years count from the end of the entry's financial year (books),
        or from the end of the calendar year in which that financial year ended
        (vouchers, the default).
        """
        if self.retention_years is None:
            return None
        year_end = self.financial_year_end_of(last_entry)
        if self.retention_from == RetentionStart.CALENDAR_YEAR_END:
            return date(year_end.year + self.retention_years, 12, 31)
        return year_end.replace(year=year_end.year + self.retention_years)


class RetentionPolicy(BaseModel):
    """When the company erases a customer without being asked (obligations.md, retention).

    One rule says when a customer relationship's data is due: ``after_relationship_years``
    (controller B: 10 years after the relationship ended) or
    ``january_after_service_end`` (controller D: in the January after the year the
    service ended). Bookkeeping holds that have ended are due whatever the rule.
    The sweep lists who is due; it files erasure requests only with
    ``file_requests = true``, because a wrong rule erases customers the company still
    serves. ``aggregate_only`` (controller D): once such an erasure has settled, only
    counts of it remain in the hub.
    """

    # Strict: "yes" or "10" in quotes is a mistake to name, not a value to guess at.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    after_relationship_years: int | None = Field(default=None, ge=1, le=30)
    january_after_service_end: bool = False
    file_requests: bool = False
    aggregate_only: bool = False

    @model_validator(mode="after")
    def _one_rule(self) -> Self:
        """Two rules would leave it unclear which one erases; say so instead of choosing."""
        if self.after_relationship_years is not None and self.january_after_service_end:
            raise PydanticCustomError(
                "retention_rules", "choose one rule: after_relationship_years or "
                                   "january_after_service_end, not both")
        return self

    @property
    def has_rule(self) -> bool:
        return self.after_relationship_years is not None or self.january_after_service_end


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    systems: dict[str, SystemPolicy]
    # Absent: no relationship rule, a dry-run sweep of ended holds only.
    retention: RetentionPolicy = Field(default_factory=RetentionPolicy)
    # The declarations the policy was checked against (load_policy(systems=...)).
    _declared: dict[str, SystemDeclaration] = PrivateAttr(default_factory=dict)

    def title(self, system: str, language: str = "en") -> str:
        """The system's title for people, in their language where the declaration words
        it; its bare name when it was not declared."""
        declared = self._declared.get(system) or self.manual_declarations().get(system)
        return declared.title_in(language) if declared else system

    def manual_declarations(self) -> dict[str, SystemDeclaration]:
        """The systems without an API this policy declares (rule 10), by name."""
        return {name: SystemDeclaration(name=name, title=p.title or name, kind=Kind.MANUAL,
                                        capabilities=frozenset(), titles=dict(p.titles))
                for name, p in self.systems.items() if p.kind == "manual"}

    def is_manual(self, system: str) -> bool:
        section = self.systems.get(system)
        return section is not None and section.kind == "manual"

    @property
    def manual_systems(self) -> list[str]:
        """The enabled systems a person checks by hand."""
        return [name for name in self.enabled_systems if self.is_manual(name)]

    def for_system(self, system: str) -> SystemPolicy:
        try:
            return self.systems[system]
        except KeyError:
            raise PolicyError(f"the policy has no section [systems.{system}]") from None

    @property
    def enabled_systems(self) -> list[str]:
        return [name for name, p in self.systems.items() if p.enabled]


DEFAULT_POLICY_FILE = "default_policy.toml"


def _check_systems(policy: Policy, declared: dict[str, SystemDeclaration], where: str) -> None:
    """Every section is a declared system and every declared system has a section.

    A section nothing runs leaves its task pending for ever, and a system without a
    section is never asked; both are refused at load. A manual section declares its
    system itself (rule 10), but not one a connector already declares.
    """
    manual = policy.manual_declarations()
    clash = sorted(set(manual) & set(declared))
    if clash:
        raise PolicyError(f"{where}: [systems.{clash[0]}] has kind = \"manual\" but "
                          f"{clash[0]!r} is declared by its connector; kind = \"manual\" "
                          "is for a system without one")
    declared = {**declared, **manual}
    known = ", ".join(sorted(declared)) or "none"
    unknown = sorted(set(policy.systems) - set(declared))
    if unknown:
        raise PolicyError(f"{where}: [systems.{unknown[0]}] names a system that is not "
                          f"declared (declared systems: {known}); a system without an API "
                          "is declared in its section with kind = \"manual\", a title and "
                          "instructions")
    missing = sorted(set(declared) - set(policy.systems))
    if missing:
        raise PolicyError(f"{where} has no section [systems.{missing[0]}] for the declared "
                          f"system {missing[0]!r}; add one (enabled = false to leave it out)")


def load_policy(path: Path | None = None, *,
                systems: Iterable[SystemDeclaration] | None = None) -> Policy:
    """Load and validate a policy file; the packaged default when no path is given.

    ``systems`` are the declared systems (``connectors.registry.declarations()``, passed
    in by the layer that knows them: the hub cannot import the connectors). Given them,
    the policy must have a section for each and none for anything else, and
    ``Policy.title`` answers from them. Without them only the file itself is checked.
    """
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
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise PolicyError(f"{where}: {loc}: {first['msg']}") from None
    if systems is not None:
        declared = by_name(systems)
        _check_systems(policy, declared, where)
        policy._declared = declared
    return policy
