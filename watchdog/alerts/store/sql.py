"""The state store's queries, shared by both backends: alert states, incidents (with the
Slack channel and ``ts`` of their main message, and who acknowledged them), the outbox
(notices are written here before anything is sent), silences, Slack actions (``actions.py``)
and, through ``HistoryTables``, the recorded history.

Every statement is written once, in the SQL that SQLite and PostgreSQL both accept, with
``?`` placeholders (``postgres.py`` rewrites them to ``%s``). A backend provides the
connection (``_conn``), the lock that guards it (``_lock``), and ``_tx()``: one transaction.

Longer than ~400 lines on purpose: one SQL statement per operation of the store, kept in
one place so that every query that touches a table is read side by side.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ...notify import AlertSnapshot, MessageRef
from ..incidents import Incident
from ..state import AlertState, Silence, State
from .actions import SILENCE_COLUMNS, apply_action, end_until_resolved, insert_silence
from .base import ActionChanges, Changes, Conn, NewSilence, OutboxEntry
from .codec import (
    members_from_json,
    members_to_json,
    notice_from_json,
    notice_to_json,
    snapshot_from_dict,
    snapshot_to_json,
    state_from_json,
    state_to_json,
)
from .history import HistoryTables

log = logging.getLogger("watchdog.store")

KEEP_DONE = 7 * 86400.0  # delivered/failed outbox rows and closed incidents are kept this long


DUE_SQL = """
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


class SqlStore(HistoryTables):
    """Every operation of the state store, over the backend's connection. Thread-safe;
    every write is one transaction."""

    _conn: Conn
    _lock: threading.Lock
    schema_found: int  # the schema version the store had when opened (before migrating)

    def _tx(self) -> Any:
        raise NotImplementedError

    def _mark_tx(self) -> Any:
        """The transaction of the outbox's bookkeeping (marks, unpark, purge): with several
        replicas it runs inside a fenced claim, or is harmless, so it is not fenced again."""
        return self._tx()

    @property
    def where(self) -> str:
        """The file, or ``host:port/db``, for messages."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

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
            rows = self._conn.execute(sql, args).fetchall()
            written = self._member_rows(open_only, only)
            for row in rows:
                iid, rule, grouped, opened, closed, notified, members, by, at = row
                out[iid] = Incident(
                    id=iid,
                    rule=rule,
                    group=bool(grouped),
                    opened_at=opened,
                    members={**members_from_json(members), **written.get(iid, {})},
                    last_notified_at=notified,
                    closed_at=closed,
                    acked_by=by,
                    acked_at=at,
                )
        return out

    def _member_rows(
        self, open_only: bool, only: str | None
    ) -> dict[str, dict[str, AlertSnapshot]]:
        """The members written one by one (schema 5), per incident. Caller holds the lock."""
        sql = "SELECT m.incident_id, m.agent_id, m.data FROM incident_members m"
        args: list[str] = []
        if only is not None:
            sql += " WHERE m.incident_id = ?"
            args.append(only)
        elif open_only:
            sql += " JOIN incidents i ON i.id = m.incident_id WHERE i.closed_at IS NULL"
        out: dict[str, dict[str, AlertSnapshot]] = {}
        for iid, agent, data in self._conn.execute(sql, args).fetchall():
            out.setdefault(iid, {})[agent] = snapshot_from_dict(json.loads(data))
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
            self._write_incidents(c, changes)
            ended = [
                s.key for s, _ in changes.states if s.state in (State.RESOLVED, State.INACTIVE)
            ]
            end_until_resolved(c, [*ended, *changes.deleted], now)
            c.executemany(
                "INSERT INTO outbox (incident_id, op, kind, notice, created_at, next_attempt_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(n.incident, n.op, n.kind, notice_to_json(n), now, now) for n in changes.notices],
            )

    @staticmethod
    def _write_incidents(c: Conn, changes: Changes) -> None:
        """Changed incidents: a new one (or one without a member delta) with all its members
        in ``incidents.members``; otherwise only the members that changed, as rows of
        ``incident_members`` (which override ``incidents.members`` when read)."""
        whole = [i for i in changes.incidents if i.id not in changes.members]
        delta = [i for i in changes.incidents if i.id in changes.members]
        upsert = (
            "INSERT INTO incidents (id, rule, grouped, opened_at, closed_at, "
            "last_notified_at, members, acked_by, acked_at) VALUES (?, ?, ?, ?, ?, ?, ?, "
            "?, ?) ON CONFLICT (id) DO UPDATE SET closed_at = excluded.closed_at, "
            "last_notified_at = excluded.last_notified_at, {members}"
            "acked_by = COALESCE(incidents.acked_by, excluded.acked_by), "
            "acked_at = COALESCE(incidents.acked_at, excluded.acked_at)"
        )

        def row(i: Incident, members: str) -> tuple[Any, ...]:
            return (i.id, i.rule, int(i.group), i.opened_at, i.closed_at, i.last_notified_at,
                    members, i.acked_by, i.acked_at)  # fmt: skip

        c.executemany(
            upsert.format(members="members = excluded.members, "),
            [row(i, members_to_json(i.members)) for i in whole],
        )
        c.executemany(
            "DELETE FROM incident_members WHERE incident_id = ?", [(i.id,) for i in whole]
        )
        c.executemany(upsert.format(members=""), [row(i, "{}") for i in delta])
        c.executemany(
            "INSERT INTO incident_members (incident_id, agent_id, data) VALUES (?, ?, ?) "
            "ON CONFLICT (incident_id, agent_id) DO UPDATE SET data = excluded.data",
            [
                (i.id, a, snapshot_to_json(i.members[a]))
                for i in delta
                for a in changes.members[i.id]
                if a in i.members
            ],
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
        with self._lock:
            rows = self._conn.execute(DUE_SQL, (now, limit)).fetchall()
        return self._entries(rows, now)

    @contextmanager
    def claim(self, now: float, limit: int, epoch: int | None) -> Iterator[list[OutboxEntry]]:
        """``due``'s notices, to be delivered inside the ``with``. ``epoch``: the fencing
        epoch of the replica that claims (PostgreSQL checks it in the claim's transaction
        and raises ``Fenced`` when another replica has taken over; one replica per SQLite
        file needs none)."""
        yield self.due(now, limit)

    def mark_attempt(self, entry_id: int) -> None:
        """About to send: if this replica dies before ``mark_sent``, the next one looks
        before posting again (the notice becomes ``uncertain``)."""
        with self._mark_tx() as c:
            c.execute("UPDATE outbox SET uncertain = 1 WHERE id = ?", (entry_id,))

    def _entries(self, rows: list[Any], now: float) -> list[OutboxEntry]:
        out: list[OutboxEntry] = []
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
        with self._mark_tx() as c:
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
        with self._mark_tx() as c:
            c.execute(
                "UPDATE outbox SET status = 'failed', done_at = ?, last_error = ?, "
                "attempts = attempts + 1 WHERE id = ?",
                (now, error, entry_id),
            )

    def retry_later(self, entry_id: int, at: float, error: str, *, uncertain: bool = False) -> None:
        """Try again at ``at``. ``uncertain``: this attempt may have been delivered (a
        timeout after the request was sent), so look before sending again."""
        with self._mark_tx() as c:
            c.execute(
                "UPDATE outbox SET next_attempt_at = ?, last_error = ?, attempts = attempts + 1, "
                "uncertain = CASE WHEN ? = 1 THEN 1 ELSE uncertain END WHERE id = ?",
                (at, error, int(uncertain), entry_id),
            )

    def park(self, entry_id: int, now: float, error: str) -> None:
        """A permanent failure (bad token, unknown channel) that a fix of the config can
        cure: keep the notice, and the incident's later notices behind it, until
        ``unpark``."""
        with self._mark_tx() as c:
            c.execute(
                "UPDATE outbox SET status = 'parked', last_error = ?, attempts = attempts + 1, "
                "done_at = ? WHERE id = ?",
                (error, now, entry_id),
            )

    def unpark(self, now: float) -> int:
        """Make every parked notice pending again; returns how many."""
        with self._mark_tx() as c:
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
        with self._mark_tx() as c:
            c.execute("DELETE FROM outbox WHERE status != 'pending' AND done_at < ?", (cutoff,))
            c.execute(
                "DELETE FROM incidents WHERE closed_at IS NOT NULL AND closed_at < ? AND id NOT "
                "IN (SELECT incident_id FROM outbox)",
                (cutoff,),
            )
            c.execute(
                "DELETE FROM incident_members WHERE incident_id NOT IN (SELECT id FROM incidents)"
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
            return int(cur.rowcount) > 0

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
