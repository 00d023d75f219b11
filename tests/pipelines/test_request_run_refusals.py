"""`hub request run` refuses before Dagster starts: one line, the real reason, exit 1 or 3.

Found: a missing or broken policy file, or a request that cannot run, gave 49 to 72
lines of Dagster trace ending in "some systems failed; `hub request run` again re-runs
only those", which was untrue.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub import ledger, outcomes
from hub.domain import Identifier, IdentifierKind, Outcome
from hub.ledger import RequestKind, RequestState
from tests.conftest import TEST_SECRET

ROOT = Path(__file__).resolve().parents[2]
EMAIL = Identifier(IdentifierKind.EMAIL, "aino.virtanen@example.fi")


@pytest.fixture
def env(hub_db, tmp_path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DAGSTER_"))}
    return {**base, "PYTHONPATH": str(ROOT), "HUB_DATABASE_URL": hub_db,
            "HUB_SECRET": TEST_SECRET, "HUB_HOME": str(tmp_path / "home"),
            "DAGSTER_HOME": str(tmp_path / "dagster")}


def request_run(env: dict[str, str], request_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hub.cli", "request", "run", request_id],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def filed(store, *, to: RequestState | None = RequestState.VERIFIED) -> str:
    """A request brought to `to` by the ledger's own moves."""
    with store.session() as session:
        row = ledger.create_request(session, store.hasher, RequestKind.ERASURE, [EMAIL])
        if to == RequestState.REJECTED:
            ledger.reject(session, row.id, "identity not confirmed")
        elif to is not None:
            ledger.verify(session, row.id)
        if to in (RequestState.COMPLETED, RequestState.AWAITING_REVIEW):
            ledger.transition(session, row, RequestState.IN_PROGRESS)
            ledger.ensure_tasks(session, row, ["mailchimp"])
            outcomes.begin(session, row.id, "mailchimp")
            outcomes.record(session, row.id, Outcome(system="mailchimp"),
                            candidates=1 if to == RequestState.AWAITING_REVIEW else 0)
            ledger.finalise(session, store.hasher, row)
        assert row.state == (to or RequestState.RECEIVED)
        return row.id


def assert_refused(done: subprocess.CompletedProcess[str], code: int, *reason: str) -> None:
    assert done.returncode == code, done.stderr
    assert done.stdout == ""  # not even "running ...": Dagster never started
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: ")
    for part in reason:
        assert part in line
    assert "some systems failed" not in line


@pytest.mark.parametrize(("policy", "reason"), [
    (None, "cannot read policy file"),
    ("[systems.pipedrive\nerase = ", "is not valid TOML"),
    ('[systems.pipedrive]\nerase = "shred"\nlegal_basis = "x"\n', "systems.pipedrive"),
])
def test_a_missing_corrupt_or_invalid_policy_is_refused_as_the_environment(
        env, hub_store, tmp_path, policy, reason):
    path = tmp_path / "policy.toml"
    if policy is not None:
        path.write_text(policy, "utf-8")
    done = request_run({**env, "HUB_POLICY_FILE": str(path)}, filed(hub_store))
    assert_refused(done, 3, reason, str(path))
    assert not (tmp_path / "dagster").exists()


@pytest.mark.parametrize(("state", "reason"), [
    (None, "is received, not verified: check the requester's identity, then hub request "
           "verify"),
    (RequestState.COMPLETED, "is completed: nothing left to run"),
    (RequestState.REJECTED, "was rejected: it does not run"),
    (RequestState.AWAITING_REVIEW, "waits for an operator"),
])
def test_a_request_that_cannot_run_is_refused_with_what_to_do(env, hub_store, tmp_path,
                                                              state, reason):
    rid = filed(hub_store, to=state)
    assert_refused(request_run(env, rid), 1, rid, reason)
    assert not (tmp_path / "dagster").exists()
