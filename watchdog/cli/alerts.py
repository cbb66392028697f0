"""Sub-commands about alerts: ``slack-test``, ``silence add|list|remove``, ``alerts``.

``slack-test`` also checks Slack actions when they are on: the app-level token and a Socket
Mode connection (socket mode), the user groups of ``allowed_usergroups``, and the team.

``register(subparsers)`` adds them to the main parser; each sets ``func`` to a function that
takes the parsed ``argparse.Namespace`` and returns the exit code (0 ok, 1 failed, 2 bad
usage, config or state file).
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

from ..alerts.incidents import Incident
from ..alerts.state import STALE_RULE, AlertState, Silence, State
from ..alerts.store import StateError
from ..alerts.store.sql import SqlStore
from ..clock import SystemClock
from ..config import Settings
from ..durations import parse_duration
from ..ingest.directory import saved_titles
from ..model import WORKSPACE_AGENT
from ..notify import SendResult
from ..notify.message import SlackMessage, escape, human_duration, pct, utc
from ..notify.slack import (
    SlackBotNotifier,
    SlackWebhookNotifier,
    describe,
    incident_metadata,
)
from ..notify.wording import printable
from .util import PROG, ConfigExit, add_config_arg, config_source, load_config


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "slack-test",
        help="post a test message to Slack and say exactly what is wrong if it cannot",
        description="Post a test message to Slack and say exactly what is wrong if it cannot.",
    )
    add_config_arg(p)
    p.set_defaults(func=cmd_slack_test)

    text = "silence alerts for an agent: still evaluated and exported, not posted"
    p = subparsers.add_parser("silence", help=text, description=text[0].upper() + text[1:] + ".")
    sub = p.add_subparsers(dest="silence_command", metavar="{add,list,remove}", required=True)
    add = sub.add_parser(
        "add",
        help="add a silence",
        description="Add a silence to the running daemon's state file.",
    )
    add_config_arg(add)
    add.add_argument(
        "--agent",
        required=True,
        metavar="ID",
        help=f'agent id; "{WORKSPACE_AGENT}" for workspace-wide and stale alerts',
    )
    add.add_argument("--rule", metavar="NAME", help="only this rule (default: every rule)")
    add.add_argument(
        "--for", dest="duration", required=True, metavar="DURATION", help="e.g. 30m, 2h, 1d"
    )
    add.add_argument("--reason", required=True, metavar="TEXT", help="why (shown in the list)")
    add.set_defaults(func=cmd_silence_add)
    lst = sub.add_parser(
        "list", help="list active silences", description="List the active silences."
    )
    add_config_arg(lst)
    lst.add_argument("--all", action="store_true", help="include expired silences")
    lst.set_defaults(func=cmd_silence_list)
    rm = sub.add_parser(
        "remove", help="remove a silence by its id", description="Remove a silence by its id."
    )
    add_config_arg(rm)
    rm.add_argument("id", type=int, metavar="ID")
    rm.set_defaults(func=cmd_silence_remove)

    p = subparsers.add_parser(
        "alerts",
        help="show the current alert states as a table",
        description="Show the running daemon's alert states as a table.",
    )
    add_config_arg(p)
    p.set_defaults(func=cmd_alerts)


# ---- helpers ---------------------------------------------------------------------------


def _err(text: str) -> None:
    print(f"{PROG}: {text}", file=sys.stderr)


@contextmanager
def _open_store(settings: Settings, args: argparse.Namespace) -> Iterator[SqlStore]:
    """The daemon's existing state store, closed afterwards. A missing file is not created
    (that would show "no alerts" while the daemon's own file has them): it is printed with
    where the config came from, and exits 2, as does a StateError."""
    path = settings.state.path
    if settings.state.url is None and not path.exists():
        _err(
            f"no state file at {path.absolute()} (state.path from {config_source(args)}).\n"
            "  This command reads the running daemon's state: pass the daemon's config with "
            "--config FILE (or set $WATCHDOG_CONFIG), or point WATCHDOG_STATE__PATH at its "
            "state file. Nothing was created."
        )
        raise ConfigExit
    from ..alerts.store.open import open_state

    try:
        store = open_state(settings.state, time.time(), repair=False)
    except StateError as exc:
        _err(str(exc))
        raise ConfigExit from None
    try:
        yield store
    finally:
        store.close()


def table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    """Left-aligned columns, two spaces apart; the first row is the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")


def _problem(result: SendResult) -> str:
    fix = f"\n  fix: {result.fix}" if result.fix else ""
    return f"Slack answered {result.error} ({result.reason}){fix}"


# ---- slack-test ------------------------------------------------------------------------


def cmd_slack_test(args: argparse.Namespace) -> int:
    settings = load_config(args)
    slack = settings.slack
    now = SystemClock().now()
    text = (
        f"dialnexa-watchdog test message ({escape(utc(now))}): alerts will arrive here. "
        "No action needed."
    )
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    unreachable = ("timeout", "network_error")  # no answer from Slack: nothing was checked
    if slack.token is not None and slack.channel:
        bot = SlackBotNotifier(
            slack.token.get_secret_value(), slack.channel, slack.api_url, slack.timeout
        )
        result, who = bot.auth_test()
        if result.reason in unreachable:
            _err(
                f"{describe(result)}\n  the token was not checked: fix the network (DNS, "
                "proxy, firewall, TLS) or slack.api_url first"
            )
            return 1
        if not result.ok:
            _err(f"the bot token does not work: {describe(result)}")
            return 1
        print(f"token ok: bot user {who.get('user', '?')} in workspace {who.get('team', '?')}")
        marker = f"slack-test/{now:.6f}"
        result = bot.post(SlackMessage(text, blocks, incident_metadata(marker, "main", now)))
        if not result.ok:
            _err(f"cannot post to {slack.channel}: {describe(result)}")
            return 1
        where = result.ref.channel if result.ref else slack.channel
        ts = f" (ts {result.ref.ts})" if result.ref else ""
        print(f"ok: posted a test message to {where}{ts}")
        found = bot.find_posted(marker, now)
        if found.ok and found.ref is not None:
            print(
                "ok: the bot reads the channel's history, so a post Slack answers too late "
                "is found again instead of being posted twice"
            )
        else:
            why = describe(found) if not found.ok else "the test message was not found"
            _err(
                f"warning: cannot look posts up in {slack.channel}'s history: {why}\n"
                "  alerts still arrive, but when Slack answers a post too late it may be "
                "posted twice (add the channels:history scope, groups:history for a private "
                "channel)"
            )
        return _check_actions(settings, who)
    if slack.webhook_url is not None:
        hook = SlackWebhookNotifier(slack.webhook_url.get_secret_value(), slack.timeout)
        result = hook.post(SlackMessage(text, blocks))
        if result.reason in unreachable:
            _err(f"{describe(result)}\n  the webhook was not checked: fix the network first")
            return 1
        if not result.ok:
            _err(f"the webhook does not work: {describe(result)}")
            return 1
        print("ok: posted a test message through the incoming webhook")
        print(
            "note: a webhook cannot read the channel, so when Slack answers a post too late "
            "it may be posted twice; a bot token with channels:history avoids that"
        )
        return 0
    _err(
        "Slack is not configured: set slack.token (or SLACK_BOT_TOKEN) and slack.channel, "
        "or slack.webhook_url (or SLACK_WEBHOOK_URL)"
    )
    return 2


def _check_actions(settings: Settings, who: dict[str, object]) -> int:
    """The Slack actions part of ``slack-test``: 0 when it works (or is off), else 1."""
    from ..actions.check import check_actions

    team = who.get("team_id")
    failed = 0
    for ok, line in check_actions(settings, team if isinstance(team, str) else None):
        if ok:
            print(line)
        else:
            _err(line)
            failed = 1
    return failed


# ---- silences --------------------------------------------------------------------------


def _who() -> str:
    """Who runs the CLI, for a silence's ``created_by``."""
    try:
        return f"{getpass.getuser()} (cli)"
    except (KeyError, OSError):  # no user name for this uid (a container)
        return "cli"


def cmd_silence_add(args: argparse.Namespace) -> int:
    settings = load_config(args)
    try:
        seconds = parse_duration(args.duration)
    except ValueError as exc:
        _err(f"--for: {exc}")
        return 2
    if seconds <= 0:
        _err("--for: must be longer than 0s")
        return 2
    agent = str(args.agent).strip()
    if not agent:
        _err("--agent: must not be empty")
        return 2
    rule = args.rule
    names = [r.name for r in settings.rules] + [STALE_RULE]
    if rule is not None and rule not in names:
        _err(f"--rule: no rule named {rule!r} (rules: {', '.join(names)})")
        return 2
    with _open_store(settings, args) as store:
        now = SystemClock().now()
        s = store.add_silence(agent, rule, now, now + seconds, args.reason, _who())
    which = f"rule {rule}" if rule else "every rule"
    print(f"silence {s.id} added: agent {agent}, {which}, until {utc(s.ends_at)}")
    return 0


def cmd_silence_list(args: argparse.Namespace) -> int:
    settings = load_config(args)
    now = SystemClock().now()
    with _open_store(settings, args) as store:
        silences = store.silences(None if args.all else now)
    if not silences:
        print("no silences" if args.all else "no active silences")
        return 0
    rows = [["ID", "AGENT", "RULE", "UNTIL", "LEFT", "BY", "CREATED", "REASON"]]
    for s in silences:
        left = human_duration(s.ends_at - now) if s.ends_at > now else "expired"
        until = utc(s.ends_at)
        if s.until_resolved and s.ends_at > now:
            until = f"resolved (at most {until})"
        rows.append(
            [
                str(s.id),
                s.agent_id,
                s.rule or "*",
                until,
                left,
                s.created_by or "-",
                utc(s.created_at),
                s.reason,
            ]
        )
    table(rows, sys.stdout)
    return 0


def cmd_silence_remove(args: argparse.Namespace) -> int:
    settings = load_config(args)
    with _open_store(settings, args) as store:
        removed = store.remove_silence(args.id)
    if not removed:
        _err(f"no silence with id {args.id} (see: silence list --all)")
        return 1
    print(f"silence {args.id} removed")
    return 0


# ---- alerts ----------------------------------------------------------------------------


def _rate(st: AlertState) -> str:
    if st.age is not None:
        return f"age {human_duration(st.age)}"
    if st.state is State.RESOLVED:
        return pct(st.resolved_rate)
    return pct(st.rate)


def _silenced(silences: Sequence[Silence], st: AlertState, now: float) -> str:
    """``until 2025-06-15 16:07 UTC by @bob`` for the longest silence that applies, or -."""
    match = [s for s in silences if s.matches(st.rule, st.agent_id, now)]
    if not match:
        return "-"
    s = max(match, key=lambda s: (s.until_resolved, s.ends_at))
    until = "until resolved" if s.until_resolved else f"until {utc(s.ends_at)}"
    return f"{until} by {s.created_by}" if s.created_by else until


def _baseline(st: AlertState) -> str:
    """Sequential rules: the agent's normal rate and where it comes from
    (``4.0% learned``, ``5.0% fallback: too little history``); window rules: -."""
    if st.baseline is None:
        return "-"
    return f"{pct(st.baseline)} {st.baseline_source or 'configured'}"


def _acked(inc: Incident | None) -> str:
    if inc is None or not inc.acked_by or inc.acked_at is None:
        return "-"
    return f"{inc.acked_by} at {utc(inc.acked_at)}"


def _agent(agent_id: str, names: dict[str, str]) -> str:
    """``Customer Support Bot (agt_k7m2nq9xw4p8)``, or the id alone; for a terminal."""
    name = names.get(agent_id)
    return f"{printable(name[:60])} ({agent_id})" if name else agent_id


def cmd_alerts(args: argparse.Namespace) -> int:
    settings = load_config(args)
    now = SystemClock().now()
    with _open_store(settings, args) as store:
        states, incident_of = store.load_states()
        incidents = store.load_incidents(open_only=True)
        silences = store.silences(now)
        waiting = store.pending_count()
        names = saved_titles(store) | dict(settings.slack.agent_names)
    order = {State.FIRING: 0, State.PENDING: 1, State.RESOLVED: 2, State.INACTIVE: 3}
    shown = sorted(states.values(), key=lambda s: (order[s.state], s.rule, s.agent_id))
    if not shown:
        print("no alerts are pending or firing")
    else:
        rows = [
            [
                "RULE",
                "AGENT",
                "STATE",
                "SEVERITY",
                "RATE",
                "THRESHOLD",
                "CALLS",
                "SINCE",
                "SILENCED",
                "ACKED",
                "BASELINE",
            ]
        ]
        for st in shown:
            threshold = (
                human_duration(st.stale_after) if st.stale_after is not None else pct(st.threshold)
            )
            since = st.fired_at if st.state is State.FIRING and st.fired_at else st.since
            rows.append(
                [
                    st.rule,
                    _agent(st.agent_id, names),
                    st.state.value,
                    st.severity,
                    _rate(st),
                    threshold,
                    str(st.calls),
                    f"{utc(since)} ({human_duration(now - since)} ago)",
                    _silenced(silences, st, now),
                    _acked(incidents.get(incident_of.get(st.key, ""))),
                    _baseline(st),
                ]
            )
        table(rows, sys.stdout)
    if waiting:
        print(f"{waiting} notification(s) waiting in the outbox")
    return 0
