"""DESIGN.md rule 7 end to end: after real runs, nothing Dagster stored names the subject.

Reconciliation, an erasure (Aino Virtanen: in all four systems, with an open invoice)
and an access request (Mikko Häkkinen) run on a real instance under a temporary
DAGSTER_HOME: SQLite run and event-log storage, filesystem compute logs, the default
filesystem I/O manager and, for the requests, the multiprocess executor. Then this is
searched for their e-mail, phone and name, in every form those are written in:

- every file under DAGSTER_HOME as raw bytes (gzip opened), which covers the SQLite
  databases, the captured stdout/stderr and the I/O manager's pickles;
- every row of every table of those SQLite databases, decoded (zlib blobs such as
  Dagster's snapshots inflated, JSON un-escaped);
- every run and every event read back through the instance;
- the hub's Python logs: this process's at DEBUG (caplog), and the step processes',
  which the instance's managed loggers put into the (scanned) event log;
- every file under HUB_HOME except the access request's owner-only bundle.

The erasure first fails in Netvisor and is re-executed from the failure, so failure
events, retries and re-execution are scanned too, not only the happy path.

The scan is proven able to fail: it must find each form in planted data; find Aino in
the hub's index before her erasure and Mikko in his export bundle; and find a canary
person written on purpose into the real event log, this process's log and HUB_HOME.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import sqlite3
import stat
import zlib
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import yaml
from dagster import instance_for_test, materialize, serialize_value

from hub import ledger
from hub.domain import Identifier, IdentifierKind
from hub.ledger import RequestKind, RequestState
from pipelines.launch import REPO_DAGSTER_YAML, run_request
from pipelines.reconciliation import SYNC_ASSETS, person_index
from sandbox.people import Person, ascii_fold, generate_people
from tests.pipelines.jobs import operator_decides, state

pytestmark = pytest.mark.slow  # end to end through real processes: scheduled first

SQLITE_MAGIC = b"SQLite format 3\x00"
GZIP_MAGIC = b"\x1f\x8b"
CONTEXT = 60  # bytes shown either side of a hit, with every needle in them masked


# -- the scanner --------------------------------------------------------------------------


def forms_of(person: Person) -> dict[str, str]:
    """Label → text: the ways `person`'s e-mail, phone and name get written down."""
    email = person.email.lower()
    subscriber = person.phone[4:]  # "+358401234567" -> "401234567"
    national = f"0{subscriber}"
    first, last = person.first_name, person.last_name
    forms = {
        "e-mail": email,
        "e-mail, URL-encoded": quote(email, safe=""),
        "e-mail local part": email.partition("@")[0],
        "phone, E.164": person.phone,
        "phone, URL-encoded": quote(person.phone, safe=""),
        "phone, digits only": person.phone.lstrip("+"),
        "phone, national": national,
        "phone, national spaced": f"{national[:3]} {national[3:6]} {national[6:]}",
        "phone, international spaced": f"+358 {subscriber[:2]} {subscriber[2:]}",
        "full name": f"{first} {last}",
        "full name, reversed": f"{last} {first}",
        "last name": last,
    }
    seen = {text.lower() for text in forms.values()}
    for label in ("full name", "full name, reversed", "last name"):
        for case, text in (("", forms[label]), (", upper case", forms[label].upper())):
            variants = {
                "JSON-escaped": json.dumps(text)[1:-1],  # how json.dumps writes "ä"
                "URL-encoded": quote(text),
                "ASCII-folded": " ".join(ascii_fold(word) for word in text.split()),
            }
            for how, variant in variants.items():
                if variant.lower() not in seen:
                    seen.add(variant.lower())
                    forms[f"{label}, {how}{case}"] = variant
    return forms


@dataclass(frozen=True)
class Hit:
    where: str
    label: str
    context: str

    def __str__(self) -> str:
        return f"{self.where}: {self.label}: …{self.context}…"


@dataclass
class Scanner:
    """Case-insensitive search of bytes for every form of every subject's data."""

    subjects: list[Person]
    hits: list[Hit] = field(default_factory=list)
    scanned: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.labels: dict[bytes, str] = {}
        for person in self.subjects:
            for label, text in forms_of(person).items():
                self.labels.setdefault(text.lower().encode(), f"{person.first_name}: {label}")
        # Longest first, so a whole e-mail is reported as such, not as its local part.
        alternatives = sorted(self.labels, key=len, reverse=True)
        self.pattern = re.compile(b"|".join(re.escape(a) for a in alternatives))

    def bytes(self, data: bytes, where: str) -> list[Hit]:
        # Lower case beyond ASCII ("HÄKKINEN"); undecodable bytes pass through unchanged.
        data = data.decode("utf-8", "surrogateescape").lower().encode("utf-8", "surrogateescape")
        masked, spans, last = bytearray(), [], 0
        for match in self.pattern.finditer(data):
            label = self.labels[match.group()]
            masked += data[last:match.start()]
            spans.append((len(masked), label))
            masked += f"<{label}>".encode()
            last = match.end()
        masked += data[last:]
        found = [Hit(where, label, _printable(masked[max(0, at - CONTEXT):at + CONTEXT * 2]))
                 for at, label in spans]
        self.hits.extend(found)
        return found

    def text(self, value: str, where: str) -> list[Hit]:
        found = self.bytes(value.encode("utf-8", errors="surrogatepass"), where)
        stripped = value.lstrip()
        if stripped[:1] in ("{", "[", '"'):
            try:
                plain = json.dumps(json.loads(value), ensure_ascii=False)
            except ValueError:
                pass
            else:
                if plain != value:
                    found += self.bytes(plain.encode("utf-8", errors="surrogatepass"),
                                        f"{where} (JSON decoded)")
        return found

    def value(self, value: object, where: str) -> list[Hit]:
        if isinstance(value, str):
            return self.text(value, where)
        if isinstance(value, bytes | memoryview):
            data = bytes(value)
            found = self.bytes(data, where)
            try:
                inflated = zlib.decompress(data)
            except zlib.error:
                return found
            self.scanned["zlib values inflated"] += 1
            return found + self.text(inflated.decode("utf-8", errors="replace"),
                                     f"{where} (zlib)")
        return []

    def sqlite(self, path: Path, where: str) -> list[Hit]:
        """Every cell of every table, read through SQLite itself.

        Never copy or read a database file that a connection in this process has open:
        closing that file descriptor drops the connection's POSIX locks (the hub's
        store is open here), which corrupts the database.
        """
        found: list[Hit] = []
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        connection.text_factory = bytes  # raw bytes, whatever the encoding
        try:
            tables = [name.decode() for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                cursor = connection.execute(f'SELECT * FROM "{table}"')  # noqa: S608
                columns = [d[0] for d in cursor.description]
                for row in cursor:
                    self.scanned["sqlite rows"] += 1
                    self.scanned[f"sqlite rows: {table}"] += 1
                    for column, cell in zip(columns, row, strict=True):
                        if isinstance(cell, bytes):
                            cell = _text_or_bytes(cell)
                        found += self.value(cell, f"{where} [{table}.{column}]")
        finally:
            connection.close()
        return found

    def tree(self, root: Path, kinds: dict[str, str] | None = None,
             skip: Path | None = None) -> list[Hit]:
        """Every file under root as bytes; SQLite databases also row by row."""
        found: list[Hit] = []
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if skip is not None and path.is_relative_to(skip):
                continue
            where = f"{root.name}/{path.relative_to(root)}"
            data = path.read_bytes()
            self.scanned["files"] += 1
            self.scanned["bytes"] += len(data)
            self.scanned[f"files: {_kind(path, data, kinds or {})}"] += 1
            found += self.bytes(data, where)
            if data.startswith(GZIP_MAGIC):
                found += self.bytes(gzip.decompress(data), f"{where} (gunzipped)")
            if data.startswith(SQLITE_MAGIC):
                found += self.sqlite(path, where)
        return found


def _printable(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    return "".join(c if c.isprintable() else "." for c in text)


def _text_or_bytes(cell: bytes) -> str | bytes:
    try:
        return cell.decode("utf-8")
    except UnicodeDecodeError:
        return cell


def _kind(path: Path, data: bytes, kinds: dict[str, str]) -> str:
    if data.startswith(SQLITE_MAGIC):
        return "SQLite database"
    for part, kind in kinds.items():
        if part in path.parts or path.suffix == part:
            return kind
    return "other"


DAGSTER_KINDS = {"compute_logs": "compute log", ".out": "compute log", ".err": "compute log",
                 ".complete": "compute log", "result": "I/O manager output"}


# -- the test ---------------------------------------------------------------------------


def test_the_scanner_finds_every_form_and_not_the_masked_ones(tmp_path):
    aino, mikko = generate_people(4)[:2]
    planted = tmp_path / "planted"
    planted.mkdir()
    every_form = " | ".join(t.upper() for t in forms_of(aino).values())
    (planted / "forms.txt").write_text(f"start | {every_form} | end", "utf-8")
    (planted / "masked.txt").write_text("a***@example.fi +358*******67 A*** V***", "utf-8")
    db = sqlite3.connect(planted / "events.db")
    db.execute("CREATE TABLE event_logs (id INTEGER PRIMARY KEY, event TEXT, body BLOB)")
    db.execute("INSERT INTO event_logs (event, body) VALUES (?, ?)", (
        json.dumps({"message": "MIKKO HÄKKINEN"}),  # stored \u-escaped
        zlib.compress(b'{"phone": "050 111 2233"}')))
    db.commit()
    db.close()
    (planted / "result").write_bytes(gzip.compress(b"mikko.hakkinen%40example.fi"))

    scan = Scanner([aino, mikko])
    scan.tree(planted)

    found = {hit.label for hit in scan.hits}
    assert {f"Aino: {label}" for label in forms_of(aino)} <= found
    assert "Mikko: full name" in found  # only once the row's JSON is decoded
    assert "Mikko: full name, JSON-escaped, upper case" in found
    assert "Mikko: phone, national spaced" in found  # only once the blob is inflated
    assert "Mikko: e-mail, URL-encoded" in found  # only once the file is gunzipped
    assert not [h for h in scan.hits if "masked.txt" in h.where]
    assert all("virtanen" not in h.context.lower() and "401234567" not in h.context
               for h in scan.hits)  # the report masks what it found


def file_request(store, kind: RequestKind, person: Person) -> str:
    with store.session() as session:
        row = ledger.create_request(session, store.hasher, kind, [
            Identifier(IdentifierKind.EMAIL, person.email),
            Identifier(IdentifierKind.PHONE, person.phone),
        ], name=person.name)
        ledger.verify(session, row.id)
        return row.id


def at_vendors(vendors, person: Person) -> dict[str, list]:
    return {system: httpx.get(f"{url}/__sandbox/find", params={"email": person.email},
                              timeout=10).json()["records"]
            for system, url in vendors.urls.items()}


def instance_config(home: Path) -> dict:
    """The repository's instance settings, with compute logs and every hub log kept."""
    config = yaml.safe_load(REPO_DAGSTER_YAML.read_text("utf-8")) or {}
    config["compute_logs"] = {
        "module": "dagster._core.storage.local_compute_log_manager",
        "class": "LocalComputeLogManager",
        "config": {"base_dir": str(home / "storage")},
    }
    # Whatever the hub's own code logs in a step process, at any level, goes into the
    # event log, which is scanned; so do httpx's request lines, whose lookup URLs
    # carry the e-mail or phone searched for unless connectors/http.py scrubs them.
    config["python_logs"] = {**config.get("python_logs", {}), "python_log_level": "DEBUG",
                             "managed_python_loggers": ["hub", "connectors", "pipelines",
                                                        "httpx"]}
    return config


def settle(store, request_id: str, kind: str, instance) -> None:
    """While the request waits for an operator, decide and run its next round."""
    for _ in range(3):
        if state(store, request_id) != RequestState.AWAITING_REVIEW:
            return
        operator_decides(store, request_id)
        assert run_request(request_id, kind, instance).success


def test_nothing_dagster_or_the_hub_logs_kept_names_the_subjects(
        vendors, resources, hub_store, hub_db, tmp_path, monkeypatch, caplog):
    aino, mikko = vendors.people[0], vendors.people[1]
    assert (aino.first_name, aino.last_name, mikko.last_name) == (
        "Aino", "Virtanen", "Häkkinen")
    # Not a sandbox person: written on purpose where the scan must find it.
    canary = replace(aino, idx=-1, first_name="Kanarialintu", last_name="Testaaja",
                     email="kanarialintu.testaaja@example.invalid", phone="+358409999999")
    planted = f"rule 7 canary: {canary.name} <{canary.email}> {canary.phone}"
    before = at_vendors(vendors, aino)
    assert all(before[system] for system in ("pipedrive", "mailchimp", "typeform", "netvisor"))
    hub_home = tmp_path / "home"
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    monkeypatch.setenv("HUB_DATABASE_URL", hub_db)  # the step processes read these
    monkeypatch.setenv("HUB_HOME", str(hub_home))
    scan = Scanner([aino, mikko, canary])
    hub_db_file = Path(hub_db.removeprefix("sqlite:///"))

    with instance_for_test(overrides=instance_config(dagster_home),
                           temp_dir=str(dagster_home)) as instance:
        with caplog.at_level(logging.DEBUG):
            assert materialize([*SYNC_ASSETS, person_index], resources=resources,
                               instance=instance).success
            # Positive control: the index holds her identifiers and name (rule 6).
            control = Scanner([aino, mikko]).sqlite(hub_db_file, "hub.db")
            in_index = {h.label for h in control}
            assert {"Aino: e-mail", "Aino: full name"} <= in_index, in_index

            # The erasure fails first in Netvisor (whose lookup URL carries the e-mail), so
            # the scan covers failure events, retries and re-execution, not only success.
            erasure = file_request(hub_store, RequestKind.ERASURE, aino)
            netvisor = vendors.urls["netvisor"]
            httpx.put(f"{netvisor}/__sandbox/faults", json={"error_rate": 1.0}, timeout=10)
            try:
                assert not run_request(erasure, "erasure", instance).success
            finally:
                httpx.put(f"{netvisor}/__sandbox/faults", json={"error_rate": 0}, timeout=10)
            assert run_request(erasure, "erasure", instance).success  # from the failure
            settle(hub_store, erasure, "erasure", instance)  # review rounds are runs too
            access = file_request(hub_store, RequestKind.ACCESS, mikko)
            assert run_request(access, "access", instance).success
            settle(hub_store, access, "access", instance)
            logging.getLogger("hub.canary").debug(planted)
            logged = list(caplog.records)
        instance.report_engine_event(planted, instance.get_runs()[-1])  # the oldest run
        (hub_home / "logs").mkdir()
        (hub_home / "logs" / "canary.log").write_text(planted, "utf-8")

        with hub_store.session() as session:
            states = {t.system: t.state for t in ledger.tasks_of(session, erasure)}
        assert states == {"pipedrive": "done", "mailchimp": "done", "typeform": "done",
                          "netvisor": "retained"}

        assert {"hub", "connectors", "pipelines", "httpx"} <= set(
            instance.managed_python_loggers)
        runs = instance.get_runs()
        # reconciliation, erasure, its re-execution, access, and their review rounds
        assert len(runs) >= 4
        for run in runs:
            scan.text(serialize_value(run), f"run {run.run_id[:8]} (instance API)")
            for event in instance.all_logs(run.run_id):
                kind = event.dagster_event_type.value if event.is_dagster_event else "log"
                scan.text(serialize_value(event),
                          f"run {run.run_id[:8]} {run.job_name} {kind} (instance API)")
                scan.scanned["events (instance API)"] += 1
                scan.scanned[f"events (instance API): {kind}"] += 1
    # Only once the instance is closed: its SQLite files are read as plain files here.
    scan.tree(dagster_home, DAGSTER_KINDS)

    for record in logged:
        scan.text(record.getMessage() + (record.exc_text or ""),
                  f"log record {record.name}:{record.levelname}")
    scan.scanned["log records (this process)"] = len(logged)
    assert any(r.levelno == logging.DEBUG for r in logged)  # captured at DEBUG

    bundle = hub_home / "exports" / access
    assert not (hub_home / "exports" / ".parts").exists() or not any(
        (hub_home / "exports" / ".parts").iterdir())
    scan.tree(hub_home, skip=bundle)
    leaks = [hit for hit in scan.hits if not hit.label.startswith(canary.first_name)]
    caught = {hit.where for hit in scan.hits if hit.label.startswith(canary.first_name)}
    summary = dict(sorted(scan.scanned.items()))
    print(f"scanned: {json.dumps(summary, indent=1)}")

    # Positive control: the canary is found in each kind of place it was written to.
    assert any(w.endswith("ENGINE_EVENT (instance API)") for w in caught), caught
    assert any(w.endswith("[event_logs.event]") for w in caught), caught  # decoded row
    assert any(w.startswith("dagster/history/runs/") and w.endswith(".db")
               for w in caught), caught  # the raw database file
    assert "log record hub.canary:DEBUG" in caught, caught
    assert "home/logs/canary.log" in caught, caught

    # Positive control: the export went to the owner-only bundle, where the scan finds it.
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o700
    in_bundle = {h.label for h in Scanner([aino, mikko]).tree(bundle)}
    assert {"Mikko: e-mail", "Mikko: full name", "Mikko: phone, E.164"} <= in_bundle, in_bundle
    assert not [label for label in in_bundle if label.startswith("Aino")]

    # The scan covered what the issue names: runs, event logs, compute logs, outputs.
    assert summary["sqlite rows: event_logs"] > 0 and summary["sqlite rows: runs"] == len(runs)
    assert summary["events (instance API): STEP_FAILURE"] > 0
    assert summary["events (instance API): STEP_UP_FOR_RETRY"] > 0
    assert summary["files: compute log"] > 0
    assert summary["files: I/O manager output"] >= 2 * (1 + 4 + 1)  # plan, systems, complete
    assert summary["events (instance API)"] > 0
    after = at_vendors(vendors, aino)
    assert after["mailchimp"] == [] and after["typeform"] == []

    assert not leaks, "personal data left in Dagster or the hub's logs:\n" + "\n".join(
        str(hit) for hit in leaks)
