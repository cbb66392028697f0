"""The pure evaluator: no I/O, ``now`` injected, counts from an in-memory view."""

from __future__ import annotations

from typing import Any

import pytest
from dialnexa_watchdog.alerts.compile import compile_rules
from dialnexa_watchdog.alerts.rules import evaluate, needs_notify, wilson_interval
from dialnexa_watchdog.alerts.state import (
    NO_DATA,
    STALE_RULE,
    AlertState,
    Evaluation,
    Rule,
    Silence,
    StaleRule,
    State,
    is_silenced,
)
from dialnexa_watchdog.config import RuleSettings
from dialnexa_watchdog.model import PollStatus
from fakeview import FakeView
from hypothesis import given
from hypothesis import strategies as st

WINDOWS = {"5m": 300.0, "15m": 900.0, "1h": 3600.0}
T0 = 1_750_000_000.0
OK_POLL = PollStatus(started_at=T0 - 60, last_success=T0 - 1)


def rules(**kw: Any) -> list[Rule]:
    spec: dict[str, Any] = {
        "name": "failed-rate",
        "outcome": "failed",
        "window": "15m",
        "threshold": 0.25,
        "min_calls": 20,
    }
    spec.update(kw)
    return compile_rules([RuleSettings.model_validate(spec)], WINDOWS)


class Run:
    """Evaluate repeatedly, carrying states forward like the daemon does."""

    def __init__(self, rule_list: list[Rule], stale: StaleRule | None = None) -> None:
        self.rules = rule_list
        self.stale = stale
        self.states: dict[tuple[str, str], AlertState] = {}
        self.view = FakeView()
        self.fired: list[tuple[str, str]] = []
        self.resolved: list[tuple[str, str]] = []

    def at(self, now: float, poll: PollStatus = OK_POLL) -> Evaluation:
        ev = evaluate(self.rules, self.states, self.view, poll, now, self.stale)
        self.states = ev.states
        for t in ev.transitions:
            if t.new is State.FIRING:
                self.fired.append(t.key)
            if t.new is State.RESOLVED:
                self.resolved.append(t.key)
        return ev

    def state(self, agent: str = "a1", rule: str = "failed-rate") -> State:
        s = self.states.get((rule, agent))
        return s.state if s else State.INACTIVE


def test_threshold_crossing_fires_at_threshold_not_below() -> None:
    r = Run(rules())
    r.view.rate("a1", 0.24)
    r.at(T0)
    assert r.state() is State.INACTIVE
    r.view.rate("a1", 0.25)  # >= threshold fires
    ev = r.at(T0 + 30)
    assert r.state() is State.FIRING
    [t] = ev.transitions
    assert (t.old, t.new) == (State.INACTIVE, State.FIRING)
    assert t.alert.fired_at == T0 + 30 and t.alert.rate == pytest.approx(0.25)


def test_hysteresis_rate_oscillating_between_clear_below_and_threshold_fires_once() -> None:
    r = Run(rules(clear_below=0.20))
    now = T0
    for i in range(40):
        r.view.rate("a1", 0.26 if i % 2 == 0 else 0.21)
        r.at(now)
        now += 30
    assert r.fired == [("failed-rate", "a1")]
    assert r.resolved == []
    assert r.state() is State.FIRING
    r.view.rate("a1", 0.19)
    r.at(now)
    assert r.resolved == [("failed-rate", "a1")]


def test_without_clear_below_it_resolves_just_under_the_threshold() -> None:
    r = Run(rules())
    r.view.rate("a1", 0.30)
    r.at(T0)
    r.view.rate("a1", 0.24)
    r.at(T0 + 30)
    assert r.state() is State.RESOLVED


def test_resolved_lasts_one_evaluation_and_keeps_peak_and_resolution_rate() -> None:
    r = Run(rules(clear_below=0.2))
    for i, rate in enumerate([0.3, 0.5, 0.4, 0.1]):
        r.view.rate("a1", rate)
        r.at(T0 + 30 * i)
    s = r.states[("failed-rate", "a1")]
    assert s.state is State.RESOLVED
    assert s.peak_rate == pytest.approx(0.5)
    assert s.resolved_rate == pytest.approx(0.1)  # the rate at resolution, not the last firing
    assert s.fired_at == T0 and s.resolved_at == T0 + 90
    r.at(T0 + 120)
    assert ("failed-rate", "a1") not in r.states  # inactive again


def test_min_calls_no_verdict_leaves_state_unchanged() -> None:
    r = Run(rules(min_calls=20))
    r.view.set("a1", 19, failed=19)  # 100% but too few calls
    r.at(T0)
    assert r.state() is State.INACTIVE
    r.view.set("a1", 20, failed=10)
    r.at(T0 + 30)
    assert r.state() is State.FIRING
    r.view.set("a1", 5, failed=0)  # 0% but too few calls: still firing
    r.at(T0 + 60)
    assert r.state() is State.FIRING
    r.view.clear("a1")  # no calls at all: the window emptied, resolved as "no data"
    r.at(T0 + 90)
    assert r.state() is State.RESOLVED
    assert r.states[("failed-rate", "a1")].note == NO_DATA
    r.at(T0 + 120)
    assert r.state() is State.INACTIVE


def test_pending_agent_that_goes_silent_drops_back_to_inactive() -> None:
    r = Run(rules(min_calls=20, **{"for": "2m"}))
    r.view.set("a1", 20, failed=10)
    r.at(T0)
    assert r.state() is State.PENDING
    r.view.clear("a1")
    r.at(T0 + 30)
    assert r.state() is State.INACTIVE


@pytest.mark.parametrize(
    ("hits", "n", "low", "high"),
    [
        # Newcombe (1998), Statistics in Medicine 17:857-872, Table I, method 3 (Wilson score)
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
        # the examples
        (3, 5, 0.2307, 0.8824),
        (30, 50, 0.4618, 0.7239),
    ],
)
def test_wilson_interval_known_values(hits: int, n: int, low: float, high: float) -> None:
    lo, hi = wilson_interval(hits, n, 0.95)
    assert lo == pytest.approx(low, abs=5e-5)
    assert hi == pytest.approx(high, abs=5e-5)


@given(st.integers(0, 500), st.integers(1, 500), st.floats(0.5, 0.999))
def test_wilson_interval_contains_the_rate(hits: int, n: int, conf: float) -> None:
    hits = min(hits, n)
    lo, hi = wilson_interval(hits, n, conf)
    assert 0.0 <= lo <= hits / n <= hi <= 1.0


def test_confidence_3_of_5_does_not_fire_30_of_50_does() -> None:
    r = Run(rules(threshold=0.4, min_calls=1, confidence=0.95))
    r.view.set("a1", 5, failed=3)  # 60%, lower bound 23% < 40%
    r.at(T0)
    assert r.state() is State.INACTIVE
    r.view.set("a1", 50, failed=30)  # 60%, lower bound 46% >= 40%
    r.at(T0 + 30)
    assert r.state() is State.FIRING
    assert r.states[("failed-rate", "a1")].bound == pytest.approx(0.4618, abs=1e-4)


def test_confidence_resolves_only_when_upper_bound_is_below_clear_below() -> None:
    r = Run(rules(threshold=0.4, clear_below=0.3, min_calls=1, confidence=0.95))
    r.view.set("a1", 50, failed=30)
    r.at(T0)
    r.view.set("a1", 10, failed=1)  # 10%, but upper bound 40% >= 30%: holds
    r.at(T0 + 30)
    assert r.state() is State.FIRING
    r.view.set("a1", 100, failed=10)  # 10%, upper bound 17% < 30%
    r.at(T0 + 60)
    assert r.state() is State.RESOLVED


def test_for_goes_through_pending() -> None:
    r = Run(rules(**{"for": "2m"}))
    r.view.rate("a1", 0.5)
    ev = r.at(T0)
    assert r.state() is State.PENDING
    assert [(t.old, t.new) for t in ev.transitions] == [(State.INACTIVE, State.PENDING)]
    r.at(T0 + 60)
    assert r.state() is State.PENDING
    r.at(T0 + 119)
    assert r.state() is State.PENDING
    ev = r.at(T0 + 120)
    assert r.state() is State.FIRING
    assert r.states[("failed-rate", "a1")].fired_at == T0 + 120
    assert r.states[("failed-rate", "a1")].pending_at == T0


def test_pending_drops_back_when_the_rate_clears() -> None:
    r = Run(rules(**{"for": "2m"}))
    r.view.rate("a1", 0.5)
    r.at(T0)
    r.view.rate("a1", 0.1)
    r.at(T0 + 60)
    assert r.state() is State.INACTIVE
    r.view.rate("a1", 0.5)
    r.at(T0 + 120)  # the clock starts again
    assert r.state() is State.PENDING
    r.at(T0 + 200)
    assert r.state() is State.PENDING
    r.at(T0 + 240)
    assert r.state() is State.FIRING


def test_confirm_window_must_also_be_over_threshold() -> None:
    r = Run(rules(window="5m", confirm_window="1h"))
    r.view.set("a1", 100, window="5m", failed=50)
    r.view.set("a1", 1000, window="1h", failed=100)  # 10%
    r.view.set("a1", 100, window="15m", failed=50)
    r.at(T0)
    assert r.state() is State.INACTIVE
    r.view.set("a1", 1000, window="1h", failed=300)  # 30%
    r.at(T0 + 30)
    assert r.state() is State.FIRING


def test_overrides_per_agent() -> None:
    r = Run(rules(overrides={"a2": {"threshold": 0.4, "min_calls": 5}}))
    r.view.rate("a1", 0.3)
    r.view.rate("a2", 0.3)
    r.view.set("a3", 10, failed=9)  # under the rule's min_calls
    r.at(T0)
    assert r.state("a1") is State.FIRING
    assert r.state("a2") is State.INACTIVE
    assert r.state("a3") is State.INACTIVE
    r.view.set("a2", 6, failed=3)  # 50% >= 40%, 6 calls >= 5
    r.at(T0 + 30)
    assert r.state("a2") is State.FIRING
    assert r.states[("failed-rate", "a2")].threshold == 0.4


def test_override_threshold_carries_its_own_clear_below_by_default() -> None:
    [rule] = rules(overrides={"a1": {"threshold": 0.4}})
    assert rule.limits_for("a1").clear_below == 0.4
    assert rule.limits_for("other").clear_below == 0.25


def test_agents_and_exclude() -> None:
    r = Run(rules(agents=["a1", "a2"], exclude=["a2"]))
    for a in ("a1", "a2", "a3"):
        r.view.rate(a, 0.9)
    ev = r.at(T0)
    assert r.state("a1") is State.FIRING
    assert r.state("a2") is State.INACTIVE
    assert r.state("a3") is State.INACTIVE
    assert ev.covered["failed-rate"] == ("a1",)


def test_workspace_scope_uses_all_agents_together() -> None:
    r = Run(rules(name="workspace-failed", scope="workspace"))
    # each agent alone is under min_calls; together they are 40 calls at 50%
    for i in range(4):
        r.view.set(f"a{i}", 10, failed=5)
    r.at(T0)
    assert r.state("*", "workspace-failed") is State.FIRING
    assert ("workspace-failed", "a0") not in r.states


def test_stale_fires_after_stale_after_with_last_error_and_resolves() -> None:
    r = Run([], stale=StaleRule(after=300))
    started = PollStatus(started_at=T0, last_success=None, last_error="timeout")
    r.at(T0 + 299, started)
    assert r.state("*", STALE_RULE) is State.INACTIVE
    failing = PollStatus(started_at=T0, last_success=T0 + 10, last_error="403: forbidden")
    r.at(T0 + 309, failing)
    assert r.state("*", STALE_RULE) is State.INACTIVE
    r.at(T0 + 310, failing)
    s = r.states[(STALE_RULE, "*")]
    assert s.state is State.FIRING
    assert s.last_error == "403: forbidden"
    assert s.severity == "critical"
    assert (s.age, s.stale_after, s.rate) == (300, 300, None)  # an age, not a rate
    ok = PollStatus(started_at=T0, last_success=T0 + 400)
    r.at(T0 + 401, ok)
    assert r.state("*", STALE_RULE) is State.RESOLVED
    assert r.resolved == [(STALE_RULE, "*")]


def test_stale_off_with_zero() -> None:
    r = Run([], stale=StaleRule(after=0))
    ev = r.at(T0 + 10_000, PollStatus(started_at=T0))
    assert ev.states == {} and STALE_RULE not in ev.covered


def test_removed_rule_resolves_its_firing_alerts() -> None:
    r = Run(rules())
    r.view.rate("a1", 0.9)
    r.at(T0)
    r.rules = []
    r.at(T0 + 30)
    s = r.states[("failed-rate", "a1")]
    assert s.state is State.RESOLVED and s.note and s.resolved_rate is None
    r.at(T0 + 60)
    assert r.states == {}


def test_evaluate_is_pure_same_inputs_same_outputs() -> None:
    view = FakeView()
    view.rate("a1", 0.5)
    rl = rules(**{"for": "1m"})
    one = evaluate(rl, {}, view, OK_POLL, T0, StaleRule(300))
    two = evaluate(rl, {}, view, OK_POLL, T0, StaleRule(300))
    assert one == two


def test_needs_notify_repeat_interval() -> None:
    view = FakeView()
    view.rate("a1", 0.5)
    ev = evaluate(rules(), {}, view, OK_POLL, T0)
    firing = ev.states[("failed-rate", "a1")]
    assert needs_notify(firing, None, 3600, T0)
    assert not needs_notify(firing, T0, 3600, T0 + 3599)
    assert needs_notify(firing, T0, 3600, T0 + 3600)
    assert not needs_notify(firing, T0, 0, T0 + 10**6)  # 0: never repeat


def test_silence_matching() -> None:
    s = Silence(1, "a1", "failed-rate", T0, T0 + 60)
    assert is_silenced([s], "failed-rate", "a1", T0 + 1)
    assert not is_silenced([s], "busy-rate", "a1", T0 + 1)
    assert not is_silenced([s], "failed-rate", "a2", T0 + 1)
    assert not is_silenced([s], "failed-rate", "a1", T0 + 60)
    every = Silence(2, "a1", None, T0, T0 + 60)
    assert is_silenced([every], "busy-rate", "a1", T0)
