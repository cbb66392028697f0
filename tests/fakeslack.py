"""A fake Slack Web API (and incoming webhook) on 127.0.0.1: a real HTTP server.

It records every request, answers ``chat.postMessage`` / ``chat.update`` / ``auth.test`` like
Slack (``ts`` values, channel IDs, ``ok: false`` errors) and can be told to fail the next
requests with 429 + Retry-After, 500, an ``ok: false`` error code, or a dropped connection.
Point slack-sdk at it with ``slack.api_url = fake.api_url`` or ``slack.webhook_url =
fake.webhook_url``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

TOKEN = "xoxb-fake-test-token-do-not-log"
CHANNEL_ID = "C0ALERTS01"
CHANNEL_NAME = "#alerts"
WEBHOOK_PATH = "/services/T0000/B0000/s3cr3tw3bh00kp4th"


@dataclass
class Request:
    method: str  # "chat.postMessage", "chat.update", "auth.test", "webhook"
    params: dict[str, Any]
    headers: dict[str, str]
    body: str
    status: int = 200
    answer: dict[str, Any] | str = ""


@dataclass
class Failure:
    method: str | None  # None: any method
    status: int = 200
    error: str | None = None
    retry_after: int | None = None
    drop: bool = False  # close the connection without an answer
    body: str | None = None  # a raw (non-JSON) body


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    edits: list[dict[str, Any]] = field(default_factory=list)


class FakeSlack:
    def __init__(self, token: str = TOKEN, member_of: tuple[str, ...] = (CHANNEL_ID,)) -> None:
        self.token = token
        self.member_of = set(member_of)
        self.requests: list[Request] = []
        self.messages: dict[str, Message] = {}
        self._failures: list[Failure] = []
        self._lock = threading.Lock()
        self._next_ts = 1_750_000_000_000_100
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
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

    def close(self) -> None:
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

    # ---- the server --------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length).decode("utf-8") if length else ""
        ctype = h.headers.get("Content-Type", "")
        params: dict[str, Any] = dict(parse_qsl(raw))
        if "json" in ctype:
            params = json.loads(raw) if raw else {}
        path = h.path.split("?", 1)[0]
        if path == WEBHOOK_PATH:
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
                self._answer_failure(h, req, failure)
                return
            if method == "webhook":
                req.answer = "ok"
                self._send(h, 200, "ok", "text/plain")
                return
            answer = self._api(method, params, h.headers.get("Authorization", ""))
            req.answer = answer
            self._send(h, 200, json.dumps(answer), "application/json")

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

    def _api(self, method: str, p: dict[str, Any], auth: str) -> dict[str, Any]:
        if auth != f"Bearer {self.token}":
            return {"ok": False, "error": "invalid_auth" if auth else "not_authed"}
        if method == "auth.test":
            return {"ok": True, "user": "watchdog", "team": "Acme", "user_id": "U0BOT"}
        channel = self._channel_id(str(p.get("channel", "")))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if channel not in self.member_of:
            return {"ok": False, "error": "not_in_channel"}
        blocks = p.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        if method == "chat.postMessage":
            self._next_ts += 100
            ts = f"{self._next_ts // 1_000_000}.{self._next_ts % 1_000_000:06d}"
            thread = p.get("thread_ts")
            if thread and thread not in self.messages:
                return {"ok": False, "error": "thread_not_found"}
            self.messages[ts] = Message(channel, ts, str(p.get("text", "")), blocks, thread)
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
