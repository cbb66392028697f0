"""High availability end to end: real ``dialnexa-watchdog run`` processes sharing one
PostgreSQL database (``pg_server``), polling the simulator (system clock) and posting to the
fake Slack, which records every call.

- failover: SIGKILL the leader while an incident is open -> the standby (its windows kept
  warm from the recorded history) leads within two poll intervals, applying only the
  cycles since its last read, posts nothing twice, and resolves the incident by editing the
  original message;
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
import random
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
from typing import IO, Any

import httpx
import psycopg
import pytest
from dialnexa_watchdog.alerts.store.leader import LEADER_LOCK
from dialnexa_watchdog.clock import SystemClock
from dialnexa_watchdog.demo import DEGRADED, DEMO_RULES, DEMO_WINDOWS, demo_scenario
from dialnexa_watchdog.simulator import Simulator, serve
from fakeslack import CHANNEL_ID, TOKEN, FakeSlack
from pgserver import PASSWORD, PgServer, free_port
from support import KEY

INTERVAL = 3.0
LEADER = re.compile(r"^dialnexa_leader (\S+)$", re.M)
LAST_POLL = re.compile(r"^dialnexa_last_successful_poll_timestamp_seconds (\S+)$", re.M)


class Replica:
    """``dialnexa-watchdog run`` in a child process, its log read by a thread."""

    def __init__(self, name: str, cfg: Path, env: dict[str, str]) -> None:
        self.name = name
        self.token = TOKEN
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
            "slack": {"channel": CHANNEL_ID, "api_url": slack.api_url, "group_threshold": 100},
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

    def start(self, name: str, token: str = TOKEN) -> Replica:
        """A replica; ``token``: its own Slack bot token, so that the fake Slack tells
        which replica made each call."""
        if token != TOKEN:
            self.slack.tokens.add(token)
        r = Replica(name, self.cfg, {**self.env, "SLACK_BOT_TOKEN": token})
        r.token = token
        self.replicas.append(r)
        return r

    def leader(self) -> Replica | None:
        """The replica that leads, when exactly one says so (after a lost session the old
        leader says so until it sees its session gone: at once when the session was
        terminated, within a 2 s round trip after a silent network loss)."""
        leading = [r for r in self.replicas if r.proc.poll() is None and r.leads()]
        return leading[0] if len(leading) == 1 else None

    def close(self) -> None:
        for r in self.replicas:
            r.stop(signal.SIGKILL)
        for r in self.replicas:  # no process ever logged a secret
            text = r.log()
            assert r.token not in text and PASSWORD not in text and KEY not in text
            assert "Traceback" not in text, text[-3000:]


@contextmanager
def cluster(
    tmp: Path, pg_url: str, *degraded: tuple[float, float], stagger: float | None = None
) -> Iterator[Cluster]:
    """The simulator (``DEGRADED`` fails every call from ``start`` to ``end`` seconds after
    the start, for each ``(start, end)``; with ``stagger``, every agent does, the i-th one
    ``i * stagger`` seconds later, at 90 calls a minute), the fake Slack, no replica yet."""
    scenario = demo_scenario()
    agents = tuple(
        replace(a, degradations=tuple((t0, t1, 1.0) for t0, t1 in degraded))
        if a.agent_id == DEGRADED
        else a
        for a in scenario.agents
    )
    if stagger is not None:
        agents = tuple(
            replace(
                a,
                calls_per_minute=90.0,
                degradations=tuple(
                    (t0 + i * stagger, t1 + i * stagger, 1.0) for t0, t1 in degraded
                ),
            )
            for i, a in enumerate(scenario.agents)
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
        assert "standby: following the recorded history" in b.log()  # warm while waiting
        a.stop(signal.SIGKILL)
        took = wait_for("b leads", b.leads, 4 * INTERVAL, b)
        assert took <= 2 * INTERVAL, took
        # b's windows were current: only the cycles since its last read were applied
        wait_for("b resumed", lambda: "needed" in b.log(), 10, b)
        assert re.search(r"followed windows needed [0-2] recorded cycle", b.log()), b.log()
        assert "rebuilding" not in b.log() and "cold start" not in b.log()
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
        polls: set[float] = set()  # every last-successful-poll value any replica showed
        guard = threading.Lock()
        done = threading.Event()

        def seen() -> list[float]:
            with guard:
                return sorted(polls)

        def sample() -> None:  # a thread: every value is seen while its replica serves
            while not done.is_set():
                for r in list(c.replicas):
                    t = r.last_poll() if r.proc.poll() is None else None
                    if t:  # 0 before a replica's first poll
                        with guard:
                            polls.add(t)
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            wait_for("a polls", lambda: len(seen()) >= 2, 30, a)
            third = c.start("c")  # the rollout's new pod
            wait_for("c stands by", lambda: ready(third), 30, third)
            a.proc.send_signal(signal.SIGTERM)
            a.proc.wait(10)
            assert a.proc.returncode == 0, a.log()[-2000:]
            cut = seen()[-1]
            successor: list[Replica] = []

            def handed_over() -> bool:
                successor[:] = [r for r in (b, third) if r.leads()]
                return bool(successor) and seen()[-1] > cut

            took = wait_for("a standby leads and polls", handed_over, 4 * INTERVAL, b, third)
            for _ in range(3):  # a few more cycles of the new leader
                n = len(seen())
                wait_for("polling goes on", lambda n=n: len(seen()) > n, 3 * INTERVAL, b, third)
        finally:
            done.set()
            sampler.join(5)
        ordered = seen()
        gaps = [y - x for x, y in itertools.pairwise(ordered)]
        print(f"\nrolling update: led after {took:.2f}s; poll gaps {[round(g, 2) for g in gaps]}")
        assert "leader lock released" in a.log()
        # the successor polls as it takes over: a gap is at most one interval plus the
        # hand-over (build, warm start from the shared history, the first poll's requests)
        assert max(gaps) <= INTERVAL + 1.0, gaps
        assert len([r for r in (b, third) if r.leads()]) == 1


def lock_session(admin: psycopg.Connection[Any]) -> int | None:
    """The backend pid holding the leader lock (the advisory lock's two 32-bit halves)."""
    rows = admin.execute(
        "SELECT classid::bigint, objid::bigint, pid FROM pg_locks "
        "WHERE locktype = 'advisory' AND granted AND objsubid = 1"
    ).fetchall()
    key = (LEADER_LOCK >> 32, LEADER_LOCK & 0xFFFFFFFF)
    row = next(((pid,) for hi, lo, pid in rows if (hi, lo) == key), None)
    return None if row is None else int(row[0])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_leader_whose_session_is_terminated_stops_before_the_new_one_delivers(
    tmp_path: Path, pg_server: PgServer, pg_url: str
) -> None:
    rng = random.Random(12)
    # six agents fail for 8 s in every 40 s, 6 s apart: an incident opens or resolves every
    # few seconds, so deliveries are in flight at random moments
    bad = [(3.0 + 40.0 * i, 11.0 + 40.0 * i) for i in range(6)]
    with (
        cluster(tmp_path, pg_url, *bad, stagger=6.0) as c,
        psycopg.connect(pg_server.url(), password=PASSWORD, autocommit=True) as admin,
    ):
        a = c.start("a", TOKEN + "-a")
        wait_for("a leads", a.leads, 30, a)
        b = c.start("b", TOKEN + "-b")
        wait_for("b stands by", lambda: ready(b), 30, b)
        wait_for("a first post", lambda: bool(c.slack.posts()), 40, a, b)
        checked = both = delivered = 0
        down: list[float] = []  # seconds from the cut to the old leader's dialnexa_leader 0
        for _ in range(20):
            old = wait_for_leader(c)
            threading.Event().wait(rng.uniform(0.0, INTERVAL))  # a random moment in a cycle
            pid = lock_session(admin)
            assert pid is not None, admin.execute("SELECT * FROM pg_locks").fetchall()
            cut = time.monotonic()
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            down.append(
                wait_for("the old leader stands by", lambda o=old: not o.leads(), 3 * CHECK_S, a, b)
            )
            leader = wait_for_leader(c)
            if leader is old:  # it won the lock back: no hand-over to check this time
                continue
            checked += 1

            def chat_after(t: float) -> list[Any]:
                return [
                    r for r in c.slack.ok_requests() if r.at > t and r.method.startswith("chat.")
                ]

            # the old leader stands down at once: give the new one up to an interval to
            # deliver what is due (an observation window, not a race cover-up)
            deadline = time.monotonic() + INTERVAL
            while time.monotonic() < deadline and not any(
                auth_of(r) == leader.token for r in chat_after(cut)
            ):
                threading.Event().wait(0.05)
            after = chat_after(cut)
            old_calls = [r.at for r in after if auth_of(r) == old.token]
            new_calls = [r.at for r in after if auth_of(r) == leader.token]
            if new_calls:
                delivered += 1
            if old_calls and new_calls:
                assert max(old_calls) < min(new_calls), (old.name, leader.name)
                both += 1
        assert checked >= 10, checked
        assert delivered >= 3, delivered  # hand-overs in the middle of deliveries
        incidents = [metadata_incident(m) for m in c.slack.top_level()]
        assert len(incidents) == len(set(incidents)), incidents  # nothing posted twice
        print(
            f"\nfencing: {checked} hand-overs to the other replica, {delivered} with the new "
            f"leader delivering, {both} with Slack calls by both after the cut; "
            f"{len(incidents)} incidents, each posted once; the old leader read "
            f"dialnexa_leader 0 after {min(down):.2f}-{max(down):.2f}s"
        )


CHECK_S = 2.0


def wait_for_leader(c: Cluster) -> Replica:
    found: list[Replica] = []

    def one() -> bool:
        leader = c.leader()
        found[:] = [leader] if leader is not None else []
        return bool(found)

    wait_for("a leader", one, 6 * INTERVAL, *c.replicas)
    return found[0]


def auth_of(r: Any) -> str:
    return str(r.headers.get("Authorization", "")).removeprefix("Bearer ")


def metadata_incident(m: Any) -> str:
    return str((m.metadata or {}).get("event_payload", {}).get("incident"))
