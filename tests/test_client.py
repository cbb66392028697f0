"""The API client over real loopback HTTP against the simulator."""

from __future__ import annotations

import httpx
import pytest
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.ingest.client import (
    ERROR_KINDS,
    ApiClient,
    ApiError,
    RateLimiter,
    iso,
    parse_reset,
)
from dialnexa_watchdog.model import Range
from dialnexa_watchdog.simulator import Simulator
from pydantic import SecretStr
from support import KEY, T0


def client(url: str, clock: FakeClock, key: str = KEY, **kw: object) -> ApiClient:
    kw.setdefault("rng", lambda: 0.5)
    return ApiClient(url, SecretStr(key), clock, **kw)  # type: ignore[arg-type]


def add_calls(sim: Simulator, n: int, start: float, step: float = 1.0, agent: str = "a") -> None:
    for i in range(n):
        sim.add_call(
            agent,
            start + i * step,
            "failed" if i % 4 == 0 else "completed",
            ring=2,
            talk=10,
            call_id=f"c{int(start)}_{i:04d}",
        )


def test_pagination_under_concurrent_inserts_neither_skips_nor_double_counts(
    sim: Simulator, sim_url: str, clock: FakeClock
) -> None:
    add_calls(sim, 250, T0 - 1000)
    clock.advance(10)
    inserted = []

    def insert_between_pages(path: str, params: object) -> None:
        # every request: 7 new calls land at the top of the newest-first listing
        for _ in range(7):
            inserted.append(sim.add_call("a", clock.now(), "completed"))
        clock.advance(0.5)

    sim.on_request = insert_between_pages
    c = client(sim_url, clock)
    listing = c.list_range(Range(T0 - 1000, clock.now()))
    ids = [x.id for x in listing.calls]
    want = {f"c{int(T0 - 1000)}_{i:04d}" for i in range(250)}
    assert listing.complete and len(ids) == len(set(ids))
    assert want <= set(ids)
    assert listing.requests == 3  # 100 + 100 + 50: 'to' was fixed, inserts did not shift pages


def test_listing_stops_once_items_are_older_than_the_range_when_filters_are_ignored(
    clock: FakeClock,
) -> None:
    from dialnexa_watchdog.simulator import serve

    sim = Simulator(clock, keys=(KEY,), ignore_date_filter=True)
    add_calls(sim, 1000, T0 - 2000)
    with serve(sim) as server:
        listing = client(server.url, clock).list_range(Range(T0 - 1150, T0))
    # newest first: pages of 100 until an item older than the range shows up
    assert listing.complete and listing.requests == 2
    inside = {x.id for x in listing.calls if x.created_at >= T0 - 1150}
    assert len(inside) == 150


@pytest.mark.parametrize(
    ("key", "code", "words"),
    [
        ("read-only-key", 403, "cannot read calls on this workspace"),
        ("wrong-key", 401, "rejected the API key"),
    ],
)
def test_auth_errors_name_the_cause_never_the_key(
    sim_url: str, clock: FakeClock, key: str, code: int, words: str
) -> None:
    listing = client(sim_url, clock, key=key).list_range(Range(T0 - 60, T0))
    assert listing.error is not None and not listing.complete
    err = listing.error
    assert err.code == code and err.permanent and words in err.reason
    assert key not in err.reason


def test_429_honours_retry_after_on_the_injected_clock(
    sim: Simulator, sim_url: str, clock: FakeClock
) -> None:
    add_calls(sim, 5, T0 - 100)
    sim.inject("429", seconds=7)
    listing = client(sim_url, clock).list_range(Range(T0 - 100, T0))
    assert listing.complete and len(listing.calls) == 5
    assert 7 in clock.slept
    assert [r.status for r in sim.requests] == [429, 200]


def test_5xx_retries_with_bounded_backoff_then_gives_up(
    sim: Simulator, sim_url: str, clock: FakeClock
) -> None:
    add_calls(sim, 3, T0 - 100)
    sim.inject("500")
    sim.inject("503")
    c = client(sim_url, clock, max_retries=3, backoff_base=1.0, backoff_max=3.0)
    assert c.list_range(Range(T0 - 100, T0)).complete
    assert clock.slept == [0.75, 1.5]  # equal jitter with rng=0.5: cap/2 + cap/4
    clock.slept.clear()
    sim.inject("502", count=10)
    listing = c.list_range(Range(T0 - 100, T0))
    assert not listing.complete and listing.error is not None
    assert listing.error.reason == "DialNexa server error (502)"
    assert clock.slept == [0.75, 1.5, 2.25]  # bounded by backoff_max


def test_garbage_is_skipped_and_counted(sim: Simulator, sim_url: str, clock: FakeClock) -> None:
    add_calls(sim, 30, T0 - 100)
    invalid: list[int] = []

    class Obs:
        def request(self, code: str, seconds: float) -> None: ...
        def invalid_items(self, n: int) -> None:
            invalid.append(n)

        def rate_limit_remaining(self, remaining: float) -> None: ...

    c = client(sim_url, clock, observer=Obs(), max_retries=2)
    sim.inject("html")
    sim.inject("invalid_json")
    listing = c.list_range(Range(T0 - 100, T0))
    assert listing.complete and len(listing.calls) == 30 and sum(invalid) == 2
    sim.inject("bad_items")
    listing = c.list_range(Range(T0 - 100, T0))
    assert listing.complete and listing.invalid > 0
    assert len(listing.calls) == 30


@pytest.mark.slow
def test_timeouts_are_retried(sim: Simulator, sim_url: str, clock: FakeClock) -> None:
    add_calls(sim, 2, T0 - 100)
    sim.inject("timeout", seconds=1.0)
    c = client(sim_url, clock, timeout=0.2)
    listing = c.list_range(Range(T0 - 100, T0))
    assert listing.complete and len(listing.calls) == 2
    sim.release_held()


@pytest.mark.slow
def test_pacing_keeps_under_the_servers_rate_limit(
    sim: Simulator, sim_url: str, clock: FakeClock
) -> None:
    add_calls(sim, 20, T0 - 100)
    c = client(sim_url, clock, limiter=RateLimiter(150, 60.0))
    for _ in range(400):
        c.get_page({"limit": 10})
    codes = [r.status for r in sim.requests]
    assert 429 not in codes and len(codes) == 400
    assert clock.now() - T0 >= 60 * 2  # 400 requests at 150/min need over two minutes


def test_rate_limit_headers_both_reset_styles() -> None:
    assert parse_reset("30", 1000.0) == 1030.0
    assert parse_reset("1750000030", 1000.0) == 1750000030.0
    lim = RateLimiter(150, 60)
    lim.update(
        httpx.Headers(
            {"x-ratelimit-limit": "100", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "12"}
        ),
        500.0,
    )
    assert lim.limit == 100 and lim.delay(500.0) == 12.0


def test_iso_bounds_are_inclusive_at_millisecond_grain() -> None:
    assert iso(1714573080.0004) == "2024-05-01T14:18:00.000Z"
    assert iso(1714573080.0004, up=True) == "2024-05-01T14:18:00.001Z"


def test_api_error_is_an_exception_with_reason() -> None:
    e = ApiError("x", 500)
    assert str(e) == "x" and not e.permanent


def test_api_error_kinds_are_a_closed_set_and_repr_shows_no_more_than_reason() -> None:
    assert ApiError("x", 401).kind == "auth" and ApiError("x", 403).kind == "auth"
    assert ApiError("x", 404).kind == "client_error" and ApiError("x", 503).kind == "server_error"
    assert ApiError("x").kind == "network"
    e = ApiError("timed out", kind="timeout")
    assert repr(e) == "ApiError(kind='timeout', code=None, reason='timed out')"
    for kind in ("auth", "client_error", "server_error", "network"):
        assert kind in ERROR_KINDS


def test_api_error_masks_credential_shapes_whoever_builds_it() -> None:
    e = ApiError(
        "echo: Authorization: Bearer abc.def-123 and ?api_key=zzz9&x=1, call +1 555 010 9999"
    )
    assert "abc.def-123" not in e.reason and "zzz9" not in e.reason and "555 010" not in e.reason
    assert "abc.def-123" not in repr(e) and str(e) == e.reason


def test_5xx_after_the_sleep_cap_gives_up_instead_of_sleeping(
    sim: Simulator, sim_url: str, clock: FakeClock
) -> None:
    add_calls(sim, 3, T0 - 100)
    sim.inject("500", count=10)
    c = client(sim_url, clock, max_retries=5, backoff_base=1.0, backoff_max=30.0, max_sleep=2.9)
    listing = c.list_range(Range(T0 - 100, T0))
    assert listing.error is not None and listing.error.kind == "server_error"
    assert clock.slept == [0.75, 1.5] and listing.requests == 3  # the next pause (3.0) not slept


def test_hold_is_capped_and_clearable(sim: Simulator, sim_url: str, clock: FakeClock) -> None:
    add_calls(sim, 2, T0 - 100)
    c = client(sim_url, clock, max_sleep=10.0, max_hold=600.0)
    c.hold(T0 + 10**9)  # a corrupt persisted value cannot blind the daemon for ever
    assert c.hold_until == T0 + 600.0
    listing = c.list_range(Range(T0 - 100, T0))
    assert listing.error is not None and listing.error.kind == "deferred" and sim.requests == []
    assert listing.error.retry_at == T0 + 600.0
    c.hold(T0 + 5)  # an earlier time does not shorten a hold
    assert c.hold_until == T0 + 600.0
    clock.advance(600)
    assert c.list_range(Range(T0 - 100, T0)).complete and c.hold_until is None


def test_a_short_hold_is_slept_inside_the_cycle(
    sim: Simulator, sim_url: str, clock: FakeClock
) -> None:
    add_calls(sim, 2, T0 - 100)
    c = client(sim_url, clock, max_sleep=30.0)
    c.hold(T0 + 20)
    assert c.list_range(Range(T0 - 100, T0)).complete
    assert clock.slept == [20.0]


def test_reasons_name_the_host_never_user_info_or_query(clock: FakeClock) -> None:
    c = ApiClient(
        "http://user:pw-secret-1@127.0.0.1:1/v1?token=tok-secret-2",
        SecretStr(KEY),
        clock,
        max_retries=0,
    )
    err = c.list_range(Range(T0 - 60, T0)).error
    assert err is not None and err.kind == "refused"
    assert err.reason == "connection to 127.0.0.1:1 refused (is anything listening?)"


@pytest.mark.parametrize("seed", range(4))
def test_a_listing_resumed_in_parts_reads_every_call_of_its_range(
    sim: Simulator, sim_url: str, clock: FakeClock, seed: int
) -> None:
    """A listing cut at ``Range.pages`` (the budget left) and resumed later from its ``cut``
    reads exactly the calls one whole listing reads, though new calls arrive between the
    parts and many calls share the millisecond where a page ends."""
    import random

    r = random.Random(seed)
    created = sorted(T0 - r.uniform(2, 900) for _ in range(r.randint(300, 900)))
    tied = T0 - r.uniform(100, 800)
    created += [tied] * r.randint(50, 260)  # ties across page boundaries
    for i, t in enumerate(sorted(created)):
        sim.add_call(f"agt_{i % 3}", t, "completed", ring=2, talk=5, call_id=f"p{i:04d}")
    clock.advance(30)
    whole = Range(T0 - 1000, T0 - 1)
    c = client(sim_url, clock, page_size=100)
    want = {x.id for x in c.list_range(whole).calls}
    assert len(want) == len(created)
    got: set[str] = set()
    part, parts = whole, 0
    while True:
        k = r.randint(1, 3)
        listing = c.list_range(Range(part.start, part.end, pages=k))
        got |= {x.id for x in listing.calls}
        parts += 1
        for _ in range(r.randint(0, 40)):  # new calls between the parts (after `to`)
            sim.add_call("agt_0", clock.now(), "completed", ring=2, talk=5)
        clock.advance(30)
        covered = listing.covered(part)
        if listing.complete:
            assert covered == part
            break
        assert listing.cut is not None and listing.requests >= k and covered is not None
        ties = sum(1 for x in listing.calls if x.created_at == part.end)
        assert listing.requests == k or ties >= 100  # more only to get past a page of ties
        assert covered.start > listing.cut and covered.end == part.end
        part = Range(part.start, listing.cut)  # what is left: up to the cut, inclusive
    assert got == want and parts > 1 and len(want) == len(created)
