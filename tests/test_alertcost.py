"""The alert step's cost (issue 10 item 4): a /metrics render never waits for the alert step.

The poll thread holds the windows lock only while it applies a listing; the alert step
(evaluate, plan, commit) runs after it is released and reads the windows without it (only
the poll thread changes them), and the alert collector reads the pipeline's immutable
``AlertView`` and counters. So a scrape shares no lock with a step: here a real daemon's
step is held inside its store commit, and whole renders complete meanwhile.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from dialnexa_watchdog.app import build
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.config import load_settings
from dialnexa_watchdog.simulator import Scenario, Simulator
from support import KEY, T0

RULES: list[dict[str, Any]] = [
    {"name": "failed-5m", "outcome": "failed", "window": "5m", "threshold": 0.0001,
     "min_calls": 1},
]  # fmt: skip


def _app(tmp_path: Path) -> tuple[Any, FakeClock]:
    clock = FakeClock(T0)
    sim = Simulator(clock, Scenario.steady(agents=6, calls_per_day=60_000, seed=3), keys=(KEY,))
    settings = load_settings(
        None,
        overrides={
            "dialnexa.base_url": "http://sim/v1",
            "dialnexa.api_key": KEY,
            "state.path": str(tmp_path / "state.sqlite3"),
            "poll.interval": "30s",
            "windows": ["5m", "15m"],
            "rules": RULES,
        },
        environ={},
    )
    app = build(settings, clock, transport=httpx.WSGITransport(app=sim), stream=io.StringIO())
    return app, clock


@pytest.mark.slow
def test_a_render_completes_while_the_alert_step_is_held_inside_its_commit(
    tmp_path: Path,
) -> None:
    app, clock = _app(tmp_path)
    wd, alerts = app.daemon, app.alerts
    assert alerts is not None
    try:
        wd.backfill()
        clock.advance(30)
        wd.poll_once()  # a first step: states exist, the render has alert series
        entered, release = threading.Event(), threading.Event()
        commit = alerts.store.commit
        held: list[int] = []

        def held_commit(*a: Any) -> None:
            held.append(1)
            entered.set()
            assert release.wait(30), "the test never released the commit"
            commit(*a)

        alerts.store.commit = held_commit  # type: ignore[method-assign]
        clock.advance(30)
        poller = threading.Thread(target=wd.poll_once, daemon=True)
        poller.start()
        assert entered.wait(30), "the step never reached its commit"
        bodies: list[bytes] = []
        scraper = threading.Thread(target=lambda: bodies.append(wd.metrics.body()))
        scraper.start()
        scraper.join(30)  # a deadlock bound, not a timing: the commit is still held
        rendered = not scraper.is_alive()
        assert not release.is_set()
        release.set()
        poller.join(30)
        assert rendered, "the /metrics render waited for the alert step"
        assert held == [1]
        text = bodies[0].decode()
        assert "dialnexa_alert_firing{" in text  # the alert collector answered from its view
        assert "dialnexa_agent_window_calls{" in text  # and the windows collector
    finally:
        wd.close()
