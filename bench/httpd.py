"""The /metrics endpoint at 10,000 agents: render and gzip costs, and scrapes over loopback
while hundreds of idle connections are open.

Run as ``python -m bench.httpd`` (``--agents``, ``--idle``); prints a table, then one JSON line.
The windows are filled directly (no simulator, no polling): this measures the exposition and
the HTTP server only.
"""

from __future__ import annotations

import argparse
import gzip
import json
import socket
import statistics
import threading
import time
from typing import Any

import httpx
from dialnexa_watchdog.httpd import GZIP_LEVEL, Limits, make_http_server
from dialnexa_watchdog.metrics import Metrics
from dialnexa_watchdog.model import StatusClasses
from dialnexa_watchdog.windows import Windows
from prometheus_client import CollectorRegistry

T0 = 1_767_261_600.0
STATUSES = ("completed", "completed", "completed", "failed", "busy", "no_answer", "voicemail")
OPENMETRICS = "application/openmetrics-text;version=1.0.0"


class Served:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def readiness(self) -> tuple[bool, list[str]]:
        return True, []

    def liveness(self) -> bool:
        return True


def build(agents: int) -> Metrics:
    w = Windows({"5m": 300.0, "15m": 900.0, "1h": 3600.0}, StatusClasses())
    w.advance(T0)
    m = Metrics(CollectorRegistry(), w, threading.Lock())
    for i in range(agents):
        agent = f"agt_{i:05d}"
        for j, status in enumerate(STATUSES):
            w.add(agent, status, T0 - 60 * (1 + (i + j) % 50))
            m.windows.count_settled(agent, status)
    m.windows.ready = True
    return m


def best_ms(fn: Any, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000


def scrape_ms(client: httpx.Client, url: str, headers: dict[str, str], n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(url, headers=headers)
        r.raise_for_status()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def run(agents: int, idle: int) -> dict[str, Any]:
    m = build(agents)
    text, _ = m.exposition(None)
    om, _ = m.exposition(OPENMETRICS)
    out: dict[str, Any] = {
        "agents": agents,
        "body_bytes": len(text),
        "render_text_ms": best_ms(lambda: m.exposition(None)),
        "render_openmetrics_ms": best_ms(lambda: m.exposition(OPENMETRICS)),
        "openmetrics_bytes": len(om),
    }
    for level in (1, 6, 9):
        out[f"gzip{level}_ms"] = best_ms(lambda lv=level: gzip.compress(text, lv), repeat=3)
        out[f"gzip{level}_bytes"] = len(gzip.compress(text, level))
    out["gzip_level_used"] = GZIP_LEVEL

    threads_before = threading.active_count()
    limits = Limits()
    server = make_http_server(Served(m), "127.0.0.1", 0, limits)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    socks: list[socket.socket] = []
    try:
        with httpx.Client(timeout=30) as c:
            plain = {"Accept-Encoding": "identity"}
            zipped = {"Accept-Encoding": "gzip", "Accept": OPENMETRICS}
            out["scrape_identity_ms"] = scrape_ms(c, url, plain, 5)
            out["scrape_gzip_openmetrics_ms"] = scrape_ms(c, url, zipped, 5)
            for _ in range(idle):
                socks.append(socket.create_connection(("127.0.0.1", server.server_address[1])))
            out["idle_connections"] = idle
            out["scrape_gzip_with_idle_ms"] = scrape_ms(c, url, zipped, 5)
            t_health = time.perf_counter()
            for _ in range(50):
                c.get(url.replace("/metrics", "/healthz")).raise_for_status()
            out["healthz_with_idle_ms"] = (time.perf_counter() - t_health) / 50 * 1000
            out["server_connections"] = server.connections
            out["threads_added"] = threading.active_count() - threads_before
    finally:
        for s in socks:
            s.close()
        server.shutdown()
        server.server_close()
    return out


ROWS = [
    ("agents", "{:,}"),
    ("body_bytes", "{:,}"),
    ("render_text_ms", "{:.1f}"),
    ("render_openmetrics_ms", "{:.1f}"),
    ("gzip1_ms", "{:.1f}"),
    ("gzip1_bytes", "{:,}"),
    ("gzip6_ms", "{:.1f}"),
    ("gzip6_bytes", "{:,}"),
    ("gzip9_ms", "{:.1f}"),
    ("gzip9_bytes", "{:,}"),
    ("scrape_identity_ms", "{:.1f}"),
    ("scrape_gzip_openmetrics_ms", "{:.1f}"),
    ("idle_connections", "{:,}"),
    ("scrape_gzip_with_idle_ms", "{:.1f}"),
    ("healthz_with_idle_ms", "{:.2f}"),
    ("server_connections", "{}"),
    ("threads_added", "{}"),
]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--agents", type=int, default=10_000)
    p.add_argument("--idle", type=int, default=200)
    a = p.parse_args()
    result = run(a.agents, a.idle)
    for key, fmt in ROWS:
        print(f"{key:32} {fmt.format(result[key])}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
