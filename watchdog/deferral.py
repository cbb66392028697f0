"""Showing what the rate budget deferred: never silent (see ``ingest.budget``)."""

from __future__ import annotations

from .config import Settings
from .ingest.budget import KINDS, Selection, starvation_bound
from .ingest.ratelimit import RateLimiter
from .logs import Throttle
from .metrics import Metrics


def show_deferred(
    sel: Selection,
    metrics: Metrics,
    throttle: Throttle,
    limiter: RateLimiter,
    settings: Settings,
    now: float,
) -> float:
    """Gauges by kind and the longest wait; a log line at most once per ``throttle``
    interval naming what was deferred and why. Returns how long heads have waited (the
    daemon's /readyz reason once that passes the starvation bound)."""
    for kind in KINDS:
        metrics.deferred.labels(kind).set(sel.deferred.get(kind, 0))
    metrics.deferred_wait.set(sel.oldest_wait)
    if sel.deferred:
        throttle.warning(
            "deferred",
            "listings deferred: the rate budget (dialnexa.rate_budget) does not cover them "
            "this cycle; any waiting longer than %ss goes first",
            round(starvation_bound(settings.poll.interval)),
            n=sel.deferred_total,
            extra={
                **{f"deferred_{k}": n for k, n in sorted(sel.deferred.items())},
                "oldest_wait_seconds": round(sel.oldest_wait, 1),
                "budget_per_period": limiter.allowed,
                "tokens": round(limiter.tokens(now), 2),
            },
        )
    return sel.heads_deferred_for
