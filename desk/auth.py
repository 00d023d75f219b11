"""Who may use the desk, and how they prove it.

Named users with their own passwords (argon2id hashes), one of three roles: a
viewer reads, an operator acts on requests, an admin also manages users. A login
that fails too often locks the user for a while (the count and the lock are in the
database, so no new browser or cookie gets round them). The session is a signed
cookie (Starlette's SessionMiddleware) holding a random token whose hash is a row in
`desk_sessions`: logging out deletes the row, so even a copied cookie is dead after
it. Every POST carries the session's CSRF token, compared in constant time. Logins,
failures, locks and new users are in the audit trail, with the user as actor: the
statements promise that use of the register is logged.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import IntEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request

from hub import audit
from hub.models import DeskSessionRow, DeskUserRow

HASHER = PasswordHasher()
# Verified against when the name is unknown, so a wrong name takes as long as a wrong
# password and the answer does not tell which names exist.
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))
NAME = re.compile(r"[a-z][a-z0-9._-]{1,31}")
MIN_PASSWORD_LENGTH = 12
SESSION_TOKEN, SESSION_CSRF, SESSION_LANG = "token", "csrf", "lang"


class Role(IntEnum):
    """Each role may do what the ones below it may."""

    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @classmethod
    def named(cls, name: str) -> Role:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"a role is viewer, operator or admin, not {name!r}") from None

    @property
    def label(self) -> str:
        return self.name.lower()


class NotSignedIn(Exception):
    """The page needs a signed-in user; the desk answers with its login page."""


class Forbidden(Exception):
    """Signed in, but the user's role may not do this (or the CSRF token is wrong)."""


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    language: str | None

    def may(self, role: Role) -> bool:
        return self.role >= role


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    locked_until: datetime | None = None


def _user(row: DeskUserRow) -> User:
    return User(row.name, Role.named(row.role), row.language)


def check_new_user(name: str, password: str) -> None:
    """A name that is safe in an audit trail and a URL, and a password worth having."""
    if not NAME.fullmatch(name):
        raise ValueError("a user name is 2-32 characters: lower-case letters, digits, "
                         "'.', '_' or '-', starting with a letter")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password has at least {MIN_PASSWORD_LENGTH} characters")


def add_user(session: Session, name: str, password: str, role: Role, *, actor: str,
             now: datetime | None = None) -> User:
    """Create a user; ValueError for a taken or unusable name or a short password."""
    check_new_user(name, password)
    if session.get(DeskUserRow, name) is not None:
        raise ValueError(f"a user named {name!r} exists already")
    now = now or datetime.now(UTC)
    row = DeskUserRow(name=name, password_hash=HASHER.hash(password), role=role.label,
                      failed_logins=0, created_at=now)
    session.add(row)
    session.flush()
    audit.append(session, "desk.user_added", {"user": name, "role": role.label},
                 actor=actor, now=now)
    return _user(row)


def set_password(session: Session, name: str, password: str, *, actor: str,
                 now: datetime | None = None) -> None:
    """A new password for an existing user; it also lifts a lock."""
    check_new_user(name, password)
    row = session.get(DeskUserRow, name)
    if row is None:
        raise ValueError(f"there is no user named {name!r}")
    row.password_hash = HASHER.hash(password)
    row.failed_logins, row.locked_until = 0, None
    audit.append(session, "desk.password_set", {"user": name}, actor=actor, now=now)


def list_users(session: Session) -> list[DeskUserRow]:
    return list(session.execute(select(DeskUserRow).order_by(DeskUserRow.name)).scalars())


def authenticate(session: Session, name: str, password: str, *, max_failed: int,
                 lockout: timedelta, now: datetime | None = None) -> LoginResult:
    """The user, or why not; counts failures and locks after `max_failed` in a row.

    A locked user is refused without the password being checked, so guessing on
    during the lock gains nothing. Unknown names are not audited: what someone typed
    into the name field may be anything, even an e-mail address.
    """
    now = now or datetime.now(UTC)
    row = session.get(DeskUserRow, name.strip()) if name.strip() else None
    if row is None:
        _verify(_DUMMY_HASH, password)
        return LoginResult(None)
    if row.locked_until is not None and row.locked_until > now:
        audit.append(session, "desk.login_refused_locked", {}, actor=row.name, now=now)
        return LoginResult(None, row.locked_until)
    if not _verify(row.password_hash, password):
        row.failed_logins = (row.failed_logins or 0) + 1
        audit.append(session, "desk.login_failed", {"in_a_row": row.failed_logins},
                     actor=row.name, now=now)
        if row.failed_logins >= max_failed:
            row.locked_until, row.failed_logins = now + lockout, 0
            audit.append(session, "desk.locked", {"until": row.locked_until.isoformat()},
                         actor=row.name, now=now)
            return LoginResult(None, row.locked_until)
        return LoginResult(None)
    row.failed_logins, row.locked_until = 0, None
    if HASHER.check_needs_rehash(row.password_hash):
        row.password_hash = HASHER.hash(password)
    audit.append(session, "desk.login", {}, actor=row.name, now=now)
    return LoginResult(_user(row))


def _verify(digest: str, password: str) -> bool:
    try:
        return HASHER.verify(digest, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def load_user(session: Session, request: Request, *, max_age: timedelta,
              now: datetime | None = None) -> User | None:
    """The signed-in user as the database has them now: a session logged out, expired
    or of a deleted user is nobody, and a changed role applies at once."""
    token = request.session.get(SESSION_TOKEN)
    if not isinstance(token, str):
        return None
    row = session.get(DeskSessionRow, _token_hash(token))
    if row is None or row.created_at + max_age < (now or datetime.now(UTC)):
        return None
    user = session.get(DeskUserRow, row.user_name)
    return _user(user) if user is not None else None


def set_language(session: Session, name: str, language: str) -> None:
    row = session.get(DeskUserRow, name)
    if row is not None:
        row.language = language


def begin_session(session: Session, request: Request, user: User, *,
                  now: datetime | None = None) -> None:
    """A new session for the user: nothing from before the login survives into it."""
    token = secrets.token_urlsafe(32)
    session.add(DeskSessionRow(token_hash=_token_hash(token), user_name=user.name,
                               created_at=now or datetime.now(UTC)))
    chosen = user.language or request.session.get(SESSION_LANG)  # or the login page's
    request.session.clear()
    request.session[SESSION_TOKEN] = token
    request.session[SESSION_CSRF] = secrets.token_urlsafe(32)
    if chosen:
        request.session[SESSION_LANG] = chosen


def end_session(session: Session, request: Request) -> None:
    """Log out: the session's row goes, so its cookie signs nobody in again."""
    token = request.session.get(SESSION_TOKEN)
    if isinstance(token, str):
        row = session.get(DeskSessionRow, _token_hash(token))
        if row is not None:
            session.delete(row)
    request.session.clear()


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use (the login form needs one too)."""
    token = request.session.get(SESSION_CSRF)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session[SESSION_CSRF] = token
    return token


def check_csrf(request: Request, sent: object) -> None:
    expected = request.session.get(SESSION_CSRF)
    if not (isinstance(expected, str) and isinstance(sent, str)
            and hmac.compare_digest(expected.encode(), sent.encode())):
        raise Forbidden("csrf")
