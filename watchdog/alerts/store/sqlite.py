"""The state store on SQLite from the standard library at ``state.path``: the embedded
backend, and the default.

One connection, guarded by a lock, in WAL mode so the CLI (``silence add``, ``alerts``) can
use the same file while the daemon runs. The queries are ``sql.SqlStore``'s, the schema and
its migrations ``schema.py``'s (both shared with ``postgres.py``).

Opening:
- a missing or read-only directory, or a file another process keeps locked, raises
  ``StateError`` with a one-line message for the CLI to print;
- a corrupt or unreadable file is moved aside (``<name>.corrupt-<UTC time>``) with a loud
  log line, and a fresh store is started.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

from .base import StateError
from .files import check_directory, move_aside, take_lock
from .schema import BASE_SCHEMA, MIGRATIONS, SCHEMA_VERSION
from .sql import KEEP_DONE, SqlStore

__all__ = ["KEEP_DONE", "SCHEMA_VERSION", "Store"]


class Store(SqlStore):
    """SQLite-backed alert state (and, through ``HistoryTables``, the recorded history).
    Thread-safe; every write is one transaction."""

    _conn: sqlite3.Connection

    def __init__(
        self,
        path: Path | str,
        now: float | None = None,
        *,
        exclusive: bool = False,
        repair: bool = True,
    ) -> None:
        """``exclusive``: hold ``<path>.lock`` for the life of the store, so that a second
        daemon on the same file refuses to start (the CLI's short-lived commands share).
        ``repair=False`` (the CLI): a damaged file is an error, never moved aside; only the
        daemon decides to start afresh."""
        self.path = Path(path)
        self.moved_aside: Path | None = None
        self.schema_found = SCHEMA_VERSION  # the version the file had when opened
        self._lock = threading.Lock()
        self._lockfile: int | None = None
        when = time.time() if now is None else now
        check_directory(self.path)
        if exclusive:
            self._lockfile = take_lock(self.path)
        if not repair and self.path.exists() and not os.access(self.path, os.R_OK | os.W_OK):
            raise StateError(f"state.path: {self.path} is not readable and writable")
        if self.path.exists() and not os.access(self.path, os.R_OK | os.W_OK):
            self.moved_aside = move_aside(self.path, "not readable and writable", when)
        try:
            self._conn = self._open()
        except sqlite3.OperationalError as exc:
            raise self._operational(exc) from None
        except sqlite3.DatabaseError as exc:  # not a database, malformed image
            if not repair:
                raise StateError(
                    f"state.path: {self.path} is damaged ({exc}); left as it is (the daemon "
                    "moves it aside when it starts)"
                ) from None
            self.moved_aside = move_aside(self.path, str(exc), when)
            try:
                self._conn = self._open()
            except sqlite3.Error as exc2:
                raise StateError(f"state.path: cannot create {self.path}: {exc2}") from None

    def _operational(self, exc: sqlite3.OperationalError) -> StateError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return StateError(
                f"state.path: {self.path} is locked by another process (is another watchdog "
                "running with the same state file?)"
            )
        if "readonly" in text or "read-only" in text:
            return StateError(f"state.path: {self.path} is read-only")
        return StateError(f"state.path: cannot open {self.path}: {text}")

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(self.path), timeout=5.0, check_same_thread=False, isolation_level=None
        )
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            row = conn.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {row[0] if row else '?'}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(BASE_SCHEMA)
            found = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = 1 if found is None else int(found[0])
            self.schema_found = version
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"state.path: {self.path} was written by a newer dialnexa-watchdog "
                    f"(schema {version}, this one knows {SCHEMA_VERSION}); upgrade, or use "
                    "another state file"
                )
            conn.execute("BEGIN IMMEDIATE")
            try:
                for v in range(version + 1, SCHEMA_VERSION + 1):
                    for sql in MIGRATIONS[v]:
                        conn.execute(sql)
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(SCHEMA_VERSION),),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except BaseException:
            conn.close()
            raise
        return conn

    @property
    def where(self) -> str:
        return str(self.path)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            if self._lockfile is not None:
                os.close(self._lockfile)  # releases the flock
                self._lockfile = None

    def _tx(self) -> _Tx:
        return _Tx(self._conn, self._lock)


class _Tx:
    """``with store._tx() as conn``: the lock plus BEGIN IMMEDIATE ... COMMIT/ROLLBACK."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.Lock) -> None:
        self._conn = conn
        self._lock = lock

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        return self._conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self._conn.execute("COMMIT")
            else:
                self._conn.execute("ROLLBACK")
        finally:
            self._lock.release()
