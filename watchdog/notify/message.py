"""Render notices: Slack Block Kit plus a plain-text fallback, and terminal text. Pure.

Every string that comes from the API or the config (agent ids and names, rule names,
severities, error texts, URLs) is cleaned (control characters and lone surrogates become
U+FFFD), clipped to a display length and escaped (``&``, ``<``, ``>``) in Slack output, so
``<!channel>`` in an agent id is shown, not executed, and cannot inject a link; our own wording
escapes its ``<`` and ``>`` too. Every message keeps Slack's limits (``limits.py``): long lists
end with "... and K more", long texts are cut on a character boundary with an ellipsis, and no
text is ever empty. Messages never carry phone numbers or call metadata: the snapshots they are
built from have no field for them.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from . import AlertSnapshot, Notice
from .limits import (
    MAX_BLOCKS_TEXT,
    MAX_FIELD_TEXT,
    MAX_FIELDS,
    MAX_HEADER_TEXT,
    MAX_TEXT_OBJECT,
    clip,
    clip_mrkdwn,
    fit,
    units,
)

BARS = "▁▂▃▄▅▆▇█"
MAX_GROUP_LINES = 40  # most agents a grouped message lists by name (then "... and K more")
MAX_REPLY_ITEMS = 40  # most agents a thread reply lists by name
# Display lengths of untrusted values, in characters before escaping.
ID_CHARS = 100
NAME_CHARS = 80
WORD_CHARS = 64  # rule, severity, outcome, window
ERROR_CHARS = 300
# Budgets (UTF-16 units) under Slack's limits, with room for the fixed wording around them.
FALLBACK_BUDGET = 3000  # top-level text (Slack: under 4,000)
MEMBERS_BUDGET = MAX_BLOCKS_TEXT - 3000  # member lines of a grouped message, all sections
MAX_LINK = 1000  # a longer dashboard link is left out

# C0/C1 control characters, lone surrogates, bidirectional overrides/isolates
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")


def clean(text: str) -> str:
    """Control characters, lone surrogates and bidi overrides as U+FFFD: nothing that breaks
    a line, the JSON body or the reading order of a message."""
    return _UNSAFE.sub("\ufffd", text)


def escape(text: str) -> str:
    """An untrusted string for mrkdwn: cleaned, and Slack's three control characters escaped
    as its formatting docs ask."""
    return clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def untrusted(text: str, chars: int) -> str:
    """``escape`` after clipping to ``chars`` characters (clipping escaped text could cut an
    entity in half)."""
    return escape(clip(clean(text), chars))


def code(text: str, chars: int = ID_CHARS) -> str:
    """An untrusted identifier as inline code (clipped, escaped; backticks cannot end the
    span)."""
    return "`" + untrusted(text.replace("`", "'"), chars) + "`"


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
    """``template`` with the agent id URL-quoted; None for the workspace, and for an id that
    cannot be quoted (a lone surrogate: no link rather than a link to another agent)."""
    if not template or agent_id == "*":
        return None
    try:
        return template.format(agent_id=quote(agent_id, safe=""))
    except UnicodeEncodeError:
        return None


# ---- facts shared by both renderers ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Style:
    esc: Callable[[str, int], str]  # untrusted text, clipped to so many characters
    ident: Callable[[str], str]  # untrusted identifiers (agent ids)
    lit: Callable[[str], str]  # our own wording that may hold < or >
    bold: Callable[[str], str]
    when: Callable[[float], str]


SLACK = _Style(untrusted, code, escape, lambda s: f"*{s}*", slack_date)
PLAIN = _Style(lambda s, _n: printable(s), printable, str, lambda s: s, utc_seconds)


def _who(a: AlertSnapshot, st: _Style) -> str:
    if a.scope == "workspace":
        return "all agents (workspace)"
    if a.scope == "stale":
        return "DialNexa polling"
    name = f" ({st.esc(a.agent_name, NAME_CHARS)})" if a.agent_name else ""
    return f"agent {st.ident(a.agent_id)}{name}"


def _stale_line(a: AlertSnapshot, st: _Style) -> str:
    if a.state == "resolved":
        line = "DialNexa data is fresh again: polls succeed"
        if a.fired_at is not None and a.resolved_at is not None:
            line += f" (stale for {human_duration(a.resolved_at - a.fired_at)})"
        return line
    age = human_duration(a.age or 0.0)
    line = f"DialNexa data is stale: no successful poll for {age}"
    if a.last_error:
        line += f"; last error: {st.esc(a.last_error, ERROR_CHARS)}"
    return line


def _rate_line(a: AlertSnapshot, st: _Style) -> str:
    """``failed rate 31.0% >= 25.0% over 15m (13 of 42 calls)`` and its resolved form."""
    if a.scope == "stale":
        return _stale_line(a, st)
    outcome = st.esc(a.outcome, WORD_CHARS)
    window = st.esc(a.window, WORD_CHARS)
    if a.state == "resolved":
        if a.resolved_rate is None:
            return f"resolved: {st.esc(a.note or 'no longer evaluated', ERROR_CHARS)}"
        return (
            f"{outcome} rate {st.bold(pct(a.resolved_rate))} {st.lit('<')} "
            f"{pct(a.clear_below)} over {window}"
        )
    if a.rate is not None and a.rate >= a.threshold:
        versus = st.lit(f">= {pct(a.threshold)}")
    else:  # held by hysteresis (or too few calls for a verdict): say so, do not claim >=
        versus = st.lit(f"(fires at >= {pct(a.threshold)}, clears below {pct(a.clear_below)})")
    calls = f"({a.hits} of {a.calls} calls)"
    line = f"{outcome} rate {st.bold(pct(a.rate))} {versus} over {window} {calls}"
    if a.confidence is not None and a.bound is not None:
        line += f", {a.confidence * 100:g}% lower bound {pct(a.bound)}"
    if a.confirm_window:
        line += f", confirmed over {st.esc(a.confirm_window, WORD_CHARS)}"
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


def _and_more(k: int, sep: str = " ") -> str:
    return f"{sep}…and {k} more" if k > 0 else ""


# ---- Slack -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SlackMessage:
    text: str  # fallback for notifications and clients without blocks (mrkdwn, escaped)
    blocks: list[dict[str, Any]]
    # Slack message metadata ({"event_type", "event_payload"}): the incident marker on
    # top-level messages, so a post whose answer was lost can be found again
    metadata: dict[str, Any] | None = None


def _mrkdwn(text: str, limit: int = MAX_TEXT_OBJECT) -> dict[str, Any]:
    # verbatim: Slack links no URL, channel name or mention found in the plain text; our own
    # <!date^...> and <url|label> tokens are still rendered
    return {"type": "mrkdwn", "text": clip_mrkdwn(text, limit), "verbatim": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text)}


def _header(text: str) -> dict[str, Any]:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": clip_mrkdwn(text, MAX_HEADER_TEXT), "emoji": True},
    }


def _icon(word: str) -> str:
    return {"FIRING": "🔴", "RESOLVED": "✅", "STILL FIRING": "🔁"}.get(word, "🔴")


def _rule(a: AlertSnapshot) -> str:
    return untrusted(a.rule, WORD_CHARS)


def _single_blocks(a: AlertSnapshot, word: str, dashboard_url: str | None) -> list[dict[str, Any]]:
    who = _who(a, SLACK)
    lines = [f"*{who[:1].upper()}{who[1:]}*", _rate_line(a, SLACK)]
    if a.state == "resolved":
        tail = _resolved_tail(a)
        if tail:
            lines.append(tail[:1].upper() + tail[1:])
    blocks = [_header(f"{_icon(word)} {word}: {_rule(a)}"), _section("\n".join(lines))]
    fields = [f"*Severity*\n{untrusted(a.severity, WORD_CHARS) or '-'}"]
    if a.fired_at is not None:
        label = "Fired" if a.state == "resolved" else "Firing since"
        fields.append(f"*{label}*\n{slack_date(a.fired_at)}")
    if a.state == "resolved" and a.resolved_at is not None:
        fields.append(f"*Resolved*\n{slack_date(a.resolved_at)}")
    if a.scope != "stale":
        fields.append(
            f"*Threshold*\n{pct(a.threshold)} (clears {escape('<')} {pct(a.clear_below)})"
        )
        if a.peak_rate is not None:
            fields.append(f"*Peak rate*\n{pct(a.peak_rate)}")
    blocks.append(
        {"type": "section", "fields": [_mrkdwn(f, MAX_FIELD_TEXT) for f in fields[:MAX_FIELDS]]}
    )
    context = []
    spark = _spark(a)
    if spark:
        context.append(
            f"{untrusted(a.outcome, WORD_CHARS)} rate over {untrusted(a.window, WORD_CHARS)}, "
            f"oldest to newest: {spark}"
        )
    link = dashboard_link(dashboard_url, a.agent_id)
    if link and len(link) <= MAX_LINK:
        context.append(f"<{escape(link).replace('|', '%7C')}|Open dashboard>")
    if context:
        # the link last, so clipping a very long sparkline never cuts it
        text = "  ·  ".join(context)
        if units(text) > MAX_TEXT_OBJECT and len(context) == 2:
            room = MAX_TEXT_OBJECT - units(context[1]) - 5
            text = clip_mrkdwn(context[0], room) + "  ·  " + context[1]
        blocks.append({"type": "context", "elements": [_mrkdwn(text)]})
    return blocks


def _member_line(a: AlertSnapshot) -> str:
    name = f" ({untrusted(a.agent_name, NAME_CHARS)})" if a.agent_name else ""
    if a.state == "resolved":
        tail = _resolved_tail(a)
        rate = "" if a.resolved_rate is None else f" at {pct(a.resolved_rate)}"
        return f"✅ ~{code(a.agent_id)}~{name} resolved{rate}" + (f", {tail}" if tail else "")
    spark = clip(_spark(a), 60)
    return f"🔴 {code(a.agent_id)}{name}: {SLACK.bold(pct(a.rate))} of {a.calls} calls" + (
        f"  {spark}" if spark else ""
    )


def _sections(lines: Sequence[str]) -> list[dict[str, Any]]:
    """Lines packed into as few sections as Slack's 3,000 characters per text allow."""
    blocks: list[dict[str, Any]] = []
    chunk: list[str] = []
    size = 0
    for line in lines:
        add = units(line) + (1 if chunk else 0)
        if chunk and size + add > MAX_TEXT_OBJECT:
            blocks.append(_section("\n".join(chunk)))
            chunk, size, add = [], 0, units(line)
        chunk.append(line)
        size += add
    if chunk:
        blocks.append(_section("\n".join(chunk)))
    return blocks


def _group_blocks(
    alerts: Sequence[AlertSnapshot], word: str, dashboard_url: str | None
) -> list[dict[str, Any]]:
    first = alerts[0]
    blocks = [
        _header(f"{_icon(word)} {word}: {_rule(first)} · {_count_label(alerts)}"),
        _section(
            f"{untrusted(first.outcome, WORD_CHARS)} rate {escape('>=')} {pct(first.threshold)} "
            f"over {untrusted(first.window, WORD_CHARS)} for {len(alerts)} agents at once "
            f"(severity {untrusted(first.severity, WORD_CHARS)})"
        ),
    ]
    ordered = sorted(alerts, key=lambda a: (a.state == "resolved", -(a.rate or 0.0), a.agent_id))
    shown = [_member_line(a) for a in ordered[:MAX_GROUP_LINES]]
    unshown = len(ordered) - len(shown)
    kept, tail = fit(shown, "\n", MEMBERS_BUDGET, lambda k: _and_more(k + unshown, "\n"))
    blocks += _sections([*kept, tail.strip()] if tail else kept)
    if first.fired_at is not None:
        ctx = f"Firing since {slack_date(min(a.fired_at or first.fired_at for a in alerts))}"
        blocks.append({"type": "context", "elements": [_mrkdwn(ctx)]})
    del dashboard_url  # one link per agent would crowd a grouped message
    return blocks


def _listing(
    prefix: str, items: Sequence[str], total: int, suffix: str = "", budget: int = FALLBACK_BUDGET
) -> str:
    """``prefix`` + as many ``items`` as fit, comma-separated + " ...and K more" + ``suffix``;
    ``total``: how many items there are in all (``items`` may be the first few)."""
    unshown = total - len(items)
    room = budget - units(prefix) - units(suffix)
    kept, tail = fit(items, ", ", room, lambda k: _and_more(k + unshown))
    return clip_mrkdwn(prefix + ", ".join(kept) + tail + suffix, budget)


def _fallback(alerts: Sequence[AlertSnapshot], word: str, group: bool) -> str:
    first = alerts[0]
    if group:
        ids = [code(a.agent_id) for a in alerts[:MAX_REPLY_ITEMS]]
        prefix = f"{word} {_rule(first)}: {_count_label(alerts)}: "
        return _listing(prefix, ids, len(alerts))
    text = f"{word} {_rule(first)}: {_who(first, SLACK)}: {_rate_line(first, SLACK)}"
    return clip_mrkdwn(text, FALLBACK_BUDGET)


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
    budget = MAX_TEXT_OBJECT  # the reply is also the text of its one section
    if notice.kind == "resolved":
        if len(alerts) == 1 and not notice.group:
            a = alerts[0]
            tail = _resolved_tail(a)
            text = f"✅ Resolved{(' ' + tail) if tail else ''}: {_rate_line(a, st)}."
            return clip_mrkdwn(text, budget)
        items = []
        for a in alerts[:MAX_REPLY_ITEMS]:
            rate = "" if a.resolved_rate is None else f" at {pct(a.resolved_rate)}"
            items.append(f"{code(a.agent_id)}{rate}")
        return _listing("✅ Resolved: ", items, len(alerts), ".", budget)
    if notice.kind == "joined":
        items = [f"{code(a.agent_id)} {pct(a.rate)}" for a in alerts[:MAX_REPLY_ITEMS]]
        return _listing("🔴 Also firing now: ", items, len(alerts), ".", budget)
    # repeat
    since = min((a.fired_at for a in alerts if a.fired_at is not None), default=notice.at)
    for_ = human_duration(notice.at - since)
    if len(alerts) == 1 and not notice.group:
        a = alerts[0]
        spark = _spark(a)
        peak = (
            f" (peak {pct(a.peak_rate)})" if a.peak_rate is not None and a.scope != "stale" else ""
        )
        text = f"🔁 Still firing after {for_}: {_rate_line(a, st)}{peak}"
        if spark:
            text = clip_mrkdwn(text, budget - 2 - min(units(spark), 200)) + "  " + clip(spark, 200)
        return clip_mrkdwn(text, budget)
    items = [f"{code(a.agent_id)} {pct(a.rate)}" for a in alerts[:MAX_REPLY_ITEMS]]
    prefix = f"🔁 Still firing after {for_}: {len(alerts)} agents: "
    return _listing(prefix, items, len(alerts), ".", budget)


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
        lines.append(f"{word} {printable(notice.rule)}: {len(alerts)} agents at once")
    for a in alerts:
        sev = f"[{printable(a.severity)}]"
        line = f"{word:<8} {printable(a.rule)} {sev} {_who(a, st)}: {_rate_line(a, st)}"
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
