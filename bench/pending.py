"""How pending calls are re-read: ``poll.pending_listing: ranges`` (re-list their created_at
spans) against ``status`` (one ``status=in-progress`` listing says which ended; only those are
re-read), on the realistic scenario, several seeds, 30 s interval, the default rate budget.

Runs: ``mid`` (500 agents, 250,000 calls/day, 1.5 h, 5 seeds) and ``1m`` (2,000 agents,
1M calls/day, 1 h, 3 seeds). Per mode: the cold start (the backfill's requests and seconds
until it is done and /readyz can answer 200, paced at the budget), then from 10 minutes after
the backfill (steady state): requests per minute and per cycle (median and range over
seeds), calls never counted (created after the backfill's start, ended 12 minutes before the
end), how late calls are counted after they end (p95 and max, seconds; completed calls and
failures apart), and the same for calls longer than 15 minutes (stragglers)."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.daemon import CycleReport
from dialnexa_watchdog.simulator import Scenario, Simulator

from bench.common import KEY, T0, bench_settings, make_daemon

# (label, agents, calls per day, hours, seeds)
FULL = [
    ("mid", 500, 250_000, 1.5, (1, 2, 3, 4, 5)),
    ("1m", 2000, 1_000_000, 1.0, (1, 2, 3)),
]
QUICK = [("mid", 20, 10_000, 0.3, (1,))]
WARMUP = 600.0
FAILED = ("failed", "busy", "no_answer", "dropped")  # the outcomes a failure alert counts
TAIL = 720.0  # calls ending this close to the end may not be counted yet


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def run_one(
    mode: str, agents: int, calls_per_day: float, hours: float, seed: int
) -> dict[str, Any]:
    clock = FakeClock(T0)
    scenario = Scenario.realistic(agents, calls_per_day, seed, history=3 * 3600)
    sim = Simulator(clock, scenario, keys=(KEY,))
    counted: dict[str, float] = {}
    reports: list[CycleReport] = []

    def note(r: CycleReport) -> None:
        reports.append(r)
        for cid in r.settled_ids:
            counted.setdefault(cid, r.now)

    with tempfile.TemporaryDirectory() as tmp:
        settings = bench_settings(Path(tmp), **{"poll.pending_listing": mode})
        wd = make_daemon(sim, clock, settings, on_cycle=note)
        since = clock.now() - settings.longest_window - settings.poll.max_call_duration
        t0 = clock.now()
        backfill = wd.backfill()
        ready = clock.now()  # the backfill is paced at the budget: /readyz waits for it
        start = ready + WARMUP  # measured from here: steady state, not the cold start
        end = t0 + hours * 3600
        while clock.now() < end:
            clock.advance(30)
            wd.poll_once()
        wd.close()
    steady = [r for r in reports[1:] if r.now >= start]
    want = [s for s in sim.calls(until=end) if s.created_at >= since and s.settled_at <= end - TAIL]
    lost = sum(1 for s in want if s.id not in counted)
    lags = [counted[s.id] - s.settled_at for s in want if s.id in counted and s.settled_at >= start]
    long = [
        counted[s.id] - s.settled_at
        for s in want
        if s.id in counted and s.settled_at >= start and s.settled_at - s.created_at > 900
    ]
    done = [s for s in want if s.id in counted and s.settled_at >= start]
    completed = [counted[s.id] - s.settled_at for s in done if s.outcome == "completed"]
    failed = [counted[s.id] - s.settled_at for s in done if s.outcome in FAILED]
    minutes = max(1.0, (steady[-1].now - steady[0].now) / 60) if steady else 1.0
    return {
        "backfill_requests": backfill.requests,
        "backfill_seconds": ready - t0,
        "requests_per_cycle": sum(r.requests for r in steady) / max(1, len(steady)),
        "requests_per_minute": sum(r.requests for r in steady[1:]) / minutes,
        "lost": lost,
        "lag_p95": _pct(lags, 0.95),
        "lag_max": max(lags, default=0.0),
        "completed_lag_p95": _pct(completed, 0.95),
        "failed_lag_p95": _pct(failed, 0.95),
        "long_lag_p95": _pct(long, 0.95),
        "long_lag_max": max(long, default=0.0),
        "long_calls": len(long),
        "deferred_cycles": sum(1 for r in steady if r.deferred),
    }


def run(quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, agents, per_day, hours, seeds in QUICK if quick else FULL:
        pre = f"pending_{label}"
        out[f"{pre}_agents"] = agents
        out[f"{pre}_calls_per_day"] = per_day
        out[f"{pre}_hours"] = hours
        out[f"{pre}_seeds"] = len(seeds)
        for mode in ("ranges", "status", "auto"):
            runs = [run_one(mode, agents, per_day, hours, seed) for seed in seeds]
            for key in runs[0]:
                values = [r[key] for r in runs]
                out[f"{pre}_{mode}_{key}_median"] = round(statistics.median(values), 2)
                out[f"{pre}_{mode}_{key}_min"] = round(min(values), 2)
                out[f"{pre}_{mode}_{key}_max"] = round(max(values), 2)
    return out


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run("--quick" in sys.argv), indent=1))
