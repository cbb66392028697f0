"""Helpers shared by the sub-commands: the --config flag, loading it with clean errors, and
``preflight``: what ``run`` needs from the machine beyond a valid config."""

from __future__ import annotations

import argparse
import errno
import os
import re
import socket
import sys
from pathlib import Path

from ..config import ConfigError, Settings, StateSettings, load_settings
from ..redact import register_secrets, secrets_in

PROG = "dialnexa-watchdog"
# Slack channel ids: C (public), G (private, older workspaces), D (direct message).
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{8,}")


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="YAML config file (default: $WATCHDOG_CONFIG, else built-in defaults)",
    )


class ConfigExit(Exception):
    """Raised after the config problems were printed; main() turns it into exit code 2."""


def load_config(args: argparse.Namespace) -> Settings:
    """Load the config named by ``--config``; print one line per bad field and raise ConfigExit."""
    try:
        settings = load_settings(getattr(args, "config", None))
    except ConfigError as exc:
        print(f"{PROG}: invalid configuration:", file=sys.stderr)
        for line in exc.problems:
            print(f"  {line}", file=sys.stderr)
        raise ConfigExit from None
    # every secret in the config is masked in whatever this command logs or prints
    register_secrets(*secrets_in(settings))
    return settings


def config_source(args: argparse.Namespace, environ: dict[str, str] | None = None) -> str:
    """Where the config came from, for messages: ``--config FILE``, ``$WATCHDOG_CONFIG=FILE``
    or the built-in defaults (neither given)."""
    env = os.environ if environ is None else environ
    given = getattr(args, "config", None)
    if given:
        return f"--config {given}"
    if env.get("WATCHDOG_CONFIG"):
        return f"$WATCHDOG_CONFIG={env['WATCHDOG_CONFIG']}"
    return "the built-in defaults: no --config given and $WATCHDOG_CONFIG is not set"


# ---- preflight: what run needs beyond a valid config ------------------------------------


def preflight(settings: Settings) -> list[str]:
    """What would stop ``run`` (or make it page nobody) on this machine, one line per problem;
    empty when it can start. Touches the file system (access checks, no writes) and binds
    the metrics port for a moment; reads no network beyond resolving the listen host, and
    with ``state.url``, connecting to PostgreSQL (reads the schema version, writes nothing)."""
    return [
        *_check_api_key(settings),
        *_check_state(settings.state),
        *_check_listen(settings.metrics.host_port),
        *_check_actions_listen(settings),
        *_check_slack(settings),
    ]


def config_warnings(settings: Settings) -> list[str]:
    """What is allowed but probably not meant, one line each (``run`` logs these loudly)."""
    warnings: list[str] = []
    if not settings.rules:
        warnings.append(
            "rules: none configured: the daemon exports rates but never alerts on an agent "
            "(see rules: in config/watchdog.example.yaml)"
        )
    if settings.slack.mode == "none":
        warnings.append(
            "slack: no token or webhook_url: alerts are only logged (set SLACK_BOT_TOKEN or "
            "slack.token_file and slack.channel)"
        )
    if not settings.alerts.stale_after:
        warnings.append("alerts.stale_after: 0: nothing alerts when polling stops")
    return warnings


def _check_api_key(settings: Settings) -> list[str]:
    if settings.dialnexa.api_key is not None:
        return []
    return [
        "dialnexa.api_key: no API key: set DIALNEXA_API_KEY, or dialnexa.api_key_file "
        "(WATCHDOG_DIALNEXA__API_KEY_FILE) naming a file that holds it"
    ]


def preflight_state(settings: Settings) -> list[str]:
    """The state store part of ``preflight``."""
    return _check_state(settings.state)


def _check_state(state: StateSettings) -> list[str]:
    if state.url is None:
        return _check_state_path(state.path)
    from ..alerts.store.postgres import probe

    password = state.password.get_secret_value() if state.password is not None else None
    problem = probe(state.url, password, state.connect_timeout)
    return [] if problem is None else [problem]


def _check_state_path(path: Path) -> list[str]:
    where = path.absolute()
    fix = (
        "create it, or point state.path (or WATCHDOG_STATE__PATH) at a file in a writable "
        "directory, e.g. WATCHDOG_STATE__PATH=./dialnexa-watchdog.sqlite3"
    )
    parent = where.parent
    if not parent.exists():
        return [f"state.path: directory {parent} does not exist: {fix}"]
    if not parent.is_dir():
        return [f"state.path: {parent} is not a directory: {fix}"]
    if not os.access(parent, os.W_OK | os.X_OK):
        return [
            f"state.path: directory {parent} is not writable by this user (SQLite creates "
            f"its journal next to the file): {fix}"
        ]
    if where.is_dir():
        return [f"state.path: {where} is a directory; name a file inside it"]
    if where.exists() and not os.access(where, os.R_OK | os.W_OK):
        return [f"state.path: {where} is not readable and writable by this user"]
    return []


def _check_actions_listen(settings: Settings) -> list[str]:
    """In HTTP mode, the Slack actions listener binds too (and not on the metrics port)."""
    actions = settings.slack.actions
    if actions.mode != "http":
        return []
    if actions.host_port[1] == settings.metrics.host_port[1]:
        return [
            f"slack.actions.listen: {actions.listen} uses the metrics port "
            f"({settings.metrics.listen}); give Slack's listener a port of its own"
        ]
    return _check_listen(
        actions.host_port, "slack.actions.listen", "WATCHDOG_SLACK__ACTIONS__LISTEN"
    )


def _check_listen(
    host_port: tuple[str, int],
    key: str = "metrics.listen",
    env: str = "WATCHDOG_METRICS__LISTEN",
) -> list[str]:
    """Bind the address and close it again, as the HTTP server will."""
    host, port = host_port
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        return [f"{key}: cannot resolve {host!r}: {exc}"]
    family, kind, proto, _, address = infos[0]
    try:
        with socket.socket(family, kind, proto) as sock:
            # as http.server does, so a port in TIME_WAIT from a previous run is not an error
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            why = "the port is in use (another dialnexa-watchdog, or another exporter?)"
        elif exc.errno == errno.EACCES:
            why = "permission denied (ports below 1024 need privileges)"
        elif exc.errno == errno.EADDRNOTAVAIL:
            why = "no network interface has this address"
        else:
            why = exc.strerror or str(exc)
        return [f"{key}: cannot listen on {shown}: {why}; pick another with {key} or {env}"]
    return []


def _check_slack(settings: Settings) -> list[str]:
    slack = settings.slack
    problems: list[str] = []
    if slack.token is not None and slack.webhook_url is not None:
        problems.append(
            "slack: both a bot token and a webhook_url are set; the webhook would be ignored: "
            "keep one"
        )
    if slack.channel is not None:
        if slack.token is None:
            problems.append(
                f"slack.channel: {slack.channel} is set but there is no bot token, so nothing "
                "would be posted there: set SLACK_BOT_TOKEN or slack.token_file (or remove "
                "slack.channel)"
            )
        elif not _CHANNEL_ID.fullmatch(slack.channel):
            problems.append(
                f"slack.channel: {slack.channel!r} is not a channel id: use the id (such as "
                "C0123456789, at the bottom of the channel's details in Slack); messages are "
                "edited and looked up by id"
            )
    return problems
