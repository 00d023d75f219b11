"""The access-export bundle (GDPR art. 15 and 20): one folder per request.

`data.json` is the portable, machine-readable copy; one CSV per system serves
people who open data in a spreadsheet; `index.html` is the letter-quality view
the subject reads: system by system, what is held, where it came from, on what
legal basis and for how long, and what is retained and why. Only the owner can
read the files, and the bundle's checksum goes into the audit trail so the copy
sent can later be proven to be the copy made.

Each system's op writes its export as a *part* and records the part's sha256 in
its task's evidence; the bundle takes only parts whose digest a finished task
recorded, so a part left by an unfinished run is never sent to anyone. What is
kept by law comes from the hub's own holds of the same subject, because a
minimised record can no longer be found live. When the subject is later erased,
the hub's own bundles of them go too (rule 6).
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from io import StringIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import audit, categories, holds, labels, ledger
from hub.db import private_file, private_folder
from hub.domain import Export, ExportSection
from hub.ledger import FINISHED_TASK_STATES, RequestKind, TaskState
from hub.models import RequestIdentifierRow, SubjectRequestRow
from hub.policy import Policy

EXPORTS = "exports"
PARTS = ".parts"
PART_DIGEST = "part_sha256"
"""The key under which an access task's evidence (``vendor``) records its part's digest."""


@dataclass(frozen=True)
class Bundle:
    path: Path
    files: tuple[str, ...]
    sha256: str


def _json_default(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _private_write(path: Path, text: str) -> None:
    private_file(path, text.encode("utf-8"))


def _csv_text(export: Export) -> str:
    columns: dict[str, None] = {}
    for section in export.sections:
        for item in section.items:
            columns.update(dict.fromkeys(item))
    rows = []
    for section in export.sections:
        for item in section.items:
            rows.append([section.label] + [
                v if isinstance(v, str) else json.dumps(v, default=_json_default,
                                                         ensure_ascii=False)
                for v in (item.get(c, "") for c in columns)
            ])
    out = StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", *columns])
    writer.writerows(rows)
    return out.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        value = json.dumps(value, default=_json_default, ensure_ascii=False, indent=1)
        return f"<pre>{html.escape(value)}</pre>"
    return html.escape("" if value is None else str(value))


def _html(request_id: str, created: datetime, exports: Sequence[Export], policy: Policy,
          retained: dict[str, list[dict[str, Any]]], language: str = "en") -> str:
    """The page the subject reads, in their language, with readable field names."""
    say = labels.text(language)
    esc = html.escape
    parts = [
        f"<!doctype html><html lang='{esc(language)}'><meta charset='utf-8'>",
        f"<title>{esc(say['title'].format(id=request_id))}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #999;"
        "padding:.2em .5em;text-align:left;vertical-align:top}pre{margin:0}</style>",
        f"<h1>{esc(say['heading'])}</h1><p>"
        f"{esc(say['intro'].format(id=request_id, at=f'{created:%Y-%m-%d %H:%M}'))}</p>",
    ]
    shown = {e.system for e in exports}
    # A system with a hold is never left out, even when its live export is empty or
    # absent: the record kept is there, and the subject is told why.
    everything = [*exports, *(Export(s, ()) for s in retained if s not in shown)]
    for export in everything:
        system = export.system
        title = policy.title(system, language)  # from the system's declaration
        parts.append(f"<h2>{html.escape(title)}</h2>")
        rules = policy.systems.get(system)
        if rules is not None:
            parts.append(f"<p><b>{esc(say['basis'])}:</b> {esc(rules.legal_basis)}</p>")
            if rules.retention_years is not None:
                text = say["retention_text"].format(years=rules.retention_years,
                                                    basis=rules.retention_basis or "")
                parts.append(f"<p><b>{esc(say['retention'])}:</b> {esc(text)}</p>")
        kept = retained.get(system, [])
        for item in kept:
            after = (say["after"].format(id=item["request_id"])
                     if item.get("request_id") else "")
            text = say["kept_text"].format(record=item.get("record_id", ""),
                                           basis=item.get("legal_basis") or "",
                                           until=item.get("retained_until") or "", after=after)
            parts.append(f"<p><b>{esc(say['kept'])}:</b> {esc(text)}</p>")
        if not any(section.items for section in export.sections):
            parts.append(f"<p>{esc(say['nothing_else'] if kept else say['nothing'])}</p>")
        for section in export.sections:
            if not section.items:
                continue
            parts.append(f"<h3>{esc(section.title(language))}</h3>"
                         f"<p><small>{esc(say['source'])}: {esc(section.source)}</small></p>")
            flagged = categories.in_items(section.items)
            if flagged:
                parts.append(f"<p><b>{esc(say['special'].format(names=', '.join(flagged)))}"
                             "</b></p>")
            for item in section.items:
                rows = "".join(
                    f"<tr><th title='{esc(str(k))}'>{esc(labels.field(str(k), language))}</th>"
                    f"<td>{_cell(v)}</td></tr>" for k, v in item.items())
                parts.append(f"<table>{rows}</table>")
    parts.append(f"<p>{esc(say['complaint'])}</p></html>")
    return "\n".join(parts)


def write_bundle(root: Path, request_id: str, exports: Sequence[Export], policy: Policy, *,
                 retained: dict[str, list[dict[str, Any]]] | None = None,
                 now: datetime | None = None, language: str = "en") -> Bundle:
    """Write the bundle; rewriting it (a re-run) replaces the files, never appends.

    `index.html` is in the subject's ``language``; the JSON and CSVs keep the vendors'
    field names, as the portable copy."""
    created = now or datetime.now(UTC)
    folder = root / request_id
    private_folder(folder)
    data = {
        "request_id": request_id,
        "created_at": created.isoformat(),
        "systems": {
            e.system: {
                "sections": [{"label": s.label, "titles": dict(s.titles), "source": s.source,
                              "items": list(s.items),
                              "special_categories": list(categories.in_items(s.items))}
                             for s in e.sections],
            }
            for e in exports
        },
        "retained": retained or {},
    }
    files = {"data.json": json.dumps(data, default=_json_default, ensure_ascii=False, indent=2)}
    for export in exports:
        files[f"{export.system}.csv"] = _csv_text(export)
    files["index.html"] = _html(request_id, created, exports, policy, retained or {}, language)
    for stale in folder.iterdir():
        if stale.name not in files:
            stale.unlink()
    digest = hashlib.sha256()
    for name in sorted(files):
        _private_write(folder / name, files[name])
        digest.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return Bundle(folder, tuple(sorted(files)), digest.hexdigest())


# ------------------------------------------------------------------- parts, requests


def parts_dir(home: Path, request_id: str) -> Path:
    """Where a request's systems leave their export parts until the bundle is written."""
    return home / EXPORTS / PARTS / request_id


def write_part(path: Path, export: Export) -> str:
    """Write one system's export part, owner-only; return its sha256.

    The caller records the digest in the task's evidence: only a part whose digest a
    finished task recorded is bundled (`bundle_request`)."""
    private_folder(path.parent)
    data = {"system": export.system, "sections": [
        {"label": s.label, "source": s.source, "items": list(s.items),
         "titles": dict(s.titles)} for s in export.sections]}
    body = json.dumps(data, ensure_ascii=False, default=str).encode("utf-8")
    private_file(path, body)
    return hashlib.sha256(body).hexdigest()


def _recorded_digests(session: Session, request_id: str) -> dict[str, str]:
    """{system: part digest} of the request's finished tasks."""
    out = {}
    for task in ledger.tasks_of(session, request_id):
        digest = ((task.evidence or {}).get("vendor") or {}).get(PART_DIGEST)
        if TaskState(task.state) in FINISHED_TASK_STATES and digest:
            out[task.system] = digest
    return out


def finished_parts(session: Session, home: Path, request_id: str) -> list[Export]:
    """The parts a finished task vouches for; any other part is deleted, not bundled.

    A part whose digest no finished task recorded was left by a run that did not
    finish (or was overwritten since): it may be stale, or someone else's, and is
    never sent. A part of a system that finished in an earlier run of the same
    request still matches its task and is kept."""
    folder = parts_dir(home, request_id)
    recorded = _recorded_digests(session, request_id)
    exports, dropped = [], []
    for part in sorted(folder.glob("*.json")) if folder.exists() else []:
        body = part.read_bytes()
        if recorded.get(part.stem) != hashlib.sha256(body).hexdigest():
            part.unlink()
            dropped.append(part.stem)
            continue
        data = json.loads(body)
        exports.append(Export(data["system"], tuple(
            ExportSection(s["label"], s["source"], tuple(s["items"]), s.get("titles") or {})
            for s in data["sections"]
        )))
    if dropped:
        audit.append(session, "export.part_discarded", {"systems": dropped},
                     request_id=request_id)
    return exports


def _retained_of_subject(session: Session, request_id: str, today: date
                         ) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for hold in holds.holds_of_subject(session, request_id, today):
        out.setdefault(hold.system, []).append({
            "record_id": hold.record_id, "legal_basis": hold.legal_basis,
            "retained_until": hold.held_until.isoformat(), "request_id": hold.request_id})
    return out


def bundle_request(session: Session, home: Path, request_id: str, policy: Policy, *,
                   today: date | None = None, now: datetime | None = None) -> Bundle:
    """Write an access request's bundle from its vouched-for parts and the subject's
    running holds, audit its checksum, and remove the parts."""
    now = now or datetime.now(UTC)
    today = today or now.astimezone(ZoneInfo("Europe/Helsinki")).date()
    exports = finished_parts(session, home, request_id)
    bundle = write_bundle(home / EXPORTS, request_id, exports, policy,
                          retained=_retained_of_subject(session, request_id, today), now=now,
                          language=ledger.get_request(session, request_id).language)
    audit.append(session, "export.written", {"sha256": bundle.sha256,
                                             "files": list(bundle.files)},
                 request_id=request_id, now=now)
    folder = parts_dir(home, request_id)
    if folder.exists():
        shutil.rmtree(folder)
    return bundle


def _access_requests_of_subject(session: Session, request_id: str) -> list[str]:
    """Access requests sharing an identifier hash with `request_id` (itself excluded)."""
    mine = select(RequestIdentifierRow.hash).where(
        RequestIdentifierRow.request_id == request_id)
    query = (select(SubjectRequestRow.id).distinct()
             .join(RequestIdentifierRow, RequestIdentifierRow.request_id == SubjectRequestRow.id)
             .where(RequestIdentifierRow.hash.in_(mine),
                    SubjectRequestRow.kind == RequestKind.ACCESS.value,
                    SubjectRequestRow.id != request_id)
             .order_by(SubjectRequestRow.id))
    return list(session.execute(query).scalars())


def erase_bundles(session: Session, home: Path, request_id: str, *,
                  now: datetime | None = None) -> list[str]:
    """Delete the hub's own access bundles (and leftover parts) of the subject of the
    erasure `request_id`; return the access request ids whose files were removed.

    The bundles are copies of everything the vendors held: they must not outlive the
    erasure (DESIGN.md rule 6). The subject is recognised by identifier hash, as the
    plaintext of earlier requests is long gone. The audit event names request ids
    only; running it again finds nothing left and records nothing."""
    removed = []
    for access_id in _access_requests_of_subject(session, request_id):
        found = False
        for folder in (home / EXPORTS / access_id, parts_dir(home, access_id)):
            if folder.is_dir():
                shutil.rmtree(folder)
                found = True
        if found:
            removed.append(access_id)
    if removed:
        audit.append(session, "export.erased", {"access_requests": removed},
                     request_id=request_id, now=now)
    return removed
