"""The state store: SQLite from the standard library at ``state.path``.

Holds alert states, incidents (with the Slack channel and ``ts`` of their main message, and
who acknowledged them), the outbox (notices are written here before anything is sent),
silences (with who made them), the Slack actions applied (``actions.py``), and
(``history.py``) the recorded history and the state a warm restart resumes from. One connection,
guarded by a lock, in WAL mode so the CLI (``silence add``, ``alerts``) can use the same file
while the daemon runs.

Opening:
- a missing or read-only directory, or a file another process keeps locked, raises
  ``StateError`` with a one-line message for the CLI to print;
- a corrupt or unreadable file is moved aside (``<name>.corrupt-<UTC time>``) with a loud
  log line, and a fresh store is started.

Longer than ~400 lines on purpose: the schema, its migrations and one SQL statement per
operation of the store are kept in one place, so that the tables and every query that
touches them are read side by side.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ...notify import MessageRef
from ..incidents import Incident
from ..state import AlertState, Silence, State
from .actions import (
    ACTIONS_MIGRATION,
    SILENCE_COLUMNS,
    apply_action,
    end_until_resolved,
    insert_silence,
)
from .base import ActionChanges, Changes, NewSilence, OutboxEntry, StateError
from .codec import (
    members_from_json,
    members_to_json,
    notice_from_json,
    notice_to_json,
    state_from_json,
    state_to_json,
)
from .files import check_directory, move_aside, take_lock
from .history import MIGRATION as HISTORY_MIGRATION
from .history import HistoryTables

log = logging.getLogger("watchdog.store")

SCHEMA_VERSION = 4
# Applied in order to bring an older file up to SCHEMA_VERSION (the base schema is version 1).
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    2: ("ALTER TABLE outbox ADD COLUMN uncertain INTEGER NOT NULL DEFAULT 0",),
    3: HISTORY_MIGRATION,  # recorded history and the warm-restart state (history.py)
    4: ACTIONS_MIGRATION,  # Slack actions: acks, who silenced, until-resolved silences
}
KEEP_DONE = 7 * 86400.0  # delivered/failed outbox rows and closed incidents are kept this long

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    rule TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    state TEXT NOT NULL,
    data TEXT NOT NULL,
    incident_id TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (rule, agent_id)
);
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    grouped INTEGER NOT NULL,
    opened_at REAL NOT NULL,
    closed_at REAL,
    last_notified_at REAL,
    channel TEXT,
    ts TEXT,
    members TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL,
    op TEXT NOT NULL,
    kind TEXT NOT NULL,
    notice TEXT NOT NULL,
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT,
    done_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_by_incident ON outbox (status, incident_id, id);
CREATE TABLE IF NOT EXISTS silences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id TEXT NOT NULL,
    rule TEXT,
    starts_at REAL NOT NULL,
    ends_at REAL NOT NULL,
    reason TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""


class Store(HistoryTables):
    """SQLite-backed alert state (and, through ``HistoryTables``, the recorded history).
    Thread-safe; every write is one transaction."""

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
            conn.executescript(_SCHEMA)
            found = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = 1 if found is None else int(found[0])
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"state.path: {self.path} was written by a newer dialnexa-watchdog "
                    f"(schema {version}, this one knows {SCHEMA_VERSION}); upgrade, or use "
                    "another state file"
                )
            conn.execute("BEGIN IMMEDIATE")
            try:
                for v in range(version + 1, SCHEMA_VERSION + 1):
                    for sql in _MIGRATIONS[v]:
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

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            if self._lockfile is not None:
                os.close(self._lockfile)  # releases the flock
                self._lockfile = None

    def _tx(self) -> _Tx:
        return _Tx(self._conn, self._lock)

    # ---- alerts and incidents ----------------------------------------------------------

    def load_states(self) -> tuple[dict[tuple[str, str], AlertState], dict[tuple[str, str], str]]:
        """Stored alert states, and which incident each belongs to."""
        states: dict[tuple[str, str], AlertState] = {}
        incident_of: dict[tuple[str, str], str] = {}
        with self._lock:
            rows = self._conn.execute("SELECT rule, agent_id, data, incident_id FROM alerts")
            for rule, agent, data, incident in rows.fetchall():
                try:
                    states[(rule, agent)] = state_from_json(data)
                except (ValueError, TypeError, KeyError) as exc:
                    log.warning(
                        "state store: skipping unreadable alert %s/%s: %s", rule, agent, exc
                    )
                    continue
                if incident:
                    incident_of[(rule, agent)] = incident
        return states, incident_of

    def load_incidents(
        self, open_only: bool = True, only: str | None = None
    ) -> dict[str, Incident]:
        sql = (
            "SELECT id, rule, grouped, opened_at, closed_at, last_notified_at, members, "
            "acked_by, acked_at FROM incidents"
        )
        where, args = [], []
        if open_only:
            where.append("closed_at IS NULL")
        if only is not None:
            where.append("id = ?")
            args.append(only)
        if where:
            sql += " WHERE " + " AND ".join(where)
        out: dict[str, Incident] = {}
        with self._lock:
            for row in self._conn.execute(sql, args).fetchall():
                iid, rule, grouped, opened, closed, notified, members, by, at = row
                out[iid] = Incident(
                    id=iid,
                    rule=rule,
                    group=bool(grouped),
                    opened_at=opened,
                    members=members_from_json(members),
                    last_notified_at=notified,
                    closed_at=closed,
                    acked_by=by,
                    acked_at=at,
                )
        return out

    def message_ref(self, incident_id: str) -> MessageRef | None:
        """Where the incident's main message was posted (bot-token mode), if it was."""
        with self._lock:
            row = self._conn.execute(
                "SELECT channel, ts FROM incidents WHERE id = ?", (incident_id,)
            ).fetchone()
        if row is None or not row[0] or not row[1]:
            return None
        return MessageRef(row[0], row[1])

    def commit(self, now: float, changes: Changes) -> None:
        """Write one evaluation's changed states (with their incident), removed states,
        changed incidents and new outbox notices in one transaction. Its cost follows the
        changes, not the number of alerts."""
        with self._tx() as c:
            c.executemany(
                "INSERT INTO alerts (rule, agent_id, state, data, incident_id, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (rule, agent_id) DO UPDATE SET "
                "state = excluded.state, data = excluded.data, "
                "incident_id = excluded.incident_id, updated_at = excluded.updated_at",
                [
                    (s.rule, s.agent_id, s.state.value, state_to_json(s), i, now)
                    for s, i in changes.states
                ],
            )
            c.executemany(
                "DELETE FROM alerts WHERE rule = ? AND agent_id = ?", list(changes.deleted)
            )
            c.executemany(
                "INSERT INTO incidents (id, rule, grouped, opened_at, closed_at, "
                "last_notified_at, members, acked_by, acked_at) VALUES (?, ?, ?, ?, ?, ?, ?, "
                "?, ?) ON CONFLICT (id) DO UPDATE SET closed_at = excluded.closed_at, "
                "last_notified_at = excluded.last_notified_at, members = excluded.members, "
                "acked_by = COALESCE(incidents.acked_by, excluded.acked_by), "
                "acked_at = COALESCE(incidents.acked_at, excluded.acked_at)",
                [
                    (
                        i.id,
                        i.rule,
                        int(i.group),
                        i.opened_at,
                        i.closed_at,
                        i.last_notified_at,
                        members_to_json(i.members),
                        i.acked_by,
                        i.acked_at,
                    )
                    for i in changes.incidents
                ],
            )
            ended = [
                s.key for s, _ in changes.states if s.state in (State.RESOLVED, State.INACTIVE)
            ]
            end_until_resolved(c, [*ended, *changes.deleted], now)
            c.executemany(
                "INSERT INTO outbox (incident_id, op, kind, notice, created_at, next_attempt_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(n.incident, n.op, n.kind, notice_to_json(n), now, now) for n in changes.notices],
            )

    # ---- meta: small values that must survive a restart ---------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # ---- outbox ------------------------------------------------------------------------

    def due(self, now: float, limit: int = 20) -> list[OutboxEntry]:
        """Pending notices whose time has come, at most one per incident (its oldest). A
        parked notice (see ``park``) holds back the notices after it."""
        sql = """
            SELECT o.id, o.incident_id, o.notice, o.attempts, o.created_at, i.channel, i.ts,
                   EXISTS (SELECT 1 FROM outbox f WHERE f.incident_id = o.incident_id
                           AND f.status = 'failed' AND f.op = 'post' AND f.kind = 'main'),
                   o.uncertain
            FROM outbox o LEFT JOIN incidents i ON i.id = o.incident_id
            WHERE o.status = 'pending' AND o.next_attempt_at <= ?
              AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.incident_id = o.incident_id
                              AND p.status IN ('pending', 'parked') AND p.id < o.id)
            ORDER BY o.id LIMIT ?
        """
        out: list[OutboxEntry] = []
        with self._lock:
            rows = self._conn.execute(sql, (now, limit)).fetchall()
        for oid, iid, notice, attempts, created, channel, ts, post_failed, uncertain in rows:
            try:
                n = notice_from_json(notice)
            except (ValueError, TypeError, KeyError) as exc:
                self.mark_failed(oid, now, f"unreadable notice: {exc}")
                continue
            ref = MessageRef(channel, ts) if channel and ts else None
            out.append(
                OutboxEntry(oid, iid, n, attempts, created, ref, bool(post_failed), bool(uncertain))
            )
        return out

    def mark_sent(self, entry_id: int, now: float, ref: MessageRef | None = None) -> None:
        with self._tx() as c:
            c.execute(
                "UPDATE outbox SET status = 'sent', done_at = ?, attempts = attempts + 1 "
                "WHERE id = ?",
                (now, entry_id),
            )
            if ref is not None:
                c.execute(
                    "UPDATE incidents SET channel = ?, ts = ? WHERE id = "
                    "(SELECT incident_id FROM outbox WHERE id = ?)",
                    (ref.channel, ref.ts, entry_id),
                )

    def mark_failed(self, entry_id: int, now: float, error: str) -> None:
        with self._tx() as c:
            c.execute(
                "UPDATE outbox SET status = 'failed', done_at = ?, last_error = ?, "
                "attempts = attempts + 1 WHERE id = ?",
                (now, error, entry_id),
            )

    def retry_later(self, entry_id: int, at: float, error: str, *, uncertain: bool = False) -> None:
        """Try again at ``at``. ``uncertain``: this attempt may have been delivered (a
        timeout after the request was sent), so look before sending again."""
        with self._tx() as c:
            c.execute(
                "UPDATE outbox SET next_attempt_at = ?, last_error = ?, attempts = attempts + 1, "
                "uncertain = MAX(uncertain, ?) WHERE id = ?",
                (at, error, int(uncertain), entry_id),
            )

    def park(self, entry_id: int, now: float, error: str) -> None:
        """A permanent failure (bad token, unknown channel) that a fix of the config can
        cure: keep the notice, and the incident's later notices behind it, until
        ``unpark``."""
        with self._tx() as c:
            c.execute(
                "UPDATE outbox SET status = 'parked', last_error = ?, attempts = attempts + 1, "
                "done_at = ? WHERE id = ?",
                (error, now, entry_id),
            )

    def unpark(self, now: float) -> int:
        """Make every parked notice pending again; returns how many."""
        with self._tx() as c:
            cur = c.execute(
                "UPDATE outbox SET status = 'pending', next_attempt_at = ?, done_at = NULL "
                "WHERE status = 'parked'",
                (now,),
            )
            return int(cur.rowcount)

    def parked_count(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT COUNT(*) FROM outbox WHERE status = 'parked'")
            return int(row.fetchone()[0])

    def pending_count(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT COUNT(*) FROM outbox WHERE status = 'pending'")
            return int(row.fetchone()[0])

    def outbox(self, status: str | None = None) -> list[tuple[int, str, str, str, str]]:
        """(id, incident_id, op, kind, status) rows, oldest first (for tests and the CLI)."""
        sql = "SELECT id, incident_id, op, kind, status FROM outbox"
        args: tuple[str, ...] = ()
        if status is not None:
            sql += " WHERE status = ?"
            args = (status,)
        with self._lock:
            return [tuple(r) for r in self._conn.execute(sql + " ORDER BY id", args).fetchall()]

    def purge(self, now: float, keep: float = KEEP_DONE) -> None:
        """Forget delivered/failed notices and closed incidents older than ``keep``."""
        cutoff = now - keep
        with self._tx() as c:
            c.execute("DELETE FROM outbox WHERE status != 'pending' AND done_at < ?", (cutoff,))
            c.execute(
                "DELETE FROM incidents WHERE closed_at IS NOT NULL AND closed_at < ? AND id NOT "
                "IN (SELECT incident_id FROM outbox)",
                (cutoff,),
            )
            c.execute("DELETE FROM silences WHERE ends_at < ?", (cutoff,))
            c.execute("DELETE FROM actions WHERE at < ?", (cutoff,))

    # ---- silences ----------------------------------------------------------------------

    def add_silence(
        self,
        agent_id: str,
        rule: str | None,
        starts_at: float,
        ends_at: float,
        reason: str,
        created_by: str = "",
    ) -> Silence:
        new = NewSilence(agent_id, rule, starts_at, ends_at, reason, created_by)
        with self._tx() as c:
            sid = insert_silence(c, new, starts_at)
        return Silence(sid, agent_id, rule, starts_at, ends_at, reason, starts_at, created_by)

    def silences(self, now: float | None = None) -> list[Silence]:
        """All silences, or those still active at ``now``."""
        sql = f"SELECT {SILENCE_COLUMNS} FROM silences"
        args: tuple[float, ...] = ()
        if now is not None:
            sql += " WHERE ends_at > ?"
            args = (now,)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY id", args).fetchall()
        return [
            Silence(sid, agent, rule, start, end, reason, created, by, bool(until))
            for sid, agent, rule, start, end, reason, created, by, until in rows
        ]

    def remove_silence(self, silence_id: int) -> bool:
        with self._tx() as c:
            cur = c.execute("DELETE FROM silences WHERE id = ?", (silence_id,))
            return cur.rowcount > 0

    # ---- Slack actions -----------------------------------------------------------------

    def apply_action(self, changes: ActionChanges) -> str | None:
        """One Slack action in one transaction (see ``actions.apply_action``): None when it
        was applied, else the answer it got the first time (a replay changes nothing)."""
        with self._tx() as c:
            return apply_action(c, changes)

    def action_answer(self, action_id: str) -> str | None:
        """The answer of an action already applied, or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT answer FROM actions WHERE id = ?", (action_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    def incident_by_key(self, key: str, hash_of: Callable[[str], str]) -> Incident | None:
        """The stored incident (open or closed, within ``KEEP_DONE``) whose ``hash_of(id)``
        is ``key`` (the key a Slack button carries)."""
        with self._lock:
            ids = [r[0] for r in self._conn.execute("SELECT id FROM incidents").fetchall()]
        for iid in ids:
            if hash_of(iid) == key:
                found = self.load_incident(iid)
                if found is not None:
                    return found
        return None

    def load_incident(self, incident_id: str) -> Incident | None:
        return self.load_incidents(open_only=False, only=incident_id).get(incident_id)


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
