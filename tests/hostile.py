"""A small hostile vendor: a real HTTP server on loopback whose answers a test scripts.

Connectors are tested against what a vendor can really send over the wire (a 200
with `{}`, an HTML page, a list where an object belongs, a read-back that still
shows the record), not against mocks of our own functions. Each test gives a
handler; the server answers every request with what the handler returns and keeps
the requests it saw.

    def handler(req: Seen) -> Answer:
        if req.path.endswith("/search"):
            return Answer(200, {"success": True})   # no data: a protocol error
        return Answer(404, {"success": False})

    with HostileVendor(handler) as vendor:
        connector = PipedriveConnector(vendor.url, "token", retry=fast)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Seen:
    """One request the hostile vendor received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Answer:
    """What to send back: a status, a body (bytes/str sent as is, anything else as JSON)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/html; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json"


Handler = Callable[[Seen], Answer]


class HostileVendor:
    """A threaded HTTP server on 127.0.0.1 with a free port; a context manager."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.seen: list[Seen] = []
        vendor = self

        class _Request(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in two writes; with Nagle on, the body waits for the
            # client's delayed ACK (~40 ms a request on Linux loopback).
            disable_nagle_algorithm = True

            def _answer(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                seen = Seen(self.command, parts.path, parse_qs(parts.query),
                            {k.lower(): v for k, v in self.headers.items()},
                            self.rfile.read(length) if length else b"")
                vendor.seen.append(seen)
                answer = vendor.handler(seen)
                body, ctype = answer.encoded()
                self.send_response(answer.status)
                headers = {"content-type": ctype, **answer.headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # the test reads `seen`; nothing on stderr

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Request)
        self._server.daemon_threads = True
        # A short poll: shutdown() waits up to one poll interval (0.5 s by default).
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HostileVendor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
