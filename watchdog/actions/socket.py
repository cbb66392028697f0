"""Socket Mode: slack-sdk's built-in client holds an outbound WebSocket (opened with the
app-level token through ``apps.connections.open``), so Slack needs no way in: the daemon can
run behind NAT, under systemd or in a cluster.

Every envelope is acknowledged first (Slack wants it within 3 seconds, and redelivers what is
not acknowledged), then handed to ``ActionService.dispatch``. The client reconnects by itself
when Slack asks (a ``disconnect`` message) or the connection drops; an envelope whose
acknowledgement was lost is delivered again and applies once (``AlertPipeline.act``). If the
first connection cannot be made (a revoked token, no network), it is tried again with backoff
until it works or the daemon stops; each failure is logged with what to fix.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.builtin import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web import WebClient

log = logging.getLogger("watchdog.actions")


class _OncePerMinute(logging.Filter):
    """slack-sdk retries a failing reconnect every ping interval and logs each attempt: keep
    one line per kind of message per minute."""

    def __init__(self) -> None:
        super().__init__()
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        kind = re.sub(r"\(session id: [^)]*\)|[0-9a-f-]{36}", "", str(record.msg))[:80]
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(kind, -1e9) < 60.0:
                return False
            if len(self._last) > 1000:
                self._last.clear()
            self._last[kind] = now
        return True


# slack-sdk's own lines (reconnects, handshakes) at WARNING and above, through our formatters
_sdk_logger = logging.getLogger("watchdog.actions.socket_mode")
_sdk_logger.setLevel(logging.WARNING)
_sdk_logger.addFilter(_OncePerMinute())

KINDS = ("interactive", "slash_commands")
FIXES = {
    "invalid_auth": "slack.app_token is not valid: copy the app-level token (xapp-...) from "
    "the app's Basic Information page",
    "not_allowed_token_type": "slack.app_token must be an app-level token (xapp-...) with "
    "the connections:write scope, not a bot token",
    "missing_scope": "the app-level token lacks connections:write: add it under Basic "
    "Information, App-Level Tokens",
    "token_revoked": "the app-level token was revoked: generate a new one",
}


def describe(exc: Exception) -> str:
    """A connection failure in a few words, and the fix when we know one; never a secret."""
    if isinstance(exc, SlackApiError):
        data = exc.response.data if isinstance(exc.response.data, dict) else {}
        error = str(data.get("error") or f"HTTP {exc.response.status_code}")[:64]
        fix = FIXES.get(error)
        return f"{error}; fix: {fix}" if fix else error
    return type(exc).__name__


class SocketTransport:
    def __init__(
        self,
        app_token: str,
        api_url: str,
        dispatch: Callable[[str, Any], None],
        *,
        timeout: float = 10.0,
        ping_interval: float = 10.0,
        retry_max: float = 300.0,
    ) -> None:
        """``ping_interval``: seconds between pings; a connection silent for four of them is
        replaced, and a dropped one is noticed within one."""
        self._dispatch = dispatch
        self._app_token = app_token
        self._api_url = api_url
        self._timeout = timeout
        self._ping_interval = ping_interval
        self._retry_max = retry_max
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.client: SocketModeClient | None = None
        self.connected_once = threading.Event()

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.is_connected()

    def start(self) -> None:
        """Connect in the background (first attempt at once, then with backoff). The
        client's threads start here, not when the transport is built."""
        web = WebClient(
            base_url=self._api_url,
            timeout=cast(int, self._timeout),
            retry_handlers=[],
            logger=_sdk_logger,
        )
        self.client = SocketModeClient(
            self._app_token,
            logger=_sdk_logger,
            web_client=web,
            auto_reconnect_enabled=True,
            ping_interval=self._ping_interval,
            concurrency=4,
        )
        self.client.socket_mode_request_listeners.append(self._on_request)
        self._thread = threading.Thread(
            target=self._connect, args=(self.client,), name="slack-socket", daemon=True
        )
        self._thread.start()

    def _connect(self, client: SocketModeClient) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                client.connect()
            except Exception as exc:
                log.error(
                    "Slack Socket Mode: cannot connect (%s); retrying in %gs", describe(exc), delay
                )
            else:
                # from here on the client's own monitor reconnects (every ping_interval)
                if client.is_connected():
                    log.info("Slack Socket Mode connected: buttons and /dialnexa are live")
                    self.connected_once.set()
                else:
                    log.error("Slack Socket Mode: the WebSocket handshake failed; retrying")
                return
            if self._stop.wait(delay):
                return
            delay = min(self._retry_max, delay * 2)

    def _on_request(self, client: Any, req: SocketModeRequest) -> None:
        # acknowledge first: Slack redelivers what is not acknowledged within 3 seconds
        try:
            client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
        except Exception as exc:  # the connection went away: Slack will deliver it again
            log.warning("Slack Socket Mode: could not acknowledge an envelope (%s)", describe(exc))
            return
        if req.type in KINDS:
            self._dispatch(req.type, req.payload)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        if self.client is not None:
            _unblock(self.client)
            try:
                self.client.close()
            except Exception as exc:  # closing a half-open connection
                log.debug("Slack Socket Mode: close: %s", type(exc).__name__)


def _unblock(client: SocketModeClient) -> None:
    """Shut the WebSocket's socket down so that the client's reader returns at once (closing
    it alone leaves the reader in ``recv`` until its 3-second timeout), and wake its message
    processor (waiting up to a second for the next message): the daemon's whole stop must
    take under 5 seconds."""
    session = client.current_session
    sock = session.sock if session is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    client.closed = True
    client.message_queue.put(None)  # wakes the message processor (it skips None)


def check_connection(app_token: str, api_url: str, timeout: float = 10.0) -> tuple[bool, str]:
    """For ``slack-test``: open a Socket Mode connection with ``app_token`` and wait for
    Slack's ``hello``. (ok, what happened, with the fix when it failed); never raises."""
    web = WebClient(
        base_url=api_url, timeout=cast(int, timeout), retry_handlers=[], logger=_sdk_logger
    )
    try:
        web.apps_connections_open(app_token=app_token)
    except SlackApiError as exc:
        return False, f"the app-level token does not work: {describe(exc)}"
    except Exception as exc:
        return False, f"cannot reach Slack ({type(exc).__name__}): fix the network or slack.api_url"
    hello = threading.Event()
    client = SocketModeClient(
        app_token, logger=_sdk_logger, web_client=web, auto_reconnect_enabled=False
    )

    def on_message(_client: Any, message: dict[str, Any], _raw: str | None) -> None:
        if message.get("type") == "hello":
            hello.set()

    client.message_listeners.append(on_message)
    try:
        client.connect()
        if hello.wait(timeout):
            return True, "Socket Mode connected: Slack said hello over the WebSocket"
        return False, (
            f"the app-level token works, but no WebSocket greeting came within {timeout:g}s: "
            "is Socket Mode on for the app (Settings, Socket Mode), and may this host open "
            "outbound WebSockets (wss://wss-primary.slack.com, port 443)?"
        )
    except Exception as exc:
        return False, f"the WebSocket could not be opened: {describe(exc)}"
    finally:
        _unblock(client)
        client.close()
