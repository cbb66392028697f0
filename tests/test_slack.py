"""Slack notifiers against the fake Slack Web API over loopback, and message rendering."""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.error import URLError

import pytest
from dialnexa_watchdog.cli import main
from dialnexa_watchdog.notify import AlertSnapshot, MessageRef, Notice
from dialnexa_watchdog.notify.console import ConsoleNotifier
from dialnexa_watchdog.notify.message import render_slack, render_text
from dialnexa_watchdog.notify.slack import (
    CLOCK_SKEW,
    EVENT_TYPE,
    HISTORY_PAGE,
    SlackBotNotifier,
    SlackWebhookNotifier,
    incident_key,
    incident_metadata,
)
from dialnexa_watchdog.notify.slack_errors import classify, classify_exception, transport_failure
from dialnexa_watchdog.notify.wording import escape, sparkline
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


def main_notice(
    *alerts: AlertSnapshot, op: str = "post", kind: str = "main", incident: str = "inc-1"
) -> Notice:
    return Notice(kind, op, incident, "failed-rate", len(alerts) > 1, T0, T0, alerts)  # type: ignore[arg-type]


def bot(
    fake: FakeSlack, token: str = TOKEN, channel: str = CHANNEL_ID, timeout: float = 5
) -> SlackBotNotifier:
    return SlackBotNotifier(token, channel, api_url=fake.api_url, timeout=timeout)


def free_port() -> int:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port: int = closed.getsockname()[1]
    closed.close()
    return port


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


def test_network_errors_name_the_host_and_what_failed(slack: FakeSlack) -> None:
    slack.fail("chat.postMessage", drop=True)
    r = bot(slack).send(main_notice(snap()), None)
    host = slack.base.removeprefix("http://")
    assert (r.reason, r.error) == (
        "network_error",
        f"the connection to {host} was lost (RemoteDisconnected)",
    )
    assert r.maybe_delivered  # the request went out: Slack may have posted it
    port = free_port()
    r = SlackBotNotifier(TOKEN, CHANNEL_ID, f"http://127.0.0.1:{port}/api/").send(
        main_notice(snap()), None
    )
    assert (r.reason, r.error) == ("network_error", f"connection refused by 127.0.0.1:{port}")
    assert not r.maybe_delivered  # nothing was sent
    assert classify_exception(URLError(TimeoutError("timed out"))) == "timeout"
    assert classify_exception(TimeoutError("timed out")) == "timeout"


def test_transport_failures_without_a_wire_to_provoke_them() -> None:
    """DNS and certificate failures need a resolver or a CA this test cannot stand up."""
    dns = transport_failure(
        URLError(socket.gaierror(-2, "Name or service not known")), "slack.example", 3, posting=True
    )
    assert (dns.reason, dns.error, dns.maybe_delivered) == (
        "network_error",
        "DNS lookup failed for slack.example",
        False,
    )
    cert = transport_failure(
        URLError(ssl.SSLCertVerificationError(1, "self-signed")), "slack.example", 3, posting=True
    )
    assert "TLS certificate of slack.example is not trusted" in cert.error
    assert not cert.maybe_delivered
    slow = transport_failure(TimeoutError("timed out"), "slack.example", 2.5, posting=True)
    assert (slow.reason, slow.error, slow.maybe_delivered) == (
        "timeout",
        "no answer from slack.example within 2.5s",
        True,
    )
    assert not transport_failure(TimeoutError(), "h", 1, posting=False).maybe_delivered


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


# ---- a slow Slack: posted, but answered after the timeout (issue 9, item 10) --------------


def history_requests(fake: FakeSlack) -> list[Any]:
    return [r for r in fake.requests if r.method == "conversations.history"]


@pytest.mark.slow
def test_a_post_answered_too_late_is_maybe_delivered_and_found_again(slack: FakeSlack) -> None:
    n = bot(slack, timeout=0.3)
    slack.slow("chat.postMessage")  # Slack stores the message, answers after the timeout
    r = n.send(main_notice(snap()), None)
    assert (r.reason, r.transient, r.maybe_delivered, r.ref) == ("timeout", True, True, None)
    [posted] = slack.top_level()  # it did arrive
    assert posted.metadata == incident_metadata("inc-1", "main", T0)

    found = n.find_posted("inc-1", since=T0)
    assert found.ok and found.ref == MessageRef(CHANNEL_ID, posted.ts)
    [req] = history_requests(slack)
    assert req.params["channel"] == CHANNEL_ID
    assert req.params["include_all_metadata"] in ("1", "true", True)
    assert float(req.params["oldest"]) == T0 - CLOCK_SKEW
    # another incident's post, or another kind of notice, is not taken for it
    assert n.find_posted("inc-2", since=T0) == n.find_posted("inc-1", T0, kind="repeat")
    assert n.find_posted("inc-2", since=T0).ok and n.find_posted("inc-2", since=T0).ref is None
    assert len(slack.top_level()) == 1


def test_find_posted_pages_through_history_and_honours_since(slack: FakeSlack) -> None:
    n = bot(slack)
    key = incident_metadata("inc-old", "main", T0 - 9000)
    slack.add_message(f"{T0 - 9000:.6f}", metadata=key)  # before ``since``: not looked at
    target = incident_metadata("inc-1", "main", T0)
    slack.add_message(f"{T0 + 1:.6f}", metadata=target)
    for i in range(2 * HISTORY_PAGE + 50):  # newer messages push it to the third page
        other = incident_metadata(f"other-{i}", "main", T0)
        slack.add_message(f"{T0 + 10 + i:.6f}", metadata=other if i % 2 else None)
    found = n.find_posted("inc-1", since=T0)
    assert found.ok and found.ref == MessageRef(CHANNEL_ID, f"{T0 + 1:.6f}")
    reqs = history_requests(slack)
    assert len(reqs) == 3 and [r.params.get("cursor") for r in reqs[1:]] == ["next_200", "next_400"]
    assert n.find_posted("inc-old", since=T0).ref is None
    assert n.find_posted("inc-old", since=T0 - 9000).ref is not None


@pytest.mark.slow
def test_a_slow_history_says_ask_again_later(slack: FakeSlack) -> None:
    n = bot(slack, timeout=0.3)
    slack.slow("conversations.history")
    r = n.find_posted("inc-1", since=T0)
    assert (r.reason, r.transient, r.maybe_delivered) == ("timeout", True, False)
    slack.rate_limit("conversations.history", retry_after=9)
    r = n.find_posted("inc-1", since=T0)
    assert (r.reason, r.retry_after) == ("rate_limited", 9)
    assert n.can_find_posted


def test_without_the_history_scope_it_falls_back_and_says_so_once(
    slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    slack.scopes = {"chat:write"}
    n = bot(slack)
    caplog.set_level(logging.WARNING)
    first = n.find_posted("inc-1", since=T0)
    second = n.find_posted("inc-2", since=T0)
    assert (first.reason, first.error, first.transient) == ("auth_error", "missing_scope", False)
    assert "channels:history scope" in first.fix and second == first
    assert not n.can_find_posted
    assert len(history_requests(slack)) == 1
    warnings = [r for r in caplog.records if "history" in r.getMessage()]
    assert len(warnings) == 1 and "twice" in warnings[0].getMessage()
    assert TOKEN not in caplog.text


def test_a_channel_name_is_looked_up_by_the_id_slack_answered_with(slack: FakeSlack) -> None:
    n = bot(slack, channel="#alerts")
    assert n.send(main_notice(snap()), None).ok  # Slack answers with the channel ID
    assert n.find_posted("inc-1", since=T0).ref is not None
    fresh = bot(slack, channel="#alerts")  # no post yet: the name is all it has
    r = fresh.find_posted("inc-1", since=T0)
    assert (r.reason, r.error) == ("channel_error", "channel_not_found")
    assert "channel ID" in r.fix and not fresh.can_find_posted


@pytest.mark.slow
def test_a_webhook_cannot_look_up_and_says_so(slack: FakeSlack) -> None:
    hook = SlackWebhookNotifier(slack.webhook_url, timeout=0.3)
    slack.slow("webhook")
    r = hook.send(main_notice(snap()), None)
    assert (r.reason, r.maybe_delivered) == ("timeout", True)
    assert not hook.can_find_posted
    look = hook.find_posted("inc-1", since=T0)
    assert not look.ok and not look.transient and "cannot look messages up" in look.error
    assert history_requests(slack) == []
    console = ConsoleNotifier()
    assert not console.can_find_posted and not console.find_posted("inc-1", T0).ok


@pytest.mark.slow
def test_only_failures_after_sending_are_maybe_delivered(slack: FakeSlack) -> None:
    n = bot(slack)
    slack.rate_limit("chat.postMessage")
    assert not n.send(main_notice(snap()), None).maybe_delivered  # 429: not processed
    slack.api_error("invalid_auth", "chat.postMessage")
    assert not n.send(main_notice(snap()), None).maybe_delivered
    slack.server_error("chat.postMessage")
    assert n.send(main_notice(snap()), None).maybe_delivered  # a 5xx may follow the post
    slack.slow("chat.update")
    ref = n.send(main_notice(snap()), None).ref
    assert ref is not None
    late = bot(slack, timeout=0.3).send(main_notice(snap(), op="update"), ref)
    assert late.reason == "timeout" and not late.maybe_delivered  # edits repeat harmlessly


def test_incident_key_is_short_and_stable() -> None:
    assert incident_key("x" * 5000) == incident_key("x" * 5000)
    assert len(incident_key("x" * 5000)) == 32 and incident_key("a") != incident_key("b")
    assert incident_metadata("a", "main", T0)["event_type"] == EVENT_TYPE


# ---- slack-test says what is wrong: the network, the token, or the history scope ---------


def slack_config(tmp_path: Path, section: str) -> str:
    path = tmp_path / "watchdog.yaml"
    path.write_text(f"state: {{path: {tmp_path / 's.sqlite3'}}}\n{section}\n", encoding="utf-8")
    return str(path)


def bot_section(api_url: str, token: str = TOKEN) -> str:
    return f"slack: {{token: {token}, channel: '{CHANNEL_ID}', api_url: '{api_url}'}}"


def test_slack_test_checks_the_history_scope(
    tmp_path: Path, slack: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = slack_config(tmp_path, bot_section(slack.api_url))
    assert main(["slack-test", "-c", cfg]) == 0
    out = capsys.readouterr().out
    assert "token ok" in out and "reads the channel's history" in out
    [posted] = slack.top_level()
    assert posted.metadata is not None and posted.metadata["event_type"] == EVENT_TYPE

    slack.scopes = {"chat:write"}
    assert main(["slack-test", "-c", cfg]) == 0  # alerts still work
    err = capsys.readouterr().err
    assert "warning: cannot look posts up" in err and "missing_scope" in err
    assert "channels:history" in err and "posted twice" in err


def test_slack_test_does_not_blame_the_token_for_the_network(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    cfg = slack_config(tmp_path, bot_section(f"http://127.0.0.1:{port}/api/"))
    assert main(["slack-test", "-c", cfg]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach Slack: connection refused by 127.0.0.1:{port}" in err
    assert "the token was not checked" in err and "does not work" not in err
    assert TOKEN not in err


def test_slack_test_names_a_tls_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An https:// URL pointing at a plain-HTTP server: the TLS handshake fails."""

    class Plain(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Plain)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}/api/"
        assert main(["slack-test", "-c", slack_config(tmp_path, bot_section(url))]) == 1
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err
    assert "cannot reach Slack: TLS error with 127.0.0.1" in err
    assert "the token was not checked" in err


@pytest.mark.slow
def test_slack_test_with_a_slow_webhook(
    tmp_path: Path, slack: FakeSlack, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = slack_config(tmp_path, f"slack: {{webhook_url: '{slack.webhook_url}'}}")
    assert main(["slack-test", "-c", cfg]) == 0
    assert "a webhook cannot read the channel" in capsys.readouterr().out
    slack.slow("webhook")
    cfg = slack_config(tmp_path, f"slack: {{webhook_url: '{slack.webhook_url}', timeout: 1s}}")
    assert main(["slack-test", "-c", cfg]) == 1
    err = capsys.readouterr().err
    host = slack.base.removeprefix("http://")
    assert f"cannot reach Slack: no answer from {host} within 1s" in err
    assert "s3cr3tw3bh00kp4th" not in err


def test_a_notice_that_cannot_be_rendered_is_a_result_not_an_exception(
    slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    broken = Notice("bogus", "post", "inc-1", "r", False, T0, T0, (snap(),))  # type: ignore[arg-type]
    for notifier in (bot(slack), SlackWebhookNotifier(slack.webhook_url)):
        r = notifier.send(broken, None)
        assert (r.reason, r.transient) == ("client_error", False)
    assert "cannot render" in caplog.text and slack.requests == []
