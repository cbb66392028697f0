"""The settle-order index: calls sorted by settle time up to a moment, and a heap of the
calls settling later (bounded by the calls in flight). Ground truth over a span is two
bisections; a pending-status page reads only the calls in flight. Times are integer ms."""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterator
from heapq import heapify, heappop, heappush


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
