"""Config: YAML + environment, clear one-line errors, secrets masked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from dialnexa_watchdog.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHDOG_", "DIALNEXA"))}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "dialnexa_watchdog", *args],
        capture_output=True, text=True, env=full_env, cwd=ROOT, timeout=60,
    )  # fmt: skip


def test_example_config_is_valid() -> None:
    s = load_settings(ROOT / "config" / "watchdog.example.yaml", environ={})
    assert s.window_seconds == {"5m": 300, "15m": 900, "1h": 3600}
    assert s.poll.interval == 30 and s.poll.agents == "all"


def test_bad_config_names_each_field_and_exits_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "dialnexa:\n  base_url: ftp://x\n  page_size: 500\n"
        "poll:\n  interval: soon\n  agents: []\n"
        "windows: [5m, 300s]\n"
        "metrics:\n  listne: 1\n"
    )
    r = cli("check-config", "--config", str(bad))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    for needle in ("dialnexa.base_url", "dialnexa.page_size", "poll.interval", "poll.agents",
                   "windows", "metrics.listne: unknown key"):  # fmt: skip
        assert needle in r.stderr, needle


def test_yaml_syntax_error_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("poll:\n  interval: [30s\n")
    r = cli("run", "--config", str(bad))
    assert r.returncode == 2 and "invalid YAML" in r.stderr and "line" in r.stderr
    r = cli("once", "--config", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr


def test_environment_overrides_file_and_secret_is_masked(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("poll:\n  interval: 30s\n")
    r = cli(
        "check-config", "--config", str(cfg),
        env={"WATCHDOG_POLL__INTERVAL": "45s", "DIALNEXA_API_KEY": "sk-very-secret-123"},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "interval: 45s" in r.stdout
    assert "sk-very-secret-123" not in r.stdout + r.stderr
    assert "api_key: '**********'" in r.stdout


def test_api_key_file_resolves_against_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "dialnexa-key").write_text("k-123\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    s = load_settings(None, overrides={"dialnexa.api_key_file": "dialnexa-key"}, environ={})
    assert s.dialnexa.api_key is not None and s.dialnexa.api_key.get_secret_value() == "k-123"
    with pytest.raises(ConfigError, match="api_key_file"):
        load_settings(None, overrides={"dialnexa.api_key_file": "missing"}, environ={})


def test_durations_accept_units_and_plain_seconds() -> None:
    s = load_settings(
        None, overrides={"poll.interval": 15, "poll.max_pending_age": "1d", "windows": "1m,1h"},
        environ={},
    )  # fmt: skip
    assert s.poll.interval == 15 and s.poll.max_pending_age == 86400
    assert list(s.window_seconds) == ["1m", "1h"]


def test_outcome_statuses_must_be_in_the_denominator() -> None:
    with pytest.raises(ConfigError, match=r"outcomes\.failed"):
        load_settings(None, overrides={"outcomes": {"failed": ["exploded"]}}, environ={})
