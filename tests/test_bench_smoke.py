"""The benchmark's smoke version runs end to end, so it cannot rot (the full run is by hand),
and the pieces that turn runs into verdicts are checked on known inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import verdict  # noqa: E402
from bench.runs import peak_per_minute  # noqa: E402
from bench.seeds import summarise  # noqa: E402

KEYS = [
    "realistic_ours_requests_per_minute",
    "realistic_diy_requests_per_minute",
    "realistic_ours_peak_requests_per_minute",
    "realistic_ours_wmae_failed",
    "realistic_diy_wmae_failed",
    "realistic_ours_fresh_fail_p95_s",
    "realistic_ours_fresh_completed_p95_s",
    "realistic_diy_fresh_completed_p95_s",
    "realistic_ours_settled_bound_per_minute",
    "kind_ours_requests_per_minute",
    "api_requests_per_cycle",
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


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=240,
    )


@pytest.mark.slow
def test_quick_benchmark_writes_every_result(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    r = _bench("--quick", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(out.read_text())
    for key in KEYS:
        assert isinstance(res[key], int | float) and res[key] >= 0, key
    assert res["realistic_ours_seeds"] == res["realistic_diy_seeds"] >= 2
    lo, hi = res["realistic_ours_requests_per_minute_range"]
    assert lo <= res["realistic_ours_requests_per_minute"] <= hi
    assert res["realistic_ours_calls_counted"] > 0 and res["scale_metrics_bytes"] > 0
    assert res["realistic_ours_throttled_429"] == 0  # paced under the simulator's limit
    assert isinstance(res["machine"], str) and isinstance(res["date"], str)
    assert "DIY poller" in r.stdout and "requests per minute" in r.stdout  # the table
    # --only re-runs one section and keeps every other key as it was
    before = dict(res)
    r = _bench("--quick", "--only", "ingest", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    after = json.loads(out.read_text())
    assert after["realistic_ours_wmae_failed"] == before["realistic_ours_wmae_failed"]
    assert after["details"]["realistic"] == before["details"]["realistic"]
    assert after["ingest_calls"] == before["ingest_calls"] and "ingest" in after["updated"]


def test_unknown_section_is_refused(tmp_path: Path) -> None:
    r = _bench("--quick", "--only", "nonsense", "--out", str(tmp_path / "r.json"))
    assert r.returncode == 2 and "nonsense" in r.stderr
    assert not (tmp_path / "r.json").exists()


def test_summarise_gives_median_and_range_and_skips_missing() -> None:
    runs = [{"a": 3.0, "b": None, "c": "x"}, {"a": 1.0, "b": 2.0}, {"a": 2.0, "b": 4.0}]
    s = summarise("p", runs)
    assert s["p_seeds"] == 3
    assert s["p_a"] == 2.0 and s["p_a_range"] == [1.0, 3.0]
    assert s["p_b"] == 3.0 and s["p_b_range"] == [2.0, 4.0] and s["p_b_n"] == 2
    assert "p_c" not in s


def test_verdict_needs_every_seed_for_a_pass() -> None:
    res = {"k": 0.004, "k_range": [0.003, 0.006], "b": -0.001, "b_range": [-0.003, 0.001]}
    assert verdict(res, "k", "<=", 0.005) == "mixed"
    assert verdict(res, "k", "<=", 0.007) == "pass"
    assert verdict(res, "k", "<=", 0.0035) == "MISS"
    assert verdict(res, "b", "|<=|", 0.002) == "mixed"
    assert verdict(res, "b", "|<=|", 0.0005) == "MISS"
    assert verdict({"k": None}, "k", "<=", 1) == "n/a"


def test_peak_per_minute_counts_any_sixty_seconds() -> None:
    assert peak_per_minute([]) == 0
    assert peak_per_minute([0.0, 30.0, 59.9, 60.0, 61.0]) == 4  # 30..61 holds 30, 59.9, 60, 61
    assert peak_per_minute([0.0, 100.0, 200.0]) == 1
