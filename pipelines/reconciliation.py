"""Nightly reconciliation: one sync asset per system, then the person index.

Sync is data, so it is assets (DESIGN.md, Dagster shape). No `from __future__ import
annotations` here: Dagster reads the annotations at definition time. Each system's asset
shares its concurrency pool with that system's request ops, so a nightly sync
and an erasure never overrun a vendor's rate limit together.
"""


import time
from datetime import UTC, datetime

from dagster import (
    AssetExecutionContext,
    Backoff,
    Config,
    Jitter,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
)

from connectors import registry
from connectors.bulk import bulk_reading
from hub import drift, index
from hub.deadlines import local_date
from hub.ledger import RequestKind
from pipelines.resources import ConnectorsResource, HubResource

# The declared systems (connectors/registry.py), read once when the code location loads:
# each gets its sync asset here and its request op in pipelines/requests.py.
SYSTEMS = registry.names()
GROUP = "reconciliation"

SYNC_RETRY = RetryPolicy(max_retries=2, delay=30, backoff=Backoff.EXPONENTIAL,
                         jitter=Jitter.PLUS_MINUS)


class SyncConfig(Config):
    full: bool = False
    """Re-read everything (and mark what is missing as gone) instead of resuming."""


def asset_name(system: str) -> str:
    return f"{system}_people"


def make_sync_asset(system: str):  # noqa: ANN201 - a Dagster asset definition
    @asset(name=asset_name(system), group_name=GROUP, pool=system, retry_policy=SYNC_RETRY,
           kinds={"python", system},
           description=f"Everyone {system} holds, as identifiers and pointers in the index.")
    def sync_system(context: AssetExecutionContext, config: SyncConfig, hub: HubResource,
                    connectors: ConnectorsResource) -> MaterializeResult:
        started = time.monotonic()
        with hub.store() as store, connectors.connect(system) as connector, \
                store.session() as session, bulk_reading():
            cursor = None if config.full else index.sync_cursor(session, system)
            writer = index.IndexWriter(session, system, full=cursor is None)
            last = cursor
            for page in connector.sync(cursor):
                writer.add(page.records)
                if page.gone:
                    writer.mark_gone(page.gone)
                last = page.cursor or last
            stats = writer.finish(last)
            calls = connector.api_calls
        context.log.info(f"{system}: {stats.seen} seen, {stats.new} new, "
                         f"{stats.changed} changed, {stats.gone} gone")
        return MaterializeResult(metadata={
            "mode": "full" if cursor is None else "incremental",
            "records_seen": stats.seen, "new": stats.new, "changed": stats.changed,
            "gone": stats.gone, "api_calls": calls,
            "duration_s": round(time.monotonic() - started, 2),
        })

    return sync_system


SYNC_ASSETS = [make_sync_asset(system) for system in SYSTEMS]


@asset(group_name=GROUP, deps=[asset_name(s) for s in SYSTEMS], kinds={"python"},
       description="People as clusters of records sharing an e-mail or phone; stable ids.")
def person_index(context: AssetExecutionContext, hub: HubResource) -> MaterializeResult:
    started = time.monotonic()
    with hub.store() as store, store.session() as session:
        stats = index.recluster(session)
    context.log.info(f"re-clustered {stats.records} records: {stats.merges} merges, "
                     f"{stats.splits} splits")
    return MaterializeResult(metadata={
        "records_reclustered": stats.records, "persons_touched": stats.persons,
        "new_persons": stats.new_persons, "merges": stats.merges, "splits": stats.splits,
        "retired": stats.retired, "duration_s": round(time.monotonic() - started, 2),
    })


def _filings_table(filings: list) -> str:
    lines = ["| request | kind | systems | filed |", "|---|---|---|---|"]
    lines += [f"| {f.request_id} | {f.kind.value} | {', '.join(f.systems)} | "
              f"{'now' if f.new else 'already waiting'} |" for f in filings]
    return "\n".join(lines)


@asset(group_name=GROUP, deps=[person_index], kinds={"python"},
       description="Drift acted on: erased people found again get a new erasure request, "
                   "opted-out people subscribed again a new opt-out, both verified for the "
                   "sensor to run.")
def person_drift(context: AssetExecutionContext, hub: HubResource) -> MaterializeResult:
    with hub.store() as store, store.session() as session:
        today = local_date(datetime.now(UTC), store.settings.timezone)
        found = drift.find(session, store.hasher, today)
        filings = drift.act(session, store.hasher, found, timezone=store.settings.timezone)
    new = [f.request_id for f in filings if f.new]
    if filings:
        context.log.warning(f"drift: {len(found.reappeared)} identifiers of erased people, "
                            f"{len(found.resubscribed)} of opted-out people subscribed; "
                            f"requests filed: {', '.join(new) or 'none (already waiting)'}")
    return MaterializeResult(metadata={
        "reappeared_records": sum(found.per_system(RequestKind.ERASURE).values()),
        "resubscribed_records": sum(found.per_system(RequestKind.OPT_OUT).values()),
        "requests_filed": len(new),
        "requests": MetadataValue.md(_filings_table(filings)),
    })
