"""Restarts and takeovers: what a restart costs cold vs warm, and how long a standby takes
to lead after the leader is killed.

**Restart** (in process, fake clock, the simulator at 1M calls/day over 2,000 agents with its
rate limit): a daemon with a SQLite state store runs ``LEAD`` of cycles (30 s interval), then
is dropped without closing anything (as SIGKILL leaves it). After a gap of ``GAPS`` seconds
the same configuration starts again on a copy of the state store as it was at the kill (warm:
rebuild from the recorded history, then one poll listing the gap); after the last gap, once
on an empty store (cold: the backfill). For each: the API requests until ``/readyz`` is 200,
and restart-to-ready seconds = the work's wall time (build and first poll, on this machine)
plus the fake time the poll waited (the rate budget's pacing: ``dialnexa.rate_budget`` 0.5 of
the simulator's 150 requests a minute, and backoff, which a real run would wait).
Reference: the settled-call bound of the gap (calls settling in it / 100), the issue's
target being at most twice that for a warm restart.

**Takeover** (real processes on a throwaway PostgreSQL cluster, the simulator on the system
clock, needs Debian's ``postgresql``): two ``dialnexa-watchdog run`` replicas; SIGKILL the
leader, time until the standby's first successful poll (its
``dialnexa_last_successful_poll_timestamp_seconds`` appears), start a new standby, repeat.
Not in ``--quick`` (it needs the cluster and seconds per repetition).

``python -m bench --only ha`` runs this section alone.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from dialnexa_watchdog.app import App, build
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.config import Settings
from dialnexa_watchdog.simulator import Scenario, Simulator

from bench.common import KEY, T0, bench_settings

FULL = {"agents": 2000, "calls_per_day": 1_000_000, "lead": 3900.0, "gaps": [60.0, 300.0, 1800.0]}
QUICK = {"agents": 100, "calls_per_day": 50_000, "lead": 600.0, "gaps": [300.0]}
TAKEOVERS = 5
TAKEOVER_INTERVAL = 5.0  # the replicas' poll interval
INTERVAL = 30.0


class _Counting(httpx.WSGITransport):
    def __init__(self, app: Any) -> None:
        super().__init__(app=app)
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return super().handle_request(request)


def _start(settings: Settings, clock: FakeClock, sim: Simulator) -> tuple[App, dict[str, float]]:
    """Build and poll once (until ready): requests, wall seconds, fake seconds waited."""
    transport = _Counting(sim)
    wall, fake = time.perf_counter(), clock.now()
    app = build(settings, clock, transport=transport, stream=io.StringIO())
    built = time.perf_counter() - wall
    report = app.daemon.poll_once()
    if not (report.ok and app.daemon.ready):
        raise RuntimeError(f"not ready after the first poll: {report.error}")
    took = time.perf_counter() - wall
    waited = clock.now() - fake
    return app, {
        "requests": transport.requests,
        "build_wall_s": built,
        "wall_s": took,
        "waited_s": waited,
        "ready_s": took + waited,
        "warm": app.resumed is not None,
    }


def _copy(src: Path, dst: Path) -> None:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


def restarts(quick: bool) -> dict[str, Any]:
    p = QUICK if quick else FULL
    logging.getLogger("watchdog").setLevel(logging.ERROR)  # deferral lines each cycle
    clock = FakeClock(T0)
    scenario = Scenario.steady(int(p["agents"]), float(p["calls_per_day"]), 11, diurnal=True)
    sim = Simulator(clock, scenario, keys=(KEY,), rate_limit=150, rate_reset="seconds")
    out: dict[str, Any] = {"params": p, "gaps": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = bench_settings(root)
        state = Path(settings.state.path)
        lead, first = _start(settings, clock, sim)
        out["first_start"] = first
        last = clock.now()
        for _ in range(int(float(p["lead"]) / INTERVAL)):
            clock.set(max(clock.now(), last + INTERVAL))
            last = clock.now()
            if not lead.daemon.poll_once().ok:
                raise RuntimeError("a cycle failed")
        assert lead.recorder is not None and lead.recorder.saved_at is not None
        saved_at = lead.recorder.saved_at
        copies = []
        for i, _gap in enumerate(p["gaps"]):
            copies.append(root / f"killed{i}.sqlite3")
            _copy(state, copies[-1])
        lead.client.close()  # SIGKILL: only its sockets go
        for i, gap in enumerate(p["gaps"]):  # in increasing order, each at its exact gap
            at = saved_at + float(gap)
            if clock.now() > at:
                raise RuntimeError(f"the previous restart waited past the {gap:g}s gap")
            clock.set(at)
            bound = sim.settled_call_bound(saved_at, at)
            warm_app, warm = _start(
                bench_settings(root, **{"state.path": str(copies[i])}), clock, sim
            )
            warm_app.close()
            out["gaps"][str(int(gap))] = {"bound": bound, "warm": warm}
        # a cold start (the backfill) costs about the same whatever the gap: once, at the end
        cold_app, cold = _start(
            bench_settings(root, **{"state.path": str(root / "cold.sqlite3")}), clock, sim
        )
        cold_app.close()
        out["cold"] = cold
    return out


# ---- takeover: real processes on PostgreSQL ------------------------------------------------
LAST_POLL = re.compile(r"^dialnexa_last_successful_poll_timestamp_seconds (\S+)$", re.M)
LEADER = re.compile(r"^dialnexa_leader (\S+)$", re.M)


def _metric(port: int, pattern: re.Pattern[str]) -> float | None:
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1.0)
    except httpx.TransportError:
        return None
    m = pattern.search(r.text) if r.status_code == 200 else None
    return float(m.group(1)) if m else None


def _standing_by(port: int) -> bool:
    return _metric(port, LEADER) == 0.0


def _polled(port: int) -> bool:
    return _metric(port, LAST_POLL) is not None


def _wait(predicate: Any, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.02)  # polling other processes' endpoints
    raise RuntimeError("timed out")


def takeovers(repetitions: int = TAKEOVERS) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from dialnexa_watchdog.clock import SystemClock
    from dialnexa_watchdog.simulator import serve
    from pgserver import PASSWORD, PgServer, free_port

    server = PgServer()
    clock = SystemClock()
    sim = Simulator(clock, Scenario.steady(2000, 1_000_000, 11), keys=(KEY,), rate_limit=None)
    procs: list[tuple[subprocess.Popen[bytes], int]] = []
    times: list[float] = []
    try:
        with serve(sim) as api, tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "c.yaml"
            cfg.write_text(
                json.dumps(
                    {
                        "dialnexa": {"base_url": api.url},
                        "poll": {"interval": f"{TAKEOVER_INTERVAL:g}s"},
                        "state": {"url": server.database()},
                        "log": {"format": "json", "level": "warning"},
                    }
                )
            )
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("WATCHDOG_", "PG"))},
                "DIALNEXA_API_KEY": KEY,
                "WATCHDOG_STATE__PASSWORD": PASSWORD,
            }

            def start() -> tuple[subprocess.Popen[bytes], int]:
                port = free_port()
                proc = subprocess.Popen(
                    [sys.executable, "-m", "dialnexa_watchdog", "run", "--config", str(cfg)],
                    env={**env, "WATCHDOG_METRICS__LISTEN": f"127.0.0.1:{port}"},
                    stderr=subprocess.DEVNULL,
                )
                procs.append((proc, port))
                return proc, port

            leader = start()
            _wait(partial(_polled, leader[1]), 120)
            for _ in range(repetitions):
                standby = start()
                _wait(partial(_standing_by, standby[1]), 60)
                time.sleep(2 * TAKEOVER_INTERVAL + 1)  # two of the leader's cycles to follow
                leader[0].send_signal(signal.SIGKILL)
                leader[0].wait()
                killed = time.monotonic()
                _wait(partial(_polled, standby[1]), 60)
                times.append(time.monotonic() - killed)
                leader = standby
    finally:
        for proc, _port in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        server.stop()
    return {"seconds": times, "poll_interval_s": TAKEOVER_INTERVAL}


def run(quick: bool) -> dict[str, Any]:
    r = restarts(quick)
    res: dict[str, Any] = {"details": r}
    for gap, g in r["gaps"].items():
        res[f"ha_gap{gap}_settled_call_bound"] = round(g["bound"], 1)
        res[f"ha_gap{gap}_warm_requests"] = g["warm"]["requests"]
        res[f"ha_gap{gap}_warm_ratio_to_bound"] = round(
            g["warm"]["requests"] / max(g["bound"], 1e-9), 2
        )
        res[f"ha_gap{gap}_warm_ready_seconds"] = round(g["warm"]["ready_s"], 2)
    res["ha_cold_requests"] = r["cold"]["requests"]
    res["ha_cold_ready_seconds"] = round(r["cold"]["ready_s"], 1)
    if not quick:
        t = takeovers()
        r["takeover"] = t
        res["ha_takeover_repetitions"] = len(t["seconds"])
        res["ha_takeover_median_seconds"] = round(statistics.median(t["seconds"]), 2)
        res["ha_takeover_max_seconds"] = round(max(t["seconds"]), 2)
    return res


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    print(json.dumps(run(quick), indent=2, default=str))
