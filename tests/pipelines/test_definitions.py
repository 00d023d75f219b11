"""The code location loads, with what ops staff expect to see in the UI."""

from dagster import DefaultScheduleStatus

from pipelines.definitions import defs


def test_definitions_load_with_assets_jobs_and_an_enabled_nightly_schedule():
    repo = defs.get_repository_def()
    keys = {key.to_user_string() for key in repo.asset_graph.get_all_asset_keys()}
    assert keys >= {"pipedrive_people", "mailchimp_people", "typeform_people",
                    "netvisor_people", "person_index"}
    schedule = repo.get_schedule_def("nightly_reconciliation_schedule")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "Europe/Helsinki"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING


def test_each_sync_asset_uses_its_vendors_pool():
    repo = defs.get_repository_def()
    for system in ("pipedrive", "mailchimp", "typeform", "netvisor"):
        node = repo.assets_defs_by_key[
            next(k for k in repo.assets_defs_by_key if k.to_user_string() == f"{system}_people")
        ].node_def
        assert node.pool == system


def test_the_nightly_job_acts_on_drift_then_runs_every_check():
    job = defs.resolve_job_def("nightly_reconciliation")
    nodes = {n.name for n in job.graph.node_defs}
    assert "person_drift" in nodes
    checks = {key.name for key in job.asset_layer.asset_graph.asset_check_keys}
    assert checks == {"no_erased_person_present", "opted_out_people_unsubscribed",
                      "request_deadlines", "nothing_stuck"}
    # The drift checks wait for the drift to be acted on, so they can name its requests.
    deps = job.graph.dependency_structure
    upstream = {h.node_name for h in deps.all_upstream_outputs_from_node(
        "person_index_no_erased_person_present")}
    assert "person_drift" in upstream
