"""Shared fixtures: a FakeClock and the DialNexa simulator served on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.simulator import Simulator, serve
from support import KEY, T0


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
