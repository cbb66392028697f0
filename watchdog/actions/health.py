"""Whether Slack can reach the watchdog's buttons and slash command, as a metric:
``dialnexa_slack_actions_connected{mode}`` is 1 while Socket Mode holds its WebSocket (or the
HTTP listener serves), 0 while it does not. Pages still go out without it; people cannot
acknowledge or silence from Slack."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

NAME = "dialnexa_slack_actions_connected"


class Connected(Protocol):
    @property
    def connected(self) -> bool: ...


class ActionsCollector(Collector):
    def __init__(self, transport: Connected, mode: str) -> None:
        self.transport = transport
        self.mode = mode

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily(
            NAME,
            "1 while Slack can deliver button presses and /dialnexa to this watchdog "
            "(Socket Mode connected, or the HTTP listener serving), else 0",
            labels=["mode"],
        )
        g.add_metric([self.mode], 1.0 if self.transport.connected else 0.0)
        yield g
