"""What every state store backend shares: its error, the connection it offers the shared
queries, the outbox entry, one commit's changes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...notify import MessageRef, Notice
from ..incidents import Incident
from ..state import AlertState


class StateError(Exception):
    """The state store cannot be used; ``str()`` is one line for the operator."""


class Fenced(Exception):
    """This replica's fencing epoch is no longer the current one: another replica leads,
    and this one must not deliver anything."""


class Cursor(Protocol):
    """What a statement returns (``sqlite3.Cursor`` and ``psycopg.Cursor`` both are one)."""

    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Conn(Protocol):
    """A connection with ``?`` placeholders, as ``sqlite3.Connection`` has."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...
    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    incident_id: str
    notice: Notice
    attempts: int
    created_at: float
    ref: MessageRef | None
    post_failed: bool  # the incident's main message could not be posted
    uncertain: bool = False  # an earlier attempt timed out: it may have been delivered


@dataclass(frozen=True, slots=True)
class Changes:
    """One evaluation's writes, committed in one transaction."""

    states: Sequence[tuple[AlertState, str | None]] = ()  # changed states, with their incident
    deleted: Sequence[tuple[str, str]] = ()  # (rule, agent) states that became inactive
    incidents: Sequence[Incident] = ()  # created or changed
    notices: Sequence[Notice] = ()  # new outbox entries, in order
    # incident id -> the agents whose member snapshot changed: only those are written (an
    # incident not in it, e.g. a new one, is written with all its members)
    members: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.states or self.deleted or self.incidents or self.notices)


@dataclass(frozen=True, slots=True)
class NewSilence:
    """A silence to add (``silence add``, or a Slack action)."""

    agent_id: str
    rule: str | None
    starts_at: float
    ends_at: float
    reason: str
    created_by: str = ""
    until_resolved: bool = False


@dataclass(frozen=True, slots=True)
class ActionChanges:
    """One Slack action's writes, committed in one transaction keyed by ``id`` (derived from
    the action itself), so a replayed envelope (Slack's retry, a reconnect, another replica)
    applies at most once: the second commit finds the id and changes nothing."""

    id: str
    at: float
    user_id: str
    action: str  # e.g. "ack", "silence_1h"
    incident_id: str | None
    answer: str  # what the person was told; a replay is told the same
    ack: tuple[str, float] | None = None  # (by, at): acknowledge ``incident_id``
    silences: Sequence[NewSilence] = ()
    ended: Sequence[int] = ()  # silence ids that end now
    ended_by: str = ""
    notices: Sequence[Notice] = ()  # the message edit and the thread reply, to the outbox


@dataclass(frozen=True, slots=True)
class Decision:
    """What a Slack action comes to: the answer for the person who acted, and the writes
    (None: nothing changes, e.g. "already acknowledged")."""

    answer: str
    changes: ActionChanges | None = None
