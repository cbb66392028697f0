"""The recorded history and the resume point in SQLite (schema version 3).

- ``history``: one row per poll cycle (``history.base.HistoryRow``); ``data`` is the
  cycle's cells in ``history.codec``'s compact encoding, so a cycle costs one row whatever
  the number of agents. Indexed by ``at``; pruned past ``history.retention`` as it goes.
- ``history_names``: the dictionary of agent ids and statuses the rows refer to by code.
- ``resume_calls``: the calls the tracker follows (pending, and settled within its re-read
  horizon), written as they change; the resume point is the ``meta`` key ``resume``.

Text that came from the API (ids, statuses) is stored as UTF-8 bytes with lone surrogates
passed through, so whatever a lenient JSON decoder let in round-trips unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from ...history.base import Checkpoint, HistoryRow, Saved
from ...ingest.tracker import SavedCall
from .base import Conn

MIGRATION = (
    "CREATE TABLE IF NOT EXISTS history (seq INTEGER PRIMARY KEY, at REAL NOT NULL, "
    "bucket REAL NOT NULL, kmin INTEGER NOT NULL, kmax INTEGER NOT NULL, reset INTEGER, "
    "data BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS history_at ON history (at, seq)",
    "CREATE TABLE IF NOT EXISTS history_names (kind INTEGER NOT NULL, code INTEGER NOT NULL, "
    "name BLOB NOT NULL, PRIMARY KEY (kind, code)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS resume_calls (id BLOB PRIMARY KEY, agent BLOB NOT NULL, "
    "status BLOB NOT NULL, created_at REAL NOT NULL, counted_as BLOB, bucket INTEGER, "
    "next_check REAL NOT NULL) WITHOUT ROWID",
)
RESUME_KEY = "resume"
_BATCH = 256  # history rows read per lock hold


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _s(raw: Any) -> str:
    return bytes(raw).decode("utf-8", "surrogatepass")


class HistoryTables:
    """The ``HistoryStore`` methods of both backends (which provide the connection, its
    lock and ``_tx``)."""

    _conn: Conn
    _lock: threading.Lock

    def _tx(self) -> Any: ...

    def save_history(self, checkpoint: Checkpoint) -> None:
        cp = checkpoint
        with self._tx() as c:
            c.executemany(
                "INSERT INTO history_names (kind, code, name) VALUES (?, ?, ?) "
                "ON CONFLICT (kind, code) DO NOTHING",
                [(kind, code, _b(name)) for kind, code, name in cp.names],
            )
            c.executemany(
                "INSERT INTO history (at, bucket, kmin, kmax, reset, data) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(r.at, r.bucket, r.kmin, r.kmax, r.reset, r.data) for r in cp.rows],
            )
            if cp.replace_calls:
                c.execute("DELETE FROM resume_calls")
            c.executemany("DELETE FROM resume_calls WHERE id = ?", [(_b(i),) for i in cp.deletes])
            c.executemany(
                "INSERT INTO resume_calls (id, agent, status, created_at, counted_as, bucket, "
                "next_check) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "agent = excluded.agent, status = excluded.status, "
                "created_at = excluded.created_at, counted_as = excluded.counted_as, "
                "bucket = excluded.bucket, next_check = excluded.next_check",
                [
                    (_b(i), _b(a), _b(st), created, None if cnt is None else _b(cnt), k, nxt)
                    for i, (a, st, created, cnt, k, nxt) in cp.upserts
                ],
            )
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (RESUME_KEY, cp.resume),
            )
            c.execute("DELETE FROM history WHERE at < ?", (cp.prune_before,))

    def history_names(self) -> list[tuple[int, int, str]]:
        with self._lock:
            rows = self._conn.execute("SELECT kind, code, name FROM history_names").fetchall()
        return [(int(kind), int(code), _s(name)) for kind, code, name in rows]

    def history_rows(
        self, start: float, end: float, oldest_before: float | None = None
    ) -> Iterator[HistoryRow]:
        # (at, seq) order is the order of writing: ``at`` never goes back within a run
        where = "(at, seq) > (?, ?) AND at <= ?"
        extra: tuple[float, ...] = ()
        if oldest_before is not None:
            where += " AND (kmin * bucket < ? OR reset IS NOT NULL)"
            extra = (oldest_before,)
        sql = (
            "SELECT seq, at, bucket, kmin, kmax, reset, data FROM history "
            f"WHERE {where} ORDER BY at, seq LIMIT {_BATCH}"
        )
        after: tuple[float, int] = (start, -1)
        while True:
            with self._lock:
                batch = self._conn.execute(sql, (*after, end, *extra)).fetchall()
            for seq, at, bucket, kmin, kmax, reset, data in batch:
                yield HistoryRow(at, bucket, kmin, kmax, reset, bytes(data))
                after = (at, seq)
            if len(batch) < _BATCH:
                return

    def load_saved(self) -> Saved | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM meta WHERE key = ?", (RESUME_KEY,)
            ).fetchone()
            if row is None:
                return None
            found = self._conn.execute(
                "SELECT id, agent, status, created_at, counted_as, bucket, next_check "
                "FROM resume_calls"
            ).fetchall()
        calls: dict[str, SavedCall] = {}
        for cid, agent, status, created, counted, bucket, nxt in found:
            calls[_s(cid)] = (
                _s(agent),
                _s(status),
                float(created),
                None if counted is None else _s(counted),
                None if bucket is None else int(bucket),
                float(nxt),
            )
        return Saved(str(row[0]), calls)

    def history_size(self) -> tuple[int, int]:
        """(rows, bytes of encoded cells) of the recorded history (for the benchmarks)."""
        with self._lock:
            n, size = self._conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM history"
            ).fetchone()
        return int(n), int(size)

    def history_bounds(self) -> tuple[float, float] | None:
        """The first and last recorded cycle's time; None when nothing is recorded."""
        with self._lock:
            lo, hi = self._conn.execute("SELECT MIN(at), MAX(at) FROM history").fetchone()
        return None if lo is None else (float(lo), float(hi))
