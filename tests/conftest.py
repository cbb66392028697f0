"""Shared fixtures: a FakeClock, the DialNexa simulator served on 127.0.0.1, a throwaway
PostgreSQL cluster, and a state store on each backend."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dialnexa_watchdog.alerts.store import Store
from dialnexa_watchdog.alerts.store.postgres import PgStore
from dialnexa_watchdog.alerts.store.sql import SqlStore
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.simulator import Simulator, serve
from pgserver import PASSWORD, PgServer
from support import KEY, T0


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A test that runs a command in-process (``main(["once", ...])``) configures the root
    logger as the command does; the next test starts with what there was before."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def sim(clock: FakeClock) -> Simulator:
    return Simulator(clock, keys=(KEY,), forbidden_keys=("read-only-key",))


@pytest.fixture
def sim_url(sim: Simulator) -> Iterator[str]:
    with serve(sim) as server:
        yield server.url


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One throwaway PostgreSQL cluster for the session (skipped without the binaries)."""
    server = PgServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh, empty database on it."""
    return pg_server.database()


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], SqlStore]]:
    """Opens (and reopens) one state store on each backend: a SQLite file, or a fresh
    database on the session's PostgreSQL. Every store opened is closed at teardown."""
    opened: list[SqlStore] = []
    if request.param == "sqlite":
        path = tmp_path / "state.sqlite3"

        def make() -> SqlStore:
            return Store(path, now=T0)
    else:
        server: PgServer = request.getfixturevalue("pg_server")
        url = server.database()

        def make() -> SqlStore:
            return PgStore(url, PASSWORD)

    def tracked() -> SqlStore:
        store = make()
        opened.append(store)
        return store

    yield tracked
    for store in opened:
        store.close()
