"""Delivery: the outbox worker, the only component that talks to a notifier.

Notices reach the outbox in the same transaction as the states that caused them
(``pipeline``); this worker sends what is due, oldest first and one at a time per incident,
and records each result. Its retry policy lives here and nowhere else:

- ``rate_limited``: everything waits for Retry-After (Slack limits the whole app);
- transient errors (5xx, timeouts, network): exponential backoff with equal jitter;
- a timeout after the request went out may have been delivered: before posting an incident's
  main message again, ask the notifier whether it is already in the channel
  (``find_posted``), so a slow Slack does not get the same alert twice;
- permanent errors a config fix can cure (bad token, unknown channel) *park* the notice and
  the incident's later notices behind it; they are delivered, late and in order, after any
  later success, after a restart, and on a periodic retry;
- other permanent errors (a rejected message) fail that notice only; its follow-ups are
  still sent (a resolve without a main message to edit is dropped);
- a notice not delivered within a day is given up, loudly.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Protocol

from ..notify import REASONS, MessageRef, Notifier, Reason
from .store import Fenced, OutboxEntry

log = logging.getLogger("watchdog.alerts")

# Failures that a change of config (and a restart) can cure: keep the notices.
CURABLE: frozenset[Reason] = frozenset({"auth_error", "channel_error"})


class Outbox(Protocol):
    """The part of the state store delivery uses."""

    def due(self, now: float, limit: int = 20) -> list[OutboxEntry]: ...
    def claim(
        self, now: float, limit: int, epoch: int | None
    ) -> AbstractContextManager[list[OutboxEntry]]: ...
    def mark_attempt(self, entry_id: int) -> None: ...
    def mark_sent(self, entry_id: int, now: float, ref: MessageRef | None = None) -> None: ...
    def mark_failed(self, entry_id: int, now: float, error: str) -> None: ...
    def retry_later(
        self, entry_id: int, at: float, error: str, *, uncertain: bool = False
    ) -> None: ...
    def park(self, entry_id: int, now: float, error: str) -> None: ...
    def unpark(self, now: float) -> int: ...
    def pending_count(self) -> int: ...
    def parked_count(self) -> int: ...
    def purge(self, now: float) -> None: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base: float = 2.0  # seconds before the first retry; doubles per failed attempt
    max: float = 300.0
    default_retry_after: float = 5.0  # a 429 without Retry-After
    max_age: float = 86400.0  # give a notice up after this long
    park_retry: float = 600.0  # try parked notices again this often
    purge_every: float = 3600.0
    batch: int = 20  # sends per pass at most

    def backoff(self, attempts: int, rand: float) -> float:
        """Delay after ``attempts`` failed tries: exponential, capped, equal jitter (half
        fixed, half random) so that many retries do not line up."""
        full = min(self.max, self.base * 2 ** max(0, attempts - 1))
        return float(full / 2 + rand * full / 2)


class DeliveryWorker:
    """Sends due notices. ``deliver_due`` is safe to call from any thread, never raises,
    and returns at once while another pass is running."""

    def __init__(
        self,
        outbox: Outbox,
        notifier: Notifier,
        *,
        policy: RetryPolicy | None = None,
        rand: Callable[[], float] = random.random,
        count_results: bool = True,
        epoch: Callable[[], int | None] | None = None,
    ) -> None:
        """``count_results``: feed ``results()`` (``dialnexa_slack_notifications_total``);
        off when notices go to the console rather than Slack. ``epoch``: with several
        replicas, this one's fencing epoch (None: not leading, deliver nothing); every
        claim of notices checks it (``Fenced``: another replica took over)."""
        self._epoch = epoch
        self.outbox = outbox
        self.notifier = notifier
        self.policy = policy or RetryPolicy()
        self._rand = rand
        self._count_results = count_results
        self._pass = threading.Lock()
        self._counts_lock = threading.Lock()
        self._sent: dict[Reason, int] = dict.fromkeys(REASONS, 0)
        self._pending = 0
        self._parked = 0
        self._hold_until = 0.0
        self._last_purge = -1e18
        self._last_unpark = -1e18
        self._logged: set[str] = set()
        self._failing = False
        self._closed = False
        self.fenced = False  # a claim found another replica's epoch

    # ---- what the collector reads ---------------------------------------------------------
    def results(self) -> dict[Reason, int]:
        with self._counts_lock:
            return dict(self._sent)

    def backlog(self) -> tuple[int, int]:
        """(pending, parked) notices, as of the last pass or ``wake``."""
        with self._counts_lock:
            return self._pending, self._parked

    def wake(self, added: int) -> None:
        """The pipeline committed ``added`` new notices."""
        with self._counts_lock:
            self._pending += added

    # ---- passes ---------------------------------------------------------------------------
    def resume(self, now: float) -> None:
        """At start: a new process may run with a fixed token or channel, so parked notices
        get another chance."""
        n = self.outbox.unpark(now)
        self._last_unpark = now
        if n:
            log.info("%d notification(s) held after a permanent error will be retried", n)
        self._refresh_backlog()

    def deliver_due(self, now: float) -> None:
        if self._closed or now < self._hold_until:
            return
        if not self._pass.acquire(blocking=False):
            return
        try:
            self._deliver(now)
        except Exception:
            log.exception("notification delivery failed; it runs again shortly")
        finally:
            self._pass.release()

    def close(self) -> None:
        self._closed = True
        with self._pass:
            self.notifier.close()

    def _refresh_backlog(self) -> None:
        pending, parked = self.outbox.pending_count(), self.outbox.parked_count()
        with self._counts_lock:
            self._pending, self._parked = pending, parked

    def _deliver(self, now: float) -> None:
        p = self.policy
        if now - self._last_purge >= p.purge_every:
            self._last_purge = now
            self.outbox.purge(now)
        if self._parked and now - self._last_unpark >= p.park_retry:
            self._last_unpark = now
            self.outbox.unpark(now)
            self._refresh_backlog()
        with self._counts_lock:
            idle = self._pending <= 0
        if idle:
            self._refresh_backlog()
            with self._counts_lock:
                if self._pending <= 0:
                    return
        epoch = None
        if self._epoch is not None:
            epoch = self._epoch()
            if epoch is None:
                return  # a standby delivers nothing
        budget = p.batch
        while budget > 0:
            try:
                with self.outbox.claim(now, budget, epoch) as entries:
                    if not entries:
                        break
                    for entry in entries:
                        budget -= 1
                        if epoch is not None and entry.notice.op == "post":
                            self.outbox.mark_attempt(entry.id)  # a successor looks first
                        if not self._one(entry, now):
                            self._refresh_backlog()
                            return  # rate limited: everything waits for Retry-After
            except Fenced as exc:
                self.fenced = True
                log.error(
                    "FENCED: another replica leads now (%s); this one delivers nothing more", exc
                )
                return
        self._refresh_backlog()

    def _count(self, reason: Reason) -> None:
        if not self._count_results:
            return
        with self._counts_lock:
            self._sent[reason] += 1

    def _one(self, entry: OutboxEntry, now: float) -> bool:
        """Send one notice; False when the notifier is rate limited."""
        p = self.policy
        notice = entry.notice
        what = f"{self.notifier.name} {notice.kind} {notice.op} for {notice.incident}"
        if now - entry.created_at > p.max_age:
            self.outbox.mark_failed(entry.id, now, "expired")
            log.error("gave up %s after a day of failed attempts", what)
            return True
        if notice.op != "post" and (entry.ref is None or not self.notifier.can_edit):
            # No main message to thread or edit: it failed, or the incident was opened in a
            # mode without edits. Edits are dropped; follow-ups become standalone messages.
            if notice.op == "update" or entry.post_failed:
                self.outbox.mark_failed(entry.id, now, "skipped: no main message")
                return True
            notice = replace(notice, op="post")
        if entry.uncertain and notice.op == "post" and self.notifier.can_find_posted:
            # an earlier attempt got no answer but may have arrived: look before posting
            found = self.notifier.find_posted(
                notice.incident, since=notice.at, kind=notice.kind, at=notice.at
            )
            if found.ok and found.ref is not None:
                self.outbox.mark_sent(entry.id, now, found.ref if notice.kind == "main" else None)
                log.info("%s: the earlier attempt arrived after all; not posting again", what)
                return True
            if found.transient:
                wait = found.retry_after if found.retry_after is not None else None
                delay = wait if wait is not None else p.backoff(entry.attempts + 1, self._rand())
                self.outbox.retry_later(entry.id, now + delay, found.error, uncertain=True)
                return True
            # not there, or cannot tell: post (delivery stays at-least-once)
        result = self.notifier.send(notice, entry.ref)
        self._count(result.reason)
        if result.ok:
            ref = result.ref if notice.op == "post" and notice.kind == "main" else None
            self.outbox.mark_sent(entry.id, now, ref)
            if self._failing:
                log.info("notifications via %s are being delivered again", self.notifier.name)
            self._failing = False
            self._logged.clear()
            if self._parked:
                n = self.outbox.unpark(now)
                self._last_unpark = now
                if n:
                    log.info("delivering %d held notification(s) late, in order", n)
            return True
        if result.reason == "rate_limited":
            wait = result.retry_after if result.retry_after is not None else p.default_retry_after
            self._hold_until = now + wait
            self.outbox.retry_later(entry.id, now + wait, result.error or "rate_limited")
            log.warning("%s: rate limited; retrying after %gs (Retry-After)", what, wait)
            return False
        if result.transient or result.maybe_delivered:
            delay = p.backoff(entry.attempts + 1, self._rand())
            uncertain = result.maybe_delivered and notice.op == "post"
            self.outbox.retry_later(entry.id, now + delay, result.error, uncertain=uncertain)
            if not self._failing:
                log.warning(
                    "%s failed (%s: %s); retrying with backoff, nothing is lost",
                    what,
                    result.reason,
                    result.error,
                )
            self._failing = True
            return True
        fix = f"; fix: {result.fix}" if result.fix else ""
        if result.reason in CURABLE:
            self.outbox.park(entry.id, now, result.error)
            with self._counts_lock:
                self._parked += 1
            self._log_once(
                f"{result.reason}:{result.error}",
                "%s failed (%s: %s)%s; held, with this incident's later notices, until "
                "delivery works again (checked every %gs and at start)",
                what,
                result.reason,
                result.error,
                fix,
                p.park_retry,
            )
            return True
        self.outbox.mark_failed(entry.id, now, result.error)
        self._log_once(
            f"{result.reason}:{result.error}",
            "%s failed permanently (%s: %s)%s",
            what,
            result.reason,
            result.error,
            fix,
        )
        return True

    def _log_once(self, key: str, msg: str, *args: object) -> None:
        if key in self._logged:
            return
        self._logged.add(key)
        log.error(msg, *args)
