"""``dialnexa-watchdog demo``: the daemon against the embedded DialNexa simulator."""

from __future__ import annotations

import signal
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from .app import build
from .clock import SystemClock
from .config import DEFAULT_PORT, load_settings
from .daemon import CycleReport, Watchdog
from .logs import setup_logging
from .notify.wording import printable
from .service import run
from .simulator import Scenario, Simulator, serve

DEMO_KEY = "demo-key"

DEGRADED = "agt_support_02"
# Compressed timings (calls ring 2-8 s, talk 5-40 s) and a 20 s window, so that one minute
# shows an agent degrading, the alert firing, and it resolving.
DEMO_WINDOWS = ["20s", "1m", "5m"]
DEMO_RULES: list[dict[str, Any]] = [
    {
        "name": "failed-rate",
        "outcome": "failed",
        "window": "20s",
        "threshold": 0.3,
        "clear_below": 0.2,
        "min_calls": 15,
        "severity": "critical",
    },
]


HEALTHY_MIX = {"completed": 0.82, "failed": 0.03, "busy": 0.05, "no_answer": 0.10}


def demo_scenario() -> Scenario:
    """Six agents in both vocabularies; agt_support_02 fails every call from 3 s to 18 s.
    The others fail 3% of calls, so a 20 s window of 15+ calls does not cross 30% by chance.
    """
    base = Scenario.demo()
    agents = tuple(
        replace(a, calls_per_minute=90.0, degradations=((3.0, 18.0, 1.0),))
        if a.agent_id == DEGRADED
        else replace(a, outcomes=HEALTHY_MIX, degradations=())
        for a in base.agents
    )
    return replace(base, agents=agents)


def demo_overrides(base_url: str, listen: str, state_dir: Path) -> dict[str, Any]:
    return {
        "dialnexa.base_url": base_url,
        "dialnexa.api_key": DEMO_KEY,
        "poll.interval": "5s",
        "poll.settle_horizon": "15s",
        "poll.pending_recheck": "5s",
        "poll.max_call_duration": "1m",
        "windows": DEMO_WINDOWS,
        "metrics.listen": listen,
        "state.path": str(state_dir / "demo.sqlite3"),
        "rules": DEMO_RULES,
        "log.level": "warning",
        "log.format": "text",
    }


def summary_line(wd: Watchdog, report: CycleReport) -> str:
    ts = datetime.fromtimestamp(report.now).strftime("%H:%M:%S")
    if not report.ok:
        return f"[{ts}] poll FAILED: {report.error}"
    label = wd.windows.labels[0]
    worst = None
    for agent in wd.windows.agents():
        wc = wd.windows.counts(agent, label)
        r = wc.ratio("failed")
        if r is not None and (worst is None or r > worst[0]):
            worst = (r, agent, wc.calls)
    head = (
        f"[{ts}] poll ok: {report.requests:>3} requests, {report.calls_seen:>4} calls listed, "
        f"{report.settled:>3} settled, {report.pending:>3} in progress"
    )
    if worst is None:
        return head
    r, agent, calls = worst
    title = wd.directory.title_of(agent) if wd.directory is not None else None
    who = f"{printable(title)} ({agent})" if title else agent
    return f"{head} | worst failed ({label}): {who} {r * 100:.0f}% of {calls}"


def run_demo(
    duration: float, listen: str = f"127.0.0.1:{DEFAULT_PORT}", out: TextIO | None = None
) -> int:
    out = out or sys.stdout
    setup_logging("warning", "text")
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    clock = SystemClock(stop)
    sim = Simulator(clock, demo_scenario(), keys=(DEMO_KEY,), rate_limit=600)
    with serve(sim) as server, tempfile.TemporaryDirectory(prefix="dnx-demo-") as tmp:
        settings = load_settings(None, overrides=demo_overrides(server.url, listen, Path(tmp)))
        app = build(
            settings,
            clock,
            stream=out,
            on_cycle=lambda rep: print(summary_line(app.daemon, rep), file=out, flush=True),
        )
        wd = app.daemon
        print(f"DialNexa simulator: {server.url}", file=out)
        print(f"6 agents; {DEGRADED} fails every call from 3s to 18s", file=out)
        print(f"metrics: http://{listen}/metrics   health: /healthz /readyz", file=out)
        print(f"running for {duration:.0f}s (Ctrl-C stops)\n", file=out, flush=True)
        rc = run(wd, stop, until=time.monotonic() + duration)
        print("\nfinal rates:", file=out)
        from .report import rate_table

        names = app.directory.title_of if app.directory is not None else None
        print(rate_table(wd.windows, name_of=names), file=out, flush=True)
        return rc
