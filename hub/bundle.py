"""The access-export bundle (GDPR art. 15 and 20): one folder per request.

`data.json` is the portable, machine-readable copy; one CSV per system serves
people who open data in a spreadsheet; `index.html` is the letter-quality view
the subject reads: system by system, what is held, where it came from, on what
legal basis and for how long, and what is retained and why. Only the owner can
read the files, and the bundle's checksum goes into the audit trail so the copy
sent can later be proven to be the copy made.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import Any

from hub.domain import Export
from hub.policy import Policy

SYSTEM_TITLES = {
    "pipedrive": "Pipedrive (customer relationship management)",
    "mailchimp": "Mailchimp (mailing lists)",
    "typeform": "Typeform (surveys and forms)",
    "netvisor": "Visma Netvisor (accounting)",
}


@dataclass(frozen=True)
class Bundle:
    path: Path
    files: tuple[str, ...]
    sha256: str


def _json_default(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _private_write(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


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
          retained: dict[str, list[dict[str, Any]]]) -> str:
    parts = [
        "<!doctype html><html lang='en'><meta charset='utf-8'>",
        f"<title>Your data: request {html.escape(request_id)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #999;"
        "padding:.2em .5em;text-align:left;vertical-align:top}pre{margin:0}</style>",
        f"<h1>The data we hold about you</h1><p>Request {html.escape(request_id)}, "
        f"gathered {created:%Y-%m-%d %H:%M} UTC directly from each system.</p>",
    ]
    for export in exports:
        system = export.system
        title = SYSTEM_TITLES.get(system, system)
        parts.append(f"<h2>{html.escape(title)}</h2>")
        rules = policy.systems.get(system)
        if rules is not None:
            parts.append(f"<p><b>Legal basis:</b> {html.escape(rules.legal_basis)}</p>")
            if rules.retention_years is not None:
                parts.append(
                    f"<p><b>Retention:</b> {rules.retention_years} years after the end of the "
                    f"year of the last entry ({html.escape(rules.retention_basis or '')})</p>"
                )
        for item in retained.get(system, []):
            parts.append(
                f"<p><b>Retained:</b> {html.escape(item.get('record_id', ''))} is kept under "
                f"{html.escape(item.get('legal_basis') or '')} until "
                f"{html.escape(item.get('retained_until') or '')}.</p>"
            )
        if not any(section.items for section in export.sections):
            parts.append("<p>Nothing about you is held in this system.</p>")
        for section in export.sections:
            if not section.items:
                continue
            parts.append(f"<h3>{html.escape(section.label)}</h3>"
                         f"<p><small>source: {html.escape(section.source)}</small></p>")
            for item in section.items:
                rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_cell(v)}</td></tr>"
                               for k, v in item.items())
                parts.append(f"<table>{rows}</table>")
    parts.append("<p>You may complain to the Data Protection Ombudsman "
                 "(Tietosuojavaltuutetun toimisto, tietosuoja.fi).</p></html>")
    return "\n".join(parts)


def write_bundle(root: Path, request_id: str, exports: Sequence[Export], policy: Policy, *,
                 retained: dict[str, list[dict[str, Any]]] | None = None,
                 now: datetime | None = None) -> Bundle:
    """Write the bundle; rewriting it (a re-run) replaces the files, never appends."""
    created = now or datetime.now(UTC)
    folder = root / request_id
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)
    data = {
        "request_id": request_id,
        "created_at": created.isoformat(),
        "systems": {
            e.system: {
                "sections": [{"label": s.label, "source": s.source, "items": list(s.items)}
                             for s in e.sections],
            }
            for e in exports
        },
        "retained": retained or {},
    }
    files = {"data.json": json.dumps(data, default=_json_default, ensure_ascii=False, indent=2)}
    for export in exports:
        files[f"{export.system}.csv"] = _csv_text(export)
    files["index.html"] = _html(request_id, created, exports, policy, retained or {})
    for stale in folder.iterdir():
        if stale.name not in files:
            stale.unlink()
    digest = hashlib.sha256()
    for name in sorted(files):
        _private_write(folder / name, files[name])
        digest.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return Bundle(folder, tuple(sorted(files)), digest.hexdigest())
