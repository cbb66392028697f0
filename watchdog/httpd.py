"""HTTP: ``/metrics``, ``/healthz`` and ``/readyz`` on ``metrics.listen``. The I/O edge.

One event-loop thread owns every socket. It accepts connections, reads request heads without
blocking (a deadline and a size cap per head), writes responses, and closes idle and slow
connections. A small pool of worker threads only computes responses (a /metrics render,
gzip, the daemon's readiness); no worker ever waits on a client. So an idle or slow client
costs one file descriptor and no thread, the number of connections is capped (a new one
closes the oldest idle one to get in), and a scrape gets through while hundreds of idle
sockets are open. A client that disconnects or times out is one debug line, never a
traceback.

/readyz serves a fixed sentence from a closed vocabulary (the constants below, plus
integers), never text that came from the API: the daemon's ``readiness()`` returns reasons
built with ``stale_reason`` or taken from the constants, and any other string is replaced by
``UNRECOGNISED`` before it is served.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import gzip
import logging
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Protocol, runtime_checkable

from prometheus_client.exposition import gzip_accepted

from .model import PollStatus

log = logging.getLogger("watchdog.httpd")

TEXT = "text/plain; charset=utf-8"
ENDPOINTS = (
    ("/metrics", "Prometheus metrics (text format, or OpenMetrics when asked; gzip)"),
    ("/healthz", "200 while the poll loop is alive (liveness)"),
    ("/readyz", "200 once backfilled and polling; 503 with a fixed reason otherwise"),
)

# ---- /readyz: the closed vocabulary -----------------------------------------------------------
BACKFILL_NOT_DONE = "backfill not done"
NO_POLL_YET = "no successful poll yet"
NO_POLL_FOR = "no successful poll for {seconds}s"  # seconds: an integer
LAST_ERROR = "last error: {kind}"  # kind: one of ERROR_KINDS or http_NNN, see error_kind()
STATE_STORE_FAILING = "state store commit failing"
ANOTHER_REPLICA_LEADS = "another replica leads"
UNRECOGNISED = "unrecognised reason"  # served in place of a string outside the vocabulary
POLL_LOOP_STALLED = "poll loop stalled"  # /healthz
REASONS = (
    BACKFILL_NOT_DONE,
    NO_POLL_YET,
    NO_POLL_FOR,
    STATE_STORE_FAILING,
    ANOTHER_REPLICA_LEADS,
    UNRECOGNISED,
)
# what a failed poll's error is called on /readyz besides http_NNN: ApiError.kind's vocabulary
ERROR_KINDS = frozenset(
    {
        "auth",  # 401 / 403
        "client_error",  # another 4xx
        "server_error",  # 5xx
        "rate_limited",  # 429 after every retry
        "deferred",  # held until a long Retry-After has passed
        "timeout",  # no complete answer within the deadline
        "dns",  # the API host name does not resolve
        "refused",  # connection refused
        "tls",  # TLS handshake or certificate error
        "network",  # any other connection error
        "too_large",  # a response over dialnexa.max_response_bytes
        "invalid",  # a 200 whose body is not a List Calls page
        "page_cap",  # a listing stopped at the page cap
        "other",  # anything else (and any kind not in this set)
    }
)
_HTTP_KIND = re.compile(r"http_[1-5][0-9][0-9]")
_KIND = "|".join([_HTTP_KIND.pattern, *sorted(ERROR_KINDS)])
_STALE = rf"no successful poll (?:yet|for [0-9]{{1,15}}s)(?: \(last error: (?:{_KIND})\))?"
_FIXED = "|".join(re.escape(r) for r in REASONS if "{" not in r and r != NO_POLL_YET)
_REASON = re.compile(rf"(?:{_FIXED}|{_STALE})")


def error_kind(kind: str | None = None, code: int | None = None) -> str:
    """The name /readyz shows for a poll error: ``http_403`` when there is an HTTP status
    (the most precise), else the kind when it is in ERROR_KINDS, else ``other``."""
    if code is not None and 100 <= code <= 599:
        return f"http_{code}"
    if kind is not None and (kind in ERROR_KINDS or _HTTP_KIND.fullmatch(kind)):
        return kind
    return "other"


def stale_reason(seconds: float | None, kind: str | None = None) -> str:
    """``no successful poll for 95s (last error: http_403)``; ``seconds`` None: ``yet``."""
    text = NO_POLL_YET if seconds is None else NO_POLL_FOR.format(seconds=max(0, int(seconds)))
    if kind is not None:
        text += " (" + LAST_ERROR.format(kind=error_kind(kind)) + ")"
    return text


def poll_reasons(
    status: PollStatus, now: float, fresh_for: float, kind: str | None = None
) -> list[str]:
    """The polling part of readiness: the backfill, and a success within ``fresh_for``
    seconds. ``kind`` names the last error (ApiError.kind) when the last poll failed."""
    reasons = []
    if not status.backfilled:
        reasons.append(BACKFILL_NOT_DONE)
    last_error = kind if status.last_error is not None else None
    if status.last_success is None:
        if last_error is not None:
            reasons.append(stale_reason(None, last_error))
    elif now - status.last_success >= fresh_for:
        reasons.append(stale_reason(now - status.last_success, last_error))
    return reasons


def readyz_text(ok: bool, reasons: list[str]) -> str:
    """The /readyz body: ``ready`` or ``not ready: <reason>; <reason>``, each reason checked
    against the vocabulary (anything else becomes UNRECOGNISED and is not echoed)."""
    if ok:
        return "ready\n"
    safe = [r if isinstance(r, str) and _REASON.fullmatch(r) else UNRECOGNISED for r in reasons]
    return "not ready: " + "; ".join(dict.fromkeys(safe) or [UNRECOGNISED]) + "\n"


# ---- what the endpoints read ------------------------------------------------------------------
class Exposition(Protocol):
    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The /metrics body and its Content-Type for an ``Accept`` header."""
        ...


@runtime_checkable
class Served(Protocol):
    """What the endpoints read (``daemon.Watchdog``). Called from worker threads, several at
    once: keep ``readiness`` and ``liveness`` cheap and free of the windows lock."""

    @property
    def metrics(self) -> Exposition: ...

    def readiness(self) -> tuple[bool, list[str]]:
        """(ready, reasons): reasons from the vocabulary above (constants, stale_reason())."""
        ...

    def liveness(self) -> bool:
        """False when the poll loop is stuck (/healthz answers 503)."""
        ...


# ---- HTTP messages (pure) ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    keep_alive: bool
    has_body: bool  # Content-Length > 0 or Transfer-Encoding: the connection closes after


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = TEXT
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VERSION = re.compile(r"HTTP/([0-9])\.([0-9])")
MAX_HEADERS = 100


def _error(status: HTTPStatus, text: str) -> Response:
    return Response(int(status), (text + "\n").encode(), close=True)


def parse_head(head: bytes) -> Request | Response:
    """A request head (request line and header lines, without the blank line) -> Request,
    or the error Response to send before closing the connection."""
    lines = head.decode("latin-1").split("\n")
    lines = [line.removesuffix("\r") for line in lines]
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1]:
        return _error(HTTPStatus.BAD_REQUEST, "bad request line")
    method, target, version = parts
    v = _VERSION.fullmatch(version)
    if v is None:
        return _error(HTTPStatus.BAD_REQUEST, "bad request line")
    if v.group(1) != "1":
        return _error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "HTTP/1.0 and HTTP/1.1 only")
    if len(lines) - 1 > MAX_HEADERS:
        return _error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many header fields")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name) or any(c in value for c in "\r\0"):
            return _error(HTTPStatus.BAD_REQUEST, "bad header field")
        name, value = name.lower(), value.strip(" \t")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    http11 = v.group(2) != "0"
    keep_alive = "close" not in tokens if http11 else "keep-alive" in tokens
    length = headers.get("content-length", "0").strip()
    has_body = "transfer-encoding" in headers or length not in ("", "0")
    if target.startswith(("http://", "https://")):  # absolute-form
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    path = target.split("?", 1)[0]
    return Request(method, path, headers, keep_alive, has_body)


def respond(served: Served, req: Request) -> Response:
    """The response to one request (runs on a worker thread)."""
    if req.method not in ("GET", "HEAD"):
        return Response(
            int(HTTPStatus.METHOD_NOT_ALLOWED),
            b"method not allowed\n",
            headers=(("Allow", "GET, HEAD"),),
            close=req.has_body,
        )
    if req.path == "/metrics":
        body, content_type = served.metrics.exposition(req.headers.get("accept"))
        headers: tuple[tuple[str, str], ...] = (("Vary", "Accept, Accept-Encoding"),)
        if gzip_accepted(req.headers.get("accept-encoding", "")):
            body = gzip.compress(body, compresslevel=GZIP_LEVEL)
            headers += (("Content-Encoding", "gzip"),)
        return Response(200, body, content_type, headers)
    if req.path == "/healthz":
        if served.liveness():
            return Response(200, b"ok\n")
        return Response(503, f"not alive: {POLL_LOOP_STALLED}\n".encode())
    if req.path == "/readyz":
        ok, reasons = served.readiness()
        return Response(200 if ok else 503, readyz_text(ok, reasons).encode())
    if req.path == "/":
        lines = [f"{path}  {what}" for path, what in ENDPOINTS]
        return Response(200, ("dialnexa-watchdog\n" + "\n".join(lines) + "\n").encode())
    return Response(int(HTTPStatus.NOT_FOUND), b"not found\n")


def serialize(resp: Response, head_only: bool, keep_alive: bool) -> list[bytes]:
    """Status line and headers, then the body (left out for HEAD; Content-Length stays)."""
    reason = HTTPStatus(resp.status).phrase
    lines = [
        f"HTTP/1.1 {resp.status} {reason}",
        f"Content-Type: {resp.content_type}",
        f"Content-Length: {len(resp.body)}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
        *(f"{k}: {v}" for k, v in resp.headers),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if head_only or not resp.body:
        return [head]
    if len(resp.body) <= 65536:  # one segment (and no copy of a big body)
        return [head + resp.body]
    return [head, resp.body]


# ---- the server -------------------------------------------------------------------------------
# gzip level: 10.7 MB of /metrics (10,000 agents) compresses to about the same size at level 1
# as at 9 in a fraction of the time (bench/httpd.py prints both)
GZIP_LEVEL = 1


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what clients can make the server hold. Times in seconds."""

    workers: int = 4  # threads computing responses (a render holds the windows lock anyway)
    max_connections: int = 256  # open client sockets; a new one closes the oldest idle one
    header_timeout: float = 5.0  # connect (or first byte of a keep-alive request) -> full head
    keepalive_timeout: float = 30.0  # idle between requests on one connection
    write_timeout: float = 30.0  # response ready -> last byte sent
    linger_timeout: float = 2.0  # after a response with Connection: close, drain then close
    max_head_bytes: int = 8192  # request line and headers
    max_queued: int = 32  # requests waiting for a worker; more get 503 at once
    max_buffered_bytes: int = 64 * 1024 * 1024  # response bytes not yet sent, all clients


_READ, _WORK, _WRITE, _LINGER = range(4)
_SHED_LIMITED = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_BUSY_RESPONSE = Response(503, b"busy\n", headers=(("Retry-After", "1"),), close=True)
_BUSY = b"".join(serialize(_BUSY_RESPONSE, False, False))


@dataclass(eq=False, slots=True)
class _Conn:
    sock: socket.socket
    state: int
    deadline: float
    since: float  # when it last became idle (for shedding the oldest idle connection)
    idle: bool = True  # no byte of a request yet (a fresh or keep-alive connection)
    buf: bytearray = field(default_factory=bytearray)
    out: collections.deque[memoryview] = field(default_factory=collections.deque)
    out_bytes: int = 0
    keep_alive: bool = False
    drained: int = 0
    closed: bool = False


class HttpServer:
    """The endpoints on one listening socket. ``serve_forever()`` runs the event loop on the
    calling thread; ``shutdown()`` stops it from another and waits; ``server_close()`` frees
    the listening socket (the socketserver names the daemon already uses)."""

    def __init__(
        self,
        served: Served,
        host: str,
        port: int,
        limits: Limits | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.served = served
        self.limits = limits or Limits()
        self._now = now
        host = host.removeprefix("[").removesuffix("]")  # [::]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, port), family=family, backlog=128)
        self._listener.setblocking(False)
        self.server_address = self._listener.getsockname()
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._pool = ThreadPoolExecutor(self.limits.workers, thread_name_prefix="http-worker")
        self._conns: dict[int, _Conn] = {}
        self._done: collections.deque[tuple[_Conn, Request, Future[Response]]] = collections.deque()
        self._working = 0
        self._buffered = 0
        self._accept_paused_until: float | None = None
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._shed = 0
        self._shed_logged = 0.0
        self._error_logged = 0.0

    # ---- lifecycle ----------------------------------------------------------------------
    def serve_forever(self) -> None:
        self._stopped.clear()
        try:
            self._sel.register(self._listener, selectors.EVENT_READ, None)
            self._sel.register(self._wake_r, selectors.EVENT_READ, None)
            while not self._stopping.is_set():
                try:
                    self._step()
                except Exception:  # a bug in the loop itself must not end serving
                    self._log_error("http event loop step failed")
        finally:
            for conn in list(self._conns.values()):
                self._close(conn)
            for sock in (self._listener, self._wake_r):
                with contextlib.suppress(KeyError, ValueError):
                    self._sel.unregister(sock)
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop serve_forever (from another thread) and wait for it to return."""
        self._stopping.set()
        self.wake()
        self._stopped.wait()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def server_close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._listener.close()
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    def wake(self) -> None:
        """Make the loop look at its deadlines now (shutdown; tests that move a fake clock)."""
        with contextlib.suppress(OSError):  # full (a wake is pending anyway) or closed
            self._wake_w.send(b"x")

    @property
    def connections(self) -> int:
        return len(self._conns)

    # ---- the loop -----------------------------------------------------------------------
    def _step(self) -> None:
        now = self._now()
        if self._accept_paused_until is not None and now >= self._accept_paused_until:
            self._accept_paused_until = None
            self._sel.register(self._listener, selectors.EVENT_READ, None)
        for key, mask in self._sel.select(self._timeout(now)):
            if key.fileobj is self._listener:
                self._accept()
            elif key.fileobj is self._wake_r:
                self._drain_wake()
            else:
                writable = mask & selectors.EVENT_WRITE
                self._guarded(key.data, self._on_writable if writable else self._on_readable)
        while self._done:
            conn, req, fut = self._done.popleft()
            self._working -= 1
            self._guarded(conn, functools.partial(self._on_response, req=req, fut=fut))
        self._expire(self._now())

    def _timeout(self, now: float) -> float:
        deadlines = [c.deadline for c in self._conns.values() if c.state != _WORK]
        if self._accept_paused_until is not None:
            deadlines.append(self._accept_paused_until)
        if not deadlines:
            return 1.0
        return min(1.0, max(0.0, min(deadlines) - now))

    def _guarded(self, conn: _Conn, handler: Callable[[_Conn], None]) -> None:
        """Run one connection's handler: a client fault closes that connection (debug), a
        bug is logged (rate-limited) and closes it too; the loop goes on either way."""
        if conn.closed:
            return
        try:
            handler(conn)
        except OSError as exc:  # reset, broken pipe, ...: the client's doing
            log.debug("http client dropped: %s", type(exc).__name__)
            self._close(conn)
        except Exception:
            self._log_error("http connection failed")
            self._close(conn)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    # ---- connections --------------------------------------------------------------------
    def _accept(self) -> None:
        for _ in range(64):  # a batch, then the other sockets get their turn
            try:
                sock, _addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _SHED_LIMITED and self._shed_oldest():
                    continue  # out of file descriptors: one idle connection made room
                if exc.errno in _SHED_LIMITED:
                    self._pause_accepting()
                else:
                    log.debug("http accept failed: %s", errno.errorcode.get(exc.errno or 0))
                return
            sock.setblocking(False)
            # no Nagle: a response's last segment must not wait for the client's delayed ACK
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if len(self._conns) >= self.limits.max_connections and not self._shed_oldest():
                _refuse(sock)  # every connection is mid-request: 503 to the newcomer
                continue
            now = self._now()
            conn = _Conn(sock, _READ, now + self.limits.header_timeout, now)
            self._conns[sock.fileno()] = conn
            self._sel.register(sock, selectors.EVENT_READ, conn)

    def _pause_accepting(self) -> None:
        """No descriptor left and no idle connection to close: stop accepting briefly (the
        listening socket would otherwise be readable forever)."""
        self._sel.unregister(self._listener)
        self._accept_paused_until = self._now() + 0.5
        self._note_shed()

    def _shed_oldest(self) -> bool:
        """Close the connection that has been idle longest (else the slowest unfinished
        head); False when every connection is being served."""
        idle = [c for c in self._conns.values() if c.state == _READ and c.idle]
        if not idle:
            idle = [c for c in self._conns.values() if c.state in (_READ, _LINGER)]
        if not idle:
            return False
        self._close(min(idle, key=lambda c: c.since))
        self._note_shed()
        return True

    def _note_shed(self) -> None:
        self._shed += 1
        now = time.monotonic()
        if now - self._shed_logged >= 60.0:
            self._shed_logged = now
            log.info(
                "http connection limit reached: closing the longest-idle connections",
                extra={"shed": self._shed, "max_connections": self.limits.max_connections},
            )
            self._shed = 0

    def _on_readable(self, conn: _Conn) -> None:
        data = conn.sock.recv(65536)
        if not data:
            log.debug("http client closed the connection")
            self._close(conn)
            return
        if conn.state == _LINGER:
            conn.drained += len(data)
            if conn.drained > 1024 * 1024:
                self._close(conn)
            return
        if conn.idle:
            conn.idle = False
            if conn.keep_alive:  # a keep-alive connection's next request starts now
                conn.deadline = self._now() + self.limits.header_timeout
        conn.buf += data
        self._next_request(conn)

    def _next_request(self, conn: _Conn) -> None:
        """Dispatch the request in conn.buf once its head is complete."""
        while conn.buf[:2] == b"\r\n" or conn.buf[:1] == b"\n":  # blank lines between requests
            del conn.buf[: 2 if conn.buf[:1] == b"\r" else 1]
        if not conn.buf:
            return
        end, sep = conn.buf.find(b"\r\n\r\n"), 4
        if end < 0:
            end, sep = conn.buf.find(b"\n\n"), 2
        limit = self.limits.max_head_bytes
        if end < 0 or end > limit:
            if len(conn.buf) > limit or end > limit:
                first_line = conn.buf.find(b"\n", 0, limit)
                status = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
                if first_line < 0:
                    status = HTTPStatus.REQUEST_URI_TOO_LONG
                self._send(conn, _error(status, status.phrase.lower()), False)
            return
        head = bytes(conn.buf[:end])
        del conn.buf[: end + sep]
        parsed = parse_head(head)
        if isinstance(parsed, Response):
            self._send(conn, parsed, False)
            return
        if self._working >= self.limits.max_queued or (
            self._buffered >= self.limits.max_buffered_bytes
        ):
            self._send(conn, _BUSY_RESPONSE, parsed)  # closes: no loop over pipelined requests
            return
        conn.state = _WORK
        self._sel.unregister(conn.sock)  # pipelined bytes wait in the kernel meanwhile
        self._working += 1
        fut = self._pool.submit(self._respond, parsed)
        fut.add_done_callback(functools.partial(self._finished, conn, parsed))

    def _finished(self, conn: _Conn, req: Request, fut: Future[Response]) -> None:
        """A worker is done (on the worker's thread): hand the response to the loop."""
        self._done.append((conn, req, fut))
        self.wake()

    def _on_response(self, conn: _Conn, req: Request, fut: Future[Response]) -> None:
        if fut.cancelled():
            self._close(conn)
            return
        resp = fut.result()  # _respond never raises
        if self._buffered and self._buffered + len(resp.body) > self.limits.max_buffered_bytes:
            resp = _BUSY_RESPONSE  # slow readers hold enough already: bound the memory
        self._sel.register(conn.sock, selectors.EVENT_READ, conn)
        self._send(conn, resp, req)

    def _send(self, conn: _Conn, resp: Response, req: Request | bool) -> None:
        """Start writing ``resp``; ``req`` False: an error before a request was parsed."""
        head_only = isinstance(req, Request) and req.method == "HEAD"
        keep = (
            isinstance(req, Request)
            and req.keep_alive
            and not req.has_body
            and not resp.close
            and not self._stopping.is_set()
        )
        conn.keep_alive = keep
        conn.out.extend(memoryview(b) for b in serialize(resp, head_only, keep))
        n = sum(len(b) for b in conn.out)
        conn.out_bytes += n
        self._buffered += n
        conn.state = _WRITE
        conn.deadline = self._now() + self.limits.write_timeout
        self._on_writable(conn)

    def _on_writable(self, conn: _Conn) -> None:
        while conn.out:
            chunk = conn.out[0]
            try:
                sent = conn.sock.send(chunk[:262144])
            except (BlockingIOError, InterruptedError):
                sent = 0
            conn.out_bytes -= sent
            self._buffered -= sent
            if sent < len(chunk):
                conn.out[0] = chunk[sent:]
                self._sel.modify(conn.sock, selectors.EVENT_WRITE, conn)
                return
            conn.out.popleft()
        self._written(conn)

    def _written(self, conn: _Conn) -> None:
        now = self._now()
        if conn.keep_alive:
            conn.state, conn.idle, conn.since = _READ, not conn.buf, now
            wait = self.limits.keepalive_timeout if conn.idle else self.limits.header_timeout
            conn.deadline = now + wait
            self._sel.modify(conn.sock, selectors.EVENT_READ, conn)
            self._next_request(conn)  # a pipelined request already read
            return
        # close without losing the response: a close() with unread input sends a reset that
        # can discard it at the client; shut our side, then read until the client closes
        conn.sock.shutdown(socket.SHUT_WR)
        conn.state, conn.deadline, conn.since = _LINGER, now + self.limits.linger_timeout, now
        self._sel.modify(conn.sock, selectors.EVENT_READ, conn)

    def _expire(self, now: float) -> None:
        for conn in [c for c in self._conns.values() if c.state != _WORK and c.deadline <= now]:
            if conn.state == _READ and not conn.idle:
                log.debug("http request head timed out")
                self._guarded(conn, lambda c: self._send(c, _error(
                    HTTPStatus.REQUEST_TIMEOUT, "request timeout"), False))  # fmt: skip
            elif conn.state == _WRITE:
                log.debug("http response write timed out")
                self._close(conn)
            else:
                self._close(conn)

    def _close(self, conn: _Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._buffered -= conn.out_bytes
        conn.out.clear()
        self._conns.pop(conn.sock.fileno(), None)
        if conn.state != _WORK:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(conn.sock)
        conn.sock.close()

    def _respond(self, req: Request) -> Response:
        """respond() on a worker thread; a fault in the daemon's code is a 500."""
        try:
            return respond(self.served, req)
        except Exception:
            self._log_error("http endpoint failed")
            return Response(500, b"internal error\n")

    def _log_error(self, message: str) -> None:
        """A bug, not a client: the traceback at most once a minute, then debug lines."""
        now = time.monotonic()
        if now - self._error_logged >= 60.0:
            self._error_logged = now
            log.exception(message)
        else:
            log.debug(message, exc_info=True)


def _refuse(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.send(_BUSY)
    sock.close()


def make_http_server(
    wd: Served,
    host: str,
    port: int,
    limits: Limits | None = None,
    now: Callable[[], float] = time.monotonic,
) -> HttpServer:
    return HttpServer(wd, host, port, limits, now)
