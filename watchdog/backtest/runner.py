"""Putting a backtest together from the settings: the rule sets, the planner policy, the
windows, a source of cycles, and the report. The composition root of ``backtest`` (the CLI
reads files and prints; this builds the graph)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..alerts.compile import compile_rules
from ..alerts.incidents import Policy
from ..alerts.state import Rule
from ..config import Settings
from ..config.alerts import RuleSettings
from ..history import HistoryReader, HistoryStore
from ..windows import Windows
from . import report
from .engine import Cycles, RuleSetRun, Span, WindowRules, recorded_cycles, restrict, run
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


def runs_for(
    settings: Settings, sets: Sequence[RuleSet], agents: Iterable[str] | None = None
) -> list[RuleSetRun]:
    only = None if agents is None else list(agents)
    out = []
    for s in sets:
        rules = restrict(compile_rules(s.rules, settings.window_seconds), only)
        out.append(
            RuleSetRun(
                s.name,
                WindowRules(rules),
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
) -> Outcome:
    """Replay ``cycles`` (built on fresh windows) through every rule set. ``names``: agent id
    -> title for the report (default ``slack.agent_names``; the CLI adds the saved agent
    directory beneath them)."""
    windows = new_windows(settings)
    runs = runs_for(settings, sets, agents)
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
