"""Command line: ``dialnexa-watchdog run|once|check-config|demo|...``. Parsing and dispatch only."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

import yaml

from .. import __version__
from ..durations import parse_duration
from .util import ConfigExit, add_config_arg, load_config


def _cmd_check_config(args: argparse.Namespace) -> int:
    settings = load_config(args)  # includes the rules' cross-checks (validate_rules)
    print(yaml.safe_dump(settings.masked(), sort_keys=False), end="")
    print("# config OK", file=sys.stderr)
    return 0


def _install_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    def hangup(signum: int, frame: FrameType | None) -> None:
        # systemd's ExecReload and terminals send SIGHUP; dying silently on it is worse
        # than ignoring it
        logging.getLogger("watchdog.daemon").warning(
            "SIGHUP received: reloading the config is not supported; restart to apply it"
        )

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, hangup)


NO_KEY = "no API key: set DIALNEXA_API_KEY or dialnexa.api_key_file"


def _cmd_run(args: argparse.Namespace) -> int:
    from ..alerts.store import StateError
    from ..app import build
    from ..clock import SystemClock
    from ..config import ConfigError
    from ..logs import setup_logging
    from ..service import run

    settings = load_config(args)
    setup_logging(settings.log.level, settings.log.format)
    if settings.dialnexa.api_key is None:
        print(f"dialnexa-watchdog: {NO_KEY}", file=sys.stderr)
        return 2
    if not settings.rules:
        logging.getLogger("watchdog.daemon").warning(
            "NO ALERT RULES CONFIGURED: the daemon will export metrics and the stale check "
            "but page on nothing; add rules: (see config/watchdog.example.yaml)"
        )
    stop = threading.Event()
    _install_signals(stop)
    clock = SystemClock(stop)
    try:
        app = build(settings, clock, exclusive_state=True)
    except (StateError, ConfigError) as exc:  # e.g. an unwritable state directory
        print(f"dialnexa-watchdog: {exc}", file=sys.stderr)
        return 2
    return run(app.daemon, stop)


def _cmd_once(args: argparse.Namespace) -> int:
    from ..app import build
    from ..clock import SystemClock
    from ..logs import setup_logging
    from ..report import rate_table

    settings = load_config(args)
    setup_logging(settings.log.level, "text" if sys.stderr.isatty() else settings.log.format)
    if settings.dialnexa.api_key is None:
        print(f"dialnexa-watchdog: {NO_KEY}", file=sys.stderr)
        return 2
    stop = threading.Event()
    _install_signals(stop)
    app = build(settings, SystemClock(stop), alerting=False)
    try:
        report = app.daemon.backfill()
    finally:
        app.close()
    if not report.ok:
        print(f"dialnexa-watchdog: backfill failed: {report.error}", file=sys.stderr)
        return 1
    print(rate_table(app.windows, limit=args.top))
    print(
        f"\n{report.requests} API requests, {report.calls_seen} calls listed, "
        f"{report.pending} still in progress",
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    return run_demo(parse_duration(args.duration), listen=args.listen)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dialnexa-watchdog",
        description="Per-agent health alerting for DialNexa voice agents.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="run the daemon")
    add_config_arg(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("once", help="backfill once and print per-agent rates")
    add_config_arg(p)
    p.add_argument("--top", type=int, default=50, help="agents to show, worst first")
    p.set_defaults(func=_cmd_once)

    p = sub.add_parser("check-config", help="validate and print the effective config")
    add_config_arg(p)
    p.set_defaults(func=_cmd_check_config)

    p = sub.add_parser("demo", help="run the daemon against the embedded DialNexa simulator")
    p.add_argument("--duration", default="60s", help="stop after this long (default 60s)")
    p.add_argument(
        "--listen", default="127.0.0.1:9811", help="where to serve /metrics (default %(default)s)"
    )
    p.set_defaults(func=_cmd_demo)

    from .alerts import register

    register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except ConfigExit:
        return 2
    except KeyboardInterrupt:
        return 130
