"""Schema 4 and the SQL behind Slack actions: who silenced (``created_by``), silences that
end when their alert resolves, acknowledgements on incidents, and the ``actions`` table that
makes each action apply once (its primary key is the action's id).

Independent of the schema versions before it: every statement here only adds (columns with
defaults, a new table), so it applies on top of whatever version 3 added.
"""

from __future__ import annotations

from collections.abc import Iterable

from .base import ActionChanges, Conn, NewSilence
from .codec import notice_to_json

ACTIONS_MIGRATION: tuple[str, ...] = (
    "ALTER TABLE silences ADD COLUMN created_by TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE silences ADD COLUMN until_resolved INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE silences ADD COLUMN ended_by TEXT",
    "ALTER TABLE silences ADD COLUMN action_id TEXT",
    "ALTER TABLE incidents ADD COLUMN acked_by TEXT",
    "ALTER TABLE incidents ADD COLUMN acked_at REAL",
    """CREATE TABLE IF NOT EXISTS actions (
        id TEXT PRIMARY KEY,
        at REAL NOT NULL,
        user_id TEXT NOT NULL,
        action TEXT NOT NULL,
        incident_id TEXT,
        answer TEXT NOT NULL
    )""",
)

SILENCE_COLUMNS = (
    "id, agent_id, rule, starts_at, ends_at, reason, created_at, created_by, until_resolved"
)


def insert_silence(c: Conn, s: NewSilence, now: float, action_id: str | None = None) -> int:
    cur = c.execute(
        "INSERT INTO silences (agent_id, rule, starts_at, ends_at, reason, created_at, "
        "created_by, until_resolved, action_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        (
            s.agent_id,
            s.rule,
            s.starts_at,
            s.ends_at,
            s.reason,
            now,
            s.created_by,
            int(s.until_resolved),
            action_id,
        ),
    )
    return int(cur.fetchone()[0])


def end_until_resolved(c: Conn, keys: Iterable[tuple[str, str]], now: float) -> None:
    """End the "until resolved" silences of alerts that resolved (or went inactive)."""
    c.executemany(
        "UPDATE silences SET ends_at = ?, ended_by = 'resolved' WHERE until_resolved = 1 "
        "AND ends_at > ? AND rule = ? AND agent_id = ?",
        [(now, now, rule, agent) for rule, agent in keys],
    )


def apply_action(c: Conn, a: ActionChanges) -> str | None:
    """Write one action inside the caller's transaction. None: applied; otherwise the answer
    given when the same action id was applied before (nothing is written)."""
    cur = c.execute(
        "INSERT INTO actions (id, at, user_id, action, incident_id, answer) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        (a.id, a.at, a.user_id, a.action, a.incident_id, a.answer),
    )
    if cur.rowcount == 0:
        row = c.execute("SELECT answer FROM actions WHERE id = ?", (a.id,)).fetchone()
        return str(row[0]) if row else a.answer
    if a.ack is not None and a.incident_id is not None:
        c.execute(
            "UPDATE incidents SET acked_by = ?, acked_at = ? WHERE id = ? AND acked_at IS NULL",
            (a.ack[0], a.ack[1], a.incident_id),
        )
    for s in a.silences:
        insert_silence(c, s, a.at, a.id)
    c.executemany(
        "UPDATE silences SET ends_at = ?, ended_by = ? WHERE id = ? AND ends_at > ?",
        [(a.at, a.ended_by, sid, a.at) for sid in a.ended],
    )
    c.executemany(
        "INSERT INTO outbox (incident_id, op, kind, notice, created_at, next_attempt_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(n.incident, n.op, n.kind, notice_to_json(n), a.at, a.at) for n in a.notices],
    )
    return None
