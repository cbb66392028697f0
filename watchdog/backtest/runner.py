"""Putting a backtest together from the settings: the rule sets, the planner policy, the
windows, a source of cycles, and the report. The composition root of ``backtest`` (the CLI
reads files and prints; this builds the graph)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..alerts.compile import compile_rules, evidence_feed
from ..alerts.evidence import EvidenceFeed, Incidents
from ..alerts.incidents import Policy
from ..alerts.rules import evaluate
from ..alerts.state import AlertState, Evaluation, Rule
from ..config import Settings
from ..config.alerts import RuleSettings
from ..history import HistoryReader, HistoryStore
from ..history.replay import Cycle
from ..model import CountsView, PollStatus
from ..windows import Windows
from . import report
from .engine import (
    Cycles,
    Detector,
    Key,
    RuleSetRun,
    Span,
    WindowRules,
    recorded_cycles,
    restrict,
    run,
)
from .series import Series, sample, wanted


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A named rule set: ``config`` (the configured rules) or ``candidate`` (``--rules``)."""

    name: str
    rules: Sequence[RuleSettings]
    file: str | None = None


def policy_for(settings: Settings, rules: Sequence[Rule]) -> Policy:
    """The planner policy the daemon would use (a bot token's threads and edits unless the
    config posts through a webhook)."""
    return Policy(
        can_edit=settings.slack.mode != "webhook",
        group_threshold=settings.slack.group_threshold,
        repeat_interval=settings.slack.repeat_interval,
        groupable=frozenset(r.name for r in rules if r.scope == "agent"),
    )


class SequentialRules:
    """A rule set with ``detector: sequential`` rules, run as ``AlertPipeline`` runs it: each
    cycle's calls into the sequential feed (``EvidenceFeed.feed``: learner, then CUSUMs, in
    the recorded order), then one ``evaluate`` of every rule with the feed's detector (window
    rules beside them read the windows). Before the first cycle the feed reads the recorded
    history before it as a start would (``EvidenceFeed.load``): ``baseline_window`` of counts
    for learned baselines (firing time left out when ``incidents`` are given) and the last day
    of cycles for the evidence."""

    def __init__(
        self,
        rules: Sequence[Rule],
        feed: EvidenceFeed,
        history: HistoryStore | None = None,
        incidents: Incidents | None = None,
    ) -> None:
        self.rules = rules
        self.feed = feed
        self._history = history
        self._incidents = incidents
        self._loaded = False

    def take(self, cycle: Cycle, view: CountsView) -> None:
        if not self._loaded:
            self._loaded = True
            if self._history is not None:
                before = math.nextafter(cycle.at, -math.inf)  # known before the first cycle
                self.feed.load(HistoryReader(self._history), view, before, self._incidents)
        self.feed.feed(cycle, view)

    def __call__(self, prev: Mapping[Key, AlertState], view: CountsView, now: float) -> Evaluation:
        poll = PollStatus(started_at=now, last_success=now, backfilled=True)
        return evaluate(self.rules, prev, view, poll, now, stale=None, detector=self.feed.detector)


def detector_for(
    settings: Settings,
    rules: Sequence[Rule],
    history: HistoryStore | None = None,
    incidents: Incidents | None = None,
) -> Detector:
    """``WindowRules`` unless a rule uses the sequential detector."""
    feed = evidence_feed(settings, rules)
    if feed is None:
        return WindowRules(rules)
    return SequentialRules(rules, feed, history, incidents)


def runs_for(
    settings: Settings,
    sets: Sequence[RuleSet],
    agents: Iterable[str] | None = None,
    history: HistoryStore | None = None,
    incidents: Incidents | None = None,
) -> list[RuleSetRun]:
    only = None if agents is None else list(agents)
    out = []
    for s in sets:
        rules = restrict(compile_rules(s.rules, settings.window_seconds), only)
        out.append(
            RuleSetRun(
                s.name,
                detector_for(settings, rules, history, incidents),
                policy_for(settings, rules),
                dict(settings.slack.agent_names),
            )
        )
    return out


def new_windows(settings: Settings) -> Windows:
    return Windows(settings.window_seconds, settings.status_classes)


@dataclass(frozen=True, slots=True)
class Outcome:
    report: dict[str, Any]
    runs: list[RuleSetRun]
    span: Span


def backtest(
    settings: Settings,
    sets: Sequence[RuleSet],
    cycles: Callable[[Windows], Cycles],
    *,
    source: str,
    agents: Iterable[str] | None = None,
    on_cycle: Callable[[float], None] | None = None,
    names: Mapping[str, str] | None = None,
    history: HistoryStore | None = None,
    incidents: Incidents | None = None,
) -> Outcome:
    """Replay ``cycles`` (built on fresh windows) through every rule set. ``names``: agent id
    -> title for the report (default ``slack.agent_names``; the CLI adds the saved agent
    directory beneath them). ``history``: the recorded history sequential rules learn their
    baselines from (else from the span only); ``incidents``: the recorded alerts, whose firing
    time learning leaves out."""
    windows = new_windows(settings)
    runs = runs_for(settings, sets, agents, history, incidents)
    span = run(cycles(windows), windows, runs, on_cycle)
    if agents is not None:
        span.agents &= set(agents)
    w = report.Window.of(span, settings.poll.interval, source)
    if names is None:
        names = dict(settings.slack.agent_names)
    out = report.to_json([r.log for r in runs], w, {s.name: s.file for s in sets}, names)
    return Outcome(out, runs, span)


def from_history(store: HistoryStore, start: float, end: float) -> Callable[[Windows], Cycles]:
    reader = HistoryReader(store)
    return lambda windows: recorded_cycles(reader, windows, start, end)


def chart_series(
    settings: Settings,
    cycles: Callable[[Windows], Cycles],
    report_json: dict[str, Any],
    limit: int,
    agents: Iterable[str] | None = None,
) -> tuple[dict[str, list[tuple[str, str]]], Series]:
    """The charts' data (a second replay of the same cycles, without the rules): the
    ``limit`` agents with the most incidents, each (window, outcome) that fired for it."""
    chosen = wanted(report_json, limit)
    only = None if agents is None else set(agents)
    if only is not None:
        chosen = {a: p for a, p in chosen.items() if a in only}
    windows = new_windows(settings)
    lines = [(a, w, o) for a, pairs in chosen.items() for w, o in pairs]
    return chosen, sample(cycles(windows), windows, lines)
