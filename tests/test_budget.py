"""The rate budget (issue 10, items 3 and 8): every request within ``dialnexa.rate_budget``,
unused budget carried over, no range starving whatever the interval, deferral shown."""

from __future__ import annotations

import logging
import random
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from dialnexa_watchdog.app import build
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.config import load_settings
from dialnexa_watchdog.daemon import CycleReport, Watchdog
from dialnexa_watchdog.ingest.budget import select, starvation_bound
from dialnexa_watchdog.ingest.ratelimit import RateLimiter
from dialnexa_watchdog.model import Range
from dialnexa_watchdog.readiness import readyz_text
from dialnexa_watchdog.simulator import RealisticParams, Scenario, Simulator, serve
from support import KEY, T0

# ---- selection (pure) -------------------------------------------------------------------


def rng(kind: str, start: float, calls: int = 0, due: float = 0.0, agent: str | None = None):  # type: ignore[no-untyped-def]
    return Range(start, start + 10, agent, kind, calls, due)  # type: ignore[arg-type]


def test_heads_first_then_the_rest_while_the_allowance_lasts() -> None:
    head = rng("head", 990)
    p1, p2 = rng("pending", 500, 150, due=995), rng("pending", 400, 0, due=996)
    sel = select([head, p1, p2], 3, 1000.0, 60.0, {None: 980.0})
    # a pending range never lists more pages than planned: the rest would stay due
    assert sel.chosen == [head, replace(p1, pages=2)] and sel.deferred == {"pending": 1}
    assert sel.oldest_wait == pytest.approx(4.0) and sel.heads_deferred_for == 0.0


def test_an_overdue_range_goes_right_after_heads_in_part_when_it_does_not_fit() -> None:
    head = rng("head", 990)
    young = rng("pending", 600, 0, due=990)
    old = rng("pending", 500, 950, due=900)  # 10 requests, due 100 s ago: overdue
    sel = select([head, young, old], 3, 1000.0, 60.0, {None: 995.0})
    # its two newest pages, the whole allowance left: the rest stays due for the next cycle
    assert sel.chosen == [head, replace(old, pages=2)] and sel.overdue == 1
    assert sel.deferred == {"pending": 1} and sel.heads_deferred_for == 0.0


def test_a_head_or_live_listing_goes_whole_and_may_overdraw() -> None:
    head = rng("head", 990, 950)  # 10 requests
    live = rng("live", 500, 950, due=800)
    sel = select([head, live], 2, 1000.0, 60.0, {None: 990.0})
    assert sel.chosen == [head] and sel.deferred == {"live": 1}
    sel = select([live], 2, 1000.0, 60.0, {None: 990.0})
    assert sel.chosen == [live] and [r.pages for r in sel.chosen] == [0]


def test_the_last_tokens_list_part_of_a_range_instead_of_waiting() -> None:
    head = rng("head", 990, 250)  # 3 requests
    pend = rng("pending", 500, 2000, due=995)  # 21 requests
    strag = rng("straggler", 100, 0, due=996)
    for allowance in range(4, 30):
        sel = select([head, pend, strag], allowance, 1000.0, 60.0, {None: 980.0})
        assert sel.chosen[:2] == [head, replace(pend, pages=min(21, allowance - 3))]
        spent = sum(r.pages or r.est_requests for r in sel.chosen)
        assert spent == min(allowance, 25)  # the whole allowance, never more
        assert sel.deferred == ({} if allowance >= 25 else {"straggler": 1})


def test_heads_go_first_overdue_ones_first_then_overdue_ranges_longest_waiting_first() -> None:
    """Heads always go first (new calls and failures are counted every cycle the budget
    allows); a range that waited past the bound goes before the rest."""
    ranges = [
        rng("head", 990, agent="a"),
        rng("head", 990, agent="b"),
        rng("pending", 500, due=995),
        rng("pending", 600, due=930),
        rng("straggler", 100, due=920),
    ]
    sel = select(ranges, 4, 1000.0, 60.0, {"a": 990.0, "b": 910.0})
    assert [(r.kind, r.agent_id, r.start) for r in sel.chosen] == [
        ("head", "b", 990),
        ("head", "a", 990),
        ("straggler", None, 100),
        ("pending", None, 600),
    ]
    assert sel.deferred == {"pending": 1} and sel.overdue == 3


def test_no_token_nothing_goes_and_everything_is_counted_as_deferred() -> None:
    ranges = [rng("head", 990), rng("pending", 500, due=800)]
    sel = select(ranges, 0, 1000.0, 60.0, {None: 900.0})
    assert sel.chosen == [] and sel.deferred == {"head": 1, "pending": 1}
    assert sel.oldest_wait == pytest.approx(200.0) and sel.heads_deferred_for == 100.0


def test_starvation_bound_is_two_intervals_and_at_least_a_minute() -> None:
    assert [starvation_bound(i) for i in (1, 5, 30, 60, 300)] == [60, 60, 60, 120, 600]


# ---- the token bucket and the window --------------------------------------------------


def test_a_fractional_share_carries_over_instead_of_rounding_to_one() -> None:
    """At a 1 s interval and 75 requests/min the share is 1.25 per cycle: a head a second
    leaves a quarter, so an extra request is affordable every 4 s (it was never)."""
    lim = RateLimiter(150, 60.0, share=0.5, interval=1.0)
    assert lim.allowed == 75
    spare, heads = 0, 0
    now = T0
    for second in range(180):  # the first minute spends what a full bucket carried
        now += 1.0
        allowance = lim.budget(now, 1.0)
        if allowance >= 1:
            lim.sent(now)  # the head
            heads += second >= 60
        if allowance >= 2:
            lim.sent(now)
            spare += second >= 60
    assert heads == 120 and 28 <= spare <= 30  # over two minutes 150 = 120 heads + 30 spare


def test_the_bucket_is_capped_and_requests_beyond_it_are_paid_back() -> None:
    lim = RateLimiter(150, 60.0, share=0.5, interval=30.0)
    assert lim.carry(30.0) == pytest.approx(56.25) and lim.carry(1.0) == pytest.approx(6.25)
    assert lim.budget(T0, 30.0) == 56  # full after a long idle, never more
    assert lim.budget(T0 + 3600, 30.0) == 56
    for _ in range(70):  # a backfill draws the bucket below zero, within the window
        lim.sent(T0 + 3600)
    assert lim.budget(T0 + 3600, 30.0) == 0 and lim.tokens(T0 + 3600) == pytest.approx(-13.75)
    assert lim.budget(T0 + 3630, 30.0) == 5  # 30 s of 1.25/s, less the debt, and room for 5


def test_the_window_never_lets_more_than_the_budget_out_in_any_period() -> None:
    lim = RateLimiter(150, 60.0, share=0.5)
    r = random.Random(4)
    now, sent = T0, []
    for _ in range(2000):
        now += r.choice((0.0, 0.1, 0.5, 2.0))
        now += lim.delay(now)
        lim.sent(now)
        sent.append(now)
    worst = max(sum(1 for t in sent[i:] if t < start + 60.0) for i, start in enumerate(sent[:1000]))
    assert worst == 75


def test_announced_limits_lower_the_budget_but_never_raise_it() -> None:
    lim = RateLimiter(150, 60.0, share=0.5)
    lim.update(httpx.Headers({"x-ratelimit-limit": "1000"}), T0)
    assert lim.limit == 1000 and lim.allowed == 75
    lim.update(httpx.Headers({"x-ratelimit-limit": "40"}), T0)
    assert lim.allowed == 20
    assert RateLimiter(3, 60.0, share=0.1).allowed == 1  # never zero


# ---- the daemon over the simulator ------------------------------------------------------


class Stamped(httpx.BaseTransport):
    """A real HTTP transport that notes the fake clock's time of every request; as an API
    without the status filter it can answer 400 to it (``reject``) or drop it (``ignore``)."""

    def __init__(self, clock: FakeClock, status_filter: str = "works") -> None:
        self.clock = clock
        self.inner = httpx.HTTPTransport()
        self.times: list[float] = []
        self.status_filter = status_filter
        self.filtered: list[float] = []  # times of the requests with a status filter

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.times.append(self.clock.now())
        if "status" in request.url.params:
            self.filtered.append(self.clock.now())
            if self.status_filter == "reject":
                body = b'{"statusCode": 400, "message": ["status must be one of created, sent"]}'
                return httpx.Response(400, stream=httpx.ByteStream(body))
            if self.status_filter == "ignore":
                url = request.url.copy_remove_param("status")
                request = httpx.Request(request.method, url, headers=request.headers)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def peak_per_minute(times: list[float]) -> int:
    times = sorted(times)
    j, peak = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 60.0:
            j += 1
        peak = max(peak, i - j + 1)
    return peak


def daemon(
    url: str, clock: FakeClock, tmp: Path, status_filter: str = "works", **extra: object
) -> tuple[Watchdog, Stamped]:
    settings = load_settings(
        None,
        overrides={
            "dialnexa.base_url": url,
            "dialnexa.api_key": KEY,
            "metrics.listen": "127.0.0.1:0",
            "state.path": str(tmp / "state.sqlite3"),
            # the injected calls outlast the simulated agents' own call limits (agents2), which
            # would make them stragglers at once; per-agent limits have tests of their own
            "agents.call_limits": False,
            **extra,
        },
        environ={},
    )
    transport = Stamped(clock, status_filter)
    return build(settings, clock, alerting=False, transport=transport).daemon, transport


def in_conversation_at_startup(sim: Simulator, start: float, n: int = 40) -> dict[str, float]:
    """The issue's scenario: ``n`` calls 10-14 minutes into conversation when the daemon
    starts, all ending within 20 s. Returns id -> end."""
    r = random.Random(10)
    ends = {}
    for i in range(n):
        created = start - r.uniform(600, 840)
        end = start + r.uniform(1, 20)
        cid = f"call_long_{i:03d}"
        sim.add_call(f"agt_{i % 4:05d}", created, "completed", ring=5, talk=end - created - 5,
                     call_id=cid)  # fmt: skip
        ends[cid] = end
    return ends


@pytest.mark.slow
@pytest.mark.parametrize("pending_listing", ["ranges", "status"])
@pytest.mark.parametrize("interval", [1, 5, 30])
def test_calls_in_conversation_at_startup_are_counted_within_the_bound(
    interval: int, pending_listing: str, tmp_path: Path
) -> None:
    """At a 1 s interval heads take 60 of the 75 requests a minute; the rest still reaches
    every pending range. Bound: pending_recheck + starvation_bound + one interval after the
    call ends (30 + 60 + interval s). Peak requests in any minute within the budget, no 429."""
    clock = FakeClock(T0)
    scenario = Scenario.steady(agents=6, calls_per_day=20_000, seed=5, talk=(60, 480))
    sim = Simulator(clock, scenario, keys=(KEY,))
    ends = in_conversation_at_startup(sim, T0)
    counted: dict[str, float] = {}

    def note(report: CycleReport) -> None:
        for cid in report.settled_ids:
            counted.setdefault(cid, report.now)

    with serve(sim) as server:
        extra = {"poll.interval": interval, "poll.pending_listing": pending_listing}
        wd, transport = daemon(server.url, clock, tmp_path, **extra)
        wd.on_cycle = note
        assert wd.backfill().ok
        assert not set(ends) & set(counted)  # all still in conversation at the backfill
        while clock.now() < T0 + 240:
            clock.advance(interval)
            wd.poll_once()
        deferred = wd.metrics.registry.get_sample_value(
            "dialnexa_deferred_ranges", {"kind": "head"}
        )
        wd.close()
    bound = wd.settings.poll.pending_recheck + starvation_bound(interval) + interval
    late = {cid: counted[cid] - end for cid, end in ends.items() if cid in counted}
    assert len(late) == len(ends), sorted(set(ends) - set(late))
    assert max(late.values()) <= bound, max(late.values())
    assert peak_per_minute(transport.times) <= 75
    assert not [r for r in sim.requests if r.status == 429]
    assert deferred is not None
    assert bool(transport.filtered) == (pending_listing == "status")


@pytest.mark.slow
@pytest.mark.parametrize("status_filter", ["reject", "ignore"])
def test_an_api_without_the_status_filter_falls_back_to_ranges_once(
    status_filter: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An API that answers 400 to ``status=`` or lists every call regardless: one live
    listing, one log line, then ranges; every call still counted within the bound."""
    clock = FakeClock(T0)
    scenario = Scenario.steady(agents=6, calls_per_day=20_000, seed=5, talk=(60, 480))
    sim = Simulator(clock, scenario, keys=(KEY,))
    ends = in_conversation_at_startup(sim, T0)
    counted: dict[str, float] = {}

    def note(report: CycleReport) -> None:
        for cid in report.settled_ids:
            counted.setdefault(cid, report.now)

    with serve(sim) as server, caplog.at_level(logging.WARNING, logger="watchdog.daemon"):
        extra = {"poll.interval": 30, "poll.pending_listing": "status"}
        wd, transport = daemon(server.url, clock, tmp_path, status_filter, **extra)
        wd.on_cycle = note
        assert wd.backfill().ok and wd.tracker.live
        reports = []
        while clock.now() < T0 + 240:
            clock.advance(30)
            reports.append(wd.poll_once())
        wd.close()
    # one live listing (its pages, when the filter is ignored), in the first cycle
    assert not wd.tracker.live and set(transport.filtered) == {T0 + 30}
    assert all(r.ok and r.error is None for r in reports)
    lines = [r.getMessage() for r in caplog.records if "status=in-progress" in r.getMessage()]
    verb = {"reject": "rejects", "ignore": "ignores"}[status_filter]
    assert len(lines) == 1 and f"the API {verb} the status=in-progress filter" in lines[0]
    late = {cid: counted[cid] - end for cid, end in ends.items() if cid in counted}
    assert len(late) == len(ends) and max(late.values()) <= 30 + 60 + 30


@pytest.mark.slow
def test_a_budget_too_small_for_the_heads_shows_everywhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """rate_budget 0.02 of 150 per 10 minutes is 3 requests per 10 minutes: at a 5 s
    interval heads wait minutes. The deferral shows as a metric, a log line (at most one a
    minute) and, once heads wait past the starvation bound, a /readyz reason; no request
    beyond the budget, and heads still get their turn."""
    clock = FakeClock(T0)
    sim = Simulator(clock, Scenario.steady(agents=3, calls_per_day=5_000, seed=2), keys=(KEY,))
    extra = {
        "poll.interval": 5,
        "dialnexa.rate_budget": 0.02,
        "dialnexa.rate_limit_period": 600,
        "agents.directory": False,  # its refreshes would take 1 of these 3 requests
    }
    with serve(sim) as server:
        wd, transport = daemon(server.url, clock, tmp_path, **extra)
        assert wd.backfill().ok
        start = clock.now()
        reasons: set[str] = set()
        reports = []
        with caplog.at_level(logging.WARNING, logger="watchdog.daemon"):
            while clock.now() < start + 2400:
                clock.advance(5)
                reports.append(wd.poll_once())
                reasons.update(wd.readiness()[1])
        get = wd.metrics.registry.get_sample_value
        head_gauge = [get("dialnexa_deferred_ranges", {"kind": k}) for k in ("head", "pending")]
        wait = get("dialnexa_deferred_wait_seconds")
        wd.close()
    assert all(r.ok for r in reports)  # a cycle the budget left empty is not a failure
    assert sum(1 for r in reports if r.deferred) > 400 and head_gauge[0] in (0.0, 1.0)
    assert wait is not None and head_gauge[1] is not None
    times = [t for t in transport.times if t >= start]
    assert max(sum(1 for u in times if t <= u < t + 600) for t in times) <= 3
    assert sum(1 for r in reports if r.requests) >= 6  # heads get their turn (after backfill debt)
    lines = [r for r in caplog.records if "rate budget" in r.getMessage()]
    assert 10 <= len(lines) <= 41  # at most one a minute
    assert reasons and all(r.startswith("new calls not listed for ") for r in reasons)
    assert readyz_text(False, sorted(reasons)[:1]).endswith("s (rate budget)\n")


# ---- long calls (item 9) ------------------------------------------------------------------


def lateness_bound(age: float, interval: float, recheck: float = 30.0, longest: float = 900.0):  # type: ignore[no-untyped-def]
    """The documented bound on how late a call that ends at ``age`` seconds is counted: its
    re-check period (``pending_recheck`` up to ``max_call_duration``, then a quarter of its
    age, at most 10 minutes), plus the starvation bound, plus one interval."""
    period = recheck if age <= longest else min(max(recheck, age / 4), 600.0)
    return period + starvation_bound(interval) + interval


@pytest.mark.slow
@pytest.mark.parametrize("pending_listing", ["ranges", "status"])
def test_heavy_tailed_talk_times_lose_no_call_and_a_two_hour_call_is_counted(
    pending_listing: str, tmp_path: Path
) -> None:
    """The realistic scenario with agents allowed 3 h calls (log-normal talk times, 1% over
    30 minutes), 30 s interval, 2 h 10 min: every call created after the backfill's start and
    ended 11 minutes before the end is counted once, within ``lateness_bound``; a call that
    talks for 2 h is counted when it ends (it was dropped as stuck at the old 2 h default)."""
    clock = FakeClock(T0)
    params = RealisticParams(max_call_durations=((10800, 1.0),), bursts=None)
    scenario = Scenario.realistic(12, 30_000, 3, history=3 * 3600, diurnal=False, params=params)
    sim = Simulator(clock, scenario, keys=(KEY,))
    agent = scenario.agent_ids[0]
    sim.add_call(agent, T0 + 60, "completed", ring=10, talk=7200, call_id="call_two_hours")
    counted: dict[str, float] = {}
    twice: list[str] = []

    def note(report: CycleReport) -> None:
        for cid in report.settled_ids:
            if cid in counted:
                twice.append(cid)
            counted.setdefault(cid, report.now)

    with serve(sim) as server:
        wd, transport = daemon(
            server.url, clock, tmp_path, **{"poll.pending_listing": pending_listing}
        )
        wd.on_cycle = note
        since = clock.now() - wd.settings.longest_window - wd.settings.poll.max_call_duration
        assert wd.backfill().ok
        end = T0 + 60 + 10 + 7200 + 660
        while clock.now() < end:
            clock.advance(30)
            assert wd.poll_once().ok
        stuck = wd.metrics.registry.get_sample_value(
            "dialnexa_calls_stuck_total", {"agent_id": agent}
        )
        wd.close()
    started = T0
    want = [s for s in sim.calls(until=end) if s.created_at >= since and s.settled_at <= end - 660]
    assert len(want) > 2000 and max(s.settled_at - s.created_at for s in want) > 7200
    missing = [s.id for s in want if s.id not in counted]
    assert not missing and not twice and not stuck
    late = []
    for s in want:
        if s.settled_at < started:
            continue  # settled before the daemon started: counted by the backfill
        age = s.settled_at - s.created_at
        lag = counted[s.id] - s.settled_at
        if lag > lateness_bound(age, 30.0):
            late.append((s.id, round(age), round(lag)))
    assert not late, late[:10]
    assert counted["call_two_hours"] - (T0 + 60 + 10 + 7200) <= lateness_bound(7210, 30.0)
    assert peak_per_minute(transport.times) <= 75


# ---- the whole budget: ranges listed in part (a resumable listing) -------------------------


@pytest.mark.slow
def test_ranges_too_large_for_the_tokens_are_listed_in_part_and_every_call_counted_once(
    tmp_path: Path,
) -> None:
    """A budget of 6 requests a minute against realistic traffic whose pending ranges need
    more: the last tokens of each cycle list the newest pages of a range and the rest is
    planned again (``Range.pages``, ``Listing.cut``). The budget is spent (not left idle for
    want of a range that fits), never exceeded, and every call is counted exactly once."""
    clock = FakeClock(T0)
    params = RealisticParams(bursts=None)
    scenario = Scenario.realistic(12, 40_000, 7, history=3 * 3600, diurnal=False, params=params)
    sim = Simulator(clock, scenario, keys=(KEY,))
    counted: dict[str, float] = {}
    twice: list[str] = []

    def note(report: CycleReport) -> None:
        for cid in report.settled_ids:
            if cid in counted:
                twice.append(cid)
            counted.setdefault(cid, report.now)

    extra = {"poll.pending_listing": "ranges", "dialnexa.rate_budget": 0.04}
    with serve(sim) as server:
        wd, transport = daemon(server.url, clock, tmp_path, **extra)
        wd.on_cycle = note
        listed: list[Range] = []
        list_range = wd.client.list_range

        def spy(r: Range):  # type: ignore[no-untyped-def]
            listed.append(r)
            return list_range(r)

        wd.client.list_range = spy  # type: ignore[method-assign]
        since = clock.now() - wd.settings.longest_window - wd.settings.poll.max_call_duration
        assert wd.backfill().ok
        start = clock.now()
        end = start + 3600
        while clock.now() < end:
            clock.advance(30)
            assert wd.poll_once().ok
        wd.close()
    parts = [r for r in listed if r.pages]
    assert len(parts) > 20 and {r.kind for r in parts} <= {"pending", "straggler"}
    steady = [t for t in transport.times if t >= start + 600]
    per_minute = len(steady) / ((end - start - 600) / 60)
    assert peak_per_minute(transport.times) <= 6 and per_minute >= 5.5, per_minute
    want = [s for s in sim.calls(until=end) if s.created_at >= since and s.settled_at <= end - 900]
    assert len(want) > 1000 and not twice
    assert not [s.id for s in want if s.id not in counted]


def test_pending_calls_back_off_by_age_only_while_the_budget_is_short() -> None:
    """``recheck_period``: every ``pending_recheck`` up to ``max_call_duration`` and a
    quarter of the age beyond (at most 10 minutes); while the budget is short (ranges wait
    past the starvation bound) young calls back off by age too."""
    from dialnexa_watchdog.ingest.tracker import TrackerConfig, recheck_period

    cfg = TrackerConfig(longest_window=3600.0)
    assert [recheck_period(a, cfg) for a in (60, 400, 900, 2000, 9000)] == [
        30.0, 30.0, 30.0, 500.0, 600.0,
    ]  # fmt: skip
    assert [recheck_period(a, cfg, short=True) for a in (60, 400, 900, 2000, 9000)] == [
        30.0, 100.0, 225.0, 500.0, 600.0,
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("pending_listing", ["auto", "status"])
def test_auto_leaves_the_live_listing_when_the_budget_stays_short(
    pending_listing: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``auto`` drops the live listing for good, with one log line, once ranges have waited
    past the starvation bound 10 cycles in a row (the live listing takes what the ended calls
    need); ``status`` keeps it. Either way every call is counted exactly once."""
    clock = FakeClock(T0)
    params = RealisticParams(bursts=None)
    scenario = Scenario.realistic(12, 40_000, 7, history=3 * 3600, diurnal=False, params=params)
    sim = Simulator(clock, scenario, keys=(KEY,))
    counted: dict[str, float] = {}
    twice: list[str] = []

    def note(report: CycleReport) -> None:
        for cid in report.settled_ids:
            if cid in counted:
                twice.append(cid)
            counted.setdefault(cid, report.now)

    extra = {"poll.pending_listing": pending_listing, "dialnexa.rate_budget": 0.04}
    with serve(sim) as server, caplog.at_level(logging.WARNING, logger="watchdog.daemon"):
        wd, transport = daemon(server.url, clock, tmp_path, **extra)
        wd.on_cycle = note
        since = clock.now() - wd.settings.longest_window - wd.settings.poll.max_call_duration
        assert wd.backfill().ok and wd.tracker.live
        end = clock.now() + 3600
        while clock.now() < end:
            clock.advance(30)
            assert wd.poll_once().ok
        wd.close()
    lines = [r for r in caplog.records if "short with the status=in-progress" in r.getMessage()]
    assert wd.tracker.live == (pending_listing == "status")
    assert len(lines) == (pending_listing == "auto")
    assert peak_per_minute(transport.times) <= 6
    want = [s for s in sim.calls(until=end) if s.created_at >= since and s.settled_at <= end - 900]
    assert len(want) > 1000 and not twice
    if pending_listing == "auto":
        assert not [s.id for s in want if s.id not in counted]
