"""The simulator's HTTP vocabulary: routes, query parameters, auth header, error bodies,
the rate limiter's arithmetic, injected faults and latency, and the request log's records.
Pure: the Simulator (``app.py``) owns the state these functions read and change.

Errors look like DialNexa's (NestJS): ``{"statusCode", "message", "error"}``; 400s name the
parameter, as the API does.
"""

from __future__ import annotations

import math
import random
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

import msgspec

FaultKind = Literal[
    "500", "502", "503", "429", "html", "invalid_json", "bad_items", "timeout", "disconnect"
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
RateReset = Literal["seconds", "epoch"]
RequestHook = Callable[[str, Mapping[str, str]], None]

PATHS = frozenset({"/v1/calls", "/calls"})
AGENT_PATHS = ("/v1/agents2", "/agents2")
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
PENDING = -1  # a RequestRecord's status while its answer is being made (a held request)

REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_INT = re.compile(r"-?\d{1,18}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HTML_502 = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>"
    b"<center><h1>502 Bad Gateway</h1></center><hr><center>cloudflare</center>"
    b"</body></html>"
)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the simulator saw it, recorded when it arrives (``requests`` lists
    them in arrival order) and completed when its answer is made."""

    path: str
    params: dict[str, str]
    status: int  # 0 for an injected disconnect; PENDING (-1) until the answer is made
    key_ok: bool  # a known key that may read calls
    fault: str | None = None
    latency: float = 0.0  # seconds the fake clock moved while answering


@dataclass(frozen=True, slots=True)
class Latency:
    """Request latency, drawn per request from ``Random("latency:<seed>")``: uniform in
    ``[low, median]`` or ``[median, high]`` with even odds (so ``median`` is the median)."""

    low: float = 0.1
    median: float = 0.3
    high: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.low <= self.median <= self.high or not math.isfinite(self.high):
            raise ValueError("latency needs 0 <= low <= median <= high (seconds)")

    def sampler(self) -> Callable[[], float]:
        rng = random.Random(f"latency:{self.seed}")
        low, median, high = self.low, self.median, self.high

        def draw() -> float:
            u = rng.random()
            if u < 0.5:
                return low + (median - low) * (u * 2.0)
            return median + (high - median) * (u * 2.0 - 1.0)

        return draw


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json; charset=utf-8"
    disconnect: bool = False

    @property
    def status_line(self) -> str:
        return f"{self.status} {REASONS.get(self.status, 'Unknown')}"


class Disconnect(ConnectionAbortedError):
    """Raised by the WSGI app to drop the connection without a response (wsgiref stays quiet
    on ConnectionAbortedError and writes nothing)."""


def error(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Response:
    body: dict[str, object] = {"statusCode": status, "message": message}
    if status != 500:
        body["error"] = REASONS[status]
    return Response(status, msgspec.json.encode(body), headers or [])


class BadRequest(Exception):
    """A query parameter the API would answer with 400 (the message says which)."""


def int_param(params: Mapping[str, str], name: str, default: int, maximum: int | None) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not _INT.fullmatch(raw.strip()):
        raise BadRequest(f"{name} must be an integer number")
    value = int(raw)
    if value < 1:
        raise BadRequest(f"{name} must not be less than 1")
    if maximum is not None and value > maximum:
        raise BadRequest(f"{name} must not be greater than {maximum}")
    return value


def time_param(params: Mapping[str, str], name: str, *, upper: bool) -> int | None:
    """An ISO 8601 bound -> ms; inclusive: a lower bound rounds up, an upper bound down."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        dt = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise BadRequest(f"{name} must be a valid ISO 8601 date string") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    micros = (dt - _EPOCH) // timedelta(microseconds=1)
    return micros // 1000 if upper else -(-micros // 1000)


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def agents_route(path: str) -> str | None:
    """ "" for the agent list, the id for one agent, None for any other path."""
    for base in AGENT_PATHS:
        if path == base:
            return ""
        if path.startswith(base + "/"):
            rest = path[len(base) + 1 :]
            return rest if rest and "/" not in rest else None
    return None


def throttle(
    hits: deque[float], limit: int, window: float, reset_mode: RateReset, now: float
) -> tuple[bool, list[tuple[str, str]]]:
    """A sliding-window limit over one key's ``hits`` (changed in place): (limited?, the
    X-RateLimit-* and Retry-After headers)."""
    while hits and hits[0] <= now - window:
        hits.popleft()
    limited = len(hits) >= limit
    if not limited:
        hits.append(now)
    reset_in = max(0.0, hits[0] + window - now)
    reset = math.ceil(reset_in) if reset_mode == "seconds" else math.ceil(now + reset_in)
    headers = [
        ("X-RateLimit-Limit", str(limit)),
        ("X-RateLimit-Remaining", str(max(0, limit - len(hits)))),
        ("X-RateLimit-Reset", str(reset)),
    ]
    if limited:
        headers.append(("Retry-After", str(max(1, math.ceil(reset_in)))))
    return limited, headers
