"""`make demo`: the hub's main job, end to end, on emulated vendors.

Runs in sandbox mode on its own database under `.hub/demo/`, so it never touches
a real deployment's data. What it runs grows with the project: today the person
index and the request ledger; the fan-out through Dagster joins it next.
"""

from __future__ import annotations

import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from faker import Faker

from hub import audit, index, ledger
from hub.domain import Identifier, IdentifierKind, SourceRecord
from hub.identity import mask_email
from hub.ledger import RequestKind
from hub.settings import Mode, Settings
from hub.store import open_store

HOME = Path(".hub/demo")


def step(text: str) -> None:
    print(f"==> {text}", flush=True)


def synthetic_records(seed: int = 42, people: int = 200) -> dict[str, list[SourceRecord]]:
    """Finnish people spread over the four systems, written each system's way."""
    fake = Faker("fi_FI")
    fake.seed_instance(seed)
    systems: dict[str, list[SourceRecord]] = {
        "pipedrive": [], "mailchimp": [], "typeform": [], "netvisor": []}
    for i in range(people):
        first, last = fake.first_name(), fake.last_name()
        email = f"{first}.{last}.{i}@example.fi".lower()
        phone = f"+35840{fake.random_number(digits=7, fix_len=True)}"
        for n, (system, records) in enumerate(systems.items()):
            if (i + n) % 3 == 0 and n:
                continue
            shown_email = email.title() if system == "pipedrive" else email
            shown_phone = f"0{phone[4:6]} {phone[6:9]} {phone[9:]}" if n % 2 else phone
            records.append(SourceRecord(system, f"{system}-{i}", (shown_email,), (shown_phone,),
                                        f"{first} {last}", datetime.now(UTC)))
    return systems


def main() -> int:
    shutil.rmtree(HOME, ignore_errors=True)
    settings = Settings(_env_file=None, mode=Mode.SANDBOX, home=HOME)
    store = open_store(settings)
    step("indexing synthetic people from four systems")
    data = synthetic_records()
    with store.session() as session:
        for system, records in data.items():
            writer = index.IndexWriter(session, system, full=True)
            writer.add(records)
            stats = writer.finish()
            print(f"    {system:<10} {stats.new:>4} records")
        clusters = index.recluster(session)
        print(f"    {clusters.records} records form {clusters.persons} persons")
        subject = data["pipedrive"][0]
        email = subject.emails[0].lower()
        person = index.lookup(session, Identifier(IdentifierKind.EMAIL, email))
        held = index.records_of(session, person) if person else {}
        print(f"    {mask_email(email)} is {person}, held in: {', '.join(sorted(held))}")

    step("filing an access, an opt-out and an erasure request")
    with store.session() as session:
        ids = []
        for kind in (RequestKind.ACCESS, RequestKind.OPT_OUT, RequestKind.ERASURE):
            row = ledger.create_request(session, store.hasher, kind,
                                        [Identifier(IdentifierKind.EMAIL, email)])
            ledger.verify(session, row.id)
            ids.append(row.id)
            print(f"    {row.id}  {kind.value:<8} due {row.due_on}  (verified)")
        ledger.extend(session, ids[2], "erasure spans four systems and a legal hold", months=2)
        print(f"    {ids[2]} extended to {ledger.get_request(session, ids[2]).extended_due_on}")

    step("checking the audit trail")
    with store.session() as session:
        report = audit.verify(session)
    print(f"    {'intact' if report.ok else 'BROKEN'}: {report.events} events")
    print("\nTo act in the emulated vendors: `hub sandbox serve` in one terminal, then "
          "`hub request new ...`, `hub request verify ID`, `hub request run ID` in another.\n"
          f"This run's database is {settings.resolved_database_url}")
    store.close()
    return 0 if report.ok and person else 1


if __name__ == "__main__":
    sys.exit(main())
