"""Signing in to the desk: passwords, lockout, CSRF, roles, logout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from desk import auth
from hub.models import AuditEventRow, DeskSessionRow, DeskUserRow, SubjectRequestRow
from tests.desk.conftest import PASSWORD


def events(store, action: str) -> list[AuditEventRow]:
    with store.session() as session:
        return list(session.execute(select(AuditEventRow).where(
            AuditEventRow.action == action)).scalars())


def requests_filed(store) -> int:
    with store.session() as session:
        return session.execute(select(func.count()).select_from(SubjectRequestRow)).scalar_one()


def test_a_page_without_a_session_sends_to_the_login(make_client):
    client = make_client(None)
    response = client.get("/")
    assert response.url.path == "/login"
    assert 'name="password"' in response.text


def test_the_right_password_signs_in_and_is_audited(make_client, desk_store):
    client = make_client(None)
    client.login("operator")
    page = client.get("/")
    assert page.url.path == "/" and "operator" in page.text
    assert [e.actor for e in events(desk_store, "desk.login")] == ["operator"]


def test_a_wrong_password_is_refused_and_counted(make_client, desk_store):
    client = make_client(None)
    response = client.login("operator", "not the password at all")
    assert response.status_code == 401
    assert client.get("/").url.path == "/login"
    failed = events(desk_store, "desk.login_failed")
    assert [e.actor for e in failed] == ["operator"]


def test_an_unknown_name_gets_the_same_answer_and_is_not_audited(make_client, desk_store):
    client = make_client(None)
    wrong_name = client.login("someone@example.fi", PASSWORD)
    wrong_password = client.login("viewer", "not the password at all")
    assert wrong_name.status_code == wrong_password.status_code == 401
    assert "example.fi" not in "".join(e.payload + e.actor for e in events(
        desk_store, "desk.login_failed"))


def test_repeated_failures_lock_the_user_even_against_the_right_password(make_client,
                                                                          desk_store):
    client = make_client(None, max_failed_logins=3, lockout_minutes=10)
    for _ in range(3):
        assert client.login("operator", "guess guess guess").status_code == 401
    locked = client.login("operator", PASSWORD)
    assert locked.status_code == 401
    assert "locked until" in locked.text or "lukittu" in locked.text
    assert client.get("/").url.path == "/login"
    # Another browser (no cookie) is locked out too: the lock is in the database.
    other = make_client(None, max_failed_logins=3, lockout_minutes=10)
    assert other.login("operator", PASSWORD).status_code == 401
    assert len(events(desk_store, "desk.locked")) == 1
    with desk_store.session() as session:
        assert session.get(DeskUserRow, "operator").locked_until is not None
    # Other users are not affected.
    assert make_client(None).login("admin").status_code == 200


def test_a_post_without_the_csrf_token_is_refused_and_does_nothing(operator, desk_store):
    form = {"kind": "erasure", "emails": "aino.virtanen@example.fi", "channel": "email",
            "language": "fi"}
    missing = operator.post("/requests", form, csrf=False)
    forged = operator.post("/requests", {**form, "csrf": "forged"}, csrf=False)
    assert missing.status_code == forged.status_code == 403
    assert requests_filed(desk_store) == 0
    assert operator.post("/requests", form).status_code == 200
    assert requests_filed(desk_store) == 1


def test_a_login_form_needs_its_csrf_token_too(make_client, desk_store):
    client = make_client(None)
    client.get("/login")
    response = client.post("/login", {"name": "operator", "password": PASSWORD},
                           csrf=False)
    assert response.status_code == 403
    assert events(desk_store, "desk.login") == []


def test_a_viewer_reads_but_may_not_act(make_client, desk_store):
    viewer = make_client("viewer")
    assert viewer.get("/").status_code == 200
    assert viewer.get("/audit").status_code == 200
    assert viewer.get("/requests/new").status_code == 403
    refused = viewer.post("/requests", {"kind": "erasure", "emails": "a.b@example.fi"})
    assert refused.status_code == 403 and requests_filed(desk_store) == 0
    assert viewer.get("/users").status_code == 403


def test_only_an_admin_manages_users(make_client, desk_store):
    operator = make_client("operator")
    assert operator.get("/users").status_code == 403
    refused = operator.post("/users", {"name": "eve", "role": "admin", "password": PASSWORD,
                                       "password2": PASSWORD})
    assert refused.status_code == 403
    admin = make_client("admin")
    added = admin.post("/users", {"name": "pekka", "role": "viewer", "password": PASSWORD,
                                  "password2": PASSWORD})
    assert added.status_code == 200 and "pekka" in added.text
    [event] = events(desk_store, "desk.user_added")[-1:]
    assert event.actor == "admin" and "pekka" in event.payload
    assert make_client(None).login("pekka").status_code == 200
    with desk_store.session() as session:
        assert session.get(DeskUserRow, "eve") is None
        assert session.get(DeskUserRow, "pekka").password_hash.startswith("$argon2id$")


def test_logout_ends_the_session(operator, desk_store):
    assert operator.post("/logout").url.path == "/login"
    assert operator.get("/").url.path == "/login"
    assert [e.actor for e in events(desk_store, "desk.logout")] == ["operator"]


def test_a_cookie_copied_before_logout_signs_nobody_in_after_it(make_client, desk_store):
    browser = make_client("operator")
    copied = dict(browser.http.cookies)
    thief = make_client(None)
    thief.http.cookies.update(copied)
    assert thief.get("/").url.path == "/"  # the same session, while it lasts
    browser.post("/logout")
    assert thief.get("/").url.path == "/login"
    with desk_store.session() as session:
        assert session.execute(select(func.count()).select_from(DeskSessionRow)).scalar_one() \
            == 0


def test_a_session_ends_after_its_maximum_age(make_client, desk_store):
    client = make_client("operator", session_max_age_minutes=30)
    assert client.get("/").url.path == "/"
    with desk_store.session() as session:
        for row in session.execute(select(DeskSessionRow)).scalars():
            row.created_at = datetime.now(UTC) - timedelta(minutes=31)
    assert client.get("/").url.path == "/login"


def test_a_user_removed_from_the_database_is_signed_out_at_once(operator, desk_store):
    with desk_store.session() as session:
        session.delete(session.get(DeskUserRow, "operator"))
    assert operator.get("/").url.path == "/login"


def test_the_session_cookie_is_http_only_same_site_and_secure_when_asked(make_client):
    plain = make_client(None)
    cookie = plain.get("/login").headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    secure = make_client(None, https_only=True)
    assert "secure" in secure.get("/login").headers["set-cookie"].lower()


def test_a_short_password_or_odd_name_is_refused(desk_store):
    with desk_store.session() as session:
        for name, password in (("ok", "short"), ("Bad Name", PASSWORD), ("x@y.fi", PASSWORD)):
            try:
                auth.add_user(session, name, password, auth.Role.VIEWER, actor="test")
            except ValueError:
                continue
            raise AssertionError(f"{name!r} was accepted")


def test_the_lock_holds_and_ends_on_every_database(store):
    """The lock's time is compared in the database's own types (SQLite and PostgreSQL)."""
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    with store.session() as session:
        auth.add_user(session, "liisa", PASSWORD, auth.Role.OPERATOR, actor="test")
    for minute in range(2):
        with store.session() as session:
            result = auth.authenticate(session, "liisa", "wrong wrong wrong", max_failed=2,
                                       lockout=timedelta(minutes=15),
                                       now=start + timedelta(minutes=minute))
    assert result.locked_until == start + timedelta(minutes=16)
    with store.session() as session:
        during = auth.authenticate(session, "liisa", PASSWORD, max_failed=2,
                                   lockout=timedelta(minutes=15),
                                   now=start + timedelta(minutes=10))
    with store.session() as session:
        after = auth.authenticate(session, "liisa", PASSWORD, max_failed=2,
                                  lockout=timedelta(minutes=15),
                                  now=start + timedelta(minutes=17))
    assert during.user is None and after.user is not None and after.user.name == "liisa"
