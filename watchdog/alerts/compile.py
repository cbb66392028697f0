"""Rules from config: turns validated ``RuleSettings`` into the plain ``Rule`` values that the
pure evaluator (``rules.py``) takes, so that module never sees a pydantic model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..config import RuleSettings
from ..durations import window_label
from .state import Limits, Rule

# ---- building rules from config --------------------------------------------------------


def compile_rules(rules: Sequence[RuleSettings], windows: Mapping[str, float]) -> list[Rule]:
    """Rules from validated config; ``windows`` is Settings.window_seconds."""
    out: list[Rule] = []
    for r in rules:
        if r.kind == "calls_stopped":
            out.append(_stopped(r))
            continue
        assert r.threshold is not None and r.outcome is not None and r.window is not None
        base = Limits(r.threshold, r.effective_clear_below, r.min_calls, r.for_)
        overrides: dict[str, Limits] = {}
        for agent, o in r.overrides.items():
            threshold = o.threshold if o.threshold is not None else r.threshold
            if o.clear_below is not None:
                clear = o.clear_below
            elif r.clear_below is not None:
                clear = r.clear_below
            else:
                clear = threshold
            overrides[agent] = Limits(
                threshold,
                clear,
                o.min_calls if o.min_calls is not None else r.min_calls,
                o.for_ if o.for_ is not None else r.for_,
            )
        out.append(
            Rule(
                name=r.name,
                outcome=r.outcome,
                window=window_label(windows, r.window),
                limits=base,
                severity=r.severity,
                confidence=r.confidence,
                confirm_window=(
                    window_label(windows, r.confirm_window) if r.confirm_window else None
                ),
                agents=None if r.agents == "all" else frozenset(r.agents),
                exclude=frozenset(r.exclude),
                overrides=overrides,
                scope=r.scope,
            )
        )
    return out


def _stopped(r: RuleSettings) -> Rule:
    """A ``kind: calls_stopped`` rule (validated: no rate fields; overrides set min_calls
    and for only)."""
    overrides = {
        agent: Limits(
            0.0,
            0.0,
            o.min_calls if o.min_calls is not None else r.min_calls,
            o.for_ if o.for_ is not None else r.for_,
        )
        for agent, o in r.overrides.items()
    }
    return Rule(
        name=r.name,
        outcome="",
        window="",
        limits=Limits(0.0, 0.0, r.min_calls, r.for_),
        severity=r.severity,
        agents=None if r.agents == "all" else frozenset(r.agents),
        exclude=frozenset(r.exclude),
        overrides=overrides,
        kind="calls_stopped",
        baseline=r.baseline,
        quiet_after=r.quiet_after,
    )
