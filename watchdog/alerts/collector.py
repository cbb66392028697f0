"""Alert metrics, read at scrape time from what the pipeline and delivery last published.

``dialnexa_alert_firing`` / ``_pending`` per (rule, agent) the evaluation looked at, Slack
delivery results, the outbox backlog, and the state store's commit health. Reads only
immutable snapshots and counters taken under their owners' locks: a scrape never waits for
an evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..notify import Reason
from .pipeline import AlertView, CommitHealth
from .state import State


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
            GaugeMetricFamily(
                "dialnexa_alert_firing",
                '1 while the alert is firing, else 0 (agent_id "*": workspace-wide or stale)',
                labels=labels,
            ),
            GaugeMetricFamily(
                "dialnexa_alert_pending",
                "1 while the alert's condition holds but 'for' has not yet passed, else 0",
                labels=labels,
            ),
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

    def collect(self) -> Iterator[Metric]:
        firing, pending, slack, outbox, parked, failures, uncommitted, evidence = self._families()
        view = self._view()
        seen: set[tuple[str, str]] = set()
        for rule, agents in view.covered.items():
            default = self._severities.get(rule, "critical")
            for agent in agents:
                seen.add((rule, agent))
                st = view.states.get((rule, agent))
                state = st.state if st is not None else State.INACTIVE
                labels = [rule, agent, st.severity if st is not None else default]
                firing.add_metric(labels, 1.0 if state is State.FIRING else 0.0)
                pending.add_metric(labels, 1.0 if state is State.PENDING else 0.0)
        for key, st in view.states.items():
            if key not in seen:
                labels = [key[0], key[1], st.severity]
                firing.add_metric(labels, 1.0 if st.state is State.FIRING else 0.0)
                pending.add_metric(labels, 1.0 if st.state is State.PENDING else 0.0)
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
        yield from (firing, pending, slack, outbox, parked, failures, uncommitted, evidence)
