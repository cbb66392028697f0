"""What a commit must write: the durable part of an alert state, and which members of a
grouped incident changed. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .incidents import Incident
from .state import AlertState


def durable(s: AlertState) -> tuple[object, ...]:
    """The part of a state that must survive a restart: everything but display values."""
    return (
        s.state,
        s.since,
        s.pending_at,
        s.fired_at,
        s.resolved_at,
        s.severity,
        s.threshold,
        s.clear_below,
        s.peak_rate,
        s.resolved_rate,
        s.last_error,
        s.note,
    )


def changed_members(
    before: Mapping[str, Incident], incidents: Sequence[Incident]
) -> dict[str, list[str]]:
    """Per changed incident that existed before: the agents whose member snapshot is not the
    one it had (the planner keeps an unchanged member's snapshot object), so the store
    writes only those. A new incident is left out: it is written whole."""
    out: dict[str, list[str]] = {}
    for inc in incidents:
        old = before.get(inc.id)
        if old is not None:
            out[inc.id] = [a for a, m in inc.members.items() if old.members.get(a) is not m]
    return out
