"""The Simulator: a simulated workspace (``workspace.py``) served as DialNexa's
``GET /v1/calls`` and ``GET /v1/agents2``, a WSGI application.

Request pipeline: ``on_request`` callback -> arrival (the next injected fault, if any, is
taken and the request is recorded) -> route (404) -> auth (401) -> rate limit (429, per key,
shared by both endpoints) -> forbidden key (403) -> parameters (400) -> page. With a
``Latency``, the answer is computed at the request's arrival and the injected clock (a
FakeClock) then moves on by a latency drawn for that request.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import replace
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
from .calls import SHAPES, Shape, Vocab, now_ms, to_ms
from .profiles import AgentInfo
from .render import bad_items, render
from .scenario import Scenario
from .wire import (
    DEFAULT_LIMIT,
    FAULT_KINDS,
    HTML_502,
    MAX_LIMIT,
    PATHS,
    PENDING,
    BadRequest,
    Disconnect,
    FaultKind,
    Latency,
    RateReset,
    RequestHook,
    RequestRecord,
    Response,
    agents_route,
    bearer,
    error,
    int_param,
    throttle,
    time_param,
)
from .workspace import Workspace


class Simulator(Workspace):
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
        super().__init__(clock, scenario, shape=shape, default_vocab=default_vocab, start=start)
        self.keys = frozenset(keys)
        self.forbidden_keys = frozenset(forbidden_keys)
        self.rate_limit = rate_limit
        self.rate_window = rate_window
        self.rate_reset: RateReset = rate_reset
        self.ignore_date_filter = ignore_date_filter
        self.retry_after = retry_after
        self.hold_seconds = hold_seconds
        self.on_request: RequestHook | None = None
        self._faults: deque[tuple[str, float | None]] = deque()
        self._hits: dict[str, deque[float]] = {}
        self._requests: list[RequestRecord] = []
        self._cleared = 0  # clear_requests() calls: a record made before one is not filled in
        self._arrived = threading.Condition(self._lock)
        self._held: set[threading.Event] = set()
        self.latency = latency
        self._draw_latency = latency.sampler() if latency is not None else None
        self.agents_api: AgentsApi = agents_api
        self.agents_shape: AgentsShape = agents_shape
        self.agents_total_pages = agents_total_pages

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
            self._cleared += 1

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        """Wait (wall clock, at most ``timeout`` seconds) until ``count`` requests have
        arrived; True if they have. For tests that must know a request reached the server
        (e.g. is being held) before they go on."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self._requests) >= count, timeout)

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
        """Serve one request (the WSGI callable's core; usable without HTTP). The request is
        recorded when it arrives, so ``requests`` keeps arrival order even when an earlier
        request is still held; its status and latency are filled in once it is answered."""
        params: dict[str, str] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            params.setdefault(name, value)
        hook = self.on_request
        if hook is not None:
            hook(path, params)
        key = bearer(authorization)
        key_ok = key is not None and key in self.keys and key not in self.forbidden_keys
        hold: threading.Event | None = None
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
            kind = fault[0] if fault else None
            if kind == "timeout":  # held from arrival on: release_held() reaches it at once
                hold = threading.Event()
                self._held.add(hold)
            record = RequestRecord(path, params, PENDING, key_ok, kind)
            slot, cleared = len(self._requests), self._cleared
            self._requests.append(record)
            self._arrived.notify_all()
        if hold is not None:
            self._hold(hold, fault[1] if fault and fault[1] is not None else self.hold_seconds)
        response = self._respond(kind, fault[1] if fault else None, method, path, params, key)
        latency = 0.0
        with self._lock:
            if self._draw_latency is not None:
                latency = self._draw_latency()
                self.clock.advance(latency)  # type: ignore[attr-defined]
            if cleared == self._cleared:
                status = 0 if response.disconnect else response.status
                self._requests[slot] = replace(record, status=status, latency=latency)
        return response

    def _hold(self, event: threading.Event, seconds: float) -> None:
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
            return error(status, messages.get(kind, "Service Unavailable"))
        if kind == "429":
            wait = self.retry_after if seconds is None else seconds
            return error(
                429,
                "ThrottlerException: Too Many Requests",
                [("Retry-After", str(max(0, math.ceil(wait))))],
            )
        if kind == "html":
            return Response(200, HTML_502, content_type="text/html; charset=utf-8")
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
        agents = agents_route(path)
        if method != "GET" or (path not in PATHS and agents is None):
            return error(404, f"Cannot {method} {path}")
        if agents is not None and self.agents_api == "404":
            return error(404, f"Cannot {method} {path}")
        if key is None or (key not in self.keys and key not in self.forbidden_keys):
            return error(401, "Invalid API key")
        with self._lock:
            now = self.clock.now()
            limited, headers = self._throttle(key, now)
            if limited:
                return error(429, "ThrottlerException: Too Many Requests", headers)
            if key in self.forbidden_keys or (agents is not None and self.agents_api == "403"):
                what = "calls" if agents is None else "agents"
                return error(403, f"This API key cannot read {what} on this workspace", headers)
            if agents is not None:
                return self._serve_agents(agents, params, headers, corrupt=corrupt)
            try:
                page = int_param(params, "page", 1, None)
                limit = int_param(params, "limit", DEFAULT_LIMIT, MAX_LIMIT)
                from_ms = time_param(params, "from", upper=False)
                to_ms_ = time_param(params, "to", upper=True)
            except BadRequest as exc:
                return error(400, str(exc), headers)
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
            return error(404, "Agent not found", headers)
        try:
            page = int_param(params, "page", 1, None)
            limit = int_param(params, "limit", DEFAULT_LIMIT, MAX_LIMIT)
        except BadRequest as exc:
            return error(400, str(exc), headers)
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
        return throttle(hits, self.rate_limit, self.rate_window, self.rate_reset, now)
