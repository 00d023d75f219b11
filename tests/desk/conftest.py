"""The desk's fixtures: a hub on SQLite with one user per role, and signed-in clients.

The browser tests need Chromium from the OS packages. Where HUB_REQUIRE_BROWSER=1
(CI), a missing browser fails them instead of skipping, like HUB_REQUIRE_POSTGRES.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from desk import auth
from desk.app import create_app
from desk.settings import DeskSettings
from hub.settings import Settings
from hub.store import Store, open_store
from tests.conftest import TEST_SECRET

with warnings.catch_warnings():
    # Starlette would rather have httpx2 under its TestClient; httpx works the same.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

PASSWORD = "a long enough password"
CHROMIUM = os.environ.get("HUB_CHROMIUM", "/usr/bin/chromium")
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def chromium_or_skip() -> str:
    """The browser's path; skip (or, with HUB_REQUIRE_BROWSER=1, fail) without it."""
    missing = None
    if shutil.which(CHROMIUM) is None:
        missing = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "playwright is not installed (pip install playwright)"
    if missing:
        if os.environ.get("HUB_REQUIRE_BROWSER") == "1":
            pytest.fail(f"HUB_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)
    return CHROMIUM


def desk_settings(**values: object) -> DeskSettings:
    return DeskSettings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 at its deployed cost takes a good fraction of a second per hash; the tests
    make dozens. Verifying reads the cost from each hash, so nothing else changes."""
    from argon2 import PasswordHasher

    monkeypatch.setattr(auth, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024,
                                                       parallelism=1))


@pytest.fixture
def hub_settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'hub.db'}",
                    secret=TEST_SECRET, home=tmp_path / "home")


@pytest.fixture
def desk_store(hub_settings: Settings) -> Iterator[Store]:
    opened = open_store(hub_settings)
    with opened.session() as session:
        for role in auth.Role:
            auth.add_user(session, role.label, PASSWORD, role, actor="test")
    yield opened
    opened.close()


class Client:
    """A browser-like client of the desk: keeps its cookie, sends the page's CSRF token."""

    def __init__(self, http: TestClient) -> None:
        self.http = http
        self.token = ""

    def get(self, path: str, **kwargs):
        response = self.http.get(path, **kwargs)
        found = CSRF.search(response.text)
        if found:
            self.token = found.group(1)
        return response

    def post(self, path: str, data: dict | None = None, *, csrf: bool = True, **kwargs):
        if not self.token:
            self.get("/login")
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf", self.token)
        return self.http.post(path, data=form, **kwargs)

    def login(self, name: str, password: str = PASSWORD):
        self.get("/login")
        response = self.post("/login", {"name": name, "password": password})
        self.get("/")
        return response


@pytest.fixture
def make_client(hub_settings: Settings, desk_store: Store) -> Callable[..., Client]:
    def make(role: str | None = "operator", **settings: object) -> Client:
        app = create_app(hub_settings, desk_settings(**settings), store=desk_store)
        client = Client(TestClient(app, follow_redirects=True))
        if role is not None:
            client.login(role)
        return client

    return make


@pytest.fixture
def operator(make_client) -> Client:
    return make_client("operator")
