"""Slack's Socket Mode side, on 127.0.0.1: a real WebSocket server (RFC 6455: the HTTP
upgrade, masked client frames, text, ping/pong and close frames) that speaks like Slack.

``FakeSlack.apps.connections.open`` hands out ``next_url()``; each connection gets Slack's
``hello``, then every envelope not yet acknowledged (Slack redelivers those after a
reconnect, with ``retry_attempt``), then whatever the test ``send``s. Acknowledgements
(``{"envelope_id": ...}``) are recorded with the time they took; ``lose_acks`` drops the ones
of an envelope, as if the connection died before they arrived. ``drop`` ends the connection
(Slack's ``disconnect`` message and a close frame, or a bare TCP close).

Written by hand (about 150 lines of the standard library) rather than with a WebSocket
package: the server side needs only the upgrade and four frame types, and the test suite
gains no dependency.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass
class Ack:
    envelope_id: str
    connection: int  # which connection (1, 2, ...) it arrived on
    seconds: float  # since the envelope was (last) sent
    payload: dict[str, Any] | None = None


@dataclass
class _Conn:
    number: int
    sock: socket.socket
    lock: threading.Lock = field(default_factory=threading.Lock)
    open: bool = True


def _frame(opcode: int, data: bytes) -> bytes:
    head = bytes([0x80 | opcode])
    n = len(data)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + data


def _read_exact(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


class FakeSocketMode:
    def __init__(self) -> None:
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(8)
        self.port = self._server.getsockname()[1]
        self._cond = threading.Condition()
        self._conns: list[_Conn] = []
        self._tickets = 0
        self.urls: list[str] = []
        self.acks: list[Ack] = []
        self.sent_at: dict[str, float] = {}
        self.unacked: dict[str, dict[str, Any]] = {}  # redelivered on the next connection
        self.lose_acks: set[str] = set()
        self.received: list[dict[str, Any]] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    # ---- what FakeSlack hands out ----------------------------------------------------------
    def next_url(self) -> str:
        with self._cond:
            self._tickets += 1
            url = f"ws://127.0.0.1:{self.port}/link/?ticket=t{self._tickets}&app_id=A0FAKE"
            self.urls.append(url)
        return url

    # ---- the test's side -------------------------------------------------------------------
    @property
    def connections(self) -> int:
        with self._cond:
            return len(self._conns)

    def wait(self, predicate: Any, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def wait_connections(self, n: int, timeout: float = 10.0) -> bool:
        return self.wait(
            lambda: sum(c.open for c in self._conns) >= 1 and len(self._conns) >= n, timeout
        )

    def send(self, envelope: dict[str, Any]) -> None:
        """Send an envelope on the current connection; it stays owed until acknowledged."""
        eid = envelope["envelope_id"]
        with self._cond:
            self.unacked[eid] = envelope
            conn = self._conns[-1]
        self._send_envelope(conn, envelope)

    def acks_of(self, envelope_id: str) -> list[Ack]:
        with self._cond:
            return [a for a in self.acks if a.envelope_id == envelope_id]

    def wait_ack(self, envelope_id: str, timeout: float = 10.0, count: int = 1) -> Ack | None:
        self.wait(
            lambda: len([a for a in self.acks if a.envelope_id == envelope_id]) >= count, timeout
        )
        found = self.acks_of(envelope_id)
        return found[count - 1] if len(found) >= count else None

    def drop(self, polite: bool = True) -> None:
        """End the current connection: Slack's ``disconnect`` message and a close frame
        (``polite``), or a bare TCP close."""
        with self._cond:
            conn = self._conns[-1]
        if polite:
            msg = {
                "type": "disconnect",
                "reason": "refresh_requested",
                "debug_info": {"host": "applink-fake"},
            }
            self._write(conn, _frame(0x1, json.dumps(msg).encode()))
            self._write(conn, _frame(0x8, struct.pack("!H", 1000)))
        conn.open = False
        with contextlib.suppress(OSError):
            conn.sock.shutdown(socket.SHUT_RDWR)
        conn.sock.close()

    def close(self) -> None:
        self._closed = True
        self._server.close()
        with self._cond:
            conns = list(self._conns)
        for c in conns:
            c.open = False
            with contextlib.suppress(OSError):
                c.sock.close()

    # ---- the server ------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _write(self, conn: _Conn, data: bytes) -> None:
        with conn.lock:
            if conn.open:
                try:
                    conn.sock.sendall(data)
                except OSError:
                    conn.open = False

    def _send_envelope(self, conn: _Conn, envelope: dict[str, Any]) -> None:
        with self._cond:
            self.sent_at[envelope["envelope_id"]] = time.monotonic()
        self._write(conn, _frame(0x1, json.dumps(envelope).encode()))

    def _serve(self, sock: socket.socket) -> None:
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                request += chunk
            key = ""
            for line in request.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "sec-websocket-key":
                    key = value.strip()
            accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
            sock.sendall(
                (
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                ).encode()
            )
        except OSError:
            return
        with self._cond:
            conn = _Conn(len(self._conns) + 1, sock)
            self._conns.append(conn)
            owed = list(self.unacked.values())
            self._cond.notify_all()
        hello = {
            "type": "hello",
            "num_connections": 1,
            "connection_info": {"app_id": "A0FAKE"},
            "debug_info": {"host": "applink-fake", "approximate_connection_time": 18060},
        }
        self._write(conn, _frame(0x1, json.dumps(hello).encode()))
        for envelope in owed:  # Slack redelivers what was never acknowledged
            again = {
                **envelope,
                "retry_attempt": envelope.get("retry_attempt", 0) + 1,
                "retry_reason": "timeout",
            }
            self._send_envelope(conn, again)
        self._read(conn)

    def _read(self, conn: _Conn) -> None:
        sock = conn.sock
        try:
            while conn.open:
                b1, b2 = _read_exact(sock, 2)
                opcode, n = b1 & 0x0F, b2 & 0x7F
                if n == 126:
                    n = struct.unpack("!H", _read_exact(sock, 2))[0]
                elif n == 127:
                    n = struct.unpack("!Q", _read_exact(sock, 8))[0]
                mask = _read_exact(sock, 4) if b2 & 0x80 else b"\0\0\0\0"
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(_read_exact(sock, n)))
                if opcode == 0x9:  # ping
                    self._write(conn, _frame(0xA, data))
                elif opcode == 0x8:  # close
                    self._write(conn, _frame(0x8, data[:2]))
                    break
                elif opcode == 0x1:
                    self._received(conn, json.loads(data))
        except (OSError, ConnectionError, ValueError):
            pass
        finally:
            conn.open = False
            with self._cond:
                self._cond.notify_all()

    def _received(self, conn: _Conn, msg: dict[str, Any]) -> None:
        with self._cond:
            self.received.append(msg)
            eid = msg.get("envelope_id")
            if isinstance(eid, str) and eid not in self.lose_acks:
                took = time.monotonic() - self.sent_at.get(eid, time.monotonic())
                self.acks.append(Ack(eid, conn.number, took, msg.get("payload")))
                self.unacked.pop(eid, None)
            self._cond.notify_all()


# ---- real-shaped envelopes ----------------------------------------------------------------
_ids = iter(range(1, 1_000_000))


def _next() -> int:
    return next(_ids)


def find_control(
    blocks: list[dict[str, Any]],
    action_id: str,
    agent: str | None = None,
    choice: str | None = None,
) -> dict[str, Any]:
    """The element a person would press: a button by ``action_id``, or (``agent`` and
    ``choice``) the menu option for that agent. Raises when the message has none."""
    for block in blocks:
        if block.get("type") != "actions":
            continue
        for el in block["elements"]:
            if el["type"] == "button" and el["action_id"] == action_id:
                return {
                    "action_id": action_id,
                    "block_id": block.get("block_id", "b"),
                    "text": el["text"],
                    "value": el["value"],
                    "type": "button",
                }
            if el["type"] == "static_select" and el["action_id"] == action_id:
                for group in el["option_groups"]:
                    for opt in group["options"]:
                        if opt["value"].startswith(f"{choice}:") and agent in opt["text"]["text"]:
                            return {
                                "action_id": action_id,
                                "block_id": block.get("block_id", "b"),
                                "type": "static_select",
                                "selected_option": opt,
                                "placeholder": el.get("placeholder"),
                            }
    raise LookupError(f"no control {action_id} {agent or ''} {choice or ''} in the message")


def block_actions(
    action: dict[str, Any],
    *,
    user: str,
    name: str,
    team: str,
    channel: str,
    message: dict[str, Any],
    response_url: str,
) -> dict[str, Any]:
    """A Socket Mode ``interactive`` envelope for a click on ``message`` (as Slack sends it:
    the whole message, the container, a response_url, one action with its action_ts)."""
    n = _next()
    action = {**action, "action_ts": f"{1_750_000_000 + n}.{n:06d}"}
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": name, "name": name, "team_id": team},
        "api_app_id": "A0FAKE",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": message.get("ts"),
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": f"{n}.{n * 7}.fa4e{n:04x}",
        "team": {"id": team, "domain": "acme"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "alerts"},
        "message": {"type": "message", "subtype": "bot_message", "bot_id": "B0BOT", **message},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }
    return {
        "envelope_id": f"env-{n:06d}-b",
        "payload": payload,
        "type": "interactive",
        "accepts_response_payload": False,
    }


def slash_command(
    text: str, *, user: str, name: str, team: str, channel: str, response_url: str
) -> dict[str, Any]:
    n = _next()
    payload = {
        "token": "legacy-verification-token",
        "team_id": team,
        "team_domain": "acme",
        "channel_id": channel,
        "channel_name": "alerts",
        "user_id": user,
        "user_name": name,
        "command": "/dialnexa",
        "text": text,
        "api_app_id": "A0FAKE",
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": f"{n}.{n * 7}.c0de{n:04x}",
    }
    return {
        "envelope_id": f"env-{n:06d}-c",
        "payload": payload,
        "type": "slash_commands",
        "accepts_response_payload": True,
    }
