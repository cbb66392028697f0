"""``healthcheck``: GET /healthz of the daemon that the config describes (``metrics.listen``).

For container HEALTHCHECKs and scripts: the port follows the config (and
``WATCHDOG_METRICS__LISTEN``) instead of being written into the Dockerfile. Exit 0 when the
daemon answers 200, 1 when it answers anything else or cannot be reached, 2 for a bad config.
"""

from __future__ import annotations

import argparse
import sys

import httpx

from ..durations import parse_duration
from .util import PROG, add_config_arg, load_config

# A wildcard listen address is reached through the loopback interface of the same family.
_LOOPBACK = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def healthz_url(host_port: tuple[str, int]) -> str:
    """The URL of /healthz for a ``metrics.listen`` address, as seen from the same host."""
    host, port = host_port
    host = _LOOPBACK.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "healthcheck",
        help="check that the daemon on metrics.listen answers /healthz",
        description="Check that the daemon on metrics.listen answers /healthz.",
    )
    add_config_arg(p)
    p.add_argument(
        "--timeout",
        default="4s",
        metavar="DURATION",
        help="give up after this long (default %(default)s)",
    )
    p.set_defaults(func=cmd_healthcheck)


def cmd_healthcheck(args: argparse.Namespace) -> int:
    settings = load_config(args)
    try:
        timeout = parse_duration(args.timeout)
    except ValueError as exc:
        print(f"{PROG}: --timeout: {exc}", file=sys.stderr)
        return 2
    url = healthz_url(settings.metrics.host_port)
    try:
        response = httpx.get(url, timeout=max(timeout, 0.1))
    except httpx.TimeoutException:
        print(f"{PROG}: unhealthy: {url} did not answer within {args.timeout}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        why = str(exc) or type(exc).__name__
        print(f"{PROG}: unhealthy: cannot reach {url}: {why}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(f"{PROG}: unhealthy: {url} answered {response.status_code}", file=sys.stderr)
        return 1
    print(f"ok: {url} answered 200")
    return 0
