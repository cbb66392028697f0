"""Config: YAML + environment, clear one-line errors, secrets masked."""

from __future__ import annotations

import argparse
import copy
import math
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import pytest
import yaml
from dialnexa_watchdog.cli import build_parser
from dialnexa_watchdog.cli.util import config_warnings, preflight
from dialnexa_watchdog.config import ConfigError, Settings, load_settings
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("WATCHDOG_", "DIALNEXA"))}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "dialnexa_watchdog", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=ROOT,
        timeout=60,
    )


def test_example_config_is_valid() -> None:
    s = load_settings(ROOT / "config" / "watchdog.example.yaml", environ={})
    assert s.window_seconds == {"5m": 300, "15m": 900, "1h": 3600}
    assert s.poll.interval == 30 and s.poll.agents == "all"


@pytest.mark.slow
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
    for needle in (
        "dialnexa.base_url",
        "dialnexa.page_size",
        "poll.interval",
        "poll.agents",
        "windows",
        "metrics.listne: unknown key",
    ):
        assert needle in r.stderr, needle


@pytest.mark.slow
def test_yaml_syntax_error_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("poll:\n  interval: [30s\n")
    r = cli("run", "--config", str(bad))
    assert r.returncode == 2 and "invalid YAML" in r.stderr and "line" in r.stderr
    r = cli("once", "--config", str(tmp_path / "nope.yaml"))
    assert r.returncode == 2 and "no such file" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_environment_overrides_file_and_secret_is_masked(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("poll:\n  interval: 30s\n")
    r = cli(
        "check-config",
        "--config",
        str(cfg),
        env={
            "WATCHDOG_POLL__INTERVAL": "45s",
            "DIALNEXA_API_KEY": "sk-very-secret-123",
            "WATCHDOG_METRICS__LISTEN": "127.0.0.1:0",  # check-config binds it
        },
    )
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
        None,
        overrides={"poll.interval": 15, "poll.max_pending_age": "1d", "windows": "1m,1h"},
        environ={},
    )
    assert s.poll.interval == 15 and s.poll.max_pending_age == 86400
    assert list(s.window_seconds) == ["1m", "1h"]


def test_outcome_statuses_must_be_in_the_denominator() -> None:
    with pytest.raises(ConfigError, match=r"outcomes\.failed"):
        load_settings(None, overrides={"outcomes": {"failed": ["exploded"]}}, environ={})


# ---- every number has bounds (issue 9 item 5) ---------------------------------------------------
EXAMPLE = ROOT / "config" / "watchdog.example.yaml"
# A valid config that reaches every model: a rule with an override, so RuleSettings and
# RuleOverride fields have a place to be set.
BASE: dict[str, Any] = {
    "rules": [
        {
            "name": "r",
            "outcome": "failed",
            "window": "15m",
            "threshold": 0.5,
            "overrides": {"agt": {}},
        }
    ]
}
# Numeric keys where 0 means something (no retries, no overlap, never repeat, stale alert off,
# fire at once). Every other numeric key must reject 0.
ZERO_OK = {
    "dialnexa.max_retries",
    "poll.overlap",
    "slack.repeat_interval",
    "alerts.stale_after",
    "rules[0].for",
    "rules[0].overrides.agt.for",
}


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> X; ``Annotated[X, ...]`` -> X."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (Union, UnionType) and len(args) == 1:
        return _unwrap(args[0])
    if get_origin(annotation) is Annotated:
        return _unwrap(get_args(annotation)[0])
    return annotation


def model_keys(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, annotation) of every leaf key of a settings model, nested models
    included: ``rules[0].overrides.agt.for``. A list of models is entered at ``[0]``, a dict
    of models at the key ``agt``."""
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = f"{prefix}.{key}" if prefix else key
        ann = _unwrap(field.annotation)
        origin, args = get_origin(ann), get_args(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from model_keys(ann, path)
        elif origin is list and isinstance(args[0], type) and issubclass(args[0], BaseModel):
            yield path, ann
            yield from model_keys(args[0], f"{path}[0]")
        elif origin is dict and isinstance(args[1], type) and issubclass(args[1], BaseModel):
            yield path, ann
            yield from model_keys(args[1], f"{path}.agt")
        else:
            yield path, ann


def numeric_keys() -> list[str]:
    return [p for p, ann in model_keys(Settings) if ann in (int, float)]


def with_value(path: str, value: object) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    node: Any = data
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
    for part, nxt in zip(parts, [*parts[1:], None], strict=True):
        key: Any = int(part[1:-1]) if part.startswith("[") else part
        if nxt is None:
            node[key] = value
        else:
            if isinstance(key, str) and key not in node:
                node[key] = {}
            node = node[key]
    return data


def load_data(data: dict[str, Any]) -> Settings:
    return load_settings(None, overrides=data, environ={})


def test_the_audit_reaches_every_section() -> None:
    keys = numeric_keys()
    for expected in (
        "dialnexa.rate_limit_period",
        "poll.interval",
        "slack.timeout",
        "alerts.stale_after",
        "rules[0].confidence",
        "rules[0].overrides.agt.for",
    ):
        assert expected in keys
    assert load_data(BASE).rules[0].overrides["agt"].threshold is None


@pytest.mark.parametrize("path", numeric_keys())
@pytest.mark.slow
def test_every_number_rejects_nan_infinity_negative_and_huge(path: str) -> None:
    for value in (math.nan, math.inf, -math.inf, -1, 1e12, "nan", "1e999"):
        with pytest.raises(ConfigError) as caught:
            load_data(with_value(path, value))
        assert any(p.startswith(f"{path}:") for p in caught.value.problems), (
            value,
            caught.value.problems,
        )


@pytest.mark.parametrize("path", numeric_keys())
def test_zero_is_rejected_where_it_means_nothing(path: str) -> None:
    if path in ZERO_OK:
        load_data(with_value(path, 0))
        return
    with pytest.raises(ConfigError) as caught:
        load_data(with_value(path, 0))
    assert any(p.startswith(f"{path}:") for p in caught.value.problems), caught.value.problems


@pytest.mark.parametrize("windows", [[math.inf], [math.nan], ["nan"], [0], ["5m", "30d"], [-1]])
def test_windows_must_be_finite_and_bounded(windows: list[Any]) -> None:
    with pytest.raises(ConfigError, match=r"^windows: "):
        load_data({"windows": windows})


def test_windows_that_need_too_many_buckets_are_refused() -> None:
    # 20s and 1d share a 1s bucket: 86,400 buckets per agent
    with pytest.raises(ConfigError, match=r"windows: windows 20s and 1d need 86400 time buckets"):
        load_data({"windows": ["20s", "1d"]})
    assert load_data({"windows": ["5m", "1d"]}).longest_window == 86400


def test_cross_field_limits() -> None:
    with pytest.raises(ConfigError) as caught:
        load_data(
            {
                "dialnexa": {"backoff_base": "1m", "backoff_max": "10s"},
                "poll": {"interval": "1m", "max_pending_age": "5m", "max_call_duration": "15m"},
                "alerts": {"stale_after": "90s"},
            }
        )
    problems = " | ".join(caught.value.problems)
    for needle in ("dialnexa.backoff_base:", "poll.max_pending_age:", "alerts.stale_after:"):
        assert needle in problems, problems
    assert load_data({"alerts": {"stale_after": 0}}).alerts.stale_after == 0


def test_listen_address_is_checked() -> None:
    for bad in ("10811", "host:port", "bad host:1", "[::1:80", "::1:80", "1.2.3.4:70000"):
        with pytest.raises(ConfigError, match=r"metrics\.listen"):
            load_data({"metrics": {"listen": bad}})
    assert load_data({"metrics": {"listen": "[::1]:0"}}).metrics.host_port == ("::1", 0)
    assert load_data({"metrics": {"listen": ":10811"}}).metrics.host_port == ("0.0.0.0", 10811)


@pytest.mark.parametrize("command", ["check-config", "run"])
@pytest.mark.slow
def test_the_issues_bad_numbers_exit_2_with_one_line_each(tmp_path: Path, command: str) -> None:
    """The values from issue 9 item 5, as the CLI sees them: one line per field, exit 2, no
    traceback (run used to crash at start, or die every cycle on rate_limit_period: 0)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "dialnexa:\n  rate_limit_period: 0\n  timeout: 0\n"
        "poll:\n  interval: .nan\n"
        "windows: [.inf]\n"
        "alerts:\n  stale_after: .nan\n"
    )
    r = cli(command, "--config", str(bad), env={"DIALNEXA_API_KEY": "k"})
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = [line.strip() for line in r.stderr.splitlines()[1:]]
    for field in (
        "dialnexa.rate_limit_period:",
        "dialnexa.timeout:",
        "poll.interval:",
        "windows:",
        "alerts.stale_after:",
    ):
        assert sum(line.startswith(field) for line in lines) == 1, (field, r.stderr)


# ---- the example lists every key, and ships rules (issue 9 item 12) ---------------------------
_KEY_LINE = re.compile(r"^(\s*)(- )?([a-z_][a-z0-9_]*):(?:\s+(.*))?$")


def example_keys(text: str) -> set[str]:
    """Dotted paths of every key in a YAML file, commented-out keys included (``# key:``
    lines count at the indentation they would have uncommented). List items are ``[0]``;
    keys in a flow mapping (``{a: 1}``) are children of their key."""
    found: set[str] = set()
    stack: list[tuple[float, str]] = [(-1, "")]
    for raw in text.splitlines():
        m = re.match(r"^(\s*)# ?(.*)$", raw)
        line = m.group(1) + m.group(2) if m else raw
        km = _KEY_LINE.match(line)
        if not km:
            continue
        indent, dash, key, value = len(km.group(1)), km.group(2), km.group(3), km.group(4) or ""
        if dash:
            while stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent + 1, f"{stack[-1][1]}[0]"))
            indent += 2
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        path = f"{parent}.{key}" if parent else key
        found.add(path)
        stack.append((indent, path))
        flow = re.match(r"\{(.*)\}", value.split(" #")[0].strip())
        if flow:
            found.update(f"{path}.{k}" for k in re.findall(r"([a-z_]+):", flow.group(1)))
    return found


def missing_keys(text: str) -> list[str]:
    """Settings keys (every model, nested ones included) the text does not mention."""
    present = example_keys(text)
    out = []
    for path, _ in model_keys(Settings):
        pattern = re.escape(path).replace(r"\.agt", r"\.[^.]+")
        if not any(re.fullmatch(pattern, p) for p in present):
            out.append(path)
    return out


def test_the_example_mentions_every_settings_key() -> None:
    assert missing_keys(EXAMPLE.read_text()) == []


def test_the_key_check_is_not_vacuous() -> None:
    text = EXAMPLE.read_text()
    for key, path in (
        ("  backoff_max:", "dialnexa.backoff_max"),
        ("  # webhook_url_file:", "slack.webhook_url_file"),
        ("    scope:", "rules[0].scope"),  # only the workspace rule has it
        ("  sparkline_points:", "alerts.sparkline_points"),
    ):
        assert key in text, key
        broken = text.replace(key, key.replace(key.strip(" #"), "renamed_key:"), 1)
        assert path in missing_keys(broken), path
    # an override's key counts only inside overrides
    assert "rules[0].overrides.agt.for" in missing_keys(
        text.replace("min_calls: 10, for: 5m}", "min_calls: 10}")
    )


def test_the_example_ships_a_default_rule_set() -> None:
    settings = load_settings(EXAMPLE, environ={})
    raw = yaml.safe_load(EXAMPLE.read_text())["rules"]
    rules = {(r.scope, r.outcome): r for r in settings.rules}
    assert set(rules) >= {
        ("agent", "failed"),
        ("agent", "busy"),
        ("agent", "no_answer"),
        ("workspace", "failed"),
    }
    stopped = [r for r in raw if r.get("kind") == "calls_stopped"]
    assert len(stopped) == 1  # issue 15: silent agents page too
    assert {"baseline", "min_calls", "quiet_after", "for"} <= set(stopped[0])
    raw = [r for r in raw if r.get("kind", "rate") == "rate"]
    for r in raw:  # every number written out, not left to a default
        assert {"min_calls", "confidence", "for", "clear_below", "threshold", "window"} <= set(r)
    for r in settings.rules:
        if r.kind == "calls_stopped":
            continue
        assert r.threshold is not None and r.clear_below is not None, r.name
        assert r.clear_below < r.threshold, r.name  # hysteresis
        assert r.confidence is not None and r.min_calls >= 20 and r.for_ > 0, r.name
    # each number has a comment saying how it was chosen
    lines = EXAMPLE.read_text().split("\nrules:\n", 1)[1].split("\nslack:\n", 1)[0].splitlines()
    for line in lines:
        if re.match(
            r"\s+(threshold|clear_below|min_calls|confidence|for|window|quiet_after|baseline):",
            line,
        ):
            assert "#" in line, f"no comment on: {line.strip()}"


# ---- check-config catches what run refuses (issue 9 item 14) --------------------------------
def settings_with(tmp_path: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "dialnexa.api_key": "k",
        "state.path": str(tmp_path / "state.sqlite3"),
        "metrics.listen": "127.0.0.1:0",
    }
    base.update(overrides)
    return load_settings(None, overrides=base, environ={})


@pytest.mark.slow
def test_readme_check_config_on_a_workstation_names_the_state_path() -> None:
    """The README's command, as written, on a machine without /var/lib/dialnexa-watchdog:
    check-config used to say OK while run refused to start."""
    if Path("/var/lib/dialnexa-watchdog").is_dir():
        pytest.skip("this machine has /var/lib/dialnexa-watchdog")
    r = cli(
        "check-config",
        "--config",
        "config/watchdog.example.yaml",
        env={"DIALNEXA_API_KEY": "sk-not-a-real-key"},
    )
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "config OK" not in r.stderr
    assert "state.path: directory /var/lib/dialnexa-watchdog does not exist" in r.stderr
    assert "WATCHDOG_STATE__PATH" in r.stderr
    assert "interval: 30s" in r.stdout  # the effective config is still printed
    assert "sk-not-a-real-key" not in r.stdout + r.stderr


@pytest.mark.slow
def test_check_config_ok_once_the_state_path_is_overridden(tmp_path: Path) -> None:
    r = cli(
        "check-config",
        "--config",
        "config/watchdog.example.yaml",
        env={
            "DIALNEXA_API_KEY": "k",
            "WATCHDOG_STATE__PATH": str(tmp_path / "state.sqlite3"),
            "WATCHDOG_METRICS__LISTEN": "127.0.0.1:0",
        },
    )
    assert r.returncode == 0, r.stderr
    assert "# config OK" in r.stderr
    assert "warning: rules" not in r.stderr  # the example ships rules
    assert not (tmp_path / "state.sqlite3").exists(), "check-config must not create the state"


@pytest.mark.slow
def test_check_config_lists_every_problem_and_warns_about_no_rules(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"state: {{path: {tmp_path / 'nope' / 'state.sqlite3'}}}\n"
        "metrics: {listen: '127.0.0.1:0'}\n"
    )
    r = cli("check-config", "--config", str(cfg))
    assert r.returncode == 2
    assert "dialnexa.api_key: no API key" in r.stderr
    assert f"state.path: directory {tmp_path / 'nope'} does not exist" in r.stderr
    assert "warning: rules: none configured" in r.stderr


def test_preflight_passes_a_good_setup(tmp_path: Path) -> None:
    assert preflight(settings_with(tmp_path)) == []
    assert not (tmp_path / "state.sqlite3").exists()


def test_preflight_api_key_and_state_path(tmp_path: Path) -> None:
    overrides = {"metrics.listen": "127.0.0.1:0", "state.path": str(tmp_path / "s.sqlite3")}
    s = load_settings(None, overrides=overrides, environ={})
    assert [p.split(":")[0] for p in preflight(s)] == ["dialnexa.api_key"]
    (tmp_path / "file").write_text("")
    (tmp_path / "dir.sqlite3").mkdir()
    for path, needle in (
        (tmp_path / "missing" / "s.sqlite3", "does not exist"),
        (tmp_path / "file" / "s.sqlite3", "is not a directory"),
        (tmp_path / "dir.sqlite3", "is a directory; name a file inside it"),
    ):
        (problem,) = preflight(settings_with(tmp_path, **{"state.path": str(path)}))
        assert problem.startswith("state.path:") and needle in problem, problem


def test_preflight_state_directory_not_writable(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    (problem,) = preflight(settings_with(tmp_path, **{"state.path": str(locked / "s.sqlite3")}))
    assert "is not writable by this user" in problem


def test_preflight_binds_the_metrics_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        (problem,) = preflight(settings_with(tmp_path, **{"metrics.listen": f"127.0.0.1:{port}"}))
        assert problem.startswith("metrics.listen:") and "in use" in problem, problem
    # free again: the check binds and closes, leaving nothing behind
    assert preflight(settings_with(tmp_path, **{"metrics.listen": f"127.0.0.1:{port}"})) == []
    for listen, needle in (
        ("192.0.2.1:10811", "no network interface has this address"),  # TEST-NET-1
        ("no-such-host.invalid:10811", "cannot resolve"),
    ):
        (problem,) = preflight(settings_with(tmp_path, **{"metrics.listen": listen}))
        assert needle in problem, problem


def test_preflight_slack_token_and_channel(tmp_path: Path) -> None:
    def slack(**kw: str) -> list[str]:
        return preflight(settings_with(tmp_path, **{f"slack.{k}": v for k, v in kw.items()}))

    assert slack(token="xoxb-1", channel="C0123456789") == []
    assert slack(webhook_url="https://hooks.example/x") == []
    (p,) = slack(channel="C0123456789")
    assert p.startswith("slack.channel:") and "no bot token" in p
    (p,) = slack(token="xoxb-1", channel="#alerts")
    assert "is not a channel id" in p
    (p,) = slack(token="xoxb-1", channel="C0123456789", webhook_url="https://hooks.example/x")
    assert "both a bot token and a webhook_url" in p
    assert "xoxb-1" not in " ".join(slack(token="xoxb-1", channel="#alerts"))


def test_config_warnings() -> None:
    s = load_settings(None, environ={})
    assert [w.split(":")[0] for w in config_warnings(s)] == ["rules", "slack"]
    webhook = load_settings(EXAMPLE, overrides={"slack.webhook_url": "https://h/x"}, environ={})
    assert config_warnings(webhook) == []


# ---- --help (issue 9 item 19) -----------------------------------------------------------------
def subcommands(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> Iterator[tuple[str, str | None, argparse.ArgumentParser]]:
    """(command path, its line in the parent's list, its parser) for every sub-command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                path = f"{prefix} {name}".strip()
                yield path, helps.get(name), sub
                yield from subcommands(sub, path)


def test_every_subcommand_has_a_one_line_description() -> None:
    found = list(subcommands(build_parser()))
    names = {path for path, _, _ in found}
    assert {"run", "once", "check-config", "demo", "healthcheck", "alerts", "silence add"} <= names
    for path, listed, sub in found:
        assert listed, f"{path}: no help in the command list"
        text = sub.description or ""
        assert "\n" not in text and 0 < len(text) <= 78, f"{path}: {text!r}"
        assert text[0].isupper() and text.endswith("."), f"{path}: {text!r}"
        # and argparse prints it on one line right after the usage
        out = sub.format_help().split("\n\n")[1]
        assert out == text, f"{path}: {out!r}"
