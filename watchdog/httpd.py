"""HTTP: ``/metrics``, ``/healthz`` and ``/readyz`` on ``metrics.listen``. The I/O edge.

One event-loop thread owns every socket. It accepts connections, reads request heads without
blocking (a deadline and a size cap per head), writes responses, and closes idle and slow
connections. A small pool of worker threads only computes responses (a /metrics render,
gzip, the daemon's readiness); no worker ever waits on a client. So an idle or slow client
costs one file descriptor and no thread, the number of connections is capped (a new one
closes the oldest idle one to get in), and a scrape gets through while hundreds of idle
sockets are open. A client that disconnects or times out is one debug line, never a
traceback.

What each path answers and the HTTP messages are in ``endpoints.py``; what /readyz may say
(a closed vocabulary, never text that came from the API) is in ``readiness.py``.

Longer than ~400 lines because ``HttpServer`` is one state machine over one connection table
and one selector: every handler (accept, read, dispatch, write, linger, expire, shed, close)
moves connections between the same four states, keeps each socket registered exactly while
its state needs it, and keeps the two shared counters (queued requests, buffered bytes)
exact. Split across modules, those invariants could no longer be checked in one reading.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import functools
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus

from .endpoints import (
    BUSY_RESPONSE,
    GZIP_LEVEL,
    Request,
    Response,
    Served,
    error_response,
    parse_head,
    respond,
    serialize,
)

# re-exported: daemon.py, app.py and bench/httpd.py import these from here
from .readiness import STATE_STORE_FAILING, error_kind, poll_reasons

log = logging.getLogger("watchdog.httpd")


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
_BUSY = b"".join(serialize(BUSY_RESPONSE, False, False))
_TIMED_OUT = error_response(HTTPStatus.REQUEST_TIMEOUT, "request timeout")


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
                self._send(conn, error_response(status, status.phrase.lower()), False)
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
            self._send(conn, BUSY_RESPONSE, parsed)  # closes: no loop over pipelined requests
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
            resp = BUSY_RESPONSE  # slow readers hold enough already: bound the memory
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
                self._guarded(conn, lambda c: self._send(c, _TIMED_OUT, False))
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


__all__ = [
    "GZIP_LEVEL",
    "STATE_STORE_FAILING",
    "HttpServer",
    "Limits",
    "error_kind",
    "make_http_server",
    "poll_reasons",
]
