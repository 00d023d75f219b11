"""The Dagster webserver is never reachable without authentication.

Dagster's webserver has no login of its own: whoever reaches it can launch any job
through its GraphQL API (found: an unauthenticated `launchRun` worked). Checked
statically: the Makefile's `ui` target, the deployment guide and the Helm values.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def _make_target(name: str) -> str:
    text = (ROOT / "Makefile").read_text()
    match = re.search(rf"^{name}:.*?(?=^\S|\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, f"no {name} target"
    return match.group()


def test_make_ui_binds_loopback_only():
    recipe = _make_target("ui")
    (dev,) = [line for line in recipe.splitlines() if "dagster dev" in line]
    assert re.search(r"\s-h\s+127\.0\.0\.1(\s|$)", dev), dev
    assert "0.0.0.0" not in (ROOT / "Makefile").read_text()


def test_deploy_guide_never_binds_the_webserver_to_every_interface():
    """Found: deploy/README.md ran `dagster-webserver -h 0.0.0.0`."""
    guide = (DEPLOY / "README.md").read_text()
    commands = [line for line in guide.splitlines() if line.startswith("dagster-webserver")]
    assert commands
    for line in commands:
        assert "-h 127.0.0.1" in line, line
    assert "0.0.0.0" not in guide
    assert "oauth2-proxy" in guide and "launchRun" in guide  # says what and why


def _values(name: str) -> dict:
    return yaml.safe_load((DEPLOY / "helm" / name).read_text())


def test_helm_webserver_has_no_ingress_of_its_own():
    values = _values("values.yaml")
    assert values["ingress"]["enabled"] is False
    assert values["dagsterWebserver"]["service"]["type"] == "ClusterIP"


def test_helm_puts_an_authenticating_proxy_in_front():
    proxy = _values("oauth2-proxy.yaml")
    args = proxy["extraArgs"]
    assert args["upstream"].startswith("http://dagster-dagster-webserver.")
    assert args.get("email-domain") not in (None, "*")
    assert args["cookie-secure"] == "true" and args["provider"]
    assert proxy["config"]["existingSecret"]  # client and cookie secrets never in values
    assert proxy["ingress"]["enabled"] is True and proxy["ingress"]["tls"]


def test_only_the_proxy_may_reach_the_webserver():
    docs = list(yaml.safe_load_all((DEPLOY / "helm" / "networkpolicy.yaml").read_text()))
    webserver = [d for d in docs
                 if d["spec"]["podSelector"]["matchLabels"].get("component")
                 == "dagster-webserver"]
    assert len(webserver) == 1
    (rule,) = webserver[0]["spec"]["ingress"]
    (source,) = rule["from"]
    assert source["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "oauth2-proxy"}
    assert webserver[0]["spec"]["policyTypes"] == ["Ingress"]
