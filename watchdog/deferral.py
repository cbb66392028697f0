"""Around the tracker's plan: listings the rate budget deferred, shown (see
``ingest.budget``); a status filter the API rejects or ignores (the live listing); the choice
between one workspace listing and one per agent (``poll.listing: auto``)."""

from __future__ import annotations

import logging

from .config import Settings
from .ingest.budget import KINDS, Selection, starvation_bound
from .ingest.client import Listing
from .ingest.ratelimit import RateLimiter
from .ingest.tracker import Tracker, listing_costs
from .logs import Throttle
from .metrics import Metrics
from .model import Call, Range

log = logging.getLogger("watchdog.daemon")


def live_listing_works(listing: Listing, tracker: Tracker) -> bool:
    """False when the API rejected the status filter (a 4xx) or ignored it (most items it
    returned are not in progress); then the tracker falls back to re-reading ranges, once
    and for good, with one log line. Either way what was listed is applied as it is."""
    err = listing.error
    rejected = err is not None and err.kind == "client_error"
    pending = tracker.classes.pending
    ended = sum(1 for c in listing.calls if c.status not in pending)
    ignored = ended > max(5, len(listing.calls) // 2)
    if not (rejected or ignored):
        return True
    tracker.use_ranges()
    log.warning(
        "the API %s the status=in-progress filter: pending calls are re-read by range from "
        "now on (poll.pending_listing: ranges avoids trying)",
        "rejects" if rejected else "ignores",
        extra={"items": len(listing.calls), "not_in_progress": ended},
    )
    return False


SHORT_CYCLES = 10  # cycles in a row short of budget before ``auto`` drops the live listing


def auto_to_ranges(settings: Settings, tracker: Tracker, short_cycles: int) -> bool:
    """``poll.pending_listing: auto``: the live listing costs about one page per 100 calls in
    conversation every ``pending_recheck``; when the budget stays short with it (ranges
    waiting past the starvation bound ``SHORT_CYCLES`` cycles in a row, as at 1M calls/day
    within 75 requests a minute), the calls it finds ended wait behind it, and re-reading
    by range (backing off by age) counts completed calls sooner. Switch once, for good,
    with one log line. Returns whether it switched."""
    if settings.poll.pending_listing != "auto" or not tracker.live or short_cycles < SHORT_CYCLES:
        return False
    tracker.use_ranges()
    log.warning(
        "the rate budget is short with the status=in-progress listing: pending calls are "
        "re-read by range from now on (poll.pending_listing: status keeps it)",
        extra={"short_cycles": short_cycles},
    )
    return True


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


def choose_listing(
    settings: Settings, tracker: Tracker, calls: list[Call], ranges: list[Range]
) -> dict[str, int] | None:
    """``poll.listing: auto`` with an explicit agent list: the backfill listed the whole
    workspace; from the call rates it saw, estimate a cycle's requests both ways (one
    listing of everything vs one per agent, each at least one request) and keep the
    cheaper. Logged with both estimates, and returned (None: nothing to choose)."""
    agents = tracker.cfg.agents
    if settings.poll.listing != "auto" or not agents or tracker.per_agent:
        return None
    span = max(1.0, max(r.end - r.start for r in ranges))
    # the calls one cycle re-reads: the head plus about one conversation's worth
    reread = settings.poll.settle_horizon + settings.poll.max_call_duration / 3
    workspace, separate = listing_costs(calls, span, reread, agents)
    if separate < workspace:
        tracker.use_per_agent()
    log.info(
        "listing chosen",
        extra={
            "listing": "per_agent" if tracker.per_agent else "workspace",
            "est_requests_workspace": workspace,
            "est_requests_per_agent": separate,
        },
    )
    return {"workspace": workspace, "per_agent": separate}
