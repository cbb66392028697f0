"""The HTTP endpoint over real sockets on 127.0.0.1: idle floods, slowloris, slow readers,
oversized heads, keep-alive, gzip and OpenMetrics as prometheus_client serves them, a real
Prometheus scraping it, and /readyz serving only its fixed vocabulary.

What the endpoints read is a fake daemon (FakeServed) around a real Metrics; the wire is real.
Time for the server's deadlines comes from a FakeClock: a test moves it, then wakes the loop.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import re
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from dialnexa_watchdog import readiness
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.httpd import HttpServer, Limits, make_http_server
from dialnexa_watchdog.metrics import Metrics
from dialnexa_watchdog.model import PollStatus, StatusClasses
from dialnexa_watchdog.windows import Windows
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as om_families,
)
from prometheus_client.parser import text_string_to_metric_families
from support import KEY, T0, require_tool

AGENTS = ("agt_a", "agt_b", "agt_c")


def real_metrics() -> Metrics:
    w = Windows({"5m": 300.0}, StatusClasses())
    w.advance(T0)
    m = Metrics(CollectorRegistry(), w, threading.Lock())
    for i, agent in enumerate(AGENTS):
        for status in ("completed", "failed", "busy"):
            w.add(agent, status, T0 - 10 - i)
            m.windows.count_settled(agent, status)
    m.windows.ready = True
    m.up.set(1)
    return m


@dataclass
class FakeServed:
    """What the endpoints read from the daemon; each call is recorded."""

    metrics: Any = field(default_factory=real_metrics)
    ready: bool = True
    reasons: list[str] = field(default_factory=list)
    alive: bool = True
    accepts: list[str | None] = field(default_factory=list)
    scraped: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))

    def readiness(self) -> tuple[bool, list[str]]:
        return self.ready, list(self.reasons)

    def liveness(self) -> bool:
        return self.alive


class Recording:
    """A Metrics wrapper that records each scrape's Accept header."""

    def __init__(self, served: FakeServed, inner: Metrics) -> None:
        self.served, self.inner = served, inner

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        self.served.accepts.append(accept)
        out = self.inner.exposition(accept)
        self.served.scraped.release()
        return out


class BigBody:
    """A /metrics body far larger than the socket buffers."""

    def __init__(self, size: int) -> None:
        self.body = b"#" * (size - 1) + b"\n"

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        return self.body, "text/plain"


@contextlib.contextmanager
def running(
    served: Any, limits: Limits | None = None, clock: FakeClock | None = None
) -> Iterator[HttpServer]:
    clock = clock or FakeClock(T0)
    server = make_http_server(served, "127.0.0.1", 0, limits, now=clock.now)
    t = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    t.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        t.join(10)
        assert not t.is_alive()


def base(server: HttpServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def connect(server: HttpServer, rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket()
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)  # a safety net: a test that waits this long has failed
    s.connect(("127.0.0.1", server.server_address[1]))
    return s


def read_all(s: socket.socket) -> bytes:
    out = bytearray()
    while chunk := s.recv(65536):
        out += chunk
    return bytes(out)


def raw(server: HttpServer, data: bytes) -> bytes:
    """Send ``data``, read until the server closes."""
    with connect(server) as s:
        s.sendall(data)
        return read_all(s)


def read_response(f: Any) -> tuple[int, dict[str, str], bytes]:
    """One response from a socket's file; the body by Content-Length (HEAD: pass no body)."""
    status = int(f.readline().split()[1])
    headers = {}
    while (line := f.readline()) not in (b"\r\n", b""):
        k, _, v = line.decode().partition(":")
        headers[k.lower()] = v.strip()
    return status, headers, f.read(int(headers["content-length"]))


def sync(server: HttpServer) -> None:
    """One request on a new connection: the loop has finished with every earlier event (a
    response's last bytes can reach the client before the loop sets the idle deadline)."""
    assert httpx.get(f"{base(server)}/healthz", timeout=10).status_code == 200


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


# ---- the endpoints ----------------------------------------------------------------------------
def test_get_and_head_on_every_endpoint_unknown_paths_404_other_methods_405() -> None:
    served = FakeServed(ready=False, reasons=[readiness.BACKFILL_NOT_DONE])
    with running(served) as server, httpx.Client(base_url=base(server), timeout=10) as c:
        index = c.get("/")
        assert index.status_code == 200
        assert all(path in index.text for path in ("/metrics", "/healthz", "/readyz"))
        for path, code in [("/", 200), ("/metrics", 200), ("/healthz", 200), ("/readyz", 503)]:
            got, head = c.get(path), c.head(path)
            assert (got.status_code, head.status_code) == (code, code)
            assert head.content == b"" and got.content != b""
            assert head.headers["content-type"] == got.headers["content-type"]
            assert head.headers.get("content-encoding") == got.headers.get("content-encoding")
            if path != "/metrics":  # (process_* values move between two renders)
                assert head.headers["content-length"] == got.headers["content-length"]
        assert c.get("/metrics?x=1").status_code == 200  # a query string is ignored
        assert c.get("/nope").status_code == 404 and c.head("/metricsx").status_code == 404
        for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"):
            r = c.request(method, "/metrics", content=b"x" * 10)
            assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD", method
        assert c.get("/healthz").status_code == 200  # the client's connection still works
        served.alive = False
        r = c.get("/healthz")
        assert r.status_code == 503 and r.text == "not alive: poll loop stalled\n"
    # HEAD on the wire: the headers, then nothing
    with running(served) as server:
        out = raw(server, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, _, body = out.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK") and body == b""
        assert b"Content-Length: 0" not in head


def test_metrics_body_is_the_daemons_exposition() -> None:
    served = FakeServed()
    with running(served) as server:
        r = httpx.get(f"{base(server)}/metrics")
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    names = {s.name for f in text_string_to_metric_families(r.text) for s in f.samples}
    assert {"dialnexa_agent_window_calls", "dialnexa_calls_total", "dialnexa_up"} <= names
    assert "dialnexa_watchdog_build_info" in names and "process_open_fds" in names


# ---- gzip and OpenMetrics, as prometheus_client's own handler ---------------------------------
REQUESTS = [
    {},
    {"Accept-Encoding": "gzip"},
    {"Accept-Encoding": "deflate, GZIP;q=0.5"},
    {"Accept-Encoding": "br"},
    {"Accept": "application/openmetrics-text;version=1.0.0"},
    {"Accept": "application/openmetrics-text;version=1.0.0", "Accept-Encoding": "gzip"},
    {"Accept": "text/plain;version=1.0.0;escaping=allow-utf-8", "Accept-Encoding": "gzip"},
    {"Accept": "application/openmetrics-text;version=1.0.0;escaping=dots"},
    {
        "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        "Accept-Encoding": "gzip",
    },
]


def fetch(url: str, headers: dict[str, str]) -> tuple[Any, bytes]:
    """GET with exactly these headers (urllib adds no Accept-Encoding); the raw body."""
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        return r.headers, r.read()


def plain(body: bytes) -> list[bytes]:
    """The lines, without process_* (CPU and memory change between two renders)."""
    return [line for line in body.splitlines() if b"process_" not in line]


def samples(body: bytes, openmetrics: bool) -> set[tuple[str, str, tuple[Any, ...], float]]:
    parse = om_families if openmetrics else text_string_to_metric_families
    return {
        (f.name, f.type, tuple(sorted(s.labels.items())), s.value)
        for f in parse(body.decode())
        for s in f.samples
        if not s.name.startswith("process_")
    }


@pytest.mark.parametrize("headers", REQUESTS)
@pytest.mark.slow
def test_gzip_and_openmetrics_negotiated_exactly_as_prometheus_clients_handler(
    headers: dict[str, str],
) -> None:
    served = FakeServed()
    m: Metrics = served.metrics
    everything = CollectorRegistry(auto_describe=False)
    everything.register(m.registry)
    everything.register(m.windows)
    theirs_server, theirs_thread = start_http_server(0, "127.0.0.1", registry=everything)
    try:
        theirs_url = f"http://127.0.0.1:{theirs_server.server_port}/metrics"
        with running(served) as server:
            ours_headers, ours_body = fetch(f"{base(server)}/metrics", headers)
        theirs_headers, theirs_body = fetch(theirs_url, headers)
    finally:
        theirs_server.shutdown()
        theirs_server.server_close()
        theirs_thread.join(10)
    assert ours_headers["Content-Type"] == theirs_headers["Content-Type"]
    encoding = theirs_headers.get("Content-Encoding")
    assert ours_headers.get("Content-Encoding") == encoding
    assert (encoding == "gzip") == ("gzip" in headers.get("Accept-Encoding", "").lower())
    ours_text = gzip.decompress(ours_body) if encoding == "gzip" else ours_body
    theirs_text = gzip.decompress(theirs_body) if encoding == "gzip" else theirs_body
    openmetrics = theirs_headers["Content-Type"].startswith("application/openmetrics-text")
    try:
        expected = samples(theirs_text, openmetrics)
    except ValueError:  # its OpenMetrics with dots escaping: its own parser refuses it
        assert plain(ours_text) == plain(theirs_text)
        return
    assert samples(ours_text, openmetrics) == expected


# ---- /readyz: a closed vocabulary -------------------------------------------------------------
def test_readyz_serves_fixed_reasons_and_never_api_text() -> None:
    leak = f"DialNexa rejected the request (400): Bearer {KEY} key={KEY}"
    served = FakeServed(
        ready=False,
        reasons=[
            readiness.BACKFILL_NOT_DONE,
            readiness.stale_reason(95.7, "http_403"),
            readiness.STATE_STORE_FAILING,
            leak,
        ],
    )
    with running(served) as server, httpx.Client(base_url=base(server)) as c:
        r = c.get("/readyz")
        assert r.status_code == 503
        assert r.text == (
            "not ready: backfill not done; no successful poll for 95s (last error: http_403);"
            " state store commit failing; unrecognised reason\n"
        )
        assert KEY not in r.text
        served.ready, served.reasons = True, [leak]
        assert (c.get("/readyz").status_code, c.get("/readyz").text) == (200, "ready\n")


def test_stale_reason_and_error_kind_only_build_vocabulary() -> None:
    assert readiness.stale_reason(None) == "no successful poll yet"
    assert readiness.stale_reason(None, "timeout") == "no successful poll yet (last error: timeout)"
    assert readiness.stale_reason(95.9, "http_403").endswith("95s (last error: http_403)")
    assert readiness.error_kind(code=429) == "http_429"
    assert readiness.error_kind("dns", code=None) == "dns"
    assert readiness.error_kind("auth", code=403) == "http_403"  # the status says more
    assert (
        readiness.error_kind("deferred") == "deferred"
        and readiness.error_kind("http_503") == "http_503"
    )
    assert (
        readiness.error_kind(f"Bearer {KEY}") == "other"
        and readiness.error_kind("http_999") == "other"
    )
    reasons = ["backfill not done", readiness.stale_reason(1e12, f"{KEY}")]
    assert readiness.readyz_text(False, reasons).count("unrecognised") == 0
    assert KEY not in readiness.readyz_text(False, reasons)


@given(st.lists(st.text(max_size=80), max_size=5))
def test_readyz_text_never_echoes_a_string_outside_the_vocabulary(reasons: list[str]) -> None:
    text = readiness.readyz_text(False, reasons)
    assert text.startswith("not ready: ") and text.endswith("\n")
    for part in text[len("not ready: ") : -1].split("; "):
        assert part == readiness.UNRECOGNISED or readiness._REASON.fullmatch(part), part
        assert part in reasons or part == readiness.UNRECOGNISED


def test_poll_reasons_from_poll_status() -> None:
    s = PollStatus(started_at=T0)
    assert readiness.poll_reasons(s, T0 + 5, 90) == [readiness.BACKFILL_NOT_DONE]
    s = PollStatus(started_at=T0, last_error=f"403: Bearer {KEY}")
    assert readiness.poll_reasons(s, T0 + 5, 90, "http_403") == [
        readiness.BACKFILL_NOT_DONE,
        "no successful poll yet (last error: http_403)",
    ]
    s = PollStatus(started_at=T0, last_success=T0 + 10, backfilled=True)
    assert readiness.poll_reasons(s, T0 + 50, 90) == []
    s = PollStatus(started_at=T0, last_success=T0 + 10, last_error="x", backfilled=True)
    assert readiness.poll_reasons(s, T0 + 105, 90, "timeout") == [
        "no successful poll for 95s (last error: timeout)"
    ]


# ---- surviving the world ----------------------------------------------------------------------
def test_200_idle_connections_and_a_slowloris_leave_metrics_and_healthz_answering(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger="watchdog.httpd")
    clock = FakeClock(T0)
    limits = Limits()
    threads_before = threading.active_count()
    with running(FakeServed(), limits, clock) as server:
        idle = [connect(server) for _ in range(200)]
        slow = connect(server)
        for piece in (b"GET /metrics HTTP/1.1\r\n", b"Host: x\r\n", b"X-Slow: ", b"a"):
            slow.sendall(piece)
        with httpx.Client(base_url=base(server), timeout=5) as c:
            for _ in range(3):
                assert c.get("/metrics").status_code == 200
                assert c.get("/healthz").status_code == 200
                assert c.get("/readyz").status_code == 200
        # one loop thread (this test's) and at most `workers` workers, whatever the clients
        assert threading.active_count() <= threads_before + 1 + limits.workers
        assert server.connections >= 201

        clock.advance(limits.header_timeout + 0.1)
        server.wake()
        assert read_all(slow).startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        for s in idle:  # closed without a word: they never sent a byte
            assert read_all(s) == b""
        for s in [*idle, slow]:
            s.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in caplog.records if r.exc_info]
    assert any(r.getMessage() == "http request head timed out" for r in caplog.records)
    assert capfd.readouterr().err == ""


def test_past_max_connections_the_oldest_idle_connection_makes_room() -> None:
    limits = Limits(max_connections=16)
    with running(FakeServed(), limits) as server:
        idle = [connect(server) for _ in range(40)]
        with httpx.Client(base_url=base(server), timeout=5) as c:
            assert c.get("/metrics").status_code == 200
            assert c.get("/healthz").status_code == 200
            assert server.connections == 16  # 15 idle + the scrape's
        for s in idle[:25]:
            assert read_all(s) == b""
        for s in idle:
            s.close()


SERVE_WITH_FEW_FDS = """
import logging, resource, sys, threading
from dialnexa_watchdog.httpd import Limits, make_http_server

class Served:
    class metrics:
        @staticmethod
        def exposition(accept):
            return b"x 1\\n", "text/plain"
    def readiness(self):
        return True, []
    def liveness(self):
        return True

logging.basicConfig(level=logging.WARNING)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
server = make_http_server(Served(), "127.0.0.1", 0, Limits(max_connections=1000))
threading.Thread(target=server.serve_forever, daemon=True).start()
print(server.server_address[1], flush=True)
sys.stdin.read()
server.shutdown()
server.server_close()
"""


def test_out_of_file_descriptors_the_oldest_idle_connection_makes_room() -> None:
    """The systemd unit's 1024 descriptors in miniature: a server process limited to 64, with
    no connection cap of its own below that, and 100 idle connections."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE_WITH_FEW_FDS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdin is not None
    port = int(proc.stdout.readline())
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(100)]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            for _ in range(3):
                assert c.get("/healthz").status_code == 200
                assert c.get("/metrics").text == "x 1\n"
        assert sum(1 for s in idle[:40] if read_all(s) == b"") == 40  # the oldest made room
    finally:
        for s in idle:
            s.close()
        _, err = proc.communicate(b"", timeout=10)
    assert proc.returncode == 0 and err == b"", err.decode()


def test_a_keepalive_connection_is_closed_after_its_idle_timeout() -> None:
    clock = FakeClock(T0)
    limits = Limits()
    with running(FakeServed(), limits, clock) as server, connect(server) as s:
        f = s.makefile("rb")
        # two pipelined requests: two responses, in order, on one connection
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(f)[0] == 200 and read_response(f)[0] == 404
        sync(server)
        clock.advance(limits.header_timeout + 1)  # idle keep-alive: the longer timeout applies
        server.wake()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(f)[0] == 200
        sync(server)
        clock.advance(limits.keepalive_timeout + 0.1)
        server.wake()
        assert f.read() == b""


def test_http_10_closes_unless_keep_alive_is_asked() -> None:
    with running(FakeServed()) as server:
        out = raw(server, b"GET /healthz HTTP/1.0\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in out
        with connect(server) as s:
            s.sendall(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            f = s.makefile("rb")
            status, headers, body = read_response(f)
            assert (status, headers["connection"], body) == (200, "keep-alive", b"ok\n")


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", 431),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n folded\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n", 400),
    ],
)
@pytest.mark.slow
def test_bad_or_oversized_request_heads_get_a_clear_status_and_a_close(
    request_bytes: bytes, status: int
) -> None:
    with running(FakeServed()) as server:
        out = raw(server, request_bytes)
        assert status_of(out) == status and b"Connection: close" in out
        assert httpx.get(f"{base(server)}/healthz").status_code == 200


def test_a_client_that_stops_reading_is_cut_off_and_holds_back_no_one() -> None:
    clock = FakeClock(T0)
    limits = Limits(max_buffered_bytes=1 << 20)
    served = FakeServed(metrics=BigBody(32 << 20))
    with running(served, limits, clock) as server, connect(server, rcvbuf=65536) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(1) == b"H"  # the response is being written, and then stalls
        # over max_buffered_bytes of unsent responses: new requests are turned away at once
        with httpx.Client(base_url=base(server), timeout=5) as c:
            r = c.get("/healthz")
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
        clock.advance(limits.write_timeout + 0.1)
        server.wake()
        try:  # what the kernel had buffered, then the end: cut off mid-body
            received = 1 + len(read_all(s))
        except ConnectionResetError:
            received = 0
        assert received < len(served.metrics.body)
        with httpx.Client(base_url=base(server), timeout=5) as c:
            assert c.get("/healthz").status_code == 200


@pytest.fixture(scope="module")
def shared_server() -> Iterator[HttpServer]:
    with running(FakeServed()) as server:
        yield server


HEADS = [b"GET /metrics HTTP/1.1\r\n", b"Host: x\r\n", b"Content-Length: 5\r\n", b"\r\n"]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.binary(max_size=300) | st.sampled_from(HEADS), max_size=8))
@pytest.mark.slow
def test_any_bytes_get_a_well_formed_answer_or_a_close(
    shared_server: HttpServer, pieces: list[bytes]
) -> None:
    with connect(shared_server) as s:
        s.sendall(b"".join(pieces))
        s.shutdown(socket.SHUT_WR)
        try:
            out = read_all(s)
        except ConnectionResetError:  # closed with our bytes unread: no answer to check
            out = b""
    assert out == b"" or re.match(rb"HTTP/1\.1 [1-5][0-9][0-9] [A-Za-z -]+\r\n", out), out[:80]
    sync(shared_server)


class Broken(FakeServed):
    def liveness(self) -> bool:
        raise RuntimeError("a bug in the daemon")


def test_a_fault_in_the_daemon_is_a_500_and_the_server_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with running(Broken()) as server, httpx.Client(base_url=base(server)) as c:
        for _ in range(3):
            r = c.get("/healthz")
            assert r.status_code == 500 and r.text == "internal error\n"
        assert c.get("/metrics").status_code == 200
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None  # a bug: once a minute


def test_shutdown_closes_open_connections_and_returns() -> None:
    with running(FakeServed()) as server:
        s = connect(server)
        assert httpx.get(f"{base(server)}/healthz").status_code == 200
    assert read_all(s) == b""
    s.close()


# ---- a real Prometheus ------------------------------------------------------------------------
@pytest.mark.slow
def test_prometheus_scrapes_openmetrics_with_gzip(tmp_path: Path) -> None:
    prometheus = require_tool("prometheus")
    served = FakeServed()
    inner: Metrics = served.metrics
    served.metrics = Recording(served, inner)
    with running(served) as server:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            prom_port = probe.getsockname()[1]
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": "w",
                    "static_configs": [{"targets": [f"127.0.0.1:{server.server_address[1]}"]}],
                }
            ],
        }
        (tmp_path / "p.yml").write_text(yaml.safe_dump(config))
        proc = subprocess.Popen(
            [
                prometheus,
                f"--config.file={tmp_path / 'p.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "err").open("wb"),
        )
        try:
            # the second scrape starts after the first one was stored
            for _ in range(2):
                assert served.scraped.acquire(timeout=60), (tmp_path / "err").read_text()

            def query(expr: str) -> list[dict[str, Any]]:
                q = urllib.parse.urlencode({"query": expr})
                url = f"http://127.0.0.1:{prom_port}/api/v1/query?{q}"
                with urllib.request.urlopen(url, timeout=10) as resp:
                    data = json.loads(resp.read())
                assert data["status"] == "success"
                result: list[dict[str, Any]] = data["data"]["result"]
                return result

            assert [r["value"][1] for r in query('up{job="w"}')] == ["1"]
            calls = query('dialnexa_agent_window_calls{job="w",window="5m"}')
            assert sorted(r["metric"]["agent_id"] for r in calls) == list(AGENTS)
            assert len(query('dialnexa_calls_total{job="w"}')) == 3 * len(AGENTS)
            assert query('dialnexa_watchdog_build_info{job="w"}')
        finally:
            proc.terminate()
            proc.wait(10)
    assert served.accepts[0] is not None
    assert served.accepts[0].startswith("application/openmetrics-text")


def test_an_ipv6_listen_address_is_served() -> None:
    try:
        server = make_http_server(FakeServed(), "[::1]", 0)
    except OSError as exc:  # no IPv6 on this host
        pytest.skip(f"cannot bind ::1: {exc}")
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        r = httpx.get(f"http://[::1]:{server.server_address[1]}/healthz", timeout=10)
        assert (r.status_code, r.text) == (200, "ok\n")
    finally:
        server.shutdown()
        server.server_close()
