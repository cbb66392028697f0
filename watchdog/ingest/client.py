"""DialNexa List Calls client over httpx: pages, pacing, retries. The I/O edge.

Errors surface as ``ApiError`` with a reason that is safe to log and show (never the key).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

import httpx
from pydantic import SecretStr

from ..clock import Clock
from ..model import Call, Range
from .parse import PageError, ParsedPage, parse_page

log = logging.getLogger("watchdog.client")

MAX_PAGES = 10_000


class ApiError(Exception):
    """A request that failed for good; ``reason`` is short, human and secret-free."""

    def __init__(self, reason: str, code: int | None = None, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.permanent = permanent


class Stopped(Exception):
    """The daemon is shutting down; abandon the listing."""


class ApiObserver(Protocol):
    def request(self, code: str, seconds: float) -> None: ...
    def invalid_items(self, n: int) -> None: ...
    def rate_limit_remaining(self, remaining: float) -> None: ...


class NullObserver:
    def request(self, code: str, seconds: float) -> None:
        pass

    def invalid_items(self, n: int) -> None:
        pass

    def rate_limit_remaining(self, remaining: float) -> None:
        pass


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


@dataclass(slots=True)
class Listing:
    calls: list[Call] = field(default_factory=list)
    requests: int = 0
    complete: bool = False
    error: ApiError | None = None
    invalid: int = 0


class ApiClient:
    def __init__(
        self,
        base_url: str,
        api_key: SecretStr | None,
        clock: Clock,
        *,
        timeout: float = 10.0,
        page_size: int = 100,
        limiter: RateLimiter | None = None,
        max_retries: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        observer: ApiObserver | None = None,
        transport: httpx.BaseTransport | None = None,
        rng: Callable[[], float] = random.random,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        headers = {"Accept": "application/json", "User-Agent": "dialnexa-watchdog"}
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key.get_secret_value()}"
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )
        self.clock = clock
        self.page_size = min(100, max(1, page_size))
        self.limiter = limiter or RateLimiter(150, 60.0)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.observer: ApiObserver = observer or NullObserver()
        self._rng = rng
        self._timer = timer
        self._logged: set[str] = set()
        self._log_lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    # ---- one request ------------------------------------------------------------------
    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and not self.clock.sleep(seconds):
            raise Stopped

    def _log_once(self, key: str, msg: str, *args: object) -> None:
        with self._log_lock:
            if key in self._logged:
                return
            self._logged.add(key)
        log.warning(msg, *args)

    def _backoff(self, attempt: int) -> float:
        cap = min(self.backoff_max, self.backoff_base * 2.0**attempt)
        return cap / 2 + self._rng() * cap / 2  # "equal jitter": never zero, never above cap

    def get_page(self, params: dict[str, str | int]) -> ParsedPage:
        """GET /calls once, with pacing and bounded retries; raises ApiError."""
        attempt = 0
        while True:
            self._sleep(self.limiter.delay(self.clock.now()))
            started = self._timer()
            self.limiter.sent(self.clock.now())
            try:
                resp = self._http.get("calls", params=params)
            except httpx.TimeoutException:
                self.observer.request("timeout", self._timer() - started)
                err = ApiError("timed out waiting for DialNexa")
            except httpx.TransportError as exc:
                self.observer.request("error", self._timer() - started)
                err = ApiError(f"cannot reach DialNexa: {type(exc).__name__}")
            else:
                self.observer.request(str(resp.status_code), self._timer() - started)
                now = self.clock.now()
                self.limiter.update(resp.headers, now)
                if self.limiter.remaining is not None:
                    self.observer.rate_limit_remaining(self.limiter.remaining)
                code = resp.status_code
                if code == 200:
                    try:
                        return parse_page(resp.content)
                    except PageError as exc:
                        self.observer.invalid_items(1)
                        self._log_once("page:" + str(exc)[:40], "unusable page: %s", exc)
                        err = ApiError(f"unusable response: {exc}")
                elif code == 429:
                    wait = parse_retry_after(resp.headers.get("retry-after"), now)
                    if wait is None:
                        wait = self._backoff(attempt)
                    self.limiter.hold(now + wait)
                    log.warning("DialNexa rate limit hit (429); waiting %.1fs", wait)
                    err = ApiError("rate limited by DialNexa (429)", 429)
                    attempt += 1
                    if attempt > self.max_retries + 2:
                        raise err
                    continue  # the limiter waits for Retry-After
                elif code in (401, 403):
                    raise ApiError(_auth_reason(code), code, permanent=True)
                elif 400 <= code < 500:
                    raise ApiError(
                        f"DialNexa rejected the request ({code}): {_message(resp)}", code, True
                    )
                else:
                    err = ApiError(f"DialNexa server error ({code})", code)
            if attempt >= self.max_retries:
                raise err
            self._sleep(self._backoff(attempt))
            attempt += 1

    # ---- a listing --------------------------------------------------------------------
    def list_range(self, r: Range) -> Listing:
        """Every call in ``r``, newest first, page by page; ``to`` is fixed up front so new
        calls do not shift pages; de-duplicated by id; stops on an empty or short page, at
        ``totalPages``, or once items are older than the range (the API may ignore from/to).
        """
        out = Listing()
        params: dict[str, str | int] = {
            "from": iso(r.start),
            "to": iso(r.end, up=True),
            "limit": self.page_size,
        }
        if r.agent_id is not None:
            params["agent_id"] = r.agent_id
        seen: set[str] = set()
        page = 1
        while page <= MAX_PAGES:
            params["page"] = page
            try:
                parsed = self.get_page(params)
            except ApiError as exc:
                out.requests += 1  # at least the one that failed for good
                out.error = exc
                return out
            out.requests += 1
            if parsed.invalid:
                out.invalid += parsed.invalid
                self.observer.invalid_items(parsed.invalid)
                for reason in set(parsed.invalid_reasons):
                    self._log_once("item:" + reason, "skipped invalid call items: %s", reason)
            fresh = 0
            oldest = math.inf
            for c in parsed.calls:
                if c.created_at < oldest:
                    oldest = c.created_at
                if c.id not in seen:
                    seen.add(c.id)
                    out.calls.append(c)
                    fresh += 1
            if parsed.items < self.page_size:
                break
            if parsed.total_pages is not None and page >= parsed.total_pages:
                break
            if oldest < r.start:
                break
            if fresh == 0 and parsed.calls:
                self._log_once("repeat", "a full page repeated earlier items; stopping listing")
                break
            page += 1
        out.complete = True
        return out


def _auth_reason(code: int) -> str:
    if code == 403:
        return "403 Forbidden: this API key cannot read calls on this workspace"
    return "401 Unauthorized: DialNexa rejected the API key (check DIALNEXA_API_KEY)"


def _message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return "no details"
    msg = body.get("message") if isinstance(body, dict) else None
    if isinstance(msg, list):
        msg = "; ".join(str(m) for m in msg)
    return str(msg)[:200] if msg else "no details"
