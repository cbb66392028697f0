"""Generated traffic: agent profiles and scenarios. Pure data plus a diurnal curve.

A scenario is deterministic from its seed and the simulator's start time. Degradation
periods ``(start, end, failed_share)`` and quiet periods ``(start, end)`` are offsets in
seconds from the simulator's start when below 1e9, else absolute epoch seconds; during a
degradation, ``failed_share`` of an agent's new calls (by created_at) fail and the rest follow
its normal mix without failures; during a quiet period the agent places no calls.

Two kinds of traffic (``Scenario.traffic``):

* ``kind`` (``Scenario.steady``, ``Scenario.demo``): uniform ring and talk times, failures only
  before answer, one smooth Poisson stream. Kept exactly as it was: same seed, same calls.
* ``realistic`` (``Scenario.realistic``, built in ``realistic.py``): heavy-tailed talk times
  capped by each agent's ``max_call_duration``, unanswered calls ringing to the agent's
  ``ring_limit``, failures after answer (``drop_share``), campaign bursts (``Bursts``),
  Zipf-like volumes and per-agent outcome mixes, the webhook vocabulary's ``hangup``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from .calls import OUTCOME_CODE, OUTCOMES, VOCABS, Vocab

if TYPE_CHECKING:
    from .realistic import RealisticParams

Traffic = Literal["kind", "realistic"]
DegradationSize = Literal["hard", "medium", "soft"]
DEGRADATION_SIZES: tuple[DegradationSize, ...] = ("hard", "medium", "soft")
# failed share of an agent's new calls during a degradation; "soft" is 2x its own baseline
DEGRADATION_SHARE: Mapping[str, float] = {"hard": 0.60, "medium": 0.25}

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


@dataclass(frozen=True, slots=True)
class Degradation:
    """A degradation to inject: ``hard`` (60% of new calls fail), ``medium`` (25%) or ``soft``
    (twice the agent's own failed share). ``agent_id`` None: an agent drawn from the seed,
    weighted by volume; ``start`` None: uniform in ``[0, within - duration]`` seconds after
    the simulator's start (an explicit ``start`` follows the offset/epoch rule)."""

    size: DegradationSize
    agent_id: str | None = None
    start: float | None = None
    duration: float = 1800.0
    within: float = 10800.0

    def __post_init__(self) -> None:
        if self.size not in DEGRADATION_SIZES:
            raise ValueError(f"size must be one of {DEGRADATION_SIZES}")
        if not self.duration > 0 or self.within < self.duration:
            raise ValueError("degradation needs duration > 0 and within >= duration")


@dataclass(frozen=True, slots=True)
class InjectedDegradation:
    """A degradation as injected: the ground truth a detector benchmark scores against."""

    agent_id: str
    size: DegradationSize
    start: float  # offset from the simulator's start (< 1e9) or epoch seconds
    end: float
    failed_share: float  # during the degradation
    baseline: float  # the agent's normal failed share


@dataclass(frozen=True, slots=True, eq=False)
class Scenario:
    """Agents, a seed, an optional day curve and how much history precedes the start."""

    agents: tuple[AgentProfile, ...]
    seed: int = 0
    diurnal: bool = False
    history: float = 4500.0  # seconds of calls generated before the simulator's start
    traffic: Traffic = "kind"
    bursts: Bursts | None = None  # realistic traffic only
    injected: tuple[InjectedDegradation, ...] = ()

    def __post_init__(self) -> None:
        ids = [a.agent_id for a in self.agents]
        if len(set(ids)) != len(ids):
            raise ValueError("agent ids must be unique")
        if self.history < 0:
            raise ValueError("history must be >= 0")
        if self.traffic not in ("kind", "realistic"):
            raise ValueError("traffic must be 'kind' or 'realistic'")
        if self.traffic == "kind":
            if self.bursts is not None:
                raise ValueError("bursts need traffic='realistic'")
            odd = [a.agent_id for a in self.agents if a.realistic_only]
            if odd:
                raise ValueError(
                    f"agents {odd[:3]} set realistic-only fields (talk_lognormal, "
                    "max_call_duration, ring_limit, drop_share): use traffic='realistic'"
                )

    def profile(self, agent_id: str) -> AgentProfile:
        for a in self.agents:
            if a.agent_id == agent_id:
                return a
        raise KeyError(agent_id)

    @property
    def expected_calls_per_minute(self) -> float:
        """Mean calls per minute including bursts (diurnal traffic has the same mean)."""
        extra = self.bursts.extra_share if self.bursts is not None else 0.0
        return self.calls_per_minute * (1.0 + extra)

    def degrade(self, degradations: Iterable[Degradation]) -> Scenario:
        """This scenario with ``degradations`` injected (random agents and times drawn from
        the seed); each one is listed in ``injected``. Other agents' calls do not change in
        realistic traffic; in kind traffic a degradation shifts the shared random stream."""
        rng = random.Random(f"degrade:{self.seed}:{len(self.injected)}")
        profiles = {a.agent_id: a for a in self.agents}
        callers = [a for a in self.agents if a.calls_per_minute > 0 and not a.quiet]
        weights = [a.calls_per_minute for a in callers]
        injected = list(self.injected)
        for d in degradations:
            if d.agent_id is None:
                if not callers:
                    raise ValueError("no agent places calls: nothing to degrade")
                agent_id = rng.choices(callers, weights)[0].agent_id
            elif d.agent_id in profiles:
                agent_id = d.agent_id
            else:
                raise ValueError(f"degradation names an unknown agent {d.agent_id!r}")
            start = d.start if d.start is not None else rng.uniform(0.0, d.within - d.duration)
            p = profiles[agent_id]
            baseline = p.failed_share
            share = DEGRADATION_SHARE.get(d.size, min(1.0, 2.0 * baseline))
            end = start + d.duration
            profiles[agent_id] = replace(p, degradations=(*p.degradations, (start, end, share)))
            injected.append(InjectedDegradation(agent_id, d.size, start, end, share, baseline))
        agents = tuple(profiles[a.agent_id] for a in self.agents)
        return replace(self, agents=agents, injected=tuple(injected))

    @classmethod
    def realistic(
        cls,
        agents: int = 2000,
        calls_per_day: float = 1_000_000.0,
        seed: int = 0,
        *,
        history: float = 10800.0,
        diurnal: bool = True,
        params: RealisticParams | None = None,
        degradations: Sequence[Degradation] = (),
    ) -> Scenario:
        """Realistic traffic (see ``realistic.RealisticParams`` for every knob and default)."""
        from .realistic import RealisticParams, build_realistic

        scenario = build_realistic(
            agents,
            calls_per_day,
            seed,
            history=history,
            diurnal=diurnal,
            params=params or RealisticParams(),
        )
        return scenario.degrade(degradations) if degradations else scenario

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
        /agents2 names them ("Customer Support Bot" ...) with limits their calls respect.
        """
        specs: Sequence[tuple[str, float, Vocab, str]] = (
            ("agt_sales_01", 36.0, "underscore", "Outbound Sales"),
            ("agt_support_02", 30.0, "hyphen", "Customer Support Bot"),
            ("agt_billing_03", 24.0, "underscore", "Billing Reminders"),
            ("agt_survey_04", 40.0, "hyphen", "Customer Survey"),
            ("agt_renewals_05", 28.0, "underscore", "Renewals"),
            ("agt_reminders_06", 20.0, "hyphen", "Appointment Reminders"),
        )
        agents = tuple(
            AgentProfile(
                agent_id=agent_id,
                calls_per_minute=cpm,
                vocab=vocab,
                degradations=((15.0, 40.0, 0.7),) if agent_id == "agt_support_02" else (),
                ring=(2.0, 8.0),
                talk=(5.0, 40.0),
                info=AgentInfo(title, max_call_duration_sec=300, ring_duration_sec=10),
            )
            for agent_id, cpm, vocab, title in specs
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
