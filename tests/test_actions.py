"""Slack actions without a network: payload decoding, what a press comes to (every bad
input), the store's one-transaction-per-action, the planner's acknowledgement, user groups,
the config, and a property test that every message with buttons keeps Slack's limits.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from dialnexa_watchdog.actions.access import Access, Verdict
from dialnexa_watchdog.actions.commands import (
    AgentStatus,
    parse_command,
    render_alerts,
    render_silences,
    render_status,
)
from dialnexa_watchdog.actions.handlers import UNKNOWN, decide
from dialnexa_watchdog.actions.payloads import Click, Command, Ignored, Who, parse
from dialnexa_watchdog.alerts.incidents import Book, Incident, Policy, acknowledge, plan
from dialnexa_watchdog.alerts.state import AlertState, Evaluation, Silence, State, Transition
from dialnexa_watchdog.alerts.store import SCHEMA_VERSION, ActionChanges, NewSilence, Store
from dialnexa_watchdog.alerts.store.sql import SqlStore
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.config import ConfigError, load_settings
from dialnexa_watchdog.notify import Notice
from dialnexa_watchdog.notify.controls import (
    CHOICES,
    MENU,
    agent_key,
    control_blocks,
    incident_key,
    parse_choice,
)
from dialnexa_watchdog.notify.limits import check_blocks
from dialnexa_watchdog.notify.slack import build_message
from dialnexa_watchdog.redact import secrets_in
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_architecture import IMPURE_IMPORTS, imports_of, modules
from test_message_limits import HOSTILE, PINGS, notices, snap

T0 = 1_750_000_000.0
RULE = "failed-rate"
ALICE = Who("T0FAKE0001", "U0ALICE01", "@alice")


# ---- fixtures as plain values ------------------------------------------------------------


def state(agent: str, st_: State = State.FIRING, **kw: Any) -> AlertState:
    return AlertState(RULE, agent, "critical", st_, T0, T0, fired_at=T0, rate=0.3, **kw)


def incident(*agents: str, closed: float | None = None, **kw: Any) -> Incident:
    return Incident(
        id=f"{RULE}/{'group' if len(agents) > 1 else agents[0]}/1-abc",
        rule=RULE,
        group=len(agents) > 1,
        opened_at=T0,
        members={a: snap(a, rule=RULE) for a in agents},
        last_notified_at=T0,
        closed_at=closed,
        **kw,
    )


def book_of(inc: Incident) -> Book:
    return Book({inc.id: inc}, {(RULE, a): inc.id for a in inc.members})


def states_of(*agents: str) -> dict[tuple[str, str], AlertState]:
    return {(RULE, a): state(a) for a in agents}


def click(inc: Incident, choice: str, agent: str | None = None, n: int = 1) -> Click:
    pressed = parse_choice(
        MENU if agent else f"dnx_{choice}",
        f"{choice}:{incident_key(inc.id)}:{agent_key(agent)}" if agent else incident_key(inc.id),
    )
    assert pressed is not None
    return Click(f"act-{choice}-{n}", ALICE, pressed, f"{n}.0", "C0ALERTS01", "1.0", None)


# ---- payloads ----------------------------------------------------------------------------


def test_payloads_decode_and_anything_else_is_ignored() -> None:
    key = incident_key("x")
    good = {
        "type": "block_actions",
        "team": {"id": "T1"},
        "user": {"id": "U1", "username": "<!channel>\u202e"},
        "channel": {"id": "C1"},
        "container": {"message_ts": "1.2"},
        "response_url": "https://hooks.slack.com/actions/1",
        "actions": [{"action_id": "dnx_ack", "value": key, "action_ts": "9.9"}],
    }
    c = parse("interactive", good)
    assert isinstance(c, Click) and c.pressed.choice.name == "ack" and c.who.team_id == "T1"
    assert c.who.name == "@<!channel>\ufffd"  # cleaned here, escaped where it is shown
    assert parse("interactive", good).id == c.id  # the same click: the same id
    again = json.loads(json.dumps(good))
    again["actions"][0]["action_ts"] = "9.91"
    assert parse("interactive", again).id != c.id  # a second click: a new id
    cmd = parse("slash_commands", {"user_id": "U1", "team_id": "T1", "text": "status a"})
    assert isinstance(cmd, Command) and cmd.text == "status a"
    for kind, p in [
        ("events_api", good),
        ("interactive", {**good, "type": "view_submission"}),
        ("interactive", {**good, "actions": []}),
        ("interactive", {**good, "actions": [{"action_id": "other_app", "value": key}]}),
        ("interactive", {**good, "actions": [{"action_id": "dnx_ack", "value": "x" * 32}]}),
        ("interactive", {**good, "user": "U1"}),
        ("slash_commands", {"text": "help"}),
        ("interactive", None),
    ]:
        assert isinstance(parse(kind, p), Ignored), (kind, p)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(["interactive", "slash_commands", "x"]), payload=json_values)
@pytest.mark.slow
def test_no_payload_makes_the_decoder_raise(kind: str, payload: Any) -> None:
    assert isinstance(parse(kind, payload), Click | Command | Ignored)


def test_parse_choice_accepts_only_our_shapes() -> None:
    key = incident_key("i")
    assert parse_choice("dnx_silence_4h", key).choice.seconds == 4 * 3600  # type: ignore[union-attr]
    assert parse_choice(MENU, f"unsilence:{key}:{agent_key('a')}").agent_key == agent_key("a")  # type: ignore[union-attr]
    for aid, value in [
        ("dnx_nope", key),
        ("dnx_ack", key.upper()),
        (MENU, f"ack:{key}:{agent_key('a')}"),
        (MENU, f"silence_1h:{key}"),
        ("ack", key),
    ]:
        assert parse_choice(aid, value) is None


# ---- what a press comes to ---------------------------------------------------------------


def test_unknown_and_resolved_incidents_change_nothing() -> None:
    inc = incident("a1")
    d = decide(click(inc, "ack"), Book(), {}, [], T0)
    assert d.answer == UNKNOWN and d.changes is None
    closed = replace(inc, closed_at=T0 + 60)
    d = decide(click(inc, "silence_1h"), Book(), {}, [], T0 + 90, fallback=closed)
    assert "already resolved" in d.answer and d.changes is None
    # open in the book but its alert resolved in this very evaluation
    d = decide(click(inc, "ack"), book_of(inc), {(RULE, "a1"): state("a1", State.RESOLVED)}, [], T0)
    assert "already resolved" in d.answer and d.changes is None


def test_acknowledge_once() -> None:
    inc = incident("a1")
    d = decide(click(inc, "ack"), book_of(inc), states_of("a1"), [], T0 + 5)
    assert d.changes is not None and d.changes.ack == ("@alice", T0 + 5)
    main, reply = d.changes.notices
    assert (main.kind, main.op, main.acked_by) == ("main", "update", "@alice")
    assert (reply.kind, reply.op, reply.verb, reply.actor) == ("action", "reply", "ack", "@alice")
    acked = acknowledge(inc, "@alice", T0 + 5)
    again = decide(click(inc, "ack", n=2), book_of(acked), states_of("a1"), [], T0 + 9)
    assert again.changes is None and again.answer.startswith("✅ Already acknowledged by @alice")


def test_a_second_silence_press_is_a_double_click_and_a_longer_one_is_not() -> None:
    inc = incident("a1")
    first = decide(click(inc, "silence_1h"), book_of(inc), states_of("a1"), [], T0)
    assert first.changes is not None
    [new] = first.changes.silences
    assert (new.agent_id, new.rule, new.ends_at, new.created_by) == (
        "a1",
        RULE,
        T0 + 3600,
        "@alice",
    )
    existing = Silence(7, "a1", RULE, T0, T0 + 3600, "x", T0, "@alice")
    dup = decide(click(inc, "silence_1h", n=2), book_of(inc), states_of("a1"), [existing], T0 + 2)
    assert dup.changes is None and dup.answer.startswith("🔕 Already silenced until")
    longer = decide(
        click(inc, "silence_4h", n=3), book_of(inc), states_of("a1"), [existing], T0 + 2
    )
    assert longer.changes is not None and longer.changes.silences[0].ends_at == T0 + 2 + 4 * 3600
    until = decide(click(inc, "silence_resolved"), book_of(inc), states_of("a1"), [existing], T0)
    assert until.changes is not None and until.changes.silences[0].until_resolved
    # a CLI silence for every rule of the agent covers a button's silence too
    cli = Silence(8, "a1", None, T0, T0 + 86400, "deploy", T0, "ops (cli)")
    d = decide(click(inc, "silence_4h", n=4), book_of(inc), states_of("a1"), [cli], T0)
    assert d.changes is None and "by ops (cli)" in d.answer


def test_unsilence_ends_every_silence_that_applies() -> None:
    inc = incident("a1")
    none = decide(click(inc, "unsilence"), book_of(inc), states_of("a1"), [], T0)
    assert none.changes is None and "is not silenced" in none.answer
    silences = [
        Silence(1, "a1", RULE, T0, T0 + 3600, "x", T0, "@bob"),
        Silence(2, "a1", None, T0, T0 + 7200, "y", T0, "ops (cli)"),
        Silence(3, "a2", RULE, T0, T0 + 7200, "z", T0, "@bob"),
    ]
    d = decide(click(inc, "unsilence"), book_of(inc), states_of("a1"), silences, T0 + 1)
    assert d.changes is not None and list(d.changes.ended) == [1, 2]
    assert d.changes.ended_by == "@alice"
    main = d.changes.notices[0]
    assert main.alerts[0].silenced_until is None  # the message shows it unsilenced


def test_a_grouped_incident_acts_on_its_firing_agents_or_one() -> None:
    inc = incident("a1", "a2", "a3")
    states = states_of("a1", "a2")
    states[(RULE, "a3")] = state("a3", State.RESOLVED)
    d = decide(click(inc, "silence_4h"), book_of(inc), states, [], T0)
    assert d.changes is not None
    assert sorted(s.agent_id for s in d.changes.silences) == ["a1", "a2"]
    one = decide(click(inc, "silence_1h", agent="a2"), book_of(inc), states, [], T0)
    assert one.changes is not None and [s.agent_id for s in one.changes.silences] == ["a2"]
    gone = decide(click(inc, "silence_1h", agent="a3"), book_of(inc), states, [], T0)
    assert gone.changes is None and "already resolved" in gone.answer


def test_answers_escape_what_came_from_the_api() -> None:
    inc = incident("<!channel>", "<@U1>")
    d = decide(click(inc, "silence_1h"), book_of(inc), states_of("<!channel>", "<@U1>"), [], T0)
    assert "<!channel>" not in d.answer and "&lt;!channel&gt;" in d.answer


# ---- the store: one transaction per action ------------------------------------------------


def action(iid: str, aid: str = "a-1", **kw: Any) -> ActionChanges:
    base: dict[str, Any] = {
        "id": aid,
        "at": T0,
        "user_id": "U0ALICE01",
        "action": "silence_1h",
        "incident_id": iid,
        "answer": "🔕 Silenced",
        "silences": [NewSilence("a1", RULE, T0, T0 + 3600, "from Slack", "@alice")],
        "notices": [
            Notice("action", "reply", iid, RULE, False, T0, T0, (), actor="@alice", verb="silence")
        ],
    }
    base.update(kw)
    return ActionChanges(**base)


def test_an_action_id_applies_once(open_store: Callable[[], SqlStore]) -> None:
    store = open_store()
    try:
        assert store.apply_action(action("i1")) is None
        assert store.apply_action(action("i1", answer="something else")) == "🔕 Silenced"
        assert len(store.silences(None)) == 1 and len(store.outbox()) == 1
        assert store.action_answer("a-1") == "🔕 Silenced"
        # an acknowledgement sticks to the incident row; the first one wins
        from dialnexa_watchdog.alerts.store import Changes

        store.commit(T0, Changes(incidents=[incident("a1")]))
        iid = incident("a1").id
        store.apply_action(action(iid, "a-2", ack=("@bob", T0 + 1), silences=[], notices=[]))
        store.apply_action(action(iid, "a-3", ack=("@eve", T0 + 2), silences=[], notices=[]))
        store.commit(T0 + 3, Changes(incidents=[incident("a1")]))  # the planner's upsert
        inc = store.load_incidents()[iid]
        assert (inc.acked_by, inc.acked_at) == ("@bob", T0 + 1)
        assert store.incident_by_key(incident_key(iid), incident_key) == inc
        assert store.incident_by_key("0" * 32, incident_key) is None
    finally:
        store.close()


def test_a_schema_2_file_gains_acks_and_authorship_and_keeps_its_silences(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite3"
    store = Store(path, now=T0)
    store.add_silence("a1", None, T0, T0 + 3600, "old")
    store.close()
    conn = sqlite3.connect(path)  # make it look like a file written before schema 4
    conn.executescript(
        "DROP TABLE actions; ALTER TABLE silences DROP COLUMN created_by;"
        "ALTER TABLE silences DROP COLUMN until_resolved;"
        "ALTER TABLE silences DROP COLUMN ended_by; ALTER TABLE silences DROP COLUMN action_id;"
        "ALTER TABLE incidents DROP COLUMN acked_by; ALTER TABLE incidents DROP COLUMN acked_at;"
        "UPDATE meta SET value = '2';"
    )
    conn.commit()
    conn.close()
    store = Store(path, now=T0)
    try:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
        [s] = store.silences(None)
        assert (s.reason, s.created_by, s.until_resolved) == ("old", "", False)
        assert store.apply_action(action("i1")) is None
    finally:
        store.close()


# ---- the planner: an acknowledged incident gets no repeats -------------------------------


def test_an_acknowledged_incident_gets_no_repeat_but_its_resolution() -> None:
    policy = Policy(can_edit=True, group_threshold=5, repeat_interval=600, groupable=frozenset())
    quiet = acknowledge(incident("a1"), "@alice", T0)
    loud = incident("a2")
    book = Book(
        {quiet.id: quiet, loud.id: loud},
        {(RULE, "a1"): quiet.id, (RULE, "a2"): loud.id},
    )
    snapper = lambda s, base: snap(s.agent_id, s.state.value, rule=RULE)  # noqa: E731
    ev = Evaluation(states_of("a1", "a2"), [], {})
    p = plan(book, ev, [], T0 + 3600, policy, snapper)
    assert [(n.kind, n.incident) for n in p.notices] == [("repeat", loud.id)]
    resolved = state("a1", State.RESOLVED, resolved_at=T0 + 3700)
    ev = Evaluation(
        {(RULE, "a1"): resolved},
        [Transition((RULE, "a1"), State.FIRING, State.RESOLVED, resolved)],
        {},
    )
    p = plan(book, ev, [], T0 + 3700, policy, snapper)
    kinds = [(n.kind, n.op) for n in p.notices if n.incident == quiet.id]
    assert kinds == [("main", "update"), ("resolved", "reply")]
    assert p.notices[0].acked_by == "@alice"  # the edit keeps "Acknowledged by"


# ---- who may act -------------------------------------------------------------------------


def test_user_groups_are_read_once_per_ttl_and_fail_closed() -> None:
    clock = FakeClock(T0)
    answers: list[list[str] | None] = [["U2"], None, ["U3"]]
    calls: list[str] = []

    def members(group: str) -> list[str] | None:
        calls.append(group)
        return answers.pop(0)

    a = Access(["U1"], ["S1"], members, clock, ttl=300)
    assert a.check("U1") is Verdict.ALLOWED and calls == []  # listed: no look-up
    assert a.check("U2") is Verdict.ALLOWED
    assert a.check("U9") is Verdict.REFUSED and calls == ["S1"]  # cached
    clock.advance(301)
    assert a.check("U2") is Verdict.ALLOWED  # the look-up failed: the older answer is used
    clock.advance(1)
    assert a.check("U3") is Verdict.ALLOWED and a.check("U2") is Verdict.REFUSED
    nobody = Access([], ["S1"], lambda g: None, clock, ttl=300)
    assert nobody.check("U1") is Verdict.UNKNOWN
    assert Access(["*"], [], lambda g: None, clock, 300).check("U7") is Verdict.ALLOWED


# ---- config ------------------------------------------------------------------------------


def load(slack: dict[str, Any], tmp_path: Path | None = None) -> Any:
    return load_settings(None, overrides={"slack": slack}, environ={})


BOT = {"token": "xoxb-1", "channel": "C0123456789"}


def test_actions_config_is_checked() -> None:
    def problems(slack: dict[str, Any]) -> str:
        with pytest.raises(ConfigError) as caught:
            load(slack)
        return " | ".join(caught.value.problems)

    ok = {**BOT, "app_token": "xapp-1-abc", "actions": {"mode": "socket", "allowed_users": ["*"]}}
    assert load(ok).slack.actions.mode == "socket"
    assert "app-level token" in problems({**ok, "app_token": "xoxb-not-an-app-token"})
    assert "xoxb-not" not in problems({**ok, "app_token": "xoxb-not-an-app-token"})
    assert "SLACK_APP_TOKEN" in problems(
        {**BOT, "actions": {"mode": "socket", "allowed_users": ["*"]}}
    )
    assert "SLACK_SIGNING_SECRET" in problems(
        {**BOT, "actions": {"mode": "http", "allowed_users": ["*"]}}
    )
    assert "say who may act" in problems({**ok, "actions": {"mode": "socket"}})
    assert "bot token" in problems(
        {"app_token": "xapp-1", "actions": {"mode": "socket", "allowed_users": ["*"]}}
    )
    assert "not a Slack user id" in problems(
        {**ok, "actions": {"mode": "socket", "allowed_users": ["alice"]}}
    )
    assert "user group id" in problems(
        {**ok, "actions": {"mode": "socket", "allowed_usergroups": ["U1X"]}}
    )
    assert "HOST:PORT" in problems({**ok, "actions": {"listen": "10812"}})
    assert load({"actions": {"mode": False}}).slack.actions.mode == "off"  # YAML's bare `off`


def test_the_two_new_secrets_come_from_the_environment_and_are_masked() -> None:
    env = {
        "SLACK_APP_TOKEN": "xapp-1-env-token-123456",
        "SLACK_SIGNING_SECRET": "signing-secret-9876",
    }
    s = load_settings(None, environ=env)
    assert s.slack.app_token.get_secret_value() == env["SLACK_APP_TOKEN"]  # type: ignore[union-attr]
    found = {x.get_secret_value() for x in secrets_in(s)}
    assert set(env.values()) <= found
    dumped = json.dumps(s.masked())
    assert env["SLACK_APP_TOKEN"] not in dumped and env["SLACK_SIGNING_SECRET"] not in dumped


# ---- every module here stays pure ----------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["actions.payloads", "actions.handlers", "actions.commands", "notify.controls"]
)
def test_the_deciding_modules_do_no_io(name: str) -> None:
    mods = modules()
    _, external = imports_of(name, mods[name], set(mods))
    assert not external & IMPURE_IMPORTS, external & IMPURE_IMPORTS


# ---- every message with buttons keeps Slack's limits --------------------------------------

VALUE = re.compile(
    r"[0-9a-f]{32}|(silence_1h|silence_4h|silence_resolved|unsilence):[0-9a-f]{32}:[0-9a-f]{16}"
)
actors = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40).map(lambda t: "@" + t))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    n=notices(),
    acked=st.one_of(st.none(), actors),
    silenced=st.sampled_from(["none", "some", "all", "until_resolved"]),
    by=st.one_of(st.none(), actors),
)
@pytest.mark.slow
def test_every_message_with_buttons_keeps_every_limit(
    n: Notice, acked: str | None, silenced: str, by: str | None
) -> None:
    alerts = tuple(
        a
        if silenced == "none" or (silenced == "some" and i % 2)
        else replace(
            a,
            silenced_until=T0 + 3600,
            silenced_by=by,
            silenced_until_resolved=silenced == "until_resolved",
        )
        for i, a in enumerate(n.alerts)
    )
    n = replace(n, alerts=alerts, acked_by=acked, acked_at=T0 + 60 if acked else None)
    for variant in (
        n,
        replace(n, kind="main", op="post"),
        replace(n, kind="main", op="update"),
        replace(n, kind="action", op="reply", actor=by, verb="silence", until=T0 + 60),
        replace(n, kind="action", op="reply", actor=acked, verb="unsilence"),
    ):
        msg = build_message(variant, None, buttons=True)
        p: dict[str, Any] = {"text": msg.text, "blocks": msg.blocks}
        assert check_blocks(p) == [], (variant.kind, variant.op)
        body = json.dumps(p, ensure_ascii=False)
        for ping in PINGS:
            assert ping not in body
        firing = any(a.state != "resolved" for a in variant.alerts)
        if variant.kind == "main" and firing and variant.op != "reply":
            assert '"dnx_silence_1h"' in body
        for value in re.findall(r'"value": "([^"]*)"', body):  # hashes only, no agent id
            assert VALUE.fullmatch(value), value


def test_a_grouped_message_offers_the_worst_agents_one_by_one() -> None:
    members = [snap(f"agt_{i:03d}", rate=i / 100) for i in range(40)]
    members[5] = replace(members[5], silenced_until=T0 + 60, silenced_by="@bob")
    [block] = control_blocks("inc", members, group=True, acked=False)
    names = [e.get("text", {}).get("text") for e in block["elements"]]
    assert names[:5] == [
        "Acknowledge",
        "Silence 1h",
        "Silence 4h",
        "Silence until resolved",
        "Unsilence",
    ]
    menu = block["elements"][-1]
    groups = {
        g["label"]["text"]: [o["text"]["text"] for o in g["options"]] for g in menu["option_groups"]
    }
    assert groups["Silence one agent for 1h"][:2] == ["agt_039", "agt_038"]  # worst first
    assert groups["Unsilence one agent"] == ["agt_005"]
    assert control_blocks("inc", [snap("a", "resolved")], group=False, acked=False) == []
    assert set(CHOICES) == {"ack", "silence_1h", "silence_4h", "silence_resolved", "unsilence"}


# ---- slash command answers -----------------------------------------------------------------


def test_slash_command_answers_keep_the_limits_with_hostile_ids() -> None:
    assert parse_command("  STATUS  agt 1 ") == ("status", "agt 1")
    assert parse_command("") == ("help", "")
    hostile = [f"{h}-{i}" for i, h in enumerate(HOSTILE * 10)]
    states = [state(a) for a in hostile]
    silences = [
        Silence(i, a, RULE, T0, T0 + 60, "<!here>" * 50, T0, "@<!channel>")
        for i, a in enumerate(hostile)
    ]
    for msg in (
        render_alerts(states, silences, {}, T0),
        render_silences(silences, T0),
        render_status(
            AgentStatus(
                hostile[0],
                "<!channel>",
                [("5m", 10, {"failed": 0.5})],
                [("failed", "5m", [0.1, None, 0.5])],
                states[:3],
                silences[:3],
                {RULE: ("@<@U1>", T0)},
            ),
            T0,
        ),
    ):
        p = {"text": msg.text, "blocks": msg.blocks}
        assert check_blocks(p) == []
        body = json.dumps(p)
        assert all(ping not in body for ping in PINGS)
    listed = json.dumps(render_alerts(states, silences, {}, T0).blocks, ensure_ascii=False)
    assert "…and 190 more" in listed


def test_the_manifest_asks_for_what_the_daemon_uses() -> None:
    import yaml

    root = Path(__file__).resolve().parents[1]
    m = yaml.safe_load((root / "deploy" / "slack" / "manifest.yaml").read_text())
    scopes = set(m["oauth_config"]["scopes"]["bot"])
    # chat.postMessage/update/postEphemeral, conversations.history, the slash command,
    # usergroups.users.list
    assert {"chat:write", "channels:history", "commands", "usergroups:read"} <= scopes
    assert m["settings"]["socket_mode_enabled"] is True
    assert m["settings"]["interactivity"]["is_enabled"] is True
    [cmd] = m["features"]["slash_commands"]
    assert cmd["command"] == "/dialnexa" and set(cmd["usage_hint"].split(" | ")) >= {
        "alerts",
        "silences",
        "help",
    }
    readme = (root / "README.md").read_text()
    assert "deploy/slack/manifest.yaml" in readme and "SLACK_APP_TOKEN" in readme


def test_status_reads_one_agent_or_the_whole_workspace() -> None:
    import threading

    from dialnexa_watchdog.actions.service import StatusReader
    from fakeview import FakeView

    view = FakeView()
    view.set("a1", 10, failed=5)
    view.set("a2", 30, failed=0, busy=3)
    reader = StatusReader(view, threading.Lock(), ["failed", "busy"], 6, {"a1": "Sales"}.get)
    one = reader.status("a1", [state("a1"), state("a2")], [], {})
    assert one.name == "Sales" and [s.agent_id for s in one.alerts] == ["a1"]
    assert one.windows[0] == ("5m", 10, {"failed": 0.5, "busy": 0.0})
    whole = reader.status("*", [], [], {})
    assert whole.windows[-1] == ("1h", 40, {"failed": 5 / 40, "busy": 3 / 40})
    assert len(whole.sparks) == 2 and len(whole.sparks[0][2]) == 6
