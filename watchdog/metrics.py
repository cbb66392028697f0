"""Prometheus metrics. Snapshot values (window counts, ratios, call totals) come from one
custom Collector that reads current state at scrape time, so vanished label sets never linger.
Everything is registered on a registry passed in, never the global default.

``Metrics.exposition(accept)`` negotiates the format from the scraper's ``Accept`` header
exactly as prometheus_client's own handler does (its ``choose_encoder``): the Prometheus text
format by default, OpenMetrics when asked for."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.exposition import ALLOWUTF8, UNDERSCORES
from prometheus_client.registry import Collector

from . import __version__
from .textformat import APART, RendersApart
from .textformat import clean as _clean
from .textformat import escape_label as _escape
from .windows import Windows

OPENMETRICS = "application/openmetrics-text"
EOF = b"# EOF\n"

_RATIO = "dialnexa_agent_outcome_ratio"
_CALLS = "dialnexa_agent_window_calls"
_TOTAL = "dialnexa_calls"
_RATIO_HELP = "Share of the window's settled calls (denominator statuses) with this outcome."
_CALLS_HELP = "Settled calls in the window that count in the denominator of the ratios."
_TOTAL_HELP = "Calls by final status, each counted once when first seen settled."

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
        # the constant parts of an agent's lines, per window (and outcome)
        self._layout = windows.sum_layout
        self._calls_tails = [f'",window="{_escape(w)}"}} ' for w in windows.labels]
        self._ratio_tails = [
            [f'",outcome="{o}",window="{_escape(w)}"}} ' for o in windows.outcome_names]
            for w in windows.labels
        ]
        self._statuses: dict[str, str] = {}  # status -> its escaped label value

    def render(self, openmetrics: bool = False) -> bytes:
        """The three families in the text exposition format (or OpenMetrics), written directly.

        prometheus_client builds a Sample object per line: at 10,000 agents (~125k lines)
        that is over a second per scrape. Here each agent's lines are kept as rendered text
        and only the agents whose counts changed since the last scrape (Windows.take_dirty)
        are rendered again, so a scrape costs a join plus the few hundred agents that moved.
        The sample lines are the same in both formats; only the counter's HELP and TYPE
        name the family differently (``dialnexa_calls`` in OpenMetrics, ``..._total`` in
        text). No ``# EOF``: the caller ends the whole exposition.
        """
        total = _TOTAL if openmetrics else _TOTAL + "_total"
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
            text = "".join(
                [
                    f"# HELP {_RATIO} {_RATIO_HELP}\n# TYPE {_RATIO} gauge\n",
                    *self._ratio_blocks.values(),
                    f"# HELP {_CALLS} {_CALLS_HELP}\n# TYPE {_CALLS} gauge\n",
                    *self._calls_blocks.values(),
                    f"# HELP {total} {_TOTAL_HELP}\n# TYPE {total} counter\n",
                    *totals,
                ]
            )
        return text.encode()

    def _render_agent(self, agent: str) -> None:
        t = self.windows.kept_row(agent)  # under the lock: the poll thread cannot change it
        if t is None:
            self._ratio_blocks.pop(agent, None)
            self._calls_blocks.pop(agent, None)
            return
        a = _escape(agent)
        calls_head = f'{_CALLS}{{agent_id="{a}'
        ratio_head = f'{_RATIO}{{agent_id="{a}'
        calls: list[str] = []
        ratios: list[str] = []
        ratio = self._ratio
        for (d, hits), calls_tail, ratio_tails in zip(
            self._layout, self._calls_tails, self._ratio_tails, strict=True
        ):
            n = t[d]
            calls += (calls_head, calls_tail, str(n), "\n")
            if n:
                for h, tail in zip(hits, ratio_tails, strict=True):
                    ratios += (ratio_head, tail, ratio(t[h], n), "\n")
        self._ratio_blocks[agent] = "".join(ratios)
        self._calls_blocks[agent] = "".join(calls)

    def _render_totals(self, agent: str) -> None:
        a = _escape(agent)
        statuses = self._statuses
        lines = []
        for status, n in self.calls_total[agent].items():
            s = statuses.get(status)
            if s is None:
                s = _escape(status)
                if len(statuses) < 1000:
                    statuses[status] = s
            lines.append(f'dialnexa_calls_total{{agent_id="{a}",status="{s}"}} {n}\n')
        self._total_blocks[agent] = "".join(lines)

    def _ratio(self, hits: int, n: int) -> str:
        key = (hits, n)
        text = self._ratio_cache.get(key)
        if text is None:
            text = repr(hits / n)
            if len(self._ratio_cache) < 100_000:
                self._ratio_cache[key] = text
        return text

    def forget(self, agent_id: str) -> None:
        """Drop an agent's ``dialnexa_calls_total`` series (a deleted agent, once its window
        series are gone); caller holds the lock."""
        self.calls_total.pop(agent_id, None)
        self._total_blocks.pop(agent_id, None)
        self._dirty_totals.discard(agent_id)

    def count_settled(self, agent_id: str, status: str) -> None:
        per = self.calls_total.get(agent_id)
        if per is None:
            per = self.calls_total[agent_id] = {}
        per[status] = per.get(status, 0) + 1
        self._dirty_totals.add(agent_id)

    def collect(self) -> Iterator[Metric]:
        ratio = GaugeMetricFamily(_RATIO, _RATIO_HELP, labels=["agent_id", "outcome", "window"])
        calls = GaugeMetricFamily(_CALLS, _CALLS_HELP, labels=["agent_id", "window"])
        total = CounterMetricFamily(_TOTAL, _TOTAL_HELP, labels=["agent_id", "status"])
        with self.lock:
            for label in self.windows.labels:
                for agent, wc in self.windows.snapshot(label).items():
                    a = _clean(agent)
                    calls.add_metric([a, label], wc.calls)
                    if wc.calls:
                        for outcome, n in wc.outcomes.items():
                            ratio.add_metric([a, outcome, label], n / wc.calls)
            if self.ready:
                for agent, per in self.calls_total.items():
                    for status, n in per.items():
                        total.add_metric([_clean(agent), _clean(status)], n)
        yield ratio
        yield calls
        yield total


def _choose(accept: str | None) -> tuple[Callable[[Collector], bytes], str]:
    """choose_encoder, except that an Accept header it cannot handle (a version such as
    ``a.0``, which it compares with integers) or one that would put a control character
    into our Content-Type header gets the default format instead of an error."""
    try:
        encoder, content_type = choose_encoder(accept or "")
    except (TypeError, ValueError):
        return choose_encoder("")
    if not (content_type.isascii() and content_type.isprintable()):
        return choose_encoder("")
    return encoder, content_type


# escapings under which prometheus_client writes our (legacy-valid) names unchanged in both
# formats; under ``dots`` and ``values`` its own encoder renders the per-agent families too
_VERBATIM = frozenset({UNDERSCORES, ALLOWUTF8})


def _escaping_of(content_type: str) -> str:
    """The ``escaping=`` parameter choose_encoder put in the Content-Type it chose."""
    for part in content_type.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "escaping":
            return value
    return UNDERSCORES


class Metrics:
    """The daemon's own metrics, plus the window collector."""

    def __init__(self, registry: CollectorRegistry, windows: Windows, lock: threading.Lock) -> None:
        self.registry = registry
        # not registered: rendered by render() (fast); collect() still works for tooling
        self.windows = WindowCollector(windows, lock)
        # the slow path, for an exposition whose escaping renames our names (``dots``)
        self._windows_registry = CollectorRegistry(auto_describe=False)
        self._windows_registry.register(self.windows)
        self._apart: list[RendersApart] = []  # registered, their big families kept as text
        self.build_info = Gauge(
            "dialnexa_watchdog_build_info",
            "Always 1; the version label is the running dialnexa-watchdog's version.",
            ["version"],
            registry=registry,
        )
        self.build_info.labels(__version__).set(1)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
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
        for code in ("200", "429", "500", "timeout", "too_large", "error"):
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
        self.deferred = Gauge(
            "dialnexa_deferred_ranges",
            "Listings the rate budget (dialnexa.rate_budget) deferred in the last poll cycle, "
            "by kind: head (new calls), pending (calls in conversation), straggler, live.",
            ["kind"],
            registry=registry,
        )
        for kind in ("head", "pending", "straggler", "live"):
            self.deferred.labels(kind)
        self.deferred_wait = Gauge(
            "dialnexa_deferred_wait_seconds",
            "How long the longest-waiting deferred listing has waited (0: nothing deferred).",
            registry=registry,
        )
        self.agents_dropped = Counter(
            "dialnexa_agents_dropped",
            "Agents ignored because poll.max_agents was reached.",
            registry=registry,
        )

    def register_apart(self, collector: RendersApart) -> None:
        """Register ``collector`` (a ``prometheus_client`` Collector) on the registry, its big
        families rendered apart by /metrics."""
        self.registry.register(collector)  # type: ignore[arg-type]
        self._apart.append(collector)

    def unregister_apart(self, collector: RendersApart) -> None:
        """Undo ``register_apart`` (KeyError when it is not registered)."""
        self._apart.remove(collector)
        self.registry.unregister(collector)  # type: ignore[arg-type]

    def body(self) -> bytes:
        """The /metrics body in the Prometheus text format (what a scraper gets by default)."""
        return self.exposition(None)[0]

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The /metrics body and its Content-Type for a request's ``Accept`` header.

        The format, version and name escaping are chosen by prometheus_client's own
        ``choose_encoder`` (so this endpoint answers every Accept header as its
        ``MetricsHandler`` would); the registry is rendered by that encoder and the
        per-agent families by ``WindowCollector.render`` in the same format, before
        OpenMetrics' closing ``# EOF``.
        """
        encoder, content_type = _choose(accept)
        openmetrics = content_type.startswith(OPENMETRICS)
        # OpenMetrics: one "# EOF", at the very end (removesuffix copies: only where it is)
        if _escaping_of(content_type) in _VERBATIM:
            token = APART.set(True)
            try:
                parts = [encoder(self.registry)]
                parts += [c.render_apart(openmetrics).encode() for c in list(self._apart)]
            finally:
                APART.reset(token)
            parts.append(self.windows.render(openmetrics))  # no EOF
        else:
            parts = [encoder(self.registry), encoder(self._windows_registry)]
        if openmetrics:
            parts = [p.removesuffix(EOF) if p.endswith(EOF) else p for p in parts] + [EOF]
        return b"".join(parts), content_type

    # ApiObserver
    def request(self, code: str, seconds: float) -> None:
        self.requests.labels(code).inc()
        self.request_seconds.observe(seconds)

    def invalid_items(self, n: int) -> None:
        self.invalid.inc(n)

    def rate_limit_remaining(self, remaining: float) -> None:
        self.rate_limit.set(max(0.0, remaining))


def leader_gauge(registry: CollectorRegistry, leading: Callable[[], bool]) -> Gauge:
    gauge = Gauge(
        "dialnexa_leader",
        "1 on the replica that polls, evaluates and delivers; 0 on a standby.",
        registry=registry,
    )
    gauge.set_function(lambda: 1.0 if leading() else 0.0)
    return gauge
