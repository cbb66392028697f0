"""Command line: ``dialnexa-watchdog run|once|check-config|migrate|demo|...``: parsing and
dispatch only."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType

import yaml

from .. import __version__
from ..config import DEFAULT_PORT, Settings
from ..durations import parse_duration
from .util import (
    PROG,
    ConfigExit,
    add_config_arg,
    config_warnings,
    load_config,
    preflight,
    preflight_state,
)


def _cmd_check_config(args: argparse.Namespace) -> int:
    """The effective config (secrets masked) on stdout; on stderr, what ``run`` would refuse
    on this machine (``preflight``: exit 2) and what is allowed but probably not meant."""
    settings = load_config(args)  # field checks and cross-checks (validate_settings)
    print(yaml.safe_dump(settings.masked(), sort_keys=False), end="")
    for line in config_warnings(settings):
        print(f"{PROG}: warning: {line}", file=sys.stderr)
    problems = preflight(settings)
    if problems:
        print(f"{PROG}: the config is valid, but run would not start here:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 2
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
    problems = preflight(settings)  # what check-config reports: the same checks
    if problems:
        print("dialnexa-watchdog: cannot start:", file=sys.stderr)
        for line in problems:
            print(f"  {line}", file=sys.stderr)
        return 2
    for line in config_warnings(settings):
        logging.getLogger("watchdog.daemon").warning("CONFIG WARNING: %s", line)
    stop = threading.Event()
    _install_signals(stop)
    if settings.state.url is not None:
        return _run_replica(settings, stop)
    clock = SystemClock(stop)
    try:
        app = build(settings, clock, exclusive_state=True)
    except (StateError, ConfigError) as exc:  # e.g. an unwritable state directory
        print(f"dialnexa-watchdog: {exc}", file=sys.stderr)
        return 2
    return run(app.daemon, stop)


def _run_replica(settings: Settings, stop: threading.Event) -> int:
    """``run`` with ``state.url``: one of any number of replicas (``replica.py``)."""
    import os
    import socket

    from ..alerts.store import StateError
    from ..alerts.store.leader import LeaderLock
    from ..alerts.store.open import open_state
    from ..app import build, build_windows
    from ..clock import SystemClock
    from ..endpoints import Served
    from ..replica import Follower, run_replica, watch_leadership
    from ..service import run

    try:  # migrate, and refuse to start on a bad URL, password or schema
        store = open_state(settings.state, time.time())
    except StateError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    url = settings.state.url
    assert url is not None and hasattr(store, "conninfo")
    lock = LeaderLock(store.conninfo, url, f"{socket.gethostname()} pid {os.getpid()}")
    store.close()
    # a standby keeps its windows warm from the recorded history (read-only: no epoch)
    follower = Follower(
        lambda: open_state(settings.state, time.time()), lambda: build_windows(settings)
    )

    def lead(lock: LeaderLock, show: Callable[[Served], None], keep: Callable[[], bool]) -> int:
        phase = threading.Event()  # this term as leader
        app = build(settings, SystemClock(phase), leader=lock, followed=follower.take())
        show(app.daemon)

        def fenced() -> bool:
            a = app.alerts
            return a is not None and (a.delivery.fenced or getattr(a.store, "fenced", False))

        threading.Thread(
            target=watch_leadership,
            args=(lock, phase, stop, fenced),
            name="leadership",
            daemon=True,
        ).start()
        return run(app.daemon, phase, serve=False, final=False)

    return run_replica(lock, settings.metrics.host_port, stop, lead, follower=follower)


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
    directory = app.directory
    try:
        report = app.daemon.backfill()  # the agent directory first: names, call limits
    finally:
        app.close()
    if not report.ok:
        print(f"dialnexa-watchdog: backfill failed: {report.error}", file=sys.stderr)
        return 1
    names = directory.title_of if directory is not None else None
    print(rate_table(app.windows, limit=args.top, name_of=names))
    print(
        f"\n{report.requests} API requests, {report.calls_seen} calls listed, "
        f"{report.pending} still in progress",
    )
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the state store (SQLite at state.path, or PostgreSQL at state.url) up to this
    binary's schema, and say from which version. ``run`` does the same at start; this is
    for a deploy that migrates before rolling replicas (the schema only ever adds, so
    replicas of the previous version keep working on a migrated database)."""
    from ..alerts.store import SCHEMA_VERSION, StateError
    from ..alerts.store.open import open_state

    settings = load_config(args)
    if settings.state.url is None:
        problems = preflight_state(settings)
        if problems:
            for line in problems:
                print(f"{PROG}: {line}", file=sys.stderr)
            return 2
    try:
        store = open_state(settings.state, time.time())
    except StateError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    try:
        found = store.schema_found
        if found < SCHEMA_VERSION:
            print(f"{store.where}: migrated from schema {found} to {SCHEMA_VERSION}")
        else:
            print(f"{store.where}: schema {SCHEMA_VERSION}, up to date")
    finally:
        store.close()
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

    def command(name: str, text: str) -> argparse.ArgumentParser:
        # help: the line in the command list; description: the first line of COMMAND --help
        return sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")

    p = command("run", "run the daemon: poll DialNexa, serve /metrics, alert to Slack")
    add_config_arg(p)
    p.set_defaults(func=_cmd_run)

    p = command("once", "backfill once and print per-agent rates, worst first")
    add_config_arg(p)
    p.add_argument("--top", type=int, default=50, help="agents to show, worst first")
    p.set_defaults(func=_cmd_once)

    p = command("check-config", "validate the config, print it (secrets masked), check this host")
    add_config_arg(p)
    p.set_defaults(func=_cmd_check_config)

    p = command("migrate", "bring the state store's schema up to this version, and say from which")
    add_config_arg(p)
    p.set_defaults(func=_cmd_migrate)

    p = command("demo", "run the daemon against the embedded DialNexa simulator")
    p.add_argument("--duration", default="60s", help="stop after this long (default 60s)")
    p.add_argument(
        "--listen",
        default=f"127.0.0.1:{DEFAULT_PORT}",
        help="where to serve /metrics (default %(default)s)",
    )
    p.set_defaults(func=_cmd_demo)

    from . import alerts, backtest, health

    alerts.register(sub)
    health.register(sub)
    backtest.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # run, once and demo install their own SIGTERM/SIGINT/SIGHUP handlers; put back what the
    # caller had (an embedding process, a test) so a later Ctrl-C is not swallowed
    signals = [getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)]
    saved = {sig: signal.getsignal(sig) for sig in signals}
    try:
        return int(args.func(args))
    except ConfigExit:
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        if threading.current_thread() is threading.main_thread():
            for sig, handler in saved.items():
                if handler is not None:
                    signal.signal(sig, handler)
