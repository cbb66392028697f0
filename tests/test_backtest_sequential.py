"""The backtest runs ``detector: sequential`` rules as the live daemon does: the live daemon
(simulator over HTTP, FakeClock, one poll a minute) through half of the scripted day with a
window rule and a sequential rule with a learned baseline side by side; the backtest of its
recording gives the same incidents in the same cycles for both, and the same notices (the
sequential rule with a fast CUSUM beside its fire CUSUM: ``fast_threshold``). A
backtest that starts inside the recording learns its baselines from the history before it.
The report names each rule's detector (JSON, terminal, HTML summary)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dialnexa_watchdog.alerts.detector import Baseline
from dialnexa_watchdog.alerts.store import Store
from dialnexa_watchdog.app import build
from dialnexa_watchdog.backtest import RuleSet, backtest, from_history
from dialnexa_watchdog.backtest.engine import run
from dialnexa_watchdog.backtest.html import _summary
from dialnexa_watchdog.backtest.report import text
from dialnexa_watchdog.backtest.runner import SequentialRules, new_windows, runs_for
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.config import Settings
from dialnexa_watchdog.simulator import Simulator, serve
from support import KEY, T0
from test_backtest import (
    HOUR,
    INTERVAL,
    RULES,
    Interval,
    episodes,
    live_episodes,
    scripted_day,
    settings_for,
)

SEQ = "failure-seq"
SEQ_RULE: dict[str, Any] = {
    "name": SEQ,
    "outcome": "failed",
    "window": "15m",
    "detector": "sequential",
    "threshold": "3x",
    "clear_below": "1.5x",
    "baseline": "learned",
    "baseline_fallback": 0.08,
    "min_calls": 3,
    "false_alarm": "10y",
    "fast_threshold": 0.5,  # the second CUSUM replays exactly too
}
SPAN = 12 * HOUR  # the hard failure (2-3 h) and the drift (6-12 h)


@dataclass
class SeqDay:
    settings: Settings
    state: Path
    first: float
    last: float
    live: list[Interval]
    notices: Counter[tuple[str, str]]


@pytest.fixture(scope="module")
def seq_day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeqDay]:
    tmp = tmp_path_factory.mktemp("seqday")
    clock = FakeClock(T0)
    sim = Simulator(clock, scripted_day(), keys=(KEY,), rate_limit=None)
    with serve(sim) as server:
        settings = settings_for(server.url, tmp / "state.sqlite3", rules=[RULES[0], SEQ_RULE])
        app = build(settings, clock)
        assert app.alerts is not None and app.alerts.pipeline.evidence is not None
        seen: list[dict[tuple[str, str], Any]] = []
        first = clock.now()
        assert app.daemon.backfill().ok
        seen.append(app.alerts.pipeline.states())
        while clock.now() < T0 + SPAN:
            clock.advance(INTERVAL)
            assert app.daemon.poll_once().ok
            seen.append(app.alerts.pipeline.states())
        notices = Counter((kind, op) for _, _, op, kind, _ in app.alerts.store.outbox())
        last = clock.now()
        app.close()
    yield SeqDay(settings, tmp / "state.sqlite3", first, last, live_episodes(seen), notices)


def run_backtest(day: SeqDay, start: float, with_history: bool = True) -> Any:
    store = Store(day.state)
    try:
        return backtest(
            day.settings,
            [RuleSet("config", day.settings.rules)],
            from_history(store, start, day.last),
            source="recorded",
            history=store if with_history else None,
            incidents=store if with_history else None,
        )
    finally:
        store.close()


@pytest.mark.slow
def test_a_backtest_runs_sequential_rules_as_the_live_daemon_did(seq_day: SeqDay) -> None:
    live = seq_day.live
    seq_live = [e for e in live if e[0] == SEQ]
    # both detectors paged: the hard failure at least, and healthy agents stayed quiet
    assert {e[1] for e in seq_live} >= {"agt_00000"}
    assert {e[1] for e in live if e[0] == "failure-rate"} >= {"agt_00000"}
    assert not {e[1] for e in live} & {"agt_00004", "agt_00005"}
    out = run_backtest(seq_day, seq_day.first)
    assert out.span.cycles == int(SPAN / INTERVAL) + 1
    assert episodes(out.report) == live  # same (rule, agent, fired cycle, resolved cycle)
    log = out.runs[0].log
    assert Counter((kind, op) for _, kind, op in log.notices) == seq_day.notices
    det = out.runs[0].detector
    assert isinstance(det, SequentialRules)
    # the agents learned their own rate over the day (not the fallback)
    sources = {det.feed.baseline(r, "agt_00004").source for r in det.rules if r.sequential}
    assert sources == {"learned"}
    # the report names each rule's detector
    s = out.report["sets"][0]
    assert {r["name"]: r["detector"] for r in s["rules"]} == {
        "failure-rate": "window",
        SEQ: "sequential",
    }
    seq = next(r for r in s["rules"] if r["name"] == SEQ)
    assert seq["threshold_relative"] and seq["baseline"] == "learned"
    assert seq["false_alarm_s"] == pytest.approx(10 * 365 * 86400.0)
    assert seq["fast_threshold"] == 0.5 and not seq["fast_threshold_relative"]
    assert s["by_rule"][SEQ]["detector"] == "sequential"
    assert s["by_rule"][SEQ]["incidents"] == len(seq_live)
    lines = [ln for ln in text(out.report).splitlines() if ln.strip().startswith(SEQ)]
    assert lines and "sequential" in lines[0].split()
    assert "<td class=l>sequential</td>" in "".join(_summary(out.report))


def first_baseline(day: SeqDay, start: float, with_history: bool) -> Baseline:
    """agt_00004's baseline for the sequential rule right after the span's first cycle."""
    store = Store(day.state)
    try:
        windows = new_windows(day.settings)
        sets = [RuleSet("config", day.settings.rules)]
        hist = store if with_history else None
        runs = runs_for(day.settings, sets, None, hist, hist)
        det = runs[0].detector
        assert isinstance(det, SequentialRules)
        rule = next(r for r in det.rules if r.sequential is not None)
        seen: list[Baseline] = []

        def after(_at: float) -> None:
            if not seen:
                seen.append(det.feed.baseline(rule, "agt_00004"))

        run(from_history(store, start, start + 10 * INTERVAL)(windows), windows, runs, after)
    finally:
        store.close()
    return seen[0]


@pytest.mark.slow
def test_a_backtest_inside_the_recording_learns_baselines_from_the_history_before_it(
    seq_day: SeqDay,
) -> None:
    start = seq_day.first + 4 * HOUR  # after the hard failure, before the drift
    # learned at the span's first cycle, from the 4 h recorded before it
    learned = first_baseline(seq_day, start, with_history=True)
    assert learned.source == "learned"
    assert 0.03 < learned.rate < 0.15  # the steady mix fails ~8%
    # without the history the same span starts from the fallback
    bare = first_baseline(seq_day, start, with_history=False)
    assert bare.source.startswith("fallback") and bare.rate == 0.08
    # the live incidents that fired after the first hour of the span are there, same cycles
    out = run_backtest(seq_day, start)
    later = [e for e in seq_day.live if e[0] == SEQ and e[2] >= start + HOUR]
    assert later, "the drift pages in the span"
    got = [e for e in episodes(out.report) if e[0] == SEQ and e[2] >= start + HOUR]
    assert got == later
