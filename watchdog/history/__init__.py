"""Recorded history: the settled-call counts the windows hold, per agent, status and bucket,
cycle by cycle, kept in the state store for ``history.retention``; and warm restarts.

- ``recorder``: after each cycle, the windows' journal becomes one compact row (``codec``),
  saved with the tracker's changes and the resume point in one transaction;
- ``read`` / ``replay``: cycles back, per-bucket counts, per-agent series, and ``Windows``
  rebuilt at any time (exactly, at a recorded cycle: the backtest and warm restarts);
- ``resume``: start-up, warm when it can be, cold (the backfill) with the reason when not;
- ``follow``: a standby's windows kept current from the leader's rows (HA);
- ``base``: the values and the ``HistoryStore`` protocol a state backend implements.
"""

from .base import (
    AGENT,
    STATUS,
    Checkpoint,
    HistoryCorrupt,
    HistoryRow,
    HistoryStore,
    ResumePoint,
    Saved,
)
from .follow import Followed, catch_up
from .read import HistoryReader
from .recorder import Recorder
from .replay import Cycle
from .resume import Resumed, start_history

__all__ = [
    "AGENT",
    "STATUS",
    "Checkpoint",
    "Cycle",
    "Followed",
    "HistoryCorrupt",
    "HistoryReader",
    "HistoryRow",
    "HistoryStore",
    "Recorder",
    "ResumePoint",
    "Resumed",
    "Saved",
    "catch_up",
    "start_history",
]
