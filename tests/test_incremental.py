"""The incremental evaluation (issue 10 item 4) decides exactly what the full one decides.

Random call sequences (added, moved to another status, late, early) and time steps (within
a bucket, across buckets, past every window) go through real ``Windows``; at every step the
full ``rules.evaluate`` and ``incremental.Incremental`` each step their own previous states,
and their states, transitions and covered pairs must be equal, field for field.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dialnexa_watchdog.alerts.compile import compile_rules
from dialnexa_watchdog.alerts.detector import Baseline, Detector
from dialnexa_watchdog.alerts.incremental import Incremental
from dialnexa_watchdog.alerts.rules import _reevaluated, evaluate
from dialnexa_watchdog.alerts.state import AlertState, Evaluation, Limits, Rule, StaleRule, State
from dialnexa_watchdog.config import RuleSettings
from dialnexa_watchdog.model import PollStatus, StatusClasses
from dialnexa_watchdog.windows import Windows
from hypothesis import given, settings
from hypothesis import strategies as st

WINDOWS = {"1m": 60.0, "3m": 180.0, "10m": 600.0}  # 3 s buckets
STATUSES = ["completed", "failed", "busy", "no_answer", "cancelled", "weird"]
AGENTS = [f"a{i}" for i in range(6)]
T0 = 1_750_000_000.0
CLASSES = StatusClasses()


def _rules(draw: Any) -> list[Rule]:
    """A rule set with every knob the state machine has, thresholds drawn."""
    t = draw(st.floats(0.05, 0.8))
    out = [
        Rule(
            "failed-1m",
            "failed",
            "1m",
            Limits(
                t,
                t * draw(st.sampled_from([1.0, 0.7])),
                draw(st.integers(0, 4)),
                draw(st.sampled_from([0.0, 6.0, 40.0])),
            ),
            severity="critical",
            confidence=draw(st.sampled_from([None, 0.8])),
            confirm_window=draw(st.sampled_from([None, "10m"])),
            overrides={"a2": Limits(t / 2, t / 3, 1, 0.0)},
        ),
        Rule(
            "busy-3m",
            "busy",
            "3m",
            Limits(draw(st.floats(0.05, 0.8)), 0.04, draw(st.integers(1, 5)), 0.0),
            exclude=frozenset({"a5"}),
        ),
        Rule(
            "noanswer-10m",
            "no_answer",
            "10m",
            Limits(0.2, 0.1, 2, draw(st.sampled_from([0.0, 20.0]))),
            agents=frozenset({"a0", "a1", "a3", "a4"}),
            confirm_window="1m",
        ),
        Rule(
            "workspace-failed",
            "failed",
            "3m",
            Limits(0.3, 0.2, 3, 0.0),
            scope="workspace",
        ),
    ]
    spec = {"name": "failed-seq", "outcome": "failed", "window": "3m", "detector": "sequential",
            "threshold": "3x", "clear_below": "1.5x", "baseline": 0.1, "min_calls": 1,
            "false_alarm": "1d"}  # fmt: skip
    out += compile_rules([RuleSettings.model_validate(spec)], WINDOWS)
    return out


# one step: how far time moves, then the calls settled (agent, status, seconds ago) and how
# many earlier ones change status (a call re-read with another outcome)
STEP = st.tuples(
    st.sampled_from([0.0, 1.0, 2.5, 3.0, 7.0, 30.0, 61.0, 200.0, 700.0]),
    st.lists(
        st.tuples(st.sampled_from(AGENTS), st.sampled_from(STATUSES), st.floats(-5, 700)),
        max_size=12,
    ),
    st.integers(0, 3),
)


def _same(full: Evaluation, inc: Evaluation) -> None:
    assert inc.states == full.states
    assert inc.covered == full.covered
    assert [(t.key, t.old, t.new, t.alert) for t in inc.transitions] == [
        (t.key, t.old, t.new, t.alert) for t in full.transitions
    ]


@settings(max_examples=250, deadline=None)
@given(data=st.data(), steps=st.lists(STEP, min_size=1, max_size=25))
def test_incremental_decides_what_the_full_evaluation_decides(
    data: st.DataObject, steps: list[tuple[float, list[tuple[str, str, float]], int]]
) -> None:
    rules = _rules(data.draw)
    w = Windows(WINDOWS, CLASSES)
    detector = Detector(rules, CLASSES.denominator, CLASSES.outcomes)
    inc = Incremental()
    now = T0
    w.advance(now)
    added: list[tuple[str, str, int]] = []  # (agent, status, bucket) of counted calls
    full_states: dict[tuple[str, str], AlertState] = {}
    inc_states: dict[tuple[str, str], AlertState] = {}
    stale = data.draw(st.sampled_from([None, StaleRule(90.0)]))
    k = 0
    for dt, calls, moves in steps:
        now += dt
        w.advance(now)
        cells = []
        for agent, status, ago in calls:
            bucket = w.add(agent, status, now - ago)
            if bucket is not None:
                added.append((agent, status, bucket))
                k += 1
                cells.append((k, agent, w.counted_as(status), 1))
        for i in range(min(moves, len(added))):
            j = (i * 7 + len(cells)) % len(added)
            agent, status, bucket = added[j]
            w.remove(agent, status, bucket)  # expired: a no-op
            if i % 2:  # forgotten (e.g. a call deleted)
                del added[j]
                continue
            new = "failed" if status != "failed" else "completed"  # re-read: another outcome
            added[j] = (agent, new, bucket)
            if bucket > w.horizon:
                w.apply(agent, w.slot(new), bucket, 1)
        detector.step(cells, now, lambda r, a: Baseline(0.1), lambda a: 0.01)
        poll = PollStatus(started_at=T0, last_success=now - (dt if dt > 100 else 0))
        full = evaluate(rules, full_states, w, poll, now, stale, detector)
        got = inc.evaluate(rules, inc_states, w, poll, now, stale, detector)
        _same(full, got)
        full_states, inc_states = full.states, got.states
    assert inc.full == 1  # only the first evaluation stepped every agent


def test_the_first_evaluation_and_one_after_a_reset_are_full() -> None:
    rules = [Rule("r", "failed", "1m", Limits(0.3, 0.3, 1, 0.0))]
    w = Windows(WINDOWS, CLASSES)
    w.advance(T0)
    inc = Incremental()
    poll = PollStatus(started_at=T0, last_success=T0)
    # states that no evaluation of this object made: the first one must step them all
    loaded = {
        ("r", "a0"): AlertState(
            "r",
            "a0",
            "warning",
            State.FIRING,
            T0 - 60,
            T0 - 60,
            fired_at=T0 - 60,
            rate=0.9,
            calls=10,
            hits=9,
            threshold=0.3,
            clear_below=0.3,
            peak_rate=0.9,
        ),
    }
    w.add("a0", "completed", T0)
    ev = inc.evaluate(rules, loaded, w, poll, T0)
    _same(evaluate(rules, loaded, w, poll, T0), ev)
    assert ev.states[("r", "a0")].state is State.RESOLVED
    assert (inc.full, inc.partial) == (1, 0)
    ev2 = inc.evaluate(rules, ev.states, w, poll, T0 + 30)
    assert (inc.full, inc.partial) == (1, 1)
    inc.reset()
    inc.evaluate(rules, ev2.states, w, poll, T0 + 60)
    assert (inc.full, inc.partial) == (2, 1)
    other = Windows(WINDOWS, CLASSES)  # another view: its changes say nothing of this one
    other.advance(T0 + 90)
    other.take_changes()
    inc.evaluate(rules, ev2.states, other, poll, T0 + 90)
    assert (inc.full, inc.partial) == (3, 1)
    inc.evaluate([*rules, Rule("s", "busy", "1m", Limits(0.3, 0.3, 1, 0.0))], {}, other, poll,
                 T0 + 120)  # fmt: skip
    assert (inc.full, inc.partial) == (4, 1)  # another rule set


def test_a_firing_state_whose_counts_did_not_move_only_has_its_evaluation_time_moved() -> None:
    rules = [Rule("r", "failed", "10m", Limits(0.3, 0.3, 1, 0.0))]
    w = Windows(WINDOWS, CLASSES)
    w.advance(T0)
    for agent in AGENTS:
        w.add(agent, "failed", T0)
    inc = Incremental()
    poll = PollStatus(started_at=T0, last_success=T0)
    first = inc.evaluate(rules, {}, w, poll, T0)
    assert len(first.states) == len(AGENTS)
    w.add("a1", "completed", T0 + 1)  # one agent moves
    second = inc.evaluate(rules, first.states, w, poll, T0 + 2)
    _same(evaluate(rules, first.states, w, poll, T0 + 2), second)
    for key, before in first.states.items():
        after = second.states[key]
        assert after.evaluated_at == T0 + 2
        if key[1] != "a1":
            assert after == AlertState(**{**_fields(before), "evaluated_at": T0 + 2})
    assert second.states[("r", "a1")].calls == 2


def _fields(s: AlertState) -> dict[str, Any]:
    return {f: getattr(s, f) for f in s.__slots__}  # type: ignore[attr-defined]


def test_windows_tell_the_changes_per_window() -> None:
    w = Windows(WINDOWS, CLASSES)
    w.advance(T0)
    assert w.take_changes() is None  # the first answer: unknown (tracking starts)
    w.add("a", "failed", T0)
    assert w.take_changes() == {"1m": {"a"}, "3m": {"a"}, "10m": {"a"}}
    assert w.take_changes() == {"1m": set(), "3m": set(), "10m": set()}
    w.advance(T0 + 61)  # a's bucket left the 1m window only
    assert w.take_changes() == {"1m": {"a"}, "3m": set(), "10m": set()}
    w.advance(T0 + 700)  # ... then the others
    assert w.take_changes() == {"1m": set(), "3m": {"a"}, "10m": {"a"}}
    w.apply("b", w.slot("busy"), w.horizon + 1, 1)
    w.apply_many([("c", w.slot("busy"), w.horizon + 1, 1)])
    w.clear()
    assert w.take_changes() == {label: {"b", "c"} for label in WINDOWS}


def test_a_confirm_window_that_moved_alone_is_stepped() -> None:
    """A rule's own window did not move, its confirm window did: the FIRE verdict it withheld
    before is given now (a's old calls leave the 10m window; b's calm ones leave the 1m)."""
    rules = [
        Rule("long-confirms", "failed", "1m", Limits(0.5, 0.5, 1, 0.0), confirm_window="10m"),
        Rule("short-confirms", "failed", "10m", Limits(0.5, 0.5, 1, 0.0), confirm_window="1m"),
    ]
    w = Windows(WINDOWS, CLASSES)
    w.advance(T0)
    inc = Incremental()
    poll = PollStatus(started_at=T0, last_success=T0)
    for _ in range(3):
        w.add("a", "completed", T0)
    states: dict[tuple[str, str], AlertState] = {}
    full_states: dict[tuple[str, str], AlertState] = {}
    a = [(560, "failed")]
    b = [(100, "failed"), (110, "failed"), (120, "failed"), (540, "completed"),
         (541, "completed"), (590, "failed")]  # fmt: skip
    for t in (560, 590, 603):
        w.advance(T0 + t)
        for agent, calls in (("a", a), ("b", b)):
            for at, status in calls:
                if t - 30 < at <= t:
                    w.add(agent, status, T0 + at)
        full = evaluate(rules, full_states, w, poll, T0 + t)
        got = inc.evaluate(rules, states, w, poll, T0 + t)
        _same(full, got)
        if t < 603:
            assert got.states == {}
        states, full_states = got.states, full.states
    firing = {k for k, s in states.items() if s.state is State.FIRING}
    assert {("long-confirms", "a"), ("short-confirms", "b")} <= firing
    assert (inc.full, inc.partial) == (1, 2)


def test_a_reevaluated_state_is_dataclasses_replace_with_the_new_time() -> None:
    """The slot-by-slot copy of a carried state leaves out no field and sets only one."""
    base = AlertState("r", "a", "critical", State.FIRING, 1.0, 2.0)
    for i, f in enumerate(dataclasses.fields(AlertState)):
        value: Any = State.PENDING if f.name == "state" else f"v{i}"
        st = dataclasses.replace(base, **{f.name: value})
        got = _reevaluated(st, 99.0)
        assert got == dataclasses.replace(st, evaluated_at=99.0)
        assert type(got) is AlertState and hash(got) == hash(dataclasses.replace(got))
