"""Generated traffic: scenarios (agent profiles from ``profiles.py``, a seed, a day curve,
injected degradations). Pure data.

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

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from .calls import Vocab
from .profiles import STEADY_MIX, AgentInfo, AgentProfile, Bursts
from .realistic import RealisticParams, build_realistic

Traffic = Literal["kind", "realistic"]
DegradationSize = Literal["hard", "medium", "soft"]
DEGRADATION_SIZES: tuple[DegradationSize, ...] = ("hard", "medium", "soft")
# failed share of an agent's new calls during a degradation; "soft" is 2x its own baseline
DEGRADATION_SHARE: Mapping[str, float] = {"hard": 0.60, "medium": 0.25}


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
        params = params or RealisticParams()
        scenario = cls(
            agents=build_realistic(agents, calls_per_day, seed, params),
            seed=seed,
            diurnal=diurnal,
            history=history,
            traffic="realistic",
            bursts=params.bursts,
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
