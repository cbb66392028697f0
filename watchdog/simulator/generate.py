"""Realistic traffic generation: per-agent draws, the main arrival stream and campaign bursts.

Pure apart from the RNGs it owns. Times are integer milliseconds.

Every arrival draws exactly six uniforms for its outcome and timings (whatever the outcome),
so a degradation or a quiet period changes only that agent's own calls: the arrivals and
every other agent's calls stay the same. Bursts have their own RNGs (one for when campaigns
start, one per campaign for its calls), so the calls do not depend on how the store chunks
generation in time.
"""

from __future__ import annotations

import random
from bisect import bisect
from dataclasses import dataclass, field
from math import cos, exp, log, pi, sqrt

from .calls import OUTCOME_CODE
from .profiles import ABSOLUTE_THRESHOLD, DIURNAL_AMPLITUDE, AgentProfile, Bursts, diurnal_factor

_COMPLETED = OUTCOME_CODE["completed"]
_FAILED = OUTCOME_CODE["failed"]
_BUSY = OUTCOME_CODE["busy"]
_NO_ANSWER = OUTCOME_CODE["no_answer"]
_DID_NOT_PICK = OUTCOME_CODE["did_not_pick"]
_VOICEMAIL = OUTCOME_CODE["voicemail"]
_DROPPED = OUTCOME_CODE["dropped"]
_HANGUP = OUTCOME_CODE["hangup"]
_TWO_PI = 2.0 * pi
NO_CAP = 10**12  # ms


def bound_ms(x: float, start_ms: int) -> int:
    """A period bound in seconds (offset from the start below 1e9, else epoch) -> epoch ms."""
    return round(x * 1000.0) if x >= ABSOLUTE_THRESHOLD else start_ms + round(x * 1000.0)


@dataclass(slots=True)
class RealAgent:
    """What the realistic generator needs of one agent."""

    row: int  # the store's agent index
    vocab: int
    cum: list[float]
    codes: list[int]
    cum_nf: list[float]
    codes_nf: list[int]
    answer_lo: int  # ms until an answered call picks up: lo + u * span
    answer_span: int
    ring_limit: int  # ms; unanswered calls ring this long
    median: float  # talk, seconds (log-normal); sigma < 0: uniform talk_lo + u * talk_span
    sigma: float
    talk_lo: float
    talk_span: float
    cap: int  # whole seconds of talk at most
    drop: float
    degs: tuple[tuple[int, int, float], ...]
    quiet: tuple[tuple[int, int], ...]
    per_ms: float  # mean calls per ms

    @classmethod
    def of(cls, p: AgentProfile, row: int, vocab: int, start_ms: int) -> RealAgent:
        cum, codes = p.mix()
        cum_nf, codes_nf = p.mix(without_failed=True)
        ring_limit = round((p.ring_limit if p.ring_limit is not None else p.ring[1]) * 1000)
        lo = min(round(p.ring[0] * 1000), ring_limit)
        hi = min(round(p.ring[1] * 1000), ring_limit)
        median, sigma = p.talk_lognormal if p.talk_lognormal is not None else (1.0, -1.0)
        cap = int(p.max_call_duration) if p.max_call_duration is not None else NO_CAP
        return cls(
            row=row,
            vocab=vocab,
            cum=cum,
            codes=codes,
            cum_nf=cum_nf,
            codes_nf=codes_nf,
            answer_lo=lo,
            answer_span=hi - lo,
            ring_limit=ring_limit,
            median=median,
            sigma=sigma,
            talk_lo=p.talk[0],
            talk_span=p.talk[1] - p.talk[0],
            cap=cap,
            drop=p.drop_share,
            degs=tuple(
                (bound_ms(s, start_ms), bound_ms(e, start_ms), share)
                for s, e, share in p.degradations
            ),
            quiet=tuple((bound_ms(s, start_ms), bound_ms(e, start_ms)) for s, e in p.quiet),
            per_ms=p.calls_per_minute / 60_000.0,
        )


def draw(
    x: RealAgent,
    c: int,
    u_mix: float,
    u_deg: float,
    u_drop: float,
    u_ring: float,
    u1: float,
    u2: float,
) -> tuple[int, int, int] | None:
    """(ring ms, talk ms, outcome code) of ``x``'s call created at ``c``; None when ``x`` is
    quiet then. Six uniforms in [0, 1), whatever the outcome."""
    for s, e in x.quiet:
        if s <= c < e:
            return None
    oc = -1
    for s, e, share in x.degs:
        if s <= c < e:
            oc = _FAILED if u_deg < share else x.codes_nf[bisect(x.cum_nf, u_mix)]
            break
    if oc < 0:
        oc = x.codes[bisect(x.cum, u_mix)]
    if oc == _FAILED and u_drop < x.drop:
        oc = _DROPPED
    limit = x.ring_limit
    tk = 0
    if oc in (_COMPLETED, _DROPPED):
        r = x.answer_lo + int(u_ring * x.answer_span)
        if x.sigma >= 0:  # Box-Muller: one standard normal from u1, u2
            talk = x.median * exp(x.sigma * sqrt(-2.0 * log(1.0 - u1)) * cos(_TWO_PI * u2))
        else:
            talk = x.talk_lo + u1 * x.talk_span
        if oc == _DROPPED:  # cut somewhere in the conversation (u_drop / drop is uniform)
            talk *= u_drop / x.drop
        tk = max(1, min(int(talk), x.cap)) * 1000
    elif oc == _VOICEMAIL:  # picked up by the machine late in the ring, a short message
        r = limit // 2 + int(u_ring * (limit - limit // 2))
        tk = max(1, min(5 + int(u1 * 40), x.cap)) * 1000
    elif oc in (_NO_ANSWER, _DID_NOT_PICK):  # rings until the agent's ring limit
        r = limit - int(u_ring * min(1000, limit))
    elif oc == _BUSY:
        r = 1000 + int(u_ring * 5000)
    elif oc == _FAILED:
        r = 200 + int(u_ring * 7800)
    elif oc == _HANGUP:
        r = 1000 + int(u_ring * max(0, limit - 1000))
    else:  # cancelled, retry_expired
        r = int(u_ring * 3000)
    return min(r, limit), tk, oc


@dataclass(slots=True)
class Burst:
    """One campaign: ``agent`` (a profile index) at ``per_ms`` extra calls per ms."""

    agent: int
    start: int
    end: int
    per_ms: float
    rng: random.Random
    next_t: float


@dataclass(slots=True)
class BurstStream:
    """When campaigns start (a Poisson process over the agents that place calls)."""

    seed: int
    bursts: Bursts
    eligible: list[int]  # profile indices
    rng: random.Random
    next_start: float
    count: int = 0
    active: list[Burst] = field(default_factory=list)
    log: list[tuple[int, int, int]] = field(default_factory=list)  # (profile, start, end)

    @classmethod
    def create(cls, seed: int, bursts: Bursts, eligible: list[int], first: float) -> BurstStream:
        rng = random.Random(f"bursts:{seed}")
        per_ms = bursts.per_agent_per_day * len(eligible) / 86_400_000.0
        s = cls(seed, bursts, eligible, rng, float("inf"))
        s.next_start = first - log(1.0 - rng.random()) / per_ms if per_ms > 0 else float("inf")
        return s

    def start_until(self, target: int, agents: list[RealAgent]) -> None:
        """Start every campaign that begins at or before ``target``."""
        b = self.bursts
        per_ms = b.per_agent_per_day * len(self.eligible) / 86_400_000.0
        lo, hi = b.minutes[0] * 60_000.0, b.minutes[1] * 60_000.0
        rng = self.rng
        while self.next_start <= target:
            start = int(self.next_start)
            p = self.eligible[int(rng.random() * len(self.eligible))]
            end = start + int(lo + rng.random() * (hi - lo))
            own = random.Random(f"burst:{self.seed}:{self.count}")
            extra = agents[p].per_ms * (b.multiplier - 1.0)
            first = start - log(1.0 - own.random()) / extra if extra > 0 else float("inf")
            self.active.append(Burst(p, start, end, extra, own, first))
            self.log.append((p, start, end))
            self.count += 1
            self.next_start -= log(1.0 - rng.random()) / per_ms


def realistic_chunk(
    rng: random.Random,
    next_t: float,
    target: int,
    rate_per_ms: float,
    diurnal: bool,
    agent_cum: list[float],
    agents: list[RealAgent],
    bursts: BurstStream | None,
) -> tuple[float, list[tuple[int, int, int, int, int]]]:
    """Arrivals in (previous target, ``target``]: the main stream from ``next_t`` on, then
    the campaigns. Returns the main stream's next candidate time and rows
    ``(created, profile, ring, talk, outcome)`` sorted by created (stable)."""
    rows: list[tuple[int, int, int, int, int]] = []
    rand = rng.random
    inv_rate = 1.0 / rate_per_ms if rate_per_ms > 0 else 0.0
    peak = 1.0 + DIURNAL_AMPLITUDE
    single = len(agent_cum) == 1
    t = next_t
    while t <= target:
        if diurnal and rand() * peak > diurnal_factor(t / 1000.0):
            t -= log(1.0 - rand()) * inv_rate
            continue
        p = 0 if single else bisect(agent_cum, rand())
        c = int(t)
        got = draw(agents[p], c, rand(), rand(), rand(), rand(), rand(), rand())
        if got is not None:
            rows.append((c, p, got[0], got[1], got[2]))
        t -= log(1.0 - rand()) * inv_rate
    if bursts is not None:
        bursts.start_until(target, agents)
        still: list[Burst] = []
        for b in bursts.active:
            x = agents[b.agent]
            own = b.rng.random
            bt = b.next_t
            while bt < b.end and bt <= target:
                c = int(bt)
                got = draw(x, c, own(), own(), own(), own(), own(), own())
                if got is not None:
                    rows.append((c, b.agent, got[0], got[1], got[2]))
                bt -= log(1.0 - own()) / b.per_ms
            b.next_t = bt
            if bt < b.end:
                still.append(b)
        bursts.active = still
        rows.sort(key=lambda row: row[0])
    return t, rows
