"""Pacing under the API key's rate limit: our own sliding window, the server's
``X-RateLimit-*`` and ``Retry-After`` headers, and ISO timestamps for listing bounds."""

from __future__ import annotations

import math
import threading
from collections import deque
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx


def iso(ts: float, up: bool = False) -> str:
    """ISO 8601 UTC with milliseconds, rounded down (or up) so bounds stay inclusive."""
    ms = math.ceil(ts * 1000) if up else math.floor(ts * 1000)
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return None


def parse_reset(value: str | None, now: float) -> float | None:
    """``X-RateLimit-Reset`` as an absolute time: an epoch above 1e9, else seconds from now."""
    if not value:
        return None
    try:
        v = float(value)
    except ValueError:
        return None
    return v if v > 1e9 else now + max(0.0, v)


class RateLimiter:
    """Paces requests under the API key's limit, within our share of it.

    ``limit`` is the key's limit per ``period`` (as configured, then as the server's
    ``X-RateLimit-Limit`` announces it); ``share`` is the part of it this daemon may use
    (``dialnexa.rate_budget``). The budget is ``share`` times the *smaller* of the configured
    and the announced limit, so a header announcing a larger limit never raises it (raise
    ``dialnexa.rate_limit`` for that) and one announcing a smaller limit lowers it.

    Every request (heads, re-reads, backfill, retries) goes through ``delay``/``sent``:
    at most ``allowed`` requests in any sliding ``period`` (our own window), and with
    ``X-RateLimit-*`` headers the server's count too: requests go out freely while more than
    a twentieth of the limit remains, are spread evenly over the time to reset below that,
    and wait for the reset at zero.

    ``budget`` plans a cycle from a token bucket: it fills at ``allowed / period`` per second,
    carries unused budget over up to ``carry(interval)`` tokens, and every request sent takes
    one (it may go below zero: a backfill or a retry is paid back before the next plan).
    """

    def __init__(
        self, limit: int, period: float, share: float = 1.0, interval: float | None = None
    ) -> None:
        self.limit = limit
        self.configured = limit
        self.period = period
        self.share = share
        self.interval = period / 4 if interval is None else interval
        self.remaining: float | None = None
        self.reset_at: float | None = None
        self._sent: deque[float] = deque()
        self._last = -math.inf
        self._lock = threading.Lock()
        self._tokens: float | None = None  # None: full (nothing planned or sent yet)
        self._filled_at = -math.inf

    # ---- the budget -----------------------------------------------------------------
    @property
    def allowed(self) -> int:
        """Requests this daemon may send in any ``period``: the share of the smaller of the
        configured and the announced limit, at least one."""
        return max(1, math.floor(self.share * min(self.configured, self.limit) + 1e-9))

    @property
    def rate(self) -> float:
        """Budget tokens per second."""
        return self.allowed / self.period

    def carry(self, interval: float) -> float:
        """The most budget carried over: 1.5 intervals' share, at least 5 s worth (a range of
        a few pages fits at a 1 s interval) and at least one request. Carried tokens never
        exceed what the window still lets out (``budget``)."""
        return max(1.0, self.rate * max(1.5 * interval, 5.0))

    def _refill(self, now: float) -> float:
        cap = self.carry(self.interval)
        if self._tokens is None:
            self._tokens = cap
        elif now > self._filled_at:
            self._tokens = min(cap, self._tokens + self.rate * (now - self._filled_at))
        self._filled_at = max(self._filled_at, now)
        return self._tokens

    def _prune(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self.period:
            self._sent.popleft()

    # ---- pacing ---------------------------------------------------------------------
    def delay(self, now: float) -> float:
        """Seconds to wait before the next request may go out."""
        with self._lock:
            self._prune(now)
            wait = 0.0
            allowed = self.allowed
            if len(self._sent) >= allowed:
                wait = self._sent[len(self._sent) - allowed] + self.period - now
            if self.remaining is not None and self.reset_at is not None and now < self.reset_at:
                reserve = max(1.0, self.limit * 0.05)
                if self.remaining < 1:
                    wait = max(wait, self.reset_at - now)
                elif self.remaining <= reserve:
                    gap = (self.reset_at - now) / self.remaining
                    wait = max(wait, self._last + gap - now)
            return max(0.0, wait)

    def sent(self, now: float) -> None:
        with self._lock:
            self._refill(now)
            self._tokens = (self._tokens or 0.0) - 1.0
            self._sent.append(now)
            self._last = now
            if self.remaining is not None:
                self.remaining -= 1

    def update(self, headers: httpx.Headers, now: float) -> None:
        with self._lock:
            limit = headers.get("x-ratelimit-limit")
            remaining = headers.get("x-ratelimit-remaining")
            reset = parse_reset(headers.get("x-ratelimit-reset"), now)
            try:
                if limit is not None:
                    self.limit = max(1, int(float(limit)))
                if remaining is not None:
                    self.remaining = float(remaining)
            except ValueError:
                return
            if reset is not None:
                self.reset_at = reset

    def hold(self, until: float) -> None:
        """After a 429: nothing goes out before ``until``."""
        with self._lock:
            self.remaining = 0
            self.reset_at = max(self.reset_at or 0.0, until)

    def budget(self, now: float, seconds: float | None = None) -> int:
        """Requests a cycle planned now may send: the bucket's tokens (unused budget carried
        over, less requests sent beyond it), no more than our window lets go out without
        waiting, nor than the server says is left before its reset. ``seconds``: the poll
        interval (sets the carry-over cap; default the one given at construction)."""
        with self._lock:
            if seconds is not None:
                self.interval = seconds
            self._prune(now)
            room = float(self.allowed - len(self._sent))
            # what the window will not let out is not saved either: a bucket refilled while
            # the window was full would burst when it opens, and that burst would come back
            # a period later as a gap (heads deferred)
            tokens = self._tokens = min(self._refill(now), max(0.0, room))
            available = tokens
            if self.remaining is not None and self.reset_at is not None and now < self.reset_at:
                available = min(available, self.remaining)
            return int(max(0.0, math.floor(available + 1e-9)))

    def tokens(self, now: float) -> float:
        """The bucket's level now (negative: requests sent ahead of the budget)."""
        with self._lock:
            return self._refill(now)
