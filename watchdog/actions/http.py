"""HTTP mode: Slack's Request URL (interactivity and the slash command) on a listener of its
own (``slack.actions.listen``, path ``/slack/actions``), never the metrics port.

Every request is verified before anything is read from it: ``X-Slack-Request-Timestamp``
within 5 minutes of our clock, ``X-Slack-Signature`` (HMAC-SHA256 of ``v0:<timestamp>:<body>``
with the signing secret, compared in constant time by slack-sdk's ``SignatureVerifier``), and
a signature seen before is a replay. Each failure is 401 with no state change. A verified
request is answered 200 at once, then handed to ``ActionService.dispatch``. Bodies are capped
(``MAX_BODY``) and a slow client times out (``READ_TIMEOUT``).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from slack_sdk.signature import Clock as SdkClock
from slack_sdk.signature import SignatureVerifier

from ..clock import Clock
from ..logs import Throttle

log = logging.getLogger("watchdog.actions")

PATH = "/slack/actions"
WINDOW = 300.0  # seconds a timestamp may be off, and a signature is remembered
MAX_BODY = 1024 * 1024  # a block_actions payload carries the whole message: ~50 kB at most
MAX_SEEN = 100_000  # signatures remembered (a replay older than WINDOW is stale anyway)
READ_TIMEOUT = 10.0


class _Now(SdkClock):
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def now(self) -> float:
        return self.clock.now()


class Verifier:
    """Slack's request signing, plus replay protection. Thread-safe."""

    def __init__(self, secret: str, clock: Clock, window: float = WINDOW) -> None:
        self._clock = clock
        self._window = window
        self._sdk = SignatureVerifier(secret, clock=_Now(clock))
        self._seen: dict[str, float] = {}  # signature -> when it may be forgotten
        self._lock = threading.Lock()

    def check(self, body: bytes, timestamp: str | None, signature: str | None) -> str | None:
        """None when the request is Slack's and new; otherwise why not (for the log)."""
        if not timestamp or len(timestamp) > 12 or not timestamp.isdigit():
            return "missing or malformed X-Slack-Request-Timestamp"
        if not signature or len(signature) > 100 or not signature.startswith("v0="):
            return "missing or malformed X-Slack-Signature"
        now = self._clock.now()
        if abs(now - int(timestamp)) > self._window:
            return "stale X-Slack-Request-Timestamp (more than 5 minutes off)"
        if not self._sdk.is_valid(body, timestamp, signature):
            return "bad signature"
        with self._lock:
            if signature in self._seen:
                return "replayed request"
            if len(self._seen) >= MAX_SEEN:
                self._seen = {s: t for s, t in self._seen.items() if t > now}
                while len(self._seen) >= MAX_SEEN:
                    self._seen.pop(next(iter(self._seen)))
            self._seen[signature] = int(timestamp) + self._window
        return None


def decode(body: bytes) -> tuple[str, Any] | None:
    """(envelope kind, payload) of a verified form body; None when it is neither an
    interaction nor a slash command. ``("ssl_check", {})`` for Slack's certificate check."""
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        return None
    fields = {k: v[0] for k, v in form.items() if v}
    if "payload" in fields:
        try:
            return "interactive", json.loads(fields["payload"])
        except ValueError:
            return None
    if "command" in fields:
        return "slash_commands", fields
    if fields.get("ssl_check") == "1":
        return "ssl_check", {}
    return None


class HttpTransport:
    def __init__(
        self,
        host: str,
        port: int,
        secret: str,
        clock: Clock,
        dispatch: Callable[[str, Any], None],
    ) -> None:
        self.verifier = Verifier(secret, clock)
        self.dispatch = dispatch
        self._throttle = Throttle(log, 60.0, now=clock.now)
        transport = self

        class Handler(BaseHTTPRequestHandler):
            timeout = READ_TIMEOUT
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                try:
                    transport._post(self)
                except OSError:  # the client went away mid-answer
                    self.close_connection = True

            def do_GET(self) -> None:
                try:
                    transport._reply(self, 405, "POST only")
                except OSError:
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{PATH}"

    @property
    def connected(self) -> bool:
        """Serving: Slack's requests can reach the handler."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.2,), name="slack-http", daemon=True
        )
        self._thread.start()
        log.info("Slack actions: listening for Slack on %s", self.url)

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()

    def _reply(self, h: BaseHTTPRequestHandler, status: int, text: str) -> None:
        data = text.encode()
        h.send_response(status)
        h.send_header("Content-Type", "text/plain; charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        if status >= 400:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()

    def _post(self, h: BaseHTTPRequestHandler) -> None:
        if urlsplit(h.path).path != PATH:
            self._reply(h, 404, "not found")
            return
        length_text = h.headers.get("Content-Length", "")
        if not length_text.isdigit():
            self._reply(h, 411, "Content-Length required")
            return
        length = int(length_text)
        if length > MAX_BODY:
            self._reply(h, 413, "too large")
            return
        try:
            body = h.rfile.read(length)
        except OSError:  # a slow or vanished client
            h.close_connection = True
            return
        why = self.verifier.check(
            body, h.headers.get("X-Slack-Request-Timestamp"), h.headers.get("X-Slack-Signature")
        )
        if why is not None:
            self._throttle.warning(f"http:{why}", "Slack actions: refused a request (401): %s", why)
            self._reply(h, 401, "invalid request")
            return
        decoded = decode(body)
        if decoded is None:
            self._reply(h, 400, "neither an interaction nor a slash command")
            return
        self._reply(h, 200, "")  # within Slack's 3 seconds; the work comes after
        kind, payload = decoded
        if kind != "ssl_check":
            self.dispatch(kind, payload)
