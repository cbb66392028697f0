"""The headline: realistic traffic at 1M calls/day, 2,000 agents, 30 s interval, 0.3 s
median request latency, our daemon (``rate_budget: 0.5`` when it has the setting) beside the
DIY poller, five seeds each, scored per agent against ground truth (``scoring.py``).

Keys: ``realistic_ours_<k>`` and ``realistic_diy_<k>`` (medians over the seeds) with
``..._range`` ([min, max]); the per-seed runs are under ``details``."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bench.runs import Diy, Setup, has_rate_budget, run_diy, run_ours
from bench.seeds import QUICK_SEEDS, SEEDS, Job, run_jobs, summarise

# 1 simulated hour from 13:30 UTC: the backfill and 20 minutes of warm-up, then 40 minutes
# scored (lost calls: those settling in the first 25 of them)
FULL = Setup(hours=1.0, warmup=1200.0)
QUICK = Setup(agents=200, calls_per_day=100_000, hours=0.2, warmup=360.0)
DIY = Diy(span=600.0, every=60.0)


def jobs(quick: bool, traffic: str = "realistic", diy: bool = True) -> list[Job]:
    base = replace(QUICK if quick else FULL, traffic=traffic)
    out: list[Job] = []
    for seed in QUICK_SEEDS if quick else SEEDS:
        setup = replace(base, seed=seed)
        out.append((f"ours:{seed}", run_ours, (setup,)))
        if diy:
            out.append((f"diy:{seed}", run_diy, (setup, DIY)))
    return out


def collect(topic: str, done: dict[str, dict[str, Any]], quick: bool) -> dict[str, Any]:
    base = QUICK if quick else FULL
    ours = [v for k, v in done.items() if k.startswith("ours:")]
    diy = [v for k, v in done.items() if k.startswith("diy:")]
    res: dict[str, Any] = {
        f"{topic}_setup": (
            f"{base.agents} agents, {base.calls_per_day:,.0f} calls/day, {base.hours:g} h from "
            f"13:30 UTC (peak 14:00), scored after {base.warmup / 60:g} min, interval "
            f"{base.interval:g} s, latency median {base.latency:g} s, "
            f"rate_budget {base.rate_budget:g} "
            + ("(set)" if has_rate_budget() else "(not a setting of this daemon)")
        ),
        **summarise(f"{topic}_ours", ours),
    }
    if diy:
        res[f"{topic}_diy_setup"] = DIY.label
        res.update(summarise(f"{topic}_diy", diy))
    res["details"] = {topic: done}
    return res


def run(quick: bool) -> dict[str, Any]:
    return collect("realistic", run_jobs(jobs(quick)), quick)
