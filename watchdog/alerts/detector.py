"""The sequential detector as a step-by-step object: every sequential rule's CUSUMs
(``sequential.py``), fed one poll cycle at a time. Pure: the daemon feeds it the journal's
cells (``evidence.py``); a backtest can feed it recorded cycles the same way."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from .sequential import CLEAR_ARL, Evidence, ParamCache, Params, feed, group, rate, ratio
from .state import Rule


@dataclass(frozen=True, slots=True)
class Baseline:
    """An agent's normal rate for one outcome, and where it comes from (shown in ``alerts``
    and in Slack): "configured", "learned", or "fallback (<why>)"."""

    rate: float
    source: str = "configured"


@dataclass(frozen=True, slots=True)
class Reading:
    """What the detector says about one (rule, agent) at an evaluation."""

    alarm: bool
    evidence: float  # the fire evidence as a share of its limit (``ratio``)
    run_calls: int
    run_hits: int
    params: Params | None
    baseline: Baseline | None


STALE_EVIDENCE = 86400.0  # evidence fed nothing for this long is dropped (``expire``)
MEMO_RATE = 0.005  # a baseline 0.5% (relative) away from the one the limits were set for
MEMO_ARL = 0.10  # a volume 10% away: h moves by ~0.1 nats

# (rule, agent) -> baseline; agent -> calls per second (its volume)
BaselineOf = Callable[[Rule, str], Baseline]
VolumeOf = Callable[[str], float]


class Detector:
    """Every sequential rule's CUSUMs. A pure step-by-step object: ``step`` takes one poll
    cycle's cells (the live daemon's journal, or a recorded cycle in a replay), ``reading``
    answers for one (rule, agent). Only (rule, agent) pairs with evidence above zero or an
    alarm up are kept, so memory follows the agents that look unusual, not the fleet."""

    def __init__(
        self,
        rules: Sequence[Rule],
        denominator: Iterable[str],
        outcomes: Mapping[str, Iterable[str]],
    ) -> None:
        self.rules = [r for r in rules if r.sequential is not None and r.scope == "agent"]
        self.denominator = frozenset(denominator)
        used = {r.outcome for r in self.rules}
        self.outcomes = {o: frozenset(s) for o, s in outcomes.items() if o in used}
        self.evidence: dict[tuple[str, str], Evidence] = {}
        self.used: dict[tuple[str, str], tuple[Params | None, Baseline]] = {}
        self.cache = ParamCache()
        # (rule, agent) -> (p0, arl, params): reused while the baseline moves less than
        # MEMO_RATE and the volume less than MEMO_ARL (the limits move by ~0.1 nats)
        self._memo: dict[tuple[str, str], tuple[float, float, Params | None]] = {}
        self.at: float | None = None  # the last cycle fed
        self._expired_at = -math.inf

    def params_for(
        self, rule: Rule, agent: str, baseline: BaselineOf, volume: VolumeOf
    ) -> tuple[Params | None, Baseline]:
        spec = rule.sequential
        assert spec is not None
        base = baseline(rule, agent)
        lim = rule.limits_for(agent)
        p1 = rate(lim.threshold, lim.relative, base.rate)
        pc = rate(lim.clear_below, lim.clear_relative, base.rate)
        p2 = None if spec.fast is None else rate(spec.fast, spec.fast_relative, base.rate)
        v = max(volume(agent), 0.0)
        arl = max(1.0, spec.false_alarm * v)
        key = (rule.name, agent)
        memo = self._memo.get(key)
        if (
            memo is not None
            and abs(memo[0] - base.rate) <= MEMO_RATE * memo[0]
            and abs(arl - memo[1]) <= MEMO_ARL * memo[1]
        ):
            return memo[2], base
        arl_clear = max(1.0, min(spec.false_alarm, CLEAR_ARL) * v)
        p = self.cache.get(base.rate, p1, pc, arl, arl_clear, p2)
        self._memo[key] = (base.rate, arl, p)
        return p, base

    def step(
        self,
        cells: Iterable[tuple[int, str, str, int]],
        now: float,
        baseline: BaselineOf,
        volume: VolumeOf,
    ) -> None:
        """Feed one cycle's cells (bucket, agent, status, +n/-n), in the order the module
        docstring gives."""
        self.at = now
        if not self.rules:
            return
        self.expire(now)
        grouped = group(cells, self.denominator, self.outcomes)
        for rule in self.rules:
            per_agent = grouped.get(rule.outcome)
            if not per_agent:
                continue
            for agent, groups in per_agent.items():
                if not rule.covers(agent):
                    continue
                key = (rule.name, agent)
                p, base = self.params_for(rule, agent, baseline, volume)
                self.used[key] = (p, base)
                if p is None:
                    self.evidence.pop(key, None)
                    continue
                ev = self.evidence.get(key)
                if ev is None:
                    ev = Evidence()
                min_calls = rule.limits_for(agent).min_calls
                for k, hits, n in groups:
                    feed(ev, hits, n, p, min_calls, f"{agent}:{k}:{hits}:{n}")
                ev.at = now
                if ev.alarm or ev.s > 0.0 or ev.f > 0.0:
                    self.evidence[key] = ev
                else:
                    self.evidence.pop(key, None)
                    self.used.pop(key, None)

    def reading(self, rule: str, agent: str) -> Reading:
        ev = self.evidence.get((rule, agent))
        p, base = self.used.get((rule, agent), (None, None))
        if ev is None:
            return Reading(False, 0.0, 0, 0, p, base)
        return Reading(ev.alarm, ratio(ev, p), ev.run_calls, ev.run_hits, p, base)

    def expire(self, now: float, after: float = STALE_EVIDENCE) -> None:
        """Drop the evidence of pairs fed nothing for ``after`` seconds: an agent that
        stopped calling while its alarm was up resolves as "no data" (its window is empty)
        instead of firing for ever. Checked at most once an hour."""
        if now - self._expired_at < 3600.0:
            return
        self._expired_at = now
        for key in [k for k, ev in self.evidence.items() if now - ev.at > after]:
            del self.evidence[key]
            self.used.pop(key, None)

    def alarmed(self, rule: str) -> list[str]:
        """Agents of ``rule`` whose alarm is up (the others' verdict is CLEAR: an agent
        without a previous alert state needs no evaluation)."""
        return sorted(a for (r, a), ev in self.evidence.items() if r == rule and ev.alarm)

    def forget(self, keep: Callable[[str, str], bool]) -> None:
        """Drop the evidence of (rule, agent) pairs ``keep`` says no to (config changed)."""
        for key in [k for k in self.evidence if not keep(*k)]:
            del self.evidence[key]
            self.used.pop(key, None)
