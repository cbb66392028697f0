"""Cycles from listed calls, for the part of a span the daemon did not record. Pure.

Historical calls are settled: each is counted once, under its final status, at its settle
time (``ended_at``, else ``created_at + duration``; a call with neither counts at its
``created_at``, where a live daemon would have used the poll that first saw it settled: at
most a cycle later). The windows then step at ``poll.interval`` as the daemon's polls did,
and each step adds the calls that settled since the one before (``Windows.add``, the
tracker's own counting)."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator

from ..history.replay import Cycle
from ..model import Call, StatusClasses
from ..windows import Windows

Settled = tuple[float, str, str]  # (settle time, agent, status)


def settled(calls: Iterable[Call], classes: StatusClasses) -> list[Settled]:
    """The settled calls among ``calls``, oldest settle time first (pending ones left out:
    they had not ended when listed)."""
    out = [
        (c.settled_at if c.settled_at is not None else c.created_at, c.agent_id, c.status)
        for c in calls
        if c.status not in classes.pending
    ]
    out.sort()
    return out


def steps(start: float, end: float, interval: float) -> list[float]:
    """The cycle times ``start, start + interval, ...`` up to ``end`` (at least ``start``)."""
    n = max(0, math.floor((end - start) / interval + 1e-9))
    return [start + i * interval for i in range(n + 1)]


def api_cycles(
    calls: list[Settled], windows: Windows, times: list[float]
) -> Iterator[tuple[float, set[str], Cycle]]:
    """Advance ``windows`` to each of ``times`` and add the calls settled by then; each
    step's calls also as a cycle's cells (bucket, agent, status, +n), as the live recorder
    hands them to the sequential rules."""
    keys = [c[0] for c in calls]
    i = 0
    for t in times:
        windows.advance(t)
        j = bisect.bisect_right(keys, t, lo=i)
        touched: set[str] = set()
        cells: dict[tuple[int, str, str], int] = {}
        for at, agent, status in calls[i:j]:
            k = windows.add(agent, status, at)
            if k is not None:
                touched.add(agent)
                cells[(k, agent, status)] = cells.get((k, agent, status), 0) + 1
        i = j
        cycle = Cycle(t, windows.bucket, None, [(k, a, s, n) for (k, a, s), n in cells.items()])
        yield t, touched, cycle
