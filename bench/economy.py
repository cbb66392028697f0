"""API economy, accuracy and freshness: our poller vs the lower bound and a naive poller."""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from dialnexa_watchdog.app import build
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.ingest.client import ApiClient, RateLimiter
from dialnexa_watchdog.model import Range
from dialnexa_watchdog.simulator import Scenario, Simulator
from pydantic import SecretStr

from bench.common import KEY, T0, bench_settings

NAIVE_SAMPLE_EVERY = 20  # the naive poller is run for real every Nth cycle (it is slow)


@dataclass
class EconomyResult:
    label: str
    cycles: int = 0
    requests: int = 0
    lower_bound: int = 0
    naive_requests_sampled: list[int] = field(default_factory=list)
    peak_per_minute: int = 0
    mae_5m_failed: float | None = None  # None: the run ended inside the warm-up
    freshness_p95_s: float | None = None
    deferred_ranges: int = 0
    backfill_requests: int = 0
    throttled: int = 0
    max_cycle_requests: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        naive = self.naive_per_cycle
        return {
            "label": self.label,
            "cycles": self.cycles,
            "api_requests_per_cycle": self.requests / max(1, self.cycles),
            "api_ratio_to_lower_bound": self.requests / max(1, self.lower_bound),
            "naive_requests_per_cycle": naive,
            "api_ratio_to_naive": (self.requests / max(1, self.cycles)) / naive if naive else None,
            "api_peak_requests_per_minute": self.peak_per_minute,
            "accuracy_mae_5m_failed": self.mae_5m_failed,
            "freshness_p95_s": self.freshness_p95_s,
            "deferred_ranges": self.deferred_ranges,
            "backfill_requests": self.backfill_requests,
            "throttled_429": self.throttled,
            "max_cycle_requests": self.max_cycle_requests,
            "seconds": self.seconds,
        }

    @property
    def naive_per_cycle(self) -> float | None:
        s = self.naive_requests_sampled
        return statistics.fmean(s) if s else None


class _TimedTransport(httpx.WSGITransport):
    """The in-process transport, noting the (fake) time of every request."""

    def __init__(self, app: Any, clock: FakeClock) -> None:
        super().__init__(app=app)
        self.clock = clock
        self.times: list[float] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.times.append(self.clock.now())
        return super().handle_request(request)


def run_economy(
    label: str,
    *,
    agents: int = 2000,
    calls_per_day: float = 1_000_000,
    hours: float = 3.0,
    explicit_agents: int | None = None,
    listing: str = "auto",
    naive: bool = True,
    seed: int = 11,
    extra: dict[str, Any] | None = None,
) -> EconomyResult:
    started = time.perf_counter()
    clock = FakeClock(T0)
    scenario = Scenario.steady(agents, calls_per_day, seed, diurnal=True)
    sim = Simulator(clock, scenario, keys=(KEY,), rate_limit=150, rate_reset="seconds")
    # the naive poller reads an identical simulator (same scenario and seed) without a rate
    # limit: throttled, it would stall the shared clock; unthrottled, it shows its real cost
    naive_sim = Simulator(clock, scenario, keys=("naive-key",), rate_limit=None)
    overrides: dict[str, Any] = dict(extra or {})
    watched: list[str] | None = None
    if explicit_agents:
        watched = sim.agent_ids[:explicit_agents]
        overrides["poll.agents"] = watched
        overrides["poll.listing"] = listing
    with tempfile.TemporaryDirectory() as tmp:
        settings = bench_settings(Path(tmp), **overrides)
        transport = _TimedTransport(sim, clock)
        wd = build(settings, clock, transport=transport, alerting=False).daemon
        naive_client = ApiClient(
            "http://sim/v1",
            SecretStr("naive-key"),
            clock,
            limiter=RateLimiter(10**9, 60.0),
            transport=httpx.WSGITransport(app=naive_sim),
        )
        res = EconomyResult(label)
        bf = wd.backfill()
        res.backfill_requests = bf.requests
        after_backfill = len(transport.times)
        interval = settings.poll.interval
        errors: list[float] = []
        delays: list[float] = []
        alert_outcomes = {"failed", "busy", "no_answer", "did_not_pick"}
        last = clock.now()
        measure_from = last + 600  # accuracy/freshness after a 10-minute warm-up
        cycles = int(hours * 3600 / interval)
        max_cycle = 0
        for i in range(cycles):
            clock.set(max(clock.now(), last + interval))
            tick = clock.now()
            report = wd.poll_once()
            res.cycles += 1
            res.requests += report.requests
            max_cycle = max(max_cycle, report.requests)
            res.deferred_ranges += report.deferred
            changed = sim.changed_between(last, tick)
            if watched is not None:  # agents share traffic evenly in Scenario.steady
                changed = round(changed * len(watched) / agents)
            res.lower_bound += math.ceil(changed / 100)
            now = clock.now()
            if naive and i % NAIVE_SAMPLE_EVERY == 0:
                r = Range(now - settings.longest_window, now)
                res.naive_requests_sampled.append(naive_client.list_range(r).requests)
            if now < measure_from:
                last = tick
                continue
            for cid in report.settled_ids:
                try:
                    spec = sim.get_call(cid)
                except KeyError:
                    continue
                if spec.outcome in alert_outcomes and spec.settled_at > T0:
                    delays.append(max(0.0, now - spec.settled_at))
            errors.append(_workspace_error(wd, sim, now))
            last = tick
        res.peak_per_minute = _peak_per_minute(transport.times[after_backfill:])
        res.throttled = sum(1 for rec in sim.requests if rec.status == 429)
        res.max_cycle_requests = max_cycle
        res.mae_5m_failed = statistics.fmean(errors) if errors else None
        res.freshness_p95_s = _p95(delays) if delays else None
        wd.close()
        naive_client.close()
    res.seconds = time.perf_counter() - started
    return res


def _workspace_error(wd: Any, sim: Simulator, now: float) -> float:
    """|daemon - truth| for the workspace 5m failed ratio, truth on the daemon's bucket edges."""
    w = wd.windows
    start = (math.floor((now - 300) / w.bucket) + 1) * w.bucket
    truth = sim.settled_counts(None, start, now)
    denom = sum(v for k, v in truth.items() if k != "cancelled")
    true_ratio = truth.get("failed", 0) / denom if denom else 0.0
    got = w.workspace("5m").ratio("failed") or 0.0
    return abs(got - true_ratio)


def _peak_per_minute(times: list[float]) -> int:
    """Most requests in any 60 s, from each request's own time."""
    best = 0
    j = 0
    for i, t in enumerate(times):
        while t - times[j] >= 60:
            j += 1
        best = max(best, i - j + 1)
    return best


def _p95(values: list[float]) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(0.95 * len(values)))]
