"""Network drive connector (docs/vendors/network_drive.md): files that mention a person.

A company's shared folder (an SMB/NFS share mounted on the hub's machine) holds
contracts, customer lists and notes. There is no API: the connector reads the
folder, and a person acts on what it finds.

- ``find``: walks ``NETWORK_DRIVE_ROOT`` (symlinks are never followed, so nothing
  outside the root is read), reads each .txt, .csv, .docx, .xlsx and .pdf up to the
  size limit, and returns one ``RecordRef`` per file (kind ``file``, ``record_id``
  the path relative to the root) that names the subject's e-mail or phone, in any
  spelling (``matching.py``). The hub's identifiers are e-mails and phones only
  (``hub.domain.IdentifierKind`` has no name), so a file naming the subject by name
  alone is not found: the docs tell the operator so. A file that cannot be read
  (corrupt, encrypted, no permission) is counted and skipped, never a crash; it was
  not searched, so the access export and the erasure each list it (``unsearched``:
  ``Action.KEPT``, its path masked, ``matching.masked_unsearched``) for a person to open,
  and the task waits for an operator: never ``done`` or ``not_found`` while a file
  the hub could not read may name the subject.
- ``export``: per file its path, size, modified time and each place (line,
  paragraph, table row, sheet row, PDF line) that names the subject, as an excerpt
  with anyone else's e-mail or phone masked.
- ``erase``: never deletes or edits a file. A document may name several people, a
  signed contract may be under a hold, and redacting a PDF is not a thing to do by
  program. Each file that still names the subject is ``Action.KEPT`` with where, for
  an operator to delete or redact it and confirm the task; a file that no longer
  does (redacted, deleted) is ``NOT_FOUND``. Reading the files again is the
  read-back, so an erasure run after the operator's work proves it.
- ``opt_out``: nobody is subscribed to a folder: ``nothing_to_do``.
- ``sync(since)``: the e-mails and phones each changed file names, one
  ``SourceRecord`` per identifier and file (never two in one record: a customer list
  names many people, and one record would link them all as one person). The cursor
  is the newest modified time seen; a file copied in with an older time waits for
  the next full pass, which also marks deleted files gone.

Logs carry counts only: never a file's text, a matched value or a path (a file name
is often a person's name).
"""

from __future__ import annotations

import logging
import os
import stat
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import httpx
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from connectors.base import ConnectorBase, parse_time, wanted
from connectors.errors import ConnectionFailed
from connectors.network_drive.matching import (
    excerpt,
    identifiers_in,
    masked_unsearched,
    subject_hits,
)
from connectors.network_drive.text import READERS, Chunk
from connectors.settings import ENV_FILES, load_settings
from hub.domain import (
    Action,
    Export,
    ExportSection,
    Identifier,
    IdentifierKind,
    Outcome,
    RecordFacts,
    RecordOutcome,
    RecordRef,
    SourceRecord,
    SyncPage,
)
from hub.pointers import NAME_PEOPLE
from hub.policy import SystemPolicy

SYSTEM = "network_drive"
KIND = "file"
SYNC_PAGE = 200  # source records per sync page
MAX_PLACES = 20  # places (and unreadable paths) listed in an operator's task
NOTHING_TO_DO = "nobody is subscribed to a folder: nothing to opt out of"
UNREADABLE = "unreadable_file"  # the kind of a file the hub could not search
_NOT_SEARCHED = ("the hub could not read this file (corrupt, encrypted or no permission), "
                 "so it was not searched: open it by hand and look for the subject; ")
ACCESS_BY_HAND = _NOT_SEARCHED + ("add what names them to the reply, then confirm the task")
ERASURE_BY_HAND = _NOT_SEARCHED + ("delete the file or redact the subject from it, or note "
                                   "that it does not name them, then confirm the task")
log = logging.getLogger(__name__)


def _globs(value: object) -> object:
    """``"*.tmp, archive/*"`` → ``("*.tmp", "archive/*")``: one variable, comma-separated."""
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(",") if p.strip())
    return value


class NetworkDriveSettings(BaseSettings):
    """NETWORK_DRIVE_* variables (environment first, then ``.env``)."""

    model_config = SettingsConfigDict(env_prefix="NETWORK_DRIVE_", env_file=ENV_FILES,
                                      env_file_encoding="utf-8", extra="ignore")

    root: Path
    """The mounted share. Read only: the connector never writes to it."""
    include: Annotated[tuple[str, ...], NoDecode] = ()
    """Globs on the path relative to the root (case-insensitive, ``*`` crosses folders);
    empty: every file of a searched type."""
    exclude: Annotated[tuple[str, ...], NoDecode] = ()
    max_file_mb: float = Field(default=20, gt=0, le=1024)
    """Larger files are skipped and counted (a backup image, a video)."""

    _split = field_validator("include", "exclude", mode="before")(_globs)

    @field_validator("root")
    @classmethod
    def _a_readable_folder(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"{value} is not a folder (is the share mounted?)")
        if not os.access(value, os.R_OK | os.X_OK):
            raise ValueError(f"{value} cannot be read by this user")
        return value.resolve()


@dataclass(frozen=True, slots=True)
class DriveFile:
    """A file of the share as the walk saw it (``lstat``)."""

    path: str  # relative to the root, POSIX separators
    size: int
    modified: datetime


@dataclass
class Found:
    """What one file says of the subject: identifiers and the places naming them."""

    file: DriveFile
    emails: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    places: list[dict[str, str]] = field(default_factory=list)


class NetworkDriveConnector(ConnectorBase):
    system = SYSTEM

    def __init__(self, settings: NetworkDriveSettings) -> None:
        self.settings = settings
        self.root = settings.root
        self._reads = 0
        # The last lookup's identifiers: `erase` re-reads files with them, also the
        # files an earlier attempt planned (the journal's refs carry no facts).
        self._subject: tuple[set[str], set[str]] = (set(), set())
        self.skipped: Counter[str] = Counter()
        self.unreadable: list[str] = []

    @classmethod
    def from_env(cls, *, client: httpx.Client | None = None,
                 **kwargs: Any) -> NetworkDriveConnector:
        """``client`` is ignored: there is no HTTP here."""
        return cls(load_settings(NetworkDriveSettings, **kwargs))

    @property
    def api_calls(self) -> int:
        """Files read: the closest thing to an API call a folder has."""
        return self._reads

    def close(self) -> None:
        return None

    # ------------------------------------------------------------------- protocol

    def check(self) -> None:
        self._reachable_root()

    def find(self, identifiers: Sequence[Identifier]) -> list[RecordRef]:
        emails, phones = wanted(identifiers)
        self._subject = (emails, phones)
        if not emails and not phones:
            return []
        refs = []
        for found in self._search(emails, phones):
            self.remember(found.file.path, found)
            refs.append(RecordRef(
                SYSTEM, KIND, found.file.path, label=f"file {found.file.path}",
                facts=RecordFacts(emails=tuple(sorted(found.emails)),
                                  phones=tuple(sorted(found.phones)))))
        log.info("network drive: %d file(s) name the subject; skipped %s", len(refs),
                 dict(self.skipped) or "none")
        return refs

    def export(self, refs: Sequence[RecordRef]) -> Export:
        start = self._reads
        emails, phones = self._identifiers(refs)
        items, missing = [], 0
        for ref in _unique(refs):
            found = self.recall(ref.record_id) or self._reread(ref.record_id, emails, phones)
            if found is None or not found.places:
                missing += 1
                continue
            items.append({
                "path": found.file.path, "size_bytes": found.file.size,
                "modified": found.file.modified.isoformat(),
                "places": found.places,  # all of them: the subject is owed a full copy
            })
        sections = (ExportSection(
            label="Network drive: documents that mention you", source="network drive",
            items=tuple(items), titles={"fi": "Verkkolevy: asiakirjat, joissa sinut mainitaan",
                                        "sv": "Nätverksenhet: dokument som nämner dig"}),
        ) if items else ()
        unsearched = self._unsearched(refs, emails, phones, ACCESS_BY_HAND)
        return Export(SYSTEM, sections, evidence={
            "files_read": self._reads - start, "files": len(items), "not_found": missing,
            "unreadable": len(unsearched), NAME_PEOPLE: True},  # hashed once settled
            unsearched=tuple(unsearched))

    def erase(self, refs: Sequence[RecordRef], policy: SystemPolicy) -> Outcome:
        """One record per file: KEPT while it names the subject, for an operator to
        delete or redact; NOT_FOUND once it does not. Every file is read again now,
        so the outcome is its own read-back (verified)."""
        self.forget_found()
        self.begin()
        emails, phones = self._identifiers(refs)
        records = [self._erase_one(ref, emails, phones) for ref in _unique(refs)]
        kept = sum(r.action == Action.KEPT for r in records)
        unsearched = self._unsearched(refs, emails, phones, ERASURE_BY_HAND)
        # recheck: once an operator confirms the deletions, the next run searches again
        # and only a share that names the subject nowhere settles the task (rule 3). A
        # file the hub cannot read cannot be read back either: the operator's word on
        # it is the confirmation.
        return self.outcome([*records, *unsearched], True, recheck=kept > 0,
                            **{NAME_PEOPLE: True},  # a path: hashed once settled
                            files_checked=len(records), still_named=kept,
                            unreadable=len(unsearched),
                            unreadable_paths=[r.ref.record_id for r in unsearched][:MAX_PLACES])

    def opt_out(self, refs: Sequence[RecordRef]) -> Outcome:
        self.begin()
        records = [RecordOutcome(ref, Action.NOTHING_TO_DO, detail=NOTHING_TO_DO)
                   for ref in refs]
        return self.outcome(records, True, reason=NOTHING_TO_DO)

    def sync(self, since: str | None) -> Iterator[SyncPage]:
        """Files modified at or after ``since`` (the newest modified time of the last
        pass: the newest file is read again, never missed), their identifiers as
        records. Pages carry ``since`` (a resumed pass re-reads); the last the new one."""
        since_dt = parse_time(since) if since else None
        newest = since_dt
        records: list[SourceRecord] = []
        for file in self._walk():
            if since_dt is not None and file.modified < since_dt:
                continue
            newest = file.modified if newest is None else max(newest, file.modified)
            chunks = self._chunks(file)
            if chunks is None:
                continue
            records += _source_records(file, chunks)
            if len(records) >= SYNC_PAGE:
                yield SyncPage(records=tuple(records), cursor=since)
                records = []
        if records:
            yield SyncPage(records=tuple(records), cursor=since)
        log.info("network drive sync: %d file(s) read; skipped %s", self._reads,
                 dict(self.skipped) or "none")
        yield SyncPage(cursor=newest.isoformat() if newest else since)

    # ------------------------------------------------------------------ the walk

    def _reachable_root(self) -> Path:
        """The root, if it is there and not empty.

        A share that came unmounted leaves its mount point behind as an empty
        folder; searching it would find nobody and "prove" every erasure. So an
        empty root is an error (retryable: the share may come back), not "not found".
        """
        try:
            with os.scandir(self.root) as entries:
                empty = next(entries, None) is None
        except OSError as exc:
            raise ConnectionFailed(SYSTEM, f"NETWORK_DRIVE_ROOT cannot be read "
                                           f"({type(exc).__name__}): is the share mounted?"
                                   ) from None
        if empty:
            raise ConnectionFailed(SYSTEM, "NETWORK_DRIVE_ROOT is empty: the share looks "
                                           "unmounted, and an empty search proves nothing")
        return self.root

    def _walk(self) -> Iterator[DriveFile]:
        """Every file to search, in a stable order; what is skipped is counted."""
        self.skipped = Counter()
        self.unreadable = []
        root = self._reachable_root()

        def unreadable_folder(exc: OSError) -> None:
            self.skipped["unreadable_folder"] += 1
            self.unreadable.append(self._relative(Path(exc.filename or root)) + "/")

        for folder, dirs, files in os.walk(root, onerror=unreadable_folder, followlinks=False):
            dirs.sort()
            self.skipped["symlink"] += sum(os.path.islink(os.path.join(folder, d)) for d in dirs)
            for name in sorted(files):
                file = self._candidate(Path(folder, name))
                if file is not None:
                    yield file

    def _candidate(self, path: Path) -> DriveFile | None:
        relative = self._relative(path)
        try:
            info = path.lstat()
        except OSError:
            self._unreadable(relative)
            return None
        if stat.S_ISLNK(info.st_mode):
            self.skipped["symlink"] += 1  # may point out of the root: never followed
            return None
        if not stat.S_ISREG(info.st_mode) or path.suffix.lower() not in READERS:
            self.skipped["other_type"] += 1
            return None
        if not self._selected(relative):
            self.skipped["excluded"] += 1
            return None
        if info.st_size > self._max_bytes:
            self.skipped["too_large"] += 1
            return None
        return DriveFile(relative, info.st_size,
                         datetime.fromtimestamp(info.st_mtime, UTC))

    def _selected(self, relative: str) -> bool:
        path = relative.lower()
        include = self.settings.include
        if include and not any(fnmatch(path, g.lower()) for g in include):
            return False
        return not any(fnmatch(path, g.lower()) for g in self.settings.exclude)

    @property
    def _max_bytes(self) -> int:
        return int(self.settings.max_file_mb * 1024 * 1024)

    def _relative(self, path: Path) -> str:
        return PurePosixPath(*path.relative_to(self.root).parts).as_posix()

    def _unreadable(self, relative: str) -> None:
        self.skipped["unreadable"] += 1
        self.unreadable.append(relative)

    # --------------------------------------------------------------- one file

    def _read(self, file: DriveFile) -> bytes | None:
        """The file's bytes, opened without following a symlink (one swapped in since
        the walk is refused by the kernel, not by a check that could race)."""
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        self._reads += 1
        try:
            fd = os.open(self.root / file.path, flags)
            with os.fdopen(fd, "rb") as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    raise OSError("not a regular file")
                data = handle.read(self._max_bytes + 1)
        except OSError:
            self._unreadable(file.path)
            return None
        if len(data) > self._max_bytes:
            self.skipped["too_large"] += 1
            return None
        return data

    def _chunks(self, file: DriveFile) -> list[Chunk] | None:
        """The file's text by place, or None (counted) when it cannot be read."""
        data = self._read(file)
        if data is None:
            return None
        reader = READERS[PurePosixPath(file.path).suffix.lower()]
        try:
            return list(reader(data))
        except Exception as exc:  # noqa: BLE001 - one bad file never stops the search
            log.warning("network drive: a %s file could not be read (%s)",
                        PurePosixPath(file.path).suffix.lower(), type(exc).__name__)
            self._unreadable(file.path)
            return None

    def _found_in(self, file: DriveFile, emails: set[str], phones: set[str]) -> Found | None:
        """What the file says of the subject, or None when it cannot be read."""
        chunks = self._chunks(file)
        if chunks is None:
            return None
        found = Found(file)
        for chunk in chunks:
            hits = subject_hits(chunk.text, emails, phones)
            if not hits:
                continue
            for hit in hits:
                (found.emails if hit.kind == IdentifierKind.EMAIL else found.phones).add(
                    hit.value)
            found.places.append({"where": chunk.where,
                                 "excerpt": excerpt(chunk.text, hits[0], emails, phones)})
        return found

    def _search(self, emails: set[str], phones: set[str]) -> Iterator[Found]:
        for file in self._walk():
            found = self._found_in(file, emails, phones)
            if found is not None and found.places:
                yield found

    def _reread(self, relative: str, emails: set[str], phones: set[str]) -> Found | None:
        """One file found earlier, read again; None when it is gone or unreadable."""
        path = self._own_path(relative)
        file = self._candidate(path) if path is not None and path.exists() else None
        if file is None or not (emails or phones):
            return None
        return self._found_in(file, emails, phones)

    def _own_path(self, relative: str) -> Path | None:
        """The file a record id names, if it is under the root without a symlink on
        the way. A record id comes back from the journal: ``../`` or a folder since
        replaced by a symlink must not lead out of the share."""
        parts = PurePosixPath(relative).parts
        if not parts or PurePosixPath(relative).is_absolute() or ".." in parts:
            return None
        path = self.root
        for part in parts:
            path = path / part
            if path.is_symlink():
                return None
        return path

    def _unsearched(self, refs: Sequence[RecordRef], emails: set[str], phones: set[str],
                    why: str) -> list[RecordOutcome]:
        """The files the last walk could not read (none of ``refs``), each for a person
        to open: its path masked, since a file name is often a person's name."""
        found = {ref.record_id for ref in refs}
        shown = dict.fromkeys(masked_unsearched(p, emails, phones)
                              for p in self.unreadable if p not in found)
        return [RecordOutcome(RecordRef(SYSTEM, UNREADABLE, path, label=f"file {path}"),
                              Action.KEPT, why) for path in shown]

    def _identifiers(self, refs: Sequence[RecordRef]) -> tuple[set[str], set[str]]:
        """The subject's identifiers: the last lookup's, and those the refs carry."""
        emails, phones = set(self._subject[0]), set(self._subject[1])
        for ref in refs:
            if ref.facts is not None:
                emails.update(ref.facts.emails)
                phones.update(ref.facts.phones)
        return emails, phones

    def _erase_one(self, ref: RecordRef, emails: set[str], phones: set[str]) -> RecordOutcome:
        path = self._own_path(ref.record_id)
        if path is None:
            return RecordOutcome(ref, Action.KEPT, (
                "the path now passes through a symlink, which the hub does not follow: "
                "check the file by hand, delete or redact it, then confirm the task"))
        if not os.path.lexists(path):
            return RecordOutcome(ref, Action.NOT_FOUND,
                                 "the file is no longer on the drive; read back: gone")
        if not (emails or phones):
            return RecordOutcome(ref, Action.KEPT, (
                "the subject's identifiers were not known to this run, so the file could "
                "not be read again: check it by hand, delete or redact, then confirm"))
        found = self._reread(ref.record_id, emails, phones)
        if found is None:
            return RecordOutcome(ref, Action.KEPT, (
                "the file could not be read again (unreadable or skipped): check it by "
                "hand, delete it or redact the subject, then confirm the task"))
        if not found.places:
            return RecordOutcome(ref, Action.NOT_FOUND,
                                 "read back: the file no longer names the subject")
        where = ", ".join(p["where"] for p in found.places[:MAX_PLACES])
        more = len(found.places) - MAX_PLACES
        return RecordOutcome(ref, Action.KEPT, (
            f"names the subject at {where}{f' and {more} more' if more > 0 else ''}: "
            "delete the file, or redact the subject from it, on the network drive (the "
            "hub never edits files: one may name others or be under a hold), then "
            "confirm the task"))


# ---------------------------------------------------------------------- pure helpers


def _unique(refs: Sequence[RecordRef]) -> list[RecordRef]:
    return list({ref.record_id: ref for ref in refs if ref.kind == KIND}.values())


def _source_records(file: DriveFile, chunks: Sequence[Chunk]) -> list[SourceRecord]:
    """One record per identifier the file names: ``<path>#email-<n>`` / ``#phone-<n>``.

    Numbered in order of first appearance, never by value: a record id is kept in
    the index after an erasure, and an identifier (or its plain hash) in it would
    outlive the erasure (DESIGN.md rule 6).
    """
    emails: dict[str, None] = {}
    phones: dict[str, None] = {}
    for chunk in chunks:
        found_emails, found_phones = identifiers_in(chunk.text)
        emails.update(dict.fromkeys(found_emails))
        phones.update(dict.fromkeys(found_phones))
    records = [SourceRecord(SYSTEM, f"{file.path}#email-{n}", emails=(value,),
                            updated_at=file.modified)
               for n, value in enumerate(emails, start=1)]
    records += [SourceRecord(SYSTEM, f"{file.path}#phone-{n}", phones=(value,),
                             updated_at=file.modified)
                for n, value in enumerate(phones, start=1)]
    return records
