"""Calls from the API for the part of a span the daemon did not record, with a local cache.

The span is listed by ``created_at`` in chunks of ``CHUNK`` seconds on a fixed grid, through
the daemon's own ``ApiClient`` (its rate limiter: the configured budget, its retries and its
error reasons). Each finished chunk is written to the cache in one SQLite transaction, so an
interrupted fetch (Ctrl-C, a 403, an outage) keeps every chunk it finished and nothing half
done; a rerun lists only the chunks that are missing, and a rerun with other thresholds
costs no request at all. Chunks that may still hold calls in progress are not cached.

The cache holds call ids, agent ids, statuses and times only (what ``model.Call`` keeps: no
phone number, no transcript). Its file is per API base URL and key: named by a hash, never
the key itself.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from ..clock import Clock
from ..config import Settings
from ..ingest.client import ApiClient
from ..ingest.errors import ApiError
from ..ingest.ratelimit import RateLimiter, iso
from ..model import Call, Range

CHUNK = 900.0  # seconds of created_at per cached listing
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS chunks (start REAL PRIMARY KEY, end REAL NOT NULL, "
    "calls INTEGER NOT NULL, requests INTEGER NOT NULL, data BLOB NOT NULL)"
)
_ENC = msgspec.msgpack.Encoder()
_DEC = msgspec.msgpack.Decoder(list[tuple[str, str, str, float, float | None]])


def cache_name(base_url: str, api_key: str) -> str:
    """The cache file's name for one API and key (a hash: the key is never written)."""
    digest = hashlib.sha256(f"dialnexa-watchdog-backtest\0{base_url}\0{api_key}".encode())
    return f"calls-{digest.hexdigest()[:16]}.sqlite3"


class PageCache:
    """Finished chunks of listed calls, one row (and one transaction) per chunk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), isolation_level=None)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute(_SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def cached(self) -> set[float]:
        return {float(s) for (s,) in self._conn.execute("SELECT start FROM chunks")}

    def put(self, start: float, end: float, calls: list[Call], requests: int) -> None:
        rows = [(c.id, c.agent_id, c.status, c.created_at, c.settled_at) for c in calls]
        data = zlib.compress(_ENC.encode(rows), 6)
        with self._conn:  # one transaction: the chunk is there whole or not at all
            self._conn.execute("BEGIN")
            self._conn.execute(
                "INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?, ?)",
                (start, end, len(calls), requests, data),
            )

    def get(self, start: float) -> list[Call]:
        row = self._conn.execute("SELECT data FROM chunks WHERE start = ?", (start,)).fetchone()
        if row is None:
            return []
        return [Call(*r) for r in _DEC.decode(zlib.decompress(row[0]))]


def api_client(settings: Settings, clock: Clock) -> ApiClient:
    """The daemon's client, configured as ``app.build`` configures it, but willing to wait
    out a long rate-limit hold (a backtest has no poll cycle to keep)."""
    d = settings.dialnexa
    return ApiClient(
        d.base_url,
        d.api_key,
        clock,
        timeout=d.timeout,
        page_size=d.page_size,
        limiter=RateLimiter(d.rate_limit, d.rate_limit_period),
        max_retries=d.max_retries,
        backoff_base=d.backoff_base,
        backoff_max=d.backoff_max,
        max_response_bytes=d.max_response_bytes,
        max_sleep=3600.0,
    )


def chunks(start: float, end: float, size: float = CHUNK) -> list[tuple[float, float]]:
    """The grid chunks [k*size, (k+1)*size] that cover [start, end]."""
    first = math.floor(start / size)
    last = math.floor(end / size)
    return [(k * size, (k + 1) * size) for k in range(first, last + 1)]


@dataclass(frozen=True, slots=True)
class Estimate:
    chunks: int  # to fetch (the others are cached)
    cached: int
    calls: int | None  # the API's total for the span, when it says
    requests: int  # at least one per chunk, one per page
    seconds: float  # at the configured rate limit


def estimate(
    client: ApiClient, todo: list[tuple[float, float]], cached: int, per_second: float
) -> Estimate:
    """One request (the first page of the whole span) for the API's total, then requests
    and time at the rate limit. Raises ApiError."""
    if not todo:
        return Estimate(0, cached, 0, 0, 0.0)
    page = client.get_page(
        {"from": iso(todo[0][0]), "to": iso(todo[-1][1], up=True), "limit": client.page_size}
    )
    total = page.total
    pages = 0 if total is None else math.ceil(total / client.page_size)
    requests = len(todo) + pages
    return Estimate(len(todo), cached, total, requests, requests / per_second)


@dataclass(slots=True)
class Progress:
    done: int = 0  # chunks fetched
    todo: int = 0
    calls: int = 0
    requests: int = 0
    fresh: dict[float, list[Call]] = field(default_factory=dict)  # listed, not cached


class FetchStopped(Exception):
    """A listing failed (a 403, an outage): ``str()`` says why; finished chunks are kept."""

    def __init__(self, reason: str, chunk: tuple[float, float], progress: Progress) -> None:
        super().__init__(reason)
        self.chunk = chunk
        self.progress = progress


def fetch(
    client: ApiClient,
    cache: PageCache,
    todo: Iterable[tuple[float, float]],
    *,
    settled_before: float,
    on_chunk: Callable[[Progress], None] | None = None,
) -> Progress:
    """List every chunk of ``todo`` into the cache (chunks ending after ``settled_before``
    are listed but not cached: calls there may still be in progress). Raises FetchStopped."""
    todo = list(todo)
    prog = Progress(todo=len(todo))
    for start, end in todo:
        listing = client.list_range(Range(start, end, kind="backfill"))
        prog.requests += listing.requests
        if not listing.complete:
            err = listing.error
            reason = err.reason if isinstance(err, ApiError) else "the listing did not finish"
            raise FetchStopped(reason, (start, end), prog)
        if end <= settled_before:
            cache.put(start, end, listing.calls, listing.requests)
        else:
            prog.fresh[start] = listing.calls
        prog.done += 1
        prog.calls += len(listing.calls)
        if on_chunk is not None:
            on_chunk(prog)
    return prog
