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

An answer can also misbehave on the wire: ``pace`` trickles its body one byte at a
time, ``chunked`` sends it without a length up front, and a ``content-length`` in its
headers is sent as given (a lie included) instead of the true length.
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
    """What to send back: a status, a body (bytes/str sent as is, anything else as JSON).

    ``pace``: seconds between the body's bytes (0: all at once), a vendor or proxy
    that trickles. ``chunked``: no length up front (chunked transfer encoding), so only
    reading tells how big the body is.
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    pace: float = 0.0
    chunked: bool = False

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
        self._closing = threading.Event()  # ends a trickle when the test is over
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
                if answer.chunked:
                    headers["transfer-encoding"] = "chunked"
                elif not any(k.lower() == "content-length" for k in headers):
                    headers["content-length"] = str(len(body))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                try:
                    self._send_body(body, answer)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up: that is the point

            def _send_body(self, body: bytes, answer: Answer) -> None:
                if answer.pace:
                    for i in range(len(body)):
                        if vendor._closing.wait(answer.pace):
                            self.close_connection = True
                            return
                        self._write(body[i:i + 1], answer.chunked)
                else:
                    step = 64 * 1024
                    for i in range(0, len(body), step):
                        self._write(body[i:i + step], answer.chunked)
                if answer.chunked:
                    self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

            def _write(self, data: bytes, chunked: bool) -> None:
                if chunked:
                    data = b"%x\r\n%s\r\n" % (len(data), data)
                self.wfile.write(data)
                self.wfile.flush()

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
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def truncated(answer: Answer) -> Answer:
    """``answer`` with its body cut in half: a complete HTTP answer (its length true)
    whose JSON or XML stops mid-way, as from a proxy or a vendor that gave up writing."""
    body, ctype = answer.encoded()
    return Answer(answer.status, body[:len(body) // 2],
                  {"content-type": ctype, **answer.headers})


class TruncatedOnce:
    """A handler that answers the first request to ``path`` with its answer truncated,
    then as ``handler`` does: the read the connector must retry, like a 5xx."""

    def __init__(self, path: str, handler: Handler) -> None:
        self.path = path
        self.handler = handler
        self.cut = 0

    def __call__(self, req: Seen) -> Answer:
        answer = self.handler(req)
        if req.path == self.path and not self.cut:
            self.cut += 1
            return truncated(answer)
        return answer
