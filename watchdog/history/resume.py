"""Start-up: resume from the saved state (a warm restart), or say why not and backfill.

A warm restart rebuilds the windows from the recorded history up to the last saved cycle,
checks them against the totals saved with it, and restores the tracker (calls still pending,
settled calls within the re-read horizon, the listing cursor). The first poll then lists
only the gap: its head reaches back to the last good listing, as after an outage.

Anything else is a cold start (the backfill), logged with its reason: nothing saved, a
configuration that changed what is counted, a run that had not finished its backfill, a gap
longer than the backfill span, or history that is unreadable or does not add up (loud).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..ingest.tracker import SavedCall, Tracker
from ..windows import Windows
from .base import HistoryCorrupt, HistoryStore, ResumePoint
from .follow import Followed, catch_up
from .read import HistoryReader
from .recorder import Recorder, signature

log = logging.getLogger("watchdog.history")


@dataclass(frozen=True, slots=True)
class Resumed:
    point: ResumePoint
    calls: dict[str, SavedCall] = field(repr=False)
    gap: float = 0.0  # seconds since the last saved cycle


def warm_start(
    store: HistoryStore,
    reader: HistoryReader,
    windows: Windows,
    tracker: Tracker,
    now: float,
    followed: Followed | None = None,
) -> Resumed | None:
    """Rebuild ``windows`` and restore ``tracker`` from the saved state, or leave both as
    new and return None (with a log line saying why). ``followed``: a standby's windows
    (``windows`` itself), current up to ``followed.at``: only the cycles since then are
    applied, and the full rebuild runs only when they do not add up."""
    try:
        saved = store.load_saved()
        if saved is None:
            log.info("no saved state to resume from: cold start (backfill)")
            return None
        point = ResumePoint.from_json(saved.resume)
    except Exception as exc:
        log.error(
            "WARM RESTART IMPOSSIBLE: the saved state is unreadable (%s); cold start (backfill)",
            exc,
        )
        return None
    gap = now - point.at
    span = tracker.cfg.longest_window + tracker.cfg.max_call_duration
    why = None
    if point.signature != signature(windows, tracker):
        why = "windows, statuses, outcomes or poll.agents changed since the state was saved"
    elif not point.backfilled:
        why = "the last run had not finished its backfill"
    elif gap > span:
        why = f"the last saved cycle is {gap:.0f}s old, older than the backfill span"
    elif gap < 0:
        why = "the last saved cycle is in the future (clock change?)"
    if why is not None:
        log.warning("not resuming: %s; cold start (backfill)", why)
        return None
    try:
        if not _caught_up(reader, windows, point, followed):
            reader.rebuild(windows, point.at)
        if windows.checksum() != point.checksum:
            raise HistoryCorrupt("the rebuilt windows do not match the totals saved with them")
    except Exception as exc:
        windows.clear()
        log.error(
            "HISTORY UNUSABLE: %s. Not resuming: cold start (backfill); the recorded history "
            "starts again from here",
            exc,
        )
        return None
    tracker.restore(saved.calls, point.cursor, at=point.at, per_agent=point.per_agent)
    log.info(
        "warm restart: windows rebuilt from the recorded history; listing the %.0fs since the "
        "last saved cycle",
        gap,
        extra={
            "gap_s": round(gap, 1),
            "tracked": len(saved.calls),
            "pending": tracker.pending_count,
        },
    )
    return Resumed(point, saved.calls, gap)


def _caught_up(
    reader: HistoryReader, windows: Windows, point: ResumePoint, followed: Followed | None
) -> bool:
    """True when a standby's followed windows, brought up to the resume point, hold what
    the leader's did there (then no rebuild is needed)."""
    if followed is None or followed.at is None or followed.at > point.at:
        return False
    assert followed.windows is windows
    try:
        applied = catch_up(reader, followed, point.at)
    except Exception as exc:
        log.warning("the followed history does not apply (%s): rebuilding the windows", exc)
        return False
    if followed.at != point.at or windows.checksum() != point.checksum:
        log.warning("the followed windows do not match the resume point: rebuilding them")
        return False
    log.info(
        "takeover: the followed windows needed %d recorded cycle(s) since the last read",
        applied,
        extra={"applied": applied, "followed_rows": followed.rows},
    )
    return True


def start_history(
    store: HistoryStore,
    windows: Windows,
    tracker: Tracker,
    *,
    retention: float,
    warm: bool,
    now: float,
    followed: Followed | None = None,
) -> tuple[Recorder, Resumed | None]:
    """The recorder for a new daemon, after a warm start when ``warm`` and possible.
    ``followed``: ``windows`` are a standby's, kept current from the history (``follow``)."""
    reader = HistoryReader(store)
    resumed = None
    if warm:
        resumed = warm_start(store, reader, windows, tracker, now, followed)
    else:
        log.info("history.warm_restart is off: cold start (backfill)")
    if resumed is None:
        windows.clear()  # a cold start begins empty (a standby's windows held the history)
    names = [(kind, code, name) for (kind, code), name in reader.names.items()]
    recorder = Recorder(
        store,
        windows,
        tracker,
        retention=retention,
        names=names,
        saved_calls=None if resumed is None else resumed.calls,
    )
    return recorder, resumed
