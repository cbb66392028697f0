"""Feeding the sequential detector: the daemon's cycles in, baselines and volumes alongside.

The recorder hands every poll cycle's changes to the windows (``history.Cycle``: the same
cells it records) to ``EvidenceFeed.add``; ``advance`` feeds the cycles received since the
last evaluation to the ``sequential.Detector``, right before the rules are evaluated. A
backtest or a warm restart feeds recorded cycles the same way (``replay``).

An agent's *volume* (calls per second, which turns ``false_alarm`` into a number of calls)
is its calls in the longest window over that window's length, at least one call per
window; its *baseline* is the rule's number, else the learned one (``baselines.py``), else
the rule's fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence

from ..history import HistoryReader, Recorder
from ..history.replay import Cycle
from ..model import CountsView
from .detector import Baseline, Detector
from .state import Rule

log = logging.getLogger("watchdog.alerts")

REPLAY = 86400.0  # seconds of recorded cycles a start replays into the detector

# (outcome, agent) -> learned baseline, or None while the agent lacks history
Learned = Callable[[str, str], Baseline | None]


def no_learned(_outcome: str, _agent: str) -> Baseline | None:
    return None


class EvidenceFeed:
    """The sequential rules' evidence, fed cycle by cycle (one per alert pipeline)."""

    def __init__(
        self,
        rules: Sequence[Rule],
        denominator: Iterable[str],
        outcomes: Mapping[str, Iterable[str]],
        longest: tuple[str, float],
        learned: Learned = no_learned,
    ) -> None:
        self.detector = Detector(rules, denominator, outcomes)
        self.longest_label, self.longest_s = longest
        self.learned = learned
        self._pending: list[Cycle] = []
        self._last_bucket: dict[float, int] = {}  # bucket size -> newest bucket fed

    @property
    def active(self) -> bool:
        return bool(self.detector.rules)

    def attach(self, recorder: Recorder, view: CountsView, now: float) -> None:
        """Take every cycle ``recorder`` records from now on, after replaying the recorded
        cycles of the last ``REPLAY`` seconds: the evidence a restart would otherwise lose
        (a CUSUM that stands above zero has been fed for its whole episode, and episodes of
        a healthy agent last minutes). A history that cannot be read starts from zero, and
        says so."""
        recorder.listener = self.add
        try:
            for cycle in HistoryReader(recorder.store).cycles(now - REPLAY, now):
                self.feed(cycle, view)
        except Exception as exc:  # a damaged history must not stop the daemon
            log.warning(
                "sequential rules: cannot replay the recorded history (%s); their evidence "
                "starts from zero",
                f"{type(exc).__name__}: {exc}"[:200],
            )
            self.detector.evidence.clear()
            self._last_bucket.clear()
        else:
            log.info(
                "sequential rules: evidence rebuilt from the recorded history",
                extra={"agents": len(self.detector.evidence)},
            )

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
        found = self.learned(rule.outcome, agent)
        if found is not None:
            return found
        return Baseline(spec.fallback, "fallback: too little history")

    def advance(self, view: CountsView, now: float) -> None:
        """Feed the cycles received since the last call, oldest first."""
        cycles, self._pending = self._pending, []
        for cycle in cycles:
            self.feed(cycle, view)

    def feed(self, cycle: Cycle, view: CountsView) -> None:
        """One cycle. A reset cycle (the windows' whole content, after a cold start or lost
        history writes) feeds only buckets newer than the last one fed, so no call counts
        twice."""
        cells: Iterable[tuple[int, str, str, int]] = cycle.cells
        newest = self._last_bucket.get(cycle.bucket)
        if cycle.reset is not None and newest is not None:
            cells = [c for c in cycle.cells if c[0] > newest]
        top = max((c[0] for c in cycle.cells), default=None)
        if top is not None and (newest is None or top > newest):
            self._last_bucket[cycle.bucket] = top
        span = self.longest_s

        def volume(agent: str) -> float:
            return max(1.0, float(view.counts(agent, self.longest_label).calls)) / span

        self.detector.step(cells, cycle.at, self.baseline, volume)
