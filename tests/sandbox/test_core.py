"""People generation, credentials, the Sandbox lifecycle, faults and the inspection API."""

from __future__ import annotations

import httpx
import pytest

from sandbox import Sandbox, credentials, generate_people
from sandbox.people import business_id_check_digit, render_email, render_phone
from sandbox.server import env_for
from tests.polling import poll


def test_people_are_deterministic_and_personas_fixed() -> None:
    a, b = generate_people(300, seed=7), generate_people(300, seed=7)
    assert a == b
    assert generate_people(300, seed=8) != a
    aino, mikko, eeva, jussi = a[:4]
    assert (aino.email, aino.phone, aino.systems) == (
        "aino.virtanen@example.fi", "+358401234567",
        frozenset({"pipedrive", "mailchimp", "typeform", "netvisor"}))
    assert mikko.email == "mikko.hakkinen@example.fi" and "netvisor" not in mikko.systems
    assert eeva.phone == "+358442223344" and "netvisor" in eeva.systems
    assert jussi.systems == frozenset({"typeform"})
    assert render_email(aino, "pipedrive") == "Aino.Virtanen@Example.fi"
    assert render_phone(aino, "pipedrive") == "040 123 4567"


def test_people_data_rules() -> None:
    people = generate_people(1000, seed=42)
    assert all(p.email.split("@")[1].endswith(("example.fi", "example.com", "example.net"))
               for p in people)
    # idx 6 and 7 share an info@ address on purpose (SHARED_CASES)
    assert len({p.email for p in people}) == len(people) - 1
    multi = sum(len(p.systems) >= 2 for p in people) / len(people)
    assert 0.5 < multi < 0.7
    assert any(len(p.systems) == 1 for p in people)
    assert people[4].phone == people[5].phone
    phones = [p.phone for p in people]
    assert len(set(phones)) == len(phones) - 1
    assert all(p.phone.startswith("+358") and p.phone[1:].isdigit() for p in people)
    assert sum(any(c in p.name for c in "äöåÄÖÅ") for p in people) > 50
    for p in people[:50]:
        seven, check = p.business_id.split("-")
        assert business_id_check_digit(seven) == int(check)
    assert any(p.special_diet for p in people)


def test_credentials_fixed_per_seed_and_env_names() -> None:
    assert credentials(42) == credentials(42)
    assert credentials(42) != credentials(43)
    key = credentials(42)["MAILCHIMP_API_KEY"]
    assert len(key.split("-")[0]) == 32 and key.endswith("-us21")
    env = env_for({v: "http://127.0.0.1:1" for v in
                   ("pipedrive", "mailchimp", "typeform", "netvisor")}, 42)
    assert env["MAILCHIMP_BASE_URL"] == "http://127.0.0.1:1/3.0"
    assert env["TYPEFORM_TOKEN"].startswith("tfp_")
    assert env["NETVISOR_ORGANISATION_ID"] == "1967543-8"
    assert env["NETVISOR_LANGUAGE"] == "FI" and env["HUB_MODE"] == "sandbox"
    for name in ("PIPEDRIVE_BASE_URL", "PIPEDRIVE_API_TOKEN", "MAILCHIMP_API_KEY",
                 "TYPEFORM_BASE_URL", "NETVISOR_BASE_URL", "NETVISOR_SENDER",
                 "NETVISOR_CUSTOMER_ID", "NETVISOR_PARTNER_ID", "NETVISOR_CUSTOMER_KEY",
                 "NETVISOR_PARTNER_KEY"):
        assert env[name]
    assert "server" not in env["MAILCHIMP_BASE_URL"]


def test_fault_injection_shows_in_call_counts(sb: Sandbox, pd: httpx.Client,
                                              inspect_pd: httpx.Client) -> None:
    inspect_pd.delete("/calls")
    r = inspect_pd.put("/faults", json={"error_rate": 0.3, "rate_limit_rate": 0.2,
                                        "seed": 5})
    assert r.json()["error_rate"] == 0.3
    statuses = [pd.get("/api/v2/persons/1").status_code for _ in range(60)]
    assert 500 in statuses and 429 in statuses and 200 in statuses
    calls = inspect_pd.get("/calls").json()
    assert calls["total"] == 60
    by_status = {c["status"]: c["count"] for c in calls["calls"]
                 if c["route"] == "/api/v2/persons/{id}"}
    assert by_status[500] == statuses.count(500)
    assert by_status[429] == statuses.count(429)
    # deterministic for a seed: the same seed replays the same sequence
    inspect_pd.put("/faults", json={"seed": 5})
    again = [pd.get("/api/v2/persons/1").status_code for _ in range(60)]
    assert again == statuses
    inspect_pd.put("/faults", json={"error_rate": 0, "rate_limit_rate": 0,
                                    "malformed_rate": 1})
    bad = pd.get("/api/v2/persons/1")
    with pytest.raises(ValueError):
        bad.json()
    inspect_pd.put("/faults", json={"malformed_rate": 0, "drop_rate": 1})
    with pytest.raises(httpx.TransportError):
        pd.get("/api/v2/persons/1")
    inspect_pd.put("/faults", json={"drop_rate": 0})
    assert pd.get("/api/v2/persons/1").status_code == 200
    assert any(c["status"] == 0 for c in inspect_pd.get("/calls").json()["calls"])
    assert inspect_pd.put("/faults", json={"error_rate": 2}).status_code == 400
    # /__sandbox/ itself is never counted or faulted
    inspect_pd.put("/faults", json={"error_rate": 1})
    assert inspect_pd.get("/calls").status_code == 200
    inspect_pd.post("/reset")
    assert inspect_pd.get("/calls").json()["total"] == 0
    assert inspect_pd.get("/faults").json()["error_rate"] == 0


def test_faults_given_at_start_and_latency() -> None:
    from sandbox import Faults

    with Sandbox(people=20, vendors=("mailchimp",),
                 faults={"mailchimp": Faults(error_rate=1.0)}) as box:
        r = httpx.get(box.env["MAILCHIMP_BASE_URL"] + "/ping",
                      auth=("u", box.env["MAILCHIMP_API_KEY"]))
        assert r.status_code == 500
        assert r.headers["content-type"].startswith("application/problem+json")
        base = box.urls["mailchimp"]
        httpx.post(base + "/__sandbox/reset")  # reset keeps the start-up fault mix
        assert httpx.get(base + "/__sandbox/faults").json()["error_rate"] == 1.0
        httpx.put(base + "/__sandbox/faults", json={"error_rate": 0, "latency_ms": 5})
        assert httpx.get(box.env["MAILCHIMP_BASE_URL"] + "/ping",
                         auth=("u", box.env["MAILCHIMP_API_KEY"])).status_code == 200


def test_sandbox_in_child_process_and_missing_vendors_skipped() -> None:
    with Sandbox(people=30, vendors=("pipedrive",), in_process=False) as box:
        assert set(box.urls) == {"pipedrive"}
        r = poll(lambda: httpx.get(box.urls["pipedrive"] + "/api/v2/persons/1",
                                   headers={"x-api-token": box.env["PIPEDRIVE_API_TOKEN"]}))
        assert r.json()["data"]["name"] == "Aino Virtanen"
    assert "PIPEDRIVE_BASE_URL" in box.env and "MAILCHIMP_BASE_URL" not in box.env


def test_cli_writes_env_file(tmp_path) -> None:
    from sandbox.cli import write_env_file

    target = tmp_path / "a" / "sandbox.env"
    write_env_file(target, {"HUB_MODE": "sandbox"})
    assert target.read_text().splitlines()[-1] == "HUB_MODE=sandbox"
    assert target.stat().st_mode & 0o777 == 0o600
