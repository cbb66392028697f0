"""``python -m bench``: the benchmark. Prints a table with pass/fail per target and writes
bench/results.json. ``--quick`` is the CI smoke version (seconds, small numbers, no targets).
Everything runs against the in-process simulator on an accelerated fake clock: no sleeping."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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


# Sections with a module of their own (``bench/<topic>.py`` exposing ``run(quick)``): run by
# ``run_all`` and, alone, by ``--only TOPIC[,TOPIC]``.
SECTIONS = ("sequential",)


def _section(name: str, quick: bool) -> dict[str, Any]:
    import importlib

    module = importlib.import_module(f"bench.{name}")
    result: dict[str, Any] = module.run(quick)
    return result


def _per_interval(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 30.0


def run_all(quick: bool) -> dict[str, Any]:
    eco = QUICK if quick else FULL
    scale_args = (
        ["--agents", "1000", "--calls-per-day", "100000", "--hours", "0.1"] if quick else []
    )
    jobs: dict[str, Future[dict[str, Any]]] = {}
    with ProcessPoolExecutor(max_workers=2) as pool:  # the machine has 2 cores
        jobs["workspace"] = pool.submit(_economy, "workspace", eco["workspace"])
        jobs["scale"] = pool.submit(_scale, scale_args)
        jobs["baseline"] = pool.submit(_scale, [*scale_args, "--baseline"])
        for key in ("list50_per_agent", "list50_workspace", "list50_auto", "x3"):
            jobs[key] = pool.submit(_economy, key, eco[key])
        jobs["ingest"] = pool.submit(_ingest, 20 if quick else 400)
        jobs["detect"] = pool.submit(_detect)
        for name in SECTIONS:
            jobs[name] = pool.submit(_section, name, quick)
        done = {k: f.result() for k, f in jobs.items()}
    ws = done["workspace"]
    res: dict[str, Any] = {
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
        "x3_requests_per_cycle": done["x3"]["api_requests_per_cycle"],
        "x3_peak_requests_per_minute": done["x3"]["api_peak_requests_per_minute"],
        "x3_throttled_429": done["x3"]["throttled_429"],
        "x3_accuracy_mae_5m_failed": done["x3"]["accuracy_mae_5m_failed"],
        "x3_freshness_p95_intervals": _per_interval(done["x3"]["freshness_p95_s"]),
        "x3_deferred_ranges_per_cycle": (
            done["x3"]["deferred_ranges"] / max(1, done["x3"]["cycles"])
        ),
        **{k: v for k, v in done["ingest"].items()},
        **{k: v for k, v in done["scale"].items()},
        "scale_rss_simulator_only_mb": done["baseline"]["baseline_rss_mb"],
        **{k: v for k, v in done["detect"].items()},
        **{k: v for name in SECTIONS for k, v in done[name].items()},
        "details": {k: v for k, v in done.items() if k not in SECTIONS},
    }
    return res


TARGETS: list[tuple[str, str, float, str]] = [
    ("api_ratio_to_naive", "<=", 0.1, "requests vs re-listing the 1h window every cycle"),
    ("api_ratio_to_lower_bound", "<=", 3.0, "requests vs ceil(new or changed calls / 100)"),
    ("api_peak_requests_per_minute", "<", 150, "1M calls/day at the daily peak"),
    ("accuracy_mae_5m_failed", "<=", 0.005, "workspace 5m failed ratio vs ground truth"),
    ("freshness_p95_intervals", "<=", 1.0, "failed/busy/no-answer settled -> counted"),
    ("ingest_ratio_to_json_loads", ">=", 0.5, "page bytes -> window counters"),
    ("scale_rss_mb", "<=", 200, "10,000 agents after 3 simulated hours"),
    ("scale_metrics_render_ms", "<=", 150, "/metrics right after a poll"),
    ("scale_eval_ms", "<=", 50, "10 rules"),
    ("detection_latency_intervals", "<=", 1.0, "first failing call -> Slack notice (for: 0s)"),
    ("sequential_hard_paired_ratio_of_medians", "<=", 1 / 3, "hard: sequential / window"),
    ("sequential_false_pages_failed_seq_per_1000_agent_days", "<=", 1.0, "10y, healthy"),
    ("sequential_calibration_busy_ratio", "<=", 2.0, "false alarms / promised (2d)"),
]


def table(res: dict[str, Any], quick: bool) -> str:
    lines = [f"{'metric':<38} {'value':>12}  {'target':>10}  result"]
    for key, op, limit, what in TARGETS:
        v = res.get(key)
        if v is None:
            verdict = "n/a"
            shown = "-"
        else:
            ok = v <= limit if op == "<=" else v < limit if op == "<" else v >= limit
            verdict = ("pass" if ok else "MISS") if not quick else "(smoke)"
            shown = f"{v:.4g}"
        lines.append(f"{key:<38} {shown:>12}  {op}{limit:>8g}  {verdict}   {what}")
    extra = [
        "api_requests_per_cycle",
        "api_naive_requests_per_cycle",
        "api_throttled_429",
        "list50_per_agent_requests_per_cycle",
        "list50_workspace_requests_per_cycle",
        "list50_auto_requests_per_cycle",
        "x3_requests_per_cycle",
        "x3_peak_requests_per_minute",
        "x3_throttled_429",
        "x3_accuracy_mae_5m_failed",
        "x3_freshness_p95_intervals",
        "x3_deferred_ranges_per_cycle",
        "ingest_calls_per_second",
        "json_loads_calls_per_second",
        "scale_metrics_bytes",
        "scale_rss_simulator_only_mb",
        "detection_after_truth_intervals",
        "detection_first_failure_to_truth_s",
    ]
    for key in extra:
        v = res.get(key)
        lines.append(f"{key:<38} {'-' if v is None else format(v, '.4g'):>12}")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench")
    p.add_argument("--quick", action="store_true", help="CI smoke run: small and fast")
    p.add_argument("--out", default=str(Path(__file__).parent / "results.json"))
    p.add_argument(
        "--only",
        help=f"run only these sections ({', '.join(SECTIONS)}), comma-separated, and update "
        "only their keys in the existing results file",
    )
    a = p.parse_args()
    started = time.perf_counter()
    if a.only:
        names = [n.strip() for n in a.only.split(",") if n.strip()]
        unknown = sorted(set(names) - set(SECTIONS))
        if unknown:
            p.error(f"--only: unknown section(s) {', '.join(unknown)}; one of {SECTIONS}")
        out = Path(a.out)
        res = json.loads(out.read_text()) if out.exists() else {}
        for name in names:
            res.update(_section(name, a.quick))
        res[f"{'_'.join(names)}_seconds"] = time.perf_counter() - started
        res[f"{'_'.join(names)}_quick"] = a.quick
        out.write_text(json.dumps(res, indent=2, default=str) + "\n")
        print(table(res, a.quick))
        print(f"\nsections {', '.join(names)}: wrote {out}")
        return 0
    res = run_all(a.quick)
    res["bench_seconds"] = time.perf_counter() - started
    res["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"
    res["date"] = datetime.now(UTC).strftime("%Y-%m-%d")
    res["quick"] = a.quick
    Path(a.out).write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(table(res, a.quick))
    print(f"\n{res['bench_seconds']:.0f} s on {res['machine']}, {res['date']}; wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
