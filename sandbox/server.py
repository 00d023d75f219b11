"""Start the vendor emulators on loopback: in threads (tests) or in a child process (benchmarks).

`VENDORS` maps a vendor name (from `sandbox/vendors.py`, the one list) to its module;
each module exposes `build_app(people: list[Person], seed: int, settings: dict) ->
Starlette` (built with `sandbox.faults.make_vendor_app`). Modules are imported lazily,
and a vendor whose module does not exist yet is skipped, so the sandbox runs with
whatever vendors exist.

`credentials(seed)` is the single place the fixed-per-seed credentials come from; the
vendor apps call it to know which token/key to accept, and `Sandbox.env` publishes
them, so `.hub/sandbox.env` stays valid across restarts with the same seed.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import multiprocessing
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import uvicorn

from sandbox.faults import Faults
from sandbox.people import Person, generate_people
from sandbox.vendors import EMULATORS, PORT_OFFSET

ALL_VENDORS = EMULATORS
VENDORS: dict[str, str] = {v: f"sandbox.{v}" for v in ALL_VENDORS}
MAILCHIMP_DC = "us21"
NETVISOR_ORGANISATION_ID = "1967543-8"


def _derive(seed: int, label: str, n: int) -> str:
    return hashlib.sha256(f"gdpr-hub-sandbox:{seed}:{label}".encode()).hexdigest()[:n]


def credentials(seed: int) -> dict[str, str]:
    """Credentials every vendor accepts for this seed (deterministic, not secret)."""
    return {
        "PIPEDRIVE_API_TOKEN": _derive(seed, "pipedrive", 40),
        "MAILCHIMP_API_KEY": f"{_derive(seed, 'mailchimp', 32)}-{MAILCHIMP_DC}",
        "TYPEFORM_TOKEN": "tfp_" + _derive(seed, "typeform", 44),
        "NETVISOR_SENDER": "gdpr-hub-sandbox",
        "NETVISOR_CUSTOMER_ID": "SB_" + _derive(seed, "nv-customer-id", 12).upper(),
        "NETVISOR_PARTNER_ID": "SBP_" + _derive(seed, "nv-partner-id", 8).upper(),
        "NETVISOR_CUSTOMER_KEY": _derive(seed, "nv-customer-key", 32).upper(),
        "NETVISOR_PARTNER_KEY": _derive(seed, "nv-partner-key", 32).upper(),
        "NETVISOR_ORGANISATION_ID": NETVISOR_ORGANISATION_ID,
        "NETVISOR_LANGUAGE": "FI",
    }


def load_builder(vendor: str) -> Callable[..., Any] | None:
    """The vendor's `build_app`, or None when its module is not there (yet)."""
    module_name = VENDORS[vendor]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return None
        raise
    return getattr(module, "build_app", None)


def env_for(urls: dict[str, str], seed: int) -> dict[str, str]:
    """The environment contract with the connectors (names must not change)."""
    creds = credentials(seed)
    env: dict[str, str] = {}
    if "pipedrive" in urls:
        env["PIPEDRIVE_BASE_URL"] = urls["pipedrive"]
        env["PIPEDRIVE_API_TOKEN"] = creds["PIPEDRIVE_API_TOKEN"]
    if "mailchimp" in urls:
        env["MAILCHIMP_BASE_URL"] = urls["mailchimp"] + "/3.0"
        env["MAILCHIMP_API_KEY"] = creds["MAILCHIMP_API_KEY"]
    if "typeform" in urls:
        env["TYPEFORM_BASE_URL"] = urls["typeform"]
        env["TYPEFORM_TOKEN"] = creds["TYPEFORM_TOKEN"]
    if "netvisor" in urls:
        env["NETVISOR_BASE_URL"] = urls["netvisor"]
        for key in ("NETVISOR_SENDER", "NETVISOR_CUSTOMER_ID", "NETVISOR_PARTNER_ID",
                    "NETVISOR_CUSTOMER_KEY", "NETVISOR_PARTNER_KEY",
                    "NETVISOR_ORGANISATION_ID", "NETVISOR_LANGUAGE"):
            env[key] = creds[key]
    env["HUB_MODE"] = "sandbox"
    return env


class _ThreadServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # older uvicorn; threads cannot anyway
        pass


def _wait_until_answering(host: str, port: int, deadline: float) -> None:
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"sandbox server on {host}:{port} did not start") from None
            time.sleep(0.02)


class Sandbox:
    """All vendor emulators on loopback; a context manager yielding `.urls` and `.env`."""

    def __init__(
        self,
        people: int = 200,
        seed: int = 42,
        host: str = "127.0.0.1",
        port_base: int = 0,
        faults: dict[str, Faults] | None = None,
        vendors: Sequence[str] = ALL_VENDORS,
        in_process: bool = True,
        settings: dict[str, dict[str, Any]] | None = None,
        startup_timeout: float = 120.0,
        population: list[Person] | None = None,
    ) -> None:
        self.n_people = people
        self.seed = seed
        self.host = host
        self.port_base = port_base
        self.faults = faults or {}
        self.vendors = tuple(vendors)
        self.in_process = in_process
        self.settings = settings or {}
        self.startup_timeout = startup_timeout
        self.urls: dict[str, str] = {}
        self.env: dict[str, str] = {}
        self.apps: dict[str, Any] = {}
        self.people: list[Person] = population or []
        self._servers: list[tuple[_ThreadServer, threading.Thread]] = []
        self._procs: list[Any] = []
        self._stop_event: Any = None

    # -- in-process -------------------------------------------------------------------
    def _start_threads(self) -> None:
        if not self.people:
            self.people = generate_people(self.n_people, self.seed)
        deadline = time.monotonic() + self.startup_timeout
        for vendor in self.vendors:
            build = load_builder(vendor)
            if build is None:
                continue
            app = build(self.people, self.seed, dict(self.settings.get(vendor, {})))
            if vendor in self.faults and hasattr(app.state, "sandbox"):
                app.state.sandbox.set_faults(self.faults[vendor], initial=True)
            port = self.port_base + PORT_OFFSET[vendor] if self.port_base else 0
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, port))
            port = sock.getsockname()[1]
            config = uvicorn.Config(app, log_level="critical", access_log=False,
                                    lifespan="off", timeout_graceful_shutdown=2)
            server = _ThreadServer(config)
            thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                                      name=f"sandbox-{vendor}", daemon=True)
            thread.start()
            self._servers.append((server, thread))
            self.apps[vendor] = app
            _wait_until_answering(self.host, port, deadline)
            self.urls[vendor] = f"http://{self.host}:{port}"

    def _stop_threads(self) -> None:
        for server, _ in self._servers:
            server.should_exit = True
        for server, thread in self._servers:
            thread.join(timeout=5)
            if thread.is_alive():
                server.force_exit = True
                thread.join(timeout=2)
        self._servers.clear()

    # -- child processes --------------------------------------------------------------
    def _start_process(self) -> None:
        """One child process per vendor: builds run in parallel and no vendor shares a GIL
        with another or with the client being measured."""
        ctx = multiprocessing.get_context("spawn")
        self._stop_event = ctx.Event()
        waiting = []
        # Generate once here; children get a pickled copy instead of regenerating it,
        # and `people` is what they serve, as in-process.
        if not self.people:
            self.people = generate_people(self.n_people, self.seed)
        population = self.people
        for vendor in self.vendors:
            parent_conn, child_conn = ctx.Pipe()
            kwargs = dict(people=self.n_people, seed=self.seed, host=self.host,
                          port_base=self.port_base, faults=self.faults, vendors=(vendor,),
                          settings=self.settings, startup_timeout=self.startup_timeout,
                          population=population)
            proc = ctx.Process(target=_child_main, args=(kwargs, child_conn, self._stop_event),
                               name=f"sandbox-{vendor}", daemon=True)
            proc.start()
            self._procs.append(proc)
            waiting.append((vendor, proc, parent_conn))
        deadline = time.monotonic() + self.startup_timeout
        urls: dict[str, str] = {}
        for vendor, proc, conn in waiting:
            while not conn.poll(0.2):
                if not proc.is_alive():
                    raise RuntimeError(f"sandbox child for {vendor} died during start-up")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"sandbox child for {vendor} did not start in time")
            message = conn.recv()
            if "error" in message:
                raise RuntimeError(f"sandbox child for {vendor} failed: {message['error']}")
            urls.update(message["urls"])
        self.urls = {v: urls[v] for v in self.vendors if v in urls}

    def _stop_process(self) -> None:
        if self._stop_event is not None:
            self._stop_event.set()
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        self._procs.clear()

    # -- public -----------------------------------------------------------------------
    def start(self) -> Sandbox:
        """Start every available vendor and wait (bounded) until each answers."""
        try:
            if self.in_process:
                self._start_threads()
            else:
                self._start_process()
        except BaseException:
            self.stop()
            raise
        self.env = env_for(self.urls, self.seed)
        return self

    def stop(self) -> None:
        """Stop all servers; bounded, idempotent."""
        if self.in_process:
            self._stop_threads()
        else:
            self._stop_process()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _child_main(kwargs: dict[str, Any], conn: Any, stop_event: Any) -> None:
    """Child-process body: serve in threads, report the URLs, wait for the stop event."""
    try:
        box = Sandbox(in_process=True, **kwargs).start()
    except BaseException as exc:  # report, do not hang the parent
        with contextlib.suppress(Exception):
            conn.send({"error": repr(exc)})
        return
    conn.send({"urls": box.urls})
    try:
        stop_event.wait()
    finally:
        box.stop()
