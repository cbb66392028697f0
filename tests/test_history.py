"""Recorded history: the compact encoding, the SQLite tables, and the daemon's recording
checked against the simulator's ground truth and against the live windows, cycle by cycle."""

from __future__ import annotations

import logging
import math
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from dialnexa_watchdog.alerts.store import Store
from dialnexa_watchdog.alerts.store.sql import SqlStore
from dialnexa_watchdog.app import App, build
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.config import Settings, load_settings
from dialnexa_watchdog.history import (
    AGENT,
    STATUS,
    Checkpoint,
    HistoryCorrupt,
    HistoryReader,
    HistoryRow,
    Saved,
    codec,
)
from dialnexa_watchdog.history.recorder import MAX_UNSAVED
from dialnexa_watchdog.simulator import Scenario, Simulator, serve
from dialnexa_watchdog.windows import Windows
from hypothesis import given, settings
from hypothesis import strategies as st
from support import KEY, T0

# ---- the encoding -------------------------------------------------------------------------------
cells = st.lists(
    st.tuples(
        st.integers(0, 2**40),  # agent code
        st.integers(-(2**45), 2**45),  # bucket
        st.integers(0, 300),  # status code
        st.integers(-(2**40), 2**40).filter(bool),  # +n/-n
    ),
    max_size=300,
    unique_by=lambda c: (c[0], c[1], c[2]),
)


@settings(max_examples=200, deadline=None)
@given(cells)
@pytest.mark.slow
def test_cells_round_trip_through_the_encoding(
    given_cells: list[tuple[int, int, int, int]],
) -> None:
    kmin, kmax, data = codec.encode(given_cells)
    agents, ks, statuses, ns = codec.decode(data, kmax)
    assert sorted(zip(agents, ks, statuses, ns, strict=True)) == sorted(given_cells)
    if given_cells:
        assert (kmin, kmax) == (min(c[1] for c in given_cells), max(c[1] for c in given_cells))


def test_a_typical_cycle_costs_about_a_byte_per_cell() -> None:
    # 400 calls over 300 of 2,000 agents in the last three 15 s buckets, mostly completed
    k = 116_666_700
    typical = [(a * 6 + 1, k - (a % 3), (a * 7) % 4, 1 + (a % 5 == 0)) for a in range(300)]
    typical += [(a * 6 + 1, k - (a % 3), 4, 1) for a in range(0, 300, 3)]
    _, _, data = codec.encode(typical)
    assert len(data) < 2 * len(typical)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: d[:-3],  # truncated
        lambda d: d[:5],  # only part of the header
        lambda d: b"\x02" + d[1:],  # an unknown version
        lambda d: d[:5] + b"BBzB" + d[9:],  # an unknown column type
        lambda d: d[:9] + bytes(len(d) - 9),  # not zlib
        lambda d: d[:1] + (10**6).to_bytes(4, "little") + d[5:],  # a wrong count
    ],
)
def test_damaged_rows_are_refused_with_history_corrupt(mangle: object) -> None:
    _, kmax, data = codec.encode([(1, 5, 0, 1), (2, 4, 1, -1), (9, 5, 2, 3)])
    with pytest.raises(HistoryCorrupt):
        codec.decode(mangle(data), kmax)  # type: ignore[operator]
    assert codec.decode(b"", 0) == ([], [], [], [])


# ---- the store's tables (both backends) -------------------------------------------------
def test_the_store_round_trips_rows_names_calls_and_prunes(
    open_store: Callable[[], SqlStore],
) -> None:
    store = open_store()
    weird = "agt\udc80\U0001f600"  # a lone surrogate and an emoji: ids come from the API
    _, kmax, data = codec.encode([(1, 10, 1, 2)])
    rows = [HistoryRow(T0 + i * 30, 15.0, 10, kmax, None if i else 3, data) for i in range(5)]
    store.save_history(
        Checkpoint(
            rows=rows,
            names=[(AGENT, 1, weird), (STATUS, 1, "failed")],
            upserts=[("c\udc81", (weird, "ringing", T0, None, None, T0 + 30))],
            resume='{"v":1}',
            prune_before=T0 + 30,  # the first row goes
        )
    )
    assert list(store.history_rows(0, math.inf)) == rows[1:]
    assert list(store.history_rows(T0 + 60, T0 + 90)) == rows[2:4]
    assert sorted(store.history_names()) == [(AGENT, 1, weird), (STATUS, 1, "failed")]
    assert store.load_saved() == Saved(
        '{"v":1}', {"c\udc81": (weird, "ringing", T0, None, None, T0 + 30)}
    )
    store.save_history(
        Checkpoint(
            rows=[],
            names=[(AGENT, 1, "ignored: the code is taken")],
            upserts=[("c2", ("a", "failed", T0, "failed", 7, 0.0))],
            deletes=["c\udc81"],
            resume="{}",
        )
    )
    store.close()
    store = open_store()
    assert store.load_saved() == Saved("{}", {"c2": ("a", "failed", T0, "failed", 7, 0.0)})
    assert (AGENT, 1, weird) in store.history_names()
    store.save_history(Checkpoint(rows=[], names=[], replace_calls=True, resume="{}"))
    assert store.load_saved() == Saved("{}", {})
    assert store.history_size()[0] == 4
    store.close()


def test_a_failed_checkpoint_writes_nothing(open_store: Callable[[], SqlStore]) -> None:
    store = open_store()
    good = HistoryRow(T0, 15.0, 0, 0, None, b"")
    bad = HistoryRow(T0, 15.0, 0, 0, None, None)  # type: ignore[arg-type]  # NOT NULL
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
        store.save_history(Checkpoint(rows=[good, bad], names=[(AGENT, 1, "a")], resume="{}"))
    assert list(store.history_rows(0, math.inf)) == [] and store.history_names() == []
    assert store.load_saved() is None
    store.close()


def test_rows_are_read_in_batches_in_the_order_they_were_written(
    open_store: Callable[[], SqlStore],
) -> None:
    store = open_store()
    rows = [HistoryRow(T0 + i // 2, 15.0, 0, 0, None, bytes([i % 256])) for i in range(700)]
    store.save_history(Checkpoint(rows=rows, names=[], resume="{}"))
    assert list(store.history_rows(0, math.inf)) == rows  # two rows share each ``at``
    assert list(store.history_rows(T0 + 100, T0 + 100)) == rows[200:202]
    store.close()


# ---- the daemon's recording, against the simulator's ground truth ------------------------------
def settings_for(url: str, tmp: Path, **extra: object) -> Settings:
    overrides = {
        "dialnexa.base_url": url,
        "dialnexa.api_key": KEY,
        "metrics.listen": "127.0.0.1:0",
        "state.path": str(tmp / "state.sqlite3"),
        **extra,
    }
    return load_settings(None, overrides=overrides, environ={})


def snapshot(w: Windows) -> tuple[list[tuple[int, str, int, int]], list[int]]:
    return sorted(w.content()), w.checksum()


class Run:
    """A daemon on the simulator (fake clock), with what its windows held after each cycle."""

    def __init__(self, sim: Simulator, clock: FakeClock, app: App) -> None:
        self.sim, self.clock, self.app = sim, clock, app
        self.after: dict[float, tuple[list[tuple[int, str, int, int]], list[int]]] = {}
        self.horizon: int | None = None

    def cycle(self, advance: float = 30.0) -> None:
        self.clock.advance(advance)
        report = self.app.daemon.poll_once()
        assert report.ok
        w = self.app.windows
        if self.horizon is None:
            self.horizon = w.horizon  # the oldest bucket the backfill could count is after it
        self.after[w.now] = snapshot(w)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """45 minutes of steady traffic with status changes, recorded by a live daemon."""
    clock = FakeClock(T0)
    sim = Simulator(clock, Scenario.steady(agents=8, calls_per_day=60_000, seed=5), keys=(KEY,))
    with serve(sim) as server:
        app = build(settings_for(server.url, tmp_path_factory.mktemp("recorded")), clock)
        run = Run(sim, clock, app)
        run.cycle(0)  # the backfill
        moved: list[tuple[str, str]] = []
        for i in range(90):
            if i % 10 == 3:  # calls that settle, are counted, then change (and move)
                now = clock.now()
                a = sim.add_call("agt_00001", now - 20, "failed", ring=5)
                b = sim.add_call("agt_00002", now - 25, "completed", ring=5, talk=15)
                moved += [(a, "busy"), (b, "failed")]  # b moves to an earlier bucket
            if i % 10 == 4:
                for cid, outcome in moved[-2:]:
                    sim.set_final(cid, outcome)
            run.cycle()
        yield run
        app.close()


def truth(
    sim: Simulator, start: float, end: float, bucket: float
) -> Counter[tuple[float, str, str]]:
    """Calls settling in [start, end] by (bucket start time, agent, observed status)."""
    out: Counter[tuple[float, str, str]] = Counter()
    for c in sim.settled_calls(start - 0.0005, end):
        out[(math.floor(c.settled_at / bucket) * bucket, c.agent_id, c.outcome)] += 1
    return out


@pytest.mark.slow
def test_the_history_equals_a_recount_of_the_simulators_ground_truth(recorded: Run) -> None:
    app, w = recorded.app, recorded.app.windows
    assert recorded.horizon is not None
    first = (recorded.horizon + 1) * w.bucket  # the oldest bucket the backfill counted
    end = w.now
    want = truth(recorded.sim, first, end, w.bucket)
    reader = HistoryReader(app.alerts.store)  # type: ignore[union-attr]
    got = Counter({(t, a, s): n for t, a, s, n in reader.counts(first, end + w.bucket)})
    assert got == want
    assert sum(want.values()) > 1000
    # calls moved after they were counted (a -1 in one bucket, a +1 in another): above, they
    # are counted once, at their final status
    assert any(n < 0 for c in reader.cycles(0, math.inf) for *_, n in c.cells)
    # per-agent series over the same span add up to the same calls
    series = reader.agent_series(first, end + w.bucket, 300.0)
    per_agent = Counter()
    for (_, a, s), n in want.items():
        per_agent[(a, s)] += n
    assert {(a, s): sum(v) for a, per in series.items() for s, v in per.items()} == dict(per_agent)


@pytest.mark.slow
def test_a_replay_rebuilds_the_live_windows_at_every_recorded_cycle(recorded: Run) -> None:
    app = recorded.app
    reader = HistoryReader(app.alerts.store)  # type: ignore[union-attr]
    times = sorted(recorded.after)
    replayed = Windows(app.settings.window_seconds, app.settings.status_classes)
    seen = []
    for at in reader.replay(replayed, times[0], times[-1]):
        assert snapshot(replayed) == recorded.after[at], at
        seen.append(at)
    assert seen == times[1:]
    for at in times[::7]:  # and rebuilt from scratch at any of them, as a warm restart does
        rebuilt = Windows(app.settings.window_seconds, app.settings.status_classes)
        reader.rebuild(rebuilt, at)
        assert snapshot(rebuilt) == recorded.after[at], at


# ---- recording through a state store that fails -------------------------------------------------
class Flaky:
    """The real store, refusing ``save_history`` while ``down`` (a disk that is full)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.down = False
        self.refused = 0

    def save_history(self, checkpoint: Checkpoint) -> None:
        if self.down:
            self.refused += 1
            raise sqlite3.OperationalError("database or disk is full")
        self.store.save_history(checkpoint)

    def history_names(self) -> list[tuple[int, int, str]]:
        return self.store.history_names()

    def history_rows(
        self, start: float, end: float, oldest_before: float | None = None
    ) -> Iterator[HistoryRow]:
        return self.store.history_rows(start, end, oldest_before)

    def load_saved(self) -> Saved | None:
        return self.store.load_saved()

    def history_bounds(self) -> tuple[float, float] | None:
        return self.store.history_bounds()


@pytest.mark.parametrize("outage", [5, MAX_UNSAVED + 3])
@pytest.mark.slow
def test_cycles_a_failing_store_refused_are_written_later_or_replaced_by_a_reset(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, outage: int
) -> None:
    clock = FakeClock(T0)
    sim = Simulator(clock, Scenario.steady(agents=4, calls_per_day=20_000, seed=2), keys=(KEY,))
    with serve(sim) as server:
        app = build(settings_for(server.url, tmp_path), clock)
        assert app.recorder is not None and app.alerts is not None
        flaky = Flaky(app.alerts.store)
        app.recorder.store = flaky
        run = Run(sim, clock, app)
        run.cycle(0)
        for i in range(outage + 20):
            flaky.down = 5 <= i < 5 + outage
            with caplog.at_level(logging.WARNING, logger="watchdog.history"):
                run.cycle()
        assert flaky.refused == outage
        reader = HistoryReader(app.alerts.store)
        times = sorted(run.after)
        replayed = Windows(app.settings.window_seconds, app.settings.status_classes)
        at = times[0]
        for at in reader.replay(replayed, times[0], times[-1]):
            assert snapshot(replayed) == run.after[at]
        assert at == times[-1]
        resets = [c.at for c in reader.cycles(0, math.inf) if c.reset is not None]
        if outage > MAX_UNSAVED:  # dropped, then one row holding the windows' whole content
            assert len(resets) == 2 and "dropped them" in caplog.text
        else:  # all written once the store took writes again
            assert len(resets) == 1 and len(list(reader.cycles(0, math.inf))) == len(times)
        assert "cannot write to the state store" in caplog.text
        assert "takes writes again" in caplog.text
        app.close()


@pytest.mark.slow
def test_a_cold_restart_is_recorded_as_a_reset_and_nothing_is_counted_twice(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    sim = Simulator(clock, Scenario.steady(agents=5, calls_per_day=40_000, seed=9), keys=(KEY,))
    with serve(sim) as server:
        s = settings_for(server.url, tmp_path)
        first = Run(sim, clock, build(s, clock))
        first.cycle(0)
        for _ in range(20):
            first.cycle()
        first.app.close()
        cold = s.model_copy(
            update={"history": s.history.model_copy(update={"warm_restart": False})}
        )
        second = Run(sim, clock, build(cold, clock))
        second.cycle(45)  # a backfill: recounts the calls the first run had counted
        for _ in range(20):
            second.cycle()
        w = second.app.windows
        assert first.horizon is not None
        start = (first.horizon + 1) * w.bucket
        reader = HistoryReader(second.app.alerts.store)  # type: ignore[union-attr]
        got = Counter({(t, a, st): n for t, a, st, n in reader.counts(start, w.now + w.bucket)})
        assert got == truth(sim, start, w.now, w.bucket)
        replayed = Windows(s.window_seconds, s.status_classes)
        after = {**first.after, **second.after}
        times = sorted(after)
        for at in reader.replay(replayed, times[0], times[-1]):
            assert snapshot(replayed) == after[at]
        second.app.close()


def test_the_recorder_prunes_past_retention_as_it_goes(open_store: Callable[[], SqlStore]) -> None:
    from dialnexa_watchdog.app import build_tracker
    from dialnexa_watchdog.history import Recorder

    s = load_settings(None, overrides={}, environ={})
    store = open_store()
    w = Windows(s.window_seconds, s.status_classes)
    rec = Recorder(store, w, build_tracker(s, w), retention=600.0)
    for i in range(60):  # 30 minutes of cycles, one call each
        now = T0 + 30 * i
        w.advance(now)
        w.add(f"agt{i % 3}", "failed", now - 1)
        assert rec.record(now)
    times = [r.at for r in store.history_rows(0, math.inf)]
    assert times == [T0 + 30 * i for i in range(60) if T0 + 30 * i >= T0 + 30 * 59 - 600]
    reader = HistoryReader(store)
    rebuilt = Windows(s.window_seconds, s.status_classes)
    reader.rebuild(rebuilt, T0 + 30 * 59)
    for agent in w.agents():  # what the kept rows cover is rebuilt...
        assert rebuilt.counts(agent, "5m") == w.counts(agent, "5m")
    # ...and not the 1h window's pruned part: the totals a warm start checks tell them apart
    assert rebuilt.workspace("1h").calls < w.workspace("1h").calls
    assert rebuilt.checksum() != w.checksum()
    store.close()
