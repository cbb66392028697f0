"""A hostile List Calls server on 127.0.0.1, written from raw sockets (not the simulator).

Each test gives it a ``responder``: a function from the parsed request to a :class:`Reply`,
which says what to send and how badly: trickle the body a byte at a time, hang after the
headers, leave out Content-Length, stream a huge body lazily. The server runs in its own
thread (one thread per connection) and stops with the ``with`` block; a handler that is
trickling or hanging waits on an Event, so stopping the server releases it at once.

Helpers build pages, call items and bodies that echo the API key back in every usual form.
"""

from __future__ import annotations

import base64
import json
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from urllib.parse import parse_qsl, quote, urlsplit


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names


@dataclass(slots=True)
class Reply:
    status: int = 200
    body: bytes | Callable[[], Iterable[bytes]] = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_length: int | None = None  # None: the body's own length, -1: leave it out
    trickle: float | None = None  # seconds between single body bytes
    hang_after_headers: bool = False

    @staticmethod
    def json(doc: object, status: int = 200, **kw: object) -> Reply:
        return Reply(status, json.dumps(doc).encode(), **kw)  # type: ignore[arg-type]


Responder = Callable[[Request], Reply]

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    429: "Too Many Requests",
    500: "Internal Server Error",
}


class HostileApi:
    """``with HostileApi(responder) as api: client(api.url)``."""

    def __init__(self, responder: Responder, host: str = "127.0.0.1") -> None:
        self.responder = responder
        self.requests: list[Request] = []
        self.body_bytes_sent = 0
        self.stop = threading.Event()
        self._lock = threading.Lock()
        api = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                api._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server((host, 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> HostileApi:
        self._thread.start()
        return self

    def __exit__(
        self,
        typ: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop.set()  # releases trickling and hanging handlers
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    # ---- one connection ----------------------------------------------------------------
    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(10)
        try:
            req = _read_request(sock)
            if req is None:
                return
            with self._lock:
                self.requests.append(req)
            self._send(sock, self.responder(req))
        except OSError:
            return  # the client gave up (deadline, size limit): that is the point

    def _send(self, sock: socket.socket, reply: Reply) -> None:
        body: Iterable[bytes] = reply.body() if callable(reply.body) else [reply.body]
        length = reply.content_length
        if length is None and isinstance(reply.body, bytes):
            length = len(reply.body)
        head = [
            f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'Whatever')}",
            "Content-Type: application/json",
            "Connection: close",
        ]
        if length is not None and length >= 0:
            head.append(f"Content-Length: {length}")
        head += [f"{k}: {v}" for k, v in reply.headers]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if reply.hang_after_headers:
            self.stop.wait()
            return
        for chunk in body:
            if reply.trickle is not None:
                for i in range(len(chunk)):
                    if self.stop.wait(reply.trickle):
                        return
                    sock.sendall(chunk[i : i + 1])
                    self._sent(1)
            else:
                sock.sendall(chunk)
                self._sent(len(chunk))
            if self.stop.is_set():
                return

    def _sent(self, n: int) -> None:
        with self._lock:
            self.body_bytes_sent += n


def _read_request(sock: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk or len(data) > 65536:
            return None
        if not data and chunk[:1] == b"\x16":  # a TLS ClientHello: answer as plain HTTP does
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
            return None
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    line, *lines = head.split("\r\n")
    method, target, _ = line.split(" ", 2)
    parts = urlsplit(target)
    headers = {}
    for h in lines:
        k, _, v = h.partition(":")
        headers[k.strip().lower()] = v.strip()
    return Request(method, parts.path, dict(parse_qsl(parts.query)), headers)


def refused_url() -> str:
    """A loopback URL where nothing listens (a port just released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


# ---- bodies --------------------------------------------------------------------------------
def ts(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def item(
    call_id: str, created: float, agent: str = "agt_1", status: str = "failed", **extra: object
) -> dict[str, object]:
    return {
        "id": call_id,
        "agent_id": agent,
        "status": status,
        "created_at": ts(created),
        "to_number": "+15550001111",
        **extra,
    }


def page(items: list[dict[str, object]], total_pages: int | None = None) -> bytes:
    meta: dict[str, object] = {"total": len(items)}
    if total_pages is not None:
        meta["totalPages"] = total_pages
    return json.dumps({"data": items, "meta": meta}).encode()


def created_in(req: Request, fallback: float) -> float:
    """A time inside the listed range (just before its ``to``)."""
    to = req.query.get("to")
    if not to:
        return fallback
    return datetime.fromisoformat(to.replace("Z", "+00:00")).timestamp() - 1.0


def key_forms(key: str) -> list[str]:
    """The API key as a careless API would echo it back."""
    return [
        f"Bearer {key}",
        f"key={key}",
        quote(key, safe=""),
        quote(key, safe="").lower(),
        base64.b64encode(key.encode()).decode(),
        base64.b64encode(f"user:{key}".encode()).decode(),  # inside Basic auth
        base64.urlsafe_b64encode(key.encode()).decode().rstrip("="),
        json.dumps(key)[1:-1],
    ]


def echo_body(req: Request, key: str, as_json: bool = True) -> bytes:
    """An error body that quotes the Authorization header it got and the key in every form."""
    forms = "; ".join(key_forms(key))
    url = f"/v1/calls?api_key={quote(key, safe='')}"
    text = f"invalid request from {req.headers.get('authorization', '')}; {forms}; url={url}"
    if not as_json:
        return text.encode()
    return json.dumps({"message": [text, f"key={key}"], "error": f"Bearer {key}"}).encode()


def huge_body(size: int, chunk: int = 1 << 16) -> Callable[[], Iterator[bytes]]:
    """A lazily generated JSON page of ``size`` bytes: one item with a giant metadata string."""

    def gen() -> Iterator[bytes]:
        prefix = b'{"data": [{"id": "x", "metadata": "'
        suffix = b'"}]}'
        yield prefix
        left = size - len(prefix) - len(suffix)
        block = b"a" * chunk
        while left > 0:
            n = min(chunk, left)
            yield block[:n]
            left -= n
        yield suffix

    return gen
