"""`make desk` stops Dagster with the desk, even where SIGINT reached it ignored.

The Makefile's shell used to start `dagster dev` as a background job, which inherits
an ignored SIGINT; dagster dev maps SIGTERM to its SIGINT handler, so neither Ctrl-C
nor the shell's kill stopped it. demo/desk.py now starts it; this runs that launcher in
a process whose SIGINT is ignored, with a child that, like dagster dev, stops only on
SIGINT (KeyboardInterrupt) and takes a moment to clean up.
"""

from __future__ import annotations

import stat
import subprocess
import sys
import textwrap
from pathlib import Path

from delivery.smtp import SmtpTransport
from tests.polling import poll

CHILD = textwrap.dedent("""
    import pathlib, signal, sys, time
    signal.signal(signal.SIGTERM, signal.getsignal(signal.SIGINT))  # as dagster dev does
    pathlib.Path(sys.argv[1]).write_text("started")
    try:
        while True:
            time.sleep(0.05)
    except KeyboardInterrupt:
        time.sleep(0.2)  # its own clean-up
        pathlib.Path(sys.argv[1]).write_text("stopped by its Ctrl-C")
""")

LAUNCHER = textwrap.dedent("""
    import pathlib, signal, sys, time
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a background job of a plain shell
    from demo.desk import running
    state = pathlib.Path(sys.argv[1])
    with running([sys.executable, "-c", sys.argv[2], str(state)],
                 log=pathlib.Path(sys.argv[3]), stop_seconds=10) as child:
        deadline = time.monotonic() + 30  # bounded: a child that died says so
        while not state.exists():
            if child.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the child never started (exit {child.poll()})")
            time.sleep(0.02)
        print(child.pid, flush=True)
""")


def test_dagster_is_interrupted_and_gone_when_the_desk_stops(tmp_path):
    state = tmp_path / "state"
    done = subprocess.run([sys.executable, "-c", LAUNCHER, str(state), CHILD,
                           str(tmp_path / "dagster-dev.log")],
                          capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.split()[0])
    poll(lambda: not Path(f"/proc/{pid}").exists(), timeout=10)  # no process left behind
    assert state.read_text() == "stopped by its Ctrl-C"  # shut down cleanly, not killed


def test_the_letters_of_make_desk_arrive_as_owner_only_files(tmp_path):
    from email.message import EmailMessage

    from demo.desk import mail_catcher
    from hub.settings import Settings

    with mail_catcher(tmp_path / "mail") as env:
        settings = Settings(_env_file=None, **{k.removeprefix("HUB_").lower(): v
                                               for k, v in env.items()})
        message = EmailMessage()
        message["From"], message["To"] = settings.mail_from, "aino.virtanen@example.fi"
        message["Subject"] = "Pyyntösi on vastaanotettu"
        message.set_content("Hyvä Aino Virtanen, ...")
        SmtpTransport.from_settings(settings).send(message)
    [kept] = list((tmp_path / "mail").iterdir())
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "mail").stat().st_mode) == 0o700
    assert b"Subject: =?utf-8?q?Pyynt=C3=B6si" in kept.read_bytes()
