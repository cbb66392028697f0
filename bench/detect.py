"""Detection latency: one agent goes from 5% to 60% failed; how long until the Slack
notification is handed to the sender (here the console notifier, on the injected clock)."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.simulator import AgentProfile, Scenario, Simulator

from bench.common import KEY, T0, bench_settings, make_daemon

HOT = "agt_hot"
MIX = {"completed": 0.80, "failed": 0.05, "busy": 0.05, "no_answer": 0.10}
DEGRADE_AT = 1800.0  # seconds after the start
RULE = {
    "name": "failed-rate",
    "outcome": "failed",
    "window": "5m",
    "threshold": 0.25,
    "clear_below": 0.2,
    "min_calls": 20,
    "for": "0s",
    "severity": "critical",
}


class _Recorder(io.StringIO):
    """A console stream that notes when the first FIRING line was handed to it."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.fired_at: float | None = None

    def write(self, s: str) -> int:
        if self.fired_at is None and "FIRING" in s and HOT in s:
            self.fired_at = self.clock.now()
        return super().write(s)


def _scenario() -> Scenario:
    agents = [
        AgentProfile(HOT, 20.0, outcomes=MIX, degradations=((DEGRADE_AT, 7200.0, 0.6),)),
        *(AgentProfile(f"agt_{i:03d}", 5.0, outcomes=MIX) for i in range(29)),
    ]
    return Scenario(agents=tuple(agents), seed=31, history=4500.0)


def run_detect() -> dict[str, Any]:
    clock = FakeClock(T0)
    sim = Simulator(clock, _scenario(), keys=(KEY,), rate_limit=150)
    with tempfile.TemporaryDirectory() as tmp:
        settings = bench_settings(Path(tmp), rules=[RULE])
        interval = settings.poll.interval
        stream = _Recorder(clock)
        wd = make_daemon(sim, clock, settings, alerting=True, stream=stream)
        wd.backfill()
        last = clock.now()
        while stream.fired_at is None and clock.now() < T0 + DEGRADE_AT + 3600:
            clock.set(max(clock.now(), last + interval))
            last = clock.now()
            wd.poll_once()
            wd.deliver()
        wd.close()
    start = T0 + DEGRADE_AT
    first_fail = min(
        s.created_at
        for s in sim.calls()
        if s.agent_id == HOT and s.outcome == "failed" and s.created_at >= start
    )
    truth = _truth_crossing(sim, start, clock.now())
    fired = stream.fired_at
    return {
        "detection_latency_intervals": (fired - first_fail) / interval if fired else None,
        "detection_after_truth_intervals": (fired - truth) / interval if fired and truth else None,
        "detection_first_failure_to_truth_s": (truth - first_fail) if truth else None,
        "detection_rule": "failed >= 25% over 5m, min_calls 20, for 0s; poll every 30s",
    }


def _truth_crossing(sim: Simulator, start: float, end: float) -> float | None:
    """The first second at which the simulator's own 5m failed ratio for HOT reaches 25%
    with at least 20 calls (what a perfect, instantaneous observer would alert on)."""
    t = start
    while t <= end:
        counts = sim.settled_counts(HOT, t - 300, t)
        denom = sum(v for k, v in counts.items() if k != "cancelled")
        if denom >= RULE["min_calls"] and counts.get("failed", 0) >= 0.25 * denom:
            return t
        t += 1.0
    return None
