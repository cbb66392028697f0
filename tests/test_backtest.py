"""Backtests: a live daemon on the simulator (fake clock) through a scripted day, then the
same span backtested from its recorded history (same incidents, same start and end cycle,
same notices) and from the API (within one cycle); a stricter candidate gives a subset; the
command's bad input (candidate file errors, a span outside the recording with no API key,
an empty span)."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from dialnexa_watchdog.alerts.compile import compile_rules
from dialnexa_watchdog.alerts.state import State
from dialnexa_watchdog.alerts.store import Store
from dialnexa_watchdog.alerts.store.postgres import PgStore
from dialnexa_watchdog.app import build
from dialnexa_watchdog.backtest import Episode, Log, RuleSet, backtest, from_history
from dialnexa_watchdog.backtest.report import Window, flaps, only_in, text, to_json
from dialnexa_watchdog.cli import main
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.config import Settings, load_settings
from dialnexa_watchdog.history import Checkpoint, HistoryRow
from dialnexa_watchdog.simulator import Scenario, Simulator, serve
from dialnexa_watchdog.windows import Windows
from hypothesis import given, settings
from hypothesis import strategies as st
from pgserver import PASSWORD
from support import IN_CI, KEY, T0, require_tool

INTERVAL = 60.0
T0_BUCKETS = 116_666_700  # a bucket index near T0 (15 s buckets)
K0 = T0_BUCKETS - 250  # cells land in the last hour and before it
HOUR = 3600.0
RULES: list[dict[str, Any]] = [
    {
        "name": "failure-rate",
        "outcome": "failed",
        "window": "15m",
        "threshold": 0.25,
        "clear_below": 0.2,
        "min_calls": 20,
    },
    {
        "name": "failure-spike",
        "outcome": "failed",
        "window": "5m",
        "threshold": 0.5,
        "min_calls": 10,
        "for": "2m",
        "severity": "critical",
    },
]


def scripted_day() -> Scenario:
    """Six agents at 3 calls a minute (8% fail normally): a hard failure, a slow drift, one
    flapping around the threshold, one that degrades then goes quiet, two healthy ones."""
    base = Scenario.steady(agents=6, calls_per_day=6 * 3 * 1440, seed=11, history=4500.0)
    hard, drift, flap, quiet, ok1, ok2 = base.agents
    drift_steps = tuple(
        (6 * HOUR + i * HOUR, 7 * HOUR + i * HOUR, share)
        for i, share in enumerate((0.14, 0.2, 0.26, 0.32, 0.38, 0.2))
    )
    flap_steps = tuple(
        (13 * HOUR + i * 900.0, 13 * HOUR + (i + 1) * 900.0, 0.34 if i % 2 == 0 else 0.1)
        for i in range(12)
    )
    agents = (
        replace(hard, degradations=((2 * HOUR, 3 * HOUR, 0.8),)),
        replace(drift, degradations=drift_steps),
        replace(flap, degradations=flap_steps),
        replace(
            quiet, degradations=((17 * HOUR, 18 * HOUR, 0.7),), quiet=((17.5 * HOUR, 20 * HOUR),)
        ),
        ok1,
        ok2,
    )
    return replace(base, agents=agents)


def settings_for(url: str, state: Path, **extra: object) -> Settings:
    overrides = {
        "dialnexa.base_url": url,
        "dialnexa.api_key": KEY,
        "metrics.listen": "127.0.0.1:0",
        "state.path": str(state),
        "poll.interval": INTERVAL,
        "rules": RULES,
        # posts through a webhook (never delivered here): the planner's no-edit policy
        "slack.webhook_url": "http://127.0.0.1:9/hook",
        "slack.repeat_interval": "1h",
        **extra,
    }
    return load_settings(None, overrides=overrides, environ={})


Interval = tuple[str, str, float, float | None]  # (rule, agent, fired cycle, resolved cycle)


@dataclass
class Day:
    settings: Settings
    state: Path
    sim: Simulator
    url: str
    first: float
    last: float
    live: list[Interval] = field(default_factory=list)
    notices: Counter[tuple[str, str]] = field(default_factory=Counter)


def live_episodes(history: list[dict[tuple[str, str], Any]]) -> list[Interval]:
    """Firing episodes from the pipeline's states after each cycle."""
    out: list[Interval] = []
    open_: dict[tuple[str, str], int] = {}
    for states in history:
        for key, alert in states.items():
            if alert.state is State.FIRING and key not in open_:
                open_[key] = len(out)
                out.append((key[0], key[1], alert.fired_at, None))
            elif alert.state is State.RESOLVED and key in open_:
                i = open_.pop(key)
                out[i] = (*out[i][:3], alert.resolved_at)
    return sorted(out)


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Day]:
    """The live daemon through the scripted day, one poll a minute, recording its history."""
    tmp = tmp_path_factory.mktemp("day")
    clock = FakeClock(T0)
    sim = Simulator(clock, scripted_day(), keys=(KEY,), rate_limit=None)
    with serve(sim) as server:
        settings = settings_for(server.url, tmp / "state.sqlite3")
        app = build(settings, clock)
        assert app.alerts is not None
        seen: list[dict[tuple[str, str], Any]] = []
        first = clock.now()
        report = app.daemon.backfill()
        assert report.ok
        seen.append(app.alerts.pipeline.states())
        while clock.now() < T0 + 24 * HOUR:
            clock.advance(INTERVAL)
            assert app.daemon.poll_once().ok
            seen.append(app.alerts.pipeline.states())
        notices = Counter((kind, op) for _, _, op, kind, _ in app.alerts.store.outbox())
        last = clock.now()
        app.close()
        yield Day(
            settings,
            tmp / "state.sqlite3",
            sim,
            server.url,
            first,
            last,
            live_episodes(seen),
            notices,
        )


def episodes(report: dict[str, Any], name: str = "config") -> list[Interval]:
    s = next(s for s in report["sets"] if s["name"] == name)
    return sorted((e["rule"], e["agent"], e["start_ts"], e["end_ts"]) for e in s["incidents"])


@pytest.mark.slow
def test_a_backtest_of_the_recorded_history_decides_what_the_live_daemon_did(day: Day) -> None:
    # the day has what it was scripted to have: each shape fired, healthy agents did not
    agents = {a for _, a, _, _ in day.live}
    assert {"agt_00000", "agt_00001", "agt_00002", "agt_00003"} <= agents
    assert not agents & {"agt_00004", "agt_00005"}
    flap_fires = [e for e in day.live if e[0] == "failure-rate" and e[1] == "agt_00002"]
    assert len(flap_fires) >= 2
    store = Store(day.state)
    try:
        out = backtest(
            day.settings,
            [RuleSet("config", day.settings.rules)],
            from_history(store, day.first, day.last),
            source="recorded",
        )
    finally:
        store.close()
    assert out.span.cycles == 24 * 60 + 1
    assert episodes(out.report) == day.live
    log = out.runs[0].log
    assert Counter((kind, op) for _, kind, op in log.notices) == day.notices
    s = out.report["sets"][0]
    assert s["never_alerted"] == ["agt_00004", "agt_00005"]
    assert s["by_rule"]["failure-rate"]["flaps"] >= 1
    quiet = [e for e in s["incidents"] if e["agent"] == "agt_00003" and e["note"]]
    assert quiet and "no data" in quiet[0]["note"]


# ---- the command -------------------------------------------------------------------------------
def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def write_config(tmp: Path, state: Path, rules: list[dict[str, Any]] = RULES, **extra: Any) -> Path:
    cfg = {
        "state": {"path": str(state)},
        "poll": {"interval": f"{INTERVAL:g}s"},
        "slack": {"webhook_url": "http://127.0.0.1:9/hook", "repeat_interval": "1h"},
        "rules": rules,
        **extra,
    }
    path = tmp / "watchdog.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def stricter(rules: list[dict[str, Any]], by: float) -> list[dict[str, Any]]:
    return [
        {
            **r,
            "threshold": r["threshold"] + by,
            "clear_below": r.get("clear_below", r["threshold"]) + by,
        }
        for r in rules
    ]


@pytest.mark.slow
def test_a_stricter_candidate_pages_a_subset_and_the_report_lists_the_difference(
    day: Day, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, day.state)
    cand = tmp_path / "candidate.yaml"
    cand.write_text(yaml.safe_dump({"rules": stricter(RULES, 0.1)}), encoding="utf-8")
    out = tmp_path / "report.json"
    argv = ["backtest", "-c", str(cfg), "--rules", str(cand), "--json", str(out)]
    rc = main([*argv, "--since", iso(day.first), "--until", iso(day.last)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    report = json.loads(out.read_text())
    base, candidate = episodes(report, "config"), episodes(report, "candidate")
    assert base == day.live  # the configured rules, as the live daemon decided
    assert 0 < len(candidate) < len(base)
    for rule, agent, start, end in candidate:  # each inside one of the configured rules'
        assert any(
            r == rule
            and a == agent
            and s <= start
            and (e is None or (end is not None and end <= e))
            for r, a, s, e in base
        ), (rule, agent, start, end)
    diff = report["difference"]
    assert diff["only_candidate"] == []
    only = sorted((e["rule"], e["agent"], e["start_ts"], e["end_ts"]) for e in diff["only_config"])
    assert only and set(only) < set(base)
    overlapped = set(base) - set(only)
    assert all(
        any(r == rule and a == agent for r, a, *_ in candidate) for rule, agent, *_ in overlapped
    )
    assert f"== only with config: {len(only)} incidents" in printed
    assert "== only with candidate: 0 incidents" in printed
    c = next(s for s in report["sets"] if s["name"] == "candidate")
    assert c["messages"]["total"] < report["sets"][0]["messages"]["total"]


@pytest.mark.slow
def test_the_command_backtests_the_history_recorded_in_postgresql(
    day: Day,
    tmp_path: Path,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With ``state.url`` the command reads the configured PostgreSQL store (the day's
    history, recorded there row for row) and decides what the live daemon did."""
    src = Store(day.state)
    saved = src.load_saved()
    assert saved is not None
    rows = list(src.history_rows(0.0, math.inf))
    names = src.history_names()
    src.close()
    dst = PgStore(pg_url, PASSWORD)
    dst.save_history(Checkpoint(rows=rows, names=names, resume=saved.resume))
    dst.close()
    monkeypatch.setenv("WATCHDOG_STATE__PASSWORD", PASSWORD)
    # state.path names a file that does not exist: only the database is read
    absent = tmp_path / "absent.sqlite3"
    cfg = write_config(tmp_path, absent)
    with_url = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    with_url["state"]["url"] = pg_url
    cfg.write_text(yaml.safe_dump(with_url), encoding="utf-8")
    out = tmp_path / "report.json"
    argv = ["backtest", "-c", str(cfg), "--json", str(out)]
    assert main([*argv, "--since", iso(day.first), "--until", iso(day.last)]) == 0
    assert episodes(json.loads(out.read_text())) == day.live
    assert not absent.exists()
    # before the recording, without an API key: the database is named, never the password
    assert main([*argv, "--since", iso(day.first - 86400), "--until", iso(day.last)]) == 2
    err = capsys.readouterr().err
    database = pg_url.rsplit("/", 1)[1]
    assert f"/{database} holds history from" in err and PASSWORD not in err


def test_a_candidate_file_with_errors_gets_one_line_per_field_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, tmp_path / "state.sqlite3")
    cand = tmp_path / "candidate.yaml"
    bad = {"name": "Bad Name", "outcome": "nope", "window": "15m", "threshold": 2}
    cand.write_text(yaml.safe_dump({"rules": [bad], "windows": ["5m"]}), encoding="utf-8")
    assert main(["backtest", "-c", str(cfg), "--rules", str(cand), "--since", "1h"]) == 2
    err = capsys.readouterr().err
    assert f"invalid candidate rules in {cand}" in err
    assert "windows: unknown key in a candidate rules file" in err
    assert "Traceback" not in err
    cand.write_text(yaml.safe_dump({"rules": [bad]}), encoding="utf-8")
    assert main(["backtest", "-c", str(cfg), "--rules", str(cand), "--since", "1h"]) == 2
    err = capsys.readouterr().err
    assert "rules[0].name:" in err and "rules[0].threshold:" in err
    cand.write_text("rules: [", encoding="utf-8")
    assert main(["backtest", "-c", str(cfg), "--rules", str(cand)]) == 2
    assert "invalid YAML" in capsys.readouterr().err


def test_a_span_before_the_recording_without_an_api_key_says_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state.sqlite3"
    cfg = write_config(tmp_path, state)
    assert main(["backtest", "-c", str(cfg), "--since", "2d"]) == 2
    err = capsys.readouterr().err
    assert f"nothing is recorded in {state}" in err and "no API key" in err
    store = Store(state, now=T0)
    store.save_history(
        Checkpoint(
            rows=[
                HistoryRow(T0 + i * 60, 15.0, 0, 0, 0 if i == 0 else None, b"") for i in range(30)
            ],
            names=[],
            resume="{}",
        )
    )
    store.close()
    argv = ["backtest", "-c", str(cfg), "--until", iso(T0 + 3600)]
    assert main([*argv, "--since", iso(T0 - 86400)]) == 2
    err = capsys.readouterr().err
    assert "holds history from 2025-06-15 15:06:40 UTC to 2025-06-15 15:35:40 UTC" in err
    assert "the 1d from 2025-06-14 15:06:40 UTC to 2025-06-15 15:06:40 UTC" in err
    # recorded, but no call in it: said so, exit 1
    assert main([*argv, "--since", iso(T0)]) == 1
    assert "no calls in the span" in capsys.readouterr().err
    cfg_no_rules = write_config(tmp_path, state, rules=[])
    assert main(["backtest", "-c", str(cfg_no_rules), "--since", iso(T0)]) == 2
    assert "no rules to backtest" in capsys.readouterr().err


# ---- from the API ------------------------------------------------------------------------------
def api_config(tmp: Path, url: str, **extra: Any) -> Path:
    api = {"base_url": url, "api_key": KEY, "rate_limit": 100_000, "rate_limit_period": "1s"}
    return write_config(tmp, tmp / "empty-state.sqlite3", dialnexa={**api, **extra})


def within_one_cycle(got: list[Interval], want: list[Interval]) -> bool:
    def near(a: float | None, b: float | None) -> bool:
        return (a is None) == (b is None) and (a is None or abs(a - b) <= INTERVAL)  # type: ignore[operator]

    return len(got) == len(want) and all(
        g[:2] == w[:2] and near(g[2], w[2]) and near(g[3], w[3])
        for g, w in zip(got, want, strict=True)
    )


@pytest.mark.slow
def test_a_backtest_from_the_api_finds_the_same_incidents_within_one_cycle_and_reruns_free(
    day: Day, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = api_config(tmp_path, day.url)
    out = tmp_path / "api.json"
    argv = ["backtest", "-c", str(cfg), "--since", iso(day.first), "--until", iso(day.last)]
    argv += ["--cache", str(tmp_path / "cache"), "--json", str(out)]
    before = day.sim.request_count
    assert main([*argv, "--yes"]) == 0
    captured = capsys.readouterr()
    requests = day.sim.request_count - before
    assert "listing it from the API" in captured.err and "ETA" in captured.err
    report = json.loads(out.read_text())
    assert report["span"]["source"] == "api"
    got = episodes(report)
    assert within_one_cycle(got, day.live), (got, day.live)
    assert requests > 100
    # a rerun (other thresholds, say) lists nothing: every chunk is cached
    before = day.sim.request_count
    assert main(argv) == 0  # no --yes needed: nothing to fetch
    assert day.sim.request_count == before
    assert "are cached: no request" in capsys.readouterr().err
    assert episodes(json.loads(out.read_text())) == got


@pytest.mark.parametrize("stop", ["403", "outage", "ctrl-c"])
@pytest.mark.slow
def test_a_fetch_stopped_midway_keeps_what_it_fetched_and_a_rerun_resumes(
    day: Day, tmp_path: Path, capsys: pytest.CaptureFixture[str], stop: str
) -> None:
    cfg = api_config(tmp_path, day.url, max_retries=0)
    span = ["--since", iso(day.first + 2 * HOUR), "--until", iso(day.first + 4 * HOUR)]
    whole = tmp_path / "whole.json"
    base = ["backtest", "-c", str(cfg), *span, "--yes"]
    assert main([*base, "--cache", str(tmp_path / "c0"), "--json", str(whole)]) == 0
    capsys.readouterr()
    cache = tmp_path / "c1"
    argv = [*base, "--cache", str(cache), "--json", str(tmp_path / "r.json")]
    count = day.sim.request_count
    fired = []

    def hook(path: str, params: Any) -> None:
        if day.sim.request_count - count == 12 and not fired:
            fired.append(True)
            if stop == "403":
                day.sim.forbidden_keys = frozenset({KEY})
            elif stop == "outage":
                day.sim.inject("503", count=1000)
            else:
                os.kill(os.getpid(), signal.SIGINT)

    day.sim.on_request = hook
    try:
        rc = main(argv)
    finally:
        day.sim.on_request = None
        day.sim.forbidden_keys = frozenset()
        day.sim.clear_faults()
    err = capsys.readouterr().err
    assert fired
    if stop == "ctrl-c":
        assert rc == 130 and "interrupted; every finished chunk is kept" in err
    else:
        assert rc == 1 and "fetch stopped listing calls created" in err
        assert ("403" in err) if stop == "403" else ("server error (503)" in err)
        assert "run the same command again to resume" in err
    files = list(cache.glob("calls-*.sqlite3"))
    assert len(files) == 1
    with sqlite3.connect(files[0]) as db:  # consistent: every kept chunk whole
        kept = db.execute("SELECT start, calls, data FROM chunks").fetchall()
    assert kept
    for _, n, data in kept:
        assert len(msgspec.msgpack.decode(zlib.decompress(data))) == n
    # the rerun lists only the chunks that were missing, and decides as an unbroken run
    count = day.sim.request_count
    assert main(argv) == 0
    assert f"({len(kept)} cached)" in capsys.readouterr().err
    assert episodes(json.loads((tmp_path / "r.json").read_text())) == episodes(
        json.loads(whole.read_text())
    )
    assert episodes(json.loads(whole.read_text()))


@pytest.mark.slow
def test_a_span_that_starts_before_the_recording_lists_only_the_rest_from_the_api(
    day: Day, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(
        tmp_path,
        day.state,
        dialnexa={"base_url": day.url, "api_key": KEY, "rate_limit": 100_000},
    )
    out = tmp_path / "mixed.json"
    argv = ["backtest", "-c", str(cfg), "--yes", "--json", str(out), "--cache", str(tmp_path)]
    day.sim.clear_requests()
    assert main([*argv, "--since", iso(day.first - HOUR), "--until", iso(day.last)]) == 0
    report = json.loads(out.read_text())
    assert report["span"]["source"] == "api+recorded"
    assert episodes(report) == day.live
    listed_to = max(r.params["to"] for r in day.sim.requests)
    assert listed_to <= iso(day.first + 900) + "Z"  # nothing after the recording's start
    assert "listing it from the API" in capsys.readouterr().err


# ---- the replay's batch apply ------------------------------------------------------------------
@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c"]),
            st.integers(0, 3),  # status slot
            st.integers(0, 300),  # bucket
            st.integers(-2, 3),
        ),
        max_size=60,
    ),
    st.integers(0, 400),
)
def test_apply_many_leaves_the_windows_as_one_apply_per_cell_does(
    cells: list[tuple[str, int, int, int]], advance_to: int
) -> None:
    cfg = load_settings(None, overrides={}, environ={})
    one, many = (Windows(cfg.window_seconds, cfg.status_classes) for _ in range(2))
    for w in (one, many):
        w.advance(T0_BUCKETS * 15.0)
    kept = []
    for agent, slot, k, n in cells:
        try:
            one.apply(agent, slot, K0 + k, n)
        except ValueError:
            continue
        kept.append((agent, slot, K0 + k, n))
    many.apply_many(kept)
    for w in (one, many):
        w.advance(T0_BUCKETS * 15.0 + advance_to * 15.0)
    assert sorted(one.content()) == sorted(many.content())
    assert one.checksum() == many.checksum()
    for agent in ("a", "b", "c"):
        for label in one.labels:
            assert one.raw_counts(agent, label) == many.raw_counts(agent, label)


# ---- the HTML page, in a real browser ----------------------------------------------------------
def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with the network cut off (no proxy reachable, no name resolves)."""
    exe = require_tool("chromium")
    offline = ["--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND"]
    return subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--enable-logging=stderr", "--v=0", *offline, *args],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip


@pytest.mark.slow
def test_the_html_page_works_offline_in_headless_chromium(
    day: Day, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if not IN_CI:
        pytest.importorskip("matplotlib")
    cfg = write_config(tmp_path, day.state)
    cand = tmp_path / "candidate.yaml"
    cand.write_text(yaml.safe_dump({"rules": stricter(RULES, 0.1)}), encoding="utf-8")
    page = tmp_path / "report.html"
    argv = ["backtest", "-c", str(cfg), "--rules", str(cand), "--html", str(page)]
    assert main([*argv, "--since", iso(day.first), "--until", iso(day.last)]) == 0
    assert f"HTML report: {page}" in capsys.readouterr().out
    text = page.read_text()
    # self-contained: nothing is loaded from anywhere (data: URLs only)
    assert not re.findall(r"""(?:src|href)\s*=\s*(?!["']?data:)""", text, re.IGNORECASE)
    assert "http://" not in text and "https://" not in text
    alerted = {a for _, a, _, _ in day.live}
    assert text.count("<img class=chart") == len(alerted) == 4
    dom = chromium("--virtual-time-budget=5000", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert f'data-charts="{len(alerted)} ok"' in dom.stdout  # every chart decoded, non-empty
    assert "CONSOLE" not in dom.stderr, dom.stderr[-2000:]  # no console message at all
    for agent in alerted:
        assert f"<h3>{agent}</h3>" in dom.stdout
    shot = Path(os.environ.get("BACKTEST_SCREENSHOT_DIR", tmp_path)) / "backtest-report.png"
    res = chromium("--window-size=1280,3000", f"--screenshot={shot}", page.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    assert shot.stat().st_size > 10_000
    print(f"\nbacktest HTML screenshot: {shot}")  # the CI artefact


def test_html_without_matplotlib_says_how_to_install_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    cfg = write_config(tmp_path, tmp_path / "state.sqlite3")
    assert main(["backtest", "-c", str(cfg), "--html", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'dialnexa-watchdog[report]'" in err and "Traceback" not in err


# ---- the report's pure parts -------------------------------------------------------------------
def test_flaps_differences_and_the_terminal_text_on_hand_made_episodes() -> None:
    cfg = load_settings(None, overrides={"rules": RULES[:1]}, environ={})
    rule = compile_rules(cfg.rules, cfg.window_seconds)
    a = Log("config", rule)
    b = Log("candidate", rule)
    a.episodes = [
        Episode("failure-rate", "x", T0, T0 + 600),
        Episode("failure-rate", "x", T0 + 600 + 1800, T0 + 3000),  # re-fired 30 min later: flap
        Episode("failure-rate", "x", T0 + 3000 + 1801, None),  # later than 30 min: not a flap
        Episode("failure-rate", "y\x1b[31m", T0, T0 + 60),
    ]
    b.episodes = [Episode("failure-rate", "x", T0 + 2500, T0 + 2600)]
    assert flaps(a.episodes) == {1}
    assert [e.agent for e in only_in(a, b, T0 + 9000)] == ["x", "x", "y\x1b[31m"]
    assert only_in(b, a, T0 + 9000) == []
    w = Window(T0, T0 + 9000, 150, 60.0, frozenset({"x", "y\x1b[31m", "z"}), "recorded")
    rep = to_json([a, b], w)
    s = rep["sets"][0]
    assert s["never_alerted"] == ["z"] and s["by_rule"]["failure-rate"]["flaps"] == 1
    assert s["by_rule"]["failure-rate"]["longest_s"] == 9000 - 4801
    printed = text(rep)
    assert "\x1b" not in printed and "y\\x1b[31m" in printed
    assert "== only with config: 3 incidents" in printed and "(firing)" in printed
