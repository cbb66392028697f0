"""The sequential detector through the whole daemon: the simulator over HTTP, the recorder's
journal feeding the CUSUM every cycle, the state store, fake Slack. Time is a FakeClock."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dialnexa_watchdog.app import App, build
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.config import load_settings
from dialnexa_watchdog.simulator import AgentProfile, Scenario, Simulator, serve
from fakeslack import CHANNEL_ID, TOKEN, FakeSlack
from support import KEY, T0

INTERVAL = 30.0
BAD = "agt_00001"
RULE = "failed-seq"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.close()


def rule(**kw: Any) -> dict[str, Any]:
    spec = {
        "name": RULE,
        "outcome": "failed",
        "window": "15m",
        "detector": "sequential",
        "threshold": "3x",
        "clear_below": "1.5x",
        "baseline": 0.08,  # the steady mix's failed share (learned: see below)
        "min_calls": 3,
        "false_alarm": "10y",
        "severity": "critical",
    }
    spec.update(kw)
    return spec


def make_app(url: str, tmp: Path, clock: FakeClock, slack: FakeSlack, **kw: Any) -> App:
    overrides = {
        "dialnexa.base_url": url,
        "dialnexa.api_key": KEY,
        "poll.interval": "30s",
        "metrics.listen": "127.0.0.1:0",
        "state.path": str(tmp / "state.sqlite3"),
        "slack.token": TOKEN,
        "slack.channel": CHANNEL_ID,
        "slack.api_url": slack.api_url,
        "rules": [rule(**kw)],
    }
    return build(load_settings(None, overrides=overrides, environ={}), clock, stream=io.StringIO())


def run(app: App, clock: FakeClock, cycles: int) -> None:
    for _ in range(cycles):
        clock.advance(INTERVAL)
        assert app.daemon.poll_once().ok
        app.daemon.deliver()


@pytest.mark.slow
def test_a_degraded_agent_pages_via_the_sequential_rule_and_healthy_ones_stay_quiet(
    clock: FakeClock, tmp_path: Path, slack: FakeSlack
) -> None:
    # six agents at ~3 calls a minute each, 8% failed; one fails 70% from 10 to 40 minutes
    scenario = Scenario.steady(
        agents=6,
        calls_per_day=6 * 3 * 1440,
        seed=5,
        history=3600,
        degradations={BAD: ((600.0, 2400.0, 0.7),)},
    )
    sim = Simulator(clock, scenario, keys=(KEY,), rate_limit=None)
    with serve(sim) as server:
        app = make_app(server.url, tmp_path, clock, slack)
        try:
            assert app.daemon.poll_once().ok  # the backfill: an hour of healthy calls
            run(app, clock, 19)  # to 10 minutes: nobody is unusual
            assert slack.posts() == []
            fired_at = None
            for _ in range(40):
                run(app, clock, 1)
                if slack.posts():
                    fired_at = clock.now() - T0
                    break
            assert fired_at is not None, "the degraded agent never paged"
            # ~3 calls a minute at 70% failed: the evidence passes its limit within minutes
            assert 600 < fired_at <= 600 + 15 * 60, fired_at
            [post] = slack.posts()
            text = post.params["text"]
            assert BAD in text
            assert all(f"agt_0000{i}" not in text for i in (0, 2, 3, 4, 5))
            words = json.dumps(post.params.get("blocks")) + text
            assert re.search(r"\d+ of the last \d+ calls\*? failed", words), words
            assert "normal for this agent is *8.0%*" in words
            states = app.alerts.pipeline.states() if app.alerts is not None else {}
            st = states[(RULE, BAD)]
            assert st.baseline == 0.08 and st.threshold == pytest.approx(0.24)
            assert st.evidence is not None and st.evidence >= 1.0
            evidence = app.registry.get_sample_value(
                "dialnexa_alert_evidence_ratio", {"rule": RULE, "agent_id": BAD}
            )
            assert evidence is not None and evidence >= 1.0
            resolved_at = None
            while clock.now() - T0 < 2400 + 3600 and resolved_at is None:
                run(app, clock, 1)
                if slack.updates(post.answer["ts"]):  # type: ignore[index]
                    resolved_at = clock.now() - T0
            # the degradation ends at 40 minutes; the clear evidence needs ~70 healthy calls
            assert resolved_at is not None and 2400 < resolved_at <= 2400 + 40 * 60, resolved_at
            run(app, clock, 1)  # a resolved state lasts one evaluation
            assert [k for k in app.alerts.pipeline.states() if k[0] == RULE] == []
            assert len(slack.posts()) == 1  # no other agent paged, the incident resolved
            assert slack.updates(post.answer["ts"])  # type: ignore[index]
        finally:
            app.close()


def profile(agent_id: str, failed: float, **kw: Any) -> AgentProfile:
    mix = {"completed": 1.0 - failed - 0.05, "failed": failed, "busy": 0.05}
    return AgentProfile(agent_id, 4.0, outcomes=mix, ring=(2.0, 10.0), talk=(10.0, 60.0), **kw)


@pytest.mark.slow
def test_learned_baselines_survive_a_restart_and_a_high_baseline_agent_is_not_paged(
    clock: FakeClock, tmp_path: Path, slack: FakeSlack
) -> None:
    """A collections-like agent failing 30% of its calls as usual is normal for itself; a
    support-like agent at 4% that jumps to 60% pages. After a restart the baselines come
    back from the recorded history."""
    agents = (
        profile("agt_hi", 0.30),
        profile("agt_lo", 0.04, degradations=((2700.0, 9000.0, 0.6),)),
    )
    sim = Simulator(clock, Scenario(agents, seed=2, history=3600), keys=(KEY,), rate_limit=None)
    learned = {
        "baseline": "learned",
        "threshold": "2x",
        "baseline_min_calls": 100,
        "baseline_prior_calls": 20,
    }
    with serve(sim) as server:
        app = make_app(server.url, tmp_path, clock, slack, **learned)
        try:
            assert app.daemon.poll_once().ok  # the backfill: an hour (the longest window)
            run(app, clock, 60)  # 30 healthy minutes
            feed = app.alerts.pipeline.evidence if app.alerts is not None else None
            assert feed is not None
            (rule,) = feed.detector.rules
            hi, lo = feed.baseline(rule, "agt_hi"), feed.baseline(rule, "agt_lo")
            assert hi.source == lo.source == "learned"
            assert 0.25 < hi.rate < 0.36 and 0.02 < lo.rate < 0.08, (hi, lo)
            assert slack.posts() == []  # 30% failed is this agent's normal: nobody paged
        finally:
            app.close()
        clock.advance(INTERVAL)
        app = make_app(server.url, tmp_path, clock, slack, **learned)  # a restart
        try:
            feed = app.alerts.pipeline.evidence if app.alerts is not None else None
            assert feed is not None
            (rule,) = feed.detector.rules
            again = feed.baseline(rule, "agt_hi")
            assert again.source == "learned" and again.rate == pytest.approx(hi.rate, rel=0.05)
            assert app.daemon.poll_once().ok  # warm: the gap only
            for _ in range(60):  # agt_lo fails 60% from 45 minutes after the first start
                run(app, clock, 1)
                if slack.posts():
                    break
            [post] = slack.posts()
            assert "agt_lo" in post.params["text"] and "agt_hi" not in post.params["text"]
        finally:
            app.close()
