"""``dialnexa-watchdog backtest``: what the configured rules (and a candidate rule set)
would have paged over a past span, replayed through the daemon's own windows, rules and
incident planner (``backtest/``). Reads the history the daemon recorded in its state store
(the SQLite file, or PostgreSQL with ``state.url``);
the calls of any earlier part of the span come from the API (``backtest/fetch.py``).

Exit codes: 0 the report was made; 1 nothing to report (no calls in the span) or a fetch
stopped (what was fetched is kept); 2 bad usage, config or candidate file."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from ..config import ConfigError, Settings, load_settings
from ..config.load import read_yaml
from ..durations import format_duration, parse_duration
from .util import PROG, ConfigExit, add_config_arg, load_config

HELP = "replay past calls through the rules: what they (or --rules) would have paged"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("backtest", help=HELP, description=HELP[0].upper() + HELP[1:] + ".")
    add_config_arg(p)
    p.add_argument(
        "--rules",
        metavar="CANDIDATE.yaml",
        help="a file with a rules: list to compare with the configured rules, side by side",
    )
    p.add_argument(
        "--since",
        default="7d",
        help="start of the span: a duration back from now (7d, 36h) or a UTC time "
        "(2026-11-24T00:00); default %(default)s",
    )
    p.add_argument(
        "--until", default=None, help="end of the span (same forms as --since); default now"
    )
    p.add_argument("--agents", metavar="ID,...", help="only these agents (comma-separated)")
    p.add_argument("--json", metavar="FILE", help="write the whole report as JSON (see README)")
    p.add_argument("--html", metavar="FILE", help="write a self-contained HTML report")
    p.add_argument(
        "--yes", "-y", action="store_true", help="fetch from the API without asking first"
    )
    p.add_argument(
        "--cache",
        metavar="DIR",
        help="where fetched pages are kept (default: <state file>.backtest-cache/)",
    )
    p.add_argument("--limit", type=int, default=20, help="incidents listed per rule set")
    p.set_defaults(func=cmd_backtest)


def parse_time(value: str, now: float, flag: str) -> float:
    """A duration back from ``now`` or a UTC ISO time; ConfigExit with a message if neither."""
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        print(
            f"{PROG}: {flag}: {value!r} is neither a duration (7d, 36h) nor a time "
            "(2026-11-24T00:00, UTC)",
            file=sys.stderr,
        )
        raise ConfigExit from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.timestamp()


def load_candidate(args: argparse.Namespace, path: str) -> Settings:
    """The configuration with its rules replaced by ``path``'s ``rules:``, checked as
    ``check-config`` checks a config (one line per bad field; ConfigExit)."""
    problems: list[str]
    try:
        data = read_yaml(Path(path))
        extra = sorted(k for k in data if k != "rules")
        problems = [
            f"{k}: unknown key in a candidate rules file (only rules: is read)" for k in extra
        ]
        if "rules" not in data:
            problems.append("rules: missing (the file must hold a rules: list, as the config)")
        if not problems:
            return load_settings(getattr(args, "config", None), overrides={"rules": data["rules"]})
    except ConfigError as exc:
        problems = exc.problems
    print(f"{PROG}: invalid candidate rules in {path}:", file=sys.stderr)
    for line in problems:
        print(f"  {line}", file=sys.stderr)
    raise ConfigExit


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def cmd_backtest(args: argparse.Namespace) -> int:
    from ..alerts.store import StateError
    from ..alerts.store.open import open_state
    from ..alerts.store.sql import SqlStore
    from ..backtest.runner import RuleSet, backtest, from_history

    settings = load_config(args)
    if args.html:
        from ..backtest.html import MISSING, available

        if not available():
            print(f"{PROG}: {MISSING}", file=sys.stderr)
            return 2
    sets = [RuleSet("config", settings.rules, getattr(args, "config", None))]
    if args.rules:
        sets.append(RuleSet("candidate", load_candidate(args, args.rules).rules, args.rules))
    now = time.time()
    start = parse_time(args.since, now, "--since")
    end = parse_time(args.until, now, "--until") if args.until else now
    if end <= start:
        print(f"{PROG}: --until must be after --since", file=sys.stderr)
        return 2
    agents = None
    if args.agents:
        agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    if not any(s.rules for s in sets):
        print(f"{PROG}: no rules to backtest: rules: is empty (and no --rules)", file=sys.stderr)
        return 2
    # the configured backend (SQLite at state.path, or PostgreSQL at state.url), shared with
    # a running daemon (never its lock), and never repaired (a damaged file is an error)
    path = settings.state.path
    where = str(path)
    bounds = None
    store: SqlStore | None = None
    if settings.state.url is not None or path.exists():
        try:
            store = open_state(settings.state, now, repair=False)
            where = store.where
            bounds = store.history_bounds()
        except StateError as exc:
            if store is not None:
                store.close()
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 2
    try:
        recorded_from = bounds[0] if bounds is not None else None
        if recorded_from is None or start < recorded_from - settings.poll.interval:
            missing_until = end if recorded_from is None else min(end, recorded_from)
            what = (
                f"nothing is recorded in {where}"
                if bounds is None
                else f"{where} holds history from {_when(bounds[0])} to {_when(bounds[1])}"
            )
            if settings.dialnexa.api_key is None:
                print(
                    f"{PROG}: the span starts {_when(start)}, but {what}: the "
                    f"{format_duration(round(missing_until - start))} from {_when(start)} "
                    f"to {_when(missing_until)} would come from the API, and there is no API "
                    "key (set DIALNEXA_API_KEY or dialnexa.api_key_file), or start later "
                    "(--since)",
                    file=sys.stderr,
                )
                return 2
            from .backtest_api import fetch_and_replay

            return fetch_and_replay(args, settings, sets, store, bounds, start, end, agents)
        assert store is not None
        cycles = from_history(store, start, end)
        outcome = backtest(settings, sets, cycles, source="recorded", agents=agents)
        from .backtest_out import finish

        return finish(args, outcome.report, settings, cycles, agents)
    finally:
        if store is not None:
            store.close()
