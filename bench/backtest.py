"""Backtest at scale: replay 7 days of 2,000 agents at 1M calls/day from recorded history.

The history is written by the daemon's own ``Recorder`` (the windows' journal, one row per
30 s cycle, saved in batches to a real SQLite state store) from the simulator's ground truth
(realistic traffic, generated in 12-hour slices to bound memory): every settled call is
counted into ``Windows`` at its settle time, cycle by cycle, as the tracker counts it. The
store is kept in the temp directory, keyed by the parameters, so a rerun replays at once.

The replay runs in a child process (its peak RSS is the replay's alone): ``runner.backtest``
over the whole span with three rules, reading the real store. Reported: seconds, peak RSS,
cycles, incidents and messages, and the recording's cost per settled call (the encoded
rows, and the state file on disk).

``python -m bench.backtest [--quick]`` runs it alone; ``run(quick)`` is the bench section.
"""

from __future__ import annotations

import heapq
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FULL = {"agents": 2000, "calls_per_day": 1_000_000, "days": 7.0}
QUICK = {"agents": 200, "calls_per_day": 100_000, "days": 0.25}
T0 = 1_767_261_600.0  # bench.common.T0: 06:00 UTC
SLICE = 12 * 3600.0
TAIL = 2 * 3600.0  # calls created in a slice are followed this long after it
SEED = 3
RULES: list[dict[str, Any]] = [
    {
        "name": "failed-15m",
        "outcome": "failed",
        "window": "15m",
        "threshold": 0.25,
        "clear_below": 0.2,
        "min_calls": 20,
    },
    {
        "name": "failed-spike",
        "outcome": "failed",
        "window": "5m",
        "threshold": 0.5,
        "min_calls": 10,
        "for": "2m",
        "severity": "critical",
    },
    {
        "name": "no-answer-1h",
        "outcome": "no_answer",
        "window": "1h",
        "threshold": 0.6,
        "clear_below": 0.5,
        "min_calls": 40,
    },
]  # fmt: skip  (one rule a line)


def _settings(state: Path) -> Any:
    from dialnexa_watchdog.config import load_settings

    return load_settings(
        None,
        overrides={
            "state.path": str(state),
            "poll.interval": "30s",
            "windows": ["5m", "15m", "1h"],
            "rules": RULES,
            "history.retention": "30d",
        },
        environ={},
    )


def _slices(agents: int, calls_per_day: float, days: float) -> Any:
    """(settle time, agent, status) of every call created in the span, in settle order."""
    from dialnexa_watchdog.clock import FakeClock
    from dialnexa_watchdog.simulator import Scenario, Simulator

    end = T0 + days * 86400.0
    carry: list[tuple[float, str, str]] = []
    start = T0
    while start < end:
        stop = min(end, start + SLICE)
        clock = FakeClock(start)
        scenario = Scenario.realistic(agents, calls_per_day, SEED, history=0.0)
        sim = Simulator(clock, scenario, keys=("k",), start=start)
        clock.set(stop)
        fresh = [
            (c.settled_at, c.agent_id, c.outcome)
            for c in sim.settled_calls(start - 1.0, stop + TAIL)
            if c.created_at < stop
        ]
        del sim
        merged = list(heapq.merge(carry, fresh))
        cut = next((i for i, c in enumerate(merged) if c[0] > stop), len(merged))
        yield from merged[:cut]
        carry = merged[cut:]
        start = stop
    yield from carry


def record(path: Path, agents: int, calls_per_day: float, days: float) -> dict[str, Any]:
    """Write the history: the real Windows, Recorder and Store, one cycle every 30 s."""
    from dialnexa_watchdog.alerts.store import Store
    from dialnexa_watchdog.app import build_tracker
    from dialnexa_watchdog.history import Recorder
    from dialnexa_watchdog.windows import Windows

    settings = _settings(path)
    windows = Windows(settings.window_seconds, settings.status_classes)
    tracker = build_tracker(settings, windows)
    tracker.backfilled = True
    tmp = path.with_suffix(".part")
    tmp.unlink(missing_ok=True)
    store = Store(tmp, now=T0)
    recorder = Recorder(store, windows, tracker, retention=settings.history.retention)
    interval = settings.poll.interval
    end = T0 + days * 86400.0
    t = T0
    calls = 0
    cycles = 0
    started = time.perf_counter()
    stream = _slices(agents, calls_per_day, days)
    pending = next(stream, None)
    while t < end:
        t += interval
        windows.advance(t)
        while pending is not None and pending[0] <= t:
            windows.add(pending[1], pending[2], pending[0])
            calls += 1
            pending = next(stream, None)
        recorder.take(t)
        cycles += 1
        if cycles % 240 == 0:
            assert recorder.save()
    assert recorder.save()
    rows, data = store.history_size()
    store.close()
    tmp.rename(path)
    return {
        "calls": calls,
        "cycles": cycles,
        "rows": rows,
        "data_bytes": data,
        "record_seconds": time.perf_counter() - started,
    }


def _peak_rss_mb() -> float:
    """This process's own peak RSS. Linux keeps ``ru_maxrss`` across fork and exec, so a child
    started by a parent that had just recorded the history (hundreds of MB) would report the
    parent's peak; ``VmHWM`` is the peak of the child's own address space."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def replay(path: Path) -> dict[str, Any]:
    """The backtest over the whole recording (in the child process)."""
    from dialnexa_watchdog.alerts.store import Store
    from dialnexa_watchdog.backtest import RuleSet, backtest, from_history

    settings = _settings(path)
    store = Store(path, now=T0)
    bounds = store.history_bounds()
    assert bounds is not None
    started = time.perf_counter()
    cpu = time.process_time()
    out = backtest(
        settings,
        [RuleSet("config", settings.rules)],
        from_history(store, *bounds),
        source="recorded",
    )
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    store.close()
    s = out.report["sets"][0]
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "rss_mb": _peak_rss_mb(),
        "cycles": out.span.cycles,
        "agents": len(out.span.agents),
        "incidents": s["total"]["incidents"],
        "messages_per_day": s["messages"]["per_day"],
    }


def run(quick: bool) -> dict[str, Any]:
    from dialnexa_watchdog.alerts.store import SCHEMA_VERSION

    p = QUICK if quick else FULL
    name = (  # the schema in the name: a store written by another version is not reused
        f"dialnexa-bench-backtest-{p['agents']}-{int(p['calls_per_day'])}-{p['days']:g}-{SEED}"
        f"-s{SCHEMA_VERSION}"
    )
    path = Path(tempfile.gettempdir()) / f"{name}.sqlite3"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        rec = json.loads(meta.read_text())
    else:
        rec = record(path, p["agents"], p["calls_per_day"], p["days"])
        meta.write_text(json.dumps(rec))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    child = subprocess.run(
        [sys.executable, "-m", "bench.backtest", "--replay", str(path)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    r = json.loads(child.stdout.strip().splitlines()[-1])
    file_bytes = path.stat().st_size
    return {
        "backtest_replay_seconds": round(r["seconds"], 2),
        "backtest_replay_cpu_seconds": round(r["cpu_seconds"], 2),
        "backtest_replay_rss_mb": round(r["rss_mb"], 1),
        "backtest_replay_cycles": r["cycles"],
        "backtest_replay_agents": r["agents"],
        "backtest_replay_incidents": r["incidents"],
        "backtest_replay_messages_per_day": r["messages_per_day"],
        "backtest_recorded_calls": rec["calls"],
        "backtest_recorded_days": p["days"],
        "backtest_recording_bytes_per_call": round(rec["data_bytes"] / max(1, rec["calls"]), 3),
        "backtest_recording_file_bytes_per_call": round(file_bytes / max(1, rec["calls"]), 3),
        "backtest_recording_bytes_per_agent_day": round(
            rec["data_bytes"] / (p["agents"] * p["days"]), 1
        ),
    }


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--replay":
        print(json.dumps(replay(Path(sys.argv[2]))))
    else:
        print(json.dumps(run("--quick" in sys.argv), indent=1))
