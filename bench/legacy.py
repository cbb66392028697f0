"""The earlier benchmark's sections, kept so their figures stay reproducible: the kind
scenario's API economy from 06:00 UTC (``economy.py``: one seed, the naive-poller footnote,
explicit agent lists, 3M calls/day), scale at 10,000 agents (``scale.py``, its own process),
ingest throughput (``ingest.py``) and detection latency (``detect.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.seeds import run_jobs

# The runs as a table, one run per entry (fmt: skip keeps the rows side by side).
FULL: dict[str, dict[str, Any]] = {
    "workspace": {"agents": 2000, "calls_per_day": 1_000_000, "hours": 3.0},
    "list50_per_agent": {"agents": 2000, "calls_per_day": 1_000_000, "hours": 0.5,
                         "explicit_agents": 50, "listing": "per_agent", "naive": False},
    "list50_workspace": {"agents": 2000, "calls_per_day": 1_000_000, "hours": 0.5,
                         "explicit_agents": 50, "listing": "workspace", "naive": False},
    "list50_auto": {"agents": 2000, "calls_per_day": 1_000_000, "hours": 0.25,
                    "explicit_agents": 50, "listing": "auto", "naive": False},
    "x3": {"agents": 2000, "calls_per_day": 3_000_000, "hours": 0.5, "naive": False},
}  # fmt: skip
# the same runs, small enough for CI (fmt: skip as above)
QUICK: dict[str, dict[str, Any]] = {
    "workspace": {"agents": 200, "calls_per_day": 100_000, "hours": 0.1},
    "list50_per_agent": {"agents": 200, "calls_per_day": 100_000, "hours": 0.05,
                         "explicit_agents": 10, "listing": "per_agent", "naive": False},
    "list50_workspace": {"agents": 200, "calls_per_day": 100_000, "hours": 0.05,
                         "explicit_agents": 10, "listing": "workspace", "naive": False},
    "list50_auto": {"agents": 200, "calls_per_day": 100_000, "hours": 0.05,
                    "explicit_agents": 10, "listing": "auto", "naive": False},
    "x3": {"agents": 200, "calls_per_day": 300_000, "hours": 0.05, "naive": False},
}  # fmt: skip


def _economy(label: str, kw: dict[str, Any]) -> dict[str, Any]:
    from bench.economy import run_economy

    return run_economy(label, **kw).as_dict()


def _scale(args: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    out = subprocess.run(
        [sys.executable, "-m", "bench.scale", *args],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _ingest(n_pages: int) -> dict[str, Any]:
    from bench.ingest import run_ingest

    return run_ingest(n_pages)


def _detect() -> dict[str, Any]:
    from bench.detect import run_detect

    return run_detect()


def _per_interval(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 30.0


def run_economy(quick: bool) -> dict[str, Any]:
    eco = QUICK if quick else FULL
    done = run_jobs([(key, _economy, (key, kw)) for key, kw in eco.items()])
    ws, x3 = done["workspace"], done["x3"]
    return {
        "api_requests_per_cycle": ws["api_requests_per_cycle"],
        "api_ratio_to_lower_bound": ws["api_ratio_to_lower_bound"],
        "api_ratio_to_naive": ws["api_ratio_to_naive"],
        "api_naive_requests_per_cycle": ws["naive_requests_per_cycle"],
        "api_peak_requests_per_minute": ws["api_peak_requests_per_minute"],
        "api_throttled_429": ws["throttled_429"],
        "freshness_p95_intervals": _per_interval(ws["freshness_p95_s"]),
        "accuracy_mae_5m_failed": ws["accuracy_mae_5m_failed"],
        "list50_per_agent_requests_per_cycle": done["list50_per_agent"]["api_requests_per_cycle"],
        "list50_workspace_requests_per_cycle": done["list50_workspace"]["api_requests_per_cycle"],
        "list50_auto_requests_per_cycle": done["list50_auto"]["api_requests_per_cycle"],
        "list50_auto_deferred_ranges": done["list50_auto"]["deferred_ranges"],
        "x3_requests_per_cycle": x3["api_requests_per_cycle"],
        "x3_peak_requests_per_minute": x3["api_peak_requests_per_minute"],
        "x3_throttled_429": x3["throttled_429"],
        "x3_accuracy_mae_5m_failed": x3["accuracy_mae_5m_failed"],
        "x3_freshness_p95_intervals": _per_interval(x3["freshness_p95_s"]),
        "x3_deferred_ranges_per_cycle": x3["deferred_ranges"] / max(1, x3["cycles"]),
        "details": {"economy": done},
    }


def run_scale(quick: bool) -> dict[str, Any]:
    args = ["--agents", "1000", "--calls-per-day", "100000", "--hours", "0.1"] if quick else []
    done = run_jobs([("scale", _scale, (args,)), ("baseline", _scale, ([*args, "--baseline"],))])
    return {
        **done["scale"],
        "scale_rss_simulator_only_mb": done["baseline"]["baseline_rss_mb"],
    }


def run_ingest(quick: bool) -> dict[str, Any]:
    return _ingest(20 if quick else 400)


def run_detect(quick: bool) -> dict[str, Any]:
    return _detect()
