"""The simulator's call table: columns, sorted indexes, lazy generation, queries, ground truth.

Not thread-safe by itself; the Simulator serialises access. Times are integer milliseconds.

Layout (chosen for speed and memory at ~10^5..10^6 calls): one row per call in parallel
``array`` columns indexed by an internal serial ``k`` (agent, created, ring, talk, settle,
outcome/vocabulary), no Python object per call. Generated ids are not stored: they are a
keyed bijection of ``k`` (``IdCodec``). The call order sorted by ``(created, id)``
ascending is kept for the workspace and per agent as ``array('q')`` pairs (created keys for
bisection, serials). A page without a status filter is two bisections and ``limit`` lookups.

Settle order (``SettleIndex``): the calls settled by a time ``through``, sorted by settle
time, plus a heap of the calls not settled by then (bounded by the calls in flight). Ground
truth over a span is two bisections; a pending-status page (``status=in-progress``) reads
only the calls in flight, whatever the longest call.

Measured (2-core EPYC VM): 2,000 agents at 1M calls/day, 75 min history + 3 h = ~177k calls
generated in ~0.8 s, ~18 MB; a limit=100 page in ~0.7 ms in-process. Arrival generation is
one merged Poisson stream (agent picked by bisection on cumulative rates), so its cost does
not grow with the number of agents.
"""

from __future__ import annotations

import random
from array import array
from bisect import bisect, bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from heapq import heapify, heappop, heappush
from math import log

from .calls import (
    ANSWERED_CODES,
    FINAL_BASE,
    OUTCOME_CODE,
    OUTCOMES,
    VOCABS,
    CallSpec,
    Shape,
    Vocab,
    normalise,
    observed_outcome,
    status_table,
    to_ms,
)
from .generate import BurstStream, RealAgent, realistic_chunk
from .profiles import ABSOLUTE_THRESHOLD, DIURNAL_AMPLITUDE, diurnal_factor
from .scenario import Scenario

GENERATE_AHEAD_MS = 60_000  # generation runs in steps of at least this much simulated time
GENERATE_STEP_MS = 600_000  # ... and of at most this much (bounds temporary memory)
_FAILED = OUTCOME_CODE["failed"]
_VOICEMAIL = OUTCOME_CODE["voicemail"]
VOCAB_BITS = 2  # ov = outcome code << VOCAB_BITS | vocabulary code
VOCAB_MASK = (1 << VOCAB_BITS) - 1


_MASK = (1 << 64) - 1
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_M1_INV = pow(_M1, -1, 1 << 64)
_M2_INV = pow(_M2, -1, 1 << 64)
_ID_PREFIX = "call_"


def _unshift(y: int, s: int) -> int:
    """Invert ``y = x ^ (x >> s)`` on 64 bits."""
    x = y
    for _ in range(64 // s + 1):
        x = y ^ (x >> s)
    return x


class IdCodec:
    """Generated call ids ``call_<16 hex>``: a keyed 64-bit bijection of the row serial, so
    ids look random, never collide, and need no storage (splitmix64's finaliser + a key)."""

    def __init__(self, key: int) -> None:
        self.key = key & _MASK

    def encode(self, k: int) -> str:
        x = k ^ self.key
        x ^= x >> 30
        x = (x * _M1) & _MASK
        x ^= x >> 27
        x = (x * _M2) & _MASK
        x ^= x >> 31
        return f"call_{x:016x}"

    def decode(self, cid: str) -> int | None:
        """The serial behind a generated id, or None if ``cid`` is not shaped like one."""
        if len(cid) != 21 or not cid.startswith(_ID_PREFIX):
            return None
        try:
            x = int(cid[5:], 16)
        except ValueError:
            return None
        if cid[5:] != f"{x:016x}":
            return None
        x = _unshift(x, 31)
        x = (x * _M2_INV) & _MASK
        x = _unshift(x, 27)
        x = (x * _M1_INV) & _MASK
        x = _unshift(x, 30)
        k = x ^ self.key
        return k if k < (1 << 40) else None


# What the kind generator needs of an agent, shared by agents with the same profile (so
# 10^4 agents cost 10^4 list slots, not 10^4 copies): cumulative mix, codes, the same without
# failures, ring low/span (ms), talk low/span (whole s), degradations (ms), vocabulary code,
# quiet periods (ms).
_Class = tuple[
    list[float],
    list[int],
    list[float],
    list[int],
    int,
    int,
    int,
    int,
    tuple[tuple[int, int, float], ...],
    int,
    tuple[tuple[int, int], ...],
]


@dataclass(slots=True)
class _Generator:
    """State of the scenario's merged Poisson stream (one RNG, so chunking never matters)."""

    rng: random.Random
    rate_per_ms: float  # peak rate when diurnal (thinning), else the mean
    diurnal: bool
    agent_cum: list[float]  # cumulative call-rate share per profile
    agent_rows: list[int]  # profile -> store agent index
    agent_class: list[int]  # profile -> class
    classes: list[_Class]
    next_t: float  # ms; the next candidate arrival
    realistic: list[RealAgent] = field(default_factory=list)  # realistic traffic: per profile
    bursts: BurstStream | None = None


class SettleIndex:
    """Calls in settle order up to ``through`` (ms), and a heap of those settling later."""

    __slots__ = ("heap", "pushed", "serials", "through", "times")

    def __init__(self) -> None:
        self.times = array("q")  # settle times, ascending, all <= through
        self.serials = array("q")
        self.through = -(2**62)
        self.heap: list[tuple[int, int]] = []  # (settle, serial) with settle > through
        self.pushed = 0  # rows 0..pushed-1 are in times or in the heap

    def advance(self, settle: array[int], t: int) -> None:
        """Move ``through`` to ``t``: every row must exist that settles at or before ``t``."""
        if t <= self.through:
            return
        heap = self.heap
        ready: list[int] = []  # serials; in (settle, serial) order once sorted below
        while heap and heap[0][0] <= t:
            ready.append(heappop(heap)[1])
        n = len(settle)
        if self.pushed < n:
            # rows not seen yet all have larger serials than the heap's, so a stable sort
            # by settle time keeps ties in serial order
            later: list[tuple[int, int]] = []
            for k in range(self.pushed, n):
                if settle[k] <= t:
                    ready.append(k)
                else:
                    later.append((settle[k], k))
            if len(later) > len(heap):
                heap.extend(later)
                heapify(heap)
            else:
                for item in later:
                    heappush(heap, item)
            self.pushed = n
            ready.sort(key=settle.__getitem__)
        self.times.fromlist([settle[k] for k in ready])
        self.serials.fromlist(ready)
        self.through = t

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Positions of the calls settling in (start, end] (``end`` <= ``through``)."""
        return bisect_right(self.times, start), bisect_right(self.times, end)

    def unsettled(self, t: int) -> Iterator[int]:
        """Serials settling after ``t`` (``t`` <= ``through``), in no particular order."""
        for _, k in self.heap:
            yield k
        if self.through > t:
            yield from self.serials[bisect_right(self.times, t) :]


class CallStore:
    def __init__(self, shape: Shape = "v1", default_vocab: Vocab = "underscore") -> None:
        self.shape: Shape = shape
        self.default_vocab: Vocab = default_vocab
        # per call (index k)
        self.agent = array("l")
        self.created = array("q")
        self.ring = array("q")
        self.talk = array("q")  # effective: 0 for unanswered outcomes
        self.settle = array("q")
        self.ov = array("b")  # outcome code << VOCAB_BITS | vocabulary code (VOCABS index)
        # ids: generated calls' ids are a keyed bijection of k (see ``IdCodec``), computed
        # on demand; only explicitly added calls keep a string
        self.codec = IdCodec(0)
        self.explicit_ids: dict[int, str] = {}
        self.explicit_by_id: dict[str, int] = {}
        # workspace order by (created, id)
        self.keys = array("q")
        self.order = array("q")
        # per agent
        self.agents: list[str] = []
        self.agent_index: dict[str, int] = {}
        self.agent_vocab: list[int] = []
        self.agent_keys: list[array[int]] = []
        self.agent_order: list[array[int]] = []
        self.max_duration = 0  # ms, max(settle - created)
        self._gen: _Generator | None = None
        self.horizon = -(2**62)  # generated through this ms (inclusive)
        self._settled: SettleIndex | None = None  # built on demand; dropped on edits

    # ---- agents and rows -------------------------------------------------------------

    def vocab_of(self, agent_id: str) -> Vocab | None:
        a = self.agent_index.get(agent_id)
        return None if a is None else VOCABS[self.agent_vocab[a]]

    def add_agent(self, agent_id: str, vocab: Vocab | None = None) -> int:
        a = self.agent_index.get(agent_id)
        if a is not None:
            if vocab is not None and VOCABS[self.agent_vocab[a]] != vocab:
                raise ValueError(
                    f"agent {agent_id!r} already speaks {VOCABS[self.agent_vocab[a]]!r}"
                )
            return a
        v = vocab or self.default_vocab
        if v not in VOCABS:
            raise ValueError(f"vocab must be one of {VOCABS}")
        a = len(self.agents)
        self.agents.append(agent_id)
        self.agent_index[agent_id] = a
        self.agent_vocab.append(VOCABS.index(v))
        self.agent_keys.append(array("q"))
        self.agent_order.append(array("q"))
        return a

    def __len__(self) -> int:
        return len(self.created)

    def id_of(self, k: int) -> str:
        cid = self.explicit_ids.get(k)
        return cid if cid is not None else self.codec.encode(k)

    def find(self, cid: str) -> int | None:
        """The serial of call ``cid``, or None."""
        k = self.explicit_by_id.get(cid)
        if k is not None:
            return k
        k = self.codec.decode(cid)
        if k is not None and k < len(self.created) and k not in self.explicit_ids:
            return k
        return None

    def add(self, spec: CallSpec, vocab: Vocab | None = None) -> int:
        if spec.id in self.explicit_by_id or (
            self._gen is not None and self.codec.decode(spec.id) is not None
        ):
            raise ValueError(f"duplicate or reserved call id {spec.id!r}")
        a = self.add_agent(spec.agent_id, vocab)
        c = to_ms(spec.created_at)
        r = to_ms(spec.ring)
        t = to_ms(spec.talk_seconds)
        return self._append(spec.id, a, c, r, t, OUTCOME_CODE[spec.outcome])

    def _append(self, cid: str, a: int, c: int, r: int, t: int, oc: int) -> int:
        k = len(self.created)
        self.explicit_ids[k] = cid
        self.explicit_by_id[cid] = k
        self.agent.append(a)
        self.created.append(c)
        self.ring.append(r)
        self.talk.append(t)
        self.settle.append(c + r + t)
        self.ov.append(oc << VOCAB_BITS | self.agent_vocab[a])
        self.max_duration = max(self.max_duration, r + t)
        self._settled = None
        self._place(self.keys, self.order, k, c, cid)
        self._place(self.agent_keys[a], self.agent_order[a], k, c, cid)
        return k

    def _place(self, keys: array[int], order: array[int], k: int, c: int, cid: str) -> None:
        """Insert serial ``k`` (created ``c``, id ``cid``) keeping (created, id) order."""
        n = len(keys)
        if n == 0 or c > keys[-1] or (c == keys[-1] and cid > self.id_of(order[-1])):
            keys.append(c)
            order.append(k)
            return
        pos = bisect_right(keys, c)
        id_of = self.id_of
        while pos > 0 and keys[pos - 1] == c and id_of(order[pos - 1]) > cid:
            pos -= 1
        keys.insert(pos, c)
        order.insert(pos, k)

    def spec(self, k: int) -> CallSpec:
        return CallSpec(
            id=self.id_of(k),
            agent_id=self.agents[self.agent[k]],
            created_at=self.created[k] / 1000.0,
            outcome=OUTCOMES[self.ov[k] >> VOCAB_BITS],
            ring=self.ring[k] / 1000.0,
            talk=self.talk[k] / 1000.0,
        )

    def set_final(self, cid: str, outcome: str, at_ms: int | None) -> None:
        k = self.find(cid)
        if k is None:
            raise KeyError(f"no call {cid!r}")
        oc = OUTCOME_CODE.get(outcome)
        if oc is None:
            raise ValueError(f"unknown outcome {outcome!r}; expected one of {OUTCOMES}")
        c, r, t = self.created[k], self.ring[k], self.talk[k]
        answered = oc in ANSWERED_CODES
        if at_ms is None:
            if not answered:
                t = 0
        else:
            if at_ms < c:
                raise ValueError("a call cannot settle before it was created")
            if answered:
                r = min(r, at_ms - c)
                t = at_ms - c - r
            else:
                r, t = at_ms - c, 0
        self.ring[k] = r
        self.talk[k] = t
        self.settle[k] = c + r + t
        self.ov[k] = oc << VOCAB_BITS | (self.ov[k] & VOCAB_MASK)
        self.max_duration = max(self.max_duration, r + t)
        self._settled = None

    def iter_specs(self, until_ms: int | None = None) -> Iterator[CallSpec]:
        """Every call in (created, id) order, optionally only those created <= until_ms."""
        hi = len(self.keys) if until_ms is None else bisect_right(self.keys, until_ms)
        for i in range(hi):
            yield self.spec(self.order[i])

    # ---- generation ------------------------------------------------------------------

    def attach(self, scenario: Scenario, start: float) -> None:
        """Generate ``scenario`` traffic from ``start - history`` on, lazily (see ``ensure``)."""
        if self._gen is not None:
            raise ValueError("a scenario is already attached")
        start_ms = to_ms(start)
        total = sum(p.calls_per_minute for p in scenario.agents)
        agent_cum: list[float] = []
        acc = 0.0
        for p in scenario.agents:
            acc += p.calls_per_minute
            agent_cum.append(acc / total if total > 0 else 1.0)
        if agent_cum:
            agent_cum[-1] = 1.0

        def bound(x: float) -> int:
            return to_ms(x) if x >= ABSOLUTE_THRESHOLD else start_ms + to_ms(x)

        rate = total / 60_000.0 * ((1.0 + DIURNAL_AMPLITUDE) if scenario.diurnal else 1.0)
        rng = random.Random(scenario.seed)
        self.codec = IdCodec(rng.getrandbits(64))
        first = float(start_ms - to_ms(scenario.history))
        rows = [self.add_agent(p.agent_id, p.vocab) for p in scenario.agents]
        class_index: dict[tuple[object, ...], int] = {}
        classes: list[_Class] = []
        agent_class: list[int] = []
        realistic: list[RealAgent] = []
        if scenario.traffic == "realistic":
            realistic = [
                RealAgent.of(p, row, self.agent_vocab[row], start_ms)
                for p, row in zip(scenario.agents, rows, strict=True)
            ]
        for p, row in zip(scenario.agents, rows, strict=True):
            degradations = tuple((bound(s), bound(e), share) for s, e, share in p.degradations)
            quiet = tuple((bound(s), bound(e)) for s, e in p.quiet)
            key = (
                tuple(p.outcomes.items()),
                p.ring,
                p.talk,
                degradations,
                self.agent_vocab[row],
                quiet,
            )
            q = class_index.get(key)
            if q is None:
                q = class_index[key] = len(classes)
                cum, codes = p.mix()
                cum_nf, codes_nf = p.mix(without_failed=True)
                classes.append(
                    (
                        cum,
                        codes,
                        cum_nf,
                        codes_nf,
                        to_ms(p.ring[0]),
                        to_ms(p.ring[1]) - to_ms(p.ring[0]),
                        round(p.talk[0]),
                        round(p.talk[1]) - round(p.talk[0]),
                        degradations,
                        self.agent_vocab[row],
                        quiet,
                    )
                )
            agent_class.append(q)
        self._gen = _Generator(
            rng=rng,
            rate_per_ms=rate,
            diurnal=scenario.diurnal,
            agent_cum=agent_cum,
            agent_rows=rows,
            agent_class=agent_class,
            classes=classes,
            next_t=first + (rng.expovariate(rate) if rate > 0 else float("inf")),
            realistic=realistic,
        )
        if scenario.bursts is not None and realistic:
            eligible = [i for i, x in enumerate(realistic) if x.per_ms > 0]
            if eligible:
                self._gen.bursts = BurstStream.create(
                    scenario.seed, scenario.bursts, eligible, first
                )

    def ensure(self, t_ms: int) -> None:
        """Make sure every generated call created at or before ``t_ms`` exists."""
        if t_ms <= self.horizon:
            return
        target = t_ms + GENERATE_AHEAD_MS
        g = self._gen
        if g is not None:
            # in steps of simulated time, so a long history never sits in temporary lists
            # all at once (the calls do not depend on the steps)
            sub = self.horizon if self.horizon > -(2**61) else int(min(g.next_t, target))
            while sub < target:
                sub = min(target, sub + GENERATE_STEP_MS)
                if g.realistic:
                    self._generate_realistic(g, sub)
                elif g.next_t <= sub:
                    self._generate(g, sub)
        self.horizon = target

    def _generate(self, g: _Generator, target: int) -> None:
        """Draw arrivals up to ``target`` ms into lists, then append them in bulk."""
        rng = g.rng
        rand = rng.random
        inv_rate = 1.0 / g.rate_per_ms if g.rate_per_ms > 0 else 0.0
        peak = 1.0 + DIURNAL_AMPLITUDE
        diurnal = g.diurnal
        agent_cum, agent_rows = g.agent_cum, g.agent_rows
        agent_class, classes = g.agent_class, g.classes
        single = len(agent_cum) == 1
        answered = ANSWERED_CODES
        k0 = len(self.created)
        encode = self.codec.encode
        new_agent: list[int] = []
        new_c: list[int] = []
        new_r: list[int] = []
        new_t: list[int] = []
        new_s: list[int] = []
        new_ov: list[int] = []
        new_order: list[int] = []  # chunk positions in (created, id) order
        prev_c = -1
        max_dur = self.max_duration
        t = g.next_t
        while t <= target:
            if diurnal and rand() * peak > diurnal_factor(t / 1000.0):
                t -= log(1.0 - rand()) * inv_rate
                continue
            p = 0 if single else bisect(agent_cum, rand())
            cls = classes[agent_class[p]]
            cum, codes, cum_nf, codes_nf, ring_lo, ring_span, talk_lo, talk_span, degs, v, _ = cls
            c = int(t)
            u = rand()
            if degs:
                for s, e, share in degs:
                    if s <= c < e:
                        oc = _FAILED if rand() < share else codes_nf[bisect(cum_nf, u)]
                        break
                else:
                    oc = codes[bisect(cum, u)]
            else:
                oc = codes[bisect(cum, u)]
            r = ring_lo + int(rand() * ring_span)
            if oc in answered:
                span = talk_span // 6 if oc == _VOICEMAIL else talk_span
                tk = (talk_lo + int(rand() * (span + 1))) * 1000
            else:
                tk = 0
            quiet = cls[10]
            if quiet and any(s <= c < e for s, e in quiet):  # drawn, then dropped: the
                t -= log(1.0 - rand()) * inv_rate  # other agents' calls stay the same
                continue
            a = agent_rows[p]
            j = len(new_c)
            new_agent.append(a)
            new_c.append(c)
            new_r.append(r)
            new_t.append(tk)
            new_s.append(c + r + tk)
            new_ov.append(oc << VOCAB_BITS | v)
            if r + tk > max_dur:
                max_dur = r + tk
            if c != prev_c:
                new_order.append(j)
                prev_c = c
            else:  # same millisecond as the previous arrival(s): order by id
                cid = encode(k0 + j)
                pos = len(new_order)
                while pos > 0 and new_c[new_order[pos - 1]] == c:
                    if encode(k0 + new_order[pos - 1]) < cid:
                        break
                    pos -= 1
                new_order.insert(pos, j)
            t -= log(1.0 - rand()) * inv_rate
        g.next_t = t
        self.max_duration = max_dur
        if new_c:
            self._bulk_append(k0, new_agent, new_c, new_r, new_t, new_s, new_ov, new_order)

    def bursts_until(self, t: int) -> list[tuple[str, int, int, float]]:
        """(agent id, start ms, end ms, multiplier) of the bursts started by ``t``."""
        self.ensure(t)
        g = self._gen
        if g is None or g.bursts is None:
            return []
        m = g.bursts.bursts.multiplier
        return [(self.agents[g.realistic[p].row], s, e, m) for p, s, e in g.bursts.log if s <= t]

    def _generate_realistic(self, g: _Generator, target: int) -> None:
        """Realistic arrivals up to ``target`` ms (main stream and bursts), appended in bulk."""
        g.next_t, rows = realistic_chunk(
            g.rng,
            g.next_t,
            target,
            g.rate_per_ms,
            g.diurnal,
            g.agent_cum,
            g.realistic,
            g.bursts,
        )
        if not rows:
            return
        k0 = len(self.created)
        agents = g.realistic
        new_agent = [agents[row[1]].row for row in rows]
        new_c = [row[0] for row in rows]
        new_r = [row[2] for row in rows]
        new_t = [row[3] for row in rows]
        new_s = [row[0] + row[2] + row[3] for row in rows]
        new_ov = [row[4] << VOCAB_BITS | agents[row[1]].vocab for row in rows]
        self.max_duration = max(
            self.max_duration, max(r + t for r, t in zip(new_r, new_t, strict=True))
        )
        # rows are sorted by created; calls created in the same millisecond go by id
        order = list(range(len(rows)))
        encode = self.codec.encode
        i = 0
        while i < len(order):
            j = i + 1
            while j < len(order) and new_c[j] == new_c[i]:
                j += 1
            if j - i > 1:
                order[i:j] = sorted(range(i, j), key=lambda q: encode(k0 + q))
            i = j
        self._bulk_append(k0, new_agent, new_c, new_r, new_t, new_s, new_ov, order)

    def _bulk_append(
        self,
        k0: int,
        agent: list[int],
        created: list[int],
        ring: list[int],
        talk: list[int],
        settle: list[int],
        ov: list[int],
        order: list[int],
    ) -> None:
        """Append rows ``k0...`` (``order``: their (created, id) order) and index them."""
        self.agent.fromlist(agent)
        self.created.fromlist(created)
        self.ring.fromlist(ring)
        self.talk.fromlist(talk)
        self.settle.fromlist(settle)
        self.ov.fromlist(ov)
        serials = [k0 + j for j in order]
        sorted_c = [created[j] for j in order]
        self._extend_index(self.keys, self.order, sorted_c, serials)
        per_agent: dict[int, tuple[list[int], list[int]]] = {}
        for j, k, c in zip(order, serials, sorted_c, strict=True):
            entry = per_agent.get(agent[j])
            if entry is None:
                per_agent[agent[j]] = ([c], [k])
            else:
                entry[0].append(c)
                entry[1].append(k)
        for a, (cs, ks) in per_agent.items():
            self._extend_index(self.agent_keys[a], self.agent_order[a], cs, ks)

    def _extend_index(
        self, keys: array[int], order: array[int], cs: list[int], ks: list[int]
    ) -> None:
        """Add sorted (created, serial) pairs to an index: in bulk when they all come last."""
        id_of = self.id_of
        if not keys or cs[0] > keys[-1] or (cs[0] == keys[-1] and id_of(ks[0]) > id_of(order[-1])):
            keys.fromlist(cs)
            order.fromlist(ks)
            return
        for c, k in zip(cs, ks, strict=True):
            self._place(keys, order, k, c, id_of(k))

    # ---- queries ---------------------------------------------------------------------

    def code_at(self, k: int, now: int) -> int:
        """Status code of call ``k`` at ``now`` (ms); the call must exist by then."""
        el = now - self.created[k]
        r = self.ring[k]
        if el < r:
            return 0 if el < 1000 else 1
        if el < r + self.talk[k]:
            return 2
        return FINAL_BASE + (self.ov[k] >> VOCAB_BITS)

    def status_codes(self, status: str) -> tuple[frozenset[int], ...]:
        """Status codes whose spelling matches ``status``, one set per vocabulary (VOCABS)."""
        want = normalise(status)
        return tuple(
            frozenset(i for i, s in enumerate(table) if normalise(s) == want)
            for table in status_table(self.shape)
        )

    def _index_for(self, agent_id: str | None) -> tuple[array[int], array[int]] | None:
        if agent_id is None:
            return self.keys, self.order
        a = self.agent_index.get(agent_id)
        if a is None:
            return None
        return self.agent_keys[a], self.agent_order[a]

    def page(
        self,
        now: int,
        *,
        agent_id: str | None = None,
        status: str | None = None,
        from_ms: int | None = None,
        to_ms_: int | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> tuple[int, list[int]]:
        """(total, serials of the page) among calls created <= now, newest first.

        Without ``status``: O(log n + limit). With a pending ``status`` (initiated, ringing,
        in progress): the calls in flight only. With a final one: a scan of the created_at
        range.
        """
        self.ensure(now)
        index = self._index_for(agent_id)
        if index is None:
            return 0, []
        keys, order = index
        hi = bisect_right(keys, now if to_ms_ is None else min(now, to_ms_))
        lo = 0 if from_ms is None else bisect_left(keys, from_ms)
        if hi <= lo:
            return 0, []
        if status is None:
            total = hi - lo
            return total, [order[hi - 1 - i] for i in range(offset, min(offset + limit, total))]
        match = self.status_codes(status)
        codes = frozenset().union(*match)
        if not codes:
            return 0, []
        ov, code_at = self.ov, self.code_at
        end = offset + limit
        if all(code < FINAL_BASE for code in codes):
            first = keys[lo]
            last = keys[hi - 1]
            a = None if agent_id is None else self.agent_index[agent_id]
            agent, created = self.agent, self.created
            hits = [
                k
                for k in self.in_flight(now)
                if first <= created[k] <= last
                and (a is None or agent[k] == a)
                and code_at(k, now) in match[ov[k] & VOCAB_MASK]
            ]
            self._sort_newest_first(hits)
            return len(hits), hits[offset:end]
        total = 0
        found: list[int] = []
        for i in range(hi - 1, lo - 1, -1):
            k = order[i]
            if code_at(k, now) in match[ov[k] & VOCAB_MASK]:
                total += 1
                if offset < total <= end:
                    found.append(k)
        return total, found

    def _sort_newest_first(self, serials: list[int]) -> None:
        """Sort by (created, id) descending, as the indexes are (ids only break ties)."""
        created, id_of = self.created, self.id_of
        serials.sort(key=created.__getitem__, reverse=True)
        i = 0
        n = len(serials)
        while i < n:
            j = i + 1
            c = created[serials[i]]
            while j < n and created[serials[j]] == c:
                j += 1
            if j - i > 1:
                serials[i:j] = sorted(serials[i:j], key=id_of, reverse=True)
            i = j

    # ---- ground truth ----------------------------------------------------------------

    def settled_index(self, t: int) -> SettleIndex:
        """The settle-order index, complete through ``t`` ms at least."""
        self.ensure(t)
        idx = self._settled
        if idx is None:
            idx = self._settled = SettleIndex()
        idx.advance(self.settle, t)
        return idx

    def in_flight(self, now: int) -> list[int]:
        """Serials of the calls created at or before ``now`` that settle after it."""
        created = self.created
        return [k for k in self.settled_index(now).unsettled(now) if created[k] <= now]

    def observed_names(self) -> list[str]:
        """Observed final status by ``ov`` value, as a correct client reads this shape."""
        return [
            observed_outcome(OUTCOMES[code >> VOCAB_BITS], VOCABS[code & VOCAB_MASK], self.shape)
            if (code & VOCAB_MASK) < len(VOCABS)
            else ""
            for code in range(len(OUTCOMES) << VOCAB_BITS)
        ]

    def settled_serials(self, start: int, end: int) -> array[int]:
        """Serials of the calls settling in (start, end], in settle order."""
        if end <= start:
            self.ensure(end)
            return array("q")
        idx = self.settled_index(end)
        lo, hi = idx.span(start, end)
        return idx.serials[lo:hi]

    def count_settled(self, start: int, end: int) -> int:
        """How many calls settle in (start, end]."""
        if end <= start:
            return 0
        lo, hi = self.settled_index(end).span(start, end)
        return hi - lo

    def settled_counts(self, agent_id: str | None, start: int, end: int) -> dict[str, int]:
        """Observed final status -> calls whose settle time is in (start, end]."""
        serials = self.settled_serials(start, end)
        counts = [0] * (len(OUTCOMES) << VOCAB_BITS)
        ov = self.ov
        if agent_id is None:
            for k in serials:
                counts[ov[k]] += 1
        else:
            a = self.agent_index.get(agent_id)
            if a is None:
                return {}
            agent = self.agent
            for k in serials:
                if agent[k] == a:
                    counts[ov[k]] += 1
        names = self.observed_names()
        result: dict[str, int] = {}
        for code, n in enumerate(counts):
            if n:
                name = names[code]
                result[name] = result.get(name, 0) + n
        return result

    def settled_by_agent(self, start: int, end: int) -> dict[str, dict[str, int]]:
        """Agent -> observed final status -> calls settling in (start, end]."""
        serials = self.settled_serials(start, end)
        per: dict[int, int] = {}  # agent << 8 | ov -> calls
        agent, ov = self.agent, self.ov
        for k in serials:
            key = agent[k] << 8 | ov[k]
            per[key] = per.get(key, 0) + 1
        names = self.observed_names()
        agents = self.agents
        result: dict[str, dict[str, int]] = {}
        for key, n in per.items():
            counts = result.setdefault(agents[key >> 8], {})
            name = names[key & 0xFF]
            counts[name] = counts.get(name, 0) + n
        return result

    def changed_between(self, t0: int, t1: int) -> int:
        """Distinct calls created, or moving to a new lifecycle status, in (t0, t1]."""
        self.ensure(t1)
        if t1 <= t0:
            return 0
        keys = self.keys
        n = bisect_right(keys, t1) - bisect_right(keys, t0)
        created, ring, settle = self.created, self.ring, self.settle
        for k in self.in_flight(t0):
            s = settle[k]
            c = created[k]
            r = ring[k]
            if r > 1000 and c + 1000 > t0:
                nxt = c + 1000
            elif c + r > t0:
                nxt = c + r
            else:
                nxt = s
            if nxt <= t1:
                n += 1
        return n
