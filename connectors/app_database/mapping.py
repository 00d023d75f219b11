"""The mapping file: which tables of the company's own database hold people, and how.

The deployment writes it (TOML, ``APP_DATABASE_MAPPING``); ``example_mapping.toml``
is controller A's. It is checked twice, each time failing with the file, the table and
the column: first its own shape (pydantic), then, at start, against the tables the
database really has (``bind``), so a mapping that names a missing table or column
never gets as far as a request.

Table and column names reach SQL only as SQLAlchemy ``Table``/``Column`` objects taken
from reflection, never as text; values are always bound parameters.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import Boolean, Column, MetaData, Table

from connectors.errors import ConfigError


class TableMode(StrEnum):
    """What erasure does to a person's row. None in the mapping: the policy says."""

    DELETE = "delete"
    ANONYMISE = "anonymise"


class ChildMode(StrEnum):
    """What erasure does to a person's child rows (orders): delete them, or keep them
    (business records such as bookkeeping entries), still exported on access."""

    DELETE = "delete"
    KEEP = "keep"


def _listed(value: object) -> object:
    """``email = "email"`` is read as ``email = ["email"]``."""
    return [value] if isinstance(value, str) else value


Columns = Annotated[list[str], BeforeValidator(_listed)]
Name = Annotated[str, Field(min_length=1)]


class Child(BaseModel):
    """Rows of another table that belong to a person's row through a foreign key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: Name
    foreign_key: Name
    erase: ChildMode
    primary_key: Name | None = None
    dated_by: Name | None = None
    """Kept rows: the date column of the entry (an order's date). The hold on a row
    ends as the policy's ``retention_years`` count from it (rule 5: a hold ends)."""


class Anonymise(BaseModel):
    """How a row is anonymised: columns set to NULL, columns overwritten, and markers.

    An ``overwrite`` text may hold ``{pk}``, replaced by the row's primary key, for a
    column that must stay unique (``"erased-{pk}@invalid"``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    null: Columns = Field(default_factory=list)
    overwrite: dict[str, str | int | float | bool] = Field(default_factory=dict)
    erased_at: Name | None = None
    """A timestamp column set to the time of the erasure."""
    erased_flag: Name | None = None
    """A boolean column set to true."""

    @model_validator(mode="after")
    def _disjoint(self) -> Anonymise:
        both = sorted(set(self.null) & set(self.overwrite))
        if both:
            raise ValueError(f"column {both[0]!r} is both in null and in overwrite")
        return self

    def blanked(self) -> set[str]:
        return {*self.null, *self.overwrite}


class TableMapping(BaseModel):
    """One table whose rows are people (``[tables.<name>]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    primary_key: Name | None = None
    """Default: the table's own single-column primary key."""
    email: Columns = Field(default_factory=list)
    phone: Columns = Field(default_factory=list)
    first_name: Name | None = None
    last_name: Name | None = None
    full_name: Name | None = None
    updated_at: Name | None = None
    """A timestamp column the application bumps on every change: the sync cursor."""
    marketing_consent: Name | None = None
    """A boolean column: an opt-out sets it false."""
    restricted: Name | None = None
    """A boolean column marking processing restricted (GDPR art. 18): a restriction
    request sets it, lifting one clears it."""
    erase: TableMode | None = None
    anonymise: Anonymise | None = None
    children: list[Child] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> TableMapping:
        if not self.email and not self.phone:
            raise ValueError("name at least one e-mail or phone column: a row is found by them")
        if self.full_name and (self.first_name or self.last_name):
            raise ValueError("name either full_name or first_name/last_name, not both")
        if self.erase == TableMode.ANONYMISE and self.anonymise is None:
            raise ValueError('erase = "anonymise" needs an [anonymise] section')
        if self.anonymise is not None:
            left = [c for c in self.identifying() if c not in self.anonymise.blanked()]
            if left:
                raise ValueError(f"anonymise leaves column {left[0]!r} as it is: every "
                                 "e-mail, phone and name column must be in null or overwrite")
        if self.erase == TableMode.DELETE:
            kept = [c.table for c in self.children if c.erase == ChildMode.KEEP]
            if kept:
                raise ValueError(f"erase = \"delete\" would leave the kept child rows of "
                                 f"{kept[0]!r} pointing at nothing: anonymise this table, "
                                 "or delete the children")
        return self

    def identifying(self) -> list[str]:
        """The columns that say who the row is: e-mails, phones, names."""
        names = (self.first_name, self.last_name, self.full_name)
        return [*self.email, *self.phone, *(n for n in names if n)]


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tables: dict[str, TableMapping] = Field(min_length=1)


def load_mapping(path: Path) -> Mapping:
    """The mapping file, parsed and checked; ConfigError naming the file and the place."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the mapping file {path} (APP_DATABASE_MAPPING): "
                          f"{exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    try:
        return Mapping.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {loc or 'the file'}: {first['msg']}") from None


# ------------------------------------------------------------------ bound to the database


@dataclass(frozen=True)
class BoundChild:
    mapping: Child
    table: Table
    pk: Column
    fk: Column
    dated: Column | None = None


@dataclass(frozen=True)
class BoundTable:
    """A mapped table with its reflected columns: what the connector's SQL is built from."""

    name: str
    mapping: TableMapping
    table: Table
    pk: Column
    children: tuple[BoundChild, ...]

    def col(self, name: str | None) -> Column | None:
        return None if name is None else self.table.c[name]

    def cols(self, names: list[str]) -> list[Column]:
        return [self.table.c[n] for n in names]


def bind(mapping: Mapping, metadata: MetaData, where: Path) -> dict[str, BoundTable]:
    """The mapping checked against the reflected tables: every table and column exists,
    columns set to NULL are nullable, markers and flags have a fitting type."""
    return {name: _bind_table(name, spec, metadata, where)
            for name, spec in mapping.tables.items()}


def _table(metadata: MetaData, name: str, where: str) -> Table:
    if name not in metadata.tables:
        known = ", ".join(sorted(metadata.tables)) or "none"
        raise ConfigError(f"{where}: table {name!r} is not in the database (its tables: {known})")
    return metadata.tables[name]


def _column(table: Table, name: str, role: str, where: str) -> Column:
    if name not in table.c:
        known = ", ".join(c.name for c in table.c)
        raise ConfigError(f"{where}: {role} column {name!r} is not a column of table "
                          f"{table.name!r} (its columns: {known})")
    return table.c[name]


def _pk(table: Table, named: str | None, where: str) -> Column:
    if named is not None:
        return _column(table, named, "primary_key", where)
    own = list(table.primary_key.columns)
    if len(own) != 1:
        raise ConfigError(f"{where}: table {table.name!r} has no single-column primary key; "
                          "name the column that identifies a row as primary_key")
    return own[0]


def _bind_table(name: str, spec: TableMapping, metadata: MetaData, path: Path) -> BoundTable:
    where = f"{path}: [tables.{name}]"
    table = _table(metadata, name, where)
    pk = _pk(table, spec.primary_key, where)
    roles = [("email", c) for c in spec.email] + [("phone", c) for c in spec.phone]
    roles += [(role, getattr(spec, role)) for role in (
        "first_name", "last_name", "full_name", "updated_at", "marketing_consent",
        "restricted") if getattr(spec, role)]
    for role, column in roles:
        _column(table, column, role, where)
    if spec.anonymise is not None:
        _bind_anonymise(table, spec.anonymise, where)
    children = tuple(_bind_child(name, child, metadata, path) for child in spec.children)
    return BoundTable(name, spec, table, pk, children)


def _bind_anonymise(table: Table, spec: Anonymise, where: str) -> None:
    for name in spec.null:
        column = _column(table, name, "anonymise.null", where)
        if not column.nullable:
            raise ConfigError(f"{where}: anonymise.null names {name!r}, which is NOT NULL; "
                              "overwrite it instead")
    for name in spec.overwrite:
        _column(table, name, "anonymise.overwrite", where)
    if spec.erased_at:
        _column(table, spec.erased_at, "anonymise.erased_at", where)
    if spec.erased_flag:
        _column(table, spec.erased_flag, "anonymise.erased_flag", where)


def _bind_child(parent: str, child: Child, metadata: MetaData, path: Path) -> BoundChild:
    where = f"{path}: [tables.{parent}] child {child.table!r}"
    table = _table(metadata, child.table, where)
    dated = _column(table, child.dated_by, "dated_by", where) if child.dated_by else None
    return BoundChild(child, table, _pk(table, child.primary_key, where),
                      _column(table, child.foreign_key, "foreign_key", where), dated)


def falsy(column: Column) -> bool | int:
    """False as the column stores it (a BOOLEAN, or an integer flag)."""
    return False if isinstance(column.type, Boolean) else 0


def truthy(column: Column) -> bool | int:
    return True if isinstance(column.type, Boolean) else 1
