"""The replay: recorded cycles (or calls from the API) into ``Windows``, then, per rule set,
the daemon's own detector and incident planner at every cycle. Pure: no store, no network.

A rule set is a ``Detector`` (a pluggable step: ``WindowRules`` runs ``alerts.rules.evaluate``,
the window rules the daemon runs; another detector, e.g. a sequential one, can stand beside
it) plus the planner ``Policy`` (``alerts.incidents.plan``, the same grouping and repeats the
Slack notifier is driven by). ``RuleSetRun.step`` is what ``AlertPipeline._apply`` does after
a poll, minus the store and silences: the same evaluation, the same plan.

``Recorder`` (a ``RuleSetRun``'s log) keeps what the report needs: each alert's firing
episodes (start, end, peak rate, the window's calls at the peak) and the notices by day.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from ..alerts.incidents import Book, Policy, plan
from ..alerts.rules import evaluate
from ..alerts.snapshots import Snapshots
from ..alerts.state import AlertState, Evaluation, Rule, State
from ..history import HistoryReader
from ..history.replay import Cycle, apply_cycle
from ..model import CountsView, PollStatus
from ..notify import Notice
from ..windows import Windows

Key = tuple[str, str]
DAY = 86400.0


class Detector(Protocol):
    """One rule set's decision step: the previous states and the windows at ``now`` in, the
    next evaluation out (the daemon's ``AlertPipeline`` runs the same step after a poll)."""

    @property
    def rules(self) -> Sequence[Rule]: ...

    def take(self, cycle: Cycle, view: CountsView) -> None:
        """One cycle's calls as the live recorder handed them on (``view``: the windows after
        it), before the step at the cycle's time (the sequential rules' evidence)."""
        ...

    def __call__(
        self, prev: Mapping[Key, AlertState], view: CountsView, now: float
    ) -> Evaluation: ...


@dataclass(frozen=True, slots=True)
class WindowRules:
    """The window rules of ``rules:``: ``alerts.rules.evaluate``, the stale rule left out
    (a replay has no polls to go stale)."""

    rules: Sequence[Rule]

    def take(self, cycle: Cycle, view: CountsView) -> None:
        """Window rules read the windows only."""

    def __call__(self, prev: Mapping[Key, AlertState], view: CountsView, now: float) -> Evaluation:
        poll = PollStatus(started_at=now, last_success=now, backfilled=True)
        return evaluate(self.rules, prev, view, poll, now, stale=None)


def restrict(rules: Sequence[Rule], agents: Iterable[str] | None) -> list[Rule]:
    """``rules`` covering only ``agents`` (``--agents``); all of them when None."""
    if agents is None:
        return list(rules)
    only = frozenset(agents)
    out = []
    for r in rules:
        if r.scope == "workspace":
            continue  # a workspace rate is about every agent: not one of a chosen few
        out.append(replace(r, agents=only if r.agents is None else r.agents & only))
    return out


@dataclass(slots=True)
class Episode:
    """One alert's firing episode: from the cycle it fired to the cycle it resolved."""

    rule: str
    agent: str
    start: float
    end: float | None = None  # None: still firing when the span ended
    peak_rate: float | None = None
    calls: int = 0  # calls in the rule's window at the peak rate
    note: str | None = None  # e.g. resolved because the agent's window emptied

    def duration(self, until: float) -> float:
        return (self.end if self.end is not None else until) - self.start


@dataclass(slots=True)
class Log:
    """What one rule set did over the span."""

    name: str
    rules: Sequence[Rule]
    episodes: list[Episode] = field(default_factory=list)
    notices: list[tuple[float, str, str]] = field(default_factory=list)  # (at, kind, op)
    conversations: int = 0  # Slack incidents opened (a group counts once)
    cycles: int = 0


class RuleSetRun:
    """One rule set stepped through the replay: its detector, then the planner."""

    def __init__(
        self,
        name: str,
        detector: Detector,
        policy: Policy,
        names: Mapping[str, str] | None = None,
    ) -> None:
        self.detector = detector
        self.policy = policy
        self.states: dict[Key, AlertState] = {}
        self.book = Book()
        # what a message would show is not needed to count messages: no sparkline (0 points)
        self._snap = Snapshots(detector.rules, dict(names or {}).get, 0).bind(None)
        self._ids = 0
        self._open: dict[Key, Episode] = {}
        self.log = Log(name, detector.rules)

    def _new_id(self, rule: str, label: str, now: float) -> str:
        self._ids += 1
        return f"{rule}/{label}/{int(now)}-{self._ids}"

    def step(self, view: CountsView, now: float) -> Evaluation:
        ev = self.detector(self.states, view, now)
        p = plan(self.book, ev, (), now, self.policy, self._snap, self._new_id)
        self.states = dict(ev.states)
        self.book = p.book
        log = self.log
        log.cycles += 1
        for n in p.notices:
            log.notices.append((n.at, n.kind, n.op))
        log.conversations += sum(1 for n in p.notices if _opens(n))
        for t in ev.transitions:
            if t.new is State.FIRING:
                a = t.alert
                ep = Episode(a.rule, a.agent_id, now, peak_rate=a.rate, calls=a.calls)
                self._open[t.key] = ep
                log.episodes.append(ep)
            elif t.new is State.RESOLVED and t.key in self._open:
                ep = self._open.pop(t.key)
                ep.end = now
                ep.note = t.alert.note
        for key, ep in self._open.items():
            st = ev.states.get(key)
            if (
                st is not None
                and st.rate is not None
                and st.calls
                and (ep.peak_rate is None or st.rate > ep.peak_rate)
            ):
                ep.peak_rate, ep.calls = st.rate, st.calls
        return ev


def _opens(n: Notice) -> bool:
    return n.kind == "main" and n.op == "post"


# ---- sources of cycles ---------------------------------------------------------------------


# A source applies one cycle's calls to the windows and yields the cycle's time, the agents
# whose counts it touched, and the cycle's cells as the live recorder handed them to the
# sequential rules' feed (the first cycle: the windows' whole content, as after a start).
Cycles = Iterable[tuple[float, Iterable[str], Cycle]]


def recorded_cycles(reader: HistoryReader, windows: Windows, start: float, end: float) -> Cycles:
    """The recorded cycles in [start, end], applied to ``windows`` one by one (the first
    one rebuilt from everything recorded before it). Empty when nothing was recorded."""
    return _recorded(reader, windows, start, end)


def _recorded(
    reader: HistoryReader, windows: Windows, start: float, end: float
) -> Iterator[tuple[float, Iterable[str], Cycle]]:
    first: float | None = None
    for cycle in reader.cycles(start, end):
        first = cycle.at
        break
    if first is None:
        return
    reader.rebuild(windows, first)
    yield first, windows.agents(), content_cycle(windows, first)
    for cycle in reader.cycles(math.nextafter(first, math.inf), end):
        apply_cycle(windows, cycle)
        yield cycle.at, _agents_of(cycle), cycle


def content_cycle(windows: Windows, at: float) -> Cycle:
    """The windows' whole content as a reset cycle: what the recorder hands on after a
    start (the sequential feed takes only buckets newer than the ones it was fed)."""
    st = windows.statuses
    cells = [(k, agent, st[slot], n) for k, agent, slot, n in windows.content()]
    return Cycle(at, windows.bucket, windows.horizon, cells)


def _agents_of(cycle: Cycle) -> set[str]:
    return {c[1] for c in cycle.cells}


@dataclass(slots=True)
class Span:
    """What a replay covered."""

    first: float | None = None  # the first and last cycle stepped
    last: float | None = None
    cycles: int = 0
    agents: set[str] = field(default_factory=set)  # agents with calls in the windows


def run(
    cycles: Cycles,
    view: CountsView,
    runs: Sequence[RuleSetRun],
    on_cycle: Callable[[float], None] | None = None,
) -> Span:
    """Step every rule set at every cycle of ``cycles``."""
    span = Span()
    for at, touched, cycle in cycles:
        if span.first is None:
            span.first = at
        span.last = at
        span.cycles += 1
        span.agents.update(touched)
        for r in runs:
            r.detector.take(cycle, view)
            r.step(view, at)
        if on_cycle is not None:
            on_cycle(at)
    return span
