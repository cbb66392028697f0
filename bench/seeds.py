"""Several seeds of a simulated run, at most two processes at a time (the machine has two
cores), summarised as the median and the range (min, max) of every number."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

SEEDS: tuple[int, ...] = (1, 2, 3, 4, 5)
QUICK_SEEDS: tuple[int, ...] = (1, 2)
WORKERS = 2

Job = tuple[str, Callable[..., dict[str, Any]], tuple[Any, ...]]


def run_jobs(jobs: Sequence[Job]) -> dict[str, dict[str, Any]]:
    """Run ``(name, fn, args)`` jobs in at most ``WORKERS`` processes; name -> result."""
    with ProcessPoolExecutor(max_workers=WORKERS) as pool:
        futures = {name: pool.submit(fn, *args) for name, fn, args in jobs}
        return {name: f.result() for name, f in futures.items()}


def summarise(prefix: str, runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``prefix_<key>``: the median over ``runs`` of every numeric key, and
    ``prefix_<key>_range``: [min, max]. A key that is None in some run is summarised over
    the runs that have it (``prefix_<key>_n`` says how many when not all)."""
    out: dict[str, Any] = {f"{prefix}_seeds": len(runs)}
    keys: dict[str, None] = {}  # every numeric key, in first-seen order
    for r in runs:
        keys.update((k, None) for k, v in r.items() if isinstance(v, int | float))
    for k in keys:
        values = [r[k] for r in runs if isinstance(r.get(k), int | float)]
        if not values:
            continue
        if all(isinstance(v, bool) for v in values):
            out[f"{prefix}_{k}"] = all(values)
            continue
        out[f"{prefix}_{k}"] = statistics.median(values)
        out[f"{prefix}_{k}_range"] = [min(values), max(values)]
        if len(values) < len(runs):
            out[f"{prefix}_{k}_n"] = len(values)
    return out
