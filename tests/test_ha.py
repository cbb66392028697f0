"""High availability end to end: real ``dialnexa-watchdog run`` processes sharing one
PostgreSQL database (``pg_server``), polling the simulator (system clock) and posting to the
fake Slack, which records every call.

- failover: SIGKILL the leader while an incident is open -> the standby leads within two
  poll intervals, posts nothing twice, and resolves the incident by editing the original
  message;
- fencing: terminate the leader's lock session while its process lives -> it stops
  delivering before the new leader's first delivery; nothing posted twice (20 repetitions,
  random timing);
- rolling update: a third replica, SIGTERM the leader -> a clean hand-over (the lock is
  released on exit), no gap longer than one interval in the last-successful-poll gauge.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import IO

import httpx
import pytest
from dialnexa_watchdog.clock import SystemClock
from dialnexa_watchdog.demo import DEGRADED, DEMO_RULES, DEMO_WINDOWS, demo_scenario
from dialnexa_watchdog.simulator import Simulator, serve
from fakeslack import CHANNEL_ID, TOKEN, FakeSlack
from pgserver import PASSWORD, free_port
from support import KEY

INTERVAL = 3.0
LEADER = re.compile(r"^dialnexa_leader (\S+)$", re.M)
LAST_POLL = re.compile(r"^dialnexa_last_successful_poll_timestamp_seconds (\S+)$", re.M)


class Replica:
    """``dialnexa-watchdog run`` in a child process, its log read by a thread."""

    def __init__(self, name: str, cfg: Path, env: dict[str, str]) -> None:
        self.name = name
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dialnexa_watchdog", "run", "--config", str(cfg)],
            stderr=subprocess.PIPE,
            text=True,
            env={**env, "WATCHDOG_METRICS__LISTEN": f"127.0.0.1:{self.port}"},
        )
        assert self.proc.stderr is not None
        self.lines: list[str] = []
        threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True).start()
        self.http = httpx.Client(timeout=2.0)

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line)

    def get(self, path: str) -> httpx.Response | None:
        try:
            return self.http.get(f"http://127.0.0.1:{self.port}{path}")
        except httpx.TransportError:
            return None

    def leads(self) -> bool:
        r = self.get("/metrics")
        m = LEADER.search(r.text) if r is not None and r.status_code == 200 else None
        return m is not None and float(m.group(1)) == 1.0

    def last_poll(self) -> float | None:
        r = self.get("/metrics")
        m = LAST_POLL.search(r.text) if r is not None and r.status_code == 200 else None
        return float(m.group(1)) if m is not None else None

    def log(self) -> str:
        return "".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(20)
        self.http.close()


def wait_for(what: str, predicate: Callable[[], bool], timeout: float, *logs: Replica) -> float:
    """Polls real processes until ``predicate`` (fails past ``timeout``); the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        threading.Event().wait(0.05)  # polling real processes: not a race cover-up
    tails = "\n".join(f"--- {r.name}\n" + "".join(r.lines[-25:]) for r in logs)
    pytest.fail(f"{what}: not within {timeout}s\n{tails}")


class Cluster:
    def __init__(self, tmp: Path, db_url: str, sim_url: str, slack: FakeSlack) -> None:
        self.slack = slack
        self.replicas: list[Replica] = []
        cfg = {
            "dialnexa": {"base_url": sim_url},
            "poll": {
                "interval": f"{INTERVAL:g}s",
                "settle_horizon": "15s",
                "pending_recheck": "5s",
                "max_call_duration": "1m",
            },
            "windows": DEMO_WINDOWS,
            "rules": DEMO_RULES,
            "state": {"url": db_url},
            "slack": {"channel": CHANNEL_ID, "api_url": slack.api_url},
            "log": {"format": "json", "level": "info"},
        }
        self.cfg = tmp / "c.yaml"
        self.cfg.write_text(json.dumps(cfg))  # JSON is YAML
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("WATCHDOG_", "PG"))},
            "DIALNEXA_API_KEY": KEY,
            "SLACK_BOT_TOKEN": TOKEN,
            "WATCHDOG_STATE__PASSWORD": PASSWORD,
        }

    def start(self, name: str) -> Replica:
        r = Replica(name, self.cfg, self.env)
        self.replicas.append(r)
        return r

    def leader(self) -> Replica | None:
        leading = [r for r in self.replicas if r.proc.poll() is None and r.leads()]
        assert len(leading) <= 1, [r.name for r in leading]
        return leading[0] if leading else None

    def close(self) -> None:
        for r in self.replicas:
            r.stop(signal.SIGKILL)
        for r in self.replicas:  # no process ever logged a secret
            text = r.log()
            assert TOKEN not in text and PASSWORD not in text and KEY not in text
            assert "Traceback" not in text, text[-3000:]


@contextmanager
def cluster(tmp: Path, pg_url: str, degraded: tuple[float, float]) -> Iterator[Cluster]:
    """The simulator (``DEGRADED`` fails every call from ``degraded[0]`` to ``[1]`` seconds
    after the start), the fake Slack, and no replica yet."""
    scenario = demo_scenario()
    agents = tuple(
        replace(a, degradations=((degraded[0], degraded[1], 1.0),)) if a.agent_id == DEGRADED else a
        for a in scenario.agents
    )
    sim = Simulator(SystemClock(), replace(scenario, agents=agents), keys=(KEY,), rate_limit=None)
    slack = FakeSlack()
    try:
        with serve(sim) as server:
            c = Cluster(tmp, pg_url, server.url, slack)
            try:
                yield c
            finally:
                c.close()
    finally:
        slack.close()


def ready(r: Replica) -> bool:
    answer = r.get("/readyz")
    return answer is not None and answer.status_code == 200


def main_posts(slack: FakeSlack) -> list[str]:
    """The ``ts`` of every top-level message posted."""
    return [m.ts for m in slack.top_level()]


@pytest.mark.slow
def test_sigkill_the_leader_the_standby_takes_over_and_resolves_by_editing(
    tmp_path: Path, pg_url: str
) -> None:
    with cluster(tmp_path, pg_url, (3.0, 25.0)) as c:
        a = c.start("a")
        wait_for("a leads", a.leads, 30, a)
        b = c.start("b")
        wait_for(
            "b stands by",
            lambda: (r := b.get("/readyz")) is not None and r.status_code == 200,
            30,
            b,
        )
        standby_ready = b.get("/readyz")
        assert standby_ready is not None and standby_ready.text == "ready (another replica leads)\n"
        assert (
            not b.leads() and "dialnexa_up" not in (b.get("/metrics") or httpx.Response(500)).text
        )
        wait_for("the incident is posted", lambda: len(c.slack.posts()) >= 1, 40, a, b)
        [original] = main_posts(c.slack)
        a.stop(signal.SIGKILL)
        took = wait_for("b leads", b.leads, 4 * INTERVAL, b)
        assert took <= 2 * INTERVAL, took
        wait_for("the incident resolves", lambda: bool(c.slack.updates(original)), 90, b)
        assert main_posts(c.slack) == [original]  # nothing posted twice
        posts = c.slack.posts()
        assert len(posts) == 1, [p.params.get("text") for p in posts]
        print(f"\nfailover: standby led {took:.2f}s after SIGKILL (interval {INTERVAL:g}s)")


@pytest.mark.slow
def test_a_rolling_update_hands_over_cleanly_without_a_gap_in_polling(
    tmp_path: Path, pg_url: str
) -> None:
    with cluster(tmp_path, pg_url, (1000.0, 1001.0)) as c:  # no incident: polling only
        a = c.start("a")
        wait_for("a leads", a.leads, 30, a)
        b = c.start("b")
        wait_for("b stands by", lambda: ready(b), 30, b)
        polls: list[float] = []  # the last-successful-poll gauge, from whichever replica leads

        def sample() -> None:
            for r in c.replicas:
                t = r.last_poll() if r.proc.poll() is None else None
                if t is not None and (not polls or t > polls[-1]):
                    polls.append(t)

        wait_for("a polls", lambda: (sample(), len(polls) >= 2)[1], 30, a)
        third = c.start("c")  # the rollout's new pod
        wait_for("c stands by", lambda: ready(third), 30, third)
        sample()
        a.proc.send_signal(signal.SIGTERM)
        a.proc.wait(10)
        assert a.proc.returncode == 0, a.log()[-2000:]
        successor: list[Replica] = []

        def handed_over() -> bool:
            sample()
            successor[:] = [r for r in (b, third) if r.leads()]
            return bool(successor) and polls[-1] > time.time() - INTERVAL

        took = wait_for("a standby leads and polls", handed_over, 4 * INTERVAL, b, third)

        def polled_after(n: int) -> Callable[[], bool]:
            return lambda: (sample(), len(polls) > n)[1]

        for _ in range(3):  # a few more cycles of the new leader
            wait_for("polling goes on", polled_after(len(polls)), 3 * INTERVAL, b, third)
        gaps = [y - x for x, y in itertools.pairwise(polls)]
        print(f"\nrolling update: led after {took:.2f}s; poll gaps {[round(g, 2) for g in gaps]}")
        assert "leader lock released" in a.log()
        # the successor polls as it takes over: a gap is at most one interval plus the
        # hand-over (build, warm start from the shared history, the first poll's requests)
        assert max(gaps) <= INTERVAL + 1.0, gaps
        assert len([r for r in (b, third) if r.leads()]) == 1
