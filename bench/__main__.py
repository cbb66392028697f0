"""``python -m bench``: the benchmark. Prints tables with pass/fail per target and writes
bench/results.json. ``--quick`` is the CI smoke version (seconds, small numbers, no targets);
``--only TOPIC[,TOPIC]`` runs those sections and updates only their keys in results.json.
Simulated runs use the simulator on a fake clock (no sleeping); sections run one after the
other, each in at most two processes (the machine has two cores)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import alerting, daemon, kind, legacy, realistic
from bench.report import table


def _backtest(quick: bool) -> dict[str, Any]:
    from bench.backtest import run

    return run(quick)


def _pending(quick: bool) -> dict[str, Any]:
    from bench.pending import run

    return run(quick)


def _agents(quick: bool) -> dict[str, Any]:
    from bench.agents import run

    return run(quick)


def _sequential(quick: bool) -> dict[str, Any]:
    from bench.sequential import run

    return run(quick)


def _ha(quick: bool) -> dict[str, Any]:
    from bench.ha import run

    return run(quick)


SECTIONS: dict[str, Callable[[bool], dict[str, Any]]] = {
    "realistic": realistic.run,
    "kind": kind.run,
    "economy": legacy.run_economy,
    "scale": legacy.run_scale,
    "ingest": legacy.run_ingest,
    "detect": legacy.run_detect,
    "alerting": alerting.run_section,
    "daemon": daemon.run_section,
    "backtest": _backtest,
    "pending": _pending,
    "ha": _ha,
    "agents": _agents,
    "sequential": _sequential,
}


def run_all(quick: bool, only: list[str] | None = None) -> dict[str, Any]:
    """Run the sections (all, or ``only``), in order; their keys merged, ``details`` per
    section, ``section_seconds`` per section."""
    res: dict[str, Any] = {"details": {}, "section_seconds": {}}
    for topic, fn in SECTIONS.items():
        if only is not None and topic not in only:
            continue
        started = time.perf_counter()
        part = fn(quick)
        details = part.pop("details", None)
        res.update(part)
        if details is not None:
            res["details"][topic] = details
        res["section_seconds"][topic] = time.perf_counter() - started
        print(f"{topic}: {res['section_seconds'][topic]:.0f} s", file=sys.stderr, flush=True)
    return res


def merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` with ``new``'s keys; ``details`` and ``section_seconds`` merged per section."""
    out = {**old, **new}
    for key in ("details", "section_seconds"):
        out[key] = {**(old.get(key) or {}), **(new.get(key) or {})}
    return out


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench")
    p.add_argument("--quick", action="store_true", help="CI smoke run: small and fast")
    p.add_argument("--out", default=str(Path(__file__).parent / "results.json"))
    p.add_argument(
        "--only",
        help=f"comma-separated sections to run ({', '.join(SECTIONS)}); only their keys "
        "change in the existing results file",
    )
    a = p.parse_args()
    only = None
    if a.only:
        only = [t.strip() for t in a.only.split(",") if t.strip()]
        unknown = sorted(set(only) - set(SECTIONS))
        if unknown:
            p.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    out = Path(a.out)
    started = time.perf_counter()
    res = run_all(a.quick, only)
    seconds = time.perf_counter() - started
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    if only is not None and out.exists():
        old = json.loads(out.read_text())
        if bool(old.get("quick")) != a.quick:
            p.error(f"{out} holds a {'quick' if old.get('quick') else 'full'} run: not mixing")
        res = merge(old, res)
        res["updated"] = {**(old.get("updated") or {}), **dict.fromkeys(only, date)}
    else:
        res["bench_seconds"] = seconds
        res["date"] = date
    res["machine"] = machine
    res["quick"] = a.quick
    out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(table(res, a.quick))
    print(f"\n{seconds:.0f} s on {machine}, {date}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
