"""The agent directory's cost and the effect of per-agent call limits (issue 15).

The same seeded realistic traffic (``Scenario.realistic``: agents' ``max_call_duration_sec``
from 300 s to 3 h) is polled three times by the daemon from the composition root, on a fake
clock against the in-process simulator:

* ``global_15m``: no per-agent limits (``agents.call_limits: false``), the default
  ``poll.max_call_duration`` of 15 minutes: calls older than that back off (a quarter of
  their age, at most 10 minutes) even when their agent allows hours;
* ``global_3h``: no per-agent limits, ``poll.max_call_duration`` set to the longest limit of
  any agent (what keeps every legitimate call re-read at ``pending_recheck`` without a
  directory);
* ``own``: each agent's own ``max_call_duration_sec + ring_duration_sec + limit_margin``.

Each twice: as the simulator draws the traffic (every call settles within its agent's limit),
and with a share ``STUCK_SHARE`` of extra calls that the API keeps showing in progress for
``STUCK_SECONDS`` (past their agent's limit: what ``dialnexa_calls_stuck_total`` exists for;
the share is an assumption, the simulator has none of its own).

Measured per run: calls-API requests per cycle (the directory's own requests apart), and how
late calls longer than 15 minutes (not the stuck ones) are counted after they settle (p95,
seconds).
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from dialnexa_watchdog.app import build
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.simulator import Scenario, Simulator
from dialnexa_watchdog.simulator.calls import CallSpec

from bench.common import KEY, T0, bench_settings

# (key prefix, size): a workspace whose re-reads fit in the rate budget (requests per cycle
# show what each setting needs), and a busier one where every setting spends the budget (~37
# requests per cycle: dialnexa.rate_budget 0.5 of 150/min) and the difference shows in freshness
FULL: list[tuple[str, dict[str, Any]]] = [
    ("", {"agents": 300, "calls_per_day": 150_000, "hours": 0.5, "warm": 1800.0,
          "seeds": (11, 12, 13), "ranges": True}),
    ("busy_", {"agents": 1000, "calls_per_day": 500_000, "hours": 0.5, "warm": 1800.0,
               "seeds": (11,)}),
]  # fmt: skip
QUICK: list[tuple[str, dict[str, Any]]] = [
    ("", {"agents": 100, "calls_per_day": 50_000, "hours": 0.1, "warm": 120.0, "seeds": (11,),
          "ranges": True}),
]  # fmt: skip
RUNS: dict[str, dict[str, Any]] = {
    "global_15m": {"agents.call_limits": False},
    "global_3h": {
        "agents.call_limits": False,
        "poll.max_call_duration": "3h",
        "poll.max_pending_age": "4h",
    },
    # per-agent limits, the cold start reaching back the longest of them (as measured when
    # that was the default; agents.backfill_agent_limits is off by default now)
    "own": {"agents.backfill_agent_limits": True},
}
# With "ranges" in a size: the long global limit and per-agent limits again with pending calls
# re-read by created_at range (poll.pending_listing: ranges), where limits decide re-reads
# (the default status=in-progress listing watches every pending call in one request)
RANGES: dict[str, dict[str, Any]] = {
    f"{label}_ranges": {**RUNS[label], "poll.pending_listing": "ranges"}
    for label in ("global_3h", "own")
}
LONG_CALL = 900.0  # calls longer than the default poll.max_call_duration
STUCK_SHARE = 0.001  # extra calls stuck in progress, as a share of the day's calls
STUCK_SECONDS = 7200.0


def add_stuck(sim: Simulator, scenario: Scenario, calls_per_day: float, seed: int,
              start: float, end: float) -> set[str]:  # fmt: skip
    """Calls that stay in progress for ``STUCK_SECONDS`` (created between ``start`` and
    ``end``, agents with a known limit, drawn from the seed); their ids."""
    rng = random.Random(f"stuck:{seed}")
    agents = [
        a.agent_id
        for a in scenario.agents
        if a.info is not None and a.info.max_call_duration_sec and not a.info.deleted
    ]
    n = round(calls_per_day * STUCK_SHARE * (end - start) / 86400.0)
    specs = [
        CallSpec(
            f"call_stuck{i:08d}",
            rng.choice(agents),
            round(rng.uniform(start, end), 3),
            "completed",
            ring=5.0,
            talk=STUCK_SECONDS,
        )
        for i in range(n)
    ]
    sim.add_calls(specs)
    return {s.id for s in specs}


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(0.95 * len(values)))]


def run_one(
    overrides: dict[str, Any],
    agents: int,
    calls_per_day: float,
    hours: float,
    seed: int,
    warm: float = 1800.0,
    stuck: bool = False,
) -> dict[str, Any]:
    """One run; cycles in the first ``warm`` seconds after the backfill are not measured
    (the calls pending at the backfill settle meanwhile)."""
    clock = FakeClock(T0)
    scenario = Scenario.realistic(agents, calls_per_day, seed, history=4 * 3600.0)
    sim = Simulator(clock, scenario, keys=(KEY,), rate_limit=None)
    end = T0 + warm + hours * 3600
    stuck_ids = (
        add_stuck(sim, scenario, calls_per_day, seed, T0 - 3 * 3600, end) if stuck else set()
    )
    with tempfile.TemporaryDirectory() as tmp:
        settings = bench_settings(Path(tmp), **overrides)
        app = build(settings, clock, transport=httpx.WSGITransport(app=sim), alerting=False)
        wd = app.daemon
        first = wd.poll_once()  # the directory, then the backfill
        one_refresh = sum(1 for r in sim.requests if "agents2" in r.path)
        interval = settings.poll.interval
        warm_until = clock.now() + warm
        requests = cycles = deferred = 0
        late: list[float] = []
        last = clock.now()
        for _ in range(int((warm + hours * 3600) / interval)):
            clock.set(max(clock.now(), last + interval))
            last = clock.now()
            report = wd.poll_once()
            now = clock.now()
            if now < warm_until:
                continue
            cycles += 1
            requests += report.requests
            deferred += report.deferred
            for cid in report.settled_ids:
                if cid in stuck_ids:
                    continue
                spec = sim.get_call(cid)
                if spec.settled_at - spec.created_at > LONG_CALL:
                    late.append(max(0.0, now - spec.settled_at))
        listed = len(app.directory.agents) if app.directory is not None else 0
        app.close()
    return {
        "requests_per_cycle": requests / max(1, cycles),
        "deferred_per_cycle": deferred / max(1, cycles),  # ranges left for lack of budget
        "long_calls": len(late),
        "long_call_late_p95_s": _p95(late),
        "backfill_requests": first.requests,
        "directory_agents": listed,
        "directory_requests_per_refresh": one_refresh,  # the first listing's pages
        "cycles": cycles,
    }


def run_size(prefix: str, size: dict[str, Any]) -> dict[str, Any]:
    per_run: dict[str, list[dict[str, Any]]] = {}
    for seed in size["seeds"]:
        for stuck in (False, True):
            runs = {**RUNS, **RANGES} if size.get("ranges") else RUNS
            for label, overrides in runs.items():
                key = f"{label}_stuck" if stuck else label
                per_run.setdefault(key, []).append(
                    run_one(
                        overrides,
                        size["agents"],
                        size["calls_per_day"],
                        size["hours"],
                        seed,
                        size["warm"],
                        stuck,
                    )
                )
    p = f"agents_{prefix}"
    out: dict[str, Any] = {
        f"{p}traffic": (
            f"realistic, {size['agents']} agents, {size['calls_per_day']:,} calls/day, "
            f"{size['hours']} h after a {size['warm']:g} s warm-up, seeds {list(size['seeds'])}; "
            f"_stuck: plus {STUCK_SHARE:.1%} of calls stuck in progress for {STUCK_SECONDS:g} s"
        ),
    }
    for label, rows in per_run.items():
        out[f"{p}{label}_requests_per_cycle"] = statistics.fmean(
            r["requests_per_cycle"] for r in rows
        )
        out[f"{p}{label}_deferred_per_cycle"] = statistics.fmean(
            r["deferred_per_cycle"] for r in rows
        )
        lates = [r["long_call_late_p95_s"] for r in rows if r["long_call_late_p95_s"] is not None]
        out[f"{p}{label}_long_call_late_p95_s"] = max(lates) if lates else None
        out[f"{p}{label}_backfill_requests"] = statistics.fmean(
            r["backfill_requests"] for r in rows
        )
    own = per_run["own"][0]
    out[f"{p}directory_agents"] = own["directory_agents"]
    out[f"{p}directory_requests_per_refresh"] = own["directory_requests_per_refresh"]
    out[f"{p}details"] = per_run
    return out


def run(quick: bool) -> dict[str, Any]:
    started = time.perf_counter()
    out: dict[str, Any] = {}
    for prefix, size in QUICK if quick else FULL:
        out.update(run_size(prefix, size))
    out["agents_seconds"] = time.perf_counter() - started
    return out


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run("--quick" in sys.argv), indent=2, default=str))
