"""An in-memory CountsView for rule and alerting tests: plain data, set by the test."""

from __future__ import annotations

from dialnexa_watchdog.model import WindowCounts


class FakeView:
    def __init__(self, windows: tuple[str, ...] = ("5m", "15m", "1h")) -> None:
        self.windows = list(windows)
        self.data: dict[tuple[str, str], WindowCounts] = {}

    def set(self, agent: str, calls: int, window: str | None = None, **outcomes: int) -> None:
        """Counts for ``agent`` in ``window`` (every window when None)."""
        for w in [window] if window else self.windows:
            self.data[(agent, w)] = WindowCounts(calls, dict(outcomes))

    def rate(self, agent: str, rate: float, calls: int = 100, outcome: str = "failed") -> None:
        self.set(agent, calls, **{outcome: round(rate * calls)})

    def clear(self, agent: str) -> None:
        for key in [k for k in self.data if k[0] == agent]:
            del self.data[key]

    # ---- CountsView --------------------------------------------------------------------
    def agents(self) -> list[str]:
        return sorted({a for (a, _), c in self.data.items() if c.calls > 0})

    def window_labels(self) -> list[str]:
        return list(self.windows)

    def counts(self, agent_id: str, window: str) -> WindowCounts:
        return self.data.get((agent_id, window), WindowCounts(0, {}))

    def workspace(self, window: str) -> WindowCounts:
        calls = 0
        outcomes: dict[str, int] = {}
        for (_, w), c in self.data.items():
            if w != window:
                continue
            calls += c.calls
            for k, v in c.outcomes.items():
                outcomes[k] = outcomes.get(k, 0) + v
        return WindowCounts(calls, outcomes)

    def series(
        self, agent_id: str | None, outcome: str, window: str, points: int
    ) -> list[float | None]:
        c = self.workspace(window) if agent_id is None else self.counts(agent_id, window)
        r = c.ratio(outcome)
        # a rising line that ends at the current rate
        return [None if r is None else r * (i + 1) / points for i in range(points)]

    def candidates_many(self, queries: list[tuple[str, str, float, int]]) -> list[list[str]]:
        """As windows.Windows: per (window, outcome, threshold, min_calls), the agents with
        at least min_calls calls whose outcome share reaches the threshold (the fast path
        the evaluator takes when a view offers it)."""
        out: list[list[str]] = []
        for window, outcome, threshold, min_calls in queries:
            found = []
            for (agent, w), c in sorted(self.data.items()):
                if w != window or c.calls < max(1, min_calls):
                    continue
                if c.outcomes.get(outcome, 0) >= threshold * c.calls:
                    found.append(agent)
            out.append(found)
        return out
