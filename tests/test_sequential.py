"""The sequential detector (issue 13): the CUSUM's limits against published and exact average
run lengths, its state against a brute-force recomputation, the rules' state machine on its
verdicts, and the config that turns it on."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from dialnexa_watchdog.alerts.baselines import Learner, intervals_exclude, shrunk
from dialnexa_watchdog.alerts.compile import compile_rules
from dialnexa_watchdog.alerts.detector import Baseline, Detector
from dialnexa_watchdog.alerts.rules import evaluate
from dialnexa_watchdog.alerts.sequential import (
    FAST_SPLIT,
    Evidence,
    Params,
    arl0,
    arl1,
    drift,
    feed,
    group,
    limit,
    order,
    params,
    ratio,
    siegmund_arl,
    step,
    weights,
)
from dialnexa_watchdog.alerts.state import NO_DATA, AlertState, Rule, State
from dialnexa_watchdog.config import ConfigError, RuleSettings, load_settings
from dialnexa_watchdog.model import PollStatus
from fakeview import FakeView
from hypothesis import given, settings
from hypothesis import strategies as st

WINDOWS = {"5m": 300.0, "15m": 900.0, "1h": 3600.0}
T0 = 1_750_000_000.0
OK_POLL = PollStatus(started_at=T0 - 60, last_success=T0 - 1)
DENOM = ("completed", "failed", "busy", "no_answer")
OUTCOMES = {"failed": ("failed",), "busy": ("busy",)}


def rules(**kw: Any) -> list[Rule]:
    spec: dict[str, Any] = {
        "name": "failed-seq",
        "outcome": "failed",
        "window": "15m",
        "detector": "sequential",
        "threshold": "3x",
        "clear_below": "1.5x",
        "baseline": 0.05,
        "min_calls": 1,
    }
    spec.update(kw)
    return compile_rules([RuleSettings.model_validate(spec)], WINDOWS)


# ---- the limit against published average run lengths --------------------------------------
# Siegmund's approximation for a normal CUSUM with reference value k = 0.5 (sigma units),
# against the ARLs tabulated in Montgomery, Introduction to Statistical Quality Control
# (6th ed., Table 9.3; from Hawkins 1993): two-sided ARL0 168 at h = 4 and 465 at h = 5;
# ARL1 for a one-sigma shift 8.38 at h = 4 and 10.4 at h = 5.


@pytest.mark.parametrize(
    ("h", "two_sided_arl0", "arl1_one_sigma"), [(4.0, 168.0, 8.38), (5.0, 465.0, 10.4)]
)
def test_siegmund_matches_the_published_normal_cusum_arls(
    h: float, two_sided_arl0: float, arl1_one_sigma: float
) -> None:
    one_sided = siegmund_arl(-0.5, 1.0, h)  # in control: X - k has mean -0.5
    assert one_sided / 2 == pytest.approx(two_sided_arl0, rel=0.03)  # both sides, symmetric
    assert siegmund_arl(0.5, 1.0, h) == pytest.approx(arl1_one_sigma, rel=0.03)


def lattice_arl(p: float, up: int, top: int) -> float:
    """Exact ARL (Brook & Evans 1972, solved by back-substitution) of the integer CUSUM
    S = max(0, S + up) with probability p, else max(0, S - 1); alarm at S >= top."""
    q = 1.0 - p
    alpha = [0.0] * top
    beta = [0.0] * top
    beta[top - 1] = 1.0  # L(i) = alpha[i] + beta[i] * L(top - 1)

    def at(i: int) -> tuple[float, float]:
        return (alpha[i], beta[i]) if i < top else (0.0, 0.0)

    for i in range(top - 1, 0, -1):
        a_up, b_up = at(i + up)
        alpha[i - 1] = (alpha[i] - 1.0 - p * a_up) / q
        beta[i - 1] = (beta[i] - p * b_up) / q
    a_up, b_up = at(up)
    # L(0) = 1 + p L(up) + q L(0)
    x = (1.0 + p * a_up - p * alpha[0]) / (p * beta[0] - p * b_up)
    return alpha[0] + beta[0] * x


def rate_with_ratio(p0: float, ratio: int) -> float:
    """The p1 > p0 whose log-likelihood ratio steps are exactly +ratio and -1 units."""
    lo, hi = p0 * 1.0001, 0.999
    for _ in range(200):
        mid = (lo + hi) / 2
        hit, other = weights(p0, mid)
        if hit / -other > ratio:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@pytest.mark.parametrize(
    ("p0", "ratio", "target"),
    [(0.05, 10, 1e4), (0.05, 10, 1e6), (0.02, 30, 1e5), (0.2, 3, 1e5), (0.3, 2, 1e4)],
)
def test_the_bernoulli_limit_gives_the_promised_false_alarm_rate(
    p0: float, ratio: int, target: float
) -> None:
    """Where a hit's evidence is a whole multiple of a miss's, the Bernoulli CUSUM is a
    lattice chain whose ARL is exact: the limit from Siegmund's approximation waits at
    least 0.8x and at most 2x the calls it promises (it errs on the quiet side)."""
    p1 = rate_with_ratio(p0, ratio)
    hit, other = weights(p0, p1)
    assert hit / -other == pytest.approx(ratio, rel=1e-9)
    h = limit(p0, p1, target)
    assert arl0(p0, p1, h) == pytest.approx(target, rel=1e-4)
    top = math.ceil(h / -other - 1e-9)  # S moves in units of -other; alarm at S >= h
    exact = lattice_arl(p0, ratio, top)
    assert 0.8 * target <= exact <= 2.0 * target, (exact, target)


def test_the_lattice_solver_agrees_with_a_simulation() -> None:
    """The exact ARL the test above trusts, checked against 2,000 simulated runs."""
    rng = random.Random(7)
    p, up, top = 0.1, 6, 12
    runs = []
    for _ in range(2000):
        s = n = 0
        while s < top:
            n += 1
            s = s + up if rng.random() < p else max(0, s - 1)
        runs.append(n)
    mean = sum(runs) / len(runs)
    assert lattice_arl(p, up, top) == pytest.approx(mean, rel=0.08)


def test_a_longer_false_alarm_needs_more_evidence_and_a_hard_failure_is_fast() -> None:
    h1 = limit(0.05, 0.15, 1e4)
    h2 = limit(0.05, 0.15, 1e6)
    assert h2 > h1 > 0
    # log-linear: two decades more patience cost about ln(100) = 4.6 nats
    assert h2 - h1 == pytest.approx(math.log(100), rel=0.05)
    # at exactly the threshold (15%) the alarm takes ~140 calls; at 60% failed the evidence
    # grows ~0.6 nats per call: ~17 calls
    assert 100 < arl1(0.05, 0.15, h2) < 200
    mu, _sd = drift(0.6, weights(0.05, 0.15))
    assert h2 / mu < 20
    assert limit(0.05, 0.15, 0.5) == 0.0  # nothing to wait for


# ---- the fast CUSUM (fast_threshold) ---------------------------------------------------------


def detector_params(rule: Rule, base: float, calls_per_day: float) -> Params:
    det = Detector([rule], DENOM, OUTCOMES)
    p, _b = det.params_for(
        rule, "agt_a", lambda _r, _a: Baseline(base), lambda _a: calls_per_day / 86400.0
    )
    assert p is not None
    return p


@pytest.mark.parametrize(("false_alarm", "years"), [("1y", 1.0), ("10y", 10.0), ("100y", 100.0)])
def test_the_pairs_limits_follow_false_alarm(false_alarm: str, years: float) -> None:
    """Each of the two fire limits is set for FAST_SPLIT x the calls between false alarms that
    false_alarm asks for, from the rates of its own test; without fast_threshold the fire
    limit is the one-CUSUM limit, as before the key existed."""
    arl = years * 365 * 86400.0 * 500.0 / 86400.0  # 500 calls a day
    (pair,) = rules(false_alarm=false_alarm, fast_threshold=0.5)
    (single,) = rules(false_alarm=false_alarm)
    p = detector_params(pair, 0.05, 500.0)
    s = detector_params(single, 0.05, 500.0)
    assert p.fast is not None and s.fast is None and s.h_fast == math.inf
    assert (p.p0, p.p1, p.p2) == pytest.approx((0.05, 0.15, 0.5))
    assert p.h_fire == pytest.approx(limit(0.05, 0.15, FAST_SPLIT * arl), abs=0.02)
    assert p.h_fast == pytest.approx(limit(0.05, 0.5, FAST_SPLIT * arl), abs=0.02)
    assert s.h_fire == pytest.approx(limit(0.05, 0.15, arl), abs=0.02)
    # the split costs ln(1.5) = 0.4 nats of the slow test's evidence
    assert p.h_fire - s.h_fire == pytest.approx(math.log(FAST_SPLIT), abs=0.05)
    assert p.arl == s.arl == pytest.approx(arl, rel=0.01)
    # both limits grow with the logarithm of false_alarm, as the single one does
    (longer,) = rules(false_alarm=f"{years * 10:g}y", fast_threshold=0.5)
    q = detector_params(longer, 0.05, 500.0)
    assert q.h_fire - p.h_fire == pytest.approx(math.log(10), rel=0.05)
    assert q.h_fast - p.h_fast == pytest.approx(math.log(10), rel=0.05)
    # a relative fast_threshold follows the baseline; one not above threshold is no test
    (rel,) = rules(false_alarm=false_alarm, fast_threshold="10x")
    assert detector_params(rel, 0.02, 500.0).p2 == pytest.approx(0.2)
    low = detector_params(rules(false_alarm=false_alarm, fast_threshold=0.5)[0], 0.2, 500.0)
    assert low.fast is None and low.h_fire == pytest.approx(
        limit(0.2, 0.6, arl), abs=0.02
    )  # 3x of 20% is 60%, above 0.5: one CUSUM with the whole budget


def test_the_pair_keeps_the_promised_false_alarm_rate() -> None:
    """Healthy calls through both CUSUMs until either alarms: the mean run (the pair's calls
    between false alarms) is within 0.8x-2x of the ARL asked for, as the one CUSUM's is."""
    rng = random.Random(7)
    arl = 400.0
    for p2 in (None, 0.5):
        p = params(0.05, 0.15, 0.075, arl, p2=p2)
        assert p is not None
        runs = []
        for _ in range(300):
            ev = Evidence()
            while not ev.alarm:
                step(ev, rng.random() < 0.05, p)
            runs.append(ev.calls)
        assert 0.8 * arl < sum(runs) / len(runs) < 2.0 * arl, (p2, sum(runs) / len(runs))


def test_a_hard_failure_pages_in_fewer_calls_with_the_fast_cusum() -> None:
    """An agent at 5% that goes to 60% failed, 500 calls a day, false_alarm 10y: the rule
    with fast_threshold 0.5 pages in fewer calls than the same rule without it (the same
    calls, 40 seeds), about two thirds of them."""
    (pair,) = rules(false_alarm="10y", fast_threshold=0.5, min_calls=5)
    (single,) = rules(false_alarm="10y", min_calls=5)
    p = detector_params(pair, 0.05, 500.0)
    s = detector_params(single, 0.05, 500.0)
    fast_calls, single_calls = [], []
    for seed in range(40):
        rng = random.Random(seed)
        calls = [rng.random() < 0.6 for _ in range(200)]
        for params_, out in ((p, fast_calls), (s, single_calls)):
            ev = Evidence()
            for hit in calls:
                step(ev, hit, params_, 5)
                if ev.alarm:
                    break
            assert ev.alarm
            out.append(ev.calls)
    mean_fast = sum(fast_calls) / len(fast_calls)
    mean_single = sum(single_calls) / len(single_calls)
    assert mean_fast < 0.8 * mean_single, (mean_fast, mean_single)
    assert sum(a <= b for a, b in zip(fast_calls, single_calls, strict=True)) >= 36


def test_the_evidence_ratio_is_the_larger_of_the_two() -> None:
    p = params(0.05, 0.15, 0.075, 1e4, p2=0.5)
    assert p is not None
    ev = Evidence()
    feed(ev, 3, 3, p, key="x")  # three failures: F (2.3 nats each) ahead of S (1.1 each)
    assert ev.f / p.h_fast > ev.s / p.h_fire > 0
    assert ratio(ev, p) == pytest.approx(ev.f / p.h_fast)
    feed(ev, 0, 12, p, key="y")  # misses pull F down faster: S is the larger share now
    assert ev.f == 0.0 < ev.s
    assert ratio(ev, p) == pytest.approx(ev.s / p.h_fire)
    assert ev.run_calls == 15  # the episode goes on while either is above zero


# ---- the state against a brute-force recomputation ------------------------------------------


def cusum(start: float, incs: list[float]) -> float:
    """By definition: S_t = P_t - min(-start, P_1, ..., P_t), P the partial sums."""
    sums = [0.0]
    for x in incs:
        sums.append(sums[-1] + x)
    return sums[-1] - min([-start, *sums[1:]])


def brute_force(calls: list[bool], p: Params) -> tuple[bool, float, float, float]:
    """(alarm, S, R, F) recomputed from the whole history after every call: S and the fast
    CUSUM F (with ``fast_threshold``) from zero (or their restart at the last alarm's end),
    the alarm up once either reaches its own limit; while it is up, S and F go on from their
    values at the alarm and R from zero."""
    alarm, start, s_at_alarm, f_at_alarm = False, 0, 0.0, 0.0
    s = r = f = 0.0
    for t in range(len(calls)):
        since = calls[start : t + 1]
        fire = [p.fire[0] if x else p.fire[1] for x in since]
        fast = [p.fast[0] if x else p.fast[1] for x in since] if p.fast is not None else []
        if not alarm:
            s = cusum(0.0, fire)
            f = cusum(0.0, fast) if p.fast is not None else 0.0
            if (s > 0 and s >= p.h_fire) or (f > 0 and f >= p.h_fast):
                alarm, start, s_at_alarm, f_at_alarm, r = True, t + 1, s, f, 0.0
        else:
            s = cusum(s_at_alarm, fire)
            f = cusum(f_at_alarm, fast) if p.fast is not None else 0.0
            r = cusum(0.0, [p.clear[0] if x else p.clear[1] for x in since])
            if r >= p.h_clear:
                alarm, start, s, r, f = False, t + 1, 0.0, 0.0, 0.0
    return alarm, s, r, f


def expand(hits: int, n: int, key: str) -> list[bool]:
    """A group as the calls ``feed`` steps through."""
    if 0 < hits < n:
        return order(hits, n, key)
    return [hits == n] * n


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 12), st.integers(1, 12)).map(lambda t: (min(t), t[1])),
        max_size=80,
    ),
    st.sampled_from([(0.05, 0.15, 0.075), (0.2, 0.4, 0.25), (0.02, 0.3, 0.02)]),
    st.sampled_from([50.0, 1e3, 1e5]),
    st.sampled_from([None, 0.5, 0.9]),
)
def test_state_after_n_calls_equals_a_brute_force_recomputation(
    groups: list[tuple[int, int]],
    rates: tuple[float, float, float],
    arl: float,
    fast: float | None,
) -> None:
    """Groups (all-hit and no-hit ones take a shortcut; mixed ones are stepped through in
    their pseudo-random order) against the definition, recomputed from every call; with
    and without the fast CUSUM (``fast_threshold``)."""
    p = params(*rates, arl, p2=fast)
    assert p is not None
    assert (p.fast is not None) == (fast is not None)
    ev = Evidence()
    calls: list[bool] = []
    for i, (hits, n) in enumerate(groups):
        feed(ev, hits, n, p, key=str(i))
        calls += expand(hits, n, str(i))
    alarm, s, r, f = brute_force(calls, p)
    assert ev.alarm == alarm
    assert ev.s == pytest.approx(s, abs=1e-9)
    assert ev.f == pytest.approx(f, abs=1e-9)
    if alarm:
        assert ev.r == pytest.approx(r, abs=1e-9)
    assert ev.calls == len(calls)
    assert ratio(ev, p) == pytest.approx(max(share(s, p.h_fire), share(f, p.h_fast)), abs=1e-9)


def share(x: float, h: float) -> float:
    """Evidence over its limit, as ``ratio`` shows it (1 past a limit of zero)."""
    return 0.0 if x <= 0 else (1.0 if h <= 0 else x / h)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 40),
    st.integers(1, 40),
    st.text(max_size=8),
    st.sampled_from([None, 0.5]),
    st.integers(1, 8),
    st.sampled_from([(2.0, 1.0, 0), (12.0, 14.0, 2)]),
)
def test_a_group_is_its_calls_in_a_repeatable_order(
    hits: int,
    n: int,
    key: str,
    fast: float | None,
    min_calls: int,
    start: tuple[float, float, int],
) -> None:
    """A group fed at once is its calls stepped through one by one, with or without the
    fast CUSUM, also from evidence past a limit that waits for ``min_calls``."""
    hits = min(hits, n)
    calls = order(hits, n, key)
    assert sum(calls) == hits and len(calls) == n
    assert order(hits, n, key) == calls  # the same order every time (replays)
    p = params(0.05, 0.15, 0.075, 1e4, p2=fast)
    assert p is not None
    s, f, run = start
    f = f if fast is not None else 0.0
    grouped = Evidence(s=s, f=f, run_calls=run, run_hits=run)
    stepped = grouped.copy()
    feed(grouped, hits, n, p, min_calls, key=key)
    for x in expand(hits, n, key):
        step(stepped, x, p, min_calls)
    assert grouped.s == pytest.approx(stepped.s, abs=1e-9)
    assert grouped.f == pytest.approx(stepped.f, abs=1e-9)
    assert grouped.r == pytest.approx(stepped.r, abs=1e-9)
    assert (grouped.alarm, grouped.calls, grouped.run_calls, grouped.run_hits) == (
        stepped.alarm,
        stepped.calls,
        stepped.run_calls,
        stepped.run_hits,
    )


def test_the_run_says_how_many_of_the_last_calls_had_the_outcome() -> None:
    p = params(0.05, 0.15, 0.075, 1e4)
    assert p is not None
    ev = Evidence()
    feed(ev, 0, 30, p)  # healthy: S stays at zero, no run
    assert (ev.s, ev.run_calls, ev.run_hits) == (0.0, 0, 0)
    for _ in range(6):
        feed(ev, 1, 1, p)
        feed(ev, 0, 1, p)
    assert ev.run_calls == 12 and ev.run_hits == 6
    assert ev.alarm  # 6 of 12 at a 5% baseline is past a 1e4-call limit
    feed(ev, 0, 10_000, p)  # a long healthy stretch clears it
    assert not ev.alarm and ev.s == 0.0 and ev.run_calls == 0


def test_min_calls_holds_the_alarm_until_the_run_is_long_enough() -> None:
    p = params(0.05, 0.15, 0.075, 100.0)
    assert p is not None
    ev = Evidence()
    for _ in range(4):
        feed(ev, 1, 1, p, min_calls=5)
    assert ev.s >= p.h_fire and not ev.alarm
    feed(ev, 1, 1, p, min_calls=5)
    assert ev.alarm


def test_group_orders_cells_by_bucket_and_skips_removals_and_excluded_statuses() -> None:
    cells = [
        (11, "a", "failed", 2),
        (10, "a", "completed", 3),
        (10, "a", "failed", 1),
        (10, "b", "cancelled", 4),  # not in the denominator
        (9, "a", "completed", -1),  # a call moved away: not undone
    ]
    out = group(cells, frozenset(DENOM), {"failed": frozenset({"failed"})})
    assert out == {"failed": {"a": [(10, 1, 4), (11, 2, 2)]}}


# ---- the detector and the rules' state machine ----------------------------------------------


class Seq:
    """A detector, fed cycle by cycle, and the rules evaluated on it like the daemon does."""

    def __init__(self, rule_list: list[Rule], volume: float = 1.0) -> None:
        self.rules = rule_list
        self.detector = Detector(rule_list, DENOM, OUTCOMES)
        self.view = FakeView()
        self.states: dict[tuple[str, str], AlertState] = {}
        self.volume = volume
        self.k = 0

    def baseline(self, rule: Rule, agent: str) -> Baseline:
        spec = rule.sequential
        assert spec is not None and spec.baseline is not None
        return Baseline(spec.baseline, "configured")

    def cycle(self, now: float, **agents: tuple[int, int]) -> None:
        """One cycle: per agent (failed, other) calls settled in a new bucket."""
        self.k += 1
        cells = []
        for agent, (failed, other) in agents.items():
            cells += [(self.k, agent, "failed", failed), (self.k, agent, "completed", other)]
            self.view.set(agent, failed + other, failed=failed)
        self.detector.step(cells, now, self.baseline, lambda _a: self.volume)
        ev = evaluate(self.rules, self.states, self.view, OK_POLL, now, detector=self.detector)
        self.states = ev.states


def test_a_degraded_agent_fires_and_recovers_a_healthy_one_stays_quiet() -> None:
    run = Seq(rules(false_alarm="1y"), volume=0.01)  # 864 calls a day: ARL ~272k calls
    t = T0
    rng = random.Random(3)
    for _ in range(200):  # both healthy at 5%
        t += 30
        run.cycle(t, bad=(int(rng.random() < 0.05), 1), good=(int(rng.random() < 0.05), 1))
    assert run.states == {}
    fired_after = None
    for i in range(40):  # "bad" fails 60% of its calls
        t += 30
        run.cycle(t, bad=(int(rng.random() < 0.6), 1), good=(int(rng.random() < 0.05), 1))
        st = run.states.get(("failed-seq", "bad"))
        if st is not None and st.state is State.FIRING and fired_after is None:
            fired_after = i + 1
    assert fired_after is not None and fired_after <= 30
    st = run.states[("failed-seq", "bad")]
    assert st.threshold == pytest.approx(0.15) and st.clear_below == pytest.approx(0.075)
    assert st.baseline == 0.05 and st.baseline_source == "configured"
    assert st.evidence is not None and st.evidence >= 1.0
    assert 0 < st.hits <= st.calls and st.hits / st.calls > 0.3  # "h of the last n calls"
    assert ("failed-seq", "good") not in run.states
    resolved_after = None
    for i in range(600):  # back to normal
        t += 30
        run.cycle(t, bad=(0, 2), good=(0, 2))
        st = run.states.get(("failed-seq", "bad"))
        if st is not None and st.state is State.RESOLVED:
            resolved_after = (i + 1) * 2
            break
    # the clear evidence grows 0.085 nats per healthy call against a limit set for one false
    # clear a day (864 calls at this volume): 3.1 nats, ~37 calls
    assert resolved_after is not None and 30 <= resolved_after <= 60, resolved_after


def test_for_delays_firing_and_a_day_of_silence_resolves_as_no_data() -> None:
    run = Seq(rules(**{"for": "2m"}), volume=0.01)
    t = T0
    for _ in range(20):
        t += 30
        run.cycle(t, bad=(3, 1))
    st = run.states[("failed-seq", "bad")]
    assert st.state is State.FIRING and st.fired_at is not None
    assert st.pending_at is not None and st.fired_at - st.pending_at >= 120
    run.view.clear("bad")  # a quiet agent's window empties between its calls
    for _ in range(3):
        t += 3600
        run.detector.step([], t, run.baseline, lambda _a: 0.01)
        run.states = evaluate(
            run.rules, run.states, run.view, OK_POLL, t, detector=run.detector
        ).states
        assert run.states[("failed-seq", "bad")].state is State.FIRING  # still no evidence
    t += 86400  # a day without a call: the evidence is dropped, the alert ends
    run.detector.step([], t, run.baseline, lambda _a: 0.01)
    ev = evaluate(run.rules, run.states, run.view, OK_POLL, t, detector=run.detector)
    st = ev.states[("failed-seq", "bad")]
    assert st.state is State.RESOLVED and st.note == NO_DATA


def test_window_rules_are_unchanged_next_to_sequential_ones() -> None:
    both = rules() + compile_rules(
        [
            RuleSettings.model_validate(
                {"name": "w", "outcome": "failed", "window": "15m", "threshold": 0.25}
            )
        ],
        WINDOWS,
    )
    run = Seq(both, volume=0.01)
    run.cycle(T0, a=(10, 20))  # 33% over 30 calls: the window rule fires at once
    assert run.states[("w", "a")].state is State.FIRING
    assert run.states[("w", "a")].baseline is None


# ---- config -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"threshold": "3x"}, "needs detector: sequential"),
        ({"threshold": 0.2, "false_alarm": "1y"}, "rules[0].false_alarm: only for detector"),
        ({"detector": "sequential", "threshold": "1x"}, "must be above 1x"),
        ({"detector": "sequential", "threshold": "3y"}, "or a multiple (3x)"),
        ({"detector": "sequential", "threshold": "3x", "scope": "workspace"}, "scope: agent"),
        ({"detector": "sequential", "threshold": "3x", "confidence": 0.9}, "confidence"),
        ({"detector": "sequential", "threshold": "3x", "clear_below": "4x"}, "<= threshold"),
        ({"detector": "sequential", "threshold": 0.04, "baseline": 0.05}, "above the baseline"),
        ({"detector": "sequential", "threshold": "3x", "false_alarm": "1m"}, "between 1h"),
        ({"detector": "sequential", "threshold": "3x", "baseline": "guess"}, "baseline"),
        ({"detector": "bayes", "threshold": 0.2}, "detector"),
        ({"threshold": 0.2, "fast_threshold": 0.5}, "fast_threshold: only for detector"),
        ({"detector": "sequential", "threshold": "3x", "fast_threshold": "2x"}, "above threshold"),
        ({"detector": "sequential", "threshold": 0.2, "fast_threshold": 0.2}, "above threshold"),
        ({"detector": "sequential", "threshold": "3x", "fast_threshold": "1x"}, "above 1x"),
        (
            {"detector": "sequential", "threshold": "3x", "fast_threshold": 0.04, "baseline": 0.05},
            "above the baseline",
        ),
    ],
)
def test_bad_sequential_config_names_the_field(spec: dict[str, Any], message: str) -> None:
    full = {"name": "r", "outcome": "failed", "window": "15m", **spec}
    with pytest.raises(ConfigError) as exc:
        load_settings(None, overrides={"rules": [full]}, environ={})
    assert message in "; ".join(exc.value.problems)


def test_relative_levels_and_years_compile() -> None:
    (rule,) = rules(false_alarm="10y", overrides={"agt_x": {"threshold": 0.5}})
    assert rule.sequential is not None
    assert rule.sequential.false_alarm == 10 * 365 * 86400.0
    assert rule.limits.threshold == 3.0 and rule.limits.relative
    assert rule.limits.clear_below == 1.5 and rule.limits.clear_relative
    over = rule.limits_for("agt_x")
    assert over.threshold == 0.5 and not over.relative and over.clear_relative
    (learned,) = rules(baseline="learned")
    assert learned.sequential is not None and learned.sequential.baseline is None
    assert learned.sequential.fast is None  # fast_threshold is off unless set
    (fast,) = rules(fast_threshold="10x")
    assert fast.sequential is not None
    assert (fast.sequential.fast, fast.sequential.fast_relative) == (10.0, True)
    (fast_abs,) = rules(fast_threshold=0.5)
    assert fast_abs.sequential is not None
    assert (fast_abs.sequential.fast, fast_abs.sequential.fast_relative) == (0.5, False)


# ---- learned baselines ----------------------------------------------------------------------


def learned_rule(**kw: Any) -> Rule:
    (rule,) = rules(baseline="learned", baseline_min_calls=100, baseline_prior_calls=50, **kw)
    return rule


def test_a_learned_baseline_is_the_agents_rate_shrunk_toward_the_fleet() -> None:
    rule = learned_rule(baseline_floor=0.01)
    learner = Learner([rule], DENOM, OUTCOMES)
    day = 86400.0 * 20_000
    learner.advance(day)
    # "big": 1,000 calls at 30% failed; "small": 120 calls, none failed; "new": 40 calls
    cells = [
        (day, "big", "failed", 300),
        (day, "big", "completed", 700),
        (day, "small", "completed", 120),
        (day, "new", "failed", 2),
        (day, "new", "completed", 38),
        (day, "big", "cancelled", 500),  # not in the denominator
    ]
    learner.add(cells)
    fleet = 302 / 1160
    assert learner.fleet_rate(rule) == pytest.approx(fleet)
    big = learner.baseline(rule, "big")
    assert big is not None and big.source == "learned"
    assert big.rate == pytest.approx((300 + 50 * fleet) / (1000 + 50))
    small = learner.baseline(rule, "small")
    assert small is not None and small.rate == pytest.approx(50 * fleet / 170)
    assert learner.baseline(rule, "new") is None  # under baseline_min_calls: the fallback
    assert shrunk(0, 10_000, 0.2, 50, 0.01) == 0.01  # the floor


def test_calls_while_the_alarm_is_up_are_not_learned_and_old_days_expire() -> None:
    rule = learned_rule(baseline_window="2d")
    learner = Learner([rule], DENOM, OUTCOMES)
    t = 86400.0 * 20_000
    learner.advance(t)
    learner.add([(t, "a", "completed", 190), (t, "a", "failed", 10)])
    firing = {(rule.name, "a"): [(t + 100, t + 200)]}
    learner.add([(t + 150, "a", "failed", 500)], intervals_exclude(firing))
    assert learner.totals(rule.name, "a") == (200, 10)
    learner.advance(t + 86400)  # the window is 2 days: the first day is still in
    assert learner.totals(rule.name, "a") == (200, 10)
    learner.advance(t + 2 * 86400)
    assert learner.totals(rule.name, "a") == (0, 0)
    assert learner.baseline(rule, "a") is None


def test_relative_thresholds_follow_each_agents_learned_baseline() -> None:
    """A collections agent at 40% no-answer and a support agent at 5%: 2x their own rate."""
    (rule,) = rules(
        outcome="failed",
        baseline="learned",
        threshold="2x",
        clear_below="1.5x",
        baseline_min_calls=100,
        baseline_prior_calls=0,
    )
    learner = Learner([rule], DENOM, OUTCOMES)
    t = 86400.0 * 20_000
    learner.advance(t)
    learner.add([(t, "hi", "failed", 400), (t, "hi", "completed", 600)])
    learner.add([(t, "lo", "failed", 50), (t, "lo", "completed", 950)])
    det = Detector([rule], DENOM, OUTCOMES)

    def base(r: Rule, agent: str) -> Baseline:
        found = learner.baseline(r, agent)
        assert found is not None
        return found

    hi, hi_base = det.params_for(rule, "hi", base, lambda _a: 0.01)
    lo, _ = det.params_for(rule, "lo", base, lambda _a: 0.01)
    assert hi is not None and lo is not None and hi_base.source == "learned"
    assert (hi.p0, hi.p1, hi.pc) == pytest.approx((0.4, 0.8, 0.6))
    assert (lo.p0, lo.p1, lo.pc) == pytest.approx((0.05, 0.1, 0.075))
