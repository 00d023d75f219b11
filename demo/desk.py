"""`make desk`: the privacy desk over the sandbox's hub, with a demo user, and Dagster.

Run by the Makefile beside the emulated vendors. Unless HUB_SMTP_HOST says where mail
goes, the letters and ops mails the sensor sends arrive at a local mail catcher that
keeps each as a file under .hub/mail/ (owner-only), so a request filed on the desk
shows its letters sent and they can be read. It starts Dagster (whose sensor runs
the requests verified on the desk) itself and stops it when the desk stops: started as
a background job of the Makefile's shell, `dagster dev` inherited an ignored SIGINT,
and it maps SIGTERM to its SIGINT handler, so Ctrl-C left it running with the UI,
daemon and code server. Sandbox mode only: a user whose password is printed on a
terminal has no place where real people's data is.
"""

from __future__ import annotations

import itertools
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

from desk import auth
from desk.app import serve
from desk.settings import DeskSettings
from hub.db import private_folder
from hub.settings import Mode, load_settings
from hub.store import open_store

USER = "demo"
# dagster dev waits up to 60 s for its webserver and daemon; past that it is killed.
STOP_SECONDS = 90.0


def _own_session_with_default_sigint() -> None:
    """In the child, before exec: its own session (stopped by us alone, not twice by a
    terminal's Ctrl-C), and SIGINT as Python expects it, even where ours was ignored."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def running(command: Sequence[str], *, log: Path, env: dict[str, str] | None = None,
            stop_seconds: float = STOP_SECONDS) -> Iterator[subprocess.Popen]:
    """The command running while the block runs; then interrupted (its Ctrl-C, which
    lets dagster dev stop its children) and, if it outlives stop_seconds, killed with
    its whole process group."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        child = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, env=env,
                                 preexec_fn=_own_session_with_default_sigint)
    try:
        yield child
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=stop_seconds)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        with suppress(ProcessLookupError):  # anything of its group that outlived it
            os.killpg(child.pid, signal.SIGKILL)


class Mailbox:
    """aiosmtpd's handler: each message that arrives is one .eml file, owner-only (a
    letter holds the subject's personal data)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.numbers = itertools.count(1)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
        path = self.folder / f"{os.getpid()}-{next(self.numbers):04d}.eml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(envelope.original_content or envelope.content)
        return "250 kept in " + path.name


@contextmanager
def mail_catcher(folder: Path) -> Iterator[dict[str, str]]:
    """A local SMTP server on loopback while the block runs; yields the HUB_* settings
    that send the hub's mail to it."""
    from aiosmtpd.controller import Controller

    private_folder(folder)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Mailbox(folder), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield {"HUB_SMTP_HOST": "127.0.0.1", "HUB_SMTP_PORT": str(port),
               "HUB_SMTP_SECURITY": "none",
               "HUB_MAIL_FROM": "Tietosuoja <tietosuoja@sandbox.example>",
               "HUB_OPS_EMAIL": "ops@sandbox.example"}
    finally:
        controller.stop()


def dagster_command(ui_url: str) -> list[str]:
    where = urlsplit(ui_url)
    return [sys.executable, "-m", "dagster", "dev", "-m", "pipelines.definitions",
            "-h", where.hostname or "127.0.0.1", "-p", str(where.port or 3000)]


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
    log = settings.home / "dagster-dev.log"
    with ExitStack() as stack:
        mail = {}
        if not settings.smtp_host:  # the deployment's own mail server wins
            mail = stack.enter_context(mail_catcher(settings.home / "mail"))
        env = {**mail, **os.environ, "HUB_MODE": "sandbox",
               "DAGSTER_HOME": os.environ.get("DAGSTER_HOME")
               or str((settings.home / "dagster").resolve())}
        stack.enter_context(running(dagster_command(desk.dagster_ui_url), log=log, env=env))
        print(f"\nDagster: {desk.dagster_ui_url}/ (its log: {log})\n"
              + (f"letters and ops mail: {settings.home / 'mail'}/\n" if mail else "")
              + f"the desk: http://{desk.host}:{desk.port}/   user {USER}   password "
              f"{password}\n"
              "(a new password every start; Ctrl-C stops the desk, Dagster and the sandbox)\n",
              flush=True)
        serve(settings, desk, host=desk.host, port=desk.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
