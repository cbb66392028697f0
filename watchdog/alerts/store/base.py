"""What every state store backend shares: its error, the outbox entry, one commit's changes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...notify import MessageRef, Notice
from ..incidents import Incident
from ..state import AlertState


class StateError(Exception):
    """The state store cannot be used; ``str()`` is one line for the operator."""


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

    def __bool__(self) -> bool:
        return bool(self.states or self.deleted or self.incidents or self.notices)
