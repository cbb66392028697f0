"""The sequential detector: a Bernoulli CUSUM per (rule, agent). Pure: no I/O, no clock.

Each settled call of an agent is one Bernoulli observation x (1: the rule's outcome, 0: any
other status in the denominator). The *fire evidence* is Page's CUSUM (Page 1954) of the
log-likelihood ratio of "the rate is p1 (threshold)" against "it is p0 (baseline)":

    S = max(0, S + x*ln(p1/p0) + (1-x)*ln((1-p1)/(1-p0)))

which is the optimal test for a change from p0 to p1 (Moustakides 1986). The detector raises
its alarm when S >= h. While the alarm is up, the *clear evidence* R is the same CUSUM for
"the rate is pc (clear_below)" against "it is p1"; the alarm ends when R >= h', and S, R and
the run start again from zero.

The limits come from ``false_alarm``: the mean time between false alarms of one healthy agent.
At an agent's volume of v calls per second that is ARL0 = false_alarm * v calls, and h solves
Siegmund's corrected-diffusion approximation (Siegmund 1985) for the average run length of a
CUSUM of log-likelihood ratios, whose increments have mean -KL(p0, p1) and standard deviation
sigma under p0:

    ARL0(h) = (exp(b) - b - 1) / KL(p0, p1),   b = h + 1.166*sigma

h' solves the same with the roles of the rates swapped, for one false clear a day at the
agent's volume while the rate stays at p1 (``CLEAR_ARL``: a false clear costs a second page;
a slow clear keeps a recovered agent red for an hour).

A rule with ``fast_threshold`` runs a second fire CUSUM F beside S, the same test for a
larger rate p2 (a hard failure: each failed call weighs ln(p2/p0) instead of ln(p1/p0)), and
the alarm is up once either crosses its own limit (Lorden 1971's multi-CUSUM). The false-alarm
budget is split: each limit is set for ``FAST_SPLIT`` (1.5) x ARL0, so the pair keeps about
the promised rate (the two statistics move together on a healthy agent, so the pair's false
alarms are fewer than the sum of both). Clearing is unchanged: R against p1, and at its limit
S, F and R restart from zero.

Calls arrive in groups: a poll cycle's changes to the windows (``windows.drain_journal``, and
the recorded history's cycles: the same cells) are (bucket, agent, status, +n) per settle-time
bucket. Cells are fed in that order: cycle by cycle, and within a cycle bucket by bucket
(oldest first). Within one bucket and cycle the calls' order is unknown; they are fed one by
one in a pseudo-random order seeded by (agent, bucket, counts), which is what a random order
of arrivals would give (so the Bernoulli CUSUM's false-alarm calibration holds; feeding a
group as one binomial observation instead would page far less often than ``false_alarm``
promises for busy agents), and deterministic (a replay decides the same). A negative cell (a
call that moved to another status or bucket) is not undone: the evidence is a running
statistic; a moved call's new status is fed like a new call.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# Siegmund's correction for the overshoot of a boundary by a random walk (2 * 0.583).
SIEGMUND_RHO = 1.166
MAX_RATE = 0.999  # a relative threshold is capped here: p1 = 1 would make ln(1 - p1) -inf
MIN_RATE = 1e-6
# A false clear (the rate still at the threshold) costs a second page, not a missed one: the
# clear limit is set for one a day at the agent's volume, so recoveries resolve in ~half an
# hour at 3 calls a minute instead of an hour.
CLEAR_ARL = 86400.0
# With a fast CUSUM beside the fire CUSUM, each one's limit is set for this many times the
# calls between false alarms that ``false_alarm`` asks for (the budget split between the two).
# Not 2: the two move together on a healthy agent, so the pair's false alarms are far fewer
# than the sum of both (at 1.5 the pair, simulated, waits about as long between false alarms
# as one CUSUM at 1x does), and even two independent ones would alarm at most 2 / 1.5 =
# 1.33x as often as promised.
FAST_SPLIT = 1.5


def weights(p0: float, p1: float) -> tuple[float, float]:
    """The log-likelihood ratio of one call for rate ``p1`` against ``p0``: (hit, other)."""
    return (math.log(p1 / p0), math.log((1.0 - p1) / (1.0 - p0)))


def drift(p: float, w: tuple[float, float]) -> tuple[float, float]:
    """Mean and standard deviation of one call's increment when the true rate is ``p``."""
    hit, other = w
    mu = p * hit + (1.0 - p) * other
    sigma = math.sqrt(p * (1.0 - p)) * abs(hit - other)
    return mu, sigma


def siegmund_arl(mu: float, sigma: float, h: float, theta: float | None = None) -> float:
    """Average run length (in observations) of the one-sided CUSUM max(0, S + X) >= h, for
    increments X of mean ``mu`` and standard deviation ``sigma`` (Siegmund 1985):

        ARL = (exp(theta*b) - theta*b - 1) / (theta * -mu),   b = h + 1.166*sigma

    ``theta`` is the non-zero root of E[exp(theta*X)] = 1: for normal increments
    -2*mu/sigma^2 (the default; this is the textbook form with D = mu/sigma), and for a
    log-likelihood ratio exactly +1 under the null rate and -1 under the alternative."""
    b = h + SIEGMUND_RHO * sigma
    if abs(mu) < 1e-12:
        return (b / sigma) ** 2
    t = -2.0 * mu / (sigma * sigma) if theta is None else theta
    x = t * b
    if x > 700.0:  # exp overflows: the ARL is astronomically long
        return math.inf
    return (math.exp(x) - x - 1.0) / (t * -mu)


def kl(p: float, q: float) -> float:
    """Kullback-Leibler divergence of Bernoulli(p) from Bernoulli(q), in nats."""
    return p * math.log(p / q) + (1.0 - p) * math.log((1.0 - p) / (1.0 - q))


def arl0(p0: float, p1: float, h: float) -> float:
    """Calls between false alarms of the CUSUM of ``p1`` against ``p0`` with limit ``h``
    while the true rate is ``p0`` (Siegmund; the increments are a log-likelihood ratio, so
    theta = 1 and -mu = KL(p0, p1))."""
    _mu, sigma = drift(p0, weights(p0, p1))
    return siegmund_arl(-kl(p0, p1), sigma, h, theta=1.0)


def arl1(p0: float, p1: float, h: float) -> float:
    """Calls to an alarm of the same CUSUM once the true rate is ``p1`` (theta = -1)."""
    _mu, sigma = drift(p1, weights(p0, p1))
    return siegmund_arl(kl(p1, p0), sigma, h, theta=-1.0)


def limit(p0: float, p1: float, arl: float) -> float:
    """The h at which the CUSUM of ``p1`` against ``p0`` waits ``arl`` calls on average
    for a false alarm: ``arl0(h) = arl`` solved for b = h + 1.166*sigma, i.e.
    exp(b) - b - 1 = arl * KL(p0, p1), by Newton's method from b = ln(arl * KL + 1) (a few
    steps; the left side is convex and increasing for b > 0). 0 when even h = 0 waits
    that long."""
    _mu, sigma = drift(p0, weights(p0, p1))
    target = arl * kl(p0, p1)
    rho = SIEGMUND_RHO * sigma
    if math.exp(rho) - rho - 1.0 >= target:
        return 0.0
    b = math.log(target + 1.0) + 1.0  # above the root: Newton then falls monotonically
    for _ in range(100):
        e = math.exp(b)
        step = (e - b - 1.0 - target) / (e - 1.0)
        b -= step
        if abs(step) < 1e-10 * max(1.0, b):
            break
    return max(0.0, b - rho)


# ---- parameters per (rule, agent) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Params:
    """What one (rule, agent)'s CUSUMs need: the three rates, the increments and limits."""

    p0: float  # baseline
    p1: float  # threshold
    pc: float  # clear_below
    fire: tuple[float, float]  # increments of S (hit, other)
    clear: tuple[float, float]  # increments of R
    h_fire: float
    h_clear: float
    arl: float  # calls between false alarms the rule was set for (the pair's, with fast)
    arl_clear: float  # calls between false clears (while the rate is p1) for the clear limit
    p2: float = 0.0  # fast_threshold (0: no fast CUSUM)
    fast: tuple[float, float] | None = None  # increments of F (hit, other)
    h_fast: float = math.inf


def rate(value: float, relative: bool, baseline: float) -> float:
    """An absolute rate, or ``value`` times the baseline (capped below 1)."""
    r = value * baseline if relative else value
    return min(MAX_RATE, max(MIN_RATE, r))


def params(
    p0: float,
    p1: float,
    pc: float,
    arl: float,
    arl_clear: float | None = None,
    p2: float | None = None,
    split: float = FAST_SPLIT,
) -> Params | None:
    """The CUSUMs' parameters, or None when the rates cannot be tested (the threshold is not
    above the baseline, or clear_below not between them). ``p2``: the fast CUSUM's rate;
    none unless it is above ``p1`` (then both fire limits are set for ``split`` x ``arl``)."""
    p0 = min(MAX_RATE, max(MIN_RATE, p0))
    if not p0 < p1:
        return None
    pc = min(max(pc, p0), p1)
    fire = weights(p0, p1)
    if pc >= p1:  # clear_below == threshold: clear on evidence for the baseline itself
        pc = p0
    clear = weights(p1, pc)
    arl_clear = arl if arl_clear is None else arl_clear
    h_clear = limit(p1, pc, arl_clear)
    if p2 is None or not p2 > p1:
        return Params(p0, p1, pc, fire, clear, limit(p0, p1, arl), h_clear, arl, arl_clear)
    h_fire, h_fast = limit(p0, p1, arl * split), limit(p0, p2, arl * split)
    fast = weights(p0, p2)
    return Params(p0, p1, pc, fire, clear, h_fire, h_clear, arl, arl_clear, p2, fast, h_fast)


class ParamCache:
    """``params`` memoised on rounded inputs (agents share baselines and volumes often).
    Rates are rounded to 4 significant digits, the ARLs to 1% (which moves h by ~0.01)."""

    def __init__(self, size: int = 50_000) -> None:
        self._cache: dict[tuple[float, float, float, int, int, float], Params | None] = {}
        self._size = size

    def get(
        self,
        p0: float,
        p1: float,
        pc: float,
        arl: float,
        arl_clear: float,
        p2: float | None = None,
    ) -> Params | None:
        key = (
            _round(p0),
            _round(p1),
            _round(pc),
            round(math.log(max(arl, 1.0)) * 100),
            round(math.log(max(arl_clear, 1.0)) * 100),
            -1.0 if p2 is None else _round(p2),
        )
        if key in self._cache:
            return self._cache[key]
        if len(self._cache) >= self._size:
            self._cache.clear()
        out = self._cache[key] = params(
            key[0],
            key[1],
            key[2],
            math.exp(key[3] / 100),
            math.exp(key[4] / 100),
            None if key[5] < 0.0 else key[5],
        )
        return out


def _round(p: float) -> float:
    return float(f"{p:.4g}")


# ---- the evidence ----------------------------------------------------------------------


@dataclass(slots=True)
class Evidence:
    """One (rule, agent)'s CUSUMs. Mutable: the detector updates thousands per cycle."""

    s: float = 0.0  # fire evidence (nats)
    r: float = 0.0  # clear evidence, while the alarm is up
    alarm: bool = False
    run_calls: int = 0  # calls since S (and F) last stood at zero (the episode)
    run_hits: int = 0
    calls: int = 0  # calls fed in all
    at: float = 0.0  # when last fed
    f: float = 0.0  # fast fire evidence (nats; 0 without a fast CUSUM)

    def copy(self) -> Evidence:
        return Evidence(
            self.s, self.r, self.alarm, self.run_calls, self.run_hits, self.calls, self.at, self.f
        )


def _crossed(ev: Evidence, p: Params) -> bool:
    """Either fire CUSUM, above zero, at or past its own limit."""
    return (ev.s > 0.0 and ev.s >= p.h_fire) or (ev.f > 0.0 and ev.f >= p.h_fast)


def _cleared(ev: Evidence) -> None:
    ev.alarm = False
    ev.s = ev.r = ev.f = 0.0
    ev.run_calls = ev.run_hits = 0


def step(ev: Evidence, hit: bool, p: Params, min_calls: int = 1) -> None:
    """One call, by definition: the fire CUSUM S and, with ``fast_threshold``, the fast one
    F (each reset at zero); once either passes its own limit (``h_fire``, ``h_fast``) with
    at least ``min_calls`` calls in the run (since both last stood at zero), the alarm is up
    and the clear CUSUM runs from zero beside them; once that passes ``h_clear`` the alarm
    ends and all three restart."""
    ev.calls += 1
    ev.run_calls += 1
    ev.run_hits += hit
    s = ev.s + (p.fire[0] if hit else p.fire[1])
    ev.s = s if s > 0.0 else 0.0
    if p.fast is not None:
        f = ev.f + (p.fast[0] if hit else p.fast[1])
        ev.f = f if f > 0.0 else 0.0
    if ev.alarm:
        r = ev.r + (p.clear[0] if hit else p.clear[1])
        ev.r = r if r > 0.0 else 0.0
        if ev.r >= p.h_clear:
            _cleared(ev)
        return
    if ev.s <= 0.0 and ev.f <= 0.0:
        ev.run_calls = ev.run_hits = 0
        return
    if ev.run_calls >= min_calls and _crossed(ev, p):
        ev.alarm = True
        ev.r = 0.0


def order(hits: int, n: int, key: str) -> list[bool]:
    """A group's calls in a pseudo-random order seeded by ``key`` (deterministic across
    processes: a replay feeds the same order)."""
    rng = random.Random(zlib.crc32(key.encode()))
    at = set(rng.sample(range(n), hits))
    return [i in at for i in range(n)]


def feed(ev: Evidence, hits: int, n: int, p: Params, min_calls: int = 1, key: str = "") -> None:
    """Feed a group of ``n`` calls, ``hits`` of them with the outcome, in a pseudo-random
    order (``order``; see the module docstring). All-hit and no-hit groups take a shortcut
    with exactly the result of calling ``step`` ``n`` times."""
    if n <= 0:
        return
    hits = min(max(hits, 0), n)
    if 0 < hits < n:
        for hit in order(hits, n, key):
            step(ev, hit, p, min_calls)
        return
    if hits == 0 and not ev.alarm and _crossed(ev, p):
        # past a limit but short of min_calls: a miss may lengthen the run enough to fire
        for _ in range(n):
            step(ev, False, p, min_calls)
        return
    hit = hits == n
    ev.calls += n
    ev.run_calls += n
    ev.run_hits += hits
    # S, F and R each move one way: clipping at the end is clipping each step
    ev.s = max(0.0, ev.s + n * (p.fire[0] if hit else p.fire[1]))
    if p.fast is not None:
        ev.f = max(0.0, ev.f + n * (p.fast[0] if hit else p.fast[1]))
    if ev.alarm:
        ev.r = max(0.0, ev.r + n * (p.clear[0] if hit else p.clear[1]))
        if ev.r >= p.h_clear:  # only misses raise R: after the clear, S and F stay at zero
            _cleared(ev)
        return
    if ev.s <= 0.0 and ev.f <= 0.0:  # only misses lower them: zero at the end, the run too
        ev.run_calls = ev.run_hits = 0
        return
    if ev.run_calls >= min_calls and _crossed(ev, p):  # only hits raise S and F; R stays 0
        ev.alarm = True
        ev.r = 0.0


def ratio(ev: Evidence, p: Params | None) -> float:
    """The fire evidence as a share of the firing limit (>= 1 while the alarm is up): the
    larger of S / h_fire and F / h_fast."""
    if p is None:
        return 0.0
    return max(_share(ev.s, p.h_fire), _share(ev.f, p.h_fast))


def _share(x: float, h: float) -> float:
    if x <= 0.0:
        return 0.0
    if h <= 0.0:
        return 1.0
    return x / h


def group(
    cells: Iterable[tuple[int, str, str, int]],
    denominator: frozenset[str],
    outcomes: Mapping[str, frozenset[str]],
) -> dict[str, dict[str, list[tuple[int, int, int]]]]:
    """One cycle's cells as outcome -> agent -> [(bucket, hits, calls)], oldest bucket first.

    Only added calls count (n > 0); statuses outside the denominator (cancelled, unknown)
    are no observation."""
    per: dict[tuple[str, int], list[int]] = {}
    agent_status: dict[tuple[str, int], dict[str, int]] = {}
    for k, agent, status, n in cells:
        if n <= 0 or status not in denominator:
            continue
        key = (agent, k)
        per.setdefault(key, [0])[0] += n
        by = agent_status.setdefault(key, {})
        by[status] = by.get(status, 0) + n
    out: dict[str, dict[str, list[tuple[int, int, int]]]] = {o: {} for o in outcomes}
    for agent, k in sorted(per, key=lambda ak: (ak[1], ak[0])):
        n = per[(agent, k)][0]
        by = agent_status[(agent, k)]
        for o, statuses in outcomes.items():
            hits = sum(c for s, c in by.items() if s in statuses)
            out[o].setdefault(agent, []).append((k, hits, n))
    return out
