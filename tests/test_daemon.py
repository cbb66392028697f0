"""The daemon end to end over loopback: simulator -> client -> tracker -> windows -> /metrics."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO

import httpx
import pytest
from dialnexa_watchdog.app import build
from dialnexa_watchdog.clock import FakeClock, SystemClock
from dialnexa_watchdog.config import load_settings
from dialnexa_watchdog.httpd import make_http_server
from dialnexa_watchdog.simulator import Scenario, Simulator, observed_outcome, serve
from support import KEY, T0, require_tool

CANON = {"completed", "failed", "busy", "no_answer", "did_not_pick", "voicemail", "retry_expired"}


def settings_for(url: str, tmp: Path, **extra: object):  # type: ignore[no-untyped-def]
    overrides = {
        "dialnexa.base_url": url,
        "dialnexa.api_key": KEY,
        "metrics.listen": "127.0.0.1:0",
        "state.path": str(tmp / "state.sqlite3"),
        **extra,
    }
    return load_settings(None, overrides=overrides, environ={})


def expected(sim: Simulator, since: float, at: float, window: float, bucket: float):  # type: ignore[no-untyped-def]
    """Brute force from the simulator's own call specs, with the daemon's bucket edges."""
    totals: Counter[tuple[str, str]] = Counter()
    win: dict[str, Counter[str]] = {}
    cut = math.floor((at - window) / bucket)
    for spec in sim.calls(until=at):
        if spec.created_at < since or spec.settled_at > at:
            continue
        # what a correct client reads for this outcome in this agent's vocabulary
        vocab = sim.vocab_of(spec.agent_id) or "underscore"
        status = observed_outcome(spec.outcome, vocab, sim.shape)
        totals[(spec.agent_id, status)] += 1
        if math.floor(spec.settled_at / bucket) > cut:
            win.setdefault(spec.agent_id, Counter())[status] += 1
    return totals, win


@pytest.mark.slow
def test_counts_and_ratios_match_the_simulators_ground_truth(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    sim = Simulator(clock, Scenario.steady(agents=6, calls_per_day=40_000, seed=3), keys=(KEY,))
    with serve(sim) as server:
        s = settings_for(server.url, tmp_path)
        wd = build(s, clock, alerting=False).daemon
        backfill_start = clock.now() - s.longest_window - s.poll.max_call_duration
        assert wd.backfill().ok
        for _ in range(40):  # 20 minutes of 30 s cycles
            clock.advance(30)
            assert wd.poll_once().ok
        at = wd.windows.now
        bucket = wd.windows.bucket
        totals, win5 = expected(sim, backfill_start, at, 300, bucket)
        got_totals = {
            (agent, status): n
            for agent, per in wd.metrics.windows.calls_total.items()
            for status, n in per.items()
        }
        assert got_totals == dict(totals)  # every settled call once, at its final status
        for agent in sim.agent_ids:
            c = win5.get(agent, Counter())
            denom = sum(n for st, n in c.items() if st in CANON)
            wc = wd.windows.counts(agent, "5m")
            assert wc.calls == denom
            assert wc.outcomes["failed"] == c["failed"]
            assert wc.outcomes["no_answer"] == c["no_answer"] + c["did_not_pick"]
        wd.close()


@pytest.mark.slow
def test_readyz_is_503_until_backfill_and_metrics_pass_promtool(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    sim = Simulator(clock, Scenario.steady(agents=3, calls_per_day=20_000, seed=1), keys=(KEY,))
    with serve(sim) as server:
        wd = build(settings_for(server.url, tmp_path), clock, alerting=False).daemon
        http = make_http_server(wd, "127.0.0.1", 0)
        threading.Thread(target=http.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{http.server_address[1]}"
        try:
            assert httpx.get(f"{base}/readyz").status_code == 503
            assert httpx.get(f"{base}/healthz").status_code == 200
            assert wd.backfill().ok
            assert httpx.get(f"{base}/readyz").status_code == 200
            clock.advance(30)
            wd.poll_once()
            body = httpx.get(f"{base}/metrics").text
        finally:
            http.shutdown()
            wd.close()
    assert 'dialnexa_agent_outcome_ratio{agent_id="agt_00000",outcome="failed",window="5m"}' in body
    assert "dialnexa_calls_total{" in body and "dialnexa_up 1.0" in body
    assert "+1555" not in body and KEY not in body
    promtool = require_tool("promtool")
    r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", r.stderr


def test_a_403_key_keeps_the_daemon_up_and_not_ready(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    sim = Simulator(clock, keys=(KEY,), forbidden_keys=("ro",))
    with serve(sim) as server:
        s = settings_for(server.url, tmp_path, **{"dialnexa.api_key": "ro"})
        wd = build(s, clock, alerting=False).daemon
        report = wd.poll_once()
        assert not report.ok and "cannot read calls on this workspace" in (report.error or "")
        assert not wd.ready and wd.metrics.registry.get_sample_value("dialnexa_up") == 0
        # /readyz: fixed phrases and the HTTP status, never the API's own text
        http = make_http_server(wd, "127.0.0.1", 0)
        threading.Thread(target=http.serve_forever, daemon=True).start()
        try:
            port = http.server_address[1]
            r = httpx.get(f"http://127.0.0.1:{port}/readyz")
        finally:
            http.shutdown()
            http.server_close()
        assert (r.status_code, r.text) == (
            503,
            "not ready: backfill not done; no successful poll yet (last error: http_403)\n",
        )
        assert (
            wd.metrics.registry.get_sample_value("dialnexa_api_requests_total", {"code": "403"})
            == 1
        )
        wd.close()


@pytest.mark.slow
def test_sigterm_stops_the_daemon_within_5s(tmp_path: Path) -> None:
    sim = Simulator(SystemClock(), Scenario.demo(), keys=(KEY,), rate_limit=None)
    cfg = tmp_path / "c.yaml"
    with serve(sim) as server:
        cfg.write_text(
            f"dialnexa: {{base_url: '{server.url}'}}\n"
            "poll: {interval: 2s}\nmetrics: {listen: '127.0.0.1:0'}\n"
            f"state: {{path: '{tmp_path / 's.sqlite3'}'}}\n"
        )
        env = {**os.environ, "DIALNEXA_API_KEY": KEY, "WATCHDOG_LOG__FORMAT": "json"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "dialnexa_watchdog", "run", "--config", str(cfg)],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stderr is not None
        lines: list[str] = []
        backfilled = threading.Event()

        def read(stream: IO[str]) -> None:  # a thread: a silent child cannot block the test
            for line in stream:
                lines.append(line)
                if "backfill done" in line:
                    backfilled.set()

        reader = threading.Thread(target=read, args=(proc.stderr,), daemon=True)
        reader.start()
        try:
            assert backfilled.wait(30), "no 'backfill done' within 30s:\n" + "".join(lines)
            proc.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            rc = proc.wait(timeout=10)
            took = time.monotonic() - sent
        finally:
            proc.kill()
            proc.wait(10)
        reader.join(5)
    rest = "".join(lines)
    assert rc == 0 and took < 5, (rc, took)
    assert "Traceback" not in rest and KEY not in rest
    assert '"stopped"' in rest


@pytest.mark.parametrize(
    ("watched", "calls_per_day", "want_per_agent"),
    [(2, 400_000, True), (30, 3_000, False)],
)
@pytest.mark.slow
def test_auto_listing_picks_the_cheaper_way_for_an_agent_list(
    tmp_path: Path, watched: int, calls_per_day: float, want_per_agent: bool
) -> None:
    clock = FakeClock(T0)
    sim = Simulator(clock, Scenario.steady(40, calls_per_day, seed=2), keys=(KEY,), rate_limit=None)
    agents = sim.agent_ids[:watched]
    with serve(sim) as server:
        wd = build(
            settings_for(server.url, tmp_path, **{"poll.agents": agents}), clock, alerting=False
        ).daemon
        assert wd.backfill().ok
        est = wd.listing_estimates
        assert wd.tracker.per_agent is want_per_agent
        assert (est["per_agent"] < est["workspace"]) is want_per_agent
        clock.advance(30)
        sim.clear_requests()
        assert wd.poll_once().ok
        listed = {r.params.get("agent_id") for r in sim.requests}
        assert listed == (set(agents) if want_per_agent else {None})
        assert set(wd.windows.agents()) <= set(agents)
        wd.close()
