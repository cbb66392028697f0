"""Reading recorded history back: decode rows into cycles, replay them into ``Windows``,
sum them into per-bucket counts. Pure: rows come in, nothing is read or written here.

A replay is exact: ``apply_cycle`` does to a ``Windows`` what the live daemon's cycle did
(advance to the cycle's time, then the same +n/-n per cell), so after each recorded cycle
the replayed windows equal the live ones, and any rule evaluated on them decides the same.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from ..windows import Windows
from .base import AGENT, STATUS, HistoryCorrupt, HistoryRow
from .codec import decode

Names = Mapping[tuple[int, int], str]  # (kind, code) -> agent id or status


@dataclass(frozen=True, slots=True)
class Cycle:
    """One recorded poll cycle, decoded: (bucket, agent, status, +n/-n) cells."""

    at: float
    bucket: float
    reset: int | None  # not None: the windows were emptied first (see HistoryRow)
    cells: list[tuple[int, str, str, int]]


def decode_row(row: HistoryRow, names: Names) -> Cycle:
    agents, ks, statuses, ns = decode(row.data, row.kmax)
    try:
        cells = [
            (k, names[(AGENT, a)], names[(STATUS, s)], n)
            for a, k, s, n in zip(agents, ks, statuses, ns, strict=True)
        ]
    except KeyError as exc:
        raise HistoryCorrupt(f"history row at {row.at:.0f} names an unknown code {exc}") from None
    return Cycle(row.at, row.bucket, row.reset, cells)


def rebucket(k: int, size: float, windows: Windows) -> int:
    """Bucket ``k`` of ``size`` seconds as a bucket of ``windows`` (exact when the windows'
    bucket is a multiple of ``size``; else the one holding its start)."""
    if size == windows.bucket:
        return k
    return math.floor(k * size / windows.bucket)


def apply_cycle(windows: Windows, cycle: Cycle) -> None:
    """Do to ``windows`` what the live cycle did. HistoryCorrupt if it does not add up."""
    if cycle.reset is not None:
        windows.clear()
    windows.advance(cycle.at)
    slot, size = windows.slot, cycle.bucket
    try:
        if size == windows.bucket:
            windows.apply_many((agent, slot(status), k, n) for k, agent, status, n in cycle.cells)
        else:
            windows.apply_many(
                (agent, slot(status), rebucket(k, size, windows), n)
                for k, agent, status, n in cycle.cells
            )
    except ValueError as exc:
        raise HistoryCorrupt(f"history cycle at {cycle.at:.0f}: {exc}") from None


def rebuild(windows: Windows, cycles: Iterable[Cycle], at: float) -> None:
    """Make ``windows`` what they were after the last of ``cycles`` (advanced to ``at``).
    ``cycles`` must hold every cycle since the oldest bucket still in the longest window at
    ``at`` (``first_needed``). One pass: cells are summed, then applied once."""
    total: dict[tuple[int, str, str], int] = {}
    for cycle in cycles:
        if cycle.at > at:
            break
        if cycle.reset is not None:
            total.clear()  # older cells are all out of the windows by ``at``
        for k, agent, status, n in cycle.cells:
            key = (rebucket(k, cycle.bucket, windows), agent, status)
            total[key] = total.get(key, 0) + n
    windows.clear()
    windows.advance(at)
    try:
        for (k, agent, status), n in total.items():
            windows.apply(agent, windows.slot(status), k, n)
    except ValueError as exc:
        raise HistoryCorrupt(f"history does not add up: {exc}") from None


def first_needed(windows: Windows, at: float) -> float:
    """The earliest cycle time ``rebuild(windows, ..., at)`` needs."""
    longest = windows.sizes[-1]
    return (math.floor((at - longest) / windows.bucket) + 1) * windows.bucket


def counts(
    cycles: Iterable[Cycle], start: float, end: float
) -> Iterator[tuple[float, str, str, int]]:
    """(bucket start time, agent, status, calls) for every bucket starting in [start, end),
    as last recorded (moves applied; after a reset, its recount replaces what came before),
    oldest bucket first."""
    total: dict[tuple[float, str, str], int] = {}
    for cycle in cycles:
        b = cycle.bucket
        if cycle.reset is not None:
            newer = (cycle.reset + 1) * b
            for key in [key for key in total if key[0] >= newer]:
                del total[key]
        for k, agent, status, n in cycle.cells:
            t = k * b
            if start <= t < end:
                key = (t, agent, status)
                total[key] = total.get(key, 0) + n
    for (t, agent, status), n in sorted(total.items()):
        if n:
            yield t, agent, status, n


def agent_series(
    cells: Iterable[tuple[float, str, str, int]], start: float, step: float, points: int
) -> dict[str, dict[str, list[int]]]:
    """Agent -> status -> calls per step (``points`` steps of ``step`` seconds from
    ``start``) from ``counts``' output: the per-agent series learned baselines start from."""
    out: dict[str, dict[str, list[int]]] = {}
    for t, agent, status, n in cells:
        i = math.floor((t - start) / step)
        if 0 <= i < points:
            out.setdefault(agent, {}).setdefault(status, [0] * points)[i] += n
    return out
