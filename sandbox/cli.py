"""`hub sandbox serve` (and `python -m sandbox serve`): all vendor emulators on loopback.

Prints each base URL and the credentials, writes them as a .env-style file the hub
loads (mode 0600, because it holds keys even if fake ones), and runs until Ctrl-C or
SIGTERM, then stops every server and exits 0.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType

import typer

from sandbox.vendors import EMULATORS as ALL_VENDORS

app = typer.Typer(help="Local emulators of Pipedrive, Mailchimp, Typeform and Netvisor.",
                  no_args_is_help=True)


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """Write KEY=value lines with mode 0600, creating parent directories."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("# written by `hub sandbox serve`; fake credentials for the local sandbox\n")
        for key, value in env.items():
            fh.write(f"{key}={value}\n")
    os.chmod(path, 0o600)


@app.callback()
def main() -> None:
    """Sandbox commands."""


@app.command()
def serve(
    people: int = typer.Option(200, "--people", help="How many seeded people."),
    seed: int = typer.Option(42, "--seed", help="Seed: same seed, same data and keys."),
    port_base: int = typer.Option(8700, "--port-base",
                                  help="Vendors listen on port_base+1..+4 (0: ephemeral)."),
    env_file: Path = typer.Option(Path(".hub/sandbox.env"), "--env-file"),
    latency_ms: float = typer.Option(0, "--latency-ms"),
    error_rate: float = typer.Option(0, "--error-rate"),
    rate_limit_rate: float = typer.Option(0, "--rate-limit-rate"),
    drop_rate: float = typer.Option(0, "--drop-rate"),
    malformed_rate: float = typer.Option(0, "--malformed-rate"),
) -> None:
    """Start every vendor emulator on 127.0.0.1 and run until interrupted."""
    # Here, not at the top: `hub` mounts these commands, and every other `hub` command
    # would pay for the web server and Faker at start.
    from sandbox.faults import Faults
    from sandbox.server import Sandbox

    faults = {v: Faults(latency_ms=latency_ms, error_rate=error_rate,
                        rate_limit_rate=rate_limit_rate, drop_rate=drop_rate,
                        malformed_rate=malformed_rate, seed=seed)
              for v in ALL_VENDORS}
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    box = Sandbox(people=people, seed=seed, port_base=port_base, faults=faults)
    try:
        box.start()
        write_env_file(env_file, box.env)
        for vendor, url in box.urls.items():
            typer.echo(f"{vendor:10s} {url}")
        typer.echo("")
        for key, value in box.env.items():
            typer.echo(f"{key}={value}")
        typer.echo(f"\nwrote {env_file}; Ctrl-C to stop")
        while not stop.wait(0.5):
            pass
    finally:
        box.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    typer.echo("sandbox stopped")
