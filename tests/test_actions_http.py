"""Slack actions over HTTP (a Request URL on a listener of its own), end to end on loopback.

Requests are signed here by hand (HMAC-SHA256 of ``v0:<timestamp>:<body>``), independently of
slack-sdk's verifier that the daemon uses. A valid request is answered 200 and acted on; a
wrong signature, a timestamp more than 5 minutes off (the daemon's clock is a FakeClock) and
a replay of a valid request are each 401 with no state change.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from dialnexa_watchdog.actions.http import MAX_BODY, PATH, Verifier, decode
from dialnexa_watchdog.app import Actions, build_actions, build_alerts
from dialnexa_watchdog.cli.util import preflight
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.config import ConfigError
from dialnexa_watchdog.model import PollStatus
from fakeslack import CHANNEL_ID, TEAM_ID, FakeSlack
from fakesocket import block_actions, find_control, slash_command
from fakeview import FakeView
from prometheus_client import CollectorRegistry
from test_actions_socket import ALICE, EVE, ONCALL, settings

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def sign(body: bytes, ts: int, secret: str = SECRET) -> dict[str, str]:
    base = b"v0:" + str(ts).encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


class HttpWorld:
    def __init__(self, tmp_path: Path) -> None:
        self.slack = FakeSlack()
        self.slack.usergroups = {ONCALL: []}
        s = settings(
            tmp_path, self.slack, {"signing_secret": SECRET}, mode="http", listen="127.0.0.1:0"
        )
        self.settings = s
        self.clock = FakeClock(1_750_000_000.0)
        self.view = FakeView()
        self.alerts = build_alerts(s, CollectorRegistry(), self.clock, rand=lambda: 1.0)
        actions = build_actions(s, self.clock, self.alerts, self.view, threading.Lock())
        assert isinstance(actions, Actions)
        self.alerts.actions = actions
        self.url = actions.transport.url  # type: ignore[union-attr]
        self.http = httpx.Client(timeout=10)

    def close(self) -> None:
        self.http.close()
        self.alerts.close()
        self.slack.close()

    def fire(self, agent: str) -> None:
        # an action's delivery pass still running would make deliver_due return at once
        assert self.alerts.actions is not None
        assert self.alerts.actions.service.wait_idle(10), "a Slack action never finished"
        self.view.rate(agent, 0.3)
        now = self.clock.advance(30)
        self.alerts.on_poll(self.view, PollStatus(started_at=now, last_success=now), now)
        self.alerts.deliver_due(now)

    def click_body(self, action_id: str, who: tuple[str, str] = ALICE) -> bytes:
        [m] = self.slack.top_level()
        env = block_actions(
            find_control(m.blocks, action_id),
            user=who[0],
            name=who[1],
            team=TEAM_ID,
            channel=CHANNEL_ID,
            message={"ts": m.ts, "text": m.text, "blocks": m.blocks},
            response_url=self.slack.response_url(),
        )
        return urlencode({"payload": json.dumps(env["payload"])}).encode()

    def post(self, body: bytes, headers: dict[str, str], path: str = PATH) -> httpx.Response:
        return self.http.post(self.url.replace(PATH, path), content=body, headers=headers)

    def silences(self) -> int:
        return len(self.alerts.store.silences(None))


@pytest.fixture
def hw(tmp_path: Path) -> Iterator[HttpWorld]:
    w = HttpWorld(tmp_path)
    yield w
    w.close()


@pytest.mark.slow
def test_a_signed_click_is_answered_200_and_applied(hw: HttpWorld) -> None:
    hw.fire("a1")
    body = hw.click_body("dnx_silence_4h")
    started = time.monotonic()
    r = hw.post(body, sign(body, int(hw.clock.now())))
    assert r.status_code == 200 and r.text == ""
    assert time.monotonic() - started < 3.0
    assert hw.slack.wait(lambda: any("Silenced" in a for a in hw.slack.answers()))
    assert hw.silences() == 1


@pytest.mark.slow
def test_the_answer_comes_before_the_work(hw: HttpWorld) -> None:
    """200 is sent while the work (here: answering through response_url) is still held."""
    hw.fire("a1")
    hw.slack.slow("response_url")
    body = hw.click_body("dnx_ack")
    r = hw.post(body, sign(body, int(hw.clock.now())))
    assert r.status_code == 200
    assert not hw.slack.answers()  # the work had not finished when Slack got its 200
    hw.slack.release.set()
    assert hw.slack.wait(lambda: any("You acknowledged" in a for a in hw.slack.answers()))


@pytest.mark.parametrize(
    "tamper",
    ["wrong signature", "wrong secret", "stale", "future", "no timestamp", "garbage timestamp"],
)
@pytest.mark.slow
def test_bad_requests_are_401_and_change_nothing(hw: HttpWorld, tamper: str) -> None:
    hw.fire("a1")
    outbox = hw.alerts.store.outbox()
    body = hw.click_body("dnx_silence_4h")
    now = int(hw.clock.now())
    headers = sign(body, now)
    if tamper == "wrong signature":
        headers = sign(body + b"x", now)
    elif tamper == "wrong secret":
        headers = sign(body, now, SECRET[:-1] + "0")
    elif tamper == "stale":
        headers = sign(body, now - 301)
    elif tamper == "future":
        headers = sign(body, now + 301)
    elif tamper == "no timestamp":
        del headers["X-Slack-Request-Timestamp"]
    else:
        headers["X-Slack-Request-Timestamp"] = "1e9"
    r = hw.post(body, headers)
    assert r.status_code == 401
    # the same click, signed properly, shows the path works (and that nothing was queued)
    good = hw.post(body, sign(body, now))
    assert good.status_code == 200
    assert hw.slack.wait(lambda: len(hw.slack.answers()) == 1)
    assert hw.silences() == 1
    assert len(hw.alerts.store.outbox()) == len(outbox) + 2  # one edit, one reply


def test_a_replayed_request_is_401_and_applies_once(hw: HttpWorld) -> None:
    hw.fire("a1")
    body = hw.click_body("dnx_silence_1h")
    headers = sign(body, int(hw.clock.now()))
    assert hw.post(body, headers).status_code == 200
    assert hw.slack.wait(lambda: len(hw.slack.answers()) == 1)
    hw.clock.advance(60)  # still inside the 5-minute window
    assert hw.post(body, headers).status_code == 401
    assert hw.silences() == 1
    assert len(hw.slack.answers()) == 1


def test_slash_command_over_http(hw: HttpWorld) -> None:
    env = slash_command(
        "help",
        user=ALICE[0],
        name="alice",
        team=TEAM_ID,
        channel=CHANNEL_ID,
        response_url=hw.slack.response_url(),
    )
    body = urlencode(env["payload"]).encode()
    assert hw.post(body, sign(body, int(hw.clock.now()))).status_code == 200
    assert hw.slack.wait(lambda: any("/dialnexa status" in a for a in hw.slack.answers()))


def test_not_allowed_over_http(hw: HttpWorld) -> None:
    hw.fire("a1")
    body = hw.click_body("dnx_silence_1h", who=EVE)
    assert hw.post(body, sign(body, int(hw.clock.now()))).status_code == 200
    assert hw.slack.wait(lambda: any("not allowed" in a for a in hw.slack.answers()))
    assert hw.silences() == 0


@pytest.mark.slow
def test_other_paths_methods_and_sizes(hw: HttpWorld) -> None:
    body = b"x=1"
    now = int(hw.clock.now())
    assert hw.post(body, sign(body, now), path="/other").status_code == 404
    assert hw.http.get(hw.url).status_code == 405
    big = b"x" * (MAX_BODY + 1)
    assert hw.post(big, sign(big, now)).status_code == 413
    assert hw.post(body, sign(body, now)).status_code == 400  # signed, but neither kind
    ssl = b"ssl_check=1&token=x"
    assert hw.post(ssl, sign(ssl, now)).status_code == 200


def test_the_listener_must_bind(tmp_path: Path) -> None:
    slack = FakeSlack()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        listen = f"127.0.0.1:{busy.getsockname()[1]}"
        s = settings(tmp_path, slack, {"signing_secret": SECRET}, mode="http", listen=listen)
        alerts = build_alerts(s, CollectorRegistry(), FakeClock(0.0))
        try:
            with pytest.raises(ConfigError, match=r"slack\.actions\.listen: cannot listen"):
                build_actions(s, FakeClock(0.0), alerts, FakeView(), threading.Lock())
        finally:
            alerts.close()
    finally:
        busy.close()
        slack.close()


def test_verifier_and_decode_units() -> None:
    clock = FakeClock(1000.0)
    v = Verifier(SECRET, clock)
    body = b"command=%2Fdialnexa&text=help"
    h = sign(body, 1000)
    ts, sig = h["X-Slack-Request-Timestamp"], h["X-Slack-Signature"]
    assert v.check(body, ts, sig) is None
    assert v.check(body, ts, sig) == "replayed request"
    assert v.check(body, ts, "v1=abc") == "missing or malformed X-Slack-Signature"
    clock.advance(301)
    assert "stale" in (v.check(body, ts, sig) or "")
    assert decode(body) == ("slash_commands", {"command": "/dialnexa", "text": "help"})
    assert decode(b"payload=%7Bnot+json") is None
    assert decode(b"\xff\xfe") is None
    payload: Any = decode(urlencode({"payload": '{"type": "block_actions"}'}).encode())
    assert payload == ("interactive", {"type": "block_actions"})


def test_check_config_binds_the_actions_listener_too(tmp_path: Path) -> None:
    slack = FakeSlack()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port = busy.getsockname()[1]
        s = settings(
            tmp_path, slack, {"signing_secret": SECRET}, mode="http", listen=f"127.0.0.1:{port}"
        )
        problems = preflight(s)
        assert any(
            p.startswith(f"slack.actions.listen: cannot listen on 127.0.0.1:{port}: the port is")
            for p in problems
        ), problems
        same = s.model_copy(
            update={"metrics": s.metrics.model_copy(update={"listen": f"0.0.0.0:{port}"})}
        )
        assert any("uses the metrics port" in p for p in preflight(same))
    finally:
        busy.close()
        slack.close()
    free = settings(tmp_path, slack, {"signing_secret": SECRET}, mode="http", listen="127.0.0.1:0")
    assert not [p for p in preflight(free) if p.startswith("slack.actions.listen")]
