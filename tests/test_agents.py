"""The agent directory (issue 15): List Agents parsing, paging and refresh over loopback,
names in Slack, failures that change nothing, per-agent call limits in the tracker."""

from __future__ import annotations

import io
import json
import logging
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
import pytest
from dialnexa_watchdog.alerts.state import AlertState, State
from dialnexa_watchdog.alerts.store import Changes, Store
from dialnexa_watchdog.app import App, build
from dialnexa_watchdog.cli import main
from dialnexa_watchdog.clock import FakeClock, SystemClock
from dialnexa_watchdog.config import load_settings
from dialnexa_watchdog.demo import DEGRADED, DEMO_KEY, demo_overrides, demo_scenario
from dialnexa_watchdog.ingest.agents import MAX_TITLE_CHARS, AgentEntry, parse_agents
from dialnexa_watchdog.ingest.parse import PageError
from dialnexa_watchdog.ingest.tracker import Tracker, TrackerConfig
from dialnexa_watchdog.model import Call, Range, StatusClasses
from dialnexa_watchdog.report import rate_table
from dialnexa_watchdog.simulator import Scenario, Simulator, serve
from dialnexa_watchdog.simulator.agents import GARBAGE, agent_item, bad_agents, camel
from dialnexa_watchdog.simulator.profiles import AgentInfo
from dialnexa_watchdog.windows import Windows
from fakeslack import CHANNEL_ID, TOKEN, FakeSlack
from support import KEY, T0

# ---- parsing (pure) --------------------------------------------------------------------------


def items_of(infos: list[tuple[str, AgentInfo]]) -> list[dict[str, Any]]:
    return [agent_item(aid, info, i, int(T0 * 1000)) for i, (aid, info) in enumerate(infos)]


INFOS = [
    ("agt_a", AgentInfo("Customer Support Bot", max_call_duration_sec=600, ring_duration_sec=30)),
    ("agt_b", AgentInfo(None, published=False, max_call_duration_sec=300)),
    ("agt_c", AgentInfo("Gone", deleted=True)),
]
WANT = [
    AgentEntry("agt_a", "Customer Support Bot", True, False, 600.0, 30.0),
    AgentEntry("agt_b", None, False, False, 300.0, None),
    AgentEntry("agt_c", "Gone", True, True, None, None),
]


@pytest.mark.parametrize("shape", ["snake", "camel", "bare"])
def test_documented_items_parse_in_every_spelling(shape: str) -> None:
    items = items_of(INFOS)
    doc: Any = {"data": items, "meta": {"page": 1, "limit": 20, "total": 3, "totalPages": 1}}
    if shape == "camel":
        doc = camel(doc)
    elif shape == "bare":
        doc = items
    page = parse_agents(msgspec.json.encode(doc))
    assert page.agents == WANT
    assert (page.items, page.invalid) == (3, 0)
    assert page.total_pages == (None if shape == "bare" else 1)
    assert WANT[0].call_limit(60.0) == 690.0 and WANT[1].call_limit(5.0) == 305.0
    assert WANT[2].call_limit(60.0) is None
    assert [e.active for e in WANT] == [True, False, False]


def test_bad_items_are_skipped_and_counted_and_bad_fields_are_unknown() -> None:
    good = items_of(INFOS)
    page = parse_agents(msgspec.json.encode({"data": bad_agents(good)}))
    by_id = {e.id: e for e in page.agents}
    # no id / a numeric id are skipped; the rest keep their id with the bad fields unknown
    assert page.invalid == 2 and page.items == len(good) + 5
    assert by_id["agt_bad_version"] == AgentEntry("agt_bad_version", deleted=False)
    assert by_id["agt_bad_limits"] == AgentEntry("agt_bad_limits")
    assert by_id["agt_negative"] == AgentEntry("agt_negative")  # -5 s and 1e308 s refused
    assert [by_id[e.id] for e in WANT] == WANT
    # the inbound number's phone number is never kept
    phone = good[0]["current_version"]["telephony"]["inbound"]["details"]["phone_number"]
    assert phone not in repr(page)
    garbage = parse_agents(msgspec.json.encode(GARBAGE))
    assert garbage.agents == [] and garbage.invalid == 5 and garbage.total_pages is None
    for body in (b"<html>502</html>", b'{"data": {"id": "x"}}', b'"agents"', b"[1, 2"):
        with pytest.raises(PageError):
            parse_agents(body)


def test_saved_entries_round_trip_and_damage_is_dropped() -> None:
    for e in WANT:
        assert AgentEntry.from_json(json.loads(json.dumps(e.to_json()))) == e
    for bad in (None, [], ["agt"], [7, "t", True, False, 1, 2], ["agt", "t", "yes", 0, -1, 2]):
        got = AgentEntry.from_json(bad)
        assert got is None or got == AgentEntry("agt", "t", None, None, None, 2.0)


# ---- the directory over loopback -------------------------------------------------------------


def make_app(url: str, tmp: Path, clock: FakeClock, **extra: object) -> App:
    overrides = {
        "dialnexa.base_url": url,
        "dialnexa.api_key": KEY,
        "metrics.listen": "127.0.0.1:0",
        "state.path": str(tmp / "state.sqlite3"),
        **extra,
    }
    settings = load_settings(None, overrides=overrides, environ={})
    return build(settings, clock, stream=io.StringIO())


def sample(app: App, name: str, labels: dict[str, str] | None = None) -> float | None:
    return app.registry.get_sample_value(name, labels or {})


def agent_requests(sim: Simulator) -> int:
    return sum(1 for r in sim.requests if "agents2" in r.path)


@pytest.mark.slow
def test_the_directory_pages_refreshes_and_survives_a_restart(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    scenario = Scenario.realistic(30, 10_000, 13, history=1800)
    sim = Simulator(clock, scenario, keys=(KEY,), agents_shape="camel", agents_total_pages=False)
    with serve(sim) as server:
        app = make_app(server.url, tmp_path, clock, **{"dialnexa.page_size": 7})
        d = app.directory
        assert d is not None and not d.agents and sample(app, "dialnexa_agents_api_up") == 0
        report = app.daemon.poll_once()
        assert report.ok
        listed = sim.directory()
        assert len(listed) == 32 and agent_requests(sim) == 5  # ceil(32 / 7) pages
        assert sample(app, "dialnexa_agents_api_requests_total", {"code": "200"}) == 5
        assert sample(app, "dialnexa_agents_api_up") == 1
        assert list(d.agents) == [a for a, _ in listed]
        for aid, info in listed:
            e = d.agents[aid]
            title = None if info.title is None else info.title[:MAX_TITLE_CHARS]  # cut, kept
            assert (e.title, e.published, e.deleted) == (title, info.published, info.deleted)
            assert e.max_call_duration == info.max_call_duration_sec
            want = info.max_call_duration_sec
            if want is not None:
                assert d.limit_of(aid) == want + (info.ring_duration_sec or 0) + 60
            labels = {"agent_id": aid, "title": (info.title or aid)[:200]}
            labels["published"] = str(info.published).lower()
            assert sample(app, "dialnexa_agent_info", labels) == (None if info.deleted else 1)
        # not due yet: no request; due after agents.refresh (10m): a renamed agent shows
        first = listed[0][0]
        sim.set_agent(first, title="Renamed <b>")
        for _ in range(19):
            clock.advance(30)
            app.daemon.poll_once()
        assert agent_requests(sim) == 5 and d.title_of(first) != "Renamed <b>"
        clock.advance(30)
        app.daemon.poll_once()
        assert agent_requests(sim) == 10 and d.title_of(first) == "Renamed <b>"
        app.close()
        # a restart has the names before its first listing, even if the API now fails
        sim.agents_api = "404"
        again = make_app(
            server.url, tmp_path, clock, **{"slack.agent_names": {first: "From config"}}
        )
        d2 = again.directory
        assert d2 is not None and d2.title_of(listed[1][0]) == listed[1][1].title
        assert d2.title_of(first) == "From config"  # slack.agent_names wins
        asked = agent_requests(sim)
        again.daemon.poll_once()  # listed less than agents.refresh ago: not asked again yet
        assert agent_requests(sim) == asked
        clock.advance(600)
        again.daemon.poll_once()
        assert agent_requests(sim) == asked + 1  # the 404
        assert d2.title_of(listed[1][0]) == listed[1][1].title  # a failure keeps what it had
        assert sample(again, "dialnexa_agents_api_up") == 0
        info = {"agent_id": first, "title": "From config", "published": "true"}
        assert sample(again, "dialnexa_agent_info", info) == 1
        again.close()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["403", "404", "garbage"])
def test_a_failing_agents_api_changes_nothing_else(
    tmp_path: Path, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The same seeded traffic polled twice: with the directory off, and with an agents
    API that fails: the same requests per cycle, the same windows, the same metrics."""
    runs = {}
    for label, api in (("off", "on"), ("failing", mode)):
        clock = FakeClock(T0)
        sim = Simulator(clock, Scenario.realistic(20, 10_000, 5, history=1800), keys=(KEY,))
        sim.agents_api = api  # type: ignore[assignment]
        (tmp_path / label).mkdir()
        with serve(sim) as server:
            extra = {"agents.directory": label != "off", "agents.refresh": "1m"}
            app = make_app(server.url, tmp_path / label, clock, **extra)
            with caplog.at_level(logging.WARNING, "watchdog.agents"):
                reports = []
                for _ in range(6):  # past one refresh interval: retried, logged once
                    reports.append(app.daemon.poll_once())
                    clock.advance(30)
            runs[label] = (
                [(r.ok, r.requests, r.calls_seen, r.settled) for r in reports],
                sorted(app.windows.content()),
                sample(app, "dialnexa_api_requests_total", {"code": "200"}),
                sample(app, "dialnexa_api_invalid_items_total"),
                sample(app, "dialnexa_agents_api_up"),
                agent_requests(sim),
            )
            app.close()
    off, failing = runs["off"], runs["failing"]
    assert failing[:4] == off[:4]
    assert off[4:] == (0, 0) and failing[4] == 0 and failing[5] >= 2  # asked again, still 0
    lines = [r for r in caplog.records if "agent directory unavailable" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]


@pytest.mark.slow
def test_names_reach_slack_escaped(tmp_path: Path) -> None:
    """The demo's agt_support_02 fails every call from 3 s to 18 s; the API titles it with
    Slack's control sequences."""
    clock = FakeClock(T0)
    sim = Simulator(clock, demo_scenario(), keys=(DEMO_KEY,))
    sim.set_agent(DEGRADED, title="<!channel> & <@U123> *Support*")
    fake = FakeSlack()
    try:
        with serve(sim) as server:
            overrides = demo_overrides(server.url, "127.0.0.1:0", tmp_path)
            overrides |= {"slack.token": TOKEN, "slack.channel": CHANNEL_ID}
            overrides["slack.api_url"] = fake.api_url
            app = build(load_settings(None, overrides=overrides, environ={}), clock)
            for _ in range(8):
                app.daemon.poll_once()
                app.daemon.deliver()
                clock.advance(5)
            app.close()
        posts = [json.dumps(p.params, ensure_ascii=False) for p in fake.posts()]
    finally:
        fake.close()
    mine = [p for p in posts if DEGRADED in p]
    assert mine, posts
    for text in mine:
        assert "&lt;!channel&gt; &amp; &lt;@U123&gt;" in text
        assert "<!channel>" not in text and "<@U123>" not in text


# ---- per-agent call limits in the tracker (pure) ---------------------------------------------


CLASSES = StatusClasses(
    pending=frozenset({"in_progress", "ringing"}),
    denominator=("completed", "failed"),
    excluded=(),
    outcomes={"failed": ("failed",)},
)
LIMITS = {"agt_short": 400.0, "agt_long": 1900.0}


def plan_one(agent: str, age: float, own: bool, after: float) -> list[tuple[str, float]]:
    """A tracker holding one call of ``agent``, pending and ``age`` old: the (kind, start)
    of the non-head ranges it plans ``after`` seconds later."""
    w = Windows({"5m": 300.0, "1h": 3600.0}, CLASSES)
    cfg = TrackerConfig(longest_window=3600.0, max_call_duration=900.0)
    t = Tracker(cfg, w, CLASSES, LIMITS.get if own else None)
    call = Call("c", agent, "in_progress", T0 - age, None)
    t.apply([], T0 - age - 60, backfill=True)
    t.apply([call], T0 - age + 5)  # first seen 5 s old
    reread = Range(T0 - age - 1, T0 - age + 1, None, "pending")
    t.apply([call], T0, [reread])  # re-read now, still in progress: when is it next due?
    return [(r.kind, r.start) for r in t.plan(T0 + after) if r.kind != "head"]


def test_a_pending_call_past_its_agents_limit_is_a_straggler_at_once() -> None:
    # 500 s into a call of an agent whose calls last at most 400 s: globally (900 s) it is
    # in conversation and re-read every 30 s; by its own limit it backs off (a quarter of
    # its age) and is then listed as a straggler
    assert plan_one("agt_short", 500, own=False, after=31) == [("pending", T0 - 500)]
    assert plan_one("agt_short", 500, own=True, after=31) == []
    assert plan_one("agt_short", 500, own=True, after=126) == [("straggler", T0 - 500)]
    # 1000 s into a call of an agent allowed 1900 s: still in conversation by its own limit
    assert plan_one("agt_long", 1000, own=False, after=31) == []
    assert plan_one("agt_long", 1000, own=False, after=251) == [("straggler", T0 - 1000)]
    assert plan_one("agt_long", 1000, own=True, after=31) == [("pending", T0 - 1000)]
    # an agent the directory has no limit for keeps the global one
    for after in (31, 240):
        assert plan_one("agt_other", 950, True, after) == plan_one("agt_other", 950, False, after)


def test_the_backfill_reaches_back_the_longest_known_limit_capped_at_max_pending_age() -> None:
    w = Windows({"5m": 300.0, "1h": 3600.0}, CLASSES)
    cfg = TrackerConfig(longest_window=3600.0, max_call_duration=900.0, max_pending_age=21600.0)
    for longest, reach in ((None, 900.0), (400.0, 900.0), (7290.0, 7290.0), (86400.0, 21600.0)):
        t = Tracker(cfg, w, CLASSES, LIMITS.get, lambda x=longest: x)  # type: ignore[misc]
        assert t.reach() == reach
        assert [r.start for r in t.plan_backfill(T0)] == [T0 - 3600.0 - reach]
    assert Tracker(cfg, w, CLASSES).plan_backfill(T0)[0].start == T0 - 4500.0


@pytest.mark.slow
def test_a_cold_start_counts_long_calls_of_an_agent_allowed_hours(tmp_path: Path) -> None:
    """Calls of an agent allowed 2 h that began 1 h 50 min before a cold start and ended
    inside the 1 h window: the backfill reaches back 1 h + that agent's limit and counts
    them (agents.backfill_agent_limits, off by default: it multiplies the backfill); with the
    global 15 min (agents.call_limits: false) it never lists them."""
    base = Scenario.steady(agents=2, calls_per_day=2 * 1440, seed=5, history=4 * 3600)
    long_agent, short_agent = base.agents
    info = AgentInfo(title="Renewals", max_call_duration_sec=7200, ring_duration_sec=30)
    scenario = replace(base, agents=(replace(long_agent, info=info), short_agent))
    counted = {}
    own = {"agents.backfill_agent_limits": True}
    for label, extra in (("global", {"agents.call_limits": False}), ("own", own)):
        clock = FakeClock(T0)
        sim = Simulator(clock, scenario, keys=(KEY,), rate_limit=None)
        for i in range(3):  # 1 h 40 min talks, settled 10 min before the start
            sim.add_call(long_agent.agent_id, T0 - 6600 + i, "voicemail", ring=5.0, talk=5995.0)
        (tmp_path / label).mkdir()
        with serve(sim) as server:
            app = make_app(server.url, tmp_path / label, clock, **extra)
            assert app.daemon.poll_once().ok  # the directory, then the backfill
            cells = app.windows.content()  # (bucket, agent, outcome slot, calls)
            counted[label] = sum(n for _, a, _, n in cells if a == long_agent.agent_id)
            reach = app.tracker.reach()
            app.close()
        if label == "own":
            assert reach == 7200 + 30 + 60  # max call + ring + agents.limit_margin
        else:
            assert reach == 900
    assert counted["own"] - counted["global"] == 3, counted


# ---- names where people read them: rate tables, `alerts`, `once` -----------------------------


def test_rate_table_shows_titles_under_ids_with_control_characters_defused() -> None:
    classes = StatusClasses()
    w = Windows({"5m": 300.0, "1h": 3600.0}, classes)
    w.advance(T0)
    w.add("agt_a", "failed", T0 - 10)
    w.add("agt_b", "completed", T0 - 10)
    names = {"agt_a": "Support \x1b[31mBot"}.get
    lines = rate_table(w, name_of=names).splitlines()[2:]
    assert lines[0].split()[0] == "agt_a" and lines[1].startswith("Support \ufffd[31mBot ")
    assert lines[2].split()[0] == "agt_b" and lines[3].split()[0] == "1h"  # no name: blank
    one = Windows({"5m": 300.0}, classes)
    one.advance(T0)
    one.add("agt_a", "failed", T0 - 10)
    assert rate_table(one, name_of=names).splitlines()[2:] == [
        rate_table(one).splitlines()[2],
        "Support \ufffd[31mBot",
    ]


def test_alerts_command_names_agents_from_the_saved_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "state.sqlite3"
    cfg = tmp_path / "watchdog.yaml"
    cfg.write_text(
        f"state: {{path: {path}}}\n"
        "slack: {agent_names: {agt_b: Named in config}}\n"
        "rules:\n  - {name: failed-rate, outcome: failed, window: 15m, threshold: 0.25}\n",
        encoding="utf-8",
    )
    store = Store(path)
    saved = [AgentEntry("agt_a", "Customer Support Bot").to_json(), AgentEntry("agt_b").to_json()]
    store.set_meta("agent_directory", json.dumps({"at": T0, "agents": saved}))
    states = [
        AlertState("failed-rate", a, "critical", State.FIRING, T0, T0, fired_at=T0, rate=0.5)
        for a in ("agt_a", "agt_b", "agt_c")
    ]
    store.commit(T0, Changes(states=[(st, None) for st in states]))
    store.close()
    assert main(["alerts", "-c", str(cfg)]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert "failed-rate  Customer Support Bot (agt_a)  firing" in " ".join(rows)
    assert any("Named in config (agt_b)" in r for r in rows)  # the config wins
    assert any(r.split()[1] == "agt_c" for r in rows)


@pytest.mark.slow
def test_once_prints_titles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = SystemClock()
    sim = Simulator(clock, Scenario.demo(history=120.0), keys=(KEY,))
    with serve(sim) as server:
        cfg = tmp_path / "watchdog.yaml"
        cfg.write_text(
            f"dialnexa: {{base_url: '{server.url}', api_key: {KEY}}}\n"
            "poll: {max_call_duration: 5m}\nwindows: [5m]\n",
            encoding="utf-8",
        )
        mark = signal.getsignal(signal.SIGINT)
        assert main(["once", "-c", str(cfg)]) == 0
        # once installed its own SIGINT handler; the caller's is back (a later Ctrl-C works)
        assert signal.getsignal(signal.SIGINT) is mark
    out = capsys.readouterr().out
    assert "Customer Support Bot" in out and "agt_support_02" in out
    assert sum(1 for r in sim.requests if "agents2" in r.path) == 1


@pytest.mark.slow
def test_per_agent_limits_cost_fewer_requests_than_a_global_limit_long_enough_for_all(
    tmp_path: Path,
) -> None:
    """The same seeded realistic traffic (agents' limits 300 s to 3 h), with a few calls the
    API keeps showing in progress for 2 h, re-read by range (``poll.pending_listing:
    ranges``): per-agent limits back off from those after their agent's limit; a global
    poll.max_call_duration long enough for the longest agent's calls (3 h) keeps re-reading
    them every 30 s. (With the default status=in-progress listing one request watches every
    pending call, and the limits change no request count: measured equal.)"""
    totals = {}
    ranges = {"poll.pending_listing": "ranges"}
    for label, extra in (
        ("global", {"agents.call_limits": False, "poll.max_call_duration": "3h",
                    "poll.max_pending_age": "4h", **ranges}),
        ("own", ranges),
    ):  # fmt: skip
        clock = FakeClock(T0)
        scenario = Scenario.realistic(30, 20_000, 21, history=4 * 3600)
        sim = Simulator(clock, scenario, keys=(KEY,), rate_limit=None)
        short = [a for a, i in sim.directory() if i.max_call_duration_sec == 300]
        for i in range(30):  # stuck in progress for 2 h, created over the 3 h before the start
            sim.add_call(short[i % len(short)], T0 - 10_800 + 360 * i, talk=7200.0)
        (tmp_path / label).mkdir()
        with serve(sim) as server:
            app = make_app(server.url, tmp_path / label, clock, **extra)
            requests = []
            for _ in range(30):
                requests.append(app.daemon.poll_once().requests)
                clock.set(max(clock.now(), T0 + 30 * len(requests)))
            app.close()
        totals[label] = sum(requests[10:])  # after the backfill and the first 5 minutes
        if label == "own":
            assert (
                app.directory is not None
                and app.directory.limit_of(short[0])
                == 300 + (app.directory.agents[short[0]].ring_duration or 0) + 60
            )
    assert totals["own"] < totals["global"] / 2, totals  # measured 154 vs 473
