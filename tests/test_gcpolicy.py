"""The collector's settings while the daemon runs (``gcpolicy.py``, issue 10 item 4): the
young threshold raised at start, start-up's objects frozen after the backfill, and both put
back when ``run`` returns (an in-process caller gets its collector as it was)."""

from __future__ import annotations

import gc
import io
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from dialnexa_watchdog.app import build
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.config import load_settings
from dialnexa_watchdog.gcpolicy import YOUNG, GcPolicy
from dialnexa_watchdog.service import run
from dialnexa_watchdog.simulator import Scenario, Simulator
from support import KEY, T0


def test_the_policy_raises_the_young_threshold_freezes_once_and_puts_both_back() -> None:
    before = gc.get_threshold()
    p = GcPolicy()
    p.start()
    try:
        assert gc.get_threshold() == (YOUNG, *before[1:])
        p.started()
        frozen = gc.get_freeze_count()
        assert frozen > 0 and p.frozen
        p.started()  # once
        assert gc.get_freeze_count() >= frozen
    finally:
        p.stop()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    p.stop()  # twice: nothing to put back
    assert gc.get_threshold() == before


def test_run_freezes_after_the_backfill_and_leaves_the_collector_as_it_found_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(T0)
    sim = Simulator(clock, Scenario.steady(agents=3, calls_per_day=20_000, seed=5), keys=(KEY,))
    settings = load_settings(
        None,
        overrides={
            "dialnexa.base_url": "http://sim/v1",
            "dialnexa.api_key": KEY,
            "state.path": str(tmp_path / "state.sqlite3"),
            "metrics.listen": "127.0.0.1:0",
        },
        environ={},
    )
    app = build(settings, clock, transport=httpx.WSGITransport(app=sim), stream=io.StringIO())
    wd = app.daemon
    before = gc.get_threshold()
    stop = threading.Event()
    during: list[tuple[int, ...]] = []
    poll = wd.poll_once

    def once() -> Any:
        report = poll()  # the first cycle: the backfill
        during.append(gc.get_threshold())
        stop.set()
        return report

    wd.poll_once = once  # type: ignore[method-assign]
    frozen: list[int] = []
    started = GcPolicy.started

    def noted(self: GcPolicy) -> None:
        started(self)
        frozen.append(gc.get_freeze_count())

    monkeypatch.setattr(GcPolicy, "started", noted)
    assert run(wd, stop, serve=False, final=False) == 0
    assert wd.tracker.backfilled
    assert during and during[0][0] == YOUNG
    assert len(frozen) == 1 and frozen[0] > 0  # after the backfill, before run returned
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
