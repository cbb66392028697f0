"""The daemon: run poll cycles on a schedule, hand each to alerting, serve HTTP, stop cleanly.

Longer than ~400 lines: one poll cycle's bookkeeping (listing, applying, the agent directory
and call activity, status, readiness) reads best in one class.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol

from . import sdnotify
from .activity import ActivityKeeper
from .clock import Clock
from .config import Settings
from .deferral import auto_to_ranges, choose_listing, live_listing_works, show_deferred
from .heartbeat import Heartbeat
from .ingest.budget import Selection, select, starvation_bound
from .ingest.client import ApiClient, ApiError, Listing, Stopped
from .ingest.directory import AgentDirectory
from .ingest.tracker import Applied, Tracker
from .logs import Throttle
from .metrics import Metrics
from .model import Call, CountsView, PollStatus, Range
from .readiness import deferred_reason, error_kind, poll_reasons
from .windows import Windows

log = logging.getLogger("watchdog.daemon")


class AlertHook(Protocol):
    """The alert path as the daemon sees it (``app.Alerts``)."""

    def on_poll(self, view: CountsView, poll: PollStatus, now: float) -> None: ...
    def on_tick(self, poll: PollStatus, now: float) -> None: ...
    def deliver_due(self, now: float) -> None: ...
    def readiness(self) -> list[str]: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class CycleReport:
    now: float
    ok: bool
    requests: int
    calls_seen: int
    settled: int
    pending: int
    ranges: int
    deferred: int
    seconds: float
    error: str | None = None
    settled_ids: tuple[str, ...] = ()  # calls counted this cycle (benchmarks measure freshness)


class Memory(Protocol):
    """Small values kept across restarts (the state store's meta table)."""

    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...


HOLD_KEY = "api_hold_until"  # a Retry-After (or rate-limit reset) outlives a restart


class Watchdog:
    """One daemon: poll cycles (client -> tracker -> windows), then the alert path.

    Built by ``app.build`` from parts; it builds nothing itself."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        *,
        client: ApiClient,
        tracker: Tracker,
        windows: Windows,
        metrics: Metrics,
        lock: threading.Lock,
        heartbeat: Heartbeat,
        alerts: AlertHook | None = None,
        on_cycle: Callable[[CycleReport], None] | None = None,
        timer: Callable[[], float] = time.perf_counter,
        memory: Memory | None = None,
        record: Callable[[float], object] | None = None,  # history.Recorder.record
        directory: AgentDirectory | None = None,
        activity: ActivityKeeper | None = None,  # with a calls_stopped rule
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.timer = timer
        self.lock = lock  # guards windows and tracker against the /metrics thread
        self.windows = windows
        self.tracker = tracker
        self.metrics = metrics
        self.client = client
        self.alerting = alerts
        self.on_cycle = on_cycle
        self.heartbeat = heartbeat
        self.status = PollStatus(started_at=clock.now())
        self.listing_estimates: dict[str, int] = {}
        self.memory = memory
        self.record = record
        self.directory = directory
        self.activity = activity
        self.heads_deferred_for = 0.0  # seconds new calls have waited for the budget
        self._short_cycles = 0  # cycles in a row with ranges waiting past the bound
        self._pre: tuple[int, list[str]] = (0, [])  # this cycle's live listing: requests, settled
        self._resuming = tracker.backfilled  # a warm restart: no backfill, the gap is listed
        self._held: float | None = None
        self._throttle = Throttle(log, max(60.0, settings.poll.interval), now=clock.now)
        self._restore_hold()
        # computed at scrape time: a poll thread stuck in a request cannot keep it at 1
        metrics.up.set_function(lambda: 1.0 if self.polling_ok else 0.0)

    # ---- state --------------------------------------------------------------------------
    def _restore_hold(self) -> None:
        if self.memory is None:
            return
        try:
            saved = self.memory.get_meta(HOLD_KEY)
            until = float(saved) if saved else None
        except Exception:  # an unreadable value must not stop the daemon
            log.warning("ignoring an unreadable saved API hold")
            return
        if until is not None and until > self.clock.now():
            self.client.hold(until)
            log.warning(
                "the API asked to wait before this restart; no request until then",
                extra={"hold_until": until, "seconds": round(until - self.clock.now())},
            )
        self._held = until

    def _save_hold(self) -> None:
        until = self.client.hold_until
        if self.memory is None or until == self._held:
            return
        try:
            self.memory.set_meta(HOLD_KEY, "" if until is None else repr(until))
            self._held = until
        except Exception:
            log.warning("cannot save the API hold in the state store; retrying next cycle")

    def _beat(self) -> None:
        self.heartbeat.beat()

    @property
    def polling_ok(self) -> bool:
        """The last poll succeeded, recently enough (within 3 intervals)."""
        s = self.status
        return (
            s.last_error is None
            and s.last_success is not None
            and self.clock.now() - s.last_success < 3 * self.settings.poll.interval
        )

    @property
    def ready(self) -> bool:
        return self.readiness()[0]

    def readiness(self) -> tuple[bool, list[str]]:
        """Ready, or why not: fixed phrases from httpd's vocabulary, never text from the API."""
        status, fresh_for = self.status, 3 * self.settings.poll.interval
        reasons = poll_reasons(status, self.clock.now(), fresh_for, status.last_error_kind)
        if self.heads_deferred_for >= starvation_bound(self.settings.poll.interval):
            reasons.append(deferred_reason(self.heads_deferred_for))
        if self.alerting is not None:
            reasons.extend(self.alerting.readiness())
        return not reasons, reasons

    def liveness(self) -> bool:
        return self.alive

    @property
    def alive(self) -> bool:
        limit = max(3 * self.settings.poll.interval, 120.0)
        return self.clock.now() - self.heartbeat.at < limit

    # ---- cycles -------------------------------------------------------------------------
    def backfill(self) -> CycleReport:
        """List the longest window (plus the longest call) once; sets ``backfilled``. The
        agent directory first, when its refresh is due (names and call limits)."""
        self._refresh_directory()
        now = self.clock.now()
        return self._cycle(self.tracker.plan_backfill(now), now, backfill=True)

    def poll_once(self) -> CycleReport:
        """One cycle: backfill first if it has not succeeded yet; the agent directory first
        when its refresh is due."""
        if not self.tracker.backfilled:
            return self.backfill()
        self._refresh_directory()
        now = self.clock.now()
        self._pre = self._watch_live(now)
        return self._cycle(self.tracker.plan(now), now, backfill=False)

    def _refresh_directory(self) -> None:
        """List the agents when due: before the calls, from the same rate budget (the
        listing that follows is chosen from what the limiter has left)."""
        d = self.directory
        if d is None or not d.due(self.clock.now()):
            return
        try:
            d.refresh()
        except Exception:  # a fault in the directory must never stop polling
            d.up = False
            log.exception("agent directory refresh failed")
        with self.lock:  # deleted or unpublished agents leave /metrics with their windows
            totals = self.metrics.windows
            for agent in [a for a in totals.calls_total if d.is_active(a) is False]:
                if all(self.windows.raw_counts(agent, w) is None for w in self.windows.labels):
                    totals.forget(agent)

    def _watch_live(self, now: float) -> tuple[int, list[str]]:
        """``pending_listing: status``: the live listing first, when due and within the
        budget, so that the calls it finds ended are re-read in this same cycle (otherwise
        it stays in the cycle's plan). Returns its requests and the calls it settled."""
        live = self.tracker.plan_live(now)
        interval = self.settings.poll.interval
        if not live or self.client.limiter.budget(now, interval) < live[0].est_requests:
            return 0, []
        try:
            listing = self.client.list_range(live[0])
        except Stopped:
            return 0, []
        works = live_listing_works(listing, self.tracker)
        with self.lock:
            done = live if works and listing.complete else []
            applied = self.tracker.apply(listing.calls, self.clock.now(), done)
            self._record(applied)  # an ignored filter lists ended calls too
        return listing.requests, applied.settled_ids

    def _select(self, ranges: list[Range], now: float) -> Selection:
        """What this cycle's rate budget covers (``ingest.budget.select``): overdue ranges
        first, then heads, then the rest while the token bucket lasts."""
        interval = self.settings.poll.interval
        allowance = self.client.limiter.budget(now, interval)
        return select(ranges, allowance, now, starvation_bound(interval), self.tracker.cursor())

    def _list(self, ranges: list[Range]) -> list[tuple[Range, Listing]]:
        if len(ranges) <= 1 or not self.tracker.per_agent:
            out = []
            for r in ranges:
                out.append((r, self.client.list_range(r)))
                err = out[-1][1].error
                if err is not None and err.permanent:
                    break  # 401/403: every further request would fail the same way
            return out
        with ThreadPoolExecutor(self.settings.dialnexa.concurrency) as pool:
            return list(zip(ranges, pool.map(self.client.list_range, ranges), strict=True))

    def _cycle(self, ranges: list[Range], now: float, backfill: bool) -> CycleReport:
        started = self.timer()
        self._beat()
        if backfill:
            sel = Selection(ranges)
        else:
            sel = self._select(ranges, now)
            # ranges waiting past the bound: the budget is short, pending calls back off by age
            self.tracker.short = sel.oldest_wait >= starvation_bound(self.settings.poll.interval)
            self._short_cycles = self._short_cycles + 1 if self.tracker.short else 0
            auto_to_ranges(self.settings, self.tracker, self._short_cycles)
            self.heads_deferred_for = show_deferred(
                sel, self.metrics, self._throttle, self.client.limiter, self.settings, now
            )
        chosen = sel.chosen
        try:
            results = self._list(chosen)
        except Stopped:
            results = []
        calls: list[Call] = []
        done: list[Range] = []
        errors: list[ApiError] = []
        (requests, pre_settled), self._pre = self._pre, (0, [])
        for r, listing in results:
            calls.extend(listing.calls)
            requests += listing.requests
            if r.kind == "live" and not live_listing_works(listing, self.tracker):
                continue
            covered = listing.covered(r)  # all of r, or the part a page cap reached
            if covered is not None:
                done.append(covered)
            elif listing.error is not None:
                errors.append(listing.error)
        heads = [r for r in chosen if r.kind in ("head", "backfill")]
        # a cycle the budget left empty did not fail (the deferral shows on its own)
        ok = (bool(results) or (not chosen and not backfill)) and all(r in done for r in heads)
        applied_at = self.clock.now()
        with self.lock:
            applied = self.tracker.apply(calls, applied_at, done, backfill=backfill and ok)
            if backfill and not ok:
                self.tracker.backfilled = False
            self._record(applied)
            pending = self.tracker.pending_count
        if self.activity is not None and not self.activity.cycle(
            calls, applied.settled_ids, applied_at
        ):
            self._throttle.warning("activity", "cannot save the agents' call activity; retrying")
        if self.record is not None:  # the history row and resume point (never raises)
            self.record(applied_at)
        first = errors[0] if errors else None
        error = first.reason if first is not None else (None if ok else "stopped")
        self._update_status(ok, applied_at, first)
        self._save_hold()
        seconds = self.timer() - started
        self.metrics.poll_seconds.observe(seconds)
        report = CycleReport(
            applied_at,
            ok,
            requests,
            len(calls),
            len(applied.new_terminal) + len(pre_settled),
            pending,
            len(chosen),
            sel.deferred_total,
            seconds,
            error,
            (*pre_settled, *applied.settled_ids),
        )
        if ok and backfill:
            self._choose_listing(calls, chosen)
            log.info(
                "backfill done",
                extra={"requests": requests, "calls": len(calls), "pending": pending},
            )
            sdnotify.ready()
        elif ok and self._resuming:
            self._resuming = False
            sdnotify.ready()
        elif not ok:
            kind = error_kind(first.kind, first.code) if first is not None else "other"
            self._throttle.warning(
                f"poll:{kind}", "poll failed: %s", error, extra={"requests": requests}
            )
        sdnotify.watchdog_ping()
        self._alert(applied_at)
        if self.on_cycle is not None:
            self.on_cycle(report)
        return report

    def _choose_listing(self, calls: list[Call], ranges: list[Range]) -> None:
        estimates = choose_listing(self.settings, self.tracker, calls, ranges)
        if estimates is not None:
            self.listing_estimates = estimates

    def _record(self, applied: Applied) -> None:
        for agent, status in applied.new_terminal:
            self.metrics.windows.count_settled(agent, status)
        for agent in applied.stuck:
            self.metrics.stuck.labels(agent).inc()
        if applied.stuck:
            log.warning(
                "dropped calls unsettled past poll.max_pending_age",
                extra={"calls": len(applied.stuck)},
            )
        if applied.dropped_agents:
            self.metrics.agents_dropped.inc(len(applied.dropped_agents))
            # an API inventing agent ids must not flood the log: one line per interval
            self._throttle.warning(
                "max_agents",
                "agents ignored: poll.max_agents reached",
                n=len(applied.dropped_agents),
                extra={
                    "example_agent_id": applied.dropped_agents[0],
                    "max_agents": self.settings.poll.max_agents,
                },
            )
        for status in sorted(applied.unknown_statuses):
            self._throttle.warning(
                f"status:{status}",
                'unknown call status counted as status="unknown"',
                extra={"status": status},
            )

    def _update_status(self, ok: bool, now: float, error: ApiError | None) -> None:
        s = self.status
        if ok:
            self.status = replace(
                s,
                last_success=now,
                last_error=None,
                last_error_kind=None,
                backfilled=self.tracker.backfilled,
            )
            self.metrics.last_success.set(now)
            self.metrics.windows.ready = self.tracker.backfilled
        else:
            reason = error.reason if error is not None else "stopped"
            kind = error_kind(error.kind, error.code) if error is not None else "other"
            self.status = replace(s, last_error=reason, last_error_kind=kind)

    def _alert(self, now: float) -> None:
        # The windows are only changed by this (the poll) thread, so evaluation reads them
        # without the lock /metrics needs: a scrape never waits for an evaluation.
        if self.alerting is None or not self.tracker.backfilled:
            return
        try:
            self.alerting.on_poll(self.windows, self.status, now)
        except Exception:  # a fault in alerting must never stop polling
            log.exception("alert evaluation failed")

    def tick(self) -> None:
        """The timer beside polling: the stale rule, independent of the poll thread."""
        if self.alerting is None:
            return
        try:
            self.alerting.on_tick(self.status, self.clock.now())
        except Exception:
            log.exception("stale check failed")

    def deliver(self) -> None:
        if self.alerting is None:
            return
        try:
            self.alerting.deliver_due(self.clock.now())
        except Exception:
            log.exception("alert delivery failed")

    def close(self) -> None:
        self.client.close()
        if self.activity is not None:
            self.activity.save(self.clock.now())
        if self.alerting is not None:
            self.alerting.close()
