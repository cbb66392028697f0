"""The simulated workspace: its calls (explicit ones and the scenario's, generated on demand),
its agent directory, and the ground truth benchmarks score against. Thread-safe: every method
holds the workspace's lock. Time is read only from the injected clock.

``app.Simulator`` serves it over DialNexa's API (``GET /v1/calls``, ``GET /v1/agents2``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from ..clock import Clock
from .calls import ANSWERED, OUTCOMES, SHAPES, VOCAB_BITS, CallSpec, Shape, Vocab, now_ms, to_ms
from .profiles import ABSOLUTE_THRESHOLD, AgentInfo
from .scenario import InjectedDegradation, Scenario
from .store import CallStore
from .truth import TruthWindows


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


class Workspace:
    """A DialNexa workspace in memory: calls, agents, ground truth (see the module)."""

    def __init__(
        self,
        clock: Clock,
        scenario: Scenario | None = None,
        *,
        shape: Shape = "v1",
        default_vocab: Vocab = "underscore",
        start: float | None = None,
    ) -> None:
        self.clock = clock
        self.start = clock.now() if start is None else start
        self.scenario = scenario
        self._lock = threading.RLock()
        self._store = CallStore(shape, default_vocab)
        if scenario is not None:
            self._store.attach(scenario, self.start)
        self._next_id = 0
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
