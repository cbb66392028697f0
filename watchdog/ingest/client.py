"""DialNexa List Calls client over httpx: pages, pacing, retries, deadlines. The I/O edge.

Errors surface as ``ApiError``: a fixed ``kind`` from :data:`ERROR_KINDS` (safe for /readyz and
metric labels), the HTTP ``code`` where there is one, and a ``reason`` for people that names
the host and what failed, with every registered secret (and anything shaped like one) masked,
even when the API echoes the key back (the kinds and reasons live in ``errors``, pacing in
``ratelimit``).

Every request has an overall deadline (``timeout``) and a body limit
(``max_response_bytes``); a wait longer than ``max_sleep`` (a long ``Retry-After``, a rate
limit that resets far ahead) is never slept inside a fetch: the client records ``hold_until``
and ends the listing with a ``deferred`` error, and requests stay held until then.

Longer than ~400 lines: one request's life (pacing, deadline, the streamed body with its limits,
retries, the mapping of every failure to a kind) reads best in one class.
"""

from __future__ import annotations

import json
import logging
import math
import random
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar

import httpx
from pydantic import SecretStr

from ..clock import Clock
from ..logs import Throttle
from ..model import Call, Range
from ..redact import REDACTOR, Redactor
from .errors import (
    ERROR_KINDS,
    ApiError,
    Stopped,
    _auth_reason,
    _Failed,
    _host_of,
    _printable,
    _root_causes,
)
from .parse import PageError, ParsedPage, parse_page
from .ratelimit import RateLimiter, iso, parse_reset, parse_retry_after

__all__ = [
    "ERROR_KINDS",
    "ApiClient",
    "ApiError",
    "ApiObserver",
    "Listing",
    "NullObserver",
    "RateLimiter",
    "Stopped",
    "iso",
    "parse_reset",
    "parse_retry_after",
]

log = logging.getLogger("watchdog.client")

MAX_PAGES = 10_000  # default cap on the pages of one listing (1,000,000 calls)
MAX_RESPONSE_BYTES = 16 * 1024 * 1024  # default body limit; a full page is ~35 kB
MAX_HOLD = 3600.0  # the longest Retry-After / rate-limit wait believed, in seconds
ERROR_BODY_BYTES = 64 * 1024  # what is read of a non-200 body (for its message)
LIVE_STATUS = "in-progress"  # the status filter of a live listing, as the API documents it
T = TypeVar("T")


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


@dataclass(slots=True)
class Listing:
    calls: list[Call] = field(default_factory=list)
    requests: int = 0  # HTTP requests sent, retries included
    complete: bool = False
    error: ApiError | None = None
    invalid: int = 0
    # Stopped at ``Range.pages``: every call created after ``cut`` was listed (``to`` is fixed
    # up front, so the pages of a past range do not shift); the rest, ``start <= created_at
    # <= cut``, is left for a later cycle (the tracker plans what is still due again).
    cut: float | None = None

    def covered(self, r: Range) -> Range | None:
        """The part of ``r`` this listing read to the end: all of it, the part after ``cut``
        (calls created at ``cut`` itself may continue on the next page: not covered), or
        None."""
        if self.complete:
            return r
        if self.cut is None or self.error is not None or not self.cut < r.end:
            return None
        return replace(r, start=math.nextafter(self.cut, math.inf), pages=0)


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    headers: httpx.Headers
    body: bytes


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
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        max_pages: int = MAX_PAGES,
        max_sleep: float = 60.0,
        max_hold: float = MAX_HOLD,
        redactor: Redactor | None = None,
        warn_interval: float = 300.0,
    ) -> None:
        """``timeout`` is the overall deadline of one request (connect, headers and body);
        ``max_sleep`` the longest wait slept inside a fetch (pass the poll interval): a
        longer one defers the listing. ``timer`` is a monotonic clock for durations and
        deadlines (they measure a real socket, so not the injected ``clock``)."""
        self.redactor = redactor or REDACTOR
        headers = {
            "Accept": "application/json",
            "Accept-Encoding": "gzip",  # decoded here, with the body limit applied after
            "User-Agent": "dialnexa-watchdog",
        }
        if api_key is not None:
            self.redactor.register(api_key)
            headers["Authorization"] = f"Bearer {api_key.get_secret_value()}"
        url = httpx.URL(base_url.rstrip("/") + "/")
        self.host = _host_of(url)
        self.hostname = url.host or "?"
        self._http = httpx.Client(
            base_url=url,
            headers=headers,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            follow_redirects=False,
        )
        self.clock = clock
        self.timeout = timeout
        self.page_size = min(100, max(1, page_size))
        self.limiter = limiter or RateLimiter(150, 60.0)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_response_bytes = max_response_bytes
        self.max_pages = max_pages
        self.max_sleep = max_sleep
        self.max_hold = max_hold
        self.observer: ApiObserver = observer or NullObserver()
        self._rng = rng
        self._timer = timer
        self._hold_until: float | None = None
        self._hold_lock = threading.Lock()
        self._warn = Throttle(log, warn_interval, now=clock.now)

    def close(self) -> None:
        self._http.close()

    # ---- holding (a long Retry-After survives the cycle, and a restart if persisted) ----
    @property
    def hold_until(self) -> float | None:
        """No request goes out before this time (epoch seconds), or None."""
        return self._hold_until

    def hold(self, until: float | None) -> None:
        """Hold requests until ``until`` (e.g. a persisted ``hold_until`` at start), capped
        at ``max_hold`` from now; None clears the client's own hold."""
        with self._hold_lock:
            if until is None:
                self._hold_until = None
                return
            until = min(until, self.clock.now() + self.max_hold)
            if self._hold_until is None or until > self._hold_until:
                self._hold_until = until
        self.limiter.hold(until)

    def _wait_turn(self, after_429: bool = False) -> None:
        """Sleep until a request may go out, or raise a ``deferred`` ApiError when that is
        more than ``max_sleep`` away."""
        now = self.clock.now()
        wait = self.limiter.delay(now)
        with self._hold_lock:
            hold = self._hold_until
            if hold is not None and hold <= now:
                self._hold_until = hold = None
        if hold is not None:
            wait = max(wait, hold - now)
        if wait > self.max_sleep:
            wait = min(wait, self.max_hold)
            self.hold(now + wait)
            until = self._hold_until or now + wait
            raise ApiError(
                f"requests to {self.host} held until {iso(until)} ({wait:.0f}s, rate limit); "
                f"not waiting inside this poll (longer than {self.max_sleep:g}s)",
                429 if after_429 else None,
                kind="deferred",
                retry_at=until,
            )
        self._sleep(wait)

    # ---- one request ------------------------------------------------------------------
    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and not self.clock.sleep(seconds):
            raise Stopped

    def _clean(self, text: str) -> str:
        return self.redactor.clean(text)

    def _warning(self, kind: str, msg: str, *args: object, n: int = 1) -> None:
        self._warn.warning(kind, "%s", self._clean(msg % args if args else msg), n=n)

    def _backoff(self, attempt: int) -> float:
        cap = min(self.backoff_max, self.backoff_base * 2.0**attempt)
        return cap / 2 + self._rng() * cap / 2  # "equal jitter": never zero, never above cap

    def _error(self, reason: str, code: int | None = None, permanent: bool = False, *,
               kind: str | None = None) -> ApiError:  # fmt: skip
        return ApiError(self._clean(reason), code, permanent, kind=kind)

    def get_page(self, params: dict[str, str | int]) -> ParsedPage:
        """GET /calls once, with pacing, a deadline and bounded retries; raises ApiError."""
        return self._get_page(params, Listing())

    def get_parsed(
        self,
        path: str,
        params: dict[str, str | int],
        parse: Callable[[bytes], T],
        tally: Listing,
        observer: ApiObserver | None = None,
    ) -> T:
        """GET ``path`` (relative to the base URL, e.g. ``agents2``) once, paced, with the
        same deadline, retries and error kinds as the calls API; ``parse`` turns a 200 body
        into a value or raises ``PageError``. Each request is counted in ``tally`` and told
        to ``observer`` (default: the client's)."""
        return self._request(path, params, tally, parse, observer or self.observer)

    def _get_page(self, params: dict[str, str | int], tally: Listing) -> ParsedPage:
        """get_page, counting each request sent (retries too) in ``tally.requests``."""
        return self._request("calls", params, tally, parse_page, self.observer)

    def _request(
        self,
        path: str,
        params: dict[str, str | int],
        tally: Listing,
        parse: Callable[[bytes], T],
        observer: ApiObserver,
    ) -> T:
        attempt = 0
        after_429 = False
        while True:
            self._wait_turn(after_429)
            started = self._timer()
            self.limiter.sent(self.clock.now())
            tally.requests += 1
            try:
                ans = self._fetch(params, started + self.timeout, path)
            except _Failed as f:
                observer.request(f.label, self._timer() - started)
                if not f.retry:
                    raise f.error from None
                err = f.error
            else:
                observer.request(str(ans.status), self._timer() - started)
                now = self.clock.now()
                self.limiter.update(ans.headers, now)
                if self.limiter.remaining is not None:
                    observer.rate_limit_remaining(self.limiter.remaining)
                code = ans.status
                after_429 = code == 429
                if code == 200:
                    try:
                        return parse(ans.body)
                    except PageError as exc:
                        observer.invalid_items(1)
                        self._warning("page", "unusable page from %s: %s", self.host, exc)
                        err = self._error(f"unusable response from {self.host}: {exc}",
                                          kind="invalid")  # fmt: skip
                elif code == 429:
                    wait = parse_retry_after(ans.headers.get("retry-after"), now)
                    if wait is None or not math.isfinite(wait):
                        wait = self._backoff(attempt) if wait is None else self.max_hold
                    wait = min(wait, self.max_hold)
                    self.hold(now + wait)
                    self._warning("429", "DialNexa rate limit hit (429); holding %.1fs", wait)
                    attempt += 1
                    if attempt > self.max_retries + 2:
                        raise self._error(f"rate limited by {self.host} (429)", 429)
                    continue  # _wait_turn waits for Retry-After, or defers
                elif code in (401, 403):
                    raise self._error(_auth_reason(code), code, permanent=True)
                elif 400 <= code < 500:
                    raise self._error(
                        f"{self.host} rejected the request ({code}): {self._message(ans.body)}",
                        code,
                        permanent=True,
                    )
                elif code >= 500:
                    err = self._error(f"DialNexa server error ({code})", code)
                else:  # 1xx/3xx: redirects are not followed
                    err = self._error(f"unexpected HTTP {code} from {self.host}", code)
            if attempt >= self.max_retries:
                raise err
            pause = self._backoff(attempt)
            if pause > self.max_sleep:
                raise err
            self._sleep(pause)
            attempt += 1

    def _fetch(self, params: dict[str, str | int], deadline: float, path: str) -> _Answer:
        """One GET, streamed: the body is read while the deadline and the size limit hold."""
        try:
            with self._http.stream("GET", path, params=params) as resp:
                limit = self.max_response_bytes if resp.status_code == 200 else ERROR_BODY_BYTES
                length = _content_length(resp.headers)
                if resp.status_code == 200 and length is not None and length > limit:
                    raise self._too_large()
                body = self._read(resp, deadline, limit, truncate=resp.status_code != 200)
                return _Answer(resp.status_code, resp.headers, body)
        except httpx.TimeoutException as exc:
            connect = isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
            raise self._timed_out(connect) from None
        except httpx.TransportError as exc:
            raise self._transport_failure(exc) from None

    def _read(self, resp: httpx.Response, deadline: float, limit: int, truncate: bool) -> bytes:
        try:
            decoder = _decoder(resp.headers.get("content-encoding", ""))
        except ValueError:
            raise _Failed(str(resp.status_code), self._error(
                f"{self.host} sent an unsupported Content-Encoding", kind="invalid"), retry=False
            ) from None  # fmt: skip
        if self._timer() > deadline:
            raise self._timed_out(False)
        chunks: list[bytes] = []
        size = 0
        try:
            for raw in resp.iter_raw():
                data = raw
                while data:
                    if decoder is None:
                        out, data = data[: limit + 1 - size], b""
                    else:  # inflate at most what still fits: a gzip bomb stops at the limit
                        out = decoder.decompress(data, limit + 1 - size)
                        if not out and decoder.unconsumed_tail == data:
                            raise zlib.error("no progress")
                        data = decoder.unconsumed_tail
                    size += len(out)
                    chunks.append(out)
                    if size > limit:
                        if truncate:
                            return b"".join(chunks)[:limit]
                        raise self._too_large()
                if self._timer() > deadline:
                    raise self._timed_out(False)
            if decoder is not None:
                chunks.append(decoder.flush())
        except zlib.error:
            chunks.clear()
            raise _Failed(str(resp.status_code), self._error(
                f"{self.host} sent a body that does not decompress", kind="invalid"), retry=False
            ) from None  # fmt: skip
        except BaseException:
            chunks.clear()  # a traceback keeps this frame alive: not the body with it
            raise
        body = b"".join(chunks)
        if len(body) > limit and not truncate:
            raise self._too_large()
        return body[:limit]

    def _too_large(self) -> _Failed:
        return _Failed(
            "too_large",
            self._error(
                f"response from {self.host} is larger than {self.max_response_bytes} bytes "
                "(dialnexa.max_response_bytes)",
                kind="too_large",
            ),
            retry=False,  # the same page would be as large again
        )

    def _timed_out(self, connect: bool) -> _Failed:
        what = "connecting to" if connect else "waiting for a complete answer from"
        return _Failed(
            "timeout",
            self._error(
                f"timed out {what} {self.host} (dialnexa.timeout {self.timeout:g}s)",
                kind="timeout",
            ),
        )

    def _transport_failure(self, exc: BaseException) -> _Failed:
        cause = _root_causes(exc)
        host = self.host
        if any(isinstance(c, socket.gaierror) for c in cause):
            kind, reason = "dns", f"cannot resolve {self.hostname} (DNS lookup failed)"
        elif any(isinstance(c, ConnectionRefusedError) for c in cause):
            kind, reason = "refused", f"connection to {host} refused (is anything listening?)"
        elif tls := next((c for c in cause if isinstance(c, ssl.SSLError)), None):
            detail = getattr(tls, "verify_message", None) or getattr(tls, "reason", None)
            kind, reason = "tls", f"TLS handshake with {host} failed ({detail or 'SSL error'})"
        elif any(isinstance(c, TimeoutError) for c in cause):
            return self._timed_out(False)
        else:
            kind, reason = "network", f"connection to {host} failed ({type(exc).__name__})"
        return _Failed("error", self._error(reason, kind=kind))

    def _message(self, body: bytes) -> str:
        """The ``message`` of an error body, printable, redacted, at most 200 characters."""
        try:
            doc = json.loads(body.decode("utf-8", "replace"))
        except (ValueError, RecursionError):
            return "no details"
        msg = doc.get("message") if isinstance(doc, dict) else None
        if isinstance(msg, list):
            msg = "; ".join(str(m) for m in msg[:20])
        if not msg:
            return "no details"
        text = self._clean(_printable(str(msg)[:10_000]))  # redact before cutting
        return text[:200] or "no details"

    # ---- a listing --------------------------------------------------------------------
    def list_range(self, r: Range) -> Listing:
        """Every call in ``r``, newest first, page by page; ``to`` is fixed up front so new
        calls do not shift pages; de-duplicated by id; stops on an empty or short page, at
        ``totalPages``, or once items are older than the range (the API may ignore from/to).
        A listing that reaches ``max_pages`` ends incomplete with a ``page_cap`` error; one
        that reaches ``r.pages`` ends incomplete with ``cut`` set (the budget's share).
        """
        out = Listing()
        params: dict[str, str | int] = {
            "from": iso(r.start),
            "to": iso(r.end, up=True),
            "limit": self.page_size,
        }
        if r.agent_id is not None:
            params["agent_id"] = r.agent_id
        if r.kind == "live":  # the calls in conversation only (the API's "live monitoring")
            params["status"] = LIVE_STATUS
        seen: set[str] = set()
        newest = -math.inf
        page = 1
        while True:
            if page > self.max_pages:
                out.error = self._error(
                    f"listing stopped at the cap of {self.max_pages} pages "
                    f"({len(out.calls)} calls read); the range stays unfinished",
                    kind="page_cap",
                )
                self._warning("page_cap", "%s", out.error.reason)
                return out
            params["page"] = page
            try:
                parsed = self._get_page(params, out)
            except ApiError as exc:
                # kept as a value: no traceback or context holding frames (and bodies) alive
                exc.__traceback__ = exc.__context__ = None
                out.error = exc
                return out
            if parsed.invalid:
                out.invalid += parsed.invalid
                self.observer.invalid_items(parsed.invalid)
                counts: dict[str, int] = {}
                for reason in parsed.invalid_reasons:
                    counts[reason] = counts.get(reason, 0) + 1
                for reason, n in counts.items():
                    self._warning("item:" + reason, "skipped invalid call items: %s", reason, n=n)
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
                self._warning("repeat", "a full page repeated earlier items; stopping listing")
                break
            newest = max(newest, max((c.created_at for c in parsed.calls), default=-math.inf))
            # the rest waits for a later cycle's budget, once the pages read reach past one
            # millisecond (a part resumed from a cut shared by a page of calls must progress)
            if r.pages and page >= r.pages and oldest < newest:
                out.cut = oldest
                return out
            page += 1
        out.complete = True
        return out


def _content_length(headers: httpx.Headers) -> int | None:
    try:
        return int(headers.get("content-length", ""))
    except ValueError:
        return None


def _decoder(encoding: str) -> zlib._Decompress | None:
    """A decompressor for the body (its output bounded by the caller), None for identity;
    ValueError for an encoding we did not ask for."""
    enc = encoding.strip().lower()
    if enc in ("", "identity"):
        return None
    if enc in ("gzip", "x-gzip", "deflate"):
        return zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
    raise ValueError(enc)
