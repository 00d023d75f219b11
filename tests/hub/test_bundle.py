"""The access-export bundle: contents, escaping, permissions, checksum."""

import csv
import json
import stat
from datetime import UTC, datetime

from hub.bundle import write_bundle
from hub.domain import Export, ExportSection
from hub.policy import load_policy

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _exports():
    return [
        Export("pipedrive", (
            ExportSection("Person", "GET /api/v2/persons/7", (
                {"id": 7, "name": "Aino <b>Virtanen</b>",
                 "emails": [{"value": "aino@example.fi", "primary": True}]},)),
            ExportSection("Notes", "GET /v1/notes?person_id=7", ()),
        )),
        Export("netvisor", (ExportSection("Customer", "getcustomer.nv", (
            {"NetvisorKey": "12", "Name": "Aino Virtanen"},)),)),
        Export("typeform", ()),
    ]


def test_bundle_holds_json_csv_and_readable_html(tmp_path):
    retained = {"netvisor": [{"record_id": "12", "legal_basis": "Kirjanpitolaki 2:10",
                              "retained_until": "2032-12-31"}]}
    bundle = write_bundle(tmp_path, "R-1", _exports(), load_policy(), retained=retained,
                          now=NOW)
    assert bundle.files == ("data.json", "index.html", "netvisor.csv", "pipedrive.csv",
                            "typeform.csv")
    data = json.loads((bundle.path / "data.json").read_text())
    person = data["systems"]["pipedrive"]["sections"][0]
    assert person["items"][0]["emails"][0]["value"] == "aino@example.fi"
    rows = list(csv.reader((bundle.path / "pipedrive.csv").open()))
    assert rows[0][:3] == ["section", "id", "name"]
    assert rows[1][0] == "Person" and rows[1][2] == "Aino <b>Virtanen</b>"
    page = (bundle.path / "index.html").read_text()
    assert "Aino &lt;b&gt;Virtanen&lt;/b&gt;" in page  # vendor text cannot inject markup
    assert "Kirjanpitolaki" in page and "2032-12-31" in page
    assert "Nothing about you is held in this system." in page  # typeform


def test_bundle_is_private_to_its_owner(tmp_path):
    bundle = write_bundle(tmp_path, "R-1", _exports(), load_policy(), now=NOW)
    assert stat.S_IMODE(bundle.path.stat().st_mode) == 0o700
    for name in bundle.files:
        assert stat.S_IMODE((bundle.path / name).stat().st_mode) == 0o600


def test_checksum_is_stable_and_changes_with_content(tmp_path):
    first = write_bundle(tmp_path, "R-1", _exports(), load_policy(), now=NOW)
    again = write_bundle(tmp_path, "R-1", _exports(), load_policy(), now=NOW)
    other = write_bundle(tmp_path, "R-1", _exports()[:1], load_policy(), now=NOW)
    assert first.sha256 == again.sha256
    assert other.sha256 != first.sha256
    assert sorted(p.name for p in other.path.iterdir()) == ["data.json", "index.html",
                                                            "pipedrive.csv"]
