"""Slack notifiers against the fake Slack Web API over loopback, and message rendering."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from urllib.error import URLError

import pytest
from dialnexa_watchdog.notify import AlertSnapshot, MessageRef, Notice
from dialnexa_watchdog.notify.message import escape, render_slack, render_text, sparkline
from dialnexa_watchdog.notify.slack import (
    SlackBotNotifier,
    SlackWebhookNotifier,
    classify,
    classify_exception,
)
from fakeslack import CHANNEL_ID, TOKEN, FakeSlack

T0 = 1_750_000_000.0


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.close()


def snap(agent: str = "agt_k7m2nq9xw4p8", state: str = "firing", **kw: object) -> AlertSnapshot:
    base: dict[str, object] = {
        "rule": "failed-rate",
        "agent_id": agent,
        "severity": "critical",
        "state": state,
        "outcome": "failed",
        "window": "15m",
        "rate": 0.31,
        "calls": 42,
        "hits": 13,
        "threshold": 0.25,
        "clear_below": 0.2,
        "fired_at": T0,
        "peak_rate": 0.41,
        "sparkline": (0.05, 0.1, None, 0.3, 0.41),
    }
    base.update(kw)
    return AlertSnapshot(**base)  # type: ignore[arg-type]


def main_notice(*alerts: AlertSnapshot, op: str = "post", kind: str = "main") -> Notice:
    return Notice(kind, op, "inc-1", "failed-rate", len(alerts) > 1, T0, T0, alerts)  # type: ignore[arg-type]


def bot(fake: FakeSlack, token: str = TOKEN, channel: str = CHANNEL_ID) -> SlackBotNotifier:
    return SlackBotNotifier(token, channel, api_url=fake.api_url, timeout=5)


def test_post_reply_update_round_trip(slack: FakeSlack) -> None:
    n = bot(slack)
    posted = n.send(main_notice(snap()), None)
    assert posted.ok and posted.ref is not None
    assert posted.ref.channel == CHANNEL_ID
    [post] = slack.posts()
    assert "FIRING" in post.params["text"] and post.params["blocks"]
    assert post.headers["Authorization"] == f"Bearer {TOKEN}"

    reply = n.send(main_notice(snap(), op="reply", kind="repeat"), posted.ref)
    assert reply.ok
    assert slack.replies(posted.ref.ts)[0].params["text"].startswith("🔁 Still firing")

    resolved = snap(state="resolved", resolved_at=T0 + 1380, resolved_rate=0.12)
    upd = n.send(main_notice(resolved, op="update"), posted.ref)
    assert upd.ok
    [u] = slack.updates(posted.ref.ts)
    assert "RESOLVED" in u.params["text"]
    body = json.dumps(u.params["blocks"])
    assert "12.0%" in body and "41.0%" in body and "23m" in body


@pytest.mark.parametrize(
    ("setup", "reason", "error"),
    [
        (lambda f: f.rate_limit("chat.postMessage", retry_after=7), "rate_limited", "ratelimited"),
        (lambda f: f.server_error("chat.postMessage"), "server_error", "HTTP 500"),
        (lambda f: f.api_error("internal_error"), "server_error", "internal_error"),
        (lambda f: f.api_error("msg_too_long"), "client_error", "msg_too_long"),
        (lambda f: f.api_error("missing_scope"), "auth_error", "missing_scope"),
    ],
)
def test_failures_are_classified(slack: FakeSlack, setup, reason: str, error: str) -> None:  # type: ignore[no-untyped-def]
    setup(slack)
    r = bot(slack).send(main_notice(snap()), None)
    assert (r.reason, r.error) == (reason, error)
    if reason == "rate_limited":
        assert r.retry_after == 7


def test_auth_and_channel_errors_say_how_to_fix(slack: FakeSlack) -> None:
    r = bot(slack, token="xoxb-wrong").send(main_notice(snap()), None)
    assert (r.reason, r.error) == ("auth_error", "invalid_auth")
    assert "Bot User OAuth Token" in r.fix

    r = bot(slack, channel="#nope").send(main_notice(snap()), None)
    assert (r.reason, r.error) == ("channel_error", "channel_not_found")

    slack.member_of.clear()
    r = bot(slack).send(main_notice(snap()), None)
    assert (r.reason, r.error) == ("channel_error", "not_in_channel")
    assert "/invite" in r.fix


def test_network_errors(slack: FakeSlack) -> None:
    slack.fail("chat.postMessage", drop=True)
    r = bot(slack).send(main_notice(snap()), None)
    assert r.reason == "network_error"
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    r = SlackBotNotifier(TOKEN, CHANNEL_ID, f"http://127.0.0.1:{port}/api/").send(
        main_notice(snap()), None
    )
    assert r.reason == "network_error"
    assert classify_exception(URLError(TimeoutError("timed out"))) == "timeout"
    assert classify_exception(TimeoutError("timed out")) == "timeout"


def test_classify_table() -> None:
    assert classify(200, None) == "ok"
    assert classify(429, None) == "rate_limited"
    assert classify(503, None) == "server_error"
    assert classify(200, "not_in_channel") == "channel_error"
    assert classify(403, "invalid_token") == "auth_error"
    assert classify(404, "channel_not_found") == "channel_error"
    assert classify(400, "invalid_payload") == "client_error"


def test_agent_id_like_channel_ping_arrives_escaped(slack: FakeSlack) -> None:
    evil = snap(agent="<!channel>", agent_name="<https://evil.example|click> & co")
    bot(slack).send(main_notice(evil), None)
    [post] = slack.posts()
    assert "<!channel>" not in post.body
    assert "evil.example|click>" not in post.body
    assert "&lt;!channel&gt;" in post.body
    assert "&amp; co" in post.body


def test_webhook_posts_and_classifies(slack: FakeSlack) -> None:
    hook = SlackWebhookNotifier(slack.webhook_url, timeout=5)
    assert hook.send(main_notice(snap()), None).ok
    [w] = slack.webhooks()
    assert "FIRING" in w.params["text"]
    assert not hook.can_edit
    slack.fail("webhook", status=403, error="invalid_token")
    r = hook.send(main_notice(snap()), None)
    assert (r.reason, r.error) == ("auth_error", "invalid_token")
    slack.fail("webhook", status=404, error="channel_not_found")
    assert hook.send(main_notice(snap()), None).reason == "channel_error"
    slack.fail("webhook", status=429, error="rate_limited", retry_after=3)
    r = hook.send(main_notice(snap()), None)
    assert (r.reason, r.retry_after) == ("rate_limited", 3)


def test_no_secret_in_results_or_logs(slack: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    slack.server_error()
    slack.fail(drop=True)
    hook = SlackWebhookNotifier(slack.webhook_url)
    results = [hook.send(main_notice(snap()), None) for _ in range(3)]
    results += [bot(slack, token=TOKEN).send(main_notice(snap()), None)]
    results += [bot(slack, token="xoxb-wrong-secret").send(main_notice(snap()), None)]
    text = caplog.text + " ".join(f"{r.error} {r.fix}" for r in results)
    for secret in (TOKEN, "xoxb-wrong-secret", slack.webhook_url, "s3cr3tw3bh00kp4th"):
        assert secret not in text


def test_group_message_lists_members_and_marks_resolved(slack: FakeSlack) -> None:
    members = [snap(f"agt_{i}", rate=0.3 + i / 100) for i in range(6)]
    members[0] = snap("agt_0", state="resolved", resolved_at=T0 + 600, resolved_rate=0.1)
    msg = render_slack(main_notice(*members), None)
    body = json.dumps(msg.blocks, ensure_ascii=False)
    assert "5 of 6 agents firing" in body
    assert "~`agt_0`~" in body and "resolved at 10.0%" in body


def test_dashboard_link_is_quoted_and_escaped() -> None:
    msg = render_slack(
        main_notice(snap(agent="a&b")), "https://grafana.example/d/x?agent={agent_id}&x=1"
    )
    body = json.dumps(msg.blocks)
    assert "https://grafana.example/d/x?agent=a%26b&amp;x=1|Open dashboard" in body


def test_sparkline_and_terminal_text() -> None:
    assert sparkline([0.0, 0.5, 1.0, None]) == "▁▅█·"
    assert sparkline([None, None]) == ""
    text = render_text(main_notice(snap()))
    assert text.startswith("FIRING   failed-rate [critical] agent agt_k7m2nq9xw4p8")
    assert "31.0% >= 25.0% over 15m (13 of 42 calls)" in text
    assert "\x1b" not in render_text(main_notice(snap(agent="\x1b[31mred")))
    assert escape("<a&b>") == "&lt;a&amp;b&gt;"


def test_message_ref_is_plain_data() -> None:
    assert MessageRef("C1", "1.0") == MessageRef("C1", "1.0")


def test_a_held_alert_is_not_described_as_over_threshold() -> None:
    text = render_text(main_notice(snap(rate=0.22)))
    assert ">= 25.0%" not in text.split("(fires")[0]
    assert "22.0% (fires at >= 25.0%, clears below 20.0%)" in text
