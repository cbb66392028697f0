"""Ingest throughput: raw List Calls page bytes -> updated window counters, against
json.loads on the same bytes (the floor for any JSON-based parser), in one process."""

from __future__ import annotations

import json
import time
from typing import Any

from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.ingest.parse import parse_page
from dialnexa_watchdog.ingest.tracker import Tracker, TrackerConfig
from dialnexa_watchdog.model import StatusClasses
from dialnexa_watchdog.simulator import Scenario, Simulator
from dialnexa_watchdog.windows import Windows

from bench.common import KEY, T0

WINDOWS = {"5m": 300.0, "15m": 900.0, "1h": 3600.0}


def make_pages(n_pages: int, agents: int = 2000, seed: int = 5) -> list[bytes]:
    clock = FakeClock(T0)
    sim = Simulator(clock, Scenario.steady(agents, 1_000_000, seed), keys=(KEY,), rate_limit=None)
    clock.advance(900)
    pages = []
    for page in range(1, n_pages + 1):
        resp = sim.handle("GET", "/v1/calls", f"limit=100&page={page}", f"Bearer {KEY}")
        pages.append(resp.body)
    return pages


def _best(fn: Any, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def run_ingest(n_pages: int = 400, repeat: int = 5) -> dict[str, float]:
    pages = make_pages(n_pages)
    calls = sum(len(json.loads(p)["data"]) for p in pages)
    classes = StatusClasses()

    def json_only() -> None:
        for p in pages:
            json.loads(p)

    def ours() -> None:
        windows = Windows(WINDOWS, classes)
        tracker = Tracker(TrackerConfig(longest_window=3600.0), windows, classes)
        now = T0 + 900
        listed = []  # one cycle: the pages of a listing, then one apply
        for p in pages:
            listed.extend(parse_page(p).calls)
        tracker.apply(listed, now, backfill=True)

    def parse_only() -> None:
        for p in pages:
            parse_page(p)

    t_json = _best(json_only, repeat)
    t_ours = _best(ours, repeat)
    t_parse = _best(parse_only, repeat)
    return {
        "ingest_calls": calls,
        "ingest_bytes": sum(len(p) for p in pages),
        "ingest_calls_per_second": calls / t_ours,
        "json_loads_calls_per_second": calls / t_json,
        "parse_only_calls_per_second": calls / t_parse,
        "ingest_ratio_to_json_loads": t_json / t_ours,
    }
