"""Learned baselines: each agent's normal rate of a rule's outcome, from its own recorded calls,
and its volume (calls per second), which sets the CUSUM's limits.
Pure: calls come in as (time, agent, status, n) cells; nothing is read or written here.

Per (rule, agent) the learner keeps the calls and hits of each UTC day over the rule's
``baseline_window`` (7 days by default), leaving out the calls that settled while the rule's
alarm for that agent was up (firing time is not normal). The baseline is

    p = max(floor, (hits + k * fleet) / (calls + k))

the agent's rate shrunk toward the fleet's rate (all agents' hits over all their calls in the
window) with ``k = baseline_prior_calls`` pseudo-calls: the posterior mean under a Beta prior
centred on the fleet rate and worth k calls (empirical Bayes with a fixed prior strength). An
agent with 20 calls is mostly the fleet; one with 20,000 is itself. Until an agent has
``baseline_min_calls`` calls in the window, it has no learned baseline (the rule's fallback
is used, and ``alerts`` says so).

Day slots make the window slide a day at a time: the baseline reaches back between 6 and 7
days (of 7), which is what a weekly rhythm needs, at 8 numbers per (rule, agent).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

from .detector import Baseline
from .state import Rule

DAY = 86400.0


class Learner:
    """Per (rule, agent) calls and hits by day, and the fleet's, for the learned rules."""

    def __init__(
        self,
        rules: Sequence[Rule],
        denominator: Iterable[str],
        outcomes: Mapping[str, Iterable[str]],
    ) -> None:
        # every sequential rule: the learned ones for their baselines, all for volumes
        self.rules = [r for r in rules if r.sequential is not None and r.scope == "agent"]
        self.denominator = frozenset(denominator)
        self.outcomes = {o: frozenset(s) for o, s in outcomes.items()}
        self.days = {
            r.name: max(1, math.ceil(r.sequential.baseline_window / DAY))
            for r in self.rules
            if r.sequential
        }
        # rule -> agent -> day -> [calls, hits]
        self.counts: dict[str, dict[str, dict[int, list[int]]]] = {r.name: {} for r in self.rules}
        # rule -> day -> [calls, hits] (the fleet)
        self.fleet: dict[str, dict[int, list[int]]] = {r.name: {} for r in self.rules}
        # the same summed over the window: rule -> agent -> [calls, hits]; rule -> [calls, hits]
        self.sums: dict[str, dict[str, list[int]]] = {r.name: {} for r in self.rules}
        self.fleet_sums: dict[str, list[int]] = {r.name: [0, 0] for r in self.rules}
        self.today: int | None = None

    @property
    def active(self) -> bool:
        return bool(self.rules)

    def add(
        self,
        cells: Iterable[tuple[float, str, str, int]],
        excluded: Callable[[str, str, float], bool] = lambda _r, _a, _t: False,
    ) -> None:
        """Count settled calls: (settle time, agent, status, n); ``excluded(rule, agent,
        t)`` leaves out calls settled while that rule's alarm for the agent was up.
        Negative cells (moved calls) are counted too: the sums stay what was recorded."""
        for t, agent, status, n in cells:
            if status not in self.denominator or n == 0:
                continue
            day = math.floor(t / DAY)
            for rule in self.rules:
                if not rule.covers(agent) or excluded(rule.name, agent, t):
                    continue
                hit = n if status in self.outcomes.get(rule.outcome, ()) else 0
                name = rule.name
                for c in (
                    self.counts[name].setdefault(agent, {}).setdefault(day, [0, 0]),
                    self.fleet[name].setdefault(day, [0, 0]),
                    self.sums[name].setdefault(agent, [0, 0]),
                    self.fleet_sums[name],
                ):
                    c[0] += n
                    c[1] += hit

    def advance(self, now: float) -> None:
        """Forget the days that left each rule's window."""
        today = math.floor(now / DAY)
        if today == self.today:
            return
        self.today = today
        for rule in self.rules:
            oldest = today - self.days[rule.name]  # this day and older are out
            name = rule.name
            fleet, fleet_sum = self.fleet[name], self.fleet_sums[name]
            for day in [d for d in fleet if d <= oldest]:
                c, h = fleet.pop(day)
                fleet_sum[0] -= c
                fleet_sum[1] -= h
            per_agent, sums = self.counts[name], self.sums[name]
            for agent in list(per_agent):
                per = per_agent[agent]
                for day in [d for d in per if d <= oldest]:
                    c, h = per.pop(day)
                    sums[agent][0] -= c
                    sums[agent][1] -= h
                if not per:
                    del per_agent[agent]
                    del sums[agent]

    def totals(self, rule: str, agent: str | None) -> tuple[int, int]:
        """(calls, hits) in the window: one agent's, or the fleet's (None)."""
        days = (
            self.fleet.get(rule, {}) if agent is None else self.counts.get(rule, {}).get(agent, {})
        )
        calls = hits = 0
        for c, h in days.values():
            calls += c
            hits += h
        return calls, hits

    def baseline(self, rule: Rule, agent: str) -> Baseline | None:
        spec = rule.sequential
        if spec is None or spec.baseline is not None or rule.name not in self.counts:
            return None
        calls, hits = self.sums[rule.name].get(agent, (0, 0))
        if calls < spec.min_history:
            return None
        return Baseline(
            shrunk(hits, calls, self.fleet_rate(rule), spec.prior_calls, spec.floor), "learned"
        )

    def volume(self, agent: str, now: float) -> float | None:
        """The agent's calls per second over the days it has in the window (today so far
        included), or None without a day in it. Steadier than a window's count: the
        limits move with it."""
        for rule in self.rules:
            per = self.counts[rule.name].get(agent)
            if per:
                first = min(per) * DAY
                span = max(3600.0, now - first)
                return self.sums[rule.name][agent][0] / span
        return None

    def fleet_rate(self, rule: Rule) -> float:
        calls, hits = self.fleet_sums.get(rule.name, (0, 0))
        if calls > 0:
            return hits / calls
        return rule.sequential.fallback if rule.sequential is not None else 0.05


def shrunk(hits: int, calls: int, fleet: float, prior_calls: float, floor: float) -> float:
    """The agent's rate shrunk toward ``fleet`` by ``prior_calls`` pseudo-calls, floored."""
    if calls + prior_calls <= 0:
        return max(floor, fleet)
    return max(floor, (max(0, hits) + prior_calls * fleet) / (max(0, calls) + prior_calls))


def intervals_exclude(
    firing: Mapping[tuple[str, str], Sequence[tuple[float, float]]],
) -> Callable[[str, str, float], bool]:
    """``Learner.add``'s ``excluded`` from (rule, agent) -> [(fired_at, resolved_at)]."""

    def excluded(rule: str, agent: str, t: float) -> bool:
        return any(a <= t <= b for a, b in firing.get((rule, agent), ()))

    return excluded
