"""Scoring a poller against the simulator's ground truth, per agent and per outcome.

A poller under test exposes a ``Windows`` (the daemon's own, or the DIY poller's, which
counts with the same class) and reports, after each cycle, the ids it counted and when. The
``Scorer`` then measures, against ``Simulator`` ground truth:

* **per-agent error** of each outcome's 5m ratio (failed, busy, no_answer), right after each
  cycle, over every agent with at least one truly settled call in the window: the mean
  absolute error unweighted (every agent alike) and volume-weighted (by the agent's true
  calls in the window), and the signed bias (weighted; > 0: the ratio is overstated). An agent
  with calls in truth but none counted reads as 0 (it would alert on nothing). The truth
  window is cut at the daemon's bucket edge, so bucketing is not scored as error.
* **freshness**: for calls that settled after the warm-up, counted time - settle time, for
  failures (failed, busy, no_answer, did_not_pick) and for completed calls apart.
* **lost**: calls that settled after the warm-up and ``grace`` seconds before the end and
  were never counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from dialnexa_watchdog.model import DEFAULT_OUTCOMES, DENOMINATOR_STATUSES
from dialnexa_watchdog.simulator import Simulator
from dialnexa_watchdog.windows import Windows

WINDOW = "5m"
WINDOW_S = 300.0
FAILURES = frozenset({"failed", "busy", "no_answer", "did_not_pick"})
DENOM = frozenset(DENOMINATOR_STATUSES)
OUTCOMES: dict[str, frozenset[str]] = {o: frozenset(s) for o, s in DEFAULT_OUTCOMES.items()}


def p95(values: list[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(0.95 * len(s)))]


@dataclass
class _Err:
    abs_sum: float = 0.0  # unweighted
    n: int = 0
    wabs_sum: float = 0.0  # weighted by true calls
    wbias_sum: float = 0.0
    w: float = 0.0

    def add(self, got: float, true: float, weight: float) -> None:
        d = got - true
        self.abs_sum += abs(d)
        self.n += 1
        self.wabs_sum += abs(d) * weight
        self.wbias_sum += d * weight
        self.w += weight


@dataclass
class Scorer:
    sim: Simulator
    measure_from: float  # epoch seconds: the warm-up ends here
    grace: float = 900.0  # a call settled this close to the end may still be counted later
    counted: dict[str, float] = field(default_factory=dict)  # call id -> first counted at
    errors: dict[str, _Err] = field(default_factory=lambda: {o: _Err() for o in OUTCOMES})
    ticks: int = 0

    def cycle(self, settled_ids: tuple[str, ...] | list[str], now: float) -> None:
        """After a cycle: note what it counted (first time only)."""
        counted = self.counted
        for cid in settled_ids:
            if cid not in counted:
                counted[cid] = now

    def score(self, windows: Windows, now: float) -> None:
        """Per-agent 5m ratios of ``windows`` (advanced to ``now``) vs the truth at ``now``."""
        if now < self.measure_from:
            return
        b = windows.bucket
        start = (math.floor((now - WINDOW_S) / b) + 1) * b  # the daemon's oldest bucket
        truth = self.sim.settled_by_agent(start - 0.001, now)
        self.ticks += 1
        for agent, per in truth.items():
            denom = sum(n for s, n in per.items() if s in DENOM)
            if denom <= 0:
                continue
            got = windows.counts(agent, WINDOW)
            for outcome, statuses in OUTCOMES.items():
                true = sum(n for s, n in per.items() if s in statuses) / denom
                mine = got.ratio(outcome)
                self.errors[outcome].add(0.0 if mine is None else mine, true, float(denom))

    def finish(self, end: float) -> dict[str, Any]:
        """The scores, as flat keys."""
        out: dict[str, Any] = {"score_ticks": self.ticks}
        for outcome, e in self.errors.items():
            out[f"mae_{outcome}"] = e.abs_sum / e.n if e.n else None
            out[f"wmae_{outcome}"] = e.wabs_sum / e.w if e.w else None
            out[f"bias_{outcome}"] = e.wbias_sum / e.w if e.w else None
        fail_delays: list[float] = []
        done_delays: list[float] = []
        lost = lost_fail = settled = late_bound = 0
        lost_durations: list[float] = []
        for call in self.sim.settled_calls(self.measure_from, end):
            at = self.counted.get(call.id)
            if at is None:
                if call.settled_at <= end - self.grace:
                    lost += 1
                    lost_fail += call.outcome in FAILURES
                    lost_durations.append(call.settled_at - call.created_at)
                continue
            settled += 1
            delay = max(0.0, at - call.settled_at)
            if call.outcome in FAILURES:
                fail_delays.append(delay)
            elif call.outcome == "completed":
                done_delays.append(delay)
            late_bound = max(late_bound, int(delay))
        out.update(
            {
                "fresh_fail_p95_s": p95(fail_delays),
                "fresh_completed_p95_s": p95(done_delays),
                "fresh_max_s": late_bound,
                "calls_counted": settled,
                "calls_lost": lost,
                "failures_lost": lost_fail,
                # how long the lost calls lasted (created -> settled), shortest and median
                "lost_duration_min_s": min(lost_durations) if lost_durations else None,
                "lost_duration_median_s": (
                    sorted(lost_durations)[len(lost_durations) // 2] if lost_durations else None
                ),
            }
        )
        return out
