"""The daemon alone, as deployed: a real ``dialnexa-watchdog run`` process against the
simulator served over loopback HTTP by another process (``python -m
dialnexa_watchdog.simulator``), both on the system clock. Measured from ``/proc``: the
daemon's RSS (current and peak) once it is ready and has polled, and its CPU time over
``measure`` seconds of steady polling, as CPU seconds per hour.

The simulator's rate limit is off and the daemon's ``dialnexa.rate_limit`` is 1,000 per
minute, so the start-up backfill (~1,000 requests) takes seconds rather than the ~7 minutes
it takes under 150 per minute; in the steady state the daemon then re-reads every due range
every cycle (more requests than under the real limit), so the CPU figure is an upper bound
for this traffic. Run by ``python -m bench`` (``--only daemon``) or alone:
``python -m bench.daemon --agents 2000``."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.scale import RULES
from bench.seeds import run_jobs

KEY = "bench-daemon-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc(pid: int) -> dict[str, float]:
    """RSS and peak RSS (MB), CPU seconds (user + system) of process ``pid``."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line[:5]] = int(line.split()[1]) / 1024
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    out["cpu"] = (int(fields[11]) + int(fields[12])) / tick
    return out


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def _wait(cond: Any, timeout: float, proc: subprocess.Popen[bytes]) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        if cond():
            return True
        time.sleep(0.5)
    return False


def run(
    agents: int, calls_per_day: float, traffic: str, measure: float, interval: float
) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    sim_port, port = _free_port(), _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "watchdog.yaml"
        config: dict[str, Any] = {
            "dialnexa": {
                "base_url": f"http://127.0.0.1:{sim_port}/v1",
                "api_key": KEY,
                "rate_limit": 1000,
            },
            "poll": {"interval": f"{interval:g}s"},
            "metrics": {"listen": f"127.0.0.1:{port}"},
            "state": {"path": str(Path(tmp) / "state.sqlite3")},
            "log": {"level": "warning", "format": "json"},
            "rules": RULES,
        }
        cfg.write_text(json.dumps(config))  # JSON is YAML
        sim = subprocess.Popen(
            [sys.executable, "-m", "dialnexa_watchdog.simulator", "--listen",
             f"127.0.0.1:{sim_port}", "--scenario", traffic, "--agents", str(agents),
             "--calls-per-day", str(calls_per_day), "--seed", "1", "--rate-limit", "0",
             "--key", KEY, "--diurnal"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        daemon: subprocess.Popen[bytes] | None = None
        try:
            if not _wait(lambda: _get(f"http://127.0.0.1:{sim_port}/v1/agents2")[0] in (200, 401),
                         120, sim):  # fmt: skip
                raise RuntimeError("the simulator did not start")
            log = open(Path(tmp) / "daemon.log", "wb")  # noqa: SIM115
            started = time.monotonic()
            daemon = subprocess.Popen(
                [sys.executable, "-m", "dialnexa_watchdog", "run", "--config", str(cfg)],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            ready = _wait(lambda: _get(f"http://127.0.0.1:{port}/readyz")[0] == 200, 600, daemon)
            if not ready:
                log.close()
                tail = (Path(tmp) / "daemon.log").read_text()[-2000:]
                raise RuntimeError(f"the daemon did not get ready:\n{tail}")
            ready_s = time.monotonic() - started
            after_ready = _proc(daemon.pid)
            time.sleep(interval)  # a cycle after the backfill: steady state
            a = _proc(daemon.pid)
            t0 = time.monotonic()
            time.sleep(measure)
            b = _proc(daemon.pid)
            seconds = time.monotonic() - t0
            status, body = _get(f"http://127.0.0.1:{port}/metrics")
            return {
                "agents": agents,
                "calls_per_day": calls_per_day,
                "traffic": traffic,
                "ready_after_s": ready_s,
                "rss_ready_mb": after_ready["VmRSS"],
                "rss_mb": b["VmRSS"],
                "rss_peak_mb": b["VmHWM"],
                "cpu_s_per_hour": (b["cpu"] - a["cpu"]) / seconds * 3600,
                "cpu_share": (b["cpu"] - a["cpu"]) / seconds,
                "startup_cpu_s": a["cpu"],
                "measured_s": seconds,
                "metrics_bytes": len(body.encode()) if status == 200 else None,
            }
        finally:
            for p in (daemon, sim):
                if p is not None:
                    p.terminate()
                    try:
                        p.wait(20)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()


def _job(agents: int, calls: float, traffic: str, measure: float, interval: float) -> Any:
    return run(agents, calls, traffic, measure, interval)


def run_section(quick: bool) -> dict[str, Any]:
    if quick:
        jobs = [("headline", _job, (100, 50_000.0, "realistic", 3.0, 2.0))]
    else:
        jobs = [
            ("headline", _job, (2000, 1_000_000.0, "realistic", 90.0, 30.0)),
            ("agents10k", _job, (10_000, 1_000_000.0, "steady", 30.0, 30.0)),
        ]
    done = run_jobs(jobs)
    h = done["headline"]
    out: dict[str, Any] = {
        "daemon_rss_mb": h["rss_mb"],
        "daemon_rss_peak_mb": h["rss_peak_mb"],
        "daemon_cpu_s_per_hour": h["cpu_s_per_hour"],
        "daemon_cpu_share": h["cpu_share"],
        "daemon_ready_after_s": h["ready_after_s"],
        "details": done,
    }
    if "agents10k" in done:
        out["daemon_10k_rss_mb"] = done["agents10k"]["rss_mb"]
        out["daemon_10k_rss_peak_mb"] = done["agents10k"]["rss_peak_mb"]
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--agents", type=int, default=2000)
    p.add_argument("--calls-per-day", type=float, default=1_000_000)
    p.add_argument("--traffic", choices=("realistic", "steady"), default="realistic")
    p.add_argument("--measure", type=float, default=120.0, help="seconds of steady polling")
    p.add_argument("--interval", type=float, default=30.0)
    a = p.parse_args()
    print(json.dumps(run(a.agents, a.calls_per_day, a.traffic, a.measure, a.interval)))


if __name__ == "__main__":
    main()
