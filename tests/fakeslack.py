"""A fake Slack Web API (and incoming webhook) on 127.0.0.1: a real HTTP server.

It records every request, answers ``chat.postMessage`` / ``chat.update`` / ``auth.test`` /
``conversations.history`` like Slack (``ts`` values, channel IDs, message metadata, cursor
paging, ``ok: false`` errors, ``missing_scope`` with ``needed``) and can be told to fail the
next requests with 429 + Retry-After, 500, an ``ok: false`` error code, or a dropped connection,
or to be slow: accept and store a message but answer only when ``release`` is set (so the
client's timeout expires for real while the test never sleeps). Every message payload is
checked against Slack's Block Kit limits (``check_blocks``) and refused with
``invalid_blocks`` when it breaks one, as Slack would. Point slack-sdk at it with
``slack.api_url = fake.api_url`` or ``slack.webhook_url = fake.webhook_url``.

For Slack actions it also answers ``apps.connections.open`` (with the app-level token: the
``ws://127.0.0.1`` URL of a ``FakeSocketMode`` server, a real WebSocket server in
``fakesocket.py``), ``chat.postEphemeral``, ``usergroups.users.list``, and the
``response_url`` of each interaction (``fake.response_url()``), recording what arrives.
``wait(predicate)`` waits (with a deadline, never a sleep) until a request makes it true.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from dialnexa_watchdog.notify.limits import check_blocks

TOKEN = "xoxb-fake-test-token-do-not-log"
CHANNEL_ID = "C0ALERTS01"
CHANNEL_NAME = "#alerts"
WEBHOOK_PATH = "/services/T0000/B0000/s3cr3tw3bh00kp4th"
APP_TOKEN = "xapp-1-A0FAKE-fake-app-token-do-not-log"
TEAM_ID = "T0FAKE0001"
RESPONSE_PREFIX = "/actions/T0FAKE0001/"


@dataclass
class Request:
    method: str  # "chat.postMessage", "chat.update", "auth.test", "conversations.history", ...
    params: dict[str, Any]
    headers: dict[str, str]
    body: str
    status: int = 200
    answer: dict[str, Any] | str = ""
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass
class Failure:
    method: str | None  # None: any method
    status: int = 200
    error: str | None = None
    retry_after: int | None = None
    drop: bool = False  # close the connection without an answer
    body: str | None = None  # a raw (non-JSON) body
    slow: bool = False  # handle the request as usual, answer once ``release`` is set


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    edits: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] | None = None


SCOPES = frozenset({"chat:write", "channels:history"})


class FakeSlack:
    def __init__(
        self,
        token: str = TOKEN,
        member_of: tuple[str, ...] = (CHANNEL_ID,),
        scopes: frozenset[str] = SCOPES,
    ) -> None:
        self.token = token
        self.tokens: set[str] = set()  # more bot tokens accepted (one per replica)
        self.member_of = set(member_of)
        self.scopes = set(scopes)
        self.requests: list[Request] = []
        self.messages: dict[str, Message] = {}
        self.rejected: list[tuple[str, list[str]]] = []  # (method, check_blocks problems)
        self.strict = True  # refuse payloads that break a Block Kit limit
        self.release = threading.Event()  # lets the answers of slow requests go
        self.hold_max = 30.0  # a slow answer waits at most this long for ``release``
        self._failures: list[Failure] = []
        self._lock = threading.Lock()
        self._next_ts = 1_750_000_000_000_100
        self.app_token = APP_TOKEN
        self.socket: Any = None  # a fakesocket.FakeSocketMode, for apps.connections.open
        self.usergroups: dict[str, list[str]] = {}
        self.ephemeral: list[dict[str, Any]] = []  # chat.postEphemeral payloads
        self.responses: list[tuple[str, dict[str, Any]]] = []  # (response_url path, body)
        self._changed = threading.Condition()
        self._response_ids = itertools.count(1)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                fake._handle(self)

            def do_GET(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()

    # ---- addresses ---------------------------------------------------------------------
    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        return self.base + "/api/"

    @property
    def webhook_url(self) -> str:
        return self.base + WEBHOOK_PATH

    def response_url(self) -> str:
        """A fresh response_url, as Slack puts one in every interaction."""
        return f"{self.base}{RESPONSE_PREFIX}{next(self._response_ids)}/r3sp0ns3s3cr3t"

    def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until ``predicate()`` holds, re-checked after every request; False after
        ``timeout`` seconds (a deadline for a failing test, not a pause)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.05))
        return True

    def answers(self) -> list[str]:
        """Every ephemeral answer (response_url and chat.postEphemeral): its fallback text
        and the text of its sections, in arrival order per kind."""

        def whole(body: dict[str, Any]) -> str:
            blocks = body.get("blocks") or []
            parts = [b.get("text", {}).get("text", "") for b in blocks if isinstance(b, dict)]
            return "\n".join([str(body.get("text", "")), *parts])

        with self._lock:
            out = [whole(b) for _, b in self.responses]
            out += [whole(e) for e in self.ephemeral]
        return out

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    # ---- programming failures ----------------------------------------------------------
    def fail(self, method: str | None = None, times: int = 1, **kw: Any) -> None:
        """Fail the next ``times`` requests of ``method`` (None: any)."""
        with self._lock:
            self._failures.extend(Failure(method, **kw) for _ in range(times))

    def rate_limit(self, method: str | None = None, retry_after: int = 30, times: int = 1) -> None:
        self.fail(method, times, status=429, error="ratelimited", retry_after=retry_after)

    def server_error(self, method: str | None = None, times: int = 1) -> None:
        self.fail(method, times, status=500, body="<html>Internal Server Error</html>")

    def api_error(self, error: str, method: str | None = None, times: int = 1) -> None:
        self.fail(method, times, error=error)

    def slow(self, method: str | None = "chat.postMessage", times: int = 1) -> None:
        """The next ``times`` requests of ``method`` are carried out (a post is stored and
        shows in the channel's history) but answered only once ``release`` is set."""
        self.release.clear()
        self.fail(method, times, slow=True)

    def add_message(
        self, ts: str, text: str = "earlier", metadata: dict[str, Any] | None = None
    ) -> Message:
        """A message already in the channel (as if posted by someone else, or earlier)."""
        msg = Message(CHANNEL_ID, ts, text, [], None, metadata=metadata)
        with self._lock:
            self.messages[ts] = msg
        return msg

    # ---- what happened -----------------------------------------------------------------
    def ok_requests(self, method: str | None = None) -> list[Request]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method)
                and r.status == 200
                and (r.answer == "ok" or (isinstance(r.answer, dict) and r.answer.get("ok")))
            ]

    def posts(self) -> list[Request]:
        """Successful top-level chat.postMessage calls (not thread replies)."""
        return [r for r in self.ok_requests("chat.postMessage") if not r.params.get("thread_ts")]

    def replies(self, ts: str | None = None) -> list[Request]:
        return [
            r
            for r in self.ok_requests("chat.postMessage")
            if r.params.get("thread_ts") and (ts is None or r.params["thread_ts"] == ts)
        ]

    def updates(self, ts: str | None = None) -> list[Request]:
        return [r for r in self.ok_requests("chat.update") if ts is None or r.params["ts"] == ts]

    def webhooks(self) -> list[Request]:
        return self.ok_requests("webhook")

    def top_level(self) -> list[Message]:
        """Top-level messages in the channel, oldest first (what a person scrolling sees)."""
        with self._lock:
            msgs = [m for m in self.messages.values() if m.thread_ts is None]
        return sorted(msgs, key=lambda m: float(m.ts))

    # ---- the server --------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length).decode("utf-8") if length else ""
        ctype = h.headers.get("Content-Type", "")
        params: dict[str, Any] = dict(parse_qsl(raw))
        if "json" in ctype:
            params = json.loads(raw) if raw else {}
        url = urlsplit(h.path)
        params.update(parse_qsl(url.query))
        path = url.path
        if path.startswith(RESPONSE_PREFIX):
            method = "response_url"
        elif path == WEBHOOK_PATH:
            method = "webhook"
        elif path.startswith("/api/"):
            method = path[len("/api/") :]
        else:
            h.send_response(404)
            h.end_headers()
            return
        req = Request(method, params, dict(h.headers.items()), raw)
        with self._lock:
            self.requests.append(req)
            failure = next(
                (f for f in self._failures if f.method is None or f.method == method), None
            )
            if failure is not None:
                self._failures.remove(failure)
                if not failure.slow:
                    self._answer_failure(h, req, failure)
                    return
            problems = self._check(method, params)
            if method == "response_url":
                req.answer = "invalid_blocks" if problems else "ok"
                req.status = 400 if problems else 200
                if not problems:
                    self.responses.append((path, params))
                reply = (req.status, req.answer, "text/plain")
            elif method == "webhook":
                req.answer = "invalid_blocks" if problems else "ok"
                req.status = 400 if problems else 200
                reply = (req.status, req.answer, "text/plain")
            else:
                auth = h.headers.get("Authorization", "")
                if problems and self._authed(auth):  # refused, nothing stored
                    answer = {"ok": False, "error": "invalid_blocks", "errors": problems[:5]}
                else:
                    answer = self._api(method, params, auth)
                req.answer = answer
                reply = (200, json.dumps(answer), "application/json")
        if failure is not None:  # slow: the work is done, the answer waits
            self.release.wait(self.hold_max)
        try:
            self._send(h, *reply)
        except OSError:  # the client gave up waiting and closed the connection
            h.close_connection = True
        with self._changed:
            self._changed.notify_all()

    def _check(self, method: str, p: dict[str, Any]) -> list[str]:
        """Block Kit problems of a message payload (``[]`` for other methods)."""
        messages = ("chat.postMessage", "chat.update", "webhook", "chat.postEphemeral")
        if not self.strict or method not in (*messages, "response_url"):
            return []
        payload: dict[str, Any] = {}
        for key in ("text", "blocks", "metadata"):
            value = p.get(key)
            if isinstance(value, str) and key != "text":
                value = json.loads(value)
            if value is not None:
                payload[key] = value
        problems = check_blocks(payload)
        if problems:
            self.rejected.append((method, problems))
        return problems

    def _answer_failure(self, h: BaseHTTPRequestHandler, req: Request, f: Failure) -> None:
        req.status = f.status
        if f.drop:
            h.close_connection = True
            h.wfile.flush()
            h.connection.close()
            return
        headers = {"Retry-After": str(f.retry_after)} if f.retry_after is not None else {}
        if f.body is not None:
            req.answer = f.body
            self._send(h, f.status, f.body, "text/html", headers)
        elif req.method == "webhook":
            req.answer = f.error or "error"
            self._send(h, f.status, f.error or "error", "text/plain", headers)
        else:
            answer = {"ok": False, "error": f.error or "internal_error"}
            req.answer = answer
            self._send(h, f.status, json.dumps(answer), "application/json", headers)

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        body: str,
        ctype: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode("utf-8")
        h.send_response(status)
        h.send_header("Content-Type", f"{ctype}; charset=utf-8")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def _channel_id(self, channel: str) -> str | None:
        if channel in (CHANNEL_ID, CHANNEL_NAME, CHANNEL_NAME.lstrip("#")):
            return CHANNEL_ID
        return None

    def _authed(self, auth: str) -> bool:
        return auth == f"Bearer {self.token}" or auth.removeprefix("Bearer ") in self.tokens

    def _api(self, method: str, p: dict[str, Any], auth: str) -> dict[str, Any]:
        if method == "apps.connections.open":
            return self._connections_open(auth)
        if not self._authed(auth):
            return {"ok": False, "error": "invalid_auth" if auth else "not_authed"}
        if method == "auth.test":
            return {
                "ok": True,
                "user": "watchdog",
                "team": "Acme",
                "user_id": "U0BOT",
                "team_id": TEAM_ID,
            }
        if method == "usergroups.users.list":
            users = self.usergroups.get(str(p.get("usergroup", "")))
            if users is None:
                return {"ok": False, "error": "no_such_subteam"}
            return {"ok": True, "users": list(users)}
        if method == "chat.postEphemeral":
            if self._channel_id(str(p.get("channel", ""))) is None:
                return {"ok": False, "error": "channel_not_found"}
            blocks = p.get("blocks")
            if isinstance(blocks, str):
                p = {**p, "blocks": json.loads(blocks)}
            self.ephemeral.append(p)
            return {"ok": True, "message_ts": "1750000000.000001"}
        if method == "conversations.history":
            return self._history(p)
        channel = self._channel_id(str(p.get("channel", "")))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if channel not in self.member_of:
            return {"ok": False, "error": "not_in_channel"}
        blocks = p.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        if method == "chat.postMessage":
            # like Slack: the time it stored the message, in microseconds, always increasing
            self._next_ts = max(self._next_ts + 100, int(time.time() * 1_000_000))
            ts = f"{self._next_ts // 1_000_000}.{self._next_ts % 1_000_000:06d}"
            thread = p.get("thread_ts")
            if thread and thread not in self.messages:
                return {"ok": False, "error": "thread_not_found"}
            metadata = p.get("metadata")
            if isinstance(metadata, str):
                metadata = json.loads(metadata)
            self.messages[ts] = Message(
                channel, ts, str(p.get("text", "")), blocks, thread, metadata=metadata
            )
            return {"ok": True, "channel": channel, "ts": ts, "message": {"text": p.get("text")}}
        if method == "chat.update":
            msg = self.messages.get(str(p.get("ts")))
            if msg is None or msg.channel != channel:
                return {"ok": False, "error": "message_not_found"}
            msg.edits.append({"text": p.get("text"), "blocks": blocks})
            msg.text = str(p.get("text", ""))
            msg.blocks = blocks
            return {"ok": True, "channel": channel, "ts": msg.ts}
        return {"ok": False, "error": "unknown_method"}

    def _connections_open(self, auth: str) -> dict[str, Any]:
        if auth == f"Bearer {self.token}":
            return {"ok": False, "error": "not_allowed_token_type"}
        if auth != f"Bearer {self.app_token}":
            return {"ok": False, "error": "invalid_auth" if auth else "not_authed"}
        if self.socket is None:
            return {"ok": False, "error": "internal_error"}
        return {"ok": True, "url": self.socket.next_url()}

    def _history(self, p: dict[str, Any]) -> dict[str, Any]:
        """conversations.history: newest first, top-level messages only, cursor paging."""
        if "channels:history" not in self.scopes:
            return {
                "ok": False,
                "error": "missing_scope",
                "needed": "channels:history",
                "provided": ",".join(sorted(self.scopes)),
            }
        channel = str(p.get("channel", ""))
        if channel != CHANNEL_ID:  # the method takes a channel ID, never a name
            return {"ok": False, "error": "channel_not_found"}
        if channel not in self.member_of:
            return {"ok": False, "error": "not_in_channel"}

        def flag(name: str) -> bool:
            return str(p.get(name, "")).lower() in ("1", "true")

        oldest = float(p.get("oldest") or 0)
        latest = float(p.get("latest") or "inf")
        inclusive = flag("inclusive")
        limit = max(1, min(999, int(p.get("limit") or 100)))
        cursor = str(p.get("cursor") or "")
        offset = int(cursor.removeprefix("next_") or 0) if cursor.startswith("next_") else 0
        msgs = [
            m
            for m in sorted(self.messages.values(), key=lambda m: float(m.ts), reverse=True)
            if m.channel == channel
            and m.thread_ts is None
            and (oldest <= float(m.ts) if inclusive else oldest < float(m.ts))
            and (float(m.ts) <= latest if inclusive else float(m.ts) < latest)
        ]
        page = msgs[offset : offset + limit]
        more = offset + limit < len(msgs)
        out = []
        for m in page:
            item: dict[str, Any] = {"type": "message", "ts": m.ts, "text": m.text}
            if m.metadata is not None and flag("include_all_metadata"):
                item["metadata"] = m.metadata
            out.append(item)
        return {
            "ok": True,
            "messages": out,
            "has_more": more,
            "response_metadata": {"next_cursor": f"next_{offset + limit}" if more else ""},
        }
