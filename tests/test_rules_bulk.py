"""Rule evaluation over real Windows: the bulk candidate filter changes no state or transition."""

from __future__ import annotations

from dialnexa_watchdog.alerts.rules import evaluate
from dialnexa_watchdog.alerts.state import Limits, Rule
from dialnexa_watchdog.model import PollStatus, StatusClasses
from dialnexa_watchdog.windows import Windows
from hypothesis import given, settings
from hypothesis import strategies as st

STATUSES = ["completed", "failed", "busy", "no_answer", "cancelled"]


class NoBulk:
    """The same counts without ``candidates``: evaluate falls back to every agent."""

    def __init__(self, w: Windows) -> None:
        self.w = w

    def agents(self) -> list[str]:
        return self.w.agents()

    def window_labels(self) -> list[str]:
        return self.w.window_labels()

    def counts(self, agent_id: str, window: str):  # type: ignore[no-untyped-def]
        return self.w.counts(agent_id, window)

    def workspace(self, window: str):  # type: ignore[no-untyped-def]
        return self.w.workspace(window)

    def series(self, agent_id, outcome, window, points):  # type: ignore[no-untyped-def]
        return self.w.series(agent_id, outcome, window, points)


@settings(max_examples=60, deadline=None)
@given(
    calls=st.lists(
        st.tuples(st.integers(0, 7), st.sampled_from(STATUSES), st.floats(0, 290)), max_size=120
    ),
    threshold=st.floats(0.05, 0.9),
    min_calls=st.integers(0, 6),
    confidence=st.sampled_from([None, 0.9]),
    override=st.floats(0.01, 0.95),
    rounds=st.integers(1, 3),
)
def test_bulk_filter_is_equivalent(
    calls: list[tuple[int, str, float]],
    threshold: float,
    min_calls: int,
    confidence: float | None,
    override: float,
    rounds: int,
) -> None:
    w = Windows({"5m": 300.0}, StatusClasses())
    now = 1_000_000.0
    w.advance(now)
    limits = Limits(threshold, threshold * 0.8, min_calls, 0.0)
    rule = Rule(
        "r",
        "failed",
        "5m",
        limits,
        confidence=confidence,
        overrides={"a3": Limits(override, override * 0.8, min_calls, 0.0)},
    )
    poll = PollStatus(started_at=now, last_success=now, backfilled=True)
    fast_states: dict = {}  # type: ignore[type-arg]
    slow_states: dict = {}  # type: ignore[type-arg]
    for r in range(rounds):
        for agent, status, ago in calls[r::rounds]:
            w.add(f"a{agent}", status, now - ago)
        fast = evaluate([rule], fast_states, w, poll, now)
        slow = evaluate([rule], slow_states, NoBulk(w), poll, now)
        assert fast.states == slow.states
        assert [(t.key, t.old, t.new) for t in fast.transitions] == [
            (t.key, t.old, t.new) for t in slow.transitions
        ]
        fast_states, slow_states = fast.states, slow.states
        now += 40
        w.advance(now)
