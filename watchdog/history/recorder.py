"""Recording: after each poll cycle, the windows' journal becomes one history row, and the
tracker's changed calls and the resume point are saved with it, in one transaction.

``record`` runs in the poll thread after the cycle's ``tracker.apply``, outside the windows
lock (only the poll thread changes the windows and the tracker, so nothing else needs to
wait: a scrape of /metrics never waits for the disk). It drains the journal (``take``) and
writes what changed (``save``): one row per cycle, the tracked calls that were added,
changed or forgotten, the resume point, and the pruning of rows past retention.

A failed write loses nothing at first: the cycles are kept and written with the next one.
Past ``MAX_UNSAVED`` cycles they are dropped, and the next row is a *reset*: the windows'
whole content, so that the history is again exactly what the windows hold.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ..ingest.tracker import SavedCall, Tracker
from ..logs import Throttle
from ..windows import Windows
from . import codec
from .base import AGENT, STATUS, Checkpoint, HistoryRow, HistoryStore, ResumePoint
from .replay import Cycle

log = logging.getLogger("watchdog.history")

MAX_UNSAVED = 120  # cycles kept in memory while the state store cannot be written


def signature(windows: Windows, tracker: Tracker) -> str:
    """What a saved state depends on: a change of any of it means a cold start."""
    c = tracker.classes
    return json.dumps(
        [
            windows.bucket,
            windows.sizes,
            list(windows.statuses),
            sorted(c.pending),
            sorted((k, list(v)) for k, v in c.outcomes.items()),
            None if tracker.cfg.agents is None else sorted(tracker.cfg.agents),
        ],
        separators=(",", ":"),
    )


@dataclass(frozen=True, slots=True)
class _Taken:
    at: float
    reset: int | None
    cells: list[tuple[int, str, int, int]]  # (bucket, agent, slot, n)
    checksum: list[int]


class Recorder:
    """The daemon's cycle hook that keeps the history and the resume point."""

    def __init__(
        self,
        store: HistoryStore,
        windows: Windows,
        tracker: Tracker,
        *,
        retention: float,
        names: Iterable[tuple[int, int, str]] = (),
        saved_calls: Mapping[str, SavedCall] | None = None,
        now: Callable[[], float] | None = None,
    ) -> None:
        """``saved_calls``: the tracked calls a warm restart resumed from (the rows continue
        the history); None: a cold start (the first row is a reset)."""
        self.store = store
        self.windows = windows
        self.tracker = tracker
        self.retention = retention
        self.signature = signature(windows, tracker)
        self._codes: dict[tuple[int, str], int] = {}
        self._next = {AGENT: 1, STATUS: 1}
        for kind, code, name in names:
            self._codes[(kind, name)] = code
            self._next[kind] = max(self._next.get(kind, 1), code + 1)
        self._new_names: list[tuple[int, int, str]] = []
        self._saved_ids = set(saved_calls or ())  # calls the tracker has exported
        self._upserts: dict[str, SavedCall] = {}  # exported, not yet written
        self._deletes: set[str] = set()
        self._replace = saved_calls is None
        self._snapshot = saved_calls is None
        self._taken: list[_Taken] = []
        self.saved_at: float | None = None  # the last cycle written
        self.failures = 0  # consecutive failed writes
        self._throttle = Throttle(log, 300.0) if now is None else Throttle(log, 300.0, now=now)
        # told every cycle as taken (the sequential detector's feed: alerts/evidence.py)
        self.listener: Callable[[Cycle], None] | None = None
        windows.start_journal()

    def record(self, now: float) -> bool:
        """The daemon's hook after each cycle's apply at ``now``: take, then save."""
        self.take(now)
        return self.save()

    def take(self, now: float) -> None:
        """Drain the windows' journal for the cycle that just applied its calls at ``now``
        (recorded at the windows' time: ``now``, unless the clock went back)."""
        w = self.windows
        now = max(now, w.now)
        if self._snapshot:
            w.drain_journal()
            cells, reset = w.content(), w.horizon
            self._snapshot = False
        else:
            cells, reset = w.drain_journal(), None
        self._taken.append(_Taken(now, reset, cells, w.checksum()))
        if self.listener is not None:
            statuses = w.statuses
            named = [(k, agent, statuses[slot], n) for k, agent, slot, n in cells]
            self.listener(Cycle(now, w.bucket, reset, named))

    def save(self) -> bool:
        """Write what the cycles since the last save changed; never raises. False when the
        state store refused (the cycles are kept and retried with the next save)."""
        if not self._taken:
            return True
        try:
            upserts, gone = self.tracker.export_changes(self._saved_ids)
            for cid in gone:
                self._upserts.pop(cid, None)
            self._deletes = (self._deletes | gone) - upserts.keys()
            self._upserts.update(upserts)
            self.store.save_history(self._checkpoint())
        except Exception as exc:
            self._failed(exc)
            return False
        self.saved_at = self._taken[-1].at
        self._taken.clear()
        self._new_names.clear()
        self._upserts.clear()
        self._deletes.clear()
        self._replace = False
        if self.failures:
            log.warning(
                "history: the state store takes writes again", extra={"failed": self.failures}
            )
        self.failures = 0
        return True

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        reason = f"{type(exc).__name__}: {exc}"[:200]
        if len(self._taken) > MAX_UNSAVED:
            self._taken.clear()
            self._snapshot = True  # the next row holds the windows' whole content
            self._throttle.warning(
                "history:dropped",
                "history: could not write %d cycles to the state store; dropped them, the "
                "next write records the windows' whole content (%s)",
                MAX_UNSAVED,
                reason,
            )
            return
        self._throttle.warning(
            "history:failed",
            "history: cannot write to the state store; keeping %d cycle(s) in memory and "
            "retrying after the next cycle (%s)",
            len(self._taken),
            reason,
        )

    def _code(self, kind: int, name: str) -> int:
        code = self._codes.get((kind, name))
        if code is None:
            code = self._codes[(kind, name)] = self._next[kind]
            self._next[kind] = code + 1
            self._new_names.append((kind, code, name))
        return code

    def _row(self, taken: _Taken) -> HistoryRow:
        statuses = self.windows.statuses
        status_codes = [self._code(STATUS, s) for s in statuses]
        agent_codes: dict[str, int] = {}
        cells = []
        for k, agent, slot, n in taken.cells:
            a = agent_codes.get(agent)
            if a is None:
                a = agent_codes[agent] = self._code(AGENT, agent)
            cells.append((a, k, status_codes[slot], n))
        kmin, kmax, data = codec.encode(cells)
        return HistoryRow(taken.at, self.windows.bucket, kmin, kmax, taken.reset, data)

    def _checkpoint(self) -> Checkpoint:
        rows = [self._row(t) for t in self._taken]
        last = self._taken[-1]
        point = ResumePoint(
            at=last.at,
            signature=self.signature,
            backfilled=self.tracker.backfilled,
            per_agent=self.tracker.per_agent,
            cursor=self.tracker.cursor(),
            checksum=last.checksum,
        )
        return Checkpoint(
            rows=rows,
            names=list(self._new_names),
            upserts=list(self._upserts.items()),
            deletes=list(self._deletes),
            replace_calls=self._replace,
            resume=point.to_json(),
            prune_before=last.at - self.retention,
        )
