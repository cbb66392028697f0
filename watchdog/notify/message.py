"""Render notices: Slack Block Kit plus a plain-text fallback, and terminal text. Pure.

Every string that comes from the API or the config (agent ids and names, error texts,
severity, URLs) goes through ``escape`` in Slack output, so ``<!channel>`` in an agent id is
shown, not executed, and cannot inject a link. Messages never carry phone numbers or call
metadata: the snapshots they are built from have no field for them.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from . import AlertSnapshot, Notice

BARS = "▁▂▃▄▅▆▇█"
MAX_GROUP_LINES = 40
_SECTION_LIMIT = 2900  # Slack: 3000 characters per section text


def escape(text: str) -> str:
    """Slack's three control characters, as its formatting docs ask."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str) -> str:
    """An untrusted string as inline code (escaped; backticks cannot end the span)."""
    return "`" + escape(text.replace("`", "'")) + "`"


def printable(text: str) -> str:
    """For terminals: control characters (escape sequences) shown as U+FFFD."""
    return "".join(
        "\ufffd" if unicodedata.category(c).startswith("C") and c not in "\t" else c for c in text
    )


def pct(rate: float | None) -> str:
    if rate is None:
        return "n/a"
    return f"{rate * 100:.1f}%"


def human_duration(seconds: float) -> str:
    """``23m``, ``1h 5m``, ``2d 3h``, ``45s``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    m, _ = divmod(s, 60)
    if m < 60:
        return f"{m}m"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h {m}m" if m else f"{h}h"
    d, h = divmod(h, 24)
    return f"{d}d {h}h" if h else f"{d}d"


def utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def utc_seconds(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def slack_date(ts: float) -> str:
    """A date Slack shows in the reader's time zone, with a UTC fallback."""
    return f"<!date^{int(ts)}^{{date_short_pretty}} {{time}}|{utc(ts)}>"


def sparkline(values: Sequence[float | None], threshold: float | None = None) -> str:
    """Unicode bars for rates (0..1), scaled to max(values, threshold); ``·`` for no data."""
    nums = [v for v in values if v is not None]
    if not nums:
        return ""
    top = max([*nums, threshold or 0.0])
    out = []
    for v in values:
        if v is None:
            out.append("·")
        elif top <= 0:
            out.append(BARS[0])
        else:
            out.append(BARS[min(len(BARS) - 1, round(v / top * (len(BARS) - 1)))])
    return "".join(out)


def dashboard_link(template: str | None, agent_id: str) -> str | None:
    if not template or agent_id == "*":
        return None
    return template.format(agent_id=quote(agent_id, safe=""))


# ---- facts shared by both renderers ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Style:
    esc: Callable[[str], str]  # untrusted text
    ident: Callable[[str], str]  # untrusted identifiers (agent ids)
    bold: Callable[[str], str]
    when: Callable[[float], str]


SLACK = _Style(escape, code, lambda s: f"*{s}*", slack_date)
PLAIN = _Style(printable, printable, lambda s: s, utc_seconds)


def _who(a: AlertSnapshot, st: _Style) -> str:
    if a.scope == "workspace":
        return "all agents (workspace)"
    if a.scope == "stale":
        return "DialNexa polling"
    name = f" ({st.esc(a.agent_name)})" if a.agent_name else ""
    return f"agent {st.ident(a.agent_id)}{name}"


def _stale_line(a: AlertSnapshot, st: _Style) -> str:
    if a.state == "resolved":
        line = "DialNexa data is fresh again: polls succeed"
        if a.fired_at is not None and a.resolved_at is not None:
            line += f" (stale for {human_duration(a.resolved_at - a.fired_at)})"
        return line
    age = human_duration(a.rate or 0.0)
    line = f"DialNexa data is stale: no successful poll for {age}"
    if a.last_error:
        line += f"; last error: {st.esc(a.last_error)}"
    return line


def _rate_line(a: AlertSnapshot, st: _Style) -> str:
    """``failed rate 31.0% >= 25.0% over 15m (13 of 42 calls)`` and its resolved form."""
    if a.scope == "stale":
        return _stale_line(a, st)
    outcome = st.esc(a.outcome)
    if a.state == "resolved":
        if a.resolved_rate is None:
            return f"resolved: {st.esc(a.note or 'no longer evaluated')}"
        return (
            f"{outcome} rate {st.bold(pct(a.resolved_rate))} < {pct(a.clear_below)} "
            f"over {st.esc(a.window)}"
        )
    if a.rate is not None and a.rate >= a.threshold:
        versus = f">= {pct(a.threshold)}"
    else:  # held by hysteresis (or too few calls for a verdict): say so, do not claim >=
        versus = f"(fires at >= {pct(a.threshold)}, clears below {pct(a.clear_below)})"
    line = (
        f"{outcome} rate {st.bold(pct(a.rate))} {versus} over {st.esc(a.window)} "
        f"({a.hits} of {a.calls} calls)"
    )
    if a.confidence is not None and a.bound is not None:
        line += f", {a.confidence * 100:g}% lower bound {pct(a.bound)}"
    if a.confirm_window:
        line += f", confirmed over {st.esc(a.confirm_window)}"
    return line


def _resolved_tail(a: AlertSnapshot) -> str:
    parts = []
    if a.fired_at is not None and a.resolved_at is not None:
        parts.append(f"after {human_duration(a.resolved_at - a.fired_at)}")
    if a.scope != "stale" and a.peak_rate is not None:
        parts.append(f"peak {pct(a.peak_rate)}")
    return ", ".join(parts)


def _spark(a: AlertSnapshot) -> str:
    if a.scope == "stale":
        return ""
    return sparkline(a.sparkline, a.threshold)


def _header_word(alerts: Sequence[AlertSnapshot]) -> str:
    if alerts and all(a.state == "resolved" for a in alerts):
        return "RESOLVED"
    return "FIRING"


def _count_label(alerts: Sequence[AlertSnapshot]) -> str:
    firing = sum(1 for a in alerts if a.state != "resolved")
    if firing in (0, len(alerts)):
        return f"{len(alerts)} agents"
    return f"{firing} of {len(alerts)} agents firing"


# ---- Slack -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SlackMessage:
    text: str  # fallback for notifications and clients without blocks (mrkdwn, escaped)
    blocks: list[dict[str, Any]]


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def _section(text: str) -> dict[str, Any]:
    if len(text) > _SECTION_LIMIT:
        text = text[: _SECTION_LIMIT - 1] + "…"
    return {"type": "section", "text": _mrkdwn(text)}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150], "emoji": True}}


def _icon(word: str) -> str:
    return {"FIRING": "🔴", "RESOLVED": "✅", "STILL FIRING": "🔁"}.get(word, "🔴")


def _single_blocks(a: AlertSnapshot, word: str, dashboard_url: str | None) -> list[dict[str, Any]]:
    who = _who(a, SLACK)
    lines = [f"*{who[:1].upper()}{who[1:]}*", _rate_line(a, SLACK)]
    if a.state == "resolved":
        tail = _resolved_tail(a)
        if tail:
            lines.append(tail[:1].upper() + tail[1:])
    blocks = [_header(f"{_icon(word)} {word}: {a.rule}"), _section("\n".join(lines))]
    fields = [_mrkdwn(f"*Severity*\n{escape(a.severity)}")]
    if a.fired_at is not None:
        label = "Fired" if a.state == "resolved" else "Firing since"
        fields.append(_mrkdwn(f"*{label}*\n{slack_date(a.fired_at)}"))
    if a.state == "resolved" and a.resolved_at is not None:
        fields.append(_mrkdwn(f"*Resolved*\n{slack_date(a.resolved_at)}"))
    if a.scope != "stale":
        fields.append(_mrkdwn(f"*Threshold*\n{pct(a.threshold)} (clears < {pct(a.clear_below)})"))
        if a.peak_rate is not None:
            fields.append(_mrkdwn(f"*Peak rate*\n{pct(a.peak_rate)}"))
    blocks.append({"type": "section", "fields": fields[:10]})
    context = []
    spark = _spark(a)
    if spark:
        context.append(
            f"{escape(a.outcome)} rate over {escape(a.window)}, oldest to newest: {spark}"
        )
    link = dashboard_link(dashboard_url, a.agent_id)
    if link:
        context.append(f"<{escape(link).replace('|', '%7C')}|Open dashboard>")
    if context:
        blocks.append({"type": "context", "elements": [_mrkdwn("  ·  ".join(context))]})
    return blocks


def _member_line(a: AlertSnapshot) -> str:
    st = SLACK
    name = f" ({escape(a.agent_name)})" if a.agent_name else ""
    if a.state == "resolved":
        tail = _resolved_tail(a)
        rate = "" if a.resolved_rate is None else f" at {pct(a.resolved_rate)}"
        return f"✅ ~{code(a.agent_id)}~{name} resolved{rate}" + (f", {tail}" if tail else "")
    spark = _spark(a)
    return f"🔴 {code(a.agent_id)}{name}: {st.bold(pct(a.rate))} of {a.calls} calls" + (
        f"  {spark}" if spark else ""
    )


def _group_blocks(
    alerts: Sequence[AlertSnapshot], word: str, dashboard_url: str | None
) -> list[dict[str, Any]]:
    first = alerts[0]
    blocks = [
        _header(f"{_icon(word)} {word}: {first.rule} · {_count_label(alerts)}"),
        _section(
            f"{escape(first.outcome)} rate >= {pct(first.threshold)} over "
            f"{escape(first.window)} for {len(alerts)} agents at once "
            f"(severity {escape(first.severity)})"
        ),
    ]
    ordered = sorted(alerts, key=lambda a: (a.state == "resolved", -(a.rate or 0.0), a.agent_id))
    lines = [_member_line(a) for a in ordered[:MAX_GROUP_LINES]]
    if len(ordered) > MAX_GROUP_LINES:
        lines.append(f"…and {len(ordered) - MAX_GROUP_LINES} more")
    chunk: list[str] = []
    for line in lines:
        if sum(len(x) + 1 for x in chunk) + len(line) > _SECTION_LIMIT:
            blocks.append(_section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
    if chunk:
        blocks.append(_section("\n".join(chunk)))
    if first.fired_at is not None:
        ctx = f"Firing since {slack_date(min(a.fired_at or first.fired_at for a in alerts))}"
        blocks.append({"type": "context", "elements": [_mrkdwn(ctx)]})
    del dashboard_url  # one link per agent would crowd a grouped message
    return blocks


def _fallback(alerts: Sequence[AlertSnapshot], word: str, group: bool) -> str:
    first = alerts[0]
    if group:
        ids = ", ".join(code(a.agent_id) for a in alerts[:10])
        more = f" and {len(alerts) - 10} more" if len(alerts) > 10 else ""
        return f"{word} {first.rule}: {_count_label(alerts)}: {ids}{more}"
    return f"{word} {first.rule}: {_who(first, SLACK)}: {_rate_line(first, SLACK)}"


def render_main(
    alerts: Sequence[AlertSnapshot],
    group: bool,
    dashboard_url: str | None,
    word: str | None = None,
) -> SlackMessage:
    """An incident's main message (posted when it fires, edited as it changes)."""
    word = word or _header_word(alerts)
    if group:
        blocks = _group_blocks(alerts, word, dashboard_url)
    else:
        blocks = _single_blocks(alerts[0], word, dashboard_url)
    return SlackMessage(_fallback(alerts, word, group), blocks)


def _reply_text(notice: Notice) -> str:
    alerts = notice.alerts
    st = SLACK
    if notice.kind == "resolved":
        if len(alerts) == 1 and not notice.group:
            a = alerts[0]
            tail = _resolved_tail(a)
            return f"✅ Resolved{(' ' + tail) if tail else ''}: {_rate_line(a, st)}."
        items = []
        for a in alerts:
            rate = "" if a.resolved_rate is None else f" at {pct(a.resolved_rate)}"
            items.append(f"{code(a.agent_id)}{rate}")
        return f"✅ Resolved: {', '.join(items)}."
    if notice.kind == "joined":
        items = [f"{code(a.agent_id)} {pct(a.rate)}" for a in alerts]
        return f"🔴 Also firing now: {', '.join(items)}."
    # repeat
    since = min((a.fired_at for a in alerts if a.fired_at is not None), default=notice.at)
    for_ = human_duration(notice.at - since)
    if len(alerts) == 1 and not notice.group:
        a = alerts[0]
        spark = _spark(a)
        peak = (
            f" (peak {pct(a.peak_rate)})" if a.peak_rate is not None and a.scope != "stale" else ""
        )
        return f"🔁 Still firing after {for_}: {_rate_line(a, st)}{peak}" + (
            f"  {spark}" if spark else ""
        )
    items = [f"{code(a.agent_id)} {pct(a.rate)}" for a in alerts[:MAX_GROUP_LINES]]
    more = f" and {len(alerts) - MAX_GROUP_LINES} more" if len(alerts) > MAX_GROUP_LINES else ""
    return f"🔁 Still firing after {for_}: {len(alerts)} agents: {', '.join(items)}{more}."


def render_slack(notice: Notice, dashboard_url: str | None) -> SlackMessage:
    """The Slack message for a notice, by its ``op``.

    ``post``/``update`` of kind ``main``: the incident's main message. ``reply``: a short
    thread reply. ``post`` of a follow-up kind (webhook mode, which cannot edit or thread):
    a standalone message with the full content.
    """
    if notice.op == "reply":
        text = _reply_text(notice)
        return SlackMessage(text, [_section(text)])
    if notice.kind == "main":
        return render_main(notice.alerts, notice.group, dashboard_url)
    word = {"repeat": "STILL FIRING", "resolved": "RESOLVED", "joined": "FIRING"}[notice.kind]
    return render_main(notice.alerts, notice.group, dashboard_url, word)


# ---- terminal --------------------------------------------------------------------------


def render_text(notice: Notice) -> str:
    """Readable lines for a terminal or log: one per alert, no escaping, no markup."""
    st = PLAIN
    word = {
        "main": "FIRING",
        "repeat": "STILL FIRING",
        "resolved": "RESOLVED",
        "joined": "FIRING",
    }[notice.kind]
    lines = []
    alerts = notice.alerts
    if notice.kind == "main":
        alerts = tuple(a for a in alerts if a.state != "resolved") or alerts
    if notice.group and notice.kind == "main":
        lines.append(f"{word} {notice.rule}: {len(alerts)} agents at once")
    for a in alerts:
        sev = f"[{st.esc(a.severity)}]"
        line = f"{word:<8} {a.rule} {sev} {_who(a, st)}: {_rate_line(a, st)}"
        if a.state == "resolved":
            tail = _resolved_tail(a)
            if tail:
                line += f" ({tail})"
        else:
            spark = _spark(a)
            if spark:
                line += f" {spark}"
            if a.fired_at is not None:
                line += f", firing since {utc_seconds(a.fired_at)}"
        lines.append(line)
    return "\n".join(lines)
