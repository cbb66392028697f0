"""Signs of life from the poll loop: the heartbeat, and the API observer that beats it."""

from __future__ import annotations

from .clock import Clock
from .metrics import Metrics


class Heartbeat:
    """When the poll loop last showed life (a request finished, a cycle started)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.at = clock.now()

    def beat(self) -> None:
        self.at = self.clock.now()


class ApiMetrics:
    """Feeds API request outcomes to the metrics and keeps the heartbeat fresh."""

    def __init__(self, metrics: Metrics, heartbeat: Heartbeat) -> None:
        self.metrics = metrics
        self.heartbeat = heartbeat

    def request(self, code: str, seconds: float) -> None:
        self.metrics.request(code, seconds)
        self.heartbeat.beat()

    def invalid_items(self, n: int) -> None:
        self.metrics.invalid_items(n)

    def rate_limit_remaining(self, remaining: float) -> None:
        self.metrics.rate_limit_remaining(remaining)
