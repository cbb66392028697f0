"""``kind: calls_stopped`` (issue 15): the activity it reads, its pure evaluation, and the
whole path on loopback (simulator, agent directory, fake Slack, fake clock)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from dialnexa_watchdog.activity import HOUR, Activity, ActivityKeeper
from dialnexa_watchdog.alerts.state import AlertState, Limits, Rule, State
from dialnexa_watchdog.alerts.stopped import GONE, evaluate_stopped
from dialnexa_watchdog.app import build
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.config import ConfigError, load_settings
from dialnexa_watchdog.model import Call
from dialnexa_watchdog.simulator import Scenario, Simulator, serve
from fakeslack import CHANNEL_ID, TOKEN, FakeSlack
from support import KEY, T0

NOW = 1_750_003_200.0  # a whole hour


def calls(agent: str, times: list[float], pending: bool = False) -> list[Call]:
    status = "in_progress" if pending else "completed"
    return [Call(f"{agent}-{t}", agent, status, t, None if pending else t + 60) for t in times]


def test_activity_counts_each_settled_call_once_by_its_hour_and_tracks_the_newest() -> None:
    a = Activity(NOW - 2 * 86400)
    yesterday = [NOW - 86400 + 60 * i for i in range(30)]  # 30 calls in the hour a day ago
    done = calls("agt_a", yesterday)
    a.observe([*done, *done[:5]], [c.id for c in done])  # two ranges listed five: once each
    a.observe(done, [])  # listed again later (not newly settled): not counted again
    late = calls("agt_a", [NOW - 120], pending=True)
    a.observe(late, [])  # pending: newest call seen, not counted yet
    assert a.baseline("agt_a", NOW + 1800, "same_hour_yesterday") == 30
    assert a.baseline("agt_a", NOW + HOUR, "same_hour_yesterday") == 0
    assert a.baseline("agt_a", NOW, "last_24h") == 30
    assert a.baseline("agt_a", NOW + 86400 - 1, "last_24h") == 0
    assert a.quiet_for("agt_a", NOW) == 120 and a.quiet_for("agt_z", NOW) == 2 * 86400
    a.observe(late, [late[0].id])
    assert a.baseline("agt_a", NOW, "last_24h") == 31
    again = Activity.load(a.dump(), NOW)
    assert again is not None
    assert (again.last_call, again.hourly) == (a.last_call, a.hourly)
    for bad in ("", "{", '{"started_at": "x"}', '{"started_at": NaN, "last_call": {}}', "[]"):
        assert Activity.load(bad, NOW) is None
    a.prune(NOW + 27 * HOUR)
    assert a.agents() == []


class Meta:
    def __init__(self, fail: bool = False) -> None:
        self.values: dict[str, str] = {}
        self.fail = fail

    def get_meta(self, key: str) -> str | None:
        return self.values.get(key)

    def set_meta(self, key: str, value: str) -> None:
        if self.fail:
            raise OSError("disk full")
        self.values[key] = value


def test_the_keeper_saves_every_few_minutes_and_a_restart_resumes() -> None:
    meta = Meta()
    k = ActivityKeeper.start(meta, NOW)
    done = calls("agt_a", [NOW - 30])
    assert k.cycle(done, [done[0].id], NOW) and "agent_activity" in meta.values
    more = calls("agt_a", [NOW + 10])
    assert k.cycle(more, [more[0].id], NOW + 60)  # not due: not saved
    assert json.loads(meta.values["agent_activity"])["last_call"]["agt_a"] == NOW - 30
    again = ActivityKeeper.start(meta, NOW + 120).activity
    assert again.started_at == NOW and again.last_call == {"agt_a": NOW - 30}
    broken = ActivityKeeper(Activity(NOW), Meta(fail=True))
    assert not broken.cycle(done, [], NOW) and broken.save_failures == 1


RULE = Rule("stopped", "", "", Limits(0.0, 0.0, 20, 0.0), "critical", kind="calls_stopped",
            baseline="last_24h", quiet_after=1800.0)  # fmt: skip


def busy_agent(a: Activity, agent: str, last: float, n: int = 40) -> None:
    done = calls(agent, [last - 60 * i for i in range(n)])
    a.observe(done, [c.id for c in done])


def evaluate(
    a: Activity, prev: dict[Any, AlertState], now: float, active: dict[str, bool | None]
) -> dict[tuple[str, str], AlertState]:
    return evaluate_stopped([RULE], prev, a, active.get, now).states


def test_fires_after_quiet_after_not_for_deleted_or_unpublished_and_resolves_on_resume() -> None:
    a = Activity(NOW - 86400)
    for agent in ("agt_live", "agt_gone", "agt_draft", "agt_unknown"):
        busy_agent(a, agent, NOW)
    busy_agent(a, "agt_small", NOW, n=5)  # below min_calls: never fires
    active = {"agt_live": True, "agt_gone": False, "agt_draft": False}  # unknown: judged
    assert evaluate(a, {}, NOW + 1799, active) == {}
    fired = evaluate(a, {}, NOW + 1800, active)
    assert sorted(fired) == [("stopped", "agt_live"), ("stopped", "agt_unknown")]
    st = fired[("stopped", "agt_live")]
    assert (st.state, st.calls, st.age, st.stale_after) == (State.FIRING, 40, 1800, 1800)
    # still silent an hour on: still firing, the silence growing
    later = evaluate(a, fired, NOW + 5400, active)
    assert later[("stopped", "agt_live")].state is State.FIRING
    assert later[("stopped", "agt_live")].age == 5400
    # the agent is unpublished meanwhile: the alert resolves, saying why
    active["agt_unknown"] = False
    gone = evaluate(a, later, NOW + 5460, active)
    assert gone[("stopped", "agt_unknown")].state is State.RESOLVED
    assert gone[("stopped", "agt_unknown")].note == GONE
    # agt_live calls again: resolved
    a.observe(calls("agt_live", [NOW + 5500], pending=True), [])
    back = evaluate(a, gone, NOW + 5520, active)
    assert back[("stopped", "agt_live")].state is State.RESOLVED
    assert evaluate(a, back, NOW + 5580, active) == {}


def test_rate_fields_on_a_calls_stopped_rule_are_named(tmp_path: Path) -> None:
    bad = {"name": "s", "kind": "calls_stopped", "window": "15m", "threshold": 0.2}
    with pytest.raises(ConfigError) as caught:
        load_settings(None, overrides={"rules": [bad, {"name": "r"}]}, environ={})
    problems = caught.value.problems
    assert any(p.startswith("rules[0].window: not used by kind calls_stopped") for p in problems)
    assert any(p.startswith("rules[0].threshold: not used") for p in problems)
    for field in ("outcome", "window", "threshold"):
        assert f"rules[1].{field}: required for a rate rule" in problems
    short = {"name": "s", "kind": "calls_stopped", "quiet_after": "1m"}
    with pytest.raises(ConfigError) as caught:
        load_settings(None, overrides={"rules": [short]}, environ={})
    assert any(p.startswith("rules[0].quiet_after:") for p in caught.value.problems)


@pytest.mark.slow
def test_a_silent_agent_pages_in_slack_and_resolves_when_it_calls_again(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    sim = Simulator(clock, Scenario.steady(2, 3000, 1, history=3600), keys=(KEY,))
    # three agents place 40 calls in the 40 minutes before the start, then stop
    for agent in ("agt_stops", "agt_deleted", "agt_draft"):
        for i in range(40):
            sim.add_call(agent, T0 - 2460 + 60 * i, ring=3.0, talk=20.0)
    sim.set_agent("agt_stops", title="Customer Support Bot")
    sim.set_agent("agt_deleted", deleted=True)
    sim.set_agent("agt_draft", published=False)
    rule = {"name": "silent", "kind": "calls_stopped", "baseline": "last_24h",
            "min_calls": 20, "quiet_after": "10m", "severity": "critical"}  # fmt: skip
    fake = FakeSlack()
    try:
        with serve(sim) as server:
            overrides = {
                "dialnexa.base_url": server.url,
                "dialnexa.api_key": KEY,
                "metrics.listen": "127.0.0.1:0",
                "state.path": str(tmp_path / "state.sqlite3"),
                "poll.interval": "1m",
                "windows": ["5m", "15m"],
                "agents.refresh": "1m",
                "rules": [rule],
                "slack.token": TOKEN,
                "slack.channel": CHANNEL_ID,
                "slack.api_url": fake.api_url,
            }
            app = build(load_settings(None, overrides=overrides, environ={}), clock)
            firing = {"rule": "silent", "agent_id": "agt_stops", "severity": "critical"}

            def cycle() -> None:
                app.daemon.poll_once()
                app.daemon.deliver()
                clock.advance(60)

            for _ in range(8):  # the last call was at T0 - 60: quiet for 9 minutes
                cycle()
            assert app.registry.get_sample_value("dialnexa_alert_firing", firing) == 0
            cycle()
            cycle()
            assert app.registry.get_sample_value("dialnexa_alert_firing", firing) == 1
            for agent in ("agt_deleted", "agt_draft"):
                labels = {**firing, "agent_id": agent}
                assert not app.registry.get_sample_value("dialnexa_alert_firing", labels)
            sim.add_call("agt_stops", clock.now() - 5, ring=3.0, talk=600.0)  # calling again
            cycle()
            assert app.registry.get_sample_value("dialnexa_alert_firing", firing) == 0
            for _ in range(6):  # past the longest window (15m) since their last call
                cycle()
            # deleted and unpublished agents leave /metrics with their windows
            body = app.metrics.body().decode()
            assert 'dialnexa_calls_total{agent_id="agt_stops"' in body
            assert 'agent_id="agt_deleted"' not in body
            assert 'dialnexa_agent_info{agent_id="agt_draft"' in body  # still listed, a draft
            assert 'dialnexa_calls_total{agent_id="agt_draft"' not in body
            app.close()
        posts = [json.dumps(p.params, ensure_ascii=False) for p in fake.posts()]
        updates = [json.dumps(u.params, ensure_ascii=False) for u in fake.updates()]
    finally:
        fake.close()
    [post] = posts
    assert "Customer Support Bot (`agt_stops`)" in post and "no calls for" in post
    assert "agt_deleted" not in post and "agt_draft" not in post
    assert any("calls resumed" in u for u in updates)
