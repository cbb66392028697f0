"""The Simulator: call table + DialNexa ``GET /v1/calls`` and ``GET /v1/agents2`` as a WSGI
application.

Request pipeline: ``on_request`` callback -> next injected fault (if any) -> route (404) ->
auth (401) -> rate limit (429, per key, shared by both endpoints) -> forbidden key (403) ->
parameters (400) -> page. With a ``Latency``, the answer is computed at the request's arrival
and the injected clock (a FakeClock) then moves on by a latency drawn for that request.
"""

from __future__ import annotations

import math
import random
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args
from urllib.parse import parse_qsl
from wsgiref.types import StartResponse, WSGIEnvironment

import msgspec

from ..clock import Clock
from .agents import (
    AGENTS_APIS,
    AGENTS_SHAPES,
    GARBAGE,
    AgentsApi,
    AgentsShape,
    agent_item,
    bad_agents,
    camel,
)
from .calls import (
    ANSWERED,
    OUTCOMES,
    SHAPES,
    CallSpec,
    Shape,
    Vocab,
    now_ms,
    to_ms,
)
from .profiles import ABSOLUTE_THRESHOLD, AgentInfo
from .render import bad_items, render
from .scenario import InjectedDegradation, Scenario
from .store import VOCAB_BITS, CallStore
from .truth import TruthWindows

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

_REASONS = {
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
_HTML = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>"
    b"<center><h1>502 Bad Gateway</h1></center><hr><center>cloudflare</center>"
    b"</body></html>"
)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the simulator saw it."""

    path: str
    params: dict[str, str]
    status: int  # 0 for an injected disconnect
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


@dataclass(frozen=True, slots=True)
class SettledCall:
    """Ground truth for one call: when it settles and what a correct client reads."""

    id: str
    agent_id: str
    outcome: str  # observed final status (see ``observed_outcome``)
    created_at: float
    settled_at: float
    answered: bool


@dataclass(frozen=True, slots=True)
class BurstRecord:
    """A campaign burst the realistic scenario generated (ground truth)."""

    agent_id: str
    start: float
    end: float
    multiplier: float


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json; charset=utf-8"
    disconnect: bool = False

    @property
    def status_line(self) -> str:
        return f"{self.status} {_REASONS.get(self.status, 'Unknown')}"


class Disconnect(ConnectionAbortedError):
    """Raised by the WSGI app to drop the connection without a response (wsgiref stays quiet
    on ConnectionAbortedError and writes nothing)."""


def _error(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Response:
    body: dict[str, object] = {"statusCode": status, "message": message}
    if status != 500:
        body["error"] = _REASONS[status]
    return Response(status, msgspec.json.encode(body), headers or [])


class _BadRequest(Exception):
    pass


def _int_param(params: Mapping[str, str], name: str, default: int, maximum: int | None) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not _INT.fullmatch(raw.strip()):
        raise _BadRequest(f"{name} must be an integer number")
    value = int(raw)
    if value < 1:
        raise _BadRequest(f"{name} must not be less than 1")
    if maximum is not None and value > maximum:
        raise _BadRequest(f"{name} must not be greater than {maximum}")
    return value


def _time_param(params: Mapping[str, str], name: str, *, upper: bool) -> int | None:
    """An ISO 8601 bound -> ms; inclusive: a lower bound rounds up, an upper bound down."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        dt = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise _BadRequest(f"{name} must be a valid ISO 8601 date string") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    micros = (dt - _EPOCH) // timedelta(microseconds=1)
    return micros // 1000 if upper else -(-micros // 1000)


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Simulator:
    """A DialNexa workspace in memory that serves ``GET /v1/calls`` (WSGI callable).

    Time is read only from ``clock``. Thread-safe: requests may be served concurrently
    while a test adds calls or injects faults.
    """

    def __init__(
        self,
        clock: Clock,
        scenario: Scenario | None = None,
        *,
        keys: Iterable[str] = ("test-key",),
        forbidden_keys: Iterable[str] = (),
        shape: Shape = "v1",
        default_vocab: Vocab = "underscore",
        rate_limit: int | None = 150,
        rate_window: float = 60.0,
        rate_reset: RateReset = "seconds",
        ignore_date_filter: bool = False,
        retry_after: float = 1.0,
        hold_seconds: float = 2.0,
        start: float | None = None,
        latency: Latency | None = None,
        agents_api: AgentsApi = "on",
        agents_shape: AgentsShape = "snake",
        agents_total_pages: bool = True,
    ) -> None:
        if latency is not None and not callable(getattr(clock, "advance", None)):
            raise ValueError("latency is taken on the clock: it needs a FakeClock (advance)")
        if agents_api not in AGENTS_APIS or agents_shape not in AGENTS_SHAPES:
            raise ValueError(f"agents_api in {AGENTS_APIS}, agents_shape in {AGENTS_SHAPES}")
        if shape not in SHAPES:
            raise ValueError(f"shape must be one of {SHAPES}")
        if rate_reset not in ("seconds", "epoch"):
            raise ValueError("rate_reset must be 'seconds' or 'epoch'")
        if rate_limit is not None and rate_limit < 1:
            raise ValueError("rate_limit must be >= 1 or None")
        self.clock = clock
        self.start = clock.now() if start is None else start
        self.keys = frozenset(keys)
        self.forbidden_keys = frozenset(forbidden_keys)
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.rate_reset: RateReset = rate_reset
        self.ignore_date_filter = ignore_date_filter
        self.retry_after = retry_after
        self.hold_seconds = hold_seconds
        self.on_request: RequestHook | None = None
        self.scenario = scenario
        self._lock = threading.RLock()
        self._store = CallStore(shape, default_vocab)
        if scenario is not None:
            self._store.attach(scenario, self.start)
        self._faults: deque[tuple[str, float | None]] = deque()
        self._hits: dict[str, deque[float]] = {}
        self._requests: list[RequestRecord] = []
        self._held: set[threading.Event] = set()
        self._next_id = 0
        self.latency = latency
        self._draw_latency = latency.sampler() if latency is not None else None
        self.agents_api: AgentsApi = agents_api
        self.agents_shape: AgentsShape = agents_shape
        self.agents_total_pages = agents_total_pages
        self._directory: dict[str, AgentInfo] = {}
        if scenario is not None:
            for profile in scenario.agents:
                self._directory[profile.agent_id] = profile.directory()

    # ---- configuration -------------------------------------------------------------

    @property
    def shape(self) -> Shape:
        return self._store.shape

    @shape.setter
    def shape(self, value: Shape) -> None:
        if value not in SHAPES:
            raise ValueError(f"shape must be one of {SHAPES}")
        with self._lock:
            self._store.shape = value

    # ---- calls ---------------------------------------------------------------------

    def add_call(
        self,
        agent_id: str,
        created_at: float,
        outcome: str = "completed",
        *,
        ring: float = 5.0,
        talk: float = 60.0,
        call_id: str | None = None,
        vocab: Vocab | None = None,
    ) -> str:
        """Add one call; returns its id (``call_m000000000001``... when not given)."""
        with self._lock:
            if call_id is None:
                self._next_id += 1
                call_id = f"call_m{self._next_id:012d}"
            spec = CallSpec(call_id, agent_id, created_at, outcome, ring, talk)
            self._store.add(spec, vocab)
            return call_id

    def add_calls(self, specs: Iterable[CallSpec], vocab: Vocab | None = None) -> list[str]:
        with self._lock:
            ids = []
            for spec in specs:
                self._store.add(spec, vocab)
                ids.append(spec.id)
            return ids

    def set_final(self, call_id: str, outcome: str, at: float | None = None) -> None:
        """Change a call's outcome; with ``at``, also when it settles (ring/talk adjusted)."""
        with self._lock:
            self._store.set_final(call_id, outcome, None if at is None else to_ms(at))

    def get_call(self, call_id: str) -> CallSpec:
        with self._lock:
            k = self._store.find(call_id)
            if k is None:
                raise KeyError(call_id)
            return self._store.spec(k)

    def calls(self, until: float | None = None) -> list[CallSpec]:
        """Every call created at or before ``until`` (default: now), oldest first."""
        with self._lock:
            t = now_ms(self.clock.now() if until is None else until)
            self._store.ensure(t)
            return list(self._store.iter_specs(t))

    def count_calls(self, agent_id: str | None = None, until: float | None = None) -> int:
        """How many calls were created at or before ``until`` (default: now)."""
        with self._lock:
            t = now_ms(self.clock.now() if until is None else until)
            total, _ = self._store.page(t, agent_id=agent_id, limit=0)
            return total

    def vocab_of(self, agent_id: str) -> Vocab | None:
        with self._lock:
            return self._store.vocab_of(agent_id)

    @property
    def agent_ids(self) -> list[str]:
        with self._lock:
            return list(self._store.agents)

    # ---- ground truth --------------------------------------------------------------

    def settled_counts(
        self, agent_id: str | None = None, start: float = 0.0, end: float | None = None
    ) -> dict[str, int]:
        """Observed final status -> calls settling in (start, end]; zero counts omitted.

        Statuses are canonical underscore names incl. ``voicemail``, as a correct client
        reads them from this server's shape and the agent's vocabulary (see
        ``observed_outcome``). ``end`` defaults to now.
        """
        with self._lock:
            e = to_ms(self.clock.now() if end is None else end)
            return self._store.settled_counts(agent_id, to_ms(start), e)

    def changed_between(self, t0: float, t1: float) -> int:
        """Distinct calls created or changing lifecycle status in (t0, t1]."""
        with self._lock:
            return self._store.changed_between(to_ms(t0), to_ms(t1))

    def settled_by_agent(self, start: float, end: float | None = None) -> dict[str, dict[str, int]]:
        """Agent -> observed final status -> calls settling in (start, end] (zero counts
        omitted; ``end`` defaults to now). A window of length ``w`` ending at ``t`` is
        ``settled_by_agent(t - w, t)``; for many successive windows see ``truth_windows``."""
        with self._lock:
            e = to_ms(self.clock.now() if end is None else end)
            return self._store.settled_by_agent(to_ms(start), e)

    def truth_windows(self, windows: Sequence[float]) -> TruthWindows:
        """Sliding per-agent ground truth for ``windows`` (seconds), advanced incrementally:
        O(calls) over a run instead of O(calls in the window) per tick."""
        return TruthWindows(self, windows)

    def settled_calls(self, start: float, end: float | None = None) -> list[SettledCall]:
        """Every call settling in (start, end], in settle order (``end`` defaults to now)."""
        with self._lock:
            e = to_ms(self.clock.now() if end is None else end)
            store = self._store
            names = store.observed_names()
            return [self._truth(k, names) for k in store.settled_serials(to_ms(start), e)]

    def _truth(self, k: int, names: list[str]) -> SettledCall:
        store = self._store
        oc = store.ov[k] >> VOCAB_BITS
        return SettledCall(
            id=store.id_of(k),
            agent_id=store.agents[store.agent[k]],
            outcome=names[store.ov[k]],
            created_at=store.created[k] / 1000.0,
            settled_at=store.settle[k] / 1000.0,
            answered=OUTCOMES[oc] in ANSWERED,
        )

    def truth_of(self, call_id: str) -> SettledCall | None:
        """Ground truth for one call id (its settle time may still be ahead); None if the
        simulator never made that id."""
        with self._lock:
            k = self._store.find(call_id)
            if k is None:
                return None
            return self._truth(k, self._store.observed_names())

    def settle_time(self, call_id: str) -> float | None:
        """When call ``call_id`` settles (epoch seconds), or None for an unknown id."""
        with self._lock:
            k = self._store.find(call_id)
            return None if k is None else self._store.settle[k] / 1000.0

    def count_settled(self, start: float, end: float) -> int:
        """How many calls settle in (start, end]."""
        with self._lock:
            return self._store.count_settled(to_ms(start), to_ms(end))

    def settled_call_bound(self, start: float, end: float) -> float:
        """The settled-call bound for (start, end]: calls settling in it / 100 (``PAGE``),
        the requests a poller would need if it could see each call exactly once, after it
        settles, in full pages."""
        return self.count_settled(start, end) / 100.0

    def in_flight(self, at: float | None = None) -> int:
        """Calls created at or before ``at`` (default now) that have not settled by then."""
        with self._lock:
            return len(self._store.in_flight(now_ms(self.clock.now() if at is None else at)))

    def bursts(self, until: float | None = None) -> list[BurstRecord]:
        """Campaign bursts that started at or before ``until`` (default now)."""
        with self._lock:
            t = now_ms(self.clock.now() if until is None else until)
            return [
                BurstRecord(agent_id, start / 1000.0, end / 1000.0, multiplier)
                for agent_id, start, end, multiplier in self._store.bursts_until(t)
            ]

    @property
    def injected(self) -> list[InjectedDegradation]:
        """The scenario's injected degradations, with epoch-second bounds."""
        if self.scenario is None:
            return []

        def epoch(x: float) -> float:
            return x if x >= ABSOLUTE_THRESHOLD else self.start + x

        return [replace(d, start=epoch(d.start), end=epoch(d.end)) for d in self.scenario.injected]

    # ---- agent directory (GET /agents2) --------------------------------------------

    def agent_info(self, agent_id: str) -> AgentInfo | None:
        """The /agents2 entry for ``agent_id`` (agents that only placed calls get a title
        and no call limits), or None for an agent the workspace does not know."""
        with self._lock:
            info = self._directory.get(agent_id)
            if info is None and agent_id in self._store.agent_index:
                return AgentInfo(title=f"Agent {agent_id}")
            return info

    def set_agent(self, agent_id: str, info: AgentInfo | None = None, **changes: object) -> None:
        """Add or change an agent's /agents2 entry: ``info`` replaces it, ``changes`` (title,
        published, deleted, max_call_duration_sec, ring_duration_sec) edit it."""
        if not agent_id:
            raise ValueError("agent_id must not be empty")
        with self._lock:
            current = info or self._directory.get(agent_id) or AgentInfo(f"Agent {agent_id}")
            self._directory[agent_id] = replace(current, **changes) if changes else current  # type: ignore[arg-type]

    def directory(self) -> list[tuple[str, AgentInfo]]:
        """Every agent /agents2 lists, in its order (scenario and set agents, then agents
        that only placed calls)."""
        with self._lock:
            out = list(self._directory.items())
            out.extend(
                (a, AgentInfo(title=f"Agent {a}"))
                for a in self._store.agents
                if a not in self._directory
            )
            return out

    # ---- faults and introspection --------------------------------------------------

    def inject(self, kind: FaultKind, count: int = 1, *, seconds: float | None = None) -> None:
        """Apply fault ``kind`` to the next ``count`` requests (FIFO after earlier faults).

        ``seconds``: Retry-After for ``429`` (default ``retry_after``), wall-clock hold for
        ``timeout`` (default ``hold_seconds``).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {FAULT_KINDS}")
        with self._lock:
            self._faults.extend([(kind, seconds)] * count)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def reset_rate_limits(self) -> None:
        with self._lock:
            self._hits.clear()

    def release_held(self) -> None:
        """Let every response held by a ``timeout`` fault go now."""
        with self._lock:
            for event in self._held:
                event.set()

    # ---- HTTP ----------------------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        query = str(environ.get("QUERY_STRING") or "")
        auth = environ.get("HTTP_AUTHORIZATION")
        response = self.handle(
            str(environ.get("REQUEST_METHOD") or "GET"),
            str(environ.get("PATH_INFO") or "/"),
            query,
            auth if isinstance(auth, str) else None,
        )
        if response.disconnect:
            raise Disconnect("injected disconnect")
        headers = [
            ("Content-Type", response.content_type),
            ("Content-Length", str(len(response.body))),
            *response.headers,
        ]
        start_response(response.status_line, headers)
        return [response.body]

    def handle(self, method: str, path: str, query: str, authorization: str | None) -> Response:
        """Serve one request (the WSGI callable's core; usable without HTTP)."""
        params: dict[str, str] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            params.setdefault(name, value)
        hook = self.on_request
        if hook is not None:
            hook(path, params)
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        kind = fault[0] if fault else None
        key = _bearer(authorization)
        if kind == "timeout":
            self._hold(fault[1] if fault and fault[1] is not None else self.hold_seconds)
        response = self._respond(kind, fault[1] if fault else None, method, path, params, key)
        latency = 0.0
        with self._lock:
            if self._draw_latency is not None:
                latency = self._draw_latency()
                self.clock.advance(latency)  # type: ignore[attr-defined]
            self._requests.append(
                RequestRecord(
                    path=path,
                    params=params,
                    status=0 if response.disconnect else response.status,
                    key_ok=key is not None and key in self.keys and key not in self.forbidden_keys,
                    fault=kind,
                    latency=latency,
                )
            )
        return response

    def _hold(self, seconds: float) -> None:
        event = threading.Event()
        with self._lock:
            self._held.add(event)
        try:
            event.wait(seconds)
        finally:
            with self._lock:
                self._held.discard(event)

    def _respond(
        self,
        kind: str | None,
        seconds: float | None,
        method: str,
        path: str,
        params: Mapping[str, str],
        key: str | None,
    ) -> Response:
        if kind in ("500", "502", "503"):
            messages = {"500": "Internal server error", "502": "Bad Gateway"}
            status = int(kind)
            return _error(status, messages.get(kind, "Service Unavailable"))
        if kind == "429":
            wait = self.retry_after if seconds is None else seconds
            return _error(
                429,
                "ThrottlerException: Too Many Requests",
                [("Retry-After", str(max(0, math.ceil(wait))))],
            )
        if kind == "html":
            return Response(200, _HTML, content_type="text/html; charset=utf-8")
        if kind == "disconnect":
            return Response(0, b"", disconnect=True)
        response = self._serve(method, path, params, key, corrupt=kind == "bad_items")
        if kind == "invalid_json":
            body = response.body
            response = Response(200, body[: max(1, len(body) // 2)], response.headers)
        return response

    def _serve(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        key: str | None,
        *,
        corrupt: bool,
    ) -> Response:
        agents = _agents_route(path)
        if method != "GET" or (path not in PATHS and agents is None):
            return _error(404, f"Cannot {method} {path}")
        if agents is not None and self.agents_api == "404":
            return _error(404, f"Cannot {method} {path}")
        if key is None or (key not in self.keys and key not in self.forbidden_keys):
            return _error(401, "Invalid API key")
        with self._lock:
            now = self.clock.now()
            limited, headers = self._throttle(key, now)
            if limited:
                return _error(429, "ThrottlerException: Too Many Requests", headers)
            if key in self.forbidden_keys:
                what = "calls" if agents is None else "agents"
                return _error(403, f"This API key cannot read {what} on this workspace", headers)
            if agents is not None:
                return self._serve_agents(agents, params, headers, corrupt=corrupt)
            try:
                page = _int_param(params, "page", 1, None)
                limit = _int_param(params, "limit", DEFAULT_LIMIT, MAX_LIMIT)
                from_ms = _time_param(params, "from", upper=False)
                to_ms_ = _time_param(params, "to", upper=True)
            except _BadRequest as exc:
                return _error(400, str(exc), headers)
            if self.ignore_date_filter:
                from_ms = to_ms_ = None
            t = now_ms(now)
            store = self._store
            total, serials = store.page(
                t,
                agent_id=params.get("agent_id") or None,
                status=params.get("status") or None,
                from_ms=from_ms,
                to_ms_=to_ms_,
                offset=(page - 1) * limit,
                limit=limit,
            )
            items = render(store, serials, t, store.shape)
            shape = store.shape
        if corrupt:
            items = bad_items(items, shape)
        payload: object
        if shape == "bare":
            payload = items
        elif shape == "v1":
            pages = -(-total // limit)
            meta = {"page": page, "limit": limit, "total": total, "totalPages": pages}
            payload = {"data": items, "meta": meta}
        else:
            payload = {"data": items, "meta": {"page": page, "limit": limit, "total": total}}
        return Response(200, msgspec.json.encode(payload), headers)

    def _serve_agents(
        self,
        agent_id: str,
        params: Mapping[str, str],
        headers: list[tuple[str, str]],
        *,
        corrupt: bool,
    ) -> Response:
        """``GET /agents2`` (``agent_id`` "") or ``GET /agents2/{agent_id}``; lock held."""
        if self.agents_api == "garbage":
            return Response(200, msgspec.json.encode(GARBAGE), headers)
        entries = self.directory()
        start_ms = to_ms(self.start)

        def item(index: int, aid: str, info: AgentInfo) -> dict[str, object]:
            created = start_ms - 86_400_000 * (len(entries) - index)
            body = agent_item(aid, info, index, created)
            return camel(body) if self.agents_shape == "camel" else body

        if agent_id:
            for index, (aid, info) in enumerate(entries):
                if aid == agent_id:
                    return Response(200, msgspec.json.encode(item(index, aid, info)), headers)
            return _error(404, "Agent not found", headers)
        try:
            page = _int_param(params, "page", 1, None)
            limit = _int_param(params, "limit", DEFAULT_LIMIT, MAX_LIMIT)
        except _BadRequest as exc:
            return _error(400, str(exc), headers)
        total = len(entries)
        first = (page - 1) * limit
        items = [item(i, *entries[i]) for i in range(first, min(first + limit, total))]
        if corrupt:
            items = bad_agents(items)
        meta: dict[str, object] = {"page": page, "limit": limit, "total": total}
        if self.agents_total_pages:
            meta["totalPages"] = -(-total // limit)
        return Response(200, msgspec.json.encode({"data": items, "meta": meta}), headers)

    def _throttle(self, key: str, now: float) -> tuple[bool, list[tuple[str, str]]]:
        """Sliding-window limit per key; (limited?, X-RateLimit-* and Retry-After headers)."""
        if self.rate_limit is None:
            return False, []
        hits = self._hits.setdefault(key, deque())
        window = self.rate_window
        while hits and hits[0] <= now - window:
            hits.popleft()
        limited = len(hits) >= self.rate_limit
        if not limited:
            hits.append(now)
        reset_in = max(0.0, hits[0] + window - now)
        reset = math.ceil(reset_in) if self.rate_reset == "seconds" else math.ceil(now + reset_in)
        headers = [
            ("X-RateLimit-Limit", str(self.rate_limit)),
            ("X-RateLimit-Remaining", str(max(0, self.rate_limit - len(hits)))),
            ("X-RateLimit-Reset", str(reset)),
        ]
        if limited:
            headers.append(("Retry-After", str(max(1, math.ceil(reset_in)))))
        return limited, headers


def _agents_route(path: str) -> str | None:
    """ "" for the agent list, the id for one agent, None for any other path."""
    for base in AGENT_PATHS:
        if path == base:
            return ""
        if path.startswith(base + "/"):
            rest = path[len(base) + 1 :]
            return rest if rest and "/" not in rest else None
    return None


__all__ = [
    "FAULT_KINDS",
    "OUTCOMES",
    "BurstRecord",
    "Disconnect",
    "FaultKind",
    "Latency",
    "RequestRecord",
    "Response",
    "SettledCall",
    "Simulator",
]
