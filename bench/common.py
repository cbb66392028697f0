"""Shared pieces of the benchmark: a daemon driven by a fake clock against the in-process
simulator (httpx.WSGITransport: the same HTTP client code, no sockets, no sleeping)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from dialnexa_watchdog.app import build
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.config import Settings, load_settings
from dialnexa_watchdog.daemon import Watchdog
from dialnexa_watchdog.simulator import Simulator

T0 = 1_767_261_600.0  # a fixed start (06:00 UTC), so the diurnal curve is repeatable
KEY = "bench-key"


def bench_settings(tmp: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "dialnexa.base_url": "http://sim/v1",
        "dialnexa.api_key": KEY,
        "metrics.listen": "127.0.0.1:0",
        "state.path": str(tmp / "state.sqlite3"),
        "poll.interval": "30s",
        "windows": ["5m", "15m", "1h"],
    }
    base.update(overrides)
    return load_settings(None, overrides=base, environ={})


def make_daemon(sim: Simulator, clock: FakeClock, settings: Settings, **kw: Any) -> Watchdog:
    """The daemon from the composition root, its network replaced by the simulator."""
    kw.setdefault("alerting", False)
    return build(settings, clock, transport=httpx.WSGITransport(app=sim), **kw).daemon
