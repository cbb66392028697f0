"""The state store: alert states, incidents (with the Slack message of each), the outbox
(notices are written here before anything is sent), silences, Slack actions (each applied
once), small values that must survive a restart, and (``history.py``) the recorded history
and the warm-restart state. ``sqlite.Store`` (the standard library's SQLite at
``state.path``) is the embedded backend; every backend commits one evaluation's ``Changes``
in one transaction.
"""

from __future__ import annotations

from .base import (
    ActionChanges,
    Changes,
    Decision,
    Fenced,
    NewSilence,
    OutboxEntry,
    StateError,
)
from .sqlite import KEEP_DONE, SCHEMA_VERSION, Store

__all__ = [
    "KEEP_DONE",
    "SCHEMA_VERSION",
    "ActionChanges",
    "Changes",
    "Decision",
    "Fenced",
    "NewSilence",
    "OutboxEntry",
    "StateError",
    "Store",
]
