"""Alert metrics, read at scrape time from what the pipeline and delivery last published.

``dialnexa_alert_firing`` / ``_pending`` per (rule, agent) the evaluation looked at, Slack
delivery results, the outbox backlog, and the state store's commit health. Reads only
immutable snapshots and counters taken under their owners' locks: a scrape never waits for
an evaluation.

/metrics takes the two per-alert families as text (``render_apart``: thousands of lines at
10,000 agents), rendered once per evaluation (the ``AlertView`` is replaced whole after
each) and kept until the next: scrapes between two polls join strings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..notify import Reason
from ..textformat import escape_label, gauge_header, rendered_apart
from .pipeline import AlertView, CommitHealth
from .state import State

_FIRING = "dialnexa_alert_firing"
_PENDING = "dialnexa_alert_pending"
_FIRING_HELP = '1 while the alert is firing, else 0 (agent_id "*": workspace-wide or stale)'
_PENDING_HELP = "1 while the alert's condition holds but 'for' has not yet passed, else 0"


class AlertCollector(Collector):
    def __init__(
        self,
        view: Callable[[], AlertView],
        severities: Mapping[str, str],
        health: Callable[[], CommitHealth],
        results: Callable[[], dict[Reason, int]],
        backlog: Callable[[], tuple[int, int]],
    ) -> None:
        """``severities``: rule name -> configured severity (for covered pairs without a
        state); ``results``: delivery results, or None when notifications are not Slack."""
        self._view = view
        self._severities = severities
        self._health = health
        self._results = results
        self._backlog = backlog
        # the view the text below was rendered from, and the sample lines of both families
        self._text: tuple[AlertView, str, str] | None = None
        self._lines: dict[tuple[str, str, str, State], tuple[str, str]] = {}

    def _families(
        self,
    ) -> tuple[
        GaugeMetricFamily,
        GaugeMetricFamily,
        CounterMetricFamily,
        GaugeMetricFamily,
        GaugeMetricFamily,
        CounterMetricFamily,
        GaugeMetricFamily,
        GaugeMetricFamily,
    ]:
        labels = ["rule", "agent_id", "severity"]
        return (
            GaugeMetricFamily(_FIRING, _FIRING_HELP, labels=labels),
            GaugeMetricFamily(_PENDING, _PENDING_HELP, labels=labels),
            CounterMetricFamily(
                "dialnexa_slack_notifications",
                "Slack delivery attempts by result",
                labels=["result"],
            ),
            GaugeMetricFamily(
                "dialnexa_slack_outbox_messages",
                "Notifications written to the outbox and not yet delivered",
            ),
            GaugeMetricFamily(
                "dialnexa_slack_outbox_parked_messages",
                "Notifications held after a permanent Slack error (bad token, unknown "
                "channel) until delivery works again",
            ),
            CounterMetricFamily(
                "dialnexa_state_commit_failures",
                "Evaluations whose changes could not be written to the state store",
            ),
            GaugeMetricFamily(
                "dialnexa_state_uncommitted_changes",
                "Alert changes kept in memory because the state store cannot be written",
            ),
            GaugeMetricFamily(
                "dialnexa_alert_evidence_ratio",
                "Sequential rules: the evidence that the agent's rate rose to the threshold, "
                "as a share of the firing limit (fires at 1); only pairs above 0",
                labels=["rule", "agent_id"],
            ),
        )

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def _pairs(self, view: AlertView) -> Iterator[tuple[str, str, str, State]]:
        """(rule, agent, severity, state) of every series: the covered pairs (inactive ones
        export 0), then the states of pairs no rule covers any more."""
        seen: set[tuple[str, str]] = set()
        states = view.states
        for rule, agents in view.covered.items():
            default = self._severities.get(rule, "critical")
            for agent in agents:
                seen.add((rule, agent))
                st = states.get((rule, agent))
                if st is None:
                    yield rule, agent, default, State.INACTIVE
                else:
                    yield rule, agent, st.severity, st.state
        for key, st in states.items():
            if key not in seen:
                yield key[0], key[1], st.severity, st.state

    def render_apart(self, openmetrics: bool) -> str:
        """``dialnexa_alert_firing`` and ``_pending`` as prometheus_client writes them (labels
        sorted by name), from the text kept for the current view."""
        view = self._view()
        text = self._text
        if text is None or text[0] is not view:
            firing: list[str] = []
            pending: list[str] = []
            kept, lines = self._lines, {}  # a pair's two lines, from the last render if seen
            for pair in self._pairs(view):
                both = kept.get(pair)
                if both is None:
                    rule, agent, severity, state = pair
                    labels = (
                        f'{{agent_id="{escape_label(agent)}",rule="{escape_label(rule)}",'
                        f'severity="{escape_label(severity)}"}} '
                    )
                    both = (
                        f"{_FIRING}{labels}{'1.0' if state is State.FIRING else '0.0'}\n",
                        f"{_PENDING}{labels}{'1.0' if state is State.PENDING else '0.0'}\n",
                    )
                lines[pair] = both
                firing.append(both[0])
                pending.append(both[1])
            self._lines = lines
            text = self._text = (view, "".join(firing), "".join(pending))
        return "".join(
            [
                gauge_header(_FIRING, _FIRING_HELP, openmetrics),
                text[1],
                gauge_header(_PENDING, _PENDING_HELP, openmetrics),
                text[2],
            ]
        )

    def collect(self) -> Iterator[Metric]:
        firing, pending, slack, outbox, parked, failures, uncommitted, evidence = self._families()
        view = self._view()
        if not rendered_apart():  # else /metrics appends render_apart's text
            for rule, agent, severity, state in self._pairs(view):
                labels = [rule, agent, severity]
                firing.add_metric(labels, 1.0 if state is State.FIRING else 0.0)
                pending.add_metric(labels, 1.0 if state is State.PENDING else 0.0)
        for reason, n in self._results().items():
            slack.add_metric([reason], float(n))
        waiting, held = self._backlog()
        outbox.add_metric([], float(max(0, waiting)))
        parked.add_metric([], float(max(0, held)))
        h = self._health()
        failures.add_metric([], float(h.failures))
        uncommitted.add_metric([], float(h.uncommitted))
        for (rule, agent), ratio in view.evidence.items():
            evidence.add_metric([rule, agent], ratio)
        if not rendered_apart():
            yield from (firing, pending)
        yield from (slack, outbox, parked, failures, uncommitted, evidence)
