"""A standby keeps its windows warm from the leader's recorded history (real PostgreSQL,
simulator, FakeClock): after each of the leader's cycles, one read makes the standby's
windows equal the leader's; a takeover applies only the cycles since the last read, and
falls back to the full rebuild when the followed windows do not add up."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dialnexa_watchdog.alerts.store.open import open_state
from dialnexa_watchdog.alerts.store.sql import SqlStore
from dialnexa_watchdog.app import App, build, build_windows
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.config import Settings, load_settings
from dialnexa_watchdog.readiness import readyz_text
from dialnexa_watchdog.replica import Follower, Standby
from dialnexa_watchdog.simulator import Scenario, Simulator, serve
from pgserver import PASSWORD
from support import KEY, T0

INTERVAL = 30.0


@pytest.fixture
def sim(clock: FakeClock) -> Simulator:
    scenario = Scenario.steady(agents=12, calls_per_day=100_000, seed=5)
    return Simulator(clock, scenario, keys=(KEY,), rate_limit=None)


@pytest.fixture
def settings(sim: Simulator, pg_url: str, tmp_path: Path) -> Iterator[Settings]:
    with serve(sim) as server:
        yield load_settings(
            None,
            overrides={
                "dialnexa.base_url": server.url,
                "dialnexa.api_key": KEY,
                "metrics.listen": "127.0.0.1:0",
                "state.path": str(tmp_path / "unused.sqlite3"),
                "state.url": pg_url,
                "state.password": PASSWORD,
            },
            environ={},
        )


def follower(settings: Settings) -> Follower:
    return Follower(lambda: open_state(settings.state, T0), lambda: build_windows(settings))


def cycle(app: App, clock: FakeClock) -> None:
    clock.advance(INTERVAL)
    assert app.daemon.poll_once().ok


def kill(app: App) -> None:
    """Drop a daemon as SIGKILL would: only its sockets close."""
    app.client.close()
    assert app.alerts is not None
    app.alerts.store.close()


@pytest.mark.slow
def test_the_standby_equals_the_leader_after_each_interval_and_takes_over_with_the_rest(
    settings: Settings, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    leader = build(settings, clock)
    assert leader.daemon.poll_once().ok  # the backfill: a reset row
    standby = follower(settings)
    assert standby.follow() == 0  # the first read rebuilds at the last recorded cycle
    assert standby.followed is not None
    assert sorted(standby.followed.windows.content()) == sorted(leader.windows.content())
    for i in range(12):
        cycle(leader, clock)
        assert standby.follow() == 1  # one interval later: the leader's one new cycle
        assert sorted(standby.followed.windows.content()) == sorted(leader.windows.content()), i
        assert standby.followed.windows.checksum() == leader.windows.checksum()
        assert standby.followed.at == leader.windows.now
    if leader.recorder is not None:  # a reset row (after lost writes) empties first
        leader.recorder._snapshot = True
    cycle(leader, clock)
    assert standby.follow() == 1
    assert sorted(standby.followed.windows.content()) == sorted(leader.windows.content())
    for _ in range(3):  # the standby misses three cycles, then the leader dies
        cycle(leader, clock)
    want = sorted(leader.windows.content())
    kill(leader)
    caplog.set_level(logging.INFO)
    clock.advance(INTERVAL)
    t = time.perf_counter()
    taken = build(settings, clock, followed=standby.take())
    print(f"\ntakeover build with followed windows: {time.perf_counter() - t:.3f}s")
    assert taken.resumed is not None
    assert "needed 3 recorded cycle(s) since the last read" in caplog.text
    assert "rebuilding" not in caplog.text
    assert sorted(taken.windows.content()) == want
    assert taken.daemon.poll_once().ok and taken.daemon.ready
    taken.close()


@pytest.mark.slow
def test_followed_windows_that_do_not_add_up_are_rebuilt_at_takeover(
    settings: Settings, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    leader = build(settings, clock)
    assert leader.daemon.poll_once().ok
    for _ in range(3):
        cycle(leader, clock)
    standby = follower(settings)
    standby.follow()
    assert standby.followed is not None
    w = standby.followed.windows
    agent = w.agents()[0]
    w.apply(agent, 0, int(w.now // w.bucket), 1)  # one call the leader never counted
    cycle(leader, clock)
    want = sorted(leader.windows.content())
    kill(leader)
    caplog.set_level(logging.INFO)
    clock.advance(INTERVAL)
    taken = build(settings, clock, followed=standby.take())
    assert "do not match the resume point: rebuilding them" in caplog.text
    assert taken.resumed is not None and sorted(taken.windows.content()) == want
    taken.close()


def test_a_standby_with_nothing_recorded_follows_nothing_and_the_takeover_is_cold(
    settings: Settings, clock: FakeClock
) -> None:
    standby = follower(settings)
    assert standby.follow() == 0 and standby.followed is not None
    assert standby.followed.at is None
    taken = build(settings, clock, followed=standby.take(), alerting=True)
    assert taken.resumed is None and not taken.windows.agents()
    taken.close()


def test_a_standby_that_cannot_read_the_history_says_so_and_recovers(
    settings: Settings, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    leader = build(settings, clock)
    assert leader.daemon.poll_once().ok
    cycle(leader, clock)
    with socket.socket() as s:  # a port nothing listens on: the database is unreachable
        s.bind(("127.0.0.1", 0))
        dead = f"postgresql://watchdog@127.0.0.1:{s.getsockname()[1]}/watchdog"
    broken = [True]

    def open_store() -> SqlStore:
        url = dead if broken[0] else settings.state.url
        state = settings.state.model_copy(update={"url": url})
        return open_state(state, T0)

    follower = Follower(open_store, lambda: build_windows(settings))
    standby = Standby(follower)
    caplog.set_level(logging.INFO)
    for _ in range(2):
        assert follower.follow() == 0
    assert caplog.text.count("standby: cannot follow the recorded history") == 1  # once
    assert standby.readiness() == (True, ["another replica leads", "recorded history not followed"])
    assert readyz_text(*standby.readiness()) == (
        "ready (another replica leads; recorded history not followed)\n"
    )
    reg = standby.registry
    assert reg.get_sample_value("dialnexa_standby_history_read_errors_total") == 2
    assert reg.get_sample_value("dialnexa_standby_history_last_cycle_timestamp_seconds") == 0
    broken[0] = False
    follower.follow()
    assert "standby: following the recorded history" in caplog.text
    assert standby.readiness() == (True, ["another replica leads"])
    assert reg.get_sample_value("dialnexa_standby_history_read_errors_total") == 2
    last = reg.get_sample_value("dialnexa_standby_history_last_cycle_timestamp_seconds")
    assert last == leader.windows.now
    follower.close()
    leader.close()
