"""The charts' data: for chosen (agent, window, outcome) triples, the window's calls and
outcome count at every cycle of a replay (a second pass, made only for ``--html``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..model import CountsView
from .engine import Cycles

Line = tuple[str, str, str]  # (agent, window label, outcome)


@dataclass(slots=True)
class Series:
    times: list[float] = field(default_factory=list)
    calls: dict[Line, list[int]] = field(default_factory=dict)
    hits: dict[Line, list[int]] = field(default_factory=dict)


def wanted(report: Mapping[str, Any], limit: int) -> dict[str, list[tuple[str, str]]]:
    """Agent -> (window, outcome) of every rule that fired for it in any set, for the
    ``limit`` agents with the most incidents (ties: agent id)."""
    count: dict[str, int] = {}
    pairs: dict[str, set[tuple[str, str]]] = {}
    for s in report["sets"]:
        rules = {r["name"]: r for r in s["rules"]}
        for e in s["incidents"]:
            r = rules.get(e["rule"])
            if r is None or r["scope"] != "agent":
                continue
            count[e["agent"]] = count.get(e["agent"], 0) + 1
            pairs.setdefault(e["agent"], set()).add((r["window"], r["outcome"]))
    top = sorted(count, key=lambda a: (-count[a], a))[:limit]
    return {a: sorted(pairs[a]) for a in top}


def sample(cycles: Cycles, view: CountsView, lines: Iterable[Line]) -> Series:
    """Step ``cycles`` and read each line's counts after every cycle."""
    chosen: Sequence[Line] = list(lines)
    out = Series()
    for line in chosen:
        out.calls[line] = []
        out.hits[line] = []
    for at, _, _ in cycles:
        out.times.append(at)
        for line in chosen:
            agent, window, outcome = line
            c = view.counts(agent, window)
            out.calls[line].append(c.calls)
            out.hits[line].append(c.outcomes.get(outcome, 0))
    return out
