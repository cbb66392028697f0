"""The recorded history as the backtest, a warm restart and learned baselines read it."""

from __future__ import annotations

import math
from collections.abc import Iterator

from ..windows import Windows
from . import replay
from .base import HistoryCorrupt, HistoryRow, HistoryStore
from .replay import Cycle


class HistoryReader:
    """Reads the history kept in a ``HistoryStore`` (the dictionary is loaded once, and
    again when a newer row names a code it has not seen)."""

    def __init__(self, store: HistoryStore) -> None:
        self.store = store
        self.names: dict[tuple[int, int], str] = {}
        self.reload_names()

    def reload_names(self) -> None:
        self.names = {(kind, code): name for kind, code, name in self.store.history_names()}

    def _decode(self, row: HistoryRow) -> Cycle:
        try:
            return replay.decode_row(row, self.names)
        except HistoryCorrupt:
            self.reload_names()  # written since the dictionary was read?
            return replay.decode_row(row, self.names)

    def cycles(
        self, start: float, end: float, oldest_before: float | None = None
    ) -> Iterator[Cycle]:
        """Recorded cycles with ``start <= at <= end``, in order (HistoryCorrupt on a row
        that cannot be decoded). With ``oldest_before``, cycles that changed only buckets
        starting at or after it may be left out (never a reset)."""
        for row in self.store.history_rows(start, end, oldest_before):
            yield self._decode(row)

    def counts(self, start: float, end: float) -> list[tuple[float, str, str, int]]:
        """(bucket start time, agent, status, calls) for the buckets starting in
        [start, end), as finally recorded. A cycle records buckets up to a day old at most
        (the longest window), so cycles up to a day after ``end`` are read too."""
        cycles = self.cycles(start, end + 86400.0 + 3600.0, oldest_before=end)
        return list(replay.counts(cycles, start, end))

    def agent_series(
        self, start: float, end: float, step: float
    ) -> dict[str, dict[str, list[int]]]:
        """Agent -> status -> settled calls per ``step`` seconds over [start, end)."""
        points = max(1, math.ceil((end - start) / step))
        return replay.agent_series(self.counts(start, end), start, step, points)

    def rebuild(self, windows: Windows, at: float) -> None:
        """Make ``windows`` what the recording daemon's were after its last cycle at or
        before ``at``, advanced to ``at`` (exact at a recorded cycle's time)."""
        rows = list(self.store.history_rows(replay.first_needed(windows, at), at))
        # rows before the last reset do not count (and a damaged one there does no harm)
        start = max((i for i, r in enumerate(rows) if r.reset is not None), default=0)
        replay.rebuild(windows, (self._decode(r) for r in rows[start:]), at)

    def replay(self, windows: Windows, start: float, end: float) -> Iterator[float]:
        """Rebuild ``windows`` at ``start``, then apply each recorded cycle after it up to
        ``end``, yielding its time: after each yield the windows equal the live daemon's
        after that cycle (the backtest evaluates its rules there)."""
        self.rebuild(windows, start)
        for cycle in self.cycles(math.nextafter(start, math.inf), end):
            replay.apply_cycle(windows, cycle)
            yield cycle.at
