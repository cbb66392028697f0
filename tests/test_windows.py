"""Window counters against a brute-force recount of every call ever added."""

from __future__ import annotations

import math
from typing import Any

import pytest
from dialnexa_watchdog.model import StatusClasses
from dialnexa_watchdog.windows import Windows, choose_bucket
from hypothesis import given, settings
from hypothesis import strategies as st

CLASSES = StatusClasses()
STATUSES = [
    "completed",
    "failed",
    "busy",
    "no_answer",
    "did_not_pick",
    "voicemail",
    "cancelled",
    "weird_status",
]


def brute(
    calls: list[tuple[str, str, float]], now: float, size: float, bucket: float, agent: str | None
) -> tuple[int, dict[str, int]]:
    cut = math.floor((now - size) / bucket)
    denom, outcomes = 0, {o: 0 for o in CLASSES.outcomes}
    for a, status, t in calls:
        if agent is not None and a != agent:
            continue
        if math.floor(t / bucket) <= cut:
            continue
        if status in CLASSES.denominator:
            denom += 1
        for o, ss in CLASSES.outcomes.items():
            if status in ss:
                outcomes[o] += 1
    return denom, outcomes


op = st.tuples(
    st.floats(0, 400),  # time step
    st.sampled_from(["a1", "a2", "a3"]),
    st.sampled_from(STATUSES),
    st.floats(-500, 5),  # settle offset from now (slightly in the future is clamped)
    st.booleans(),  # later move this call to another status
)


@settings(max_examples=200, deadline=None)
@given(st.lists(op, max_size=60), st.sampled_from([(60, 300), (300, 900, 3600), (45, 90)]))
@pytest.mark.slow
def test_counts_match_brute_force(
    ops: list[tuple[float, str, str, float, bool]], sizes: tuple[int, ...]
) -> None:
    spec = {f"{s}s": float(s) for s in sizes}
    w = Windows(spec, CLASSES)
    now = 1_000_000.0
    w.advance(now)
    alive: list[tuple[str, str, float]] = []
    movable: list[tuple[int, int | None]] = []
    for step, agent, status, offset, move in ops:
        now += step
        w.advance(now)
        t = min(now + offset, now)
        k = w.add(agent, status, now + offset)
        counted = w.statuses[w.slot(status)]
        if k is not None:
            alive.append((agent, counted, t))
            if move:
                movable.append((len(alive) - 1, k))
        if movable and step > 200:  # sometimes a counted call changes status
            idx, bucket = movable.pop()
            a, old, t_old = alive[idx]
            assert bucket is not None
            w.remove(a, old, bucket)
            moved = w.add(a, "failed", t_old)
            alive[idx] = (a, "failed" if moved is not None else "expired", t_old)
        for label, size in spec.items():
            for agent_id in ("a1", "a2", "a3", None):
                want_denom, want_out = brute(alive, now, size, w.bucket, agent_id)
                got = w.workspace(label) if agent_id is None else w.counts(agent_id, label)
                assert (got.calls, got.outcomes) == (want_denom, want_out)
            # the sums kept in each row for rule evaluation agree with the recount
            want = set()
            for agent_id in ("a1", "a2", "a3"):
                d, out = brute(alive, now, size, w.bucket, agent_id)
                if d >= 2 and out["no_answer"] >= 0.3 * d:
                    want.add(agent_id)
            assert set(w.candidates(label, "no_answer", 0.3, 2)) == want
    assert set(w.agents()) <= {"a1", "a2", "a3"}


def test_bucket_divides_every_window() -> None:
    assert choose_bucket({"5m": 300, "15m": 900, "1h": 3600}) == 15
    assert choose_bucket({"1m": 60, "5m": 300}) == 3
    assert choose_bucket({"7s": 7}) == 1


def test_ratio_absent_without_calls_and_unknown_excluded() -> None:
    w = Windows({"5m": 300}, CLASSES)
    w.advance(10_000)
    w.add("a", "cancelled", 9_990)
    w.add("a", "transferring", 9_990)
    c = w.counts("a", "5m")
    assert c.calls == 0 and c.ratio("failed") is None
    assert w.agents() == ["a"]
    w.add("a", "did_not_pick", 9_995)
    w.add("a", "completed", 9_995)
    assert w.counts("a", "5m").ratio("no_answer") == 0.5


def test_expiry_forgets_agents_and_buckets() -> None:
    w = Windows({"1m": 60, "5m": 300}, CLASSES)
    w.advance(10_000)
    for i in range(100):
        w.add(f"agent{i}", "failed", 9_999)
    assert len(w.agents()) == 100
    w.advance(10_400)
    assert w.agents() == [] and w.memory_cells() == 0


def test_series_splits_window_into_points() -> None:
    w = Windows({"1m": 60}, CLASSES)
    w.advance(6_000)
    w.add("a", "failed", 5_945)
    w.add("a", "completed", 5_995)
    s = w.series("a", "failed", "1m", 2)
    assert s == [1.0, 0.0]
    assert w.series(None, "failed", "1m", 2) == [1.0, 0.0]


# ---- the journal: what the recorded history is made of --------------------------------------
def state(w: Windows) -> tuple[list[tuple[int, str, int, int]], list[int], dict[str, object]]:
    """Everything a reader can see: every live cell, the kept totals, every agent's counts."""
    per_agent = {
        a: [w.counts(a, label) for label in w.labels] + [w.raw_counts(a, w.labels[-1])]
        for a in w.agents()
    }
    return sorted(w.content()), w.checksum(), per_agent


cycle_op = st.tuples(
    st.sampled_from(["a1", "a2", "a3", "a\udc80"]),  # a lone surrogate: ids are untrusted
    st.sampled_from(STATUSES),
    st.floats(-4000, 5),  # settle offset from the cycle's time
    st.integers(0, 3),  # 0: add; else move an earlier call (if any) to another status
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 900), st.lists(cycle_op, max_size=12)), max_size=25),
    st.sampled_from([(60, 300), (300, 900, 3600), (45, 90)]),
)
@pytest.mark.slow
def test_a_replay_of_the_drained_journal_rebuilds_the_windows_exactly(
    cycles: list[tuple[float, list[tuple[str, str, float, int]]]], sizes: tuple[int, ...]
) -> None:
    spec = {f"{s}s": float(s) for s in sizes}
    live, replayed = Windows(spec, CLASSES), Windows(spec, CLASSES)
    live.start_journal()
    now = 1_000_000.0
    counted: list[tuple[str, str, int]] = []  # (agent, status, bucket) of counted calls
    for step, ops in cycles:
        now += step
        live.advance(now)
        for agent, status, offset, move in ops:
            if move and counted:
                a, old, k = counted.pop(move % len(counted))
                live.remove(a, old, k)  # a no-op when the bucket has expired: not journalled
                moved = live.add(a, status, k * live.bucket)
                if moved is not None:
                    counted.append((a, live.counted_as(status), moved))
                continue
            k = live.add(agent, status, now + offset)
            if k is not None:
                counted.append((agent, live.counted_as(status), k))
        journal = live.drain_journal()
        assert all(n != 0 for *_, n in journal)
        # the replay: advance to the cycle's time, then the same deltas
        replayed.advance(now)
        for k, agent, slot, n in journal:
            assert replayed.apply(agent, slot, k, n)  # every journalled cell is still live
        assert state(replayed) == state(live)
        for label in live.labels:
            got = replayed.candidates(label, "failed", 0.3, 1)
            assert sorted(got) == sorted(live.candidates(label, "failed", 0.3, 1))
        # and from the content alone, as a warm restart rebuilds
        rebuilt = Windows(spec, CLASSES)
        rebuilt.advance(now)
        for k, agent, slot, n in live.content():
            rebuilt.apply(agent, slot, k, n)
        assert state(rebuilt) == state(live)
    assert live.drain_journal() == []


def test_apply_refuses_to_go_below_zero_and_changes_nothing() -> None:
    w = Windows({"5m": 300}, CLASSES)
    w.advance(10_000)
    k = w.add("a", "failed", 9_990)
    assert k is not None
    before = state(w)
    with pytest.raises(ValueError, match="does not hold"):
        w.apply("a", w.slot("failed"), k, -2)
    with pytest.raises(ValueError, match="does not hold"):
        w.apply("b", w.slot("completed"), k, -1)
    assert state(w) == before
    assert w.apply("a", w.slot("failed"), k, -1) and w.agents() == []
    assert not w.apply("a", w.slot("failed"), w.horizon, 1)  # out of the window: left alone


def test_the_journal_is_off_until_started_and_clear_forgets_everything() -> None:
    w = Windows({"1m": 60, "5m": 300}, CLASSES)
    w.advance(10_000)
    w.add("a", "failed", 9_999)
    assert w.drain_journal() == []
    w.start_journal()
    k = w.add("a", "busy", 9_999)
    assert w.drain_journal() == [(k, "a", w.slot("busy"), 1)]
    w.take_dirty()
    w.clear()
    assert w.agents() == [] and w.content() == [] and w.now == -math.inf
    assert w.take_dirty() == {"a"}  # the metrics renderer drops the agent's lines
    assert w.checksum() == [0] * (len(w.checksum()) - 1) + [0]


def _reference_series(w: Windows, agent: str | None, outcome: str, label: str, points: int) -> Any:
    """An agent's (or the workspace's) series from every kept bucket, scanned."""
    wi = w.labels.index(label)
    first, last = w._cuts[wi] + 1, w._now_k
    span = max(1, last - first + 1)
    points = max(1, min(points, span))
    hits, denom = [0] * points, [0] * points
    for k, per_agent in w._buckets.items():
        if not first <= k <= last:
            continue
        rows = list(per_agent.values()) if agent is None else [per_agent.get(agent)]
        p = (k - first) * points // span
        for counts in rows:
            if counts is not None:
                hits[p] += sum(counts[i] for i in w._outcomes.get(outcome, []))
                denom[p] += sum(counts[i] for i in w._denom)
    return [h / d if d else None for h, d in zip(hits, denom, strict=True)]


series_op = st.tuples(
    st.sampled_from(["add", "add", "add", "remove", "apply", "apply_many", "advance", "clear"]),
    st.sampled_from(["a1", "a2", "a3"]),
    st.sampled_from(STATUSES),
    st.floats(0, 400),  # seconds: how far back a call settled, or how far time moves
)


@settings(max_examples=200, deadline=None)
@given(st.lists(series_op, max_size=50), st.sampled_from([(60, 300), (45, 90, 900)]))
def test_an_agents_series_reads_its_own_rows_and_matches_every_bucket_scanned(
    ops: list[tuple[str, str, str, float]], sizes: tuple[int, ...]
) -> None:
    """The per-agent row index (``_rows_of``) follows every way a row comes and goes."""
    spec = {f"{s}s": float(s) for s in sizes}
    w = Windows(spec, CLASSES)
    now = 1_000_000.0
    w.advance(now)
    counted: list[tuple[str, str, int]] = []
    for i, (kind, agent, status, x) in enumerate(ops):
        if kind == "advance":
            now += x
            w.advance(now)
        elif kind == "clear" and i % 3 == 0:
            w.clear()
            counted.clear()
            w.advance(now)
        elif kind in ("remove", "apply_many") and counted:
            a, s, k = counted.pop(i % len(counted))
            if kind == "remove":
                w.remove(a, s, k)
            elif k > w.horizon:
                w.apply_many([(a, w.slot(s), k, -1)])
        elif kind == "apply":
            k = math.floor((now - x) / w.bucket)
            if w.apply(agent, w.slot(status), k, 1):
                counted.append((agent, w.counted_as(status), k))
        else:
            k2 = w.add(agent, status, now - x)
            if k2 is not None:
                counted.append((agent, w.counted_as(status), k2))
        rows: dict[str, list[int]] = {}
        for k, per_agent in w._buckets.items():
            for a in per_agent:
                rows.setdefault(a, []).append(k)
        assert {a: sorted(ks) for a, ks in w._rows_of.items()} == {
            a: sorted(ks) for a, ks in rows.items()
        }
        for label in w.labels:
            for who in ("a1", "a2", "a3", None):
                for points in (1, 4, 30):
                    got = w.series(who, "failed", label, points)
                    assert got == _reference_series(w, who, "failed", label, points)
