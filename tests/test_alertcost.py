"""The alert step's cost (issue 10 item 4): a /metrics render never waits for the alert step.

The poll thread holds the windows lock only while it applies a listing; the alert step
(evaluate, plan, commit) runs after it is released and reads the windows without it (only
the poll thread changes them), and the alert collector reads the pipeline's immutable
``AlertView`` and counters. So a scrape shares no lock with a step: here a real daemon's
step is held inside its store commit, and whole renders complete meanwhile.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from dialnexa_watchdog.alerts.diff import changed_members
from dialnexa_watchdog.alerts.incidents import Book, Incident, Policy, plan, shows_same
from dialnexa_watchdog.alerts.rules import _evolve
from dialnexa_watchdog.alerts.snapshots import Snapshots
from dialnexa_watchdog.alerts.state import AlertState, Evaluation, State, Transition
from dialnexa_watchdog.alerts.store import Changes
from dialnexa_watchdog.alerts.store.sql import SqlStore
from dialnexa_watchdog.app import build
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.config import load_settings
from dialnexa_watchdog.model import StatusClasses
from dialnexa_watchdog.notify import AlertSnapshot
from dialnexa_watchdog.simulator import Scenario, Simulator
from dialnexa_watchdog.windows import Windows
from support import KEY, T0

CLASSES = StatusClasses()
RULES: list[dict[str, Any]] = [
    {"name": "failed-5m", "outcome": "failed", "window": "5m", "threshold": 0.0001,
     "min_calls": 1},
]  # fmt: skip


def _app(tmp_path: Path) -> tuple[Any, FakeClock]:
    clock = FakeClock(T0)
    sim = Simulator(clock, Scenario.steady(agents=6, calls_per_day=60_000, seed=3), keys=(KEY,))
    settings = load_settings(
        None,
        overrides={
            "dialnexa.base_url": "http://sim/v1",
            "dialnexa.api_key": KEY,
            "state.path": str(tmp_path / "state.sqlite3"),
            "poll.interval": "30s",
            "windows": ["5m", "15m"],
            "rules": RULES,
        },
        environ={},
    )
    app = build(settings, clock, transport=httpx.WSGITransport(app=sim), stream=io.StringIO())
    return app, clock


@pytest.mark.slow
def test_a_render_completes_while_the_alert_step_is_held_inside_its_commit(
    tmp_path: Path,
) -> None:
    app, clock = _app(tmp_path)
    wd, alerts = app.daemon, app.alerts
    assert alerts is not None
    try:
        wd.backfill()
        clock.advance(30)
        wd.poll_once()  # a first step: states exist, the render has alert series
        entered, release = threading.Event(), threading.Event()
        commit = alerts.store.commit
        held: list[int] = []

        def held_commit(*a: Any) -> None:
            held.append(1)
            entered.set()
            assert release.wait(30), "the test never released the commit"
            commit(*a)

        alerts.store.commit = held_commit  # type: ignore[method-assign]
        clock.advance(30)
        poller = threading.Thread(target=wd.poll_once, daemon=True)
        poller.start()
        assert entered.wait(30), "the step never reached its commit"
        bodies: list[bytes] = []
        scraper = threading.Thread(target=lambda: bodies.append(wd.metrics.body()))
        scraper.start()
        scraper.join(30)  # a deadlock bound, not a timing: the commit is still held
        rendered = not scraper.is_alive()
        assert not release.is_set()
        release.set()
        poller.join(30)
        assert rendered, "the /metrics render waited for the alert step"
        assert held == [1]
        text = bodies[0].decode()
        assert "dialnexa_alert_firing{" in text  # the alert collector answered from its view
        assert "dialnexa_agent_window_calls{" in text  # and the windows collector
    finally:
        wd.close()


# ---- the planner re-reads only the members that changed --------------------------------


def _firing(agent: str, calls: int, hits: int) -> AlertState:
    return AlertState(
        rule="r", agent_id=agent, severity="critical", state=State.FIRING, since=T0,
        evaluated_at=T0, fired_at=T0, rate=hits / calls, calls=calls, hits=hits,
        threshold=0.3, clear_below=0.3, peak_rate=hits / calls,
    )  # fmt: skip


def test_a_join_re_reads_only_the_joining_member_and_those_whose_numbers_moved() -> None:
    snaps = Snapshots([], lambda a: None, points=4)
    calls: list[str] = []

    def snapshot(st: AlertState, base: AlertSnapshot | None) -> AlertSnapshot:
        calls.append(st.agent_id)
        return snaps.snapshot(st, None, base)

    before = {f"a{i:03}": _firing(f"a{i:03}", 20, 10) for i in range(100)}
    members = {a: snaps.snapshot(st, None) for a, st in before.items()}
    inc = Incident(id="g", rule="r", group=True, opened_at=T0, members=members,
                   last_notified_at=T0)  # fmt: skip
    book = Book({"g": inc}, {("r", a): "g" for a in before})
    now_states = {("r", a): st for a, st in before.items()}
    now_states[("r", "a007")] = _firing("a007", 21, 11)  # one member's numbers moved
    joiner = _firing("z", 10, 9)
    now_states[("r", "z")] = joiner
    ev = Evaluation(
        states=now_states,
        transitions=[Transition(("r", "z"), State.PENDING, State.FIRING, joiner)],
        covered={"r": tuple(a for _, a in now_states)},
    )
    policy = Policy(can_edit=True, group_threshold=5, repeat_interval=0, groupable=frozenset({"r"}))
    p = plan(book, ev, [], T0 + 30, policy, snapshot)
    assert sorted(calls) == ["a007", "z"]  # not the 99 members whose numbers are the same
    after = p.book.incidents["g"]
    assert len(after.members) == 101
    assert after.members["a007"].calls == 21  # the main message shows the moved numbers
    unchanged = [a for a in before if a != "a007"]
    assert all(after.members[a] is members[a] for a in unchanged)
    main = [n for n in p.notices if n.kind == "main"]
    assert len(main) == 1 and len(main[0].alerts) == 101
    assert {n.kind for n in p.notices} == {"main", "joined"}


def test_shows_same_notices_every_number_a_message_shows() -> None:
    snaps = Snapshots([], lambda a: None, points=4)
    st = _firing("a", 20, 10)
    snap = snaps.snapshot(st, None)
    assert shows_same(snap, st)
    for change in ({"calls": 21}, {"hits": 11}, {"rate": 0.6}, {"severity": "warning"},
                   {"peak_rate": 0.9}, {"state": State.RESOLVED}, {"note": "n"}):  # fmt: skip
        assert not shows_same(snap, replace(st, **change)), change


# ---- the store writes only the members that changed (schema 5) --------------------------


def _member(agent: str, calls: int) -> AlertSnapshot:
    return AlertSnapshot("r", agent, "critical", "firing", "failed", "15m", calls=calls)


def test_a_member_delta_writes_only_the_changed_members(
    open_store: Callable[[], SqlStore],
) -> None:
    store = open_store()
    members = {f"a{i}": _member(f"a{i}", 10) for i in range(5)}
    inc = Incident("g", "r", True, T0, members=members, last_notified_at=T0)
    store.commit(T0, Changes(incidents=[inc]))  # new: written whole
    # in memory a1 and a2 changed, and z joined; the delta names a1 and z only
    moved = {**members, "a1": _member("a1", 11), "a2": _member("a2", 12), "z": _member("z", 3)}
    store.commit(
        T0 + 30,
        Changes(incidents=[replace(inc, members=moved)], members={"g": ["a1", "z"]}),
    )
    store.close()
    store = open_store()
    got = store.load_incidents()["g"].members
    assert {a: m.calls for a, m in got.items()} == {
        "a0": 10, "a1": 11, "a2": 10, "a3": 10, "a4": 10, "z": 3,  # a2: not in the delta
    }  # fmt: skip
    assert store.load_incident("g") == store.load_incidents(open_only=False)["g"]
    # written whole again (e.g. after a failed commit): the rows no longer override it
    whole = replace(inc, members={**members, "a1": _member("a1", 20)}, closed_at=T0 + 60)
    store.commit(T0 + 60, Changes(incidents=[whole]))
    assert store.load_incidents() == {}
    assert store.load_incident("g") == whole
    store.purge(T0 + 60 + 8 * 86400)
    assert store.load_incident("g") is None
    store.close()


def test_changed_members_names_only_replaced_snapshots() -> None:
    members = {"a": _member("a", 1), "b": _member("b", 1)}
    old = Incident("g", "r", True, T0, members=members)
    new = replace(old, members={**members, "b": _member("b", 2), "c": _member("c", 1)})
    fresh = Incident("n", "r", False, T0, members={"x": _member("x", 1)})
    assert changed_members({"g": old}, [new, fresh]) == {"g": ["b", "c"]}


def _reference_series(w: Windows, agent: str | None, outcome: str, window: str, points: int) -> Any:
    """The series as computed before (every kept bucket scanned), from the same buckets."""
    wi = w._label_index[window]
    first, last = w._cuts[wi] + 1, w._now_k
    span = max(1, last - first + 1)
    points = max(1, min(points, span))
    hits, denom = [0] * points, [0] * points
    for k, per_agent in w._buckets.items():
        if not first <= k <= last:
            continue
        rows = list(per_agent.values()) if agent is None else [per_agent.get(agent)]
        p = (k - first) * points // span
        for counts in rows:
            if counts is not None:
                hits[p] += sum(counts[i] for i in w._outcomes.get(outcome, []))
                denom[p] += sum(counts[i] for i in w._denom)
    return [h / d if d else None for h, d in zip(hits, denom, strict=True)]


def test_a_short_windows_series_reads_only_its_buckets_among_a_longer_ones() -> None:
    w = Windows({"1m": 60, "10m": 600}, CLASSES)
    w.advance(6_000)
    for t in range(5_410, 6_000, 7):  # calls over the long window: many buckets kept
        w.add("a", "failed" if t % 3 else "completed", t)
        w.add("b", "busy" if t % 2 else "failed", t)
    w.advance(6_020)
    for agent in ("a", "b", None):
        for label, points in (("1m", 2), ("1m", 12), ("10m", 3), ("10m", 40)):
            got = w.series(agent, "failed", label, points)
            assert got == _reference_series(w, agent, "failed", label, points)
            assert any(r is not None for r in got)


def test_evolve_is_dataclasses_replace_for_every_field() -> None:
    st = _firing("a", 20, 10)
    for i, f in enumerate(fields(AlertState)):
        value: Any = State.RESOLVED if f.name == "state" else f"v{i}"
        assert _evolve(st, **{f.name: value}) == replace(st, **{f.name: value})
    assert _evolve(st) == st
    with pytest.raises(KeyError):
        _evolve(st, no_such_field=1)
