"""Loading the config: a YAML file, then ``WATCHDOG_<SECTION>__<KEY>`` environment variables.

``load_settings(path)`` returns a validated ``Settings`` or raises ``ConfigError`` whose
``problems`` name each bad field by its path. Nothing here touches the network or the disk
beyond reading the config file and secret files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..durations import format_duration, parse_duration
from .alerts import RuleSettings
from .settings import Settings
from .types import ConfigError

# Plain env names that ops tooling already uses, mapped onto config paths.
_ENV_ALIASES = {
    "DIALNEXA_API_KEY": ("dialnexa", "api_key"),
    "SLACK_BOT_TOKEN": ("slack", "token"),
    "SLACK_WEBHOOK_URL": ("slack", "webhook_url"),
    "SLACK_APP_TOKEN": ("slack", "app_token"),
    "SLACK_SIGNING_SECRET": ("slack", "signing_secret"),
}


def _format_loc(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            # pydantic puts union/validator tags into the location; keep only field names
            if p in ("function-after", "function-before", "function-plain") or "[" in p:
                continue
            parts.append(("." if parts else "") + p)
    return "".join(parts) or "(top level)"


def _problems(exc: ValidationError) -> list[str]:
    seen: dict[str, str] = {}
    for err in exc.errors(include_url=False, include_input=False):
        loc = _format_loc(tuple(err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see config/watchdog.example.yaml)"
        # a literal-or-list union reports both branches; keep the first message per field
        seen.setdefault(loc, msg)
    return [f"{loc}: {msg}" for loc, msg in seen.items()]


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" line {mark.line + 1}, column {mark.column + 1}:"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{path}:{where} invalid YAML: {problem}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: the top level must be a mapping of sections"])
    return data


def load_settings(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read ``path`` (or ``$WATCHDOG_CONFIG``), apply the environment, validate."""
    env = os.environ if environ is None else environ
    if path is None and env.get("WATCHDOG_CONFIG"):
        path = env["WATCHDOG_CONFIG"]
    data: dict[str, Any] = read_yaml(Path(path)) if path is not None else {}
    for name, (section, key) in _ENV_ALIASES.items():
        value = env.get(name)
        if value and f"WATCHDOG_{section.upper()}__{key.upper()}" not in env:
            sec = data.setdefault(section, {})
            if isinstance(sec, dict) and key not in sec:
                sec[key] = value
    if overrides:
        for dotted, value in overrides.items():
            *parents, last = dotted.split(".")
            node = data
            for p in parents:
                node = node.setdefault(p, {})
            node[last] = value
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_problems(exc)) from None
    except ValueError as exc:  # raised outside pydantic's error collection
        raise ConfigError([str(exc)]) from None
    problems = validate_settings(settings)
    if problems:
        raise ConfigError(problems)
    return settings


def validate_settings(settings: Settings) -> list[str]:
    """Every check that needs more than one field, one line each: the rules against the
    windows and outcomes, and limits between keys."""
    return validate_rules(settings) + _cross_checks(settings)


def _cross_checks(settings: Settings) -> list[str]:
    problems: list[str] = []
    d, p, a = settings.dialnexa, settings.poll, settings.alerts
    if d.backoff_base > d.backoff_max:
        problems.append(
            f"dialnexa.backoff_base: {format_duration(d.backoff_base)} is longer than "
            f"backoff_max ({format_duration(d.backoff_max)})"
        )
    if p.max_pending_age < p.max_call_duration:
        problems.append(
            f"poll.max_pending_age: {format_duration(p.max_pending_age)} is shorter than "
            f"poll.max_call_duration ({format_duration(p.max_call_duration)}): calls would be "
            "dropped before they could end"
        )
    if a.stale_after and a.stale_after < 2 * p.interval:
        problems.append(
            f"alerts.stale_after: {format_duration(a.stale_after)} is shorter than two poll "
            f"intervals ({format_duration(2 * p.interval)}): it would fire between polls; "
            "raise it or set 0 to turn the stale alert off"
        )
    return problems


_NOT_FOR_STOPPED = ("outcome", "window", "threshold", "clear_below", "confidence",
                    "confirm_window")  # fmt: skip


def _stopped_problems(rule: RuleSettings, where: str) -> list[str]:
    """A ``kind: calls_stopped`` rule: the rate fields are not its own."""
    out = [
        f"{where}.{name}: not used by kind calls_stopped (it fires on an agent's silence)"
        for name in _NOT_FOR_STOPPED
        if getattr(rule, name) is not None
    ]
    if rule.scope != "agent":
        out.append(f"{where}.scope: calls_stopped is about one agent; use scope agent")
    for agent, o in rule.overrides.items():
        if o.threshold is not None or o.clear_below is not None:
            out.append(f"{where}.overrides.{agent}: calls_stopped takes min_calls and for only")
    return out


def validate_rules(settings: Settings) -> list[str]:
    """Cross-field problems of ``rules`` against the rest of the config, one line each."""
    windows: Mapping[str, float] = settings.window_seconds
    by_seconds = {s: label for label, s in windows.items()}
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, rule in enumerate(settings.rules):
        where = f"rules[{i}]"
        if rule.name in seen:
            problems.append(f"{where}.name: {rule.name!r} is also rules[{seen[rule.name]}]")
        seen.setdefault(rule.name, i)
        if rule.kind == "calls_stopped":
            problems.extend(_stopped_problems(rule, where))
            continue
        for name in ("outcome", "window", "threshold"):
            if getattr(rule, name) is None:
                problems.append(f"{where}.{name}: required for a rate rule")
        if rule.outcome is None or rule.window is None:
            continue
        if rule.outcome not in settings.outcomes:
            known = ", ".join(sorted(settings.outcomes))
            problems.append(f"{where}.outcome: {rule.outcome!r} is not one of {known}")
        w = parse_duration(rule.window)
        if w not in by_seconds:
            problems.append(
                f"{where}.window: {rule.window} is not a configured window "
                f"({', '.join(windows)}); add it to windows or pick one of those"
            )
        if rule.confirm_window is not None:
            cw = parse_duration(rule.confirm_window)
            if cw not in by_seconds:
                problems.append(
                    f"{where}.confirm_window: {rule.confirm_window} is not a configured window "
                    f"({', '.join(windows)})"
                )
            elif cw <= w:
                problems.append(
                    f"{where}.confirm_window: must be longer than window ({rule.window})"
                )
    return problems
