"""The retention sweep: who the policy's retention rule makes due, as an asset.

A dry run unless the policy's ``[retention]`` says ``file_requests = true``; then
it files verified erasure requests (origin ``retention``) that the
``verified_requests`` sensor runs like any other. Its metadata holds counts,
masked identifiers and request ids only (rule 7). No `from __future__ import
annotations` here: Dagster reads the annotations at definition time.
"""

from datetime import UTC, datetime

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from hub import retention
from pipelines.reconciliation import person_index
from pipelines.resources import HubResource

GROUP = "retention"
# The list in the UI; the counts are always whole.
SHOWN = 200


def due_table(sweep: retention.Sweep) -> str:
    """Markdown: one row per person or record due, masked, with what filing did."""
    filed = {id(f.due): f for f in sweep.filings}
    lines = ["| reason | since | who | request |", "|---|---|---|---|"]
    for item in sweep.due[:SHOWN]:
        filing = filed.get(id(item))
        request = ("-" if filing is None
                   else f"{filing.request_id} ({'filed' if filing.new else 'already open'})"
                   if filing.request_id else filing.note)
        lines.append(f"| {item.reason.value} | {item.since.isoformat()} | {item.who} | "
                     f"{request} |")
    if len(sweep.due) > SHOWN:
        lines.append(f"| … | | {len(sweep.due) - SHOWN} more | |")
    return "\n".join(lines)


@asset(group_name=GROUP, deps=[person_index], kinds={"python"},
       description="Who the retention rule (and ended legal holds) makes due for erasure; "
                   "files verified erasure requests when the policy says file_requests.")
def retention_sweep(context: AssetExecutionContext, hub: HubResource) -> MaterializeResult:
    policy = hub.policy()
    with hub.store() as store, store.session() as session:
        sweep = retention.sweep(session, store.hasher, policy,
                                file=policy.retention.file_requests, now=datetime.now(UTC),
                                timezone=store.settings.timezone)
    if sweep.filed:
        context.log.info(f"retention: filed {len(sweep.filed)} erasure requests")
    return MaterializeResult(metadata={
        "dry_run": not policy.retention.file_requests,
        "due": len(sweep.due),
        "per_reason": MetadataValue.json(sweep.per_reason),
        "undated_people": sweep.undated,
        "requests_filed": len(sweep.filed),
        "filed": MetadataValue.text(", ".join(sweep.filed) or "-"),
        "reduced_to_counts": len(sweep.aggregated),
        "due_list": MetadataValue.md(due_table(sweep)),
    })
