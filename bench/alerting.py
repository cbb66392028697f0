"""Alerting cost at 10,000 agents: the whole alert step after a poll (``AlertPipeline.on_poll``:
evaluate + plan + commit to the real SQLite state store), and the longest ``/metrics`` render
while it runs.

The daemon is built by ``app.build`` with alerting on (10 rules from ``scale.RULES``, a
console notifier), against the kind scenario at 1M calls/day from 13:30 UTC. After the
backfill and ``warm`` cycles, each of ``measured`` cycles times its alert step (and the
store commit inside it); meanwhile a scraper thread renders ``/metrics`` back to back and
notes the longest render that overlapped a step (a real scrape does the same work: the
registry's collectors, under the lock the poll thread shares) against the median render while
no step runs. The step, the evaluation inside it (``Incremental.evaluate``) and the commit are
also timed in CPU time of the poll thread (``time.thread_time``), which the machine's load
and the scrape thread do not inflate. The collector runs as under ``run`` (``gcpolicy``: the
young threshold raised from the start, start-up's objects frozen after the backfill).
Run as ``python -m bench.alerting`` in a process of its own."""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from dialnexa_watchdog.app import build
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.gcpolicy import GcPolicy
from dialnexa_watchdog.simulator import Scenario, Simulator

from bench.common import KEY, bench_settings
from bench.runs import API_LIMIT, T_PEAK, TimedTransport, has_rate_budget
from bench.scale import RULES


class _Scraper(threading.Thread):
    """Renders /metrics once each time ``go`` is set (at the start of an alert step), as a
    scrape landing during the step would; each render's (start, end) in perf_counter time."""

    def __init__(self, render: Any) -> None:
        super().__init__(daemon=True)
        self.render = render
        self.spans: list[tuple[float, float]] = []
        self.go = threading.Event()
        self.done = threading.Event()
        self.stop = False

    def run(self) -> None:
        while True:
            self.go.wait()
            self.go.clear()
            if self.stop:
                return
            t = time.perf_counter()
            self.render()
            self.spans.append((t, time.perf_counter()))
            self.done.set()


def _p95(values: list[float]) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(0.95 * len(s)))]


def run(agents: int, calls_per_day: float, warm: int, measured: int) -> dict[str, Any]:
    clock = FakeClock(T_PEAK)
    sim = Simulator(
        clock, Scenario.steady(agents, calls_per_day, 23, diurnal=True), keys=(KEY,),
        rate_limit=API_LIMIT,
    )  # fmt: skip
    overrides: dict[str, Any] = {"rules": RULES}
    if has_rate_budget():
        overrides["dialnexa.rate_budget"] = 0.5
    gc_policy = GcPolicy()  # as service.run sets the collector
    gc_policy.start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = bench_settings(Path(tmp), **overrides)
        app = build(settings, clock, transport=TimedTransport(sim, clock), stream=io.StringIO())
        wd, alerts = app.daemon, app.alerts
        assert alerts is not None
        pipeline, store = alerts.pipeline, alerts.store
        steps: list[tuple[float, float]] = []
        commits: list[float] = []
        on_poll, commit = pipeline.on_poll, store.commit
        evaluator = pipeline.evaluator
        evaluate = evaluator.evaluate

        cpu_steps: list[float] = []
        cpu_commits: list[float] = []
        cpu_evals: list[float] = []

        def timed_evaluate(*a: Any, **kw: Any) -> Any:
            c = time.thread_time()
            try:
                return evaluate(*a, **kw)
            finally:
                cpu_evals.append(time.thread_time() - c)

        def timed_on_poll(*a: Any) -> None:
            t, c = time.perf_counter(), time.thread_time()
            scraper.go.set()
            on_poll(*a)
            steps.append((t, time.perf_counter()))
            cpu_steps.append(time.thread_time() - c)

        def timed_commit(*a: Any) -> None:
            t, c = time.perf_counter(), time.thread_time()
            commit(*a)
            commits.append(time.perf_counter() - t)
            cpu_commits.append(time.thread_time() - c)

        pipeline.on_poll = timed_on_poll  # type: ignore[method-assign]
        store.commit = timed_commit  # type: ignore[method-assign]
        evaluator.evaluate = timed_evaluate  # type: ignore[method-assign]
        scraper = _Scraper(wd.metrics.body)
        scraper.start()
        wd.backfill()
        gc_policy.started()
        full = evaluator.full
        last = clock.now()
        idle: list[float] = []
        for i in range(warm + measured):
            if i == warm:
                steps.clear()
                commits.clear()
                cpu_steps.clear()
                cpu_commits.clear()
                cpu_evals.clear()
                full = evaluator.full
                scraper.spans.clear()
            clock.set(max(clock.now(), last + settings.poll.interval))
            last = clock.now()
            wd.poll_once()
            wd.deliver()
            scraper.done.wait(60.0)  # the scrape that overlapped the step has ended
            scraper.done.clear()
            if i >= warm:
                t = time.perf_counter()
                wd.metrics.body()
                idle.append(time.perf_counter() - t)
        scraper.stop = True
        scraper.go.set()
        scraper.join()
        full = evaluator.full - full  # evaluations of every agent among the measured
        states = len(pipeline.states())
        firing = sum(1 for s in pipeline.states().values() if s.state.value == "firing")
        wd.close()
    gc_policy.stop()
    during = [e - s for s, e in scraper.spans if any(s < se and e > ss for ss, se in steps)]
    step_ms = [(e - s) * 1000 for s, e in steps]
    return {
        "alerting_agents": agents,
        "alerting_states": states,
        "alerting_firing": firing,
        "alerting_steps": len(step_ms),
        "alerting_step_p95_ms": _p95(step_ms) if step_ms else None,
        "alerting_step_median_ms": statistics.median(step_ms) if step_ms else None,
        "alerting_commit_p95_ms": _p95(commits) * 1000 if commits else None,
        # CPU time of the poll thread alone (no waiting for the GIL, the disk or other
        # processes): what the step costs, whatever else the machine runs
        "alerting_step_cpu_p95_ms": _p95(cpu_steps) * 1000 if cpu_steps else None,
        "alerting_step_cpu_median_ms": statistics.median(cpu_steps) * 1000 if cpu_steps else None,
        "alerting_commit_cpu_median_ms": (
            statistics.median(cpu_commits) * 1000 if cpu_commits else None
        ),
        # the incremental evaluation inside the step (only the agents whose counts moved)
        "alerting_evaluate_cpu_median_ms": (
            statistics.median(cpu_evals) * 1000 if cpu_evals else None
        ),
        "alerting_evaluate_cpu_p95_ms": _p95(cpu_evals) * 1000 if cpu_evals else None,
        "alerting_full_evaluations": full,
        "alerting_metrics_max_ms_during_step": max(during) * 1000 if during else None,
        "alerting_metrics_median_ms_idle": statistics.median(idle) * 1000 if idle else None,
        "alerting_scrapes_during_step": len(during),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--agents", type=int, default=10_000)
    p.add_argument("--calls-per-day", type=float, default=1_000_000)
    p.add_argument("--warm", type=int, default=40, help="cycles before measuring")
    p.add_argument("--measured", type=int, default=20)
    a = p.parse_args()
    print(json.dumps(run(a.agents, a.calls_per_day, a.warm, a.measured)))
    sys.stdout.flush()


def _job(args: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    out = subprocess.run(
        [sys.executable, "-m", "bench.alerting", *args],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run_section(quick: bool) -> dict[str, Any]:
    """In a process of its own (the scrape thread competes with the step for the GIL there
    as it does in the daemon, and with nothing else)."""
    if quick:
        return _job(["--agents", "500", "--calls-per-day", "100000", "--warm", "3",
                     "--measured", "3"])  # fmt: skip
    return _job([])


if __name__ == "__main__":
    main()
