"""Serve a Simulator over real HTTP: wsgiref + ThreadingMixIn, daemon threads, no request log."""

from __future__ import annotations

import socket
import socketserver
import threading
from types import TracebackType
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from .app import Simulator

POLL_INTERVAL = 0.02  # seconds; how quickly stop() is noticed by the serving loop


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Silent: no line per request on stderr."""


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (socket.getfqdn), which can stall on
        # hosts without DNS; the simulator does not need it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)
        self.setup_environ()


class _Server6(_Server):
    address_family = socket.AF_INET6


class RunningServer:
    """A simulator listening on ``host:port``; ``url`` is the API base (``.../v1``)."""

    def __init__(self, sim: Simulator, host: str, port: int) -> None:
        self.sim = sim
        server_class = _Server6 if ":" in host else _Server
        self._server = server_class((host, port), _Handler)
        self._server.set_app(sim)
        self.host = host
        self.port = int(self._server.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        self.origin = f"http://{shown}:{self.port}"
        self.url = f"{self.origin}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL},
            name=f"dialnexa-sim:{self.port}",
            daemon=True,
        )
        self._thread.start()
        self._stopped = False

    def stop(self) -> None:
        """Stop serving, release held responses and close the socket (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        self.sim.release_held()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(sim: Simulator, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Start serving ``sim`` in a background thread (port 0 = any free port)."""
    return RunningServer(sim, host, port)
