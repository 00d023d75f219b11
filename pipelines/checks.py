"""Asset checks after the nightly index: the promises, checked every night.

They run after `person_drift` has filed requests for what it found, so a failed
check names both what is wrong (counts per system) and the requests that will
answer it (ids); it is an error only when something has no request to answer it.
Only request ids, counts and masked identifiers reach Dagster (rule 7).
"""

from datetime import UTC, datetime, timedelta

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    MetadataValue,
    RunsFilter,
    asset_check,
)

from hub import drift, ledger, manual, review
from hub.deadlines import local_date
from hub.ledger import RequestKind, RequestState
from pipelines.launch import live_runs, why_dead
from pipelines.reconciliation import person_drift, person_index
from pipelines.requests import LIVE_RUN_STATUSES, REQUEST_TAG
from pipelines.resources import HubResource


def _drift_result(hub: HubResource, kind: RequestKind, what: str) -> AssetCheckResult:
    with hub.store() as store, store.session() as session:
        today = local_date(datetime.now(UTC), store.settings.timezone)
        found = drift.find(session, store.hasher, today)
        findings = found.reappeared if kind == RequestKind.ERASURE else found.resubscribed
        request_ids, unanswered = drift.answered_by(session, store.hasher, findings)
    per_system = found.per_system(kind)
    records = sum(per_system.values())
    where = ", ".join(f"{system} {n}" for system, n in sorted(per_system.items()))
    return AssetCheckResult(
        passed=not findings,
        severity=AssetCheckSeverity.ERROR if unanswered else AssetCheckSeverity.WARN,
        description=(f"{records} records {what} ({where}); answered by "
                     f"{', '.join(request_ids) or 'no request'}") if findings else None,
        metadata={"records": records, "per_system": MetadataValue.json(per_system),
                  "requests": MetadataValue.text(", ".join(request_ids) or "-"),
                  "unanswered_identifiers": unanswered},
    )


@asset_check(asset=person_index, additional_deps=[person_drift], blocking=False,
             description="No identifier of an erased person is present in any system "
                         "(records kept under a legal hold excepted).")
def no_erased_person_present(hub: HubResource) -> AssetCheckResult:
    return _drift_result(hub, RequestKind.ERASURE, "of erased people found again")


@asset_check(asset=person_index, additional_deps=[person_drift], blocking=False,
             description="Every opted-out person is unsubscribed in every marketing system.")
def opted_out_people_unsubscribed(hub: HubResource) -> AssetCheckResult:
    return _drift_result(hub, RequestKind.OPT_OUT, "of opted-out people subscribed")


def _request_table(session, rows, today) -> str:
    lines = ["| request | kind | state | due | days left | subject |", "|---|---|---|---|---|---|"]
    for row in rows:
        view = ledger.view(session, row)
        due = view.due_on
        subject = ", ".join(masked for _, masked in view.identifiers) or "(scrubbed)"
        lines.append(f"| {row.id} | {row.kind} | {row.state} | {due} | "
                     f"{(due - today).days} | {subject} |")
    return "\n".join(lines)


def _late_manual(late: list[manual.ManualTask]) -> list[str]:
    return [f"{t.request_id}/{t.system} to do by hand by {t.due.isoformat()}, unconfirmed"
            for t in late]


@asset_check(asset=person_index, blocking=False,
             description="No request is past its due date, and no manual task (a system "
                         "without an API) past its own; those due within the next days "
                         "(HUB_DUE_SOON_DAYS, 7) are listed.")
def request_deadlines(hub: HubResource) -> AssetCheckResult:
    with hub.store() as store, store.session() as session:
        settings = store.settings
        today = local_date(datetime.now(UTC), settings.timezone)
        overdue = ledger.list_requests(session, today=today, overdue=True)
        soon = [r for r in ledger.list_requests(session, today=today,
                                                due_within=settings.due_soon_days)
                if r not in overdue]
        table = _request_table(session, [*overdue, *soon], today)
        late = _late_manual(manual.overdue(session, today=today))
    problems = ([f"{len(overdue)} past due: {', '.join(r.id for r in overdue)}"]
                if overdue else []) + late
    return AssetCheckResult(
        passed=not problems, severity=AssetCheckSeverity.ERROR,
        description="; ".join(problems) or None,
        metadata={"overdue": len(overdue), "due_soon": len(soon),
                  "manual_overdue": len(late),
                  "overdue_requests": MetadataValue.text(
                      ", ".join(r.id for r in overdue) or "-"),
                  "overdue_manual_tasks": MetadataValue.text("\n".join(late) or "-"),
                  "requests": MetadataValue.md(table)},
    )


def runless(session, instance) -> list[str]:
    """In-progress requests that no live run is working on, each with its last run.

    Found: after `kill -9` of `hub request run`, the request stayed in progress with
    plaintext identifiers while its run showed STARTED forever, and nothing flagged it.
    A run counts as live only while its process can be working (`why_dead`).
    """
    lines = []
    for row in ledger.list_requests(session, today=datetime.now(UTC).date(),
                                    state=RequestState.IN_PROGRESS):
        live = [r for r in live_runs(instance, row.id) if why_dead(r) is None]
        if live:
            continue
        last = instance.get_run_records(RunsFilter(job_name="subject_request",
                                                   tags={REQUEST_TAG: row.id}), limit=1)
        if not last:
            what = "no run"
        else:
            run = last[0].dagster_run
            reason = why_dead(last[0]) if run.status in LIVE_RUN_STATUSES else None
            what = f"last run {run.run_id} {reason or run.status.value.lower()}"
        lines.append(f"{row.id} in progress with no live run ({what}): "
                     f"hub request run {row.id}")
    return lines


@asset_check(asset=person_index, blocking=False,
             description="Nothing stays in progress past its maximum age "
                         "(HUB_STUCK_AFTER_MINUTES, 120): running or pending tasks, and "
                         "verified requests no run has picked up (error); a request in "
                         "progress that no live run works on (error); requests waiting "
                         "that long for an operator's review or confirmation (warning).")
def nothing_stuck(context: AssetCheckExecutionContext, hub: HubResource) -> AssetCheckResult:
    with hub.store() as store, store.session() as session:
        limit = datetime.now(UTC) - timedelta(minutes=store.settings.stuck_after_minutes)
        tasks = ledger.stuck_tasks(session, older_than=limit)
        waiting = ledger.unlaunched(session, older_than=limit)
        orphaned = runless(session, context.instance)
        found = [f"{t.request_id}/{t.system} {t.state} since {t.updated_at:%Y-%m-%d %H:%M}Z"
                 for t in tasks]
        found += [f"{r.id} verified at {r.verified_at:%Y-%m-%d %H:%M}Z, not started"
                  for r in waiting]
        found += orphaned
        late = _late_manual(manual.overdue(
            session, today=local_date(datetime.now(UTC), store.settings.timezone)))
        found += late
        operator = [f"{r.id} waits for an operator since {r.updated_at:%Y-%m-%d %H:%M}Z: "
                    f"{review.pending_count(session, r.id)} candidate(s) to review"
                    for r in ledger.list_requests(session, today=limit.date(),
                                                  state=RequestState.AWAITING_REVIEW)
                    if r.updated_at < limit]
    lines = found + operator
    return AssetCheckResult(
        passed=not lines,
        severity=AssetCheckSeverity.ERROR if found else AssetCheckSeverity.WARN,
        description=(f"{len(found)} stuck, {len(operator)} waiting for an operator: "
                     f"{'; '.join(lines[:20])}") if lines else None,
        metadata={"stuck_tasks": len(tasks), "unstarted_requests": len(waiting),
                  "without_live_run": len(orphaned), "awaiting_operator": len(operator),
                  "manual_overdue": len(late),
                  "stuck": MetadataValue.text("\n".join(lines) or "-")},
    )


CHECKS = [no_erased_person_present, opted_out_people_unsubscribed, request_deadlines,
          nothing_stuck]
