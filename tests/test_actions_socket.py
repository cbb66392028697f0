"""Slack actions over Socket Mode, end to end on loopback (issue 14).

The fake Slack answers ``apps.connections.open`` with the ``ws://127.0.0.1`` URL of a real
WebSocket server (``fakesocket.py``); slack-sdk's built-in Socket Mode client connects to it
as it would to Slack. The server sends real-shaped ``interactive`` (block_actions) and
``slash_commands`` envelopes built from the messages the daemon actually posted, checks each
is acknowledged within 3 seconds, and the test reads the effect in the state store, in the
fake Slack's messages (the edit, the thread reply) and in the ephemeral answers. Alert time is
a FakeClock; waits are deadlines on events, never sleeps.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dialnexa_watchdog.alerts.state import State
from dialnexa_watchdog.alerts.store import Store
from dialnexa_watchdog.app import build, build_actions, build_alerts
from dialnexa_watchdog.cli import main
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.config import Settings
from dialnexa_watchdog.model import PollStatus
from dialnexa_watchdog.notify.limits import check_blocks
from fakeslack import APP_TOKEN, CHANNEL_ID, TEAM_ID, TOKEN, FakeSlack, Message
from fakesocket import FakeSocketMode, block_actions, find_control, slash_command
from fakeview import FakeView
from prometheus_client import CollectorRegistry, generate_latest

T0 = 1_750_000_000.0
RULE = "failed-rate"
ALICE = ("U0ALICE01", "alice")  # allowed by user id
BOB = ("U0BOB0001", "bob")  # allowed through the on-call user group
EVE = ("U0EVE0001", "eve")  # neither
ONCALL = "S0ONCALL1"


def settings(
    tmp_path: Path, slack: FakeSlack, slack_kw: dict[str, Any] | None = None, **actions: Any
) -> Settings:
    cfg: dict[str, Any] = {
        "mode": "socket",
        "allowed_users": [ALICE[0]],
        "allowed_usergroups": [ONCALL],
    }
    cfg.update(actions)
    return Settings(
        windows=["5m", "15m", "1h"],
        rules=[
            {
                "name": RULE,
                "outcome": "failed",
                "window": "15m",
                "threshold": 0.25,
                "clear_below": 0.2,
                "min_calls": 20,
                "severity": "critical",
            }
        ],
        slack={
            "token": TOKEN,
            "channel": CHANNEL_ID,
            "api_url": slack.api_url,
            "app_token": APP_TOKEN,
            "repeat_interval": "1h",
            "actions": cfg,
            **(slack_kw or {}),
        },
        state={"path": str(tmp_path / "state.sqlite3")},
    )


class World:
    """The alert path and Slack actions (as app.build wires them) against a FakeView, the
    fake Slack and the fake Socket Mode server."""

    def __init__(self, tmp_path: Path, **actions: Any) -> None:
        self.tmp_path = tmp_path
        self.slack = FakeSlack()
        self.ws = FakeSocketMode()
        self.slack.socket = self.ws
        self.slack.usergroups = {ONCALL: [BOB[0]]}
        self.settings = settings(tmp_path, self.slack, **actions)
        # a fake clock that starts 10 minutes ago, so that the CLI (on the system clock) sees
        # the silences this test makes as active
        self.clock = FakeClock(float(int(time.time())) - 600)
        self.view = FakeView()
        self.alerts = build_alerts(self.settings, CollectorRegistry(), self.clock, rand=lambda: 1.0)
        self.alerts.actions = build_actions(
            self.settings, self.clock, self.alerts, self.view, threading.Lock(), socket_ping=0.5
        )
        assert self.ws.wait_connections(1), "the Socket Mode client never connected"

    def close(self) -> None:
        self.alerts.close()
        self.ws.close()
        self.slack.close()

    def poll(self, advance: float = 30) -> None:
        # the daemon retries delivery every second; here only polls deliver, and a pass an
        # action's thread is still running makes deliver_due return at once: let it end
        actions = self.alerts.actions
        assert actions is None or actions.service.wait_idle(10), "a Slack action never finished"
        now = self.clock.advance(advance)
        status = PollStatus(started_at=now, last_success=now)
        self.alerts.on_poll(self.view, status, now)
        self.alerts.deliver_due(now)

    def fire(self, *agents: str, rate: float = 0.3) -> None:
        for a in agents:
            self.view.rate(a, rate)
        self.poll()

    def message_of(self, agent: str) -> Message:
        for m in self.slack.top_level():
            if f"`{agent}`" in m.text:
                return m
        raise LookupError(agent)

    def click(
        self,
        agent: str,
        action_id: str,
        who: tuple[str, str] = ALICE,
        team: str = TEAM_ID,
        menu: tuple[str, str] | None = None,
    ) -> str:
        """Press a control on ``agent``'s message, as Slack would send it; returns the
        envelope id."""
        m = self.message_of(agent)
        if menu is not None:
            control = find_control(m.blocks, "dnx_agent", agent=menu[0], choice=menu[1])
        else:
            control = find_control(m.blocks, action_id)
        env = block_actions(
            control,
            user=who[0],
            name=who[1],
            team=team,
            channel=CHANNEL_ID,
            message={"ts": m.ts, "text": m.text, "blocks": m.blocks},
            response_url=self.slack.response_url(),
        )
        self.ws.send(env)
        return str(env["envelope_id"])

    def command(self, text: str, who: tuple[str, str] = ALICE, team: str = TEAM_ID) -> str:
        env = slash_command(
            text,
            user=who[0],
            name=who[1],
            team=team,
            channel=CHANNEL_ID,
            response_url=self.slack.response_url(),
        )
        self.ws.send(env)
        return str(env["envelope_id"])

    def acked(self, envelope_id: str, count: int = 1) -> float:
        ack = self.ws.wait_ack(envelope_id, count=count)
        assert ack is not None, f"{envelope_id} was never acknowledged"
        return ack.seconds

    def answer(self, needle: str, count: int = 1) -> list[str]:
        assert self.slack.wait(lambda: sum(needle in a for a in self.slack.answers()) >= count), (
            needle,
            self.slack.answers(),
        )
        return [a for a in self.slack.answers() if needle in a]

    def store(self) -> Store:
        return self.alerts.store  # type: ignore[return-value]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    w.close()


def texts(req: Any) -> str:
    return json.dumps(req.params.get("blocks"), ensure_ascii=False) + str(req.params.get("text"))


def test_every_firing_message_carries_the_buttons_within_slacks_limits(world: World) -> None:
    world.fire("a1")
    [post] = world.slack.posts()
    blocks = post.params["blocks"]
    assert check_blocks({"text": post.params["text"], "blocks": blocks}) == []
    [actions] = [b for b in blocks if b["type"] == "actions"]
    labels = [e["text"]["text"] for e in actions["elements"]]
    assert labels == ["Acknowledge", "Silence 1h", "Silence 4h", "Silence until resolved"]
    # values carry the incident's hash, never the agent id
    assert all(re.fullmatch(r"[0-9a-f]{32}", e["value"]) for e in actions["elements"])


def test_acknowledge_edits_the_message_replies_in_the_thread_and_stops_repeats(
    world: World,
) -> None:
    world.fire("a1", "a2")
    eid = world.click("a1", "dnx_ack")
    assert world.acked(eid) < 3.0
    [answer] = world.answer("You acknowledged")
    assert "`a1`" in answer
    ts = world.message_of("a1").ts
    assert world.slack.wait(lambda: bool(world.slack.updates(ts)) and bool(world.slack.replies(ts)))
    [edit] = world.slack.updates(ts)
    assert "Acknowledged by @alice at <!date^" in texts(edit)
    assert "dnx_ack" not in texts(edit)  # no Acknowledge button once acknowledged
    assert "dnx_silence_1h" in texts(edit)
    [reply] = world.slack.replies(ts)
    assert reply.params["text"].startswith("✅ Acknowledged by @alice")
    [inc] = [i for i in world.store().load_incidents().values() if "a1" in i.members]
    assert (inc.acked_by, inc.acked_at) == ("@alice", world.clock.now())
    # an hour later a2 (not acknowledged) gets its reminder; a1 gets none
    for _ in range(125):
        world.poll()
    ts2 = world.message_of("a2").ts
    assert any("Still firing" in r.params["text"] for r in world.slack.replies(ts2))
    assert not any("Still firing" in r.params["text"] for r in world.slack.replies(ts))
    # the resolution still edits the message and says so in the thread
    world.view.rate("a1", 0.05)
    world.poll()
    assert "RESOLVED" in world.slack.updates(ts)[-1].params["text"]
    assert "Acknowledged by @alice" in texts(world.slack.updates(ts)[-1])
    assert world.slack.replies(ts)[-1].params["text"].startswith("✅ Resolved")


def test_a_silence_from_a_button_is_the_cli_silence_with_who_and_when(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.fire("a1")
    eid = world.click("a1", "dnx_silence_1h", who=BOB)  # bob may act through the user group
    assert world.acked(eid) < 3.0
    world.answer("Silenced")
    [s] = world.store().silences(world.clock.now())
    assert (s.agent_id, s.rule, s.created_by) == ("a1", RULE, "@bob")
    assert s.ends_at == world.clock.now() + 3600
    ts = world.message_of("a1").ts
    assert world.slack.wait(lambda: bool(world.slack.replies(ts)))
    assert world.slack.replies(ts)[0].params["text"].startswith("🔕 Silenced until <!date^")
    edit = world.slack.updates(ts)[-1]
    assert "Silenced until" in texts(edit) and "by @bob" in texts(edit)
    assert "dnx_unsilence" in texts(edit)
    # the CLI sees the same silence, with who made it and when; and after a restart too
    cfg = world.tmp_path / "cli.yaml"
    cfg.write_text(f"state: {{path: '{world.tmp_path / 'state.sqlite3'}'}}\n")
    assert main(["silence", "list", "--config", str(cfg), "--all"]) == 0
    out = capsys.readouterr().out
    assert "@bob" in out and "from Slack: Silence 1h" in out
    assert main(["alerts", "--config", str(cfg)]) == 0
    assert "@bob" in capsys.readouterr().out
    reopened = Store(world.tmp_path / "state.sqlite3")
    try:
        assert [x.created_by for x in reopened.silences(world.clock.now())] == ["@bob"]
    finally:
        reopened.close()
    # a double click: a second press (a new action_ts) finds the silence and changes nothing
    eid2 = world.click("a1", "dnx_silence_1h", who=BOB)
    world.acked(eid2)
    world.answer("Already silenced")
    assert len(world.store().silences(world.clock.now())) == 1
    # Unsilence ends it (kept in the list as ended, by whom)
    eid3 = world.click("a1", "dnx_unsilence", who=ALICE)
    world.acked(eid3)
    world.answer("Unsilenced")
    assert world.store().silences(world.clock.now() + 1) == []
    assert world.slack.wait(
        lambda: any(
            r.params["text"].startswith("🔔 Unsilenced by @alice") for r in world.slack.replies(ts)
        )
    )


def test_silence_until_resolved_ends_when_the_alert_resolves(world: World) -> None:
    world.fire("a1")
    eid = world.click("a1", "dnx_silence_resolved")
    world.acked(eid)
    world.answer("until resolved")
    [s] = world.store().silences(world.clock.now())
    assert s.until_resolved and s.created_by == "@alice"
    for _ in range(5):
        world.poll()  # silenced: still firing, no reminder
    world.view.rate("a1", 0.05)
    world.poll()
    assert world.alerts.pipeline.states()[(RULE, "a1")].state is State.RESOLVED
    assert world.store().silences(world.clock.now()) == []  # ended with the resolution


def test_a_grouped_message_acts_on_every_agent_or_on_one(world: World) -> None:
    agents = [f"a{i}" for i in range(6)]
    world.fire(*agents)
    [post] = world.slack.posts()
    assert check_blocks({"text": post.params["text"], "blocks": post.params["blocks"]}) == []
    eid = world.click("a3", "dnx_agent", menu=("a3", "silence_4h"))
    world.acked(eid)
    world.answer("Silenced")
    [s] = world.store().silences(world.clock.now())
    assert (s.agent_id, s.ends_at) == ("a3", world.clock.now() + 4 * 3600)
    eid = world.click("a0", "dnx_silence_1h")  # the group's button: every firing agent
    world.acked(eid)
    assert world.slack.wait(lambda: len(world.store().silences(world.clock.now())) == len(agents))


def test_slash_commands_answer_ephemerally(world: World) -> None:
    world.view.set("a1", 100, failed=30, busy=5)
    world.poll()
    for text in ("status a1", "alerts", "silences", "help", "bogus"):
        eid = world.command(text)
        assert world.acked(eid) < 3.0
    assert world.slack.wait(lambda: len(world.slack.responses) == 5)
    by_url = sorted(world.slack.responses, key=lambda r: int(r[0].split("/")[-2]))
    status, alerts, silences, helps, bogus = (body for _, body in by_url)
    text = json.dumps(status["blocks"], ensure_ascii=False)
    assert status["response_type"] == "ephemeral"
    assert "failed 30.0%" in text and "busy 5.0%" in text and "100 calls" in text
    assert "▁" in text or "█" in text  # the sparkline
    assert "failed-rate" in text and "firing" in text
    assert "1 firing" in alerts["text"]
    assert "No active silence" in silences["text"]
    assert "/dialnexa status AGENT" in json.dumps(helps["blocks"])
    assert "Unknown command" in json.dumps(bogus["blocks"])
    for _, body in world.slack.responses:
        assert check_blocks({"text": body["text"], "blocks": body["blocks"]}) == []


def test_someone_not_allowed_is_refused_and_nothing_changes(world: World) -> None:
    world.fire("a1")
    before = world.store().outbox()
    eid = world.click("a1", "dnx_silence_4h", who=EVE)
    assert world.acked(eid) < 3.0
    world.answer("not allowed")
    eid = world.click("a1", "dnx_ack", who=EVE)
    world.acked(eid)
    world.answer("not allowed", count=2)
    assert world.store().silences(None) == []
    assert all(i.acked_by is None for i in world.store().load_incidents().values())
    assert world.store().outbox() == before


def test_another_team_is_ignored_without_an_answer(world: World) -> None:
    world.fire("a1")
    eid = world.click("a1", "dnx_silence_4h", team="T0OTHER01")
    world.acked(eid)  # acknowledged (or Slack would redeliver), then ignored
    eid2 = world.command("help")  # a marker: answered after the ignored one was handled
    world.acked(eid2)
    world.answer("asks the DialNexa watchdog")
    assert world.store().silences(None) == []
    assert len(world.slack.answers()) == 1


@pytest.mark.slow
def test_an_action_sent_just_before_a_disconnect_applies_once(world: World) -> None:
    world.fire("a1")
    # the daemon applies the click, but its acknowledgement never reaches Slack
    eid = world.click("a1", "dnx_silence_1h")
    world.ws.lose_acks.add(eid)
    world.answer("Silenced")
    world.ws.lose_acks.clear()
    world.ws.drop()  # Slack refreshes the connection; the owed envelope comes again
    assert world.ws.wait_connections(2)
    assert world.acked(eid) < 3.0
    assert world.ws.acks_of(eid)[0].connection == 2
    # sent on a connection that dies before the daemon reads it: delivered again, once
    eid2 = world.click("a1", "dnx_ack")
    world.ws.drop(polite=False)
    assert world.ws.wait_connections(3)
    world.acked(eid2)
    world.answer("You acknowledged")
    ts = world.message_of("a1").ts
    assert world.slack.wait(lambda: len(world.slack.replies(ts)) >= 2)
    assert len(world.store().silences(world.clock.now())) == 1
    replies = [r.params["text"] for r in world.slack.replies(ts)]
    assert sum(r.startswith("🔕 Silenced") for r in replies) == 1
    assert sum(r.startswith("✅ Acknowledged") for r in replies) == 1
    assert len(world.slack.ok_requests("apps.connections.open")) >= 3


def test_build_starts_socket_mode_and_close_stops_it(tmp_path: Path, sim_url: str) -> None:
    slack = FakeSlack()
    ws = FakeSocketMode()
    slack.socket = ws
    s = settings(tmp_path, slack).model_copy(
        update={
            "dialnexa": Settings(dialnexa={"base_url": sim_url, "api_key": "test-key"}).dialnexa
        }
    )
    app = build(s, FakeClock(T0), socket_ping=0.5)
    try:
        assert ws.wait_connections(1)
        env = slash_command(
            "help",
            user=ALICE[0],
            name="alice",
            team=TEAM_ID,
            channel=CHANNEL_ID,
            response_url=slack.response_url(),
        )
        ws.send(env)
        assert ws.wait_ack(env["envelope_id"]) is not None
        assert slack.wait(lambda: len(slack.responses) == 1)
        connected = 'dialnexa_slack_actions_connected{mode="socket"}'
        assert f"{connected} 1.0" in generate_latest(app.registry).decode()
        ws.close()  # Slack's end goes away: the metric says so (pages still go out)
        assert ws.wait(lambda: f"{connected} 0.0" in generate_latest(app.registry).decode())
    finally:
        app.close()
        ws.close()
        slack.close()
    assert ws.wait(lambda: not any(c.open for c in ws._conns))
    assert b"dialnexa_slack_actions_connected" not in generate_latest(app.registry)


def test_no_secret_reaches_a_log_line(world: World, caplog: pytest.LogCaptureFixture) -> None:
    """The bot and app tokens and the response_url (a credential for 30 minutes) appear in no
    log record, not even before the formatters' redaction."""
    with caplog.at_level(logging.DEBUG):
        world.fire("a1")
        for eid in (
            world.click("a1", "dnx_ack"),
            world.click("a1", "dnx_silence_1h", who=EVE),
            world.command("status a1"),
        ):
            world.acked(eid)
        assert world.slack.wait(lambda: len(world.slack.answers()) == 3)
        world.ws.drop()
        assert world.ws.wait_connections(2)
    text = caplog.text
    assert "Slack action ack by U0ALICE01: applied" in text  # who did what, to which incident
    for secret in (TOKEN, APP_TOKEN, "r3sp0ns3s3cr3t", "ticket="):
        assert secret not in text


@pytest.mark.slow
def test_slack_test_checks_the_app_token_the_socket_and_the_user_groups(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slack = FakeSlack()
    ws = FakeSocketMode()
    slack.socket = ws
    slack.usergroups = {ONCALL: [BOB[0], ALICE[0]]}

    def config(app_token: str, group: str = ONCALL) -> str:
        path = tmp_path / "slack.yaml"
        path.write_text(
            f"state: {{path: '{tmp_path / 'state.sqlite3'}'}}\n"
            f"slack: {{token: {TOKEN}, channel: {CHANNEL_ID}, api_url: '{slack.api_url}', "
            f"app_token: {app_token}, actions: {{mode: socket, allowed_usergroups: [{group}]}}}}\n"
        )
        return str(path)

    try:
        assert main(["slack-test", "--config", config(APP_TOKEN)]) == 0
        out = capsys.readouterr().out
        assert "ok: Socket Mode connected" in out
        assert f"user group {ONCALL} has 2 member(s)" in out
        assert ws.connections == 1
        assert main(["slack-test", "--config", config("xapp-1-wrong-token")]) == 1
        err = capsys.readouterr().err
        assert "invalid_auth" in err and "app-level token (xapp-...)" in err
        assert "xapp-1-wrong-token" not in err
        assert main(["slack-test", "--config", config(APP_TOKEN, "S0NOSUCH1")]) == 1
        assert "usergroups:read" in capsys.readouterr().err
    finally:
        ws.close()
        slack.close()


def test_presses_on_a_resolved_or_an_unknown_alert_change_nothing(world: World) -> None:
    world.fire("a1")
    [post] = world.slack.posts()
    old = {"ts": post.answer["ts"], "text": post.params["text"], "blocks": post.params["blocks"]}  # type: ignore[index]
    world.view.rate("a1", 0.05)
    world.poll()  # resolved: the message lost its buttons, but a stale client still shows them
    outbox = world.store().outbox()

    def press(control: dict[str, Any]) -> None:
        env = block_actions(
            control,
            user=ALICE[0],
            name=ALICE[1],
            team=TEAM_ID,
            channel=CHANNEL_ID,
            message=old,
            response_url=world.slack.response_url(),
        )
        world.ws.send(env)
        world.acked(str(env["envelope_id"]))

    press(find_control(old["blocks"], "dnx_silence_4h"))
    world.answer("already resolved")
    press({**find_control(old["blocks"], "dnx_ack"), "value": "0" * 32})
    world.answer("not known to this watchdog")
    assert world.store().silences(None) == []
    assert all(i.acked_by is None for i in world.store().load_incidents(open_only=False).values())
    assert world.store().outbox() == outbox
