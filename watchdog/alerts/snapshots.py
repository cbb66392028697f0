"""What a message shows about an alert: ``AlertSnapshot`` values built from alert states,
the rules and the current window counts (for the sparkline). Pure: reads a ``CountsView``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ..model import WORKSPACE_AGENT, CountsView
from ..notify import AlertSnapshot
from .incidents import Snapshotter
from .state import STALE_RULE, AlertState, Rule
from .stopped import baseline_label

# agent id -> a human name (config's slack.agent_names, later the agent directory), or None
NameOf = Callable[[str], str | None]


class Snapshots:
    """Builds snapshots for one rule set. ``bind(view)`` gives the planner's ``Snapshotter``."""

    def __init__(self, rules: Sequence[Rule], name_of: NameOf, points: int) -> None:
        self._rules: Mapping[str, Rule] = {r.name: r for r in rules}
        self._name_of = name_of
        self._points = points

    def bind(self, view: CountsView | None) -> Snapshotter:
        def snap(st: AlertState, base: AlertSnapshot | None) -> AlertSnapshot:
            return self.snapshot(st, view, base)

        return snap

    def _sparkline(self, rule: Rule, agent_id: str, view: CountsView) -> tuple[float | None, ...]:
        agent = None if rule.scope == "workspace" else agent_id
        try:
            return tuple(view.series(agent, rule.outcome, rule.window, self._points))
        except (KeyError, ValueError, IndexError):  # decoration: never fail a notice for it
            return ()

    def snapshot(
        self, st: AlertState, view: CountsView | None, base: AlertSnapshot | None = None
    ) -> AlertSnapshot:
        """What a message shows about ``st``. ``base``: an earlier snapshot of the same
        alert, for alerts whose rule is no longer configured."""
        rule = self._rules.get(st.rule)
        spark: tuple[float | None, ...] = ()
        confidence: float | None = None
        confirm: str | None = None
        scope: str
        if rule is not None and rule.kind == "calls_stopped":
            outcome, window, scope = "", baseline_label(rule.baseline), "stopped"
        elif rule is not None:
            outcome, window, scope = rule.outcome, rule.window, rule.scope
            confidence, confirm = rule.confidence, rule.confirm_window
            if view is not None:
                spark = self._sparkline(rule, st.agent_id, view)
        elif st.rule == STALE_RULE:
            outcome, window, scope = "", "", "stale"
        elif base is not None:
            outcome, window, scope = base.outcome, base.window, base.scope
            confidence, confirm, spark = base.confidence, base.confirm_window, base.sparkline
        else:
            outcome, window = "?", "?"
            scope = "workspace" if st.agent_id == WORKSPACE_AGENT else "agent"
        return AlertSnapshot(
            rule=st.rule,
            agent_id=st.agent_id,
            severity=st.severity,
            state=st.state.value,
            outcome=outcome,
            window=window,
            scope=scope,
            agent_name=self._name_of(st.agent_id),
            rate=st.rate,
            calls=st.calls,
            hits=st.hits,
            threshold=st.threshold,
            clear_below=st.clear_below,
            confidence=confidence,
            bound=st.bound,
            confirm_window=confirm,
            fired_at=st.fired_at,
            resolved_at=st.resolved_at,
            peak_rate=st.peak_rate,
            baseline=st.baseline,
            baseline_source=st.baseline_source,
            evidence=st.evidence,
            resolved_rate=st.resolved_rate,
            sparkline=spark,
            last_error=st.last_error,
            note=st.note,
            age=st.age,
            stale_after=st.stale_after,
        )
