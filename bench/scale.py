"""Scale: 10,000 agents, 3 windows, 1,000,000 calls/day for 3 simulated hours.

Run as ``python -m bench.scale`` (a fresh process, so RSS is this run's alone); prints JSON.
``--baseline`` builds and advances the same simulator without a daemon, so the simulator's
own share of the RSS can be subtracted."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from dialnexa_watchdog.alerts.compile import compile_rules
from dialnexa_watchdog.alerts.rules import evaluate
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.model import PollStatus
from dialnexa_watchdog.simulator import Scenario, Simulator

from bench.common import KEY, T0, bench_settings, make_daemon

# outcome x window grid, one outcome per row (fmt: skip keeps the grid)
RULES: list[dict[str, Any]] = [
    {"name": f"{o.replace('_', '-')}-{w}", "outcome": o, "window": w, "threshold": t,
     "min_calls": 5}
    for o, w, t in [
        ("failed", "5m", 0.3), ("failed", "15m", 0.25), ("failed", "1h", 0.2),
        ("busy", "5m", 0.4), ("busy", "15m", 0.3), ("busy", "1h", 0.25),
        ("no_answer", "5m", 0.5), ("no_answer", "15m", 0.4), ("no_answer", "1h", 0.35),
    ]
] + [{"name": "workspace-failed", "scope": "workspace", "outcome": "failed", "window": "15m",
      "threshold": 0.15}]  # fmt: skip


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _best_ms(fn: Any, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000


def run(agents: int, calls_per_day: float, hours: float, baseline: bool) -> dict[str, Any]:
    clock = FakeClock(T0)
    sim = Simulator(
        clock, Scenario.steady(agents, calls_per_day, 23, diurnal=True), keys=(KEY,), rate_limit=150
    )
    if baseline:
        clock.advance(hours * 3600)
        sim.count_calls()  # generates every call up to now
        return {"baseline_rss_mb": rss_mb()}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        settings = bench_settings(Path(tmp), rules=RULES)
        wd = make_daemon(sim, clock, settings)
        wd.backfill()
        last = clock.now()
        for _ in range(int(hours * 3600 / settings.poll.interval)):
            clock.set(max(clock.now(), last + settings.poll.interval))
            last = clock.now()
            wd.poll_once()
        rss = rss_mb()
        body = wd.metrics.body()
        # a scrape right after a poll cycle: the agents that changed are rendered again
        renders = []
        for _ in range(5):
            clock.set(max(clock.now(), last + settings.poll.interval))
            last = clock.now()
            wd.poll_once()
            renders.append(_best_ms(wd.metrics.body, repeat=1))
        render_ms = sorted(renders)[len(renders) // 2]
        body = wd.metrics.body()
        rules = compile_rules(settings.rules, settings.window_seconds)
        now = clock.now()
        poll = PollStatus(started_at=T0, last_success=now, backfilled=True)
        prev = evaluate(rules, {}, wd.windows, poll, now).states
        eval_ms = _best_ms(lambda: evaluate(rules, prev, wd.windows, poll, now))
        out = {
            "agents_seen": len(wd.windows.agents()),
            "scale_rss_mb": rss,
            "scale_metrics_render_ms": render_ms,
            "scale_metrics_bytes": len(body),
            "scale_metrics_lines": body.count(b"\n"),
            "scale_eval_ms": eval_ms,
            "scale_rules": len(rules),
            "scale_tracked_calls": wd.tracker.tracked_count,
            "scale_seconds": time.perf_counter() - started,
        }
        wd.close()
        return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--agents", type=int, default=10_000)
    p.add_argument("--calls-per-day", type=float, default=1_000_000)
    p.add_argument("--hours", type=float, default=3.0)
    p.add_argument("--baseline", action="store_true")
    a = p.parse_args()
    print(json.dumps(run(a.agents, a.calls_per_day, a.hours, a.baseline)))


if __name__ == "__main__":
    main()
