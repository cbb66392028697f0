"""Prometheus metrics. Snapshot values (window counts, ratios, call totals) come from one
custom Collector that reads current state at scrape time, so vanished label sets never linger.
Everything is registered on a registry passed in, never the global default."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from watchdog.windows import Windows

API_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
POLL_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class WindowCollector(Collector):
    """dialnexa_calls_total, dialnexa_agent_outcome_ratio and dialnexa_agent_window_calls."""

    def __init__(self, windows: Windows, lock: threading.Lock) -> None:
        self.windows = windows
        self.lock = lock
        self.calls_total: dict[tuple[str, str], int] = {}
        self.ready = False  # calls_total is hidden until backfill is done (no rate() spike)

    def count_settled(self, agent_id: str, status: str) -> None:
        key = (agent_id, status)
        self.calls_total[key] = self.calls_total.get(key, 0) + 1

    def collect(self) -> Iterator[Metric]:
        ratio = GaugeMetricFamily(
            "dialnexa_agent_outcome_ratio",
            "Share of the window's settled calls (denominator statuses) with this outcome.",
            labels=["agent_id", "outcome", "window"],
        )
        calls = GaugeMetricFamily(
            "dialnexa_agent_window_calls",
            "Settled calls in the window that count in the denominator of the ratios.",
            labels=["agent_id", "window"],
        )
        total = CounterMetricFamily(
            "dialnexa_calls",
            "Calls by final status, each counted once when first seen settled.",
            labels=["agent_id", "status"],
        )
        with self.lock:
            for label in self.windows.labels:
                for agent, wc in self.windows.snapshot(label).items():
                    calls.add_metric([agent, label], wc.calls)
                    if wc.calls:
                        for outcome, n in wc.outcomes.items():
                            ratio.add_metric([agent, outcome, label], n / wc.calls)
            if self.ready:
                for (agent, status), n in self.calls_total.items():
                    total.add_metric([agent, status], n)
        yield ratio
        yield calls
        yield total


class Metrics:
    """The daemon's own metrics, plus the window collector."""

    def __init__(self, registry: CollectorRegistry, windows: Windows, lock: threading.Lock) -> None:
        self.registry = registry
        self.windows = WindowCollector(windows, lock)
        registry.register(self.windows)
        self.up = Gauge(
            "dialnexa_up", "1 when the last poll of DialNexa succeeded.", registry=registry
        )
        self.last_success = Gauge(
            "dialnexa_last_successful_poll_timestamp_seconds",
            "Unix time of the last poll that succeeded.",
            registry=registry,
        )
        self.requests = Counter(
            "dialnexa_api_requests",
            "Requests to the DialNexa API by HTTP status code (or timeout / error).",
            ["code"],
            registry=registry,
        )
        for code in ("200", "429", "500", "timeout", "error"):
            self.requests.labels(code)
        self.request_seconds = Histogram(
            "dialnexa_api_request_duration_seconds",
            "Time per DialNexa API request.",
            buckets=API_BUCKETS,
            registry=registry,
        )
        self.poll_seconds = Histogram(
            "dialnexa_poll_duration_seconds",
            "Time per poll cycle (all listings and bookkeeping).",
            buckets=POLL_BUCKETS,
            registry=registry,
        )
        self.invalid = Counter(
            "dialnexa_api_invalid_items",
            "Call items (or whole pages) that were unusable and skipped.",
            registry=registry,
        )
        self.stuck = Counter(
            "dialnexa_calls_stuck",
            "Calls dropped because they stayed unsettled past poll.max_pending_age.",
            ["agent_id"],
            registry=registry,
        )
        self.rate_limit = Gauge(
            "dialnexa_api_rate_limit_remaining",
            "Requests left in the API key's rate-limit window (X-RateLimit-Remaining).",
            registry=registry,
        )
        self.agents_dropped = Counter(
            "dialnexa_agents_dropped",
            "Agents ignored because poll.max_agents was reached.",
            registry=registry,
        )

    # ApiObserver
    def request(self, code: str, seconds: float) -> None:
        self.requests.labels(code).inc()
        self.request_seconds.observe(seconds)

    def invalid_items(self, n: int) -> None:
        self.invalid.inc(n)

    def rate_limit_remaining(self, remaining: float) -> None:
        self.rate_limit.set(max(0.0, remaining))


def sample(registry: CollectorRegistry, name: str, **labels: Any) -> float | None:
    """Convenience for tests and the CLI: a sample's value or None."""
    return registry.get_sample_value(name, {k: str(v) for k, v in labels.items()})
