"""HTTP: ``/metrics``, ``/healthz`` and ``/readyz`` on ``metrics.listen``. The I/O edge."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST

from .model import PollStatus


class _Metrics(Protocol):
    def body(self) -> bytes: ...


class Served(Protocol):
    """What the endpoints read (``daemon.Watchdog``)."""

    @property
    def metrics(self) -> _Metrics: ...
    @property
    def alive(self) -> bool: ...
    @property
    def ready(self) -> bool: ...
    @property
    def status(self) -> PollStatus: ...


def make_http_server(wd: Served, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        server_version = "dialnexa-watchdog"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, wd.metrics.body(), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok = wd.alive
                self._send(200 if ok else 503, b"ok\n" if ok else b"poll loop stalled\n")
            elif path == "/readyz":
                if wd.ready:
                    self._send(200, b"ready\n")
                else:
                    s = wd.status
                    why = "backfill not done" if not s.backfilled else "no recent successful poll"
                    if s.last_error:
                        why += f" (last error: {s.last_error})"
                    self._send(503, (why + "\n").encode())
            elif path == "/":
                self._send(200, b"dialnexa-watchdog: /metrics /healthz /readyz\n")
            else:
                self._send(404, b"not found\n")

        do_HEAD = do_GET

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
