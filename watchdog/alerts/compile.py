"""Rules from config: turns validated ``RuleSettings`` into the plain ``Rule`` values that the
pure evaluator (``rules.py``) takes, so that module never sees a pydantic model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..config import RuleSettings, Settings
from ..config.levels import level
from ..durations import window_label
from .evidence import EvidenceFeed
from .state import Limits, Rule, SequentialSpec

# ---- building rules from config --------------------------------------------------------


def _limits(threshold: float | str, clear: float | str, min_calls: int, for_s: float) -> Limits:
    t, t_rel = level(threshold)
    c, c_rel = level(clear)
    return Limits(t, c, min_calls, for_s, relative=t_rel, clear_relative=c_rel)


def _sequential(r: RuleSettings) -> SequentialSpec | None:
    if r.detector != "sequential":
        return None
    baseline = r.sequential("baseline")
    fast = r.sequential("fast_threshold")
    fast_level = level(fast) if fast is not None else None
    return SequentialSpec(
        false_alarm=float(r.sequential("false_alarm")),
        baseline=None if baseline == "learned" else float(baseline),
        baseline_window=float(r.sequential("baseline_window")),
        fallback=float(r.sequential("baseline_fallback")),
        prior_calls=float(r.sequential("baseline_prior_calls")),
        floor=float(r.sequential("baseline_floor")),
        min_history=int(r.sequential("baseline_min_calls")),
        fast=fast_level[0] if fast_level is not None else None,
        fast_relative=fast_level[1] if fast_level is not None else False,
    )


def compile_rules(rules: Sequence[RuleSettings], windows: Mapping[str, float]) -> list[Rule]:
    """Rules from validated config; ``windows`` is Settings.window_seconds."""
    out: list[Rule] = []
    for r in rules:
        if r.kind == "calls_stopped":
            out.append(_stopped(r))
            continue
        assert r.threshold is not None and r.outcome is not None and r.window is not None
        base = _limits(r.threshold, r.effective_clear_below, r.min_calls, r.for_)
        overrides: dict[str, Limits] = {}
        for agent, o in r.overrides.items():
            threshold = o.threshold if o.threshold is not None else r.threshold
            if o.clear_below is not None:
                clear = o.clear_below
            elif r.clear_below is not None:
                clear = r.clear_below
            else:
                clear = threshold
            overrides[agent] = _limits(
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
                sequential=_sequential(r),
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
        baseline=r.stopped_baseline,
        quiet_after=r.quiet_after,
    )


def evidence_feed(settings: Settings, rules: Sequence[Rule]) -> EvidenceFeed | None:
    """The sequential rules' feed, or None when every rule uses the window detector."""
    if all(r.sequential is None for r in rules):
        return None
    classes = settings.status_classes
    label, seconds = list(settings.window_seconds.items())[-1]
    return EvidenceFeed(rules, classes.denominator, classes.outcomes, (label, seconds))
