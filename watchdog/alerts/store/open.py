"""Opening the state store the settings name: SQLite at ``state.path``, or PostgreSQL at
``state.url``; migrated to this binary's schema either way."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from ...config import StateSettings
from ...redact import register_secrets
from .sql import SqlStore
from .sqlite import Store


def open_state(
    state: StateSettings,
    now: float,
    *,
    exclusive: bool = False,
    repair: bool = True,
    epoch: Callable[[], int | None] | None = None,
) -> SqlStore:
    """``exclusive``: the daemon (``run``) holds the store's lock (a lock file next to the
    SQLite file, PostgreSQL's leader lock), so a second daemon refuses to start; the CLI's
    short-lived commands share. ``epoch``: a leading replica's fencing epoch, checked by
    every write (PostgreSQL). ``repair=False`` (the CLI): a damaged SQLite file is an error,
    never moved aside. StateError when the store is unusable."""
    if state.url is None:
        return Store(state.path, now=now, exclusive=exclusive, repair=repair)
    from .leader import open_exclusive
    from .postgres import PgStore

    password = state.password.get_secret_value() if state.password is not None else None
    register_secrets(password)
    store = PgStore(state.url, password, connect_timeout=state.connect_timeout)
    store.epoch = epoch
    if exclusive:
        open_exclusive(store, f"{socket.gethostname()} pid {os.getpid()}", now)
    return store
