"""One declaration per system: a toy sixth system from its declaration and its own
folder (``tests/toy_system/``) appears everywhere systems are listed, with no other edit.

It is added the way a deployment adds a system of its own: its package named in
``HUB_EXTRA_SYSTEMS``. The Dagster job is built when the code location is imported,
so the assets and the job are read from a fresh interpreter.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from connectors import registry
from hub.bundle import write_bundle
from hub.domain import Export, ExportSection
from hub.policy import PolicyError, load_policy
from hub.systems import Kind
from tests.toy_system.connector import ToyConnector

ROOT = Path(__file__).resolve().parents[1]
TOY = "tests.toy_system"
DEFAULT_POLICY = (ROOT / "hub" / "default_policy.toml").read_text("utf-8")
TOY_SECTION = '\n[systems.toy]\nerase = "delete"\nlegal_basis = "GDPR art. 6(1)(b) contract"\n'

READ_DEFINITIONS = """
import json
from pipelines.definitions import defs
job = defs.get_job_def("subject_request")
graph = job.graph
print(json.dumps({
    "assets": sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()),
    "person_index_deps": sorted(
        k.to_user_string()
        for k in defs.resolve_asset_graph().get(
            __import__("dagster").AssetKey("person_index")).parent_keys),
    "ops": sorted(node.name for node in graph.nodes),
    "complete_inputs": sorted(graph.node_named("complete").definition.ins),
}))
"""


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setenv(registry.EXTRA_ENV, TOY)


def _policy_file(tmp_path, text):
    path = tmp_path / "policy.toml"
    path.write_text(text, "utf-8")
    return path


def test_the_four_vendors_are_declared_and_the_toy_only_when_named():
    assert registry.names() == ("pipedrive", "mailchimp", "typeform", "netvisor")
    assert {d.name for d in registry.declarations() if d.marketing} == {"pipedrive",
                                                                       "mailchimp"}


def test_the_toy_is_declared_and_its_connector_built(toy):
    assert registry.names()[-1] == "toy"
    declaration = registry.declared()["toy"]
    assert declaration.system.kind is Kind.MANUAL
    with registry.build_connector("toy") as connector:
        assert isinstance(connector, ToyConnector)
        assert connector.settings.drawer == "top"


def test_the_toy_has_its_asset_and_its_op_in_the_job():
    env = {**os.environ, registry.EXTRA_ENV: TOY,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", READ_DEFINITIONS], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert "toy_people" in found["assets"]
    assert "toy_people" in found["person_index_deps"]
    assert "toy_task" in found["ops"]
    assert found["complete_inputs"] == sorted(
        ["pipedrive", "mailchimp", "typeform", "netvisor", "toy"])


def test_a_policy_without_the_toy_section_fails_naming_both(toy, tmp_path):
    path = _policy_file(tmp_path, DEFAULT_POLICY)
    with pytest.raises(PolicyError) as caught:
        load_policy(path, systems=registry.declarations())
    assert str(path) in str(caught.value)
    assert "[systems.toy]" in str(caught.value)


def test_a_policy_naming_an_undeclared_system_fails_naming_both(tmp_path):
    path = _policy_file(tmp_path, DEFAULT_POLICY + TOY_SECTION)
    with pytest.raises(PolicyError) as caught:  # the toy is not declared here
        load_policy(path, systems=registry.declarations())
    message = str(caught.value)
    assert str(path) in message and "[systems.toy]" in message
    assert "not declared" in message and "netvisor" in message


def test_the_toy_with_its_section_loads_and_heads_its_part_of_the_letter(toy, tmp_path):
    policy = load_policy(_policy_file(tmp_path, DEFAULT_POLICY + TOY_SECTION),
                         systems=registry.declarations())
    assert "toy" in policy.enabled_systems
    exports = [Export("toy", (ExportSection("Card", "drawer top", ({"card": "1"},)),))]
    made = write_bundle(tmp_path / "exports", "R-1", exports, policy)
    page = (made.path / "index.html").read_text("utf-8")
    assert "<h2>Toy box (paper cards in a drawer)</h2>" in page
    assert "GDPR art. 6(1)(b) contract" in page


def test_the_sandbox_lists_the_emulators_the_declarations_name():
    """The sandbox keeps its own list (it imports nothing of ours); the two must agree."""
    from sandbox.vendors import EMULATORS

    declared = {d.emulator for d in registry.declared().values() if d.emulator}
    assert declared == {f"sandbox.{name}" for name in EMULATORS}
