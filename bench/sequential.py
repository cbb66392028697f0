"""Sequential vs window detection on the same traffic (issue 13).

The traffic is the simulator's realistic fleet (``build_realistic``: 2,000 agents, 1M calls a
day, Zipf-skewed volumes, per-agent outcome mixes by persona: failed 1.5-7.5%, no-answer
4-51%), on the simulator's daily curve, drawn per 30 s poll cycle (Poisson calls per agent,
binomial outcomes). Into it go degradations at random times, three hours each:

- hard: failed -> 60% (agents whose failed share is at most 10%);
- medium: failed -> 25% (same agents);
- soft: no-answer -> 2x the agent's own rate (agents whose no-answer rate is 20% or more).

Both detectors are the daemon's own code, evaluated after every cycle exactly as the daemon
does it: the cycle's calls go into ``Windows`` (one bucket per cycle) and, as the cycle's
journal cells, into ``EvidenceFeed`` (learned baselines, then the CUSUM); ``rules.evaluate``
then runs every rule. The learned baselines start from seven days of history drawn from each
agent's true rates (the sum of seven days of Poisson/binomial calls). The window rules are the
README's recommended ones (config/watchdog.example.yaml); the sequential rules use the
recommended defaults (false_alarm 10y, learned baseline, 3x / 1.5x for failed, 2x / 1.5x for
no-answer), and beside them the failed rule with a fast CUSUM (``fast_threshold: 0.5``), at
false_alarm 10y (``failed-seq-fast``) and 30y (``failed-seq-fast-30y``). A page is
the transition to FIRING (the notice is written in the same evaluation); detection time runs
from the degraded agent's first call after the start.

Calibration: a separate day of healthy traffic with ``false_alarm: 2d`` and min_calls 1,
counting alarms, against the 0.5 per agent-day that setting promises.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from dialnexa_watchdog.alerts.compile import compile_rules
from dialnexa_watchdog.alerts.evidence import EvidenceFeed
from dialnexa_watchdog.alerts.rules import evaluate
from dialnexa_watchdog.alerts.state import AlertState, State
from dialnexa_watchdog.config import RuleSettings
from dialnexa_watchdog.history.replay import Cycle
from dialnexa_watchdog.model import PollStatus, StatusClasses
from dialnexa_watchdog.simulator.profiles import diurnal_factor
from dialnexa_watchdog.simulator.realistic import RealisticParams, build_realistic
from dialnexa_watchdog.windows import Windows

T0 = 1_767_225_600.0  # 00:00 UTC: a whole day of the diurnal curve
INTERVAL = 30.0
WINDOWS = {"5m": 300.0, "15m": 900.0, "1h": 3600.0}
DAY = 86400.0
HISTORY_DAYS = 7
DEGRADE_FOR = 3 * 3600.0
SIZES = ("hard", "medium", "soft")

WINDOW_RULES: list[dict[str, Any]] = [  # the README's recommended rules (example config)
    {"name": "failed-rate", "outcome": "failed", "window": "15m", "threshold": 0.20,
     "clear_below": 0.15, "min_calls": 20, "confidence": 0.9, "for": "2m"},
    {"name": "no-answer-rate", "outcome": "no_answer", "window": "1h", "threshold": 0.60,
     "clear_below": 0.45, "min_calls": 30, "confidence": 0.9, "for": "10m"},
    # a fleet-wide static threshold low enough to see soft degradations of busy callers
    {"name": "no-answer-40", "outcome": "no_answer", "window": "1h", "threshold": 0.40,
     "clear_below": 0.30, "min_calls": 30, "confidence": 0.9, "for": "10m"},
]  # fmt: skip
SEQ_RULES: list[dict[str, Any]] = [
    {"name": "failed-seq", "outcome": "failed", "window": "15m", "detector": "sequential",
     "threshold": "3x", "clear_below": "1.5x", "min_calls": 5},
    # the same with a fast CUSUM beside it (fast_threshold), on the same traffic
    {"name": "failed-seq-fast", "outcome": "failed", "window": "15m",
     "detector": "sequential", "threshold": "3x", "clear_below": "1.5x", "min_calls": 5,
     "fast_threshold": 0.5},
    {"name": "failed-seq-fast-30y", "outcome": "failed", "window": "15m",
     "detector": "sequential", "threshold": "3x", "clear_below": "1.5x", "min_calls": 5,
     "fast_threshold": 0.5, "false_alarm": "30y"},
    {"name": "no-answer-seq", "outcome": "no_answer", "window": "1h", "detector": "sequential",
     "threshold": "2x", "clear_below": "1.5x", "min_calls": 5},
]  # fmt: skip
# which rules speak for which degradation
RULES_FOR = {
    "hard": ("failed-rate", "failed-seq", "failed-seq-fast", "failed-seq-fast-30y"),
    "medium": ("failed-rate", "failed-seq", "failed-seq-fast", "failed-seq-fast-30y"),
    "soft": ("no-answer-rate", "no-answer-40", "no-answer-seq"),
}
FULL = {"agents": 2000, "calls_per_day": 1_000_000, "days": 1.0, "seeds": 10, "per_size": 20}
QUICK = {"agents": 100, "calls_per_day": 50_000, "days": 0.1, "seeds": 1, "per_size": 2}


@dataclass
class Fleet:
    ids: list[str]
    rate: np.ndarray  # mean calls per second (the daily mean)
    failed: np.ndarray  # normal shares
    no_answer: np.ndarray


@dataclass(frozen=True)
class Injected:
    agent: int
    size: str
    start: float
    end: float


@dataclass
class Run:
    pages: list[tuple[float, str, str]]  # (time, rule, agent) of every transition to FIRING
    calls: dict[str, int]  # per agent
    first: dict[Injected, float]  # the first degraded call of each degradation


@dataclass
class Outcome:
    detect: dict[tuple[str, str], list[float | None]] = field(default_factory=dict)
    # per degradation: size, calls/day, {rule: delay or None}
    cases: list[tuple[str, float, dict[str, float | None]]] = field(default_factory=list)
    false_pages: dict[str, int] = field(default_factory=dict)
    agent_days: dict[str, float] = field(default_factory=dict)
    soft_volumes: list[float] = field(default_factory=list)  # calls/day of soft agents


def fleet(agents: int, calls_per_day: float, seed: int) -> Fleet:
    params = RealisticParams(bursts=None, deleted=0.0, unpublished=0.0)
    profiles = [p for p in build_realistic(agents, calls_per_day, seed, params)]
    profiles = [p for p in profiles if p.calls_per_minute > 0]
    shares = []
    for p in profiles:
        total = sum(p.outcomes.values())
        f = p.outcomes.get("failed", 0.0) / total
        na = (p.outcomes.get("no_answer", 0.0) + p.outcomes.get("did_not_pick", 0.0)) / total
        shares.append((f, na))
    return Fleet(
        [p.agent_id for p in profiles],
        np.array([p.calls_per_minute / 60.0 for p in profiles]),
        np.array([s[0] for s in shares]),
        np.array([s[1] for s in shares]),
    )


def inject(f: Fleet, rng: np.random.Generator, per_size: int, span: float) -> list[Injected]:
    """``per_size`` degradations of each size on distinct agents, drawn by volume (as the
    simulator's ``Scenario.degrade`` does), starting uniformly in the run's first part."""
    used: set[int] = set()
    out = []
    latest = max(INTERVAL, span - DEGRADE_FOR)
    for size in SIZES:
        ok = f.failed <= 0.10 if size != "soft" else f.no_answer >= 0.20
        pool = [i for i in np.flatnonzero(ok) if i not in used]
        if not pool:
            continue
        w = f.rate[pool] / f.rate[pool].sum()
        k = min(per_size, len(pool))
        chosen = rng.choice(pool, size=k, replace=False, p=w)
        for i in chosen:
            used.add(int(i))
            start = T0 + float(rng.uniform(INTERVAL, latest))
            out.append(Injected(int(i), size, start, start + DEGRADE_FOR))
    return out


def history(feed: EvidenceFeed, f: Fleet, rng: np.random.Generator) -> None:
    """Seven days of each agent's calls at its true rates, into the learned baselines."""
    feed.learner.advance(T0)
    cells: list[tuple[float, str, str, int]] = []
    for d in range(1, HISTORY_DAYS + 1):
        t = T0 - d * DAY
        n = rng.poisson(f.rate * DAY)
        failed = rng.binomial(n, f.failed)
        na = rng.binomial(n - failed, np.minimum(1.0, f.no_answer / (1.0 - f.failed)))
        for i in np.flatnonzero(n):
            a = f.ids[i]
            cells += [(t, a, "failed", int(failed[i])), (t, a, "no_answer", int(na[i]))]
            cells.append((t, a, "completed", int(n[i] - failed[i] - na[i])))
    feed.learner.add(cells)


def simulate(
    f: Fleet,
    seed: int,
    days: float,
    injected: Sequence[Injected],
    *,
    seq_overrides: dict[str, Any] | None = None,
    window_rules: bool = True,
) -> Run:
    """Run the traffic through both detectors."""
    rng = np.random.default_rng(seed)
    specs = [{**r, **(seq_overrides or {})} for r in SEQ_RULES]
    if window_rules:
        specs = [*WINDOW_RULES, *specs]
    rules = compile_rules([RuleSettings.model_validate(r) for r in specs], WINDOWS)
    classes = StatusClasses()
    windows = Windows(WINDOWS, classes)
    feed = EvidenceFeed(rules, classes.denominator, classes.outcomes, ("1h", 3600.0))
    history(feed, f, np.random.default_rng(seed + 10_000))
    slot = {s: windows.slot(s) for s in ("failed", "no_answer", "completed")}
    by_agent: dict[int, list[Injected]] = {}
    for d in injected:
        by_agent.setdefault(d.agent, []).append(d)
    states: dict[tuple[str, str], AlertState] = {}
    pages: list[tuple[float, str, str]] = []
    first: dict[Injected, float] = {}
    calls = np.zeros(len(f.ids), dtype=np.int64)
    poll = PollStatus(started_at=T0)
    t = T0
    end = T0 + days * DAY
    while t < end:
        t += INTERVAL
        pf = f.failed.copy()
        pa = f.no_answer.copy()
        for i, ds in by_agent.items():
            for d in ds:
                if d.start <= t - INTERVAL < d.end or d.start < t <= d.end:
                    if d.size == "hard":
                        pf[i] = 0.60
                    elif d.size == "medium":
                        pf[i] = 0.25
                    else:
                        pa[i] = min(0.95, 2.0 * f.no_answer[i])
        n = rng.poisson(f.rate * diurnal_factor(t) * INTERVAL)
        failed = rng.binomial(n, pf)
        na = rng.binomial(n - failed, np.minimum(1.0, pa / np.maximum(1e-9, 1.0 - pf)))
        calls += n
        for d in injected:
            if d not in first and d.start < t and n[d.agent] > 0:
                first[d] = t - INTERVAL / 2  # a cycle's calls settle across it: its middle
        k = math.floor((t - 1.0) / windows.bucket)
        windows.advance(t)
        cells: list[tuple[int, str, str, int]] = []
        for i in np.flatnonzero(n):
            a = f.ids[i]
            x, y = int(failed[i]), int(na[i])
            z = int(n[i]) - x - y
            for status, c in (("failed", x), ("no_answer", y), ("completed", z)):
                if c:
                    windows.apply(a, slot[status], k, c)
                    cells.append((k, a, status, c))
        feed.feed(Cycle(t, windows.bucket, None, cells), windows)
        ev = evaluate(rules, states, windows, poll, t, detector=feed.detector)
        states = ev.states
        for tr in ev.transitions:
            if tr.new is State.FIRING:
                pages.append((t, tr.key[0], tr.key[1]))
    return Run(pages, {a: int(c) for a, c in zip(f.ids, calls, strict=True)}, first)


def score(f: Fleet, injected: Sequence[Injected], run: Run, days: float) -> Outcome:
    """Detection delays per (size, rule) and false pages per rule."""
    out = Outcome()
    pages = run.pages
    index = {a: i for i, a in enumerate(f.ids)}
    for d in injected:
        agent = f.ids[d.agent]
        first = run.first.get(d)
        if first is None:
            continue  # no call while degraded: nothing to detect
        case: dict[str, float | None] = {}
        for rule in RULES_FOR[d.size]:
            hits = [t for t, r, a in pages if r == rule and a == agent and d.start <= t]
            hits = [t for t in hits if t <= d.end + 3600.0]
            delay = (min(hits) - first) if hits else None
            out.detect.setdefault((d.size, rule), []).append(delay)
            case[rule] = delay
        out.cases.append((d.size, float(f.rate[d.agent] * DAY), case))
        if d.size == "soft":
            out.soft_volumes.append(float(f.rate[d.agent] * DAY))
    degraded = {f.ids[d.agent]: d for d in injected}
    high = set(np.flatnonzero(f.no_answer >= 0.20))
    for t, rule, agent in pages:
        d = degraded.get(agent)
        if d is not None and d.start - 3600.0 <= t <= d.end + 3600.0:
            continue  # a page about the degradation (or its edges), not a false one
        out.false_pages[rule] = out.false_pages.get(rule, 0) + 1
        if rule.startswith("no-answer") and index[agent] in high:
            key = f"{rule}@high"
            out.false_pages[key] = out.false_pages.get(key, 0) + 1
    healthy = len(f.ids) - len(degraded)
    out.agent_days["all"] = healthy * days
    out.agent_days["high"] = len(high - {d.agent for d in injected}) * days
    return out


def calibration(f: Fleet, seed: int, days: float) -> dict[str, tuple[int, float]]:
    """(alarms, promised) over ``days`` of healthy traffic at false_alarm 2d, min_calls 1:
    for every agent, and for agents with at least 1,000 calls a day (where the limit is
    several calls' evidence; below, a limit of one or two failures is as coarse as the
    calls are few)."""
    run = simulate(
        f,
        seed + 30_000,
        days,
        [],
        seq_overrides={"false_alarm": "2d", "min_calls": 1},
        window_rules=False,
    )
    busy = {a for a, r in zip(f.ids, f.rate, strict=True) if r * DAY >= 1000.0}
    active = sum(1 for c in run.calls.values() if c > 0)
    out = {}
    # (failed-seq-fast-30y is failed-seq-fast here: false_alarm is 2d for both)
    for rule, suffix in (("failed-seq", ""), ("failed-seq-fast", "_fast")):
        failed = [a for _t, r, a in run.pages if r == rule]
        out[f"all{suffix}"] = (len(failed), active * days / 2.0)
        out[f"busy{suffix}"] = (sum(1 for a in failed if a in busy), len(busy) * days / 2.0)
    return out


def _stats(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p25": None, "p75": None}
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {"median": statistics.median(values), "p25": q[0], "p75": q[2]}


def one_seed(
    seed: int, cfg: dict[str, Any], quick: bool
) -> tuple[Outcome, dict[str, tuple[int, float]]]:
    days = float(cfg["days"])
    f = fleet(int(cfg["agents"]), float(cfg["calls_per_day"]), seed)
    rng = np.random.default_rng(seed + 40_000)
    inj = inject(f, rng, int(cfg["per_size"]), days * DAY)
    outcome = score(f, inj, simulate(f, seed, days, inj), days)
    return outcome, calibration(f, seed, days if quick else 0.5)


def run(quick: bool) -> dict[str, Any]:
    cfg = QUICK if quick else FULL
    seeds = range(int(cfg["seeds"]))
    if quick:
        done = [one_seed(s, cfg, quick) for s in seeds]
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=2) as pool:  # the machine has 2 cores
            done = list(pool.map(one_seed, seeds, [cfg] * len(seeds), [quick] * len(seeds)))
    return summarise([o for o, _ in done], [c for _, c in done], cfg)


def summarise(
    per_seed: Sequence[Outcome], calib: Sequence[dict[str, tuple[int, float]]], cfg: dict[str, Any]
) -> dict[str, Any]:
    res: dict[str, Any] = {"sequential_seeds": len(per_seed), "sequential_agents": cfg["agents"]}
    for size in SIZES:
        for rule in RULES_FOR[size]:
            delays = [x for o in per_seed for x in o.detect.get((size, rule), [])]
            found = [x for x in delays if x is not None]
            key = f"sequential_{size}_{rule.replace('-', '_')}"
            s = _stats([x / INTERVAL for x in found])
            res[f"{key}_detect_intervals_median"] = s["median"]
            res[f"{key}_detect_intervals_p25"] = s["p25"]
            res[f"{key}_detect_intervals_p75"] = s["p75"]
            res[f"{key}_detected_share"] = len(found) / len(delays) if delays else None
            within = [x for x in found if x <= 7200.0]
            res[f"{key}_within_2h_share"] = len(within) / len(delays) if delays else None
            seed_medians = [
                statistics.median([x for x in o.detect.get((size, rule), []) if x is not None])
                / INTERVAL
                for o in per_seed
                if any(x is not None for x in o.detect.get((size, rule), []))
            ]
            if seed_medians:
                res[f"{key}_seed_median_min"] = min(seed_medians)
                res[f"{key}_seed_median_max"] = max(seed_medians)
    for size, seq, win, suffix in (
        ("hard", "failed-seq", "failed-rate", ""),
        ("medium", "failed-seq", "failed-rate", ""),
        ("soft", "no-answer-seq", "no-answer-40", ""),
        ("hard", "failed-seq-fast", "failed-rate", "_fast"),
        ("medium", "failed-seq-fast", "failed-rate", "_fast"),
        ("hard", "failed-seq-fast-30y", "failed-rate", "_fast_30y"),
        ("medium", "failed-seq-fast-30y", "failed-rate", "_fast_30y"),
        # the fast CUSUM against the rule without it, on the degradations both detect (the
        # "window" keys are failed-seq's)
        ("hard", "failed-seq-fast", "failed-seq", "_fast_vs_seq"),
        ("medium", "failed-seq-fast", "failed-seq", "_fast_vs_seq"),
        ("hard", "failed-seq-fast-30y", "failed-seq", "_fast_30y_vs_seq"),
    ):
        # the same degradations, detected by both: how much sooner the sequential rule is
        pairs = [
            (c[seq], c[win])
            for o in per_seed
            for sz, _v, c in o.cases
            if sz == size and c.get(seq) is not None and c.get(win) is not None
        ]
        key = f"sequential_{size}_paired{suffix}"
        res[f"{key}_n"] = len(pairs)
        if pairs:
            seq_i = [a / INTERVAL for a, _ in pairs]
            win_i = [b / INTERVAL for _, b in pairs]
            res[f"{key}_seq_intervals_median"] = statistics.median(seq_i)
            res[f"{key}_window_intervals_median"] = statistics.median(win_i)
            res[f"{key}_ratio_of_medians"] = statistics.median(seq_i) / max(
                1e-9, statistics.median(win_i)
            )
    # soft degradations on high-baseline agents at or above the median volume of those
    soft = [(v, c) for o in per_seed for sz, v, c in o.cases if sz == "soft"]
    if soft:
        median_volume = statistics.median(v for v, _ in soft)
        upper = [c for v, c in soft if v >= median_volume]
        res["sequential_soft_median_volume_calls_per_day"] = median_volume
        for rule in RULES_FOR["soft"]:
            ok = [c for c in upper if c.get(rule) is not None and c[rule] <= 7200.0]
            key = f"sequential_soft_at_median_volume_{rule.replace('-', '_')}_within_2h_share"
            res[key] = len(ok) / len(upper)
    agent_days = sum(o.agent_days["all"] for o in per_seed)
    high_days = sum(o.agent_days["high"] for o in per_seed)
    for rule in (
        "failed-rate",
        "failed-seq",
        "failed-seq-fast",
        "failed-seq-fast-30y",
        "no-answer-rate",
        "no-answer-40",
        "no-answer-seq",
    ):
        n = sum(o.false_pages.get(rule, 0) for o in per_seed)
        key = rule.replace("-", "_")
        res[f"sequential_false_pages_{key}_per_1000_agent_days"] = 1000.0 * n / agent_days
        if rule.startswith("no-answer"):
            nh = sum(o.false_pages.get(f"{rule}@high", 0) for o in per_seed)
            res[f"sequential_false_pages_{key}_high_baseline_per_1000_agent_days"] = (
                1000.0 * nh / high_days if high_days else None
            )
    res["sequential_agent_days"] = agent_days
    vols = [v for o in per_seed for v in o.soft_volumes]
    res["sequential_soft_agents_median_calls_per_day"] = statistics.median(vols) if vols else None
    res["sequential_calibration_false_alarm"] = "2d"
    for group in ("all", "busy", "all_fast", "busy_fast"):
        alarms = sum(c[group][0] for c in calib)
        promised = sum(c[group][1] for c in calib)
        res[f"sequential_calibration_{group}_alarms"] = alarms
        res[f"sequential_calibration_{group}_promised"] = promised
        res[f"sequential_calibration_{group}_ratio"] = alarms / promised if promised else None
    return res


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run("--quick" in sys.argv), indent=2))
