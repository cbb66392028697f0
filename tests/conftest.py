"""Shared fixtures: a FakeClock and the DialNexa simulator served on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from watchdog.clock import FakeClock
from watchdog.simulator import Simulator, serve

T0 = 1_750_000_000.0
KEY = "test-key"


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
