"""Rule levels that may be relative (``threshold: 3x``) and the sequential detector's checks
and defaults (``detector: sequential``; README: Sequential detection)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator

from .types import DAY, PositiveRatio

YEAR = 365 * DAY
_MULTIPLE = re.compile(r"(\d+(?:\.\d+)?)\s*x")

# What a sequential rule uses for the keys it leaves out.
SEQUENTIAL_DEFAULTS: dict[str, Any] = {
    "false_alarm": 10 * YEAR,
    "baseline": "learned",
    "baseline_window": 7 * DAY,
    "baseline_fallback": 0.05,
    "baseline_prior_calls": 100.0,
    "baseline_floor": 0.005,
    "baseline_min_calls": 200,
    "fast_threshold": None,  # off: one CUSUM, as before fast_threshold existed
}


def _multiple(v: Any) -> Any:
    """``3x`` (a multiple of the agent's baseline, sequential rules) as the string ``3x``."""
    if isinstance(v, str):
        m = _MULTIPLE.fullmatch(v.strip().lower())
        if m is None:
            raise ValueError(f"{v!r}: use a rate between 0 and 1 (0.2) or a multiple (3x)")
        factor = float(m.group(1))
        if not 1.0 <= factor <= 1000.0:
            raise ValueError(f"{v!r}: a multiple of the baseline must be between 1x and 1000x")
        return f"{factor:g}x"
    return v


# A rate (0.2), or a multiple of the agent's baseline ("3x", sequential rules only).
Multiple = Annotated[str, BeforeValidator(_multiple)]
Level = PositiveRatio | Multiple


def level(v: float | str) -> tuple[float, bool]:
    """(value, relative) of a ``Level``: ``3x`` -> (3.0, True), 0.2 -> (0.2, False)."""
    if isinstance(v, str):
        return float(v[:-1]), True
    return float(v), False


def _above(clear: float | str, threshold: float | str) -> bool:
    """clear_below above threshold, when both are of one kind (else it cannot be told)."""
    (c, crel), (t, trel) = level(clear), level(threshold)
    return crel == trel and c > t


def check_detector(rule: Any) -> None:
    """A rule's settings that only make sense together (a ``RuleSettings``, validated
    field by field already); raises ValueError naming the field."""
    levels = [("threshold", rule.threshold), ("clear_below", rule.clear_below)]
    for agent, o in rule.overrides.items():
        levels += [(f"overrides.{agent}.threshold", o.threshold)]
        levels += [(f"overrides.{agent}.clear_below", o.clear_below)]
    relative = [(name, v) for name, v in levels if isinstance(v, str)]
    if rule.detector == "window":
        if relative:
            name, v = relative[0]
            raise ValueError(
                f"{name}: a multiple of the baseline ({v}) needs detector: sequential; "
                "window rules take a rate (0.2)"
            )
        return
    if rule.scope == "workspace":
        raise ValueError("detector: sequential watches each agent; use scope: agent")
    if rule.confidence is not None or rule.confirm_window is not None:
        raise ValueError(
            "confidence and confirm_window are window-rule settings; a sequential rule's "
            "false alarms are set by false_alarm"
        )
    for name, v in relative:
        if name.endswith("threshold") and level(v)[0] <= 1.0:
            raise ValueError(f"{name}: a multiple of the baseline must be above 1x")
    fast = rule.fast_threshold
    if fast is not None:
        if isinstance(fast, str) and level(fast)[0] <= 1.0:
            raise ValueError("fast_threshold: a multiple of the baseline must be above 1x")
        if rule.threshold is not None:
            (f, frel), (t, trel) = level(fast), level(rule.threshold)
            if frel == trel and f <= t:
                raise ValueError(
                    f"fast_threshold ({fast}) must be above threshold ({rule.threshold}): "
                    "it tests for a larger rise"
                )
        levels.append(("fast_threshold", fast))
    if isinstance(rule.baseline, float):  # a fixed baseline: an absolute threshold above it
        for name, v in levels:
            if isinstance(v, float) and name.endswith("threshold") and v <= rule.baseline:
                raise ValueError(
                    f"{name} ({v}) must be above the baseline ({rule.baseline}): the test "
                    "is for a rate rising from the baseline to the threshold"
                )
