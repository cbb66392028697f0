"""The benchmark's smoke version runs end to end, so it cannot rot (the full run is by hand)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KEYS = [
    "api_requests_per_cycle",
    "api_ratio_to_lower_bound",
    "api_ratio_to_naive",
    "api_peak_requests_per_minute",
    "ingest_calls_per_second",
    "ingest_ratio_to_json_loads",
    "scale_rss_mb",
    "scale_metrics_render_ms",
    "scale_metrics_bytes",
    "scale_eval_ms",
    "detection_latency_intervals",
    "backtest_replay_seconds",
    "backtest_replay_rss_mb",
    "backtest_recording_file_bytes_per_call",
]


@pytest.mark.slow
def test_quick_benchmark_writes_every_result(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=240,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    for key in KEYS:
        assert isinstance(res[key], int | float) and res[key] >= 0, key
    assert res["api_requests_per_cycle"] > 0 and res["scale_metrics_bytes"] > 0
    assert res["api_throttled_429"] == 0  # the pacing kept it under the simulator's limit
    assert isinstance(res["machine"], str) and isinstance(res["date"], str)
    assert "api_ratio_to_naive" in r.stdout  # the table was printed
