"""`make desk`: the privacy desk over the sandbox's hub, with a demo user.

Run by the Makefile beside the emulated vendors and Dagster (whose sensor runs the
requests verified on the desk). Sandbox mode only: a user whose password is printed
on a terminal has no place where real people's data is.
"""

from __future__ import annotations

import secrets
import sys

from desk import auth
from desk.app import serve
from desk.settings import DeskSettings
from hub.settings import Mode, load_settings
from hub.store import open_store

USER = "demo"


def main() -> int:
    settings = load_settings()
    if settings.mode != Mode.SANDBOX:
        print("make desk runs in sandbox mode only (HUB_MODE=sandbox)", file=sys.stderr)
        return 3
    password = secrets.token_urlsafe(12)
    store = open_store(settings)
    try:
        with store.session() as session:
            if any(u.name == USER for u in auth.list_users(session)):
                auth.set_password(session, USER, password, actor="make desk")
            else:
                auth.add_user(session, USER, password, auth.Role.ADMIN, actor="make desk")
    finally:
        store.close()
    desk = DeskSettings()
    print(f"\nthe desk: http://{desk.host}:{desk.port}/   user {USER}   password {password}\n"
          "(a new password every start; Ctrl-C stops the desk, Dagster and the sandbox)\n",
          flush=True)
    serve(settings, desk, host=desk.host, port=desk.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
