"""The alerting facade end to end: evaluator -> store -> outbox -> slack-sdk -> fake Slack.

Time is a FakeClock; nothing sleeps. Slack is a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dialnexa_watchdog.alerts.delivery import RetryPolicy
from dialnexa_watchdog.app import build_alerts
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.config import ConfigError, Settings
from dialnexa_watchdog.model import PollStatus
from dialnexa_watchdog.notify import Notifier
from dialnexa_watchdog.notify.slack import SlackBotNotifier
from fakeslack import CHANNEL_ID, TOKEN, FakeSlack
from fakeview import FakeView
from prometheus_client import CollectorRegistry, generate_latest

T0 = 1_750_000_000.0


def backoff(attempts: int) -> float:
    return RetryPolicy().backoff(attempts, 1.0)


RULE = "failed-rate"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.close()


def settings(
    tmp_path: Path,
    fake: FakeSlack | None = None,
    mode: str = "bot",
    rules: list[dict[str, Any]] | None = None,
    alerts: dict[str, Any] | None = None,
    **slack_kw: Any,
) -> Settings:
    slack: dict[str, Any] = {}
    if mode == "bot" and fake is not None:
        slack = {"token": TOKEN, "channel": CHANNEL_ID, "api_url": fake.api_url}
    elif mode == "webhook" and fake is not None:
        slack = {"webhook_url": fake.webhook_url}
    slack.update(slack_kw)
    if rules is None:
        rules = [
            {
                "name": RULE,
                "outcome": "failed",
                "window": "15m",
                "threshold": 0.25,
                "clear_below": 0.2,
                "min_calls": 20,
                "severity": "critical",
            }
        ]
    return Settings(
        windows=["5m", "15m", "1h"],
        rules=rules,
        slack=slack,
        state={"path": str(tmp_path / "state.sqlite3")},
        alerts=alerts or {},
    )


class Harness:
    def __init__(
        self,
        s: Settings,
        clock: FakeClock | None = None,
        stream: Any = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.clock = clock or FakeClock(T0)
        self.registry = CollectorRegistry()
        # rand=1: backoff without its random half, so the test knows each delay
        self.alerting = build_alerts(
            s, self.registry, self.clock, stream=stream, notifier=notifier, rand=lambda: 1.0
        )
        self.view = FakeView()
        self.last_success: float | None = self.clock.now()

    def poll(self, advance: float = 30, deliver: bool = True) -> None:
        now = self.clock.advance(advance)
        if self.last_success is not None:
            self.last_success = now
        status = PollStatus(started_at=T0, last_success=self.last_success, last_error="403: no")
        self.alerting.on_poll(self.view, status, now)
        self.alerting.on_tick(status, now)  # the daemon's timer runs between polls
        if deliver:
            self.alerting.deliver_due(now)

    def deliver(self, advance: float = 0) -> None:
        self.alerting.deliver_due(self.clock.advance(advance))

    def metric(self, name: str, agent: str = "a1", rule: str = RULE, sev: str = "critical") -> Any:
        labels = {"rule": rule, "agent_id": agent, "severity": sev}
        return self.registry.get_sample_value(name, labels)

    def sent(self, result: str) -> Any:
        return self.registry.get_sample_value(
            "dialnexa_slack_notifications_total", {"result": result}
        )


def blocks_text(req: Any) -> str:
    return json.dumps(req.params.get("blocks"), ensure_ascii=False) + req.params.get("text", "")


def test_one_incident_one_post_then_update_and_thread_reply(
    tmp_path: Path, slack: FakeSlack
) -> None:
    h = Harness(settings(tmp_path, slack))
    h.view.rate("a1", 0.10)
    h.poll()
    assert slack.requests == []
    assert h.metric("dialnexa_alert_firing") is None  # far below the threshold: no series
    h.view.rate("a1", 0.30)
    for _ in range(10):  # firing for a while: still one message
        h.poll()
    assert h.metric("dialnexa_alert_firing") == 1
    [post] = slack.posts()
    assert "FIRING" in post.params["text"] and "a1" in post.params["text"]
    ts = post.answer["ts"]  # type: ignore[index]
    h.view.rate("a1", 0.40)
    h.poll()
    h.view.rate("a1", 0.12)
    h.poll()
    [update] = slack.updates(ts)
    [reply] = slack.replies(ts)
    assert len(slack.posts()) == 1
    text = blocks_text(update)
    assert "RESOLVED" in text
    assert "12.0%" in text  # the rate at resolution, not the last firing value
    assert "40.0%" in text  # the peak
    assert "Resolved after 5m" in reply.params["text"]
    assert h.metric("dialnexa_alert_firing") == 0
    assert h.sent("ok") == 3 and h.sent("rate_limited") == 0
    assert slack.messages[ts].edits  # the channel view was edited in place


def test_pending_is_exported_while_for_runs(tmp_path: Path, slack: FakeSlack) -> None:
    rules = [
        {
            "name": RULE,
            "outcome": "failed",
            "window": "15m",
            "threshold": 0.25,
            "for": "2m",
            "severity": "critical",
        }
    ]
    h = Harness(settings(tmp_path, slack, rules=rules))
    h.view.rate("a1", 0.5)
    h.poll()
    assert h.metric("dialnexa_alert_pending") == 1 and h.metric("dialnexa_alert_firing") == 0
    assert slack.requests == []
    h.poll(60)
    h.poll(60)
    assert h.metric("dialnexa_alert_pending") == 0 and h.metric("dialnexa_alert_firing") == 1
    assert len(slack.posts()) == 1


def test_repeat_interval_posts_thread_replies(tmp_path: Path, slack: FakeSlack) -> None:
    h = Harness(settings(tmp_path, slack, repeat_interval="1h"))
    h.view.rate("a1", 0.5)
    h.poll()
    ts = slack.posts()[0].answer["ts"]  # type: ignore[index]
    for _ in range(119):  # just under an hour of 30s polls
        h.poll()
    assert slack.replies(ts) == []
    h.poll()
    h.poll()
    [r1] = slack.replies(ts)
    assert r1.params["text"].startswith("🔁 Still firing after 1h")
    h.poll(3600)
    assert len(slack.replies(ts)) == 2
    assert len(slack.posts()) == 1


def test_429_waits_for_retry_after_then_delivers_once_in_order(
    tmp_path: Path, slack: FakeSlack
) -> None:
    h = Harness(settings(tmp_path, slack))
    slack.rate_limit("chat.postMessage", retry_after=30)
    h.view.rate("a1", 0.5)
    h.poll()
    assert len(slack.requests) == 1 and slack.posts() == []
    assert h.sent("rate_limited") == 1
    h.deliver(10)
    h.deliver(10)
    assert len(slack.requests) == 1  # Retry-After honoured against the injected clock
    h.view.rate("a1", 0.1)
    h.poll(5, deliver=False)  # resolves while the firing message is still queued
    h.deliver(5)  # 30s after the 429
    methods = [r.method for r in slack.ok_requests()]
    assert methods == ["chat.postMessage", "chat.update", "chat.postMessage"]
    assert len(slack.posts()) == 1
    assert h.sent("ok") == 3


def test_5xx_and_network_errors_back_off_and_never_lose_or_duplicate(
    tmp_path: Path, slack: FakeSlack
) -> None:
    h = Harness(settings(tmp_path, slack))
    slack.server_error("chat.postMessage", times=2)
    slack.fail("chat.postMessage", drop=True)
    h.view.rate("a1", 0.5)
    h.poll()
    assert h.sent("server_error") == 1
    h.deliver(backoff(1) - 1)
    assert len(slack.requests) == 1
    h.deliver(1)
    assert h.sent("server_error") == 2
    h.deliver(backoff(2))
    assert h.sent("network_error") == 1
    assert slack.posts() == []
    h.deliver(backoff(3))
    assert len(slack.posts()) == 1
    for _ in range(5):
        h.deliver(600)
    assert len(slack.posts()) == 1
    assert h.alerting.store.pending_count() == 0


def test_restart_mid_incident_posts_nothing_new_and_resolves_the_original(
    tmp_path: Path, slack: FakeSlack
) -> None:
    s = settings(tmp_path, slack)
    clock = FakeClock(T0)
    h1 = Harness(s, clock)
    h1.view.rate("a1", 0.5)
    h1.poll()
    ts = slack.posts()[0].answer["ts"]  # type: ignore[index]
    h1.alerting.close()  # the process goes away

    h2 = Harness(s, clock)  # a new process on the same state file
    h2.view.rate("a1", 0.5)
    for _ in range(5):
        h2.poll()
    assert len(slack.requests) == 1
    assert h2.metric("dialnexa_alert_firing") == 1
    h2.view.rate("a1", 0.05)
    h2.poll()
    assert len(slack.updates(ts)) == 1 and len(slack.replies(ts)) == 1
    assert len(slack.posts()) == 1


def test_notice_written_before_sending_survives_a_crash(tmp_path: Path, slack: FakeSlack) -> None:
    s = settings(tmp_path, slack)
    clock = FakeClock(T0)
    h1 = Harness(s, clock)
    h1.view.rate("a1", 0.5)
    h1.poll(deliver=False)  # evaluated and persisted; killed before delivery
    h1.alerting.store.close()  # no orderly close() (as after SIGKILL)
    h2 = Harness(s, clock)
    h2.deliver(1)
    assert len(slack.posts()) == 1


def test_storm_of_agents_is_one_grouped_message_updated_as_they_resolve(
    tmp_path: Path, slack: FakeSlack
) -> None:
    h = Harness(settings(tmp_path, slack, group_threshold=5))
    agents = [f"agt_{i:02d}" for i in range(8)]
    for a in agents:
        h.view.rate(a, 0.6)
    h.poll()
    [post] = slack.posts()
    ts = post.answer["ts"]  # type: ignore[index]
    assert "8 agents" in post.params["text"]
    for a in agents:
        assert a in blocks_text(post)
    # a ninth agent joins the open group instead of getting its own message
    h.view.rate("agt_99", 0.6)
    h.poll()
    assert len(slack.posts()) == 1
    assert "Also firing now" in slack.replies(ts)[0].params["text"]
    for a in agents[:3]:
        h.view.rate(a, 0.0)
    h.poll()
    assert "6 of 9 agents firing" in blocks_text(slack.updates(ts)[-1])
    for a in [*agents, "agt_99"]:
        h.view.rate(a, 0.0)
    h.poll()
    last = blocks_text(slack.updates(ts)[-1])
    assert "RESOLVED" in last and "9 agents" in last
    assert len(slack.posts()) == 1
    assert h.metric("dialnexa_alert_firing", "agt_00") == 0


def test_fewer_than_group_threshold_get_one_message_each(tmp_path: Path, slack: FakeSlack) -> None:
    h = Harness(settings(tmp_path, slack, group_threshold=5))
    for i in range(4):
        h.view.rate(f"a{i}", 0.6)
    h.poll()
    assert len(slack.posts()) == 4


def test_channel_ping_in_agent_id_arrives_escaped(tmp_path: Path, slack: FakeSlack) -> None:
    h = Harness(settings(tmp_path, slack))
    h.view.rate("<!channel>", 0.6)
    h.poll()
    h.view.rate("<!channel>", 0.0)
    h.poll()
    assert len(slack.ok_requests()) == 3
    for req in slack.requests:
        assert "<!channel>" not in req.body
    assert "&lt;!channel&gt;" in slack.posts()[0].body


def test_permanent_error_holds_notices_and_delivers_them_in_order_once_fixed(
    tmp_path: Path, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(settings(tmp_path, slack))
    slack.member_of.clear()  # the bot is not in the channel
    caplog.set_level(logging.DEBUG)
    h.view.rate("a1", 0.6)
    h.poll()
    h.view.rate("a2", 0.6)
    h.poll()
    assert h.sent("channel_error") == 2  # the second incident was still tried
    held = [r for r in caplog.records if "held" in r.getMessage()]
    assert len(held) == 1  # logged once, with the fix
    assert "/invite" in held[0].getMessage()
    assert h.alerting.store.parked_count() == 2
    assert h.registry.get_sample_value("dialnexa_slack_outbox_parked_messages") == 2
    h.view.rate("a1", 0.0)  # a1 resolves while its first message is held
    h.poll()
    assert len(slack.requests) == 2  # the resolution waits behind the held post
    slack.member_of.add(CHANNEL_ID)  # fixed
    h.view.rate("a3", 0.6)
    h.poll()  # a3 goes through, and the held notices follow in order
    h.deliver(1)
    posts = {p.params["text"].split()[1]: p for p in slack.posts()}
    assert len(slack.posts()) == 3, [p.params["text"] for p in slack.posts()]
    a1 = next(p for p in slack.posts() if "a1" in p.params["text"])
    [update] = slack.updates(a1.answer["ts"])  # type: ignore[index]
    assert "RESOLVED" in blocks_text(update)  # no FIRING message left behind in Slack
    assert posts
    assert h.alerting.store.parked_count() == 0
    assert h.alerting.store.pending_count() == 0
    assert TOKEN not in caplog.text


def test_held_notices_are_delivered_after_a_restart_with_the_fix(
    tmp_path: Path, slack: FakeSlack
) -> None:
    s = settings(tmp_path, slack)
    clock = FakeClock(T0)
    slack.member_of.clear()
    h1 = Harness(s, clock)
    h1.view.rate("a1", 0.6)
    h1.poll()
    assert slack.posts() == [] and h1.alerting.store.parked_count() == 1
    h1.alerting.close()
    slack.member_of.add(CHANNEL_ID)  # the operator fixes the channel and restarts
    h2 = Harness(s, clock)
    h2.view.rate("a1", 0.6)
    h2.poll()
    [post] = slack.posts()
    assert "a1" in post.params["text"]
    h2.view.rate("a1", 0.0)
    h2.poll()
    assert len(slack.updates(post.answer["ts"])) == 1  # type: ignore[index]


def test_no_secret_in_any_log_line(
    tmp_path: Path, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for mode in ("bot", "webhook"):
        h = Harness(settings(tmp_path, slack, mode=mode))
        slack.server_error()
        slack.fail(drop=True)
        slack.rate_limit(retry_after=1)
        h.view.rate("a1", 0.6)
        h.poll()
        for _ in range(4):
            h.deliver(10)
        h.view.rate("a1", 0.0)
        h.poll()
        h.alerting.close()
        (tmp_path / "state.sqlite3").unlink()
    exposition = generate_latest(h.registry).decode()
    for secret in (TOKEN, slack.webhook_url, "s3cr3tw3bh00kp4th"):
        assert secret not in caplog.text
        assert secret not in exposition


def test_webhook_mode_sends_new_messages(tmp_path: Path, slack: FakeSlack) -> None:
    h = Harness(settings(tmp_path, slack, mode="webhook", repeat_interval="10m"))
    h.view.rate("a1", 0.6)
    h.poll()
    h.poll(600)
    h.view.rate("a1", 0.0)
    h.poll()
    hooks = slack.webhooks()
    assert [w.params["text"].split()[0] for w in hooks] == ["FIRING", "STILL", "RESOLVED"]
    assert slack.ok_requests("chat.update") == []


def test_console_mode_prints_firing_and_resolved(tmp_path: Path) -> None:
    out = io.StringIO()
    h = Harness(settings(tmp_path, None, mode="none"), stream=out)
    h.view.rate("a1", 0.5)
    h.poll()
    h.view.rate("a1", 0.05)
    h.poll()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "FIRING   failed-rate [critical] agent a1: failed rate 50.0% >= 25.0%" in lines[0]
    assert "RESOLVED failed-rate [critical] agent a1: failed rate 5.0% < 20.0%" in lines[1]
    assert "(after 30s, peak 50.0%)" in lines[1]
    assert h.sent("ok") == 0  # console output is not a Slack notification


def test_silenced_alert_is_evaluated_and_exported_but_not_posted(
    tmp_path: Path, slack: FakeSlack
) -> None:
    h = Harness(settings(tmp_path, slack))
    h.alerting.store.add_silence("a1", RULE, T0, T0 + 3600, "deploy")
    h.view.rate("a1", 0.6)
    h.view.rate("a2", 0.6)
    h.poll()
    assert h.metric("dialnexa_alert_firing", "a1") == 1
    assert [("a2" in p.params["text"]) for p in slack.posts()] == [True]
    h.poll(3600)  # the silence ended while a1 still fires: now it is posted
    assert len(slack.posts()) == 2 and "a1" in slack.posts()[1].params["text"]


def test_silenced_alert_that_resolves_posts_nothing(tmp_path: Path, slack: FakeSlack) -> None:
    h = Harness(settings(tmp_path, slack))
    h.alerting.store.add_silence("a1", None, T0, T0 + 3600, "deploy")
    h.view.rate("a1", 0.6)
    h.poll()
    h.view.rate("a1", 0.0)
    h.poll()
    assert slack.requests == []


def test_stale_alert_with_last_error(tmp_path: Path, slack: FakeSlack) -> None:
    h = Harness(settings(tmp_path, slack, rules=[]))
    h.last_success = None  # polls keep failing
    for _ in range(10):
        h.poll()
    [post] = slack.posts()
    text = blocks_text(post)
    assert "DialNexa data is stale" in text and "403: no" in text
    assert h.metric("dialnexa_alert_firing", "*", "stale") == 1
    h.last_success = T0
    h.poll()
    ts = post.answer["ts"]  # type: ignore[index]
    assert "fresh again" in blocks_text(slack.updates(ts)[0])


def test_stale_fires_from_the_timer_alone_when_no_poll_ever_succeeds(
    tmp_path: Path, slack: FakeSlack
) -> None:
    # a 403 key from the start: no backfill, so no poll evaluation ever runs
    h = Harness(settings(tmp_path, slack, rules=[], alerts={"stale_after": "2m"}))
    status = PollStatus(started_at=T0, last_error="403: no", last_error_kind="auth")
    for _ in range(30):
        now = h.clock.advance(5)
        h.alerting.on_tick(status, now)
        h.alerting.deliver_due(now)
    [post] = slack.posts()
    assert "DialNexa data is stale" in blocks_text(post)
    assert h.metric("dialnexa_alert_firing", "*", "stale") == 1


def test_workspace_scope_alert_uses_star_agent(tmp_path: Path, slack: FakeSlack) -> None:
    rules = [
        {
            "name": "workspace-failed",
            "outcome": "failed",
            "window": "15m",
            "threshold": 0.25,
            "scope": "workspace",
        }
    ]
    h = Harness(settings(tmp_path, slack, rules=rules))
    for i in range(4):
        h.view.set(f"a{i}", 10, failed=5)
    h.poll()
    assert h.metric("dialnexa_alert_firing", "*", "workspace-failed", "warning") == 1
    assert "all agents (workspace)" in slack.posts()[0].params["text"]


def test_metrics_precreated_and_only_agents_near_a_limit_have_series(tmp_path: Path) -> None:
    h = Harness(settings(tmp_path, None, mode="none"), stream=io.StringIO())
    reasons = ("ok", "rate_limited", "server_error", "timeout", "network_error")
    reasons += ("auth_error", "channel_error", "client_error")
    for reason in reasons:
        assert h.sent(reason) == 0
    h.view.rate("a1", 0.0)
    h.view.rate("a2", 0.25, calls=10)  # at the threshold but under min_calls
    h.view.rate("a3", 0.25, calls=40)  # could fire: evaluated and exported
    h.poll()
    assert h.metric("dialnexa_alert_firing", "a1") is None
    assert h.metric("dialnexa_alert_firing", "a2") is None
    assert h.metric("dialnexa_alert_firing", "a3") == 1
    assert h.metric("dialnexa_alert_pending", "a3") == 0


def test_rule_window_must_be_configured(tmp_path: Path) -> None:
    rules = [{"name": "x", "outcome": "failed", "window": "10m", "threshold": 0.5}]
    with pytest.raises(ConfigError, match=r"rules\[0\]\.window: 10m is not a configured window"):
        build_alerts(settings(tmp_path, None, rules=rules), CollectorRegistry(), FakeClock(T0))


def test_close_unregisters_and_is_idempotent(tmp_path: Path) -> None:
    h = Harness(settings(tmp_path, None, mode="none"), stream=io.StringIO())
    h.alerting.close()
    h.alerting.close()
    assert h.sent("ok") is None
    h.alerting.on_poll(h.view, PollStatus(started_at=T0), T0)  # ignored, no exception
    h.alerting.deliver_due(T0)


def test_a_store_that_refuses_writes_keeps_alerting_in_memory_and_pages_once_it_works(
    tmp_path: Path, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    # (test_daemon.py runs the daemon on a file system that refuses writes; here the real
    # SQLite connection is switched to refuse them, to check the pipeline in detail)
    h = Harness(settings(tmp_path, slack))
    conn = h.alerting.store._conn
    conn.execute("PRAGMA query_only = 1")
    h.view.rate("a1", 0.6)
    for _ in range(3):
        h.poll()  # logged and counted, never raised
    assert slack.requests == []
    assert h.metric("dialnexa_alert_firing") == 1  # evaluated in memory all along
    assert h.registry.get_sample_value("dialnexa_state_commit_failures_total") >= 3
    assert h.registry.get_sample_value("dialnexa_state_uncommitted_changes") >= 2
    assert h.alerting.readiness() == ["state store commit failing"]
    assert len([r for r in caplog.records if "COMMIT FAILED" in r.getMessage()]) == 1
    assert "readonly database" in caplog.text
    conn.execute("PRAGMA query_only = 0")  # writable again
    h.poll()
    assert len(slack.posts()) == 1  # the page arrives once, when the commit works
    assert h.alerting.readiness() == []
    assert h.registry.get_sample_value("dialnexa_state_uncommitted_changes") == 0
    h.poll()
    assert len(slack.posts()) == 1


@pytest.mark.slow
def test_a_slow_slack_gets_one_top_level_message_per_incident(
    tmp_path: Path, slack: FakeSlack
) -> None:
    # Slack stores each post but answers after the client's timeout (issue 9, item 10)
    notifier = SlackBotNotifier(TOKEN, CHANNEL_ID, api_url=slack.api_url, timeout=0.3)
    h = Harness(settings(tmp_path, slack), notifier=notifier)
    slack.slow("chat.postMessage", times=6)
    h.view.rate("a1", 0.6)
    h.poll()
    assert h.sent("timeout") == 1 and len(slack.top_level()) == 1
    for _ in range(6):
        h.deliver(600)
    assert len(slack.top_level()) == 1  # looked up, found, not posted again
    assert len(slack.posts()) == 1
    assert h.alerting.store.pending_count() == 0
    slack.release.set()
    h.view.rate("a1", 0.0)
    h.poll()
    [msg] = slack.top_level()
    assert len(slack.updates(msg.ts)) == 1  # the resolution edits the one message
