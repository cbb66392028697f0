"""Agent profiles: who places calls, how many, with which outcomes and timings. Pure data.

Shared by the scenarios (``scenario.py``), the realistic traffic (``realistic.py``), the
generators (``generate.py``, the store) and the agent directory (``agents.py``). Period bounds
(degradations, quiet periods) are offsets in seconds from the simulator's start when below
``ABSOLUTE_THRESHOLD`` (1e9), else absolute epoch seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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


def _minute_ceil(seconds: float) -> int:
    return math.ceil(seconds / 60.0 - 1e-9) * 60


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """An agent as ``GET /agents2`` shows it. ``None`` = the field is missing in the answer
    (the calls still respect the profile's real limits)."""

    title: str | None = None
    published: bool = True
    deleted: bool = False
    max_call_duration_sec: int | None = None
    ring_duration_sec: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_call_duration_sec", "ring_duration_sec"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0")


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
    quiet: tuple[tuple[float, float], ...] = ()  # periods without new calls
    info: AgentInfo | None = None  # the /agents2 entry; None: derived (see ``directory``)
    # realistic traffic only (Scenario.traffic == "realistic"):
    talk_lognormal: tuple[float, float] | None = None  # (median s, sigma); else ``talk``
    max_call_duration: float | None = None  # s; talk is capped here
    ring_limit: float | None = None  # s; unanswered calls ring this long
    drop_share: float = 0.0  # share of failed calls that fail after answer

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
        for start, end in self.quiet:
            if end < start:
                raise ValueError(f"{where}: quiet period must be (start, end) with start <= end")
        if self.talk_lognormal is not None:
            median, sigma = self.talk_lognormal
            if not (median > 0 and sigma >= 0 and math.isfinite(median + sigma)):
                raise ValueError(f"{where}: talk_lognormal must be (median > 0, sigma >= 0)")
        for name in ("max_call_duration", "ring_limit"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{where}: {name} must be a positive number of seconds")
        if not 0 <= self.drop_share <= 1:
            raise ValueError(f"{where}: drop_share must be within 0..1")

    @property
    def realistic_only(self) -> bool:
        """Whether the profile sets a field only realistic traffic honours."""
        return (
            self.talk_lognormal is not None
            or self.max_call_duration is not None
            or self.ring_limit is not None
            or self.drop_share > 0
        )

    @property
    def failed_share(self) -> float:
        """The agent's normal share of failed calls (before and after answer)."""
        total = sum(self.outcomes.values())
        return (self.outcomes.get("failed", 0.0) + self.outcomes.get("dropped", 0.0)) / total

    def directory(self) -> AgentInfo:
        """The /agents2 entry: ``info``, or one derived from the profile (title from the id,
        limits the calls respect: talk and ring maxima rounded up to a minute / a second)."""
        if self.info is not None:
            return self.info
        talk_max = self.max_call_duration or self.talk[1]
        ring_max = self.ring_limit or self.ring[1]
        return AgentInfo(
            title=f"Agent {self.agent_id}",
            max_call_duration_sec=max(60, _minute_ceil(talk_max)),
            ring_duration_sec=max(1, math.ceil(ring_max - 1e-9)),
        )

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


@dataclass(frozen=True, slots=True)
class Bursts:
    """Campaign starts: at random times (a Poisson process per agent that places calls), an
    agent's rate becomes ``multiplier`` times its mean for a uniform ``minutes`` span."""

    per_agent_per_day: float = 2.0
    multiplier: float = 10.0
    minutes: tuple[float, float] = (2.0, 8.0)

    def __post_init__(self) -> None:
        lo, hi = self.minutes
        if self.per_agent_per_day < 0 or self.multiplier < 1 or not 0 < lo <= hi:
            raise ValueError("bursts need per_agent_per_day >= 0, multiplier >= 1, 0 < minutes")

    @property
    def extra_share(self) -> float:
        """Calls added by bursts, as a share of the agents' mean rate."""
        mean_minutes = (self.minutes[0] + self.minutes[1]) / 2.0
        return self.per_agent_per_day * mean_minutes * (self.multiplier - 1.0) / 1440.0
