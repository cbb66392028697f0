"""Prometheus metrics. Snapshot values (window counts, ratios, call totals) come from one
custom Collector that reads current state at scrape time, so vanished label sets never linger.
Everything is registered on a registry passed in, never the global default."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .windows import Windows

API_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
POLL_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class WindowCollector(Collector):
    """dialnexa_calls_total, dialnexa_agent_outcome_ratio and dialnexa_agent_window_calls."""

    def __init__(self, windows: Windows, lock: threading.Lock) -> None:
        self.windows = windows
        self.lock = lock
        self.calls_total: dict[str, dict[str, int]] = {}  # agent -> status -> calls
        self.ready = False  # calls_total is hidden until backfill is done (no rate() spike)
        self._ratio_cache: dict[tuple[int, int], str] = {}
        self._ratio_blocks: dict[str, str] = {}  # agent -> its rendered lines
        self._calls_blocks: dict[str, str] = {}
        self._total_blocks: dict[str, str] = {}
        self._dirty_totals: set[str] = set()

    def render(self) -> bytes:
        """The three families in the text exposition format, written directly.

        prometheus_client builds a Sample object per line: at 10,000 agents (~125k lines)
        that is over a second per scrape. Here each agent's lines are kept as rendered text
        and only the agents whose counts changed since the last scrape (Windows.take_dirty)
        are rendered again, so a scrape costs a join plus the few hundred agents that moved.
        """
        with self.lock:
            for agent in self.windows.take_dirty():
                self._render_agent(agent)
            for agent in self._dirty_totals:
                self._render_totals(agent)
            self._dirty_totals.clear()
            if not self.ready:
                totals: Iterable[str] = ()
            else:
                totals = self._total_blocks.values()
            return "".join(
                [
                    "# HELP dialnexa_agent_outcome_ratio Share of the window's settled calls "
                    "(denominator statuses) with this outcome.\n"
                    "# TYPE dialnexa_agent_outcome_ratio gauge\n",
                    *self._ratio_blocks.values(),
                    "# HELP dialnexa_agent_window_calls Settled calls in the window that count "
                    "in the denominator of the ratios.\n"
                    "# TYPE dialnexa_agent_window_calls gauge\n",
                    *self._calls_blocks.values(),
                    "# HELP dialnexa_calls_total Calls by final status, each counted once when "
                    "first seen settled.\n"
                    "# TYPE dialnexa_calls_total counter\n",
                    *totals,
                ]
            ).encode()

    def _render_agent(self, agent: str) -> None:
        ratios: list[str] = []
        calls: list[str] = []
        a = _escape(agent)
        present = False
        for label in self.windows.labels:
            counts = self.windows.raw_counts(agent, label)
            if counts is None:
                continue
            present = True
            wc = self.windows.to_counts(counts)
            wl = _escape(label)
            calls.append(
                f'dialnexa_agent_window_calls{{agent_id="{a}",window="{wl}"}} {wc.calls}\n'
            )
            if wc.calls:
                for outcome, h in wc.outcomes.items():
                    ratios.append(
                        f'dialnexa_agent_outcome_ratio{{agent_id="{a}",outcome="{outcome}",'
                        f'window="{wl}"}} {self._ratio(h, wc.calls)}\n'
                    )
        if present:
            self._ratio_blocks[agent] = "".join(ratios)
            self._calls_blocks[agent] = "".join(calls)
        else:
            self._ratio_blocks.pop(agent, None)
            self._calls_blocks.pop(agent, None)

    def _render_totals(self, agent: str) -> None:
        a = _escape(agent)
        self._total_blocks[agent] = "".join(
            f'dialnexa_calls_total{{agent_id="{a}",status="{_escape(status)}"}} {n}\n'
            for status, n in self.calls_total[agent].items()
        )

    def _ratio(self, hits: int, n: int) -> str:
        key = (hits, n)
        text = self._ratio_cache.get(key)
        if text is None:
            text = repr(hits / n)
            if len(self._ratio_cache) < 100_000:
                self._ratio_cache[key] = text
        return text

    def count_settled(self, agent_id: str, status: str) -> None:
        per = self.calls_total.get(agent_id)
        if per is None:
            per = self.calls_total[agent_id] = {}
        per[status] = per.get(status, 0) + 1
        self._dirty_totals.add(agent_id)

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
                for agent, per in self.calls_total.items():
                    for status, n in per.items():
                        total.add_metric([agent, status], n)
        yield ratio
        yield calls
        yield total


def _escape(value: str) -> str:
    """A label value for the text format: backslash, double quote and newline escaped."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def render(registry: CollectorRegistry, windows: WindowCollector) -> bytes:
    """The whole /metrics body: the registry's metrics, then the per-agent families."""
    return generate_latest(registry) + windows.render()


class Metrics:
    """The daemon's own metrics, plus the window collector."""

    def __init__(self, registry: CollectorRegistry, windows: Windows, lock: threading.Lock) -> None:
        self.registry = registry
        # not registered: rendered by render() (fast); collect() still works for tooling
        self.windows = WindowCollector(windows, lock)
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

    def body(self) -> bytes:
        """The /metrics response body."""
        return render(self.registry, self.windows)

    # ApiObserver
    def request(self, code: str, seconds: float) -> None:
        self.requests.labels(code).inc()
        self.request_seconds.observe(seconds)

    def invalid_items(self, n: int) -> None:
        self.invalid.inc(n)

    def rate_limit_remaining(self, remaining: float) -> None:
        self.rate_limit.set(max(0.0, remaining))
