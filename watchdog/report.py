"""Terminal tables of the current rates (``once``, ``demo``)."""

from __future__ import annotations

from collections.abc import Callable

from .notify.wording import printable
from .windows import Windows


def _pct(r: float | None) -> str:
    return "   -  " if r is None else f"{r * 100:5.1f}%"


def rate_table(
    windows: Windows, limit: int = 50, name_of: Callable[[str], str | None] | None = None
) -> str:
    """The ``limit`` worst agents, one line per window. Worst first by the first outcome's
    ratio (``classes.outcomes``' first, ``failed`` by default) in the shortest window; an
    agent without calls there counts as 0; ties go by agent id. ``name_of`` (the agent
    directory's titles): an agent's name on its second line (on a line of its own with
    one window), control characters shown as U+FFFD."""
    labels = windows.labels  # shortest window first
    outcomes = list(windows.classes.outcomes)
    rows = []
    for agent in windows.agents():
        per = {w: windows.counts(agent, w) for w in labels}
        key = (per[labels[0]].ratio(outcomes[0]) or 0.0) if labels and outcomes else 0.0
        rows.append((key, agent, per))
    rows.sort(key=lambda r: (-r[0], r[1]))
    head = f"{'agent':<24} {'window':>6} {'calls':>7} " + " ".join(f"{o:>9}" for o in outcomes)
    lines = [head, "-" * len(head)]
    for _, agent, per in rows[:limit]:
        title = name_of(agent) if name_of is not None else None
        title = printable(title)[:24] if title else ""
        for i, w in enumerate(labels):
            wc = per[w]
            name = agent[:24] if i == 0 else (title if i == 1 else "")
            ratios = " ".join(f"{_pct(wc.ratio(o)):>9}" for o in outcomes)
            lines.append(f"{name:<24} {w:>6} {wc.calls:>7} {ratios}")
        if title and len(labels) == 1:
            lines.append(title)
    if len(rows) > limit:
        lines.append(f"... and {len(rows) - limit} more agents")
    if not rows:
        lines.append("(no settled calls in the windows)")
    return "\n".join(lines)
