"""Alert values: rules ready for evaluation, alert states, transitions, silences. Pure data.

Per (rule, agent) the states run ``inactive -> pending -> firing -> resolved -> inactive``
(see ``rules.py`` for how). Workspace-scope rules and the built-in ``stale`` rule use the
agent id ``"*"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from ..model import WORKSPACE_AGENT

STALE_RULE = "stale"
# The note of an alert resolved because its window emptied (the agent stopped placing calls).
NO_DATA = "no data: no calls in the window"


class State(StrEnum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class Verdict(StrEnum):
    FIRE = "fire"
    CLEAR = "clear"
    HOLD = "hold"  # between clear_below and threshold
    NONE = "none"  # too few calls: no verdict


@dataclass(frozen=True, slots=True)
class Limits:
    threshold: float
    clear_below: float
    min_calls: int
    for_s: float
    relative: bool = False  # sequential rules: threshold is a multiple of the baseline
    clear_relative: bool = False  # ... and clear_below


@dataclass(frozen=True, slots=True)
class SequentialSpec:
    """A sequential rule's detector settings (``alerts/sequential.py``)."""

    false_alarm: float  # seconds between false alarms for one healthy agent
    baseline: float | None  # a fixed normal rate; None: learned from the recorded history
    baseline_window: float = 7 * 86400.0  # learned over this much history
    fallback: float = 0.05  # until an agent has enough history
    prior_calls: float = 100.0  # the fleet rate counts as this many calls (shrinkage)
    floor: float = 0.005  # a learned baseline is never below this
    min_history: int = 200  # calls in baseline_window before the learned rate is used
    fast: float | None = None  # fast_threshold: a second CUSUM for this rate (None: off)
    fast_relative: bool = False  # ... as a multiple of the baseline


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule ready for evaluation: windows resolved to their configured labels."""

    name: str
    outcome: str
    window: str
    limits: Limits
    severity: str = "warning"
    confidence: float | None = None
    confirm_window: str | None = None
    agents: frozenset[str] | None = None  # None: all
    exclude: frozenset[str] = frozenset()
    overrides: Mapping[str, Limits] = field(default_factory=dict)
    scope: Literal["agent", "workspace"] = "agent"
    # "rate": outcome over window; "calls_stopped": no calls for quiet_after from an agent
    # with at least min_calls in its baseline (outcome and window are "")
    kind: Literal["rate", "calls_stopped"] = "rate"
    baseline: Literal["same_hour_yesterday", "last_24h"] = "same_hour_yesterday"
    quiet_after: float = 1800.0
    sequential: SequentialSpec | None = None  # None: the window detector

    @property
    def detector(self) -> Literal["window", "sequential"]:
        return "window" if self.sequential is None else "sequential"

    def limits_for(self, agent_id: str) -> Limits:
        return self.overrides.get(agent_id, self.limits)

    def covers(self, agent_id: str) -> bool:
        if self.scope == "workspace":
            return agent_id == WORKSPACE_AGENT
        if agent_id in self.exclude or agent_id == WORKSPACE_AGENT:
            return False
        return self.agents is None or agent_id in self.agents


@dataclass(frozen=True, slots=True)
class StaleRule:
    after: float  # seconds without a successful poll; 0: off
    severity: str = "critical"


@dataclass(frozen=True, slots=True)
class AlertState:
    """One (rule, agent)'s state after an evaluation. Plain data; persisted as is."""

    rule: str
    agent_id: str
    severity: str
    state: State
    since: float  # when the current state was entered
    evaluated_at: float
    pending_at: float | None = None  # when this incident became pending (or fired, for 0s)
    fired_at: float | None = None
    resolved_at: float | None = None
    rate: float | None = None  # at the last evaluation with calls
    calls: int = 0
    hits: int = 0  # calls with the rule's outcome
    bound: float | None = None  # the Wilson bound behind the last verdict, with confidence
    threshold: float = 0.0
    clear_below: float = 0.0
    peak_rate: float | None = None  # highest rate with a verdict while pending/firing
    resolved_rate: float | None = None  # the rate that resolved it
    last_error: str | None = None  # stale rule: the last poll error
    note: str | None = None  # e.g. why it resolved without a rate
    age: float | None = None  # stale rule: seconds since the last successful poll
    stale_after: float | None = None  # stale rule: the age at which it fires
    baseline: float | None = None  # sequential rules: the agent's normal rate
    baseline_source: str | None = None  # "configured", "learned", "fallback (...)"
    evidence: float | None = None  # sequential rules: fire evidence / firing limit

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule, self.agent_id)


@dataclass(frozen=True, slots=True)
class Transition:
    key: tuple[str, str]
    old: State
    new: State
    alert: AlertState


@dataclass(frozen=True, slots=True)
class Evaluation:
    """States that are not inactive, the transitions of this evaluation, and every (rule,
    agent) pair the rules looked at (for exporting 0 for healthy agents)."""

    states: dict[tuple[str, str], AlertState]
    transitions: list[Transition]
    covered: dict[str, tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    agent_id: str  # exact; "*" for workspace-scope and stale alerts
    rule: str | None  # None: every rule
    starts_at: float
    ends_at: float
    reason: str = ""
    created_at: float = 0.0
    created_by: str = ""  # "@alice" (a Slack action) or "bob (cli)"; "" before schema 4
    until_resolved: bool = False  # ends when its alert resolves (ends_at is only a cap)

    def matches(self, rule: str, agent_id: str, now: float) -> bool:
        return (
            self.starts_at <= now < self.ends_at
            and self.agent_id == agent_id
            and (self.rule is None or self.rule == rule)
        )


def is_silenced(silences: Iterable[Silence], rule: str, agent_id: str, now: float) -> bool:
    return any(s.matches(rule, agent_id, now) for s in silences)
