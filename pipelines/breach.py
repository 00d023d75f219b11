"""The breach-impact query as an asset, run on demand from the UI (hub/breach.py).

No `from __future__ import annotations` here: Dagster reads the annotations at
definition time. Not in the reconciliation group, so the nightly job never runs it;
someone materialises it with the breached system in its config when a breach is
detected. Its config (system, dates) and its metadata (counts, the deadline, masked
identifiers) hold nothing personal (DESIGN.md rule 7); the plaintext is for the DPO at
a terminal, `hub breach SYSTEM --reveal`.
"""

from datetime import UTC, date, datetime

from dagster import (
    AssetExecutionContext,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from connectors import registry
from hub import breach
from pipelines.reconciliation import person_index
from pipelines.resources import HubResource

# Enough rows for a small company's breach to be read in the UI; the count is exact
# whatever the table shows.
TABLE_ROWS = 100


class BreachConfig(Config):
    system: str
    """The breached system, as declared (pipedrive, mailchimp, ... or a manual one)."""
    since: str | None = None
    """Only records the vendor changed on or after this day, YYYY-MM-DD."""
    detected_at: str | None = None
    """When the breach was detected, "YYYY-MM-DD HH:MM" on the controller's clock; now if
    left out. The 72 hours of GDPR art. 33 count from it."""


def _inputs(config: BreachConfig, declared: dict[str, bool], timezone: str,
            now: datetime) -> tuple[date | None, datetime]:
    """The config checked: a typo fails the run with one line saying what to fix."""
    try:
        breach.check_system(config.system, declared)
        since = breach.parse_since(config.since, name="since") if config.since else None
        detected = (breach.parse_detected(config.detected_at, timezone, now=now,
                                          name="detected_at")
                    if config.detected_at else now)
    except ValueError as exc:
        raise Failure(description=str(exc)) from None
    return since, detected


def _people_table(found: breach.Impact) -> str:
    lines = ["| person | records | identifiers (masked) |", "|---|---|---|"]
    lines += [f"| {p.person_id or '(unclustered)'} | {len(p.record_ids)} | "
              f"{', '.join(p.identifiers) or '-'} |" for p in found.people[:TABLE_ROWS]]
    if found.persons > TABLE_ROWS:
        lines.append(f"| ... | | {found.persons - TABLE_ROWS} more: hub breach "
                     f"{found.system} |")
    return "\n".join(lines)


@asset(group_name="breach", deps=[person_index], kinds={"python"},
       description="Whose data the system in the config holds (since a date), as counts "
                   "and masked identifiers, and the 72-hour notification deadline. Run "
                   "on demand when a breach is detected.")
def breach_impact(context: AssetExecutionContext, config: BreachConfig,
                  hub: HubResource) -> MaterializeResult:
    declared = breach.declared_systems(registry.names(), hub.policy().manual_systems)
    with hub.store() as store, store.session() as session:
        timezone, now = store.settings.timezone, datetime.now(UTC)
        since, detected_at = _inputs(config, declared, timezone, now)
        found = breach.impact(session, config.system, since=since, detected_at=detected_at,
                              declared=declared, timezone=timezone,
                              actor=f"dagster run {context.run.run_id}", now=now)
    counts = found.counts()
    context.log.info(f"{found.system}: {found.records} records, {found.persons} persons; "
                     f"notify by {counts['notify_by']}")
    return MaterializeResult(metadata={
        **{k: v for k, v in counts.items() if k not in ("identifiers", "categories")},
        "categories": ", ".join(f"{k} {n}" for k, n in found.categories.items())
                      or "none flagged",
        **{f"identifiers_{kind}": n for kind, n in found.identifiers.items()},
        "since": counts["since"] or "-", "indexed_at": counts["indexed_at"] or "never synced",
        "persons_masked": MetadataValue.md(_people_table(found)),
    })
