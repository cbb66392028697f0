"""One simulated run, of our daemon or of the DIY poller, scored against ground truth.

Both read their own ``Simulator`` built from the same ``Setup`` (scenario, seed, request
latency drawn per request and taken on the fake clock, DialNexa's 150 requests per 60 s),
so they see identical calls. Our daemon is built by ``app.build`` from a config, so changes
to its request planning show up here; ``dialnexa.rate_budget`` is passed when ``Settings``
has it. Runs start at 13:30 UTC, half an hour before the day's peak (1.9x the mean rate).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from dialnexa_watchdog.app import build
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.config.settings import DialNexaSettings
from dialnexa_watchdog.ingest.client import ApiClient
from dialnexa_watchdog.ingest.ratelimit import RateLimiter
from dialnexa_watchdog.model import Range, StatusClasses
from dialnexa_watchdog.simulator import Latency, Scenario, Simulator
from dialnexa_watchdog.windows import Windows
from pydantic import SecretStr

from bench.common import KEY, bench_settings
from bench.scoring import Scorer

DAY0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC
T_PEAK = DAY0 + 13.5 * 3600  # runs start here: the diurnal peak is at 14:00 UTC
API_LIMIT = 150  # DialNexa's observed limit per key, requests per 60 s


@dataclass(frozen=True, slots=True)
class Setup:
    """What is simulated: traffic, size, duration, and the daemon's settings."""

    traffic: str = "realistic"  # or "kind" (uniform talk 30-480 s, failures before answer)
    agents: int = 2000
    calls_per_day: float = 1_000_000
    hours: float = 1.0
    warmup: float = 1200.0  # s scored after this (ours: the backfill runs inside it)
    interval: float = 30.0
    latency: float = 0.3  # median request latency, s (low 0.1, high 0.5); 0: none
    rate_budget: float = 0.5
    seed: int = 1
    status_filter: bool = True  # the simulator serves ?status= (live monitoring)

    @property
    def start(self) -> float:
        return T_PEAK

    def scenario(self) -> Scenario:
        if self.traffic == "realistic":
            return Scenario.realistic(self.agents, self.calls_per_day, self.seed)
        return Scenario.steady(self.agents, self.calls_per_day, self.seed, diurnal=True)

    def simulator(self, clock: FakeClock, key: str = KEY) -> Simulator:
        lat = None
        if self.latency > 0:
            lo, hi = min(0.1, self.latency), max(0.5, self.latency)
            lat = Latency(lo, self.latency, hi, seed=self.seed)
        return Simulator(clock, self.scenario(), keys=(key,), rate_limit=API_LIMIT, latency=lat)


def has_rate_budget() -> bool:
    """Whether this daemon has ``dialnexa.rate_budget`` (added by issue 10's item 3)."""
    return "rate_budget" in DialNexaSettings.model_fields


class TimedTransport(httpx.WSGITransport):
    """The in-process transport, noting the (fake) time each request goes out."""

    def __init__(self, app: Any, clock: FakeClock) -> None:
        super().__init__(app=app)
        self.clock = clock
        self.times: list[float] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.times.append(self.clock.now())
        return super().handle_request(request)


def peak_per_minute(times: list[float]) -> int:
    """Most requests in any 60 s, from each request's own time."""
    best = j = 0
    for i, t in enumerate(times):
        while t - times[j] >= 60:
            j += 1
        best = max(best, i - j + 1)
    return best


def _common(
    setup: Setup, sim: Simulator, times: list[float], start: float, end: float, scorer: Scorer
) -> dict[str, Any]:
    """What both pollers report: request rates (all requests from ``start``), the
    settled-call bound and the scores."""
    minutes = (end - start) / 60.0
    measured = [t for t in times if t >= scorer.measure_from]
    m_minutes = max(1e-9, (end - scorer.measure_from) / 60.0)
    bound = sim.settled_call_bound(scorer.measure_from, end)
    return {
        "requests_per_minute": len(measured) / m_minutes,
        "peak_requests_per_minute": peak_per_minute(times),
        "requests_total": len(times),
        "minutes": minutes,
        "settled_bound_per_minute": bound / m_minutes,
        "ratio_to_settled_bound": len(measured) / bound if bound else None,
        "throttled_429": sum(1 for r in sim.requests if r.status == 429),
        **scorer.finish(end),
    }


def _stuck(wd: Any) -> int:
    """Calls the daemon dropped unsettled past ``poll.max_pending_age`` (its metric)."""
    return int(
        sum(
            s.value
            for m in wd.metrics.stuck.collect()
            for s in m.samples
            if s.name.endswith("_total")
        )
    )


def run_ours(setup: Setup) -> dict[str, Any]:
    """Our daemon, from ``app.build``, one cycle per interval on the fake clock. Its log
    (a warning per cycle with calls dropped past ``max_pending_age``) is quiet here: those
    calls are counted as ``stuck_dropped``."""
    wall = time.perf_counter()
    logging.getLogger("watchdog").setLevel(logging.ERROR)
    clock = FakeClock(setup.start)
    sim = setup.simulator(clock)
    overrides: dict[str, Any] = {"poll.interval": f"{setup.interval:g}s"}
    if has_rate_budget():
        overrides["dialnexa.rate_budget"] = setup.rate_budget
    with tempfile.TemporaryDirectory() as tmp:
        settings = bench_settings(Path(tmp), **overrides)
        transport = TimedTransport(sim, clock)
        wd = build(settings, clock, transport=transport, alerting=False).daemon
        start = clock.now()
        scorer = Scorer(sim, start + setup.warmup)
        backfill_requests = 0
        report = wd.backfill()
        backfill_requests += report.requests
        while not wd.tracker.backfilled and clock.now() < start + setup.warmup:
            clock.set(max(clock.now(), report.now + setup.interval))
            report = wd.backfill()
            backfill_requests += report.requests
        ready_s = clock.now() - start
        scorer.cycle(report.settled_ids, report.now)
        end = start + setup.hours * 3600
        cycles = deferred = max_cycle = m_cycles = m_requests = 0
        last = report.now
        while True:
            tick = max(clock.now(), last + setup.interval)
            if tick >= end:
                break
            clock.set(tick)
            last = tick
            report = wd.poll_once()
            cycles += 1
            if tick >= scorer.measure_from:
                m_cycles += 1
                m_requests += report.requests
            deferred += report.deferred
            max_cycle = max(max_cycle, report.requests)
            scorer.cycle(report.settled_ids, report.now)
            scorer.score(wd.windows, report.now)
        clock.set(max(clock.now(), end))
        out = _common(setup, sim, transport.times, start, end, scorer)
        out.update(
            {
                "cycles": cycles,
                "requests_per_cycle": m_requests / max(1, m_cycles),
                "max_cycle_requests": max_cycle,
                "deferred_ranges_per_cycle": deferred / max(1, cycles),
                "backfill_requests": backfill_requests,
                "ready_after_s": ready_s,
                "tracked_calls": wd.tracker.tracked_count,
                "stuck_dropped": _stuck(wd),
                "rate_budget_set": has_rate_budget(),
                "wall_s": time.perf_counter() - wall,
            }
        )
        wd.close()
    return out


@dataclass(frozen=True, slots=True)
class Diy:
    """The do-it-yourself poller: every ``every`` seconds, list calls created in the last
    ``span`` seconds (all pages, under a rate limiter of ``limit`` per 60 s: the API's own),
    count each call the first time it is seen settled."""

    span: float = 600.0
    every: float = 60.0
    limit: int = API_LIMIT

    @property
    def label(self) -> str:
        return f"re-list the last {self.span / 60:g} min every {self.every:g} s"


def run_diy(setup: Setup, diy: Diy) -> dict[str, Any]:
    wall = time.perf_counter()
    clock = FakeClock(setup.start)
    sim = setup.simulator(clock)
    transport = TimedTransport(sim, clock)
    client = ApiClient(
        "http://sim/v1",
        SecretStr(KEY),
        clock,
        limiter=RateLimiter(diy.limit, 60.0),
        transport=transport,
        max_sleep=120.0,
    )
    classes = StatusClasses()
    windows = Windows({"5m": 300.0, "15m": 900.0, "1h": 3600.0}, classes)
    start = clock.now()
    end = start + setup.hours * 3600
    scorer = Scorer(sim, start + setup.warmup)
    counted: dict[str, float] = {}  # id -> created_at (forgotten once out of the span)
    cycles = failed_listings = 0
    last = start - diy.every
    while True:
        tick = max(clock.now(), last + diy.every)
        if tick >= end:
            break
        clock.set(tick)
        last = tick
        listing = client.list_range(Range(tick - diy.span, tick))
        cycles += 1
        failed_listings += listing.error is not None
        now = clock.now()
        windows.advance(now)
        ids: list[str] = []
        for c in listing.calls:
            if c.status in classes.pending or c.id in counted:
                continue
            counted[c.id] = c.created_at
            windows.add(c.agent_id, windows.counted_as(c.status), c.settled_at or now)
            ids.append(c.id)
        for cid in [k for k, created in counted.items() if created < tick - 2 * diy.span]:
            del counted[cid]
        scorer.cycle(ids, now)
        scorer.score(windows, now)
    clock.set(max(clock.now(), end))
    out = _common(setup, sim, transport.times, start, end, scorer)
    out.update(
        {
            "cycles": cycles,
            "failed_listings": failed_listings,
            "diy": asdict(diy),
            "wall_s": time.perf_counter() - wall,
        }
    )
    client.close()
    return out
