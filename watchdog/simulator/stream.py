"""A scenario's arrival stream: the generator state built from a scenario, and chunks of new
rows for the call table (kind and realistic traffic). Pure apart from the RNGs it owns.

One merged Poisson stream over all agents (an agent is picked by bisection on cumulative
rates), so its cost does not grow with the number of agents, and one RNG, so how the store
chunks generation in time never changes the calls. Times are integer milliseconds.
"""

from __future__ import annotations

import random
from bisect import bisect
from collections.abc import Callable
from dataclasses import dataclass, field
from math import log

from .calls import ANSWERED_CODES, OUTCOME_CODE, VOCAB_BITS, to_ms
from .generate import BurstStream, RealAgent, realistic_chunk
from .profiles import ABSOLUTE_THRESHOLD, DIURNAL_AMPLITUDE, diurnal_factor
from .scenario import Scenario

_FAILED = OUTCOME_CODE["failed"]
_VOICEMAIL = OUTCOME_CODE["voicemail"]

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
class Rows:
    """New calls in arrival order (one list per column of the table); ``order``: their
    positions in (created, id) order."""

    agent: list[int]
    created: list[int]
    ring: list[int]
    talk: list[int]
    settle: list[int]
    ov: list[int]  # outcome code << VOCAB_BITS | vocabulary code
    order: list[int]

    @property
    def max_duration(self) -> int:
        return max(r + t for r, t in zip(self.ring, self.talk, strict=True))


@dataclass(slots=True)
class Stream:
    """State of the scenario's merged Poisson stream (one RNG, so chunking never matters)."""

    rng: random.Random
    id_key: int  # keys the generated ids (``ids.IdCodec``); the RNG's first draw
    rate_per_ms: float  # peak rate when diurnal (thinning), else the mean
    diurnal: bool
    agent_cum: list[float]  # cumulative call-rate share per profile
    agent_rows: list[int]  # profile -> store agent index
    agent_class: list[int]  # profile -> class
    classes: list[_Class]
    next_t: float  # ms; the next candidate arrival
    realistic: list[RealAgent] = field(default_factory=list)  # realistic traffic: per profile
    bursts: BurstStream | None = None

    def chunk(self, target: int, k0: int, encode: Callable[[int], str]) -> Rows | None:
        """The arrivals up to ``target`` ms not drawn yet; ``k0`` is the first new row's
        serial and ``encode`` its id (calls created in the same millisecond go by id)."""
        if self.realistic:
            return self._realistic(target, k0, encode)
        if self.next_t <= target:
            return self._kind(target, k0, encode)
        return None

    def bursts_log(self, t: int) -> list[tuple[int, int, int, float]]:
        """(store agent index, start ms, end ms, multiplier) of the bursts started by ``t``."""
        if self.bursts is None:
            return []
        m = self.bursts.bursts.multiplier
        return [(self.realistic[p].row, s, e, m) for p, s, e in self.bursts.log if s <= t]

    def _kind(self, target: int, k0: int, encode: Callable[[int], str]) -> Rows | None:
        """Kind traffic: uniform ring and talk times, failures only before answer."""
        rng = self.rng
        rand = rng.random
        inv_rate = 1.0 / self.rate_per_ms if self.rate_per_ms > 0 else 0.0
        peak = 1.0 + DIURNAL_AMPLITUDE
        diurnal = self.diurnal
        agent_cum, agent_rows = self.agent_cum, self.agent_rows
        agent_class, classes = self.agent_class, self.classes
        single = len(agent_cum) == 1
        answered = ANSWERED_CODES
        new_agent: list[int] = []
        new_c: list[int] = []
        new_r: list[int] = []
        new_t: list[int] = []
        new_s: list[int] = []
        new_ov: list[int] = []
        new_order: list[int] = []  # chunk positions in (created, id) order
        prev_c = -1
        t = self.next_t
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
        self.next_t = t
        if not new_c:
            return None
        return Rows(new_agent, new_c, new_r, new_t, new_s, new_ov, new_order)

    def _realistic(self, target: int, k0: int, encode: Callable[[int], str]) -> Rows | None:
        """Realistic arrivals up to ``target`` ms (main stream and bursts)."""
        self.next_t, rows = realistic_chunk(
            self.rng,
            self.next_t,
            target,
            self.rate_per_ms,
            self.diurnal,
            self.agent_cum,
            self.realistic,
            self.bursts,
        )
        if not rows:
            return None
        agents = self.realistic
        new_c = [row[0] for row in rows]
        # rows are sorted by created; calls created in the same millisecond go by id
        order = list(range(len(rows)))
        i = 0
        while i < len(order):
            j = i + 1
            while j < len(order) and new_c[j] == new_c[i]:
                j += 1
            if j - i > 1:
                order[i:j] = sorted(range(i, j), key=lambda q: encode(k0 + q))
            i = j
        return Rows(
            agent=[agents[row[1]].row for row in rows],
            created=new_c,
            ring=[row[2] for row in rows],
            talk=[row[3] for row in rows],
            settle=[row[0] + row[2] + row[3] for row in rows],
            ov=[row[4] << VOCAB_BITS | agents[row[1]].vocab for row in rows],
            order=order,
        )


def open_stream(scenario: Scenario, start_ms: int, rows: list[int], vocabs: list[int]) -> Stream:
    """The stream of ``scenario`` from ``start - history`` on; ``rows`` and ``vocabs``: each
    profile's agent index and vocabulary code in the table."""
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
    id_key = rng.getrandbits(64)
    first = float(start_ms - to_ms(scenario.history))
    class_index: dict[tuple[object, ...], int] = {}
    classes: list[_Class] = []
    agent_class: list[int] = []
    realistic: list[RealAgent] = []
    if scenario.traffic == "realistic":
        realistic = [
            RealAgent.of(p, row, vocab, start_ms)
            for p, row, vocab in zip(scenario.agents, rows, vocabs, strict=True)
        ]
    for p, vocab in zip(scenario.agents, vocabs, strict=True):
        degradations = tuple((bound(s), bound(e), share) for s, e, share in p.degradations)
        quiet = tuple((bound(s), bound(e)) for s, e in p.quiet)
        key = (tuple(p.outcomes.items()), p.ring, p.talk, degradations, vocab, quiet)
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
                    vocab,
                    quiet,
                )
            )
        agent_class.append(q)
    stream = Stream(
        rng=rng,
        id_key=id_key,
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
            stream.bursts = BurstStream.create(scenario.seed, scenario.bursts, eligible, first)
    return stream
