"""What each path answers (``respond``), and the HTTP/1.1 messages around it: a request head
parsed into a ``Request`` (or the error to send), a ``Response`` serialized. Pure: no sockets;
``httpd.py`` runs them on its event loop and worker threads.

``/metrics`` (text format, or OpenMetrics when asked; gzip when accepted), ``/healthz``
(liveness), ``/readyz`` (readiness in the closed vocabulary of ``readiness.py``), ``/`` (the
list of endpoints); anything else is 404, a method other than GET or HEAD is 405.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from http import HTTPStatus
from typing import Protocol, runtime_checkable

from prometheus_client.exposition import gzip_accepted

from .readiness import POLL_LOOP_STALLED, readyz_text

TEXT = "text/plain; charset=utf-8"
ENDPOINTS = (
    ("/metrics", "Prometheus metrics (text format, or OpenMetrics when asked; gzip)"),
    ("/healthz", "200 while the poll loop is alive (liveness)"),
    ("/readyz", "200 once backfilled and polling; 503 with a fixed reason otherwise"),
)
# gzip level: 10.7 MB of /metrics (10,000 agents) compresses to about the same size at level 1
# as at 9 in a fraction of the time (bench/httpd.py prints both)
GZIP_LEVEL = 1


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


def error_response(status: HTTPStatus, text: str) -> Response:
    """A plain-text error that closes the connection."""
    return Response(int(status), (text + "\n").encode(), close=True)


def parse_head(head: bytes) -> Request | Response:
    """A request head (request line and header lines, without the blank line) -> Request,
    or the error Response to send before closing the connection."""
    lines = head.decode("latin-1").split("\n")
    lines = [line.removesuffix("\r") for line in lines]
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1]:
        return error_response(HTTPStatus.BAD_REQUEST, "bad request line")
    method, target, version = parts
    v = _VERSION.fullmatch(version)
    if v is None:
        return error_response(HTTPStatus.BAD_REQUEST, "bad request line")
    if v.group(1) != "1":
        return error_response(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "HTTP/1.0 and HTTP/1.1 only")
    if len(lines) - 1 > MAX_HEADERS:
        return error_response(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many header fields")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name) or any(c in value for c in "\r\0"):
            return error_response(HTTPStatus.BAD_REQUEST, "bad header field")
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


BUSY_RESPONSE = Response(503, b"busy\n", headers=(("Retry-After", "1"),), close=True)
