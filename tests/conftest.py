"""Shared fixtures: a FakeClock and the DialNexa simulator served on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import NoReturn

import pytest
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.simulator import Simulator, serve

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


IN_CI = os.environ.get("CI", "").lower() == "true"


def missing(message: str) -> NoReturn:
    """A tool the test needs is absent: skip here, but fail in CI (.ci/run installs it)."""
    if IN_CI:
        pytest.fail(f"CI=true and {message}")
    pytest.skip(message)


def require_tool(name: str) -> str:
    """The path of the command ``name``, or skip (fail in CI) without it."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed (.ci/run installs it; see the README)")
    return path
