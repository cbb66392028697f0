"""Leadership on PostgreSQL: which replica may poll, evaluate and deliver.

The leader holds a session-level advisory lock (``LEADER_LOCK``) on a dedicated connection;
PostgreSQL releases it when that session ends (process killed, connection lost, session
terminated, ``release`` on a clean exit), and another replica's ``try_acquire`` then wins
it. Each win increments the **fencing epoch** (``meta`` key ``leader_epoch``) in the same
session, and records who leads (``meta`` key ``leader``: ``holder`` and since when).

The epoch fences delivery: a claim of outbox rows (``PgStore.claim``) reads the epoch with
``FOR SHARE`` in the claim's own transaction and refuses when it is not the claimer's, and a
new leader's increment waits for every such claim transaction to end. So once a new leader
has its epoch, the old one can neither start nor still be in the middle of a delivery.
"""

from __future__ import annotations

import json
import logging
import select
from typing import TYPE_CHECKING, Any

from .base import StateError
from .postgres import EPOCH_KEY, PgStore, describe, open_connection

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("watchdog.store")

LEADER_LOCK = 0x646E7877_00000002  # "dnxw" + 2
HOLDER_KEY = "leader"
# The server notices a vanished leader (a dead host, a cut network) within about 10 s and
# ends its session, which frees the lock; set on the lock's session.
KEEPALIVE = (
    "SET tcp_keepalives_idle = 5",
    "SET tcp_keepalives_interval = 2",
    "SET tcp_keepalives_count = 3",
)


class LeaderLock:
    """The advisory lock on its own session. Not thread-safe: one owner (the daemon's
    leadership loop) calls it."""

    def __init__(self, conninfo: str, url: str, holder: str) -> None:
        self._conninfo = conninfo
        self._url = url
        self.holder = holder
        self._conn: psycopg.Connection[Any] | None = None
        self.epoch: int | None = None  # set while this replica holds the lock

    def try_acquire(self, now: float, wait: float = 0.0) -> int | None:
        """The new epoch when this replica now leads, else None (another one does).
        ``wait``: seconds to wait in PostgreSQL for the lock (so that a standby takes over
        the moment the leader's session ends, not at its next attempt). ``StateError``
        when the database cannot be reached."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._drop()
            self._conn = open_connection(self._conninfo, self._url)
            for sql in KEEPALIVE:
                self._conn.execute(sql)
        conn = self._conn
        import psycopg

        try:
            if wait > 0:
                conn.execute(f"SET lock_timeout = {max(1, round(wait * 1000))}")
                try:
                    conn.execute("SELECT pg_advisory_lock(%s)", (LEADER_LOCK,))
                except psycopg.errors.LockNotAvailable:
                    return None
            else:
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK,)).fetchone()
                if row is None or not row[0]:
                    return None
            with conn.transaction():
                found = conn.execute(
                    "INSERT INTO meta (key, value) VALUES (%s, '1') ON CONFLICT (key) DO "
                    "UPDATE SET value = (meta.value::bigint + 1)::text RETURNING value",
                    (EPOCH_KEY,),
                ).fetchone()
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO "
                    "UPDATE SET value = excluded.value",
                    (HOLDER_KEY, json.dumps({"holder": self.holder, "since": now})),
                )
        except psycopg.Error as exc:
            self._drop()
            where = describe(self._url)
            raise StateError(f"state.url: leader election on {where}: {exc}") from None
        self.epoch = int(found[0]) if found is not None else 1
        return self.epoch

    def alive(self) -> bool:
        """Whether the lock's session still exists (a round trip). False after the session
        was terminated or the connection lost: the lock is gone with it."""
        if self._conn is None or self.epoch is None:
            return False
        import psycopg

        try:
            self._conn.execute("SELECT 1").fetchone()
        except psycopg.Error:
            self._drop()
            return False
        return True

    def lost(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for news on the lock's session; True when it is
        gone (then ``epoch`` is None). A terminated session or a closed connection makes
        the socket readable at once (the server's FATAL message, or EOF), so the loss is
        seen as it happens, not at the next ``alive`` round trip; a silent network loss is
        still found by ``alive`` (and the keepalives)."""
        conn = self._conn
        if conn is None or self.epoch is None:
            return True
        try:
            readable, _, _ = select.select([conn.fileno()], [], [], timeout)
        except (OSError, ValueError):
            readable = [True]
        if not readable:
            return False
        return not self.alive()  # nothing else is sent on this session: it ended

    def abandon(self) -> None:
        """Forget the lock, known lost (another replica's epoch fenced a write): no round
        trip, and ``epoch`` is None at once (``dialnexa_leader`` reads 0)."""
        self._drop()

    def release(self) -> None:
        """Give the lock up (a clean exit: the next replica need not wait for a timeout)."""
        if self._conn is not None and not self._conn.broken and self.epoch is not None:
            import psycopg

            try:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (LEADER_LOCK,))
            except psycopg.Error as exc:
                log.warning("leader lock: release failed (%s); it ends with the session", exc)
        self._drop()

    def _drop(self) -> None:
        self.epoch = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def current_holder(raw: psycopg.Connection[Any]) -> str:
    """Who last took the lock (for messages)."""
    row = raw.execute("SELECT value FROM meta WHERE key = %s", (HOLDER_KEY,)).fetchone()
    if row is None:
        return "another replica"
    try:
        return str(json.loads(row[0]).get("holder", "another replica"))
    except (ValueError, AttributeError):
        return "another replica"


def open_exclusive(store: PgStore, holder: str, now: float) -> PgStore:
    """Take the leader lock for the life of ``store`` (released by ``store.close()``), so
    that a second daemon on the same database refuses to start; StateError (and ``store``
    closed) when another one holds it."""
    lock = LeaderLock(store.conninfo, store.url, holder)
    try:
        if lock.try_acquire(now) is None:
            who = current_holder(store._conn.raw())
            raise StateError(
                f"state.url: {describe(store.url)} is in use by another dialnexa-watchdog ({who})"
            )
    except BaseException:
        lock.release()
        store.close()
        raise
    store.leader = lock
    return store
