"""The garbage collector's settings while the daemon runs.

At 10,000 agents a poll cycle allocates some 100,000 container objects (parsed pages,
tracked calls, alert states, snapshots). With CPython's default thresholds (700, 10, 10)
that is about 150 young collections a cycle and a full collection about once a cycle, each
traversing every long-lived object (windows, tracker, agent directory: ~180,000 after
start-up): 40-100 ms in whichever thread allocates, the poll thread's alert step or a
/metrics render (``python -m bench --only alerting`` measures both). So while ``run`` runs:

- the young generation's threshold is ``YOUNG`` (fewer collections, and objects that die
  within a cycle die before one: fewer reach the old generation, so full collections
  become rare; a young collection costs a few milliseconds);
- once start-up is done (the backfill), what it built is frozen (``gc.freeze``: never
  traversed by a collection again; freed as usual when nothing refers to it).

``stop`` puts both back (an in-process caller, e.g. a test, gets its collector as it was).
"""

from __future__ import annotations

import gc

YOUNG = 10_000


class GcPolicy:
    def __init__(self) -> None:
        self._previous: tuple[int, ...] | None = None
        self.frozen = False

    def start(self) -> None:
        """At the daemon's start: the young generation's threshold raised."""
        if self._previous is None:
            self._previous = gc.get_threshold()
            gc.set_threshold(YOUNG, *self._previous[1:])

    def started(self) -> None:
        """Start-up is done: collect once, then freeze everything that survived it."""
        if not self.frozen:
            gc.collect()
            gc.freeze()
            self.frozen = True

    def stop(self) -> None:
        """The collector as it was before ``start``."""
        if self.frozen:
            gc.unfreeze()
            self.frozen = False
        if self._previous is not None:
            gc.set_threshold(*self._previous)
            self._previous = None
