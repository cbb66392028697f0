"""Generated traffic: agent profiles and scenarios. Pure data plus a diurnal curve.

A scenario is deterministic from its seed and the simulator's start time. Degradation
periods ``(start, end, failed_share)`` are offsets in seconds from the simulator's start when
below 1e9, else absolute epoch seconds; during one, ``failed_share`` of an agent's new calls
(by created_at) fail and the rest follow its normal mix without failures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .calls import OUTCOME_CODE, OUTCOMES, VOCABS, Vocab

# ~70% completed, 8% failed, 7% busy, 12% no answer, 3% other.
STEADY_MIX: Mapping[str, float] = {
    "completed": 0.70,
    "failed": 0.08,
    "busy": 0.07,
    "no_answer": 0.12,
    "voicemail": 0.012,
    "cancelled": 0.006,
    "did_not_pick": 0.006,
    "retry_expired": 0.006,
}

ABSOLUTE_THRESHOLD = 1e9  # degradation bounds at or above this are epoch seconds

DIURNAL_AMPLITUDE = 0.9  # rate = mean * (1 + A cos(...)): peak 1.9x the mean, trough 0.1x
DIURNAL_PEAK_UTC = 14 * 3600.0  # seconds after midnight UTC


def diurnal_factor(t: float) -> float:
    """Multiplier of the mean call rate at epoch second ``t`` (mean 1 over a day)."""
    phase = 2.0 * math.pi * ((t % 86400.0) - DIURNAL_PEAK_UTC) / 86400.0
    return 1.0 + DIURNAL_AMPLITUDE * math.cos(phase)


def _default_mix() -> Mapping[str, float]:
    return dict(STEADY_MIX)


@dataclass(frozen=True, slots=True, eq=False)
class AgentProfile:
    """One agent's traffic: a Poisson stream of calls with an outcome mix and timings."""

    agent_id: str
    calls_per_minute: float
    outcomes: Mapping[str, float] = field(default_factory=_default_mix)
    ring: tuple[float, float] = (5.0, 40.0)  # seconds, uniform
    talk: tuple[float, float] = (30.0, 480.0)  # seconds, uniform, answered calls only
    vocab: Vocab = "underscore"
    degradations: tuple[tuple[float, float, float], ...] = ()

    def __post_init__(self) -> None:
        where = f"agent {self.agent_id!r}"
        if not self.agent_id:
            raise ValueError("agent_id must not be empty")
        if self.calls_per_minute < 0:
            raise ValueError(f"{where}: calls_per_minute must be >= 0")
        unknown = set(self.outcomes) - set(OUTCOMES)
        if unknown:
            raise ValueError(f"{where}: unknown outcomes {sorted(unknown)}")
        if any(w < 0 for w in self.outcomes.values()) or sum(self.outcomes.values()) <= 0:
            raise ValueError(f"{where}: outcome weights must be >= 0 with a positive sum")
        for name, (lo, hi) in (("ring", self.ring), ("talk", self.talk)):
            if not 0 <= lo <= hi:
                raise ValueError(f"{where}: {name} must be (low, high) with 0 <= low <= high")
        if self.vocab not in VOCABS:
            raise ValueError(f"{where}: vocab must be one of {VOCABS}")
        for start, end, share in self.degradations:
            if end < start or not 0 <= share <= 1:
                raise ValueError(f"{where}: degradation must be (start, end, share 0..1)")

    def mix(self, *, without_failed: bool = False) -> tuple[list[float], list[int]]:
        """Cumulative probabilities and outcome codes, for a draw by bisection."""
        items = [
            (OUTCOME_CODE[o], w)
            for o, w in self.outcomes.items()
            if w > 0 and not (without_failed and o == "failed")
        ]
        if not items:  # only failures configured: nothing else to draw
            items = [(OUTCOME_CODE["completed"], 1.0)]
        total = sum(w for _, w in items)
        cum: list[float] = []
        acc = 0.0
        for _, w in items:
            acc += w / total
            cum.append(acc)
        cum[-1] = 1.0
        return cum, [code for code, _ in items]


@dataclass(frozen=True, slots=True, eq=False)
class Scenario:
    """Agents, a seed, an optional day curve and how much history precedes the start."""

    agents: tuple[AgentProfile, ...]
    seed: int = 0
    diurnal: bool = False
    history: float = 4500.0  # seconds of calls generated before the simulator's start

    def __post_init__(self) -> None:
        ids = [a.agent_id for a in self.agents]
        if len(set(ids)) != len(ids):
            raise ValueError("agent ids must be unique")
        if self.history < 0:
            raise ValueError("history must be >= 0")

    @property
    def agent_ids(self) -> list[str]:
        return [a.agent_id for a in self.agents]

    @property
    def calls_per_minute(self) -> float:
        return sum(a.calls_per_minute for a in self.agents)

    @classmethod
    def demo(cls, seed: int = 7, *, history: float = 300.0) -> Scenario:
        """Six agents, both vocabularies, compressed timings for a one-minute demo.

        ``agt_support_02`` degrades from 15 s to 40 s after the start (70% of calls fail).
        About 180 calls a minute in all; the default 5 minutes of history is ~900 calls.
        """
        specs: Sequence[tuple[str, float, Vocab]] = (
            ("agt_sales_01", 36.0, "underscore"),
            ("agt_support_02", 30.0, "hyphen"),
            ("agt_billing_03", 24.0, "underscore"),
            ("agt_survey_04", 40.0, "hyphen"),
            ("agt_renewals_05", 28.0, "underscore"),
            ("agt_reminders_06", 20.0, "hyphen"),
        )
        agents = tuple(
            AgentProfile(
                agent_id=agent_id,
                calls_per_minute=cpm,
                vocab=vocab,
                degradations=((15.0, 40.0, 0.7),) if agent_id == "agt_support_02" else (),
                ring=(2.0, 8.0),
                talk=(5.0, 40.0),
            )
            for agent_id, cpm, vocab in specs
        )
        return cls(agents=agents, seed=seed, history=history)

    @classmethod
    def steady(
        cls,
        agents: int = 20,
        calls_per_day: float = 100_000.0,
        seed: int = 0,
        *,
        history: float = 4500.0,
        diurnal: bool = False,
        vocab: Vocab | None = None,
        mix: Mapping[str, float] = STEADY_MIX,
        ring: tuple[float, float] = (5.0, 40.0),
        talk: tuple[float, float] = (30.0, 480.0),
        degradations: Mapping[str, tuple[tuple[float, float, float], ...]] | None = None,
    ) -> Scenario:
        """``agents`` agents sharing ``calls_per_day`` evenly, with the realistic mix.

        Agent ids are ``agt_00000``, ``agt_00001``...; vocabularies alternate (even ids
        underscore, odd ids hyphen) unless ``vocab`` is given.
        """
        if agents < 1:
            raise ValueError("agents must be >= 1")
        cpm = calls_per_day / agents / 1440.0
        degraded = degradations or {}
        width = max(5, len(str(agents - 1)))
        profiles = []
        for i in range(agents):
            agent_id = f"agt_{i:0{width}d}"
            profiles.append(
                AgentProfile(
                    agent_id=agent_id,
                    calls_per_minute=cpm,
                    outcomes=dict(mix),
                    ring=ring,
                    talk=talk,
                    vocab=vocab or ("underscore" if i % 2 == 0 else "hyphen"),
                    degradations=degraded.get(agent_id, ()),
                )
            )
        unknown = set(degraded) - {p.agent_id for p in profiles}
        if unknown:
            raise ValueError(f"degradations name unknown agents: {sorted(unknown)}")
        return cls(agents=tuple(profiles), seed=seed, diurnal=diurnal, history=history)
