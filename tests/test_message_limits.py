"""Every Slack message keeps every Block Kit limit and pings or links nobody (issue 9, item 17).

``check_blocks`` is tested on its own (each limit, hand-made payloads that break it), then used
as the oracle: on the messages of the issue (200 agents in an "also firing" reply, a member
line over 2,900 characters, a 3,196-character context, a 2,111-character field, raw ``<``/``>``
in fixed wording), on generated notices (hypothesis: unicode, huge and hostile ids and names,
1 to 5,000 agents, every kind and op), and through the notifier to the fake Slack, which
refuses what breaks a limit as Slack would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from dialnexa_watchdog.notify import AlertSnapshot, Notice
from dialnexa_watchdog.notify.limits import (
    MAX_BLOCKS_TEXT,
    MAX_HEADER_TEXT,
    MAX_TEXT,
    MAX_TEXT_OBJECT,
    check_blocks,
    clip,
    clip_mrkdwn,
    fit,
    units,
)
from dialnexa_watchdog.notify.message import SlackMessage
from dialnexa_watchdog.notify.slack import EVENT_TYPE, SlackBotNotifier, build_message
from dialnexa_watchdog.notify.wording import escape
from fakeslack import CHANNEL_ID, TOKEN, FakeSlack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

T0 = 1_750_000_000.0
DASHBOARD = "https://grafana.example/d/x?agent={agent_id}"
# What a hostile agent id, name, rule, severity or error text may try.
HOSTILE = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U123>",
    "<#C123>",
    "<!subteam^S123>",
    "<https://x|y>",
    "<https://evil.example|click me>",
    "a&b",
    "&amp;",
    "&lt;!channel&gt;",
    "`",
    "```",
    "*_~>",
    "\n> quote",
    "\x1b[31mred",
    "\u202egnp.exe",
    "\ud83d",
    "x\udc00y",
    "@channel",
    "😀" * 1600,
    "é" * 5000,
    "|>" * 2000,
]
PINGS = ["<!channel>", "<!here>", "<!everyone>", "<@U123>", "<#C123>", "<!subteam^S123>"]


def snap(agent: str = "agt_1", state: str = "firing", **kw: Any) -> AlertSnapshot:
    base: dict[str, Any] = {
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
    if state == "resolved":
        base.update(resolved_at=T0 + 600, resolved_rate=0.1)
    base.update(kw)
    return AlertSnapshot(**base)


def notice(kind: str, op: str, alerts: list[AlertSnapshot], group: bool | None = None) -> Notice:
    grouped = len(alerts) > 1 if group is None else group
    iid = "failed-rate/group/1-abc"
    return Notice(kind, op, iid, "failed-rate", grouped, T0, T0, tuple(alerts))  # type: ignore[arg-type]


def payload(n: Notice, dashboard: str | None = None) -> dict[str, Any]:
    msg = build_message(n, dashboard)
    out: dict[str, Any] = {"text": msg.text, "blocks": msg.blocks}
    if msg.metadata is not None:
        out["metadata"] = msg.metadata
    return out


def all_text(p: dict[str, Any]) -> str:
    return json.dumps({"text": p["text"], "blocks": p["blocks"]}, ensure_ascii=False)


# ---- the validator catches each limit ----------------------------------------------------


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(**kw: Any) -> dict[str, Any]:
    b: dict[str, Any] = {"type": "button", "text": {"type": "plain_text", "text": "Ack"}}
    b.update(kw)
    return {"type": "actions", "elements": [b]}


GOOD: dict[str, Any] = {
    "text": "FIRING failed-rate: agent `a1`",
    "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "🔴 FIRING", "emoji": True}},
        section("rate *31.0%* &gt;= 25.0% since <!date^1750000000^{time}|12:00 UTC>"),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Severity*\ncritical"}]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "<https://g.example/d|Open>"}]},
        {"type": "divider"},
        button(action_id="ack", value="inc-1", url="https://g.example/"),
    ],
    "metadata": {"event_type": "incident_posted", "event_payload": {"incident": "a", "at": 1}},
}


def test_a_payload_within_every_limit_has_no_problem() -> None:
    assert check_blocks(GOOD) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"text": "x" * MAX_TEXT}, "text: 4000 characters > 3999"),
        ({"text": ""}, "text: empty"),
        ({"blocks": [section("x")] * 51}, "blocks: 51 blocks > 50"),
        ({"blocks": [section("")]}, "blocks[0].text.text: empty"),
        ({"blocks": [section("x" * 3001)]}, "blocks[0].text.text: 3001 characters > 3000"),
        ({"blocks": [section("😀" * 1501)]}, "blocks[0].text.text: 3002 characters > 3000"),
        ({"blocks": [{"type": "section"}]}, "blocks[0]: a section needs text or fields"),
        (
            {"blocks": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}]},
            "blocks[0].fields: 11 > 10",
        ),
        (
            {"blocks": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}]},
            "blocks[0].fields[0].text: 2001 characters > 2000",
        ),
        (
            {"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]},
            "blocks[0].text.text: 151 characters > 150",
        ),
        (
            {"blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}]},
            "blocks[0].text: a header takes plain_text only",
        ),
        (
            {"blocks": [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}]},
            "blocks[0].elements: 11 > 10",
        ),
        (
            {"blocks": [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c" * 3001}]}]},
            "blocks[0].elements[0].text: 3001 characters > 3000",
        ),
        ({"blocks": [{"type": "context", "elements": []}]}, "blocks[0].elements: at least one"),
        ({"blocks": [button(text={"type": "plain_text", "text": "b" * 76})]}, "76 characters > 75"),
        ({"blocks": [button(action_id="a" * 256)]}, "action_id: 256 characters > 255"),
        ({"blocks": [button(value="v" * 2001)]}, "value: 2001 characters > 2000"),
        ({"blocks": [button(url="https://x/" + "u" * 2991)]}, "url: 3001 characters > 3000"),
        ({"blocks": [dict(section("x"), block_id="b" * 256)]}, "block_id: 256 characters > 255"),
        (
            {"blocks": [section("x" * 2500)] * 5},
            f"blocks: 12500 characters of text in all > {MAX_BLOCKS_TEXT}",
        ),
        ({"blocks": [{"type": "video"}]}, "blocks[0].type: 'video' is not a block"),
        ({"text": "hi <!channel>"}, "text: unescaped markup '<!channel>'"),
        ({"blocks": [section("<@U123> look")]}, "unescaped markup '<@U123>'"),
        ({"blocks": [section("rate < 20%")]}, "unescaped markup"),
        ({"blocks": [section("rate >= 25%")]}, "unescaped markup '>'"),
        ({"text": "a & b"}, "text: unescaped '&'"),
        ({"text": "bad \ud83d"}, "text: lone UTF-16 surrogate"),
        ({"metadata": {"event_type": "Incident-Posted", "event_payload": {}}}, "event_type"),
        ({"metadata": {"event_type": "x", "event_payload": {"a": {"b": {"c": 1}}}}}, "payload.a"),
        ({"metadata": {"event_type": "x", "event_payload": []}}, "not an object"),
    ],
)
def test_each_broken_limit_is_reported(change: dict[str, Any], expected: str) -> None:
    broken = {**GOOD, **change}
    problems = check_blocks(broken)
    assert any(expected in p for p in problems), problems


# ---- clipping helpers --------------------------------------------------------------------


def test_clip_cuts_between_code_points_and_marks_the_cut() -> None:
    out = clip("😀" * 10, 5)
    assert out == "😀😀…" and units(out) == 5
    out.encode("utf-16")  # no lone surrogate: would raise
    assert clip("short", 10) == "short"
    assert clip("abcdef", 1) == "…"


def test_clip_mrkdwn_keeps_entities_tokens_and_code_spans_whole() -> None:
    assert clip_mrkdwn("ab&amp;cd", 5) == "ab…"
    assert clip_mrkdwn("x <!date^1^{time}|noon> y", 10) == "x…"
    assert clip_mrkdwn("see `agt_verylongid` now", 12) == "see…"
    assert clip_mrkdwn("", 10) == "…"  # never empty


def test_fit_keeps_what_fits_and_counts_the_rest() -> None:
    items = [f"item{i}" for i in range(100)]
    kept, tail = fit(items, ", ", 60, lambda k: f" and {k} more" if k else "")
    text = ", ".join(kept) + tail
    assert units(text) <= 60 and tail == f" and {100 - len(kept)} more"
    kept, tail = fit(["x" * 500], ", ", 60, lambda k: "")
    assert units(kept[0]) <= 60 and kept[0].endswith("…")


def test_escape_neutralises_mentions_links_and_controls() -> None:
    for evil in [*PINGS, "<https://x|y>"]:
        assert "<" not in escape(evil) and ">" not in escape(evil)
    assert escape("a\x1b[31m\ud83d\u202e&") == "a\ufffd[31m\ufffd\ufffd&amp;"


# ---- the messages of the issue -----------------------------------------------------------


def test_also_firing_reply_with_200_agents_stays_short_and_says_how_many_more() -> None:
    agents = [snap(f"agt_{i:04d}_{'x' * 30}") for i in range(200)]
    for kind in ("joined", "resolved", "repeat"):
        members = agents if kind != "resolved" else [snap(a.agent_id, "resolved") for a in agents]
        p = payload(notice(kind, "reply", members))
        assert check_blocks(p) == [], kind
        assert units(p["text"]) <= MAX_TEXT_OBJECT
        listed = p["text"].count("`agt_")
        m = re.search(r"…and (\d+) more", p["text"])
        assert m is not None and listed + int(m.group(1)) == 200, kind


def test_grouped_resolved_main_message_with_5000_agents() -> None:
    alerts = [snap(f"agt_{i}", "resolved") for i in range(5000)]
    for op in ("post", "update"):
        p = payload(notice("main", op, alerts))
        assert check_blocks(p) == []
        assert units(p["text"]) < MAX_TEXT
        body = all_text(p)
        assert "RESOLVED" in body and "5000 agents" in body
        members = "\n".join(b["text"]["text"] for b in p["blocks"][2:] if b["type"] == "section")
        m = re.search(r"…and (\d+) more", members)
        assert m is not None and members.count("✅ ~`agt_") + int(m.group(1)) == 5000


def test_member_line_over_2900_characters_never_makes_an_empty_section() -> None:
    huge = snap("a" * 3000, agent_name="n" * 3000)
    p = payload(notice("main", "post", [huge, snap("agt_2"), snap("agt_3")]))
    assert check_blocks(p) == []
    for block in p["blocks"]:
        if block["type"] == "section" and "text" in block:
            assert block["text"]["text"].strip()
    assert "agt_2" in all_text(p)


def test_long_context_and_fields_are_capped() -> None:
    a = snap(severity="s" * 2111, outcome="o" * 500, window="w" * 500, sparkline=(0.5,) * 3196)
    p = payload(notice("main", "post", [a]), DASHBOARD)
    assert check_blocks(p) == []
    context = next(b for b in p["blocks"] if b["type"] == "context")
    assert context["elements"][0]["text"].endswith("|Open dashboard>")  # the link survives


def test_fixed_wording_escapes_its_angle_brackets() -> None:
    firing = payload(notice("main", "post", [snap()]))
    resolved = payload(notice("main", "update", [snap(state="resolved")]))
    held = payload(notice("main", "post", [snap(rate=0.22)]))
    for p in (firing, resolved, held):
        assert check_blocks(p) == []
    assert "&gt;= 25.0%" in all_text(firing)
    assert "10.0%* &lt; 20.0%" in all_text(resolved)
    assert "clears &lt; 20.0%" in all_text(resolved)
    assert "(fires at &gt;= 25.0%" in all_text(held)


def test_an_agent_id_with_a_lone_surrogate_gets_no_dashboard_link() -> None:
    p = payload(notice("main", "post", [snap("agt_\ud83d")]), DASHBOARD)  # found by hypothesis
    assert check_blocks(p) == []
    assert "Open dashboard" not in all_text(p) and "agt_\ufffd" in all_text(p)


def test_header_is_at_most_150_characters() -> None:
    p = payload(notice("main", "post", [snap(rule="r" * 400)]))
    header = p["blocks"][0]["text"]["text"]
    assert units(header) <= MAX_HEADER_TEXT and header.endswith("…")


def test_top_level_posts_carry_the_incident_marker_and_replies_do_not() -> None:
    post = payload(notice("main", "post", [snap()]))
    assert post["metadata"]["event_type"] == EVENT_TYPE
    assert set(post["metadata"]["event_payload"]) == {"incident", "kind", "at"}
    assert "agt_1" not in json.dumps(post["metadata"])  # a hash, not the incident id
    assert "metadata" not in payload(notice("repeat", "reply", [snap()]))
    assert "metadata" not in payload(notice("main", "update", [snap()]))


# ---- generated notices -------------------------------------------------------------------

texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(HOSTILE),
    st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=4), st.integers(1, 2500)),
)
names = st.one_of(st.none(), texts)
rates = st.one_of(st.none(), st.floats(0, 1))


@st.composite
def notices(draw: st.DrawFn) -> Notice:
    count = draw(st.one_of(st.integers(1, 12), st.integers(1, 5000)))
    pool = draw(st.lists(st.tuples(texts, names), min_size=1, max_size=6))
    kind = draw(st.sampled_from(["main", "repeat", "resolved", "joined"]))
    op = draw(st.sampled_from(["post", "reply", "update"]))
    scope = draw(st.sampled_from(["agent", "agent", "workspace", "stale"]))
    group = draw(st.booleans())
    rule, severity, outcome, window = (draw(texts) for _ in range(4))
    spark = tuple(draw(st.lists(rates, max_size=draw(st.sampled_from([0, 12, 400])))))
    last_error = draw(names)
    states = draw(st.sampled_from(["firing", "resolved", "mixed"]))
    alerts = []
    for i in range(count):
        agent, name = pool[i % len(pool)]
        state = states if states != "mixed" else ("resolved" if i % 3 == 0 else "firing")
        alerts.append(
            snap(
                agent + (f"-{i}" if i >= len(pool) else ""),
                state,
                rule=rule,
                severity=severity,
                outcome=outcome,
                window=window,
                scope=scope,
                agent_name=name,
                rate=draw(rates) if i < 3 else 0.3,
                sparkline=spark,
                last_error=last_error,
                note=last_error,
                confirm_window=window if i % 2 else None,
                confidence=0.95 if i % 2 else None,
                bound=0.27 if i % 2 else None,
                resolved_rate=None if i % 5 == 4 else 0.1,
            )
        )
    return Notice(kind, op, rule + "/" + alerts[0].agent_id, rule, group, T0, T0, tuple(alerts))  # type: ignore[arg-type]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(n=notices(), dashboard=st.sampled_from([None, DASHBOARD]))
@pytest.mark.slow
def test_every_generated_message_keeps_every_limit(n: Notice, dashboard: str | None) -> None:
    p = payload(n, dashboard)
    assert check_blocks(p) == []
    body = all_text(p)
    for ping in PINGS:
        assert ping not in body
    # the only links are our dashboard's
    for link in re.findall(r"<(https?://[^|>]*)\|", body):
        assert link.startswith("https://grafana.example/d/x?agent=")
    assert "\x1b" not in body and "\u202e" not in body


# ---- through the notifier to a Slack that refuses broken limits --------------------------


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.close()


def test_the_issue_messages_are_accepted_by_a_strict_slack(slack: FakeSlack) -> None:
    bot = SlackBotNotifier(TOKEN, CHANNEL_ID, slack.api_url, timeout=5, dashboard_url=DASHBOARD)
    crowd = [snap(f"agt_{i:04d}", agent_name=f"Sales bot {i}") for i in range(200)]
    huge = [snap("a" * 3000, agent_name="<!channel> " * 300), *crowd[:4]]
    main = bot.send(notice("main", "post", crowd), None)
    assert main.ok and main.ref is not None
    for n in (
        notice("joined", "reply", crowd),
        notice("resolved", "reply", [snap(a.agent_id, "resolved") for a in crowd]),
        notice("main", "update", huge),
        notice("main", "update", [snap(severity="s" * 2111, sparkline=(0.5,) * 3196)], False),
    ):
        r = bot.send(n, main.ref)
        assert r.ok, (r, slack.rejected)
    assert slack.rejected == []


def test_the_strict_fake_refuses_what_breaks_a_limit(slack: FakeSlack) -> None:
    bot = SlackBotNotifier(TOKEN, CHANNEL_ID, api_url=slack.api_url, timeout=5)
    r = bot.post(SlackMessage("x" * 5000, []))
    assert (r.reason, r.error) == ("client_error", "invalid_blocks")
    assert slack.rejected and "text: 5000 characters" in slack.rejected[0][1][0]
    assert slack.top_level() == []
