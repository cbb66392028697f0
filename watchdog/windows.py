"""Per-agent counters of settled calls over sliding windows, by settle time. Pure.

Time is cut into buckets of ``bucket`` seconds (bucket ``k`` holds settle times in
``[k*b, (k+1)*b)``). A window of ``w`` seconds at time ``now`` holds the buckets ``k`` with
``floor((now - w) / b) < k <= floor(now / b)``: it reaches back between ``w - b`` and ``w``.

Each window keeps running totals per agent (and for the workspace). Adding a call touches one
bucket and each window's totals: O(windows). Advancing time subtracts the buckets that fell
out of each window: O(1) amortised per call. Memory: (agents x live buckets) + totals.

With ``start_journal`` every change to a bucket is also journalled as a delta (bucket, agent,
status slot, +n/-n), merged per cell and drained once per poll cycle (``drain_journal``): the
recorded history (``history/``) is exactly the windows' content, cycle by cycle. ``apply``
plays such a delta back (a replay, a warm restart; ``apply_many`` for a whole cycle, the
workspace row once), ``content`` lists every live cell.

Longer than ~400 lines: one class whose hot paths (add, advance, apply) share private
layouts (totals rows, offsets, cuts); split, they would need each other's internals.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from .model import UNKNOWN, StatusClasses, WindowCounts

WORKSPACE = "*"


def choose_bucket(window_seconds: Mapping[str, float]) -> float:
    """The largest divisor of every window that is at most 1/20 of the shortest (>= 1s)."""
    sizes = [max(1, round(s)) for s in window_seconds.values()]
    g = 0
    for s in sizes:
        g = math.gcd(g, s)
    target = max(1, min(sizes) // 20)
    best = 1
    for d in range(1, target + 1):
        if g % d == 0:
            best = d
    return float(best)


class Windows:
    def __init__(
        self,
        window_seconds: Mapping[str, float],
        classes: StatusClasses,
        bucket: float | None = None,
    ) -> None:
        pairs = sorted(window_seconds.items(), key=lambda p: p[1])
        self.labels: list[str] = [p[0] for p in pairs]
        self.sizes: list[float] = [p[1] for p in pairs]
        self.bucket = bucket if bucket is not None else choose_bucket(window_seconds)
        self.classes = classes
        self.statuses: tuple[str, ...] = classes.terminal
        self.index: dict[str, int] = {s: i for i, s in enumerate(self.statuses)}
        self._n = len(self.statuses)
        denom = set(classes.denominator)
        self._denom = [i for i, s in enumerate(self.statuses) if s in denom]
        self._outcomes = {
            o: [self.index[s] for s in ss if s in self.index] for o, ss in classes.outcomes.items()
        }
        self._label_index = {label: i for i, label in enumerate(self.labels)}
        self._unknown = self.index[UNKNOWN]
        # A totals row holds, per window: the n status counts, then the denominator, then
        # one sum per outcome, kept up to date with the counts (rules read them directly).
        n, outcome_slots = self._n, list(self._outcomes.values())
        self._row = n + 1 + len(outcome_slots)
        self._width = self._row * len(self.labels)
        denom_set = set(self._denom)
        self._rel: list[tuple[int, ...]] = [
            (
                slot,
                *((n,) if slot in denom_set else ()),
                *(n + 1 + oi for oi, idx in enumerate(outcome_slots) if slot in idx),
            )
            for slot in range(n)
        ]
        self._outcome_pos = {o: n + 1 + oi for oi, o in enumerate(self._outcomes)}
        # offsets a status touches in windows first.. (index: slot, then first window)
        self._suffix_offsets = [
            [
                tuple(wi * self._row + r for wi in range(first, len(self.labels)) for r in rel)
                for first in range(len(self.labels))
            ]
            for rel in self._rel
        ]
        self._offsets = [per_first[0] for per_first in self._suffix_offsets]
        # offsets a status touches in window wi alone (index: window, then slot)
        self._window_offsets = [
            [tuple(wi * self._row + r for r in rel) for rel in self._rel]
            for wi in range(len(self.labels))
        ]
        # bucket index -> agent -> counts per status
        self._buckets: dict[int, dict[str, list[int]]] = {}
        # agent -> the buckets it has a row in (any order): an agent's sparkline reads those,
        # not every bucket of the window
        self._rows_of: dict[str, list[int]] = {}
        # agent (and WORKSPACE, the sum) -> counts per window and status, flat:
        # [window 0: status 0..n-1, window 1: ...]. Windows nest, so an agent has an entry
        # exactly while it has a call in the longest window.
        self._totals: dict[str, list[int]] = {}
        self._dirty: set[str] = set()  # agents whose totals changed since take_dirty()
        # for the alert evaluation (take_changes): agents whose calls changed (every window),
        # and per window the agents a bucket leaving it held; None until first asked
        self._changed: set[str] | None = None
        self._left: list[set[str]] = [set() for _ in self.labels]
        # (bucket, agent, slot) -> net change since the last drain_journal(); None: off
        self._journal: dict[tuple[int, str, int], int] | None = None
        self._now = -math.inf
        self._now_k = -(2**62)
        self._cuts: list[int] = [-(2**62)] * len(self.labels)

    # ---- time -------------------------------------------------------------------------
    @property
    def now(self) -> float:
        return self._now

    def _k(self, t: float) -> int:
        return math.floor(t / self.bucket)

    def advance(self, now: float) -> None:
        """Move the windows' ends to ``now`` (never backwards)."""
        if now <= self._now:
            return
        self._now = now
        self._now_k = self._k(now)
        totals = self._totals
        longest = len(self.sizes) - 1
        for wi, size in enumerate(self.sizes):
            new_cut = self._k(now - size)
            old_cut = self._cuts[wi]
            if new_cut <= old_cut:
                continue
            if new_cut - old_cut <= len(self._buckets):
                leaving = [k for k in range(old_cut + 1, new_cut + 1) if k in self._buckets]
            else:
                leaving = sorted(k for k in self._buckets if old_cut < k <= new_cut)
            offsets = self._window_offsets[wi]
            # windows nest: a row can only empty when a bucket leaves the longest window
            last = wi == longest
            left = self._left[wi] if self._changed is not None else None
            for k in leaving:
                per_agent = self._buckets[k]
                self._dirty.update(per_agent)
                if left is not None:
                    left.update(per_agent)
                bucket_sum = [0] * self._n  # the workspace row: once per bucket
                for agent, counts in per_agent.items():
                    t = totals[agent]
                    for i, c in enumerate(counts):
                        if c:
                            bucket_sum[i] += c
                            for o in offsets[i]:
                                t[o] -= c
                    if last and not any(t):
                        del totals[agent]
                if per_agent:
                    t = totals[WORKSPACE]
                    for i, c in enumerate(bucket_sum):
                        if c:
                            for o in offsets[i]:
                                t[o] -= c
                    if last and not any(t):
                        del totals[WORKSPACE]
            self._cuts[wi] = new_cut
        longest_cut = self._cuts[-1]
        if self._buckets and min(self._buckets) <= longest_cut:
            for k in [k for k in self._buckets if k <= longest_cut]:
                for agent in self._buckets.pop(k):
                    self._drop_row(agent, k)

    # ---- calls ------------------------------------------------------------------------
    def slot(self, status: str) -> int:
        """Counter index for a settled call's status (``unknown`` outside the vocabulary)."""
        return self.index.get(status, self._unknown)

    def counted_as(self, status: str) -> str:
        """The status a settled call is counted under (``unknown`` outside the vocabulary)."""
        return status if status in self.index else UNKNOWN

    def add(self, agent_id: str, status: str, settled_at: float) -> int | None:
        """Count one settled call; returns its bucket (needed to move it) or None if it
        settled before the longest window and so is not counted. (The ingest hot path.)"""
        k = math.floor((settled_at if settled_at < self._now else self._now) / self.bucket)
        cuts = self._cuts
        if k <= cuts[-1]:
            return None
        slot = self.index.get(status, self._unknown)
        per_agent = self._buckets.get(k)
        if per_agent is None:
            per_agent = self._buckets[k] = {}
        counts = per_agent.get(agent_id)
        if counts is None:
            counts = per_agent[agent_id] = [0] * self._n
            self._new_row(agent_id, k)
        counts[slot] += 1
        self._dirty.add(agent_id)
        if self._changed is not None:
            self._changed.add(agent_id)
        journal = self._journal
        if journal is not None:
            cell = (k, agent_id, slot)
            journal[cell] = journal.get(cell, 0) + 1
        offsets = self._offsets_for(slot, k)
        totals = self._totals
        for key in (agent_id, WORKSPACE):
            t = totals.get(key)
            if t is None:
                t = totals[key] = [0] * self._width
            for o in offsets:
                t[o] += 1
        return k

    def remove(self, agent_id: str, status: str, bucket: int) -> None:
        """Undo ``add`` (the call changed status); a bucket that already expired is a no-op."""
        if bucket <= self._cuts[-1]:
            return
        slot = self.slot(status)
        per_agent = self._buckets[bucket]
        counts = per_agent[agent_id]
        counts[slot] -= 1
        if not any(counts):
            del per_agent[agent_id]
            self._drop_row(agent_id, bucket)
            if not per_agent:
                del self._buckets[bucket]
        self._dirty.add(agent_id)
        if self._changed is not None:
            self._changed.add(agent_id)
        if self._journal is not None:
            cell = (bucket, agent_id, slot)
            self._journal[cell] = self._journal.get(cell, 0) - 1
        offsets = self._offsets_for(slot, bucket)
        for key in (agent_id, WORKSPACE):
            t = self._totals[key]
            for o in offsets:
                t[o] -= 1
            if not any(t):
                del self._totals[key]

    def _new_row(self, agent_id: str, k: int) -> None:
        rows = self._rows_of.get(agent_id)
        if rows is None:
            self._rows_of[agent_id] = [k]
        else:
            rows.append(k)

    def _drop_row(self, agent_id: str, k: int) -> None:
        rows = self._rows_of[agent_id]
        rows.remove(k)
        if not rows:
            del self._rows_of[agent_id]

    def _offsets_for(self, slot: int, k: int) -> tuple[int, ...]:
        """The totals cells a call in bucket ``k`` with status ``slot`` counts in."""
        cuts = self._cuts
        if k > cuts[0]:  # recent: in every window (the shortest has the latest cut)
            return self._offsets[slot]
        first = 1  # else in the longer windows only: a suffix of them (cuts fall as they grow)
        while k <= cuts[first]:
            first += 1
        return self._suffix_offsets[slot][first]

    # ---- reading (CountsView) ---------------------------------------------------------
    def window_labels(self) -> list[str]:
        return list(self.labels)

    def agents(self) -> list[str]:
        return sorted(a for a in self._totals if a != WORKSPACE)

    def raw_counts(self, agent_id: str, window: str) -> list[int] | None:
        """Counts per status (ordered as ``statuses``) or None when the agent has none."""
        t = self._totals.get(agent_id)
        if t is None:
            return None
        base = self._label_index[window] * self._row
        return t[base : base + self._n]

    @property
    def outcome_names(self) -> tuple[str, ...]:
        """The outcomes, in the order ``sum_layout`` (and ``WindowCounts.outcomes``) has them."""
        return tuple(self._outcome_pos)

    @property
    def sum_layout(self) -> list[tuple[int, tuple[int, ...]]]:
        """Per window (``labels`` order): where a ``kept_row`` holds the denominator calls and
        each outcome's calls (what ``to_counts(raw_counts(...))`` adds up)."""
        pos = tuple(self._outcome_pos.values())
        return [(b + self._n, tuple(b + p for p in pos)) for b in range(0, self._width, self._row)]

    def kept_row(self, agent_id: str) -> list[int] | None:
        """The agent's row of kept sums, read in place (not to be changed; read it where the
        windows cannot change meanwhile), or None when it has no call in the longest window.
        For the metrics renderer, with ``sum_layout``."""
        return self._totals.get(agent_id)

    def take_dirty(self) -> set[str]:
        """Agents whose counts changed (or vanished) since the last call; resets the set."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def take_changes(self) -> dict[str, set[str]] | None:
        """Per window label: the agents whose counts in that window changed (or may have:
        a call added or removed anywhere counts for every window) since the last call; resets
        them. The first call starts the tracking and returns None (unknown: everything may
        have changed). For the alert evaluation (``alerts.incremental``); ``take_dirty`` is
        the metrics renderer's own."""
        changed = self._changed
        if changed is None:
            self._changed = set()
            self._left = [set() for _ in self.labels]
            return None
        out = {label: changed | left for label, left in zip(self.labels, self._left, strict=True)}
        self._changed = set()
        self._left = [set() for _ in self.labels]
        return out

    def to_counts(self, counts: list[int] | None) -> WindowCounts:
        """WindowCounts from a row of status counts (as ``raw_counts`` returns)."""
        if counts is None:
            return WindowCounts(0, {o: 0 for o in self._outcomes})
        return WindowCounts(
            sum(counts[i] for i in self._denom),
            {o: sum(counts[i] for i in idx) for o, idx in self._outcomes.items()},
        )

    def counts(self, agent_id: str, window: str) -> WindowCounts:
        return self._kept(agent_id, window)

    def workspace(self, window: str) -> WindowCounts:
        return self._kept(WORKSPACE, window)

    def _kept(self, key: str, window: str) -> WindowCounts:
        """WindowCounts from the denominator and outcome sums each row keeps."""
        t = self._totals.get(key)
        if t is None:
            return WindowCounts(0, {o: 0 for o in self._outcome_pos})
        base = self._label_index[window] * self._row
        return WindowCounts(
            t[base + self._n], {o: t[base + pos] for o, pos in self._outcome_pos.items()}
        )

    def snapshot(self, window: str) -> dict[str, WindowCounts]:
        """Every agent's counts in ``window`` (for the metrics collector)."""
        base = self._label_index[window] * self._row
        end = base + self._n
        return {a: self.to_counts(t[base:end]) for a, t in self._totals.items() if a != WORKSPACE}

    def candidates(self, window: str, outcome: str, threshold: float, min_calls: int) -> list[str]:
        """Agents with at least ``min_calls`` calls and ``outcome``'s ratio >= ``threshold``
        in ``window``: one pass over the rows' kept sums, for rule evaluation at scale."""
        return self.candidates_many([(window, outcome, threshold, min_calls)])[0]

    def candidates_many(self, queries: list[tuple[str, str, float, int]]) -> list[list[str]]:
        """``candidates`` for several rules at once: the rows with enough calls are found
        once per (window, min_calls), then each rule filters only those."""
        eligible: dict[tuple[str, int], list[tuple[str, list[int]]]] = {}
        out: list[list[str]] = []
        for window, outcome, threshold, min_calls in queries:
            pos = self._outcome_pos.get(outcome)
            if pos is None:
                out.append([])
                continue
            base = self._label_index[window] * self._row
            d, h = base + self._n, base + pos
            need = max(1, min_calls)
            rows = eligible.get((window, need))
            if rows is None:
                rows = eligible[(window, need)] = [
                    (a, t) for a, t in self._totals.items() if t[d] >= need and a != WORKSPACE
                ]
            out.append([a for a, t in rows if t[h] >= threshold * t[d]])
        return out

    def candidates_among(
        self, changed: Mapping[str, Iterable[str]], queries: list[tuple[str, str, float, int]]
    ) -> list[list[str]]:
        """``candidates_many`` restricted, per query, to the agents ``changed`` names for its
        window (those whose counts there moved: the incremental evaluation keeps each
        rule's candidates up to date with it)."""
        totals = self._totals
        rows_of: dict[str, list[tuple[str, list[int]]]] = {}  # window -> rows of its agents
        out: list[list[str]] = []
        for window, outcome, threshold, min_calls in queries:
            pos = self._outcome_pos.get(outcome)
            if pos is None:
                out.append([])
                continue
            rows = rows_of.get(window)
            if rows is None:
                rows = rows_of[window] = [
                    (a, t)
                    for a in changed[window]
                    if a != WORKSPACE and (t := totals.get(a)) is not None
                ]
            base = self._label_index[window] * self._row
            d, h = base + self._n, base + pos
            need = max(1, min_calls)
            out.append([a for a, t in rows if t[d] >= need and t[h] >= threshold * t[d]])
        return out

    def series(
        self, agent_id: str | None, outcome: str, window: str, points: int
    ) -> list[float | None]:
        wi = self._label_index[window]
        first, last = self._cuts[wi] + 1, self._now_k
        span = max(1, last - first + 1)
        points = max(1, min(points, span))
        key = WORKSPACE if agent_id is None else agent_id
        hits = [0] * points
        denom = [0] * points
        idx = self._outcomes.get(outcome, [])
        didx = self._denom
        buckets = self._buckets
        if key != WORKSPACE:  # an agent: the buckets it has rows in
            for k in self._rows_of.get(key, ()):
                if first <= k <= last:
                    counts = buckets[k][key]
                    p = (k - first) * points // span
                    for i in idx:
                        hits[p] += counts[i]
                    for i in didx:
                        denom[p] += counts[i]
            return [h / d if d else None for h, d in zip(hits, denom, strict=True)]
        # the workspace: the window's buckets by key when fewer than all kept (a sparkline
        # of a short window), else one pass over the kept ones
        keys: Iterable[int] = range(first, last + 1) if span < len(buckets) else buckets
        for k in keys:
            if not first <= k <= last:
                continue
            per_agent = buckets.get(k)
            if per_agent is None:
                continue
            p = (k - first) * points // span
            for counts in per_agent.values():
                for i in idx:
                    hits[p] += counts[i]
                for i in didx:
                    denom[p] += counts[i]
        return [h / d if d else None for h, d in zip(hits, denom, strict=True)]

    def memory_cells(self) -> int:
        """Live counter rows (for the benchmark): bucket rows + total rows."""
        return sum(len(b) for b in self._buckets.values()) + len(self._totals)

    # ---- the journal, replay and snapshots (recorded history, warm restarts) ------------
    def start_journal(self) -> None:
        self._journal = {} if self._journal is None else self._journal

    def drain_journal(self) -> list[tuple[int, str, int, int]]:
        """Net changes since the last drain as (bucket, agent, slot, +n/-n), n != 0. Applied
        after ``advance`` to the same times, they rebuild exactly these windows."""
        journal = self._journal
        if not journal:
            return []
        self._journal = {}
        return [(k, agent, slot, n) for (k, agent, slot), n in journal.items() if n]

    @property
    def horizon(self) -> int:
        """The newest bucket that has left the longest window (none up to it is counted)."""
        return self._cuts[-1]

    def apply(self, agent_id: str, slot: int, bucket: int, n: int) -> bool:
        """Add ``n`` (negative: remove) calls of status ``slot`` to ``bucket``, as ``add`` and
        ``remove`` do; False for a bucket outside the longest window (left alone). Raises
        ValueError, changing nothing, for a count that would go below zero."""
        if n == 0 or bucket <= self._cuts[-1]:
            return False
        if not 0 <= slot < self._n:
            raise ValueError(f"status slot {slot} out of range")
        per_agent = self._buckets.setdefault(bucket, {})
        counts = per_agent.get(agent_id)
        if counts is None:
            counts = per_agent[agent_id] = [0] * self._n
            self._new_row(agent_id, bucket)
        if counts[slot] + n < 0:
            if not any(counts):
                del per_agent[agent_id]
                self._drop_row(agent_id, bucket)
            if not per_agent:
                del self._buckets[bucket]
            raise ValueError(f"removes {-n} call(s) that bucket {bucket} does not hold")
        counts[slot] += n
        if not any(counts):
            del per_agent[agent_id]
            self._drop_row(agent_id, bucket)
            if not per_agent:
                del self._buckets[bucket]
        self._dirty.add(agent_id)
        if self._changed is not None:
            self._changed.add(agent_id)
        if self._journal is not None:
            cell = (bucket, agent_id, slot)
            self._journal[cell] = self._journal.get(cell, 0) + n
        offsets = self._offsets_for(slot, bucket)
        totals = self._totals
        for key in (agent_id, WORKSPACE):
            t = totals.setdefault(key, [0] * self._width)
            for o in offsets:
                t[o] += n
            if not any(t):
                del totals[key]
        return True

    def apply_many(self, cells: Iterable[tuple[str, int, int, int]]) -> None:
        """``apply`` for each (agent, slot, bucket, n) of ``cells`` (a replayed cycle), the
        workspace row updated once at the end. Raises ValueError at the first cell that
        would go below zero (the cells before it stay applied)."""
        buckets, totals, journal = self._buckets, self._totals, self._journal
        cuts, nst, width = self._cuts, self._n, self._width
        suffix, dirty = self._suffix_offsets, self._dirty
        changed = self._changed if self._changed is not None else set()
        last = len(cuts) - 1
        ws: dict[tuple[int, int], int] = {}  # (slot, first window) -> n, for WORKSPACE
        try:
            for agent_id, slot, bucket, n in cells:
                if n == 0 or bucket <= cuts[last]:
                    continue
                if not 0 <= slot < nst:
                    raise ValueError(f"status slot {slot} out of range")
                per_agent = buckets.get(bucket)
                if per_agent is None:
                    per_agent = buckets[bucket] = {}
                counts = per_agent.get(agent_id)
                if counts is None:
                    counts = per_agent[agent_id] = [0] * nst
                    self._new_row(agent_id, bucket)
                if counts[slot] + n < 0:
                    if not any(counts):
                        del per_agent[agent_id]
                        self._drop_row(agent_id, bucket)
                    if not per_agent:
                        del buckets[bucket]
                    raise ValueError(f"removes {-n} call(s) that bucket {bucket} does not hold")
                counts[slot] += n
                if n < 0 and not any(counts):
                    del per_agent[agent_id]
                    self._drop_row(agent_id, bucket)
                    if not per_agent:
                        del buckets[bucket]
                dirty.add(agent_id)
                changed.add(agent_id)
                if journal is not None:
                    cell = (bucket, agent_id, slot)
                    journal[cell] = journal.get(cell, 0) + n
                first = 0
                while bucket <= cuts[first]:
                    first += 1
                t = totals.get(agent_id)
                if t is None:
                    t = totals[agent_id] = [0] * width
                for o in suffix[slot][first]:
                    t[o] += n
                if n < 0 and not any(t):
                    del totals[agent_id]
                key = (slot, first)
                ws[key] = ws.get(key, 0) + n
        finally:
            if ws:
                t = totals.setdefault(WORKSPACE, [0] * width)
                for (slot, first), n in ws.items():
                    for o in suffix[slot][first]:
                        t[o] += n
                if not any(t):
                    del totals[WORKSPACE]

    def content(self) -> list[tuple[int, str, int, int]]:
        """Every live cell as (bucket, agent, slot, calls): what ``apply`` needs to rebuild
        these windows from empty after ``advance(now)``."""
        return [
            (k, agent, slot, c)
            for k, per_agent in self._buckets.items()
            for agent, counts in per_agent.items()
            for slot, c in enumerate(counts)
            if c
        ]

    def checksum(self) -> list[int]:
        """The workspace totals (all windows) and the number of rows: checks a rebuild."""
        t = self._totals.get(WORKSPACE)
        return [*(t if t is not None else [0] * self._width), len(self._totals)]

    def clear(self) -> None:
        """Forget every call and the time (as new); the journal, if on, starts empty."""
        self._dirty.update(a for a in self._totals if a != WORKSPACE)
        if self._changed is not None:
            self._changed.update(a for a in self._totals if a != WORKSPACE)
        self._buckets.clear()
        self._rows_of.clear()
        self._totals.clear()
        self._now = -math.inf
        self._now_k = -(2**62)
        self._cuts = [-(2**62)] * len(self.labels)
        if self._journal is not None:
            self._journal = {}
