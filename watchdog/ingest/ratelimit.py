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
    """Paces requests under the API key's limit.

    Without headers it keeps its own sliding window of ``limit`` requests per ``period``.
    With ``X-RateLimit-*`` headers it trusts the server: requests go out freely while more than
    a twentieth of the limit remains, are spread evenly over the time to reset below that, and
    wait for the reset at zero.
    """

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self.remaining: float | None = None
        self.reset_at: float | None = None
        self._sent: deque[float] = deque()
        self._last = -math.inf
        self._lock = threading.Lock()

    def delay(self, now: float) -> float:
        """Seconds to wait before the next request may go out."""
        with self._lock:
            while self._sent and self._sent[0] <= now - self.period:
                self._sent.popleft()
            wait = 0.0
            if len(self._sent) >= self.limit:
                wait = self._sent[0] + self.period - now
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

    def budget(self, now: float, seconds: float) -> int:
        """Requests that may go out over the next ``seconds``: this interval's even share of
        the limit, less what the server (or our own window) says is already used up. Spending
        only the share keeps the rate even, so pacing never has to hold back a head listing.
        """
        with self._lock:
            while self._sent and self._sent[0] <= now - self.period:
                self._sent.popleft()
            share = self.limit * min(1.0, seconds / self.period)
            available = self.limit - len(self._sent) + share  # our window frees up meanwhile
            if self.remaining is not None and self.reset_at is not None and now < self.reset_at:
                left = self.remaining
                if self.reset_at - now < seconds:  # the server's window resets within it
                    left += share
                available = min(available, left)
            return int(max(0.0, min(share, available)))
