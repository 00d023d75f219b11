"""The desk in a real browser: Chromium from the OS packages, driven by Playwright.

The desk is served by uvicorn on a free loopback port over a hub whose index holds
the sandbox's seeded vendors; the subject-request job runs in process against the
sandbox, as the sensor would start it. An operator logs in, files and verifies
requests on the forms, follows each to its outcome, confirms a task done by hand,
excludes a colleague's records, downloads the access bundle and searches, without
any JavaScript of the desk's own. Screenshots of the main pages go to
$HUB_SCREENSHOTS (a temporary folder when unset).
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import select

from desk import auth
from desk.app import create_app
from hub import ledger
from hub.ledger import RequestState
from hub.models import AuditEventRow
from hub.settings import Settings
from hub.store import open_store
from sandbox.people import SHARED_CASES, generate_people
from tests.conftest import TEST_SECRET
from tests.desk.conftest import PASSWORD, chromium_or_skip, desk_settings
from tests.pipelines import conftest as pipelines
from tests.pipelines.jobs import run, state
from tests.polling import poll

pytestmark = [pytest.mark.browser, pytest.mark.slow]
# The Dagster layer's fixtures: the sandbox, and a hub whose index holds its vendors.
sandbox, vendors, hub_db, hub_store = (pipelines.sandbox, pipelines.vendors,
                                       pipelines.hub_db, pipelines.hub_store)
index_template, indexed, resources = (pipelines.index_template, pipelines.indexed,
                                      pipelines.resources)

# Chromium on this closed network: nothing may reach out (updates, sync, QUIC probes).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARCHIVE = """
[systems.paper_archive]
kind = "manual"
title = "Paper contracts (locked cabinet)"
due_days = 5
[systems.paper_archive.instructions]
access = "Photocopy the subject's signed contract from the cabinet."
erasure = "Shred the contract unless it is within its retention period."
"""
MIKKO = "mikko.hakkinen@example.fi"  # in every system, shares nothing
PEOPLE = generate_people(60, seed=42)
MIKA, SUSANNA = (PEOPLE[i] for i in SHARED_CASES["switchboard"])


@pytest.fixture(scope="module", autouse=True)
def chromium() -> str:
    """Before the sandbox starts: without a browser there is nothing to do here."""
    return chromium_or_skip()


@pytest.fixture
def desk_url(indexed, hub_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
             ) -> Iterator[str]:
    """The desk on a free port, over the indexed hub with a paper archive declared."""
    policy = tmp_path / "policy.toml"
    default = (Path(__file__).parents[2] / "hub" / "default_policy.toml").read_text("utf-8")
    policy.write_text(default + ARCHIVE, "utf-8")
    monkeypatch.setenv("HUB_POLICY_FILE", str(policy))
    settings = Settings(_env_file=None, database_url=hub_db, secret=TEST_SECRET,
                        home=Path(os.environ["HUB_HOME"]))
    store = open_store(settings)
    with store.session() as session:
        auth.add_user(session, "operator", PASSWORD, auth.Role.OPERATOR, actor="test")
    app = create_app(settings, desk_settings(dagster_ui_url="http://127.0.0.1:3999"),
                     store=store)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, access_log=False,
                                           log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    poll(lambda: server.started, timeout=20)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        store.close()


@pytest.fixture
def page(chromium: str, desk_url: str):
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=CHROMIUM_ARGS,
            locale="en-GB", java_script_enabled=False, accept_downloads=True,
            base_url=desk_url, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        try:
            yield context.new_page()
        finally:
            context.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("HUB_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def job(request_id: str, resources) -> bool:
    """Run the request's job as the sensor would, in its own thread: Playwright's sync
    API keeps an event loop in this one, which Dagster's in-process run must not share."""
    with ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(run, request_id, resources).result().success


def file_on_the_form(page, kind_label: str, email: str, phone: str = "") -> str:
    page.get_by_role("link", name="File a request").click()
    page.get_by_label(kind_label).check()
    page.get_by_label("E-mail addresses (one a line)").fill(email)
    page.get_by_label("Phone numbers (one a line)").fill(phone)
    page.get_by_label("How it arrived").select_option("letter")
    page.get_by_label("The subject's language").select_option("en")
    page.get_by_role("button", name="File the request").click()
    assert page.get_by_text("Request filed.").is_visible()
    rid = page.url.rsplit("/", 1)[1]
    assert re.fullmatch(r"R-\d{8}-[0-9a-f]{6}", rid)
    return rid


def verify_on_the_form(page, method: str = "signed_letter") -> None:
    page.get_by_label("How the identity was checked").select_option(method)
    page.get_by_role("button", name="Verify the identity").click()
    assert page.get_by_text("Identity verified").is_visible()


def confirm_every_task_by_hand(page) -> int:
    confirmed = 0
    while page.locator("form[action$='/confirm']").count():
        form = page.locator("form[action$='/confirm']").first
        form.locator("textarea[name=note]").fill("dealt with by hand at the office")
        form.get_by_role("button").click()
        assert page.get_by_text("Done.", exact=True).is_visible()
        confirmed += 1
    return confirmed


def task_states(page) -> dict[str, str]:
    rows = page.locator("tr[id^=task-]")
    return {rows.nth(i).get_attribute("id").removeprefix("task-"):
            rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())}


def test_an_operator_takes_requests_from_filing_to_outcome_in_chromium(
        page, indexed, resources, shots: Path, tmp_path: Path):
    store = indexed
    page.goto("/")
    assert page.url.endswith("/login")
    page.get_by_label("User name").fill("operator")
    page.get_by_label("Password").fill(PASSWORD)
    page.screenshot(path=shots / "desk-login.png")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("heading", name="Dashboard").is_visible()

    # An access request: the systems answer, the paper archive waits for a person.
    access = file_on_the_form(page, "Access (copy of the data)", MIKKO)
    verify_on_the_form(page)
    assert job(access, resources)
    assert state(store, access) == RequestState.AWAITING_REVIEW
    page.reload()
    assert "Photocopy the subject's signed contract" in page.content()
    assert task_states(page)["paper_archive"] == "manual_pending"
    page.screenshot(path=shots / "desk-request-waiting.png", full_page=True)
    assert confirm_every_task_by_hand(page) >= 1
    assert state(store, access) == RequestState.VERIFIED  # every decision made: runs again
    assert job(access, resources)
    page.reload()
    assert page.get_by_text("completed", exact=True).is_visible()
    assert set(task_states(page).values()) <= {"done", "not_found"}
    href = page.get_by_role("link", name="Runs in Dagster").get_attribute("href")
    assert href.startswith("http://127.0.0.1:3999/runs?") and access in href
    page.screenshot(path=shots / "desk-request-completed.png", full_page=True)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the bundle (zip)").click()
    saved = tmp_path / "bundle.zip"
    download.value.save_as(saved)
    names = zipfile.ZipFile(saved).namelist()
    assert f"{access}/index.html" in names and f"{access}/data.json" in names

    # An erasure by a customer who gives the phone he shares with a colleague: her
    # records are candidates, and the operator excludes them.
    erasure = file_on_the_form(page, "Erasure", MIKA.email, MIKA.phone)
    verify_on_the_form(page, "id_at_desk")
    assert job(erasure, resources)
    assert state(store, erasure) == RequestState.AWAITING_REVIEW
    page.get_by_role("link", name="Dashboard").click()  # the erasure waits for a person
    waiting = page.locator("section[aria-labelledby=h-candidates]")
    assert waiting.get_by_role("link", name=erasure).is_visible()
    page.screenshot(path=shots / "desk-dashboard.png", full_page=True)
    waiting.get_by_role("link", name=erasure).click()
    exclude = page.get_by_role("button", name=re.compile(r"^Exclude #"))
    assert exclude.count() >= 1
    page.screenshot(path=shots / "desk-review.png", full_page=True)
    while exclude.count():
        exclude.first.click()
    confirm_every_task_by_hand(page)
    assert state(store, erasure) == RequestState.VERIFIED
    assert job(erasure, resources)
    page.reload()
    assert page.get_by_text("completed", exact=True).is_visible()
    assert "excluded by operator" in page.content()

    # A rectification carries the corrected values, typed on the same form (no script:
    # the fields are always there, and only a rectification takes them).
    page.get_by_role("link", name="File a request").click()
    page.get_by_label("Rectification", exact=True).check()
    page.get_by_label("E-mail addresses (one a line)").fill(MIKKO)
    page.get_by_label("Corrected name").fill("Mikko Häkkinen-Laine")
    page.get_by_label("Corrected e-mail address").fill("mikko@laine.example")
    page.screenshot(path=shots / "desk-file-rectification.png", full_page=True)
    page.get_by_role("button", name="File the request").click()
    assert page.get_by_text("Request filed.").is_visible()
    assert page.get_by_text("Mikko Häkkinen-Laine").is_visible()
    assert page.get_by_text("mikko@laine.example").is_visible()

    # Search by e-mail (a POST: the address is in no URL), the dashboard, the trail.
    page.get_by_role("link", name="Search").click()
    page.get_by_label("E-mail or phone").fill(MIKA.email.upper())
    page.get_by_role("button", name="Search").click()
    assert page.url.endswith("/search")
    assert page.get_by_role("link", name=erasure).is_visible()
    page.screenshot(path=shots / "desk-search.png", full_page=True)
    page.get_by_role("link", name="Audit trail").click()
    assert page.get_by_text("request.identity_checked").first.is_visible()
    page.screenshot(path=shots / "desk-audit.png", full_page=True)
    page.get_by_role("link", name="Dashboard").click()
    page.get_by_label("Language").select_option("fi")
    page.get_by_role("button", name="Change").click()
    assert page.get_by_role("heading", name="Yleisnäkymä").is_visible()
    page.screenshot(path=shots / "desk-dashboard-fi.png", full_page=True)
    page.get_by_role("button", name="Kirjaudu ulos").click()
    assert page.url.endswith("/login")

    with store.session() as session:
        mine = session.execute(select(AuditEventRow.action).where(
            AuditEventRow.actor == "operator",
            AuditEventRow.request_id.in_([access, erasure]))).scalars().all()
        assert {"request.received", "request.identity_checked", "request.verified",
                "task.confirmed", "review.excluded", "export.downloaded"} <= set(mine)
        assert ledger.get_request(session, erasure).state == RequestState.COMPLETED
