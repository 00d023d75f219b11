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
