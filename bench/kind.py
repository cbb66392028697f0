"""The kind scenario (uniform talk 30-480 s, failures only before answer, one smooth stream,
every agent alike) with the headline's settings otherwise: one row beside the realistic one.
Keys ``kind_ours_<k>`` (medians over five seeds) and ``..._range``."""

from __future__ import annotations

from typing import Any

from bench.realistic import collect, jobs
from bench.seeds import run_jobs


def run(quick: bool) -> dict[str, Any]:
    return collect("kind", run_jobs(jobs(quick, traffic="kind", diy=False)), quick)
