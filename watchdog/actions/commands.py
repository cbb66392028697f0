"""``/dialnexa``: what each sub-command answers (an ephemeral message). Pure: the service
reads the data (windows, alert states, silences) and these functions turn it into text.

``status AGENT``: the agent's rate per window and outcome, its alert states, a sparkline per
outcome; ``alerts``: what is firing or pending; ``silences``: the active silences, who made
them and until when; ``help``. Every untrusted string is escaped, long lists end with
"...and K more", and the message keeps Slack's limits (``check_blocks``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..alerts.state import AlertState, Silence, State
from ..notify.controls import clock_time
from ..notify.limits import MAX_BLOCKS_TEXT, MAX_TEXT_OBJECT, clip_mrkdwn, fit, units
from ..notify.message import SlackMessage
from ..notify.wording import (
    NAME_CHARS,
    WORD_CHARS,
    and_more,
    code,
    human_duration,
    pct,
    sparkline,
    untrusted,
    utc,
)

Key = tuple[str, str]
MAX_LINES = 40  # lines listed (alerts, silences), then "...and K more"
BUDGET = MAX_BLOCKS_TEXT - 2000
COMMANDS = ("status", "alerts", "silences", "help")

HELP = [
    "*/dialnexa* asks the DialNexa watchdog (only you see the answers):",
    "• `/dialnexa status AGENT`: rates per window and outcome, alert states, sparklines "
    "(`*`: the whole workspace)",
    "• `/dialnexa alerts`: what is firing or pending",
    "• `/dialnexa silences`: active silences, who made them, until when",
    "• `/dialnexa help`: this list",
    "The buttons on a firing message acknowledge, silence or unsilence it.",
]


def parse_command(text: str) -> tuple[str, str]:
    """(sub-command, argument): ``"status agt_1"`` -> ``("status", "agt_1")``; empty text is
    ``help``; the name is case-insensitive, the argument kept as typed."""
    words = text.strip().split(None, 1)
    if not words:
        return "help", ""
    return words[0].lower(), words[1].strip() if len(words) > 1 else ""


def message(lines: Sequence[str], total: int | None = None) -> SlackMessage:
    """Lines as sections of at most 3,000 characters; whatever does not fit the budget ends
    with "...and K more" (``total``: how many lines there were in all)."""
    unshown = (total or len(lines)) - len(lines)
    kept, tail = fit(list(lines), "\n", BUDGET, lambda k: and_more(k + unshown, "\n"))
    if tail:
        kept = [*kept, tail.strip()]
    blocks = []
    chunk: list[str] = []
    size = 0
    for line in kept:
        line = clip_mrkdwn(line, MAX_TEXT_OBJECT)
        add = units(line) + (1 if chunk else 0)
        if chunk and size + add > MAX_TEXT_OBJECT:
            blocks.append(_section("\n".join(chunk)))
            chunk, size, add = [], 0, units(line)
        chunk.append(line)
        size += add
    if chunk:
        blocks.append(_section("\n".join(chunk)))
    return SlackMessage(clip_mrkdwn(kept[0] if kept else "…", 3000), blocks)


def _section(text: str) -> dict[str, object]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}


def render_help(unknown: str | None = None) -> SlackMessage:
    lines = list(HELP)
    if unknown is not None:
        lines.insert(0, f"❓ Unknown command {code(unknown, 40)}.")
    return message(lines)


# ---- status AGENT ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentStatus:
    agent_id: str
    name: str | None
    # (window label, calls, outcome -> ratio or None), shortest window first
    windows: Sequence[tuple[str, int, Mapping[str, float | None]]]
    # (outcome, window, ratios oldest first)
    sparks: Sequence[tuple[str, str, Sequence[float | None]]]
    alerts: Sequence[AlertState] = ()
    silences: Sequence[Silence] = ()
    acked: Mapping[str, tuple[str, float]] = field(default_factory=dict)  # rule -> (by, at)


def _alert_line(
    st: AlertState, silences: Sequence[Silence], acked: tuple[str, float] | None, now: float
) -> str:
    rule = f"*{untrusted(st.rule, WORD_CHARS)}*"
    icon = {State.FIRING: "🔴", State.PENDING: "🟡", State.RESOLVED: "✅"}.get(st.state, "•")
    if st.age is not None:
        rate = f"no successful poll for {human_duration(st.age)}"
    elif st.state is State.RESOLVED:
        rate = f"resolved at {pct(st.resolved_rate)}"
    else:
        rate = f"{pct(st.rate)} of {st.calls} calls (fires at {pct(st.threshold)})"
    since = st.fired_at if st.state is State.FIRING and st.fired_at else st.since
    line = f"{icon} {rule} {st.state.value}: {rate}, since {clock_time(since)} "
    line += f"({human_duration(now - since)})"
    quiet = [s for s in silences if s.matches(st.rule, st.agent_id, now)]
    if quiet:
        s = max(quiet, key=lambda s: (s.until_resolved, s.ends_at))
        until = "until resolved" if s.until_resolved else f"until {clock_time(s.ends_at)}"
        by = f" by {untrusted(s.created_by, NAME_CHARS)}" if s.created_by else ""
        line += f" · 🔕 silenced {until}{by}"
    if acked is not None:
        line += f" · ✅ acknowledged by {untrusted(acked[0], NAME_CHARS)}"
    return line


def render_status(s: AgentStatus, now: float, points: int = 12) -> SlackMessage:
    name = f" ({untrusted(s.name, NAME_CHARS)})" if s.name else ""
    head = f"*Agent {code(s.agent_id)}*{name}"
    if not any(calls for _, calls, _ in s.windows) and not s.alerts:
        longest = s.windows[-1][0] if s.windows else "the longest window"
        return message(
            [
                head,
                f"No settled calls from this agent in {untrusted(longest, WORD_CHARS)} and no "
                "alert about it. Check the id (`/dialnexa alerts` lists the agents alerting).",
            ]
        )
    lines = [head]
    for label, calls, ratios in s.windows:
        parts = ", ".join(f"{untrusted(o, WORD_CHARS)} {pct(r)}" for o, r in ratios.items())
        lines.append(f"• {untrusted(label, WORD_CHARS)}: {calls} calls: {parts}")
    for outcome, window, series in s.sparks:
        spark = sparkline(list(series)[-points:])
        if spark:
            lines.append(
                f"{untrusted(outcome, WORD_CHARS)} rate over {untrusted(window, WORD_CHARS)}, "
                f"oldest to newest: {spark}"
            )
    if s.alerts:
        lines.append("*Alerts*")
        lines += [
            _alert_line(st, s.silences, s.acked.get(st.rule), now)
            for st in sorted(s.alerts, key=lambda a: a.rule)
        ]
    else:
        lines.append("No alert is pending or firing for this agent.")
    return message(lines)


# ---- alerts, silences --------------------------------------------------------------------


def render_alerts(
    states: Sequence[AlertState],
    silences: Sequence[Silence],
    acked: Mapping[Key, tuple[str, float]],
    now: float,
) -> SlackMessage:
    order = {State.FIRING: 0, State.PENDING: 1}
    shown = sorted(
        (s for s in states if s.state in order),
        key=lambda s: (order[s.state], -(s.rate or 0.0), s.rule, s.agent_id),
    )
    if not shown:
        return message(["✅ No alert is firing or pending."])
    firing = sum(1 for s in shown if s.state is State.FIRING)
    lines = [f"*{firing} firing, {len(shown) - firing} pending*"]
    for st in shown[:MAX_LINES]:
        who = "workspace" if st.agent_id == "*" else code(st.agent_id)
        lines.append(f"{who}: " + _alert_line(st, silences, acked.get(st.key), now))
    return message(lines, total=len(shown) + 1)


def render_silences(silences: Sequence[Silence], now: float) -> SlackMessage:
    active = [s for s in silences if s.ends_at > now]
    if not active:
        return message(["🔔 No active silence."])
    lines = [f"*{len(active)} active silence(s)*"]
    for s in active[:MAX_LINES]:
        who = "every agent (workspace)" if s.agent_id == "*" else code(s.agent_id)
        rule = untrusted(s.rule, WORD_CHARS) if s.rule else "every rule"
        until = (
            "until resolved"
            if s.until_resolved
            else f"until {clock_time(s.ends_at)} ({utc(s.ends_at)})"
        )
        by = untrusted(s.created_by, NAME_CHARS) if s.created_by else "?"
        reason = untrusted(s.reason, 200) if s.reason else "-"
        lines.append(
            f"`{s.id}` {who}, {rule}, {until}; by {by} at {clock_time(s.created_at)}: {reason}"
        )
    return message(lines, total=len(active) + 1)
