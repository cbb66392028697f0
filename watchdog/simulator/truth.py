"""Sliding ground truth for scoring: per agent and observed status, the calls that settled in
each window ``(t - w, t]``, advanced incrementally (each call is added once and removed once
per window, so a whole run costs O(calls) whatever the tick)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .calls import to_ms

if TYPE_CHECKING:
    from .workspace import Workspace

Counts = dict[str, dict[str, int]]  # agent -> observed status -> calls


class TruthWindows:
    """``advance(t)`` then ``counts(w)``: agent -> status -> calls settling in (t - w, t]."""

    def __init__(self, sim: Workspace, windows: Sequence[float]) -> None:
        if not windows or any(not w > 0 for w in windows):
            raise ValueError("windows must be positive numbers of seconds")
        self._sim = sim
        self.windows: tuple[float, ...] = tuple(sorted(set(windows)))
        self._ms = {w: to_ms(w) for w in self.windows}
        self._counts: dict[float, Counts] = {w: {} for w in self.windows}
        self.t: float | None = None

    def advance(self, t: float) -> None:
        """Move every window's end to ``t`` (epoch seconds; never backwards)."""
        if self.t is not None and t < self.t:
            raise ValueError("truth windows only move forward")
        sim = self._sim
        end = to_ms(t)
        with sim._lock:
            store = sim._store
            names = store.observed_names()
            agents, agent_col, ov = store.agents, store.agent, store.ov
            for w in self.windows:
                counts = self._counts[w]
                span = self._ms[w]
                if self.t is None:
                    added, removed = store.settled_serials(end - span, end), None
                else:
                    prev = to_ms(self.t)
                    added = store.settled_serials(prev, end)
                    removed = store.settled_serials(prev - span, end - span)
                for k in added:
                    per = counts.setdefault(agents[agent_col[k]], {})
                    name = names[ov[k]]
                    per[name] = per.get(name, 0) + 1
                for k in removed or ():
                    agent_id = agents[agent_col[k]]
                    per = counts[agent_id]
                    name = names[ov[k]]
                    left = per[name] - 1
                    if left:
                        per[name] = left
                    else:
                        del per[name]
                        if not per:
                            del counts[agent_id]
        self.t = t

    def counts(self, window: float) -> Counts:
        """Agent -> observed status -> calls in the window ending at the last ``advance``
        (a live view: read it before the next ``advance``)."""
        if self.t is None:
            raise ValueError("call advance(t) first")
        return self._counts[window]

    def agent(self, agent_id: str, window: float) -> dict[str, int]:
        return dict(self.counts(window).get(agent_id, {}))
