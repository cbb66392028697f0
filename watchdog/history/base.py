"""What the recorded history is made of, and the small protocol a state backend implements
to keep it (SQLite and PostgreSQL share one implementation: ``alerts/store/history.py``)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..ingest.tracker import SavedCall

AGENT = 0  # name kinds in the dictionary: agent ids ...
STATUS = 1  # ... and the statuses calls are counted under


class HistoryCorrupt(ValueError):
    """Recorded history that cannot be decoded or does not add up."""


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One poll cycle's changes to the windows, as recorded.

    ``data`` encodes the cycle's cells (agent code, bucket, status code, +n/-n) (``codec``).
    ``reset`` is None for a cycle that continues the one before; otherwise the windows were
    emptied first (a cold start, or after lost writes) and ``data`` holds their whole content,
    every bucket after ``reset`` (the newest bucket that had left the longest window)."""

    at: float  # when the cycle applied its calls (the windows were advanced to it)
    bucket: float  # bucket length in seconds
    kmin: int  # oldest and newest bucket in ``data`` (0, 0 when empty)
    kmax: int
    reset: int | None
    data: bytes


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What the daemon saves after a cycle, in one transaction: the cycles' history rows,
    new dictionary names, the tracked calls that changed, and the resume point."""

    rows: Sequence[HistoryRow]
    names: Sequence[tuple[int, int, str]]  # new (kind, code, name) entries
    upserts: Sequence[tuple[str, SavedCall]] = ()  # tracked calls added or changed, by id
    deletes: Sequence[str] = ()  # ids of calls no longer tracked
    replace_calls: bool = False  # forget every saved call first (a cold start)
    resume: str = ""  # the resume point (JSON, ``resume.ResumePoint``)
    prune_before: float = 0.0  # history rows older than this are deleted


@dataclass(frozen=True, slots=True)
class Saved:
    """The resume point and the tracked calls, as last saved."""

    resume: str
    calls: dict[str, SavedCall]


class HistoryStore(Protocol):
    """Where the history and the resume point live (the state store)."""

    def save_history(self, checkpoint: Checkpoint) -> None:
        """Write ``checkpoint`` in one transaction (all of it or nothing); raises on failure."""
        ...

    def history_names(self) -> list[tuple[int, int, str]]:
        """Every (kind, code, name) in the dictionary."""
        ...

    def history_rows(
        self, start: float, end: float, oldest_before: float | None = None
    ) -> Iterator[HistoryRow]:
        """Rows with ``start <= at <= end`` in the order they were written. With
        ``oldest_before``, rows whose oldest bucket starts at or after it may be left out,
        except resets."""
        ...

    def load_saved(self) -> Saved | None:
        """The last resume point and its tracked calls; None when nothing was saved."""
        ...

    def history_bounds(self) -> tuple[float, float] | None:
        """The first and last recorded cycle's time; None when nothing is recorded."""
        ...


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a warm restart resumes: the last saved cycle, the listing cursor, and what
    the windows held then (to check a rebuild), for this configuration (``signature``)."""

    at: float
    signature: str
    backfilled: bool
    per_agent: bool
    cursor: dict[str | None, float]
    checksum: list[int]

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": 1,
                "at": self.at,
                "signature": self.signature,
                "backfilled": self.backfilled,
                "per_agent": self.per_agent,
                "cursor": [[k, end] for k, end in self.cursor.items()],
                "checksum": self.checksum,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> ResumePoint:
        try:
            d = json.loads(text)
            point = cls(
                at=float(d["at"]),
                signature=str(d["signature"]),
                backfilled=bool(d["backfilled"]),
                per_agent=bool(d["per_agent"]),
                cursor={(None if k is None else str(k)): float(e) for k, e in d["cursor"]},
                checksum=[int(x) for x in d["checksum"]],
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise HistoryCorrupt(f"the saved resume point is unreadable: {exc!r}") from None
        if d.get("v") != 1 or not math.isfinite(point.at):
            raise HistoryCorrupt("the saved resume point has an unknown version")
        return point
