"""A standby's windows, kept warm from the shared recorded history (HA on PostgreSQL).

While another replica leads, a standby reads the history rows the leader records, every
check, and applies each new cycle to its own ``Windows`` exactly as the leader's cycle
changed the leader's (``replay.apply_cycle``). When it takes over, its warm start applies
only the rows recorded since its last read, checks the totals saved with the resume point,
and skips the full rebuild (``resume.warm_start``); anything that does not add up falls
back to the full rebuild, so following can make a takeover faster, never wrong.

The first read rebuilds at the last recorded cycle (``HistoryReader.rebuild``); then each
read asks only for rows after the last one applied. A reset row (a cold start, or a
leader that lost writes) empties the windows first, as the leader's did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..windows import Windows
from . import replay
from .read import HistoryReader


@dataclass
class Followed:
    """``windows`` equal the recording leader's after its cycle at ``at`` (None: nothing
    read yet). ``rows``: cycles applied one by one since the first read."""

    windows: Windows
    at: float | None = None
    rows: int = 0

    def reset(self) -> None:
        """Forget what was read (after a failed read: the next read rebuilds)."""
        self.windows.clear()
        self.at = None


def catch_up(reader: HistoryReader, followed: Followed, end: float = math.inf) -> int:
    """Apply to ``followed.windows`` the recorded cycles after ``followed.at`` up to
    ``end``; the first time, rebuild at the last recorded cycle instead. Returns the rows
    applied one by one (0 for a rebuild or when nothing is new). Raises (HistoryCorrupt, a
    store error) with the windows half-applied: call ``followed.reset()`` then."""
    if followed.at is None:
        bounds = reader.store.history_bounds()
        if bounds is None:
            return 0
        last = min(bounds[1], end)
        reader.rebuild(followed.windows, last)
        followed.at = last
        return 0
    applied = 0
    for cycle in reader.cycles(math.nextafter(followed.at, math.inf), end):
        replay.apply_cycle(followed.windows, cycle)
        followed.at = cycle.at
        applied += 1
    followed.rows += applied
    return applied
