"""Warm restarts: a daemon killed between (or in the middle of) cycles resumes from its state
store, lists only the gap, and shows the same metrics as one that never stopped; anything it
cannot trust is a cold start (the backfill) with a log line that says why."""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import httpx
import pytest
from dialnexa_watchdog.app import App, build
from dialnexa_watchdog.clock import FakeClock, SystemClock
from dialnexa_watchdog.config import Settings, load_settings
from dialnexa_watchdog.simulator import Scenario, Simulator, serve
from pgserver import PASSWORD
from support import KEY

INTERVAL = 30.0


def settings_for(url: str, state: Path, **extra: object) -> Settings:
    overrides = {
        "dialnexa.base_url": url,
        "dialnexa.api_key": KEY,
        "metrics.listen": "127.0.0.1:0",
        "state.path": str(state),
        **extra,
    }
    return load_settings(None, overrides=overrides, environ={})


def gauges(app: App) -> list[str]:
    """The per-agent window series of /metrics (counters restart from 0 by design)."""
    body, _ = app.metrics.exposition(None)
    families = ("dialnexa_agent_outcome_ratio{", "dialnexa_agent_window_calls{")
    return sorted(line for line in body.decode().splitlines() if line.startswith(families))


def assert_matches_ground_truth(app: App, sim: Simulator) -> None:
    """Every agent's 5m and 1h counts against a recount of the simulator's calls, with the
    windows' bucket edges."""
    w = app.windows
    for label, size in app.settings.window_seconds.items():
        cut = math.floor((w.now - size) / w.bucket)
        want: dict[str, dict[str, int]] = {}
        for c in sim.settled_calls(w.now - size - w.bucket, w.now):
            if math.floor(c.settled_at / w.bucket) > cut:
                per = want.setdefault(c.agent_id, {})
                per[c.outcome] = per.get(c.outcome, 0) + 1
        for agent in {*want, *w.agents()}:
            got = w.raw_counts(agent, label) or [0] * len(w.statuses)
            assert {s: n for s, n in zip(w.statuses, got, strict=True) if n} == want.get(
                agent, {}
            ), (label, agent)


def calls_requests(sim: Simulator) -> int:
    """Requests to List Calls (not the agent directory's ``/agents2``)."""
    return sum(1 for r in sim.requests if "agents2" not in r.path)


class Pair:
    """Two daemons on one simulator and one fake clock: ``steady`` never stops, ``restarted``
    is dropped without ``close`` (as SIGKILL would leave it) and built again."""

    def __init__(
        self, sim: Simulator, clock: FakeClock, url: str, tmp: Path, state_url: str | None = None
    ) -> None:
        """``state_url``: the restarted daemon keeps its state on PostgreSQL there."""
        self.sim, self.clock, self.url, self.tmp = sim, clock, url, tmp
        self.state: dict[str, object] = {}
        if state_url is not None:
            self.state = {"state.url": state_url, "state.password": PASSWORD}
        self.steady = build(settings_for(url, tmp / "steady.sqlite3"), clock)
        self.restarted: App | None = build(self.settings(), clock)
        self.steady_requests: list[int] = []
        self.cold_requests = 0  # one backfill

    def settings(self, **extra: object) -> Settings:
        return settings_for(self.url, self.tmp / "restarted.sqlite3", **self.state, **extra)

    def cycle(self, *, both: bool = True) -> None:
        self.clock.advance(INTERVAL)
        report = self.steady.daemon.poll_once()
        assert report.ok
        self.steady_requests.append(report.requests)
        if both and self.restarted is not None:
            assert self.restarted.daemon.poll_once().ok

    def start(self, cycles: int = 20) -> None:
        assert self.steady.daemon.poll_once().ok  # the backfills
        assert self.restarted is not None and self.restarted.daemon.poll_once().ok
        self.cold_requests = calls_requests(self.sim) // 2
        for _ in range(cycles):
            self.cycle()
        assert gauges(self.steady) == gauges(self.restarted)

    def kill(self) -> float:
        """Drop the restarted daemon without closing anything; the time of its last save."""
        assert self.restarted is not None and self.restarted.recorder is not None
        saved = self.restarted.recorder.saved_at
        assert saved is not None
        self.restarted.client.close()  # only its sockets: a dead process leaves none open
        self.restarted = None
        return saved

    def close(self) -> None:
        self.steady.close()
        if self.restarted is not None:
            self.restarted.close()


@pytest.fixture
def sim(clock: FakeClock) -> Simulator:
    # two daemons share one key: no rate limit on the simulator side
    scenario = Scenario.steady(agents=20, calls_per_day=100_000, seed=3)
    return Simulator(clock, scenario, keys=(KEY,), rate_limit=None)


@pytest.mark.parametrize(
    ("gap", "backend"),
    [
        (INTERVAL, "sqlite"),
        (10 * INTERVAL, "sqlite"),
        (60 * INTERVAL, "sqlite"),
        (10 * INTERVAL, "postgres"),
    ],
)
@pytest.mark.slow
def test_a_warm_restart_lists_only_the_gap_and_matches_an_uninterrupted_run(
    sim: Simulator,
    clock: FakeClock,
    sim_url: str,
    tmp_path: Path,
    gap: float,
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    state_url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    pair = Pair(sim, clock, sim_url, tmp_path, state_url)
    pair.start()
    saved_at = pair.kill()
    for _ in range(int(gap / INTERVAL) - 1):
        pair.cycle()
    clock.advance(INTERVAL)  # the restart's first poll, at the same time as the steady one's
    app = build(pair.settings(), clock)
    assert app.resumed is not None and app.resumed.gap == pytest.approx(gap)
    assert app.tracker.backfilled and app.windows.agents()  # warm before any request
    before = calls_requests(sim)
    first = app.daemon.poll_once()
    requests = calls_requests(sim) - before  # the agent directory's are not the poll's
    assert first.ok and first.requests == requests
    assert app.daemon.ready  # /readyz is 200 after the first poll: no backfill
    # The calls created in the gap, plus the calls that were in conversation at the kill: the
    # listing by created_at reads those with their neighbours, as every ordinary cycle does.
    # So a restart costs the gap's head plus about one ordinary cycle; from a gap of about
    # the longest conversation on, that is within twice the settled-call bound.
    bound = sim.settled_call_bound(saved_at, clock.now())
    ordinary = max(pair.steady_requests[:20])
    print(
        f"\ngap {gap:.0f}s: restart {requests} requests, settled-call bound {bound:.1f}, "
        f"ordinary cycle {ordinary}, cold start {pair.cold_requests}"
    )
    assert requests <= bound + ordinary + 1, (requests, bound, ordinary)
    if gap >= 60 * INTERVAL:
        assert requests <= 2 * bound, (requests, bound)
    assert requests < pair.cold_requests
    assert pair.steady.daemon.poll_once().ok  # the uninterrupted run, at the same time
    equal_now = gauges(app) == gauges(pair.steady)
    clock.advance(INTERVAL)
    assert pair.steady.daemon.poll_once().ok and app.daemon.poll_once().ok
    assert equal_now or gauges(app) == gauges(pair.steady)  # within two intervals
    assert gauges(app) == gauges(pair.steady)
    assert_matches_ground_truth(app, sim)
    app.close()
    pair.close()


@pytest.mark.slow
def test_a_kill_between_apply_and_save_resumes_from_the_cycle_before(
    sim: Simulator, clock: FakeClock, sim_url: str, tmp_path: Path
) -> None:
    pair = Pair(sim, clock, sim_url, tmp_path)
    pair.start()
    assert pair.restarted is not None and pair.restarted.alerts is not None
    # the last cycle counts calls, then dies before its save: its transaction never commits
    conn = sqlite3.connect(pair.tmp / "restarted.sqlite3", timeout=0)
    conn.execute("BEGIN EXCLUSIVE")  # the store's write waits 5 s, then fails
    store = pair.restarted.alerts.store
    store._conn.execute("PRAGMA busy_timeout = 0")
    pair.cycle()
    assert pair.restarted.recorder is not None and pair.restarted.recorder.failures == 1
    last_saved = pair.kill()
    conn.rollback()
    conn.close()
    pair.cycle(both=False)
    app = build(pair.settings(), clock)
    assert app.resumed is not None and app.resumed.point.at == last_saved
    assert app.resumed.gap == 2 * INTERVAL
    assert app.daemon.poll_once().ok
    assert gauges(app) == gauges(pair.steady)
    assert_matches_ground_truth(app, sim)
    app.close()
    pair.close()


def _unreadable_row(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE history SET data = x'01020304' WHERE seq = (SELECT MAX(seq) - 2 FROM history)"
        )


def _rows_deleted(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM history")


def _resume_point_garbled(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute('UPDATE meta SET value = \'{"v": 1, "at": "soon"}\' WHERE key = \'resume\'')


def _count_changed(path: Path) -> None:
    """A row that decodes but does not add up to the totals saved with the resume point."""
    from dialnexa_watchdog.history import codec

    with sqlite3.connect(path) as conn:
        seq, kmax = conn.execute(
            "SELECT seq, kmax FROM history ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        _, _, data = codec.encode([(1, kmax, 1, 3)])
        conn.execute("UPDATE history SET data = ? WHERE seq = ?", (data, seq))


def _file_garbage(path: Path) -> None:
    for p in path.parent.glob(path.name + "*"):
        p.unlink()
    path.write_bytes(b"this is not a database" * 100)


@pytest.mark.parametrize(
    ("damage", "loud"),
    [
        (_unreadable_row, "HISTORY UNUSABLE"),
        (_rows_deleted, "HISTORY UNUSABLE"),
        (_count_changed, "HISTORY UNUSABLE"),
        (_resume_point_garbled, "WARM RESTART IMPOSSIBLE"),
        (_file_garbage, "STATE FILE UNUSABLE"),
    ],
)
@pytest.mark.slow
def test_damaged_or_absent_history_means_a_cold_start_with_a_loud_log_line(
    sim: Simulator,
    clock: FakeClock,
    sim_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    damage: object,
    loud: str,
) -> None:
    pair = Pair(sim, clock, sim_url, tmp_path)
    pair.start(cycles=6)
    pair.kill()
    damage(pair.tmp / "restarted.sqlite3")  # type: ignore[operator]
    pair.cycle(both=False)
    with caplog.at_level(logging.INFO):
        app = build(pair.settings(), clock)
        assert app.resumed is None and not app.tracker.backfilled
        assert app.windows.agents() == []  # nothing half-rebuilt
        assert any(r.levelno >= logging.ERROR and loud in r.getMessage() for r in caplog.records)
        report = app.daemon.poll_once()
    assert report.ok and report.requests > pair.cold_requests / 2  # a backfill
    assert "backfill done" in caplog.text
    assert gauges(app) == gauges(pair.steady)
    # and the history starts again from here: the next start is warm
    clock.advance(INTERVAL)
    assert app.daemon.poll_once().ok
    app.close()
    again = build(pair.settings(), clock)
    assert again.resumed is not None
    again.close()
    pair.close()


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"windows": ["5m", "30m"]}, "windows, statuses, outcomes or poll.agents changed"),
        ({"outcomes": {"failed": ["failed", "busy"]}}, "changed since the state was saved"),
        ({"history.warm_restart": False}, "history.warm_restart is off"),
        ({}, "older than the backfill span"),
    ],
)
@pytest.mark.slow
def test_what_a_saved_state_cannot_answer_is_a_cold_start_that_says_why(
    sim: Simulator,
    clock: FakeClock,
    sim_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    change: dict[str, object],
    why: str,
) -> None:
    pair = Pair(sim, clock, sim_url, tmp_path)
    pair.start(cycles=3)
    pair.kill()
    if not change:  # a gap longer than the longest window plus the longest call
        clock.advance(3600 + 900 + 60)
    with caplog.at_level(logging.INFO, logger="watchdog.history"):
        app = build(pair.settings(**change), clock)
    assert app.resumed is None and not app.tracker.backfilled
    assert why in caplog.text
    app.close()
    pair.close()


# ---- a real process, SIGKILLed -----------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    """``dialnexa-watchdog run`` in a child process, its log read by a thread."""

    def __init__(self, cfg: Path, env: dict[str, str]) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dialnexa_watchdog", "run", "--config", str(cfg)],
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stderr is not None
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True)
        self.reader.start()

    def _read(self, stream: IO[str]) -> None:  # a thread: a silent child cannot block the test
        for line in stream:
            self.lines.append(line)

    def wait_ready(self, url: str, deadline: float) -> float:
        """Seconds from the start of the process to /readyz 200 (fails past ``deadline``)."""
        with httpx.Client(timeout=1.0) as http:
            while time.monotonic() - self.started < deadline:
                try:
                    if http.get(url).status_code == 200:
                        return time.monotonic() - self.started
                except httpx.TransportError:
                    pass
                if self.proc.poll() is not None:
                    break
                threading.Event().wait(0.05)  # polling a real process: not a race cover-up
        pytest.fail(f"not ready within {deadline}s:\n" + "".join(self.lines[-30:]))

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.reader.join(5)


@pytest.mark.slow
def test_sigkill_then_restart_is_ready_within_one_poll_interval(tmp_path: Path) -> None:
    interval = 5.0
    sim = Simulator(
        SystemClock(),
        Scenario.steady(agents=50, calls_per_day=200_000, seed=4),
        keys=(KEY,),
        rate_limit=None,
    )
    port = free_port()
    cfg = tmp_path / "c.yaml"
    with serve(sim) as server:
        cfg.write_text(
            # the whole key (the simulator's is unlimited): the ~105-request backfill fits
            # a minute, so readiness measures the restart, not the rate budget's pacing
            f"dialnexa: {{base_url: '{server.url}', rate_budget: 1}}\n"
            f"poll: {{interval: {interval:g}s}}\nmetrics: {{listen: '127.0.0.1:{port}'}}\n"
            f"state: {{path: '{tmp_path / 's.sqlite3'}'}}\n"
        )
        env = {**os.environ, "DIALNEXA_API_KEY": KEY, "WATCHDOG_LOG__FORMAT": "json"}
        readyz = f"http://127.0.0.1:{port}/readyz"
        cold = Daemon(cfg, env)
        try:  # ready means the backfill's cycle was saved (a cycle saves before it reports)
            cold_ready = cold.wait_ready(readyz, 60)
            cold_requests = sim.request_count
        finally:
            cold.kill()
        before = sim.request_count
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # as systemd's Type=notify
        notify.bind(str(tmp_path / "notify.sock"))
        notify.settimeout(10)
        warm = Daemon(cfg, {**env, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
        try:
            warm_ready = warm.wait_ready(readyz, 60)
            warm_requests = sim.request_count - before
            messages = [notify.recv(4096) for _ in range(2)]  # READY=1 and a watchdog ping
        finally:
            warm.kill()
            notify.close()
        assert b"READY=1" in messages, messages
    log = "".join(warm.lines)
    print(
        f"\nrestart-to-ready: cold {cold_ready:.2f}s ({cold_requests} requests), "
        f"warm {warm_ready:.2f}s ({warm_requests} requests)"
    )
    assert "warm restart" in log and "Traceback" not in log and KEY not in log
    assert warm_ready <= interval, log
    assert warm_requests < cold_requests
