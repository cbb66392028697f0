"""Feeding the sequential detector: the daemon's cycles in, baselines and volumes alongside.

The recorder hands every poll cycle's changes to the windows (``history.Cycle``: the same
cells it records) to ``EvidenceFeed.add``; ``advance`` feeds the cycles received since the
last evaluation to the ``detector.Detector``, right before the rules are evaluated. A
start replays recorded cycles the same way (``attach``), and a backtest can too (``feed``).

An agent's *volume* (calls per second, which turns ``false_alarm`` into a number of calls)
is its calls over the days of history the learner holds (``baselines.Learner.volume``),
else its calls in the longest window over that window's length (at least one call per
window); its *baseline* is the rule's number, else the learned one (``baselines.py``),
else the rule's fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from ..history import HistoryReader, Recorder
from ..history.replay import Cycle
from ..model import CountsView
from .baselines import Learner, intervals_exclude
from .detector import Baseline, Detector
from .incidents import Incident
from .state import Rule

log = logging.getLogger("watchdog.alerts")

REPLAY = 86400.0  # seconds of recorded cycles a start replays into the detector


class Incidents(Protocol):
    def load_incidents(self, open_only: bool = True) -> dict[str, Incident]: ...


def firing_intervals(
    incidents: Iterable[Incident], rules: Iterable[str], now: float
) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(rule, agent) -> [(fired_at, resolved_at or now)] from the incidents' members that
    fired against a learned baseline (one that fired against the fallback is no reason to
    distrust the agent's calls: they are how it learns its own rate)."""
    wanted = set(rules)
    out: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for inc in incidents:
        if inc.rule not in wanted:
            continue
        for agent, snap in inc.members.items():
            if snap.baseline_source != "learned":
                continue
            start = snap.fired_at if snap.fired_at is not None else inc.opened_at
            end = snap.resolved_at if snap.resolved_at is not None else (inc.closed_at or now)
            out.setdefault((inc.rule, agent), []).append((start, end))
    return out


class EvidenceFeed:
    """The sequential rules' evidence and learned baselines, fed cycle by cycle (one per
    alert pipeline)."""

    def __init__(
        self,
        rules: Sequence[Rule],
        denominator: Iterable[str],
        outcomes: Mapping[str, Iterable[str]],
        longest: tuple[str, float],
    ) -> None:
        self.detector = Detector(rules, denominator, outcomes)
        self.learner = Learner(rules, denominator, outcomes)
        self._learner_args = (list(rules), list(denominator), dict(outcomes))
        self.longest_label, self.longest_s = longest
        self._pending: list[Cycle] = []
        self._last_bucket: dict[float, int] = {}  # bucket size -> newest bucket fed

    @property
    def active(self) -> bool:
        return bool(self.detector.rules)

    def attach(
        self, recorder: Recorder, view: CountsView, now: float, incidents: Incidents
    ) -> None:
        """Take every cycle ``recorder`` records from now on, after reading the recorded
        history: the learned rules' ``baseline_window`` of counts (firing time left out,
        from the incidents), and the cycles of the last ``REPLAY`` seconds replayed into
        the detector (the evidence a restart would otherwise lose: a CUSUM above zero has
        been fed its whole episode, and a healthy agent's episodes last minutes). A history
        that cannot be read starts from zero, and says so."""
        recorder.listener = self.add
        reader = HistoryReader(recorder.store)
        try:
            if self.learner.active:
                self._learn_history(reader, now, incidents)
            for cycle in reader.cycles(now - REPLAY, now):
                self.feed(cycle, view, learn=False)
        except Exception as exc:  # a damaged history must not stop the daemon
            log.warning(
                "sequential rules: cannot read the recorded history (%s); their evidence "
                "and learned baselines start from zero",
                f"{type(exc).__name__}: {exc}"[:200],
            )
            self.detector.evidence.clear()
            self._last_bucket.clear()
            self.learner = Learner(*self._learner_args)
        else:
            log.info(
                "sequential rules: evidence and baselines rebuilt from the recorded history",
                extra={"agents": len(self.detector.evidence)},
            )

    def _learn_history(self, reader: HistoryReader, now: float, incidents: Incidents) -> None:
        specs = [r.sequential for r in self.learner.rules if r.sequential is not None]
        span = max(s.baseline_window for s in specs)
        firing = firing_intervals(
            incidents.load_incidents(open_only=False).values(),
            [r.name for r in self.learner.rules],
            now,
        )
        self.learner.advance(now)
        self.learner.add(reader.counts(now - span, now), intervals_exclude(firing))

    def ratios(self) -> dict[tuple[str, str], float]:
        """(rule, agent) -> fire evidence / firing limit, for the pairs above zero."""
        d = self.detector
        out = {}
        for rule, agent in d.evidence:
            r = d.reading(rule, agent).evidence
            if r > 0.0:
                out[(rule, agent)] = r
        return out

    def add(self, cycle: Cycle) -> None:
        """A cycle the daemon just applied (the recorder's hook). Cheap: kept until the
        next ``advance``."""
        if self.active:
            self._pending.append(cycle)

    def baseline(self, rule: Rule, agent: str) -> Baseline:
        spec = rule.sequential
        assert spec is not None
        if spec.baseline is not None:
            return Baseline(spec.baseline, "configured")
        found = self.learner.baseline(rule, agent)
        if found is not None:
            return found
        return Baseline(spec.fallback, "fallback: too little history")

    def advance(self, view: CountsView, now: float) -> None:
        """Feed the cycles received since the last call, oldest first."""
        cycles, self._pending = self._pending, []
        for cycle in cycles:
            self.feed(cycle, view)

    def feed(self, cycle: Cycle, view: CountsView, *, learn: bool = True) -> None:
        """One cycle: the learner first (leaving out calls of agents whose alarm is up
        against their learned rate; an alarm against the fallback does not stop an agent
        learning its own), then the detector. Learning first costs a detection nothing
        (one cycle against days of calls) and lets a first start test each agent against
        the hour of calls its backfill found, not against the fallback.

        A reset cycle (the windows' whole content, after a cold start or lost history
        writes) feeds only buckets newer than the last one fed: no call counts twice."""
        cells: list[tuple[int, str, str, int]] = cycle.cells
        newest = self._last_bucket.get(cycle.bucket)
        if cycle.reset is not None and newest is not None:
            cells = [c for c in cycle.cells if c[0] > newest]
        top = max((c[0] for c in cycle.cells), default=None)
        if top is not None and (newest is None or top > newest):
            self._last_bucket[cycle.bucket] = top
        span = self.longest_s

        def volume(agent: str) -> float:
            learned = self.learner.volume(agent, cycle.at)
            if learned is not None:
                return learned
            return max(1.0, float(view.counts(agent, self.longest_label).calls)) / span

        if learn and self.learner.active:
            evidence, used = self.detector.evidence, self.detector.used

            def alarm(rule: str, agent: str, _t: float) -> bool:
                """Up against the agent's own learned rate (not the fallback)."""
                ev = evidence.get((rule, agent))
                if ev is None or not ev.alarm:
                    return False
                got = used.get((rule, agent))
                return got is not None and got[1].source == "learned"

            b = cycle.bucket
            self.learner.advance(cycle.at)
            self.learner.add(((k * b, a, st, n) for k, a, st, n in cells), alarm)
        self.detector.step(cells, cycle.at, self.baseline, volume)
