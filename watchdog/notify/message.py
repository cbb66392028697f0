"""Render notices: Slack Block Kit plus a plain-text fallback, and terminal text. Pure.

Every string that comes from the API or the config (agent ids and names, rule names,
severities, error texts, URLs) is cleaned (control characters and lone surrogates become
U+FFFD), clipped to a display length and escaped (``&``, ``<``, ``>``) in Slack output, so
``<!channel>`` in an agent id is shown, not executed, and cannot inject a link; our own wording
escapes its ``<`` and ``>`` too. Every message keeps Slack's limits (``limits.py``): long lists
end with "... and K more", long texts are cut on a character boundary with an ellipsis, and no
text is ever empty. Messages never carry phone numbers or call metadata: the snapshots they are
built from have no field for them.

The shared wording (escaping, rates, durations, dates, the alert lines) is in ``wording.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import AlertSnapshot, Notice
from .controls import ack_line, control_blocks, controls_units, silence_line, silence_words
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
from .wording import (
    NAME_CHARS,
    PLAIN,
    SLACK,
    WORD_CHARS,
    and_more,
    code,
    count_label,
    dashboard_link,
    escape,
    header_word,
    headline,
    human_duration,
    pct,
    printable,
    rate_line,
    resolved_tail,
    slack_date,
    spark_of,
    untrusted,
    utc,
    utc_seconds,
    who_of,
)

MAX_GROUP_LINES = 40  # most agents a grouped message lists by name (then "... and K more")
MAX_REPLY_ITEMS = 40  # most agents a thread reply lists by name
# Budgets (UTF-16 units) under Slack's limits, with room for the fixed wording around them.
FALLBACK_BUDGET = 3000  # top-level text (Slack: under 4,000)
MEMBERS_BUDGET = MAX_BLOCKS_TEXT - 3000  # member lines of a grouped message, all sections
MAX_LINK = 1000  # a longer dashboard link is left out

# ---- Slack -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Marks:
    """What a main message shows besides its alerts: its buttons (Slack actions are on) and
    who acknowledged it."""

    incident: str
    buttons: bool = False
    acked_by: str | None = None
    acked_at: float | None = None


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
    who = who_of(a, SLACK)
    lines = [f"*{who[:1].upper()}{who[1:]}*", rate_line(a, SLACK)]
    if a.state == "resolved":
        tail = resolved_tail(a)
        if tail:
            lines.append(tail[:1].upper() + tail[1:])
    blocks = [_header(f"{_icon(word)} {word}: {_rule(a)}"), _section("\n".join(lines))]
    fields = [f"*Severity*\n{untrusted(a.severity, WORD_CHARS) or '-'}"]
    if a.fired_at is not None:
        label = "Fired" if a.state == "resolved" else "Firing since"
        fields.append(f"*{label}*\n{slack_date(a.fired_at)}")
    if a.state == "resolved" and a.resolved_at is not None:
        fields.append(f"*Resolved*\n{slack_date(a.resolved_at)}")
    if a.scope == "stopped":
        fields.append(f"*Fires after*\n{human_duration(a.stale_after or 0.0)} without a call")
    elif a.scope != "stale":
        fields.append(
            f"*Threshold*\n{pct(a.threshold)} (clears {escape('<')} {pct(a.clear_below)})"
        )
        if a.peak_rate is not None:
            fields.append(f"*Peak rate*\n{pct(a.peak_rate)}")
    blocks.append(
        {"type": "section", "fields": [_mrkdwn(f, MAX_FIELD_TEXT) for f in fields[:MAX_FIELDS]]}
    )
    context = []
    spark = spark_of(a)
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
    # "Customer Support Bot (`agt_k7m2nq9xw4p8`)", or the id alone
    name = f"{untrusted(a.agent_name, NAME_CHARS)} " if a.agent_name else ""
    if a.state == "resolved":
        tail = resolved_tail(a)
        rate = "" if a.resolved_rate is None else f" at {pct(a.resolved_rate)}"
        who = f"{name}(~{code(a.agent_id)}~)" if name else f"~{code(a.agent_id)}~"
        return f"✅ {who} resolved{rate}" + (f", {tail}" if tail else "")
    spark = clip(spark_of(a), 60)
    quiet = " 🔕" if a.silenced_until is not None else ""
    who = f"{name}({code(a.agent_id)})" if name else code(a.agent_id)
    what = SLACK.bold(headline(a)) + ("" if a.scope == "stopped" else f" of {a.calls} calls")
    return f"🔴 {who}{quiet}: {what}" + (f"  {spark}" if spark else "")


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
    alerts: Sequence[AlertSnapshot], word: str, dashboard_url: str | None, reserve: int = 0
) -> list[dict[str, Any]]:
    """``reserve``: units of block text the caller adds (status lines, controls)."""
    first = alerts[0]
    blocks = [
        _header(f"{_icon(word)} {word}: {_rule(first)} · {count_label(alerts)}"),
        _section(
            f"{untrusted(first.outcome, WORD_CHARS)} rate {escape('>=')} {pct(first.threshold)} "
            f"over {untrusted(first.window, WORD_CHARS)} for {len(alerts)} agents at once "
            f"(severity {untrusted(first.severity, WORD_CHARS)})"
        ),
    ]
    ordered = sorted(alerts, key=lambda a: (a.state == "resolved", -(a.rate or 0.0), a.agent_id))
    shown = [_member_line(a) for a in ordered[:MAX_GROUP_LINES]]
    unshown = len(ordered) - len(shown)
    budget = MEMBERS_BUDGET - reserve
    kept, tail = fit(shown, "\n", budget, lambda k: and_more(k + unshown, "\n"))
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
    kept, tail = fit(items, ", ", room, lambda k: and_more(k + unshown))
    return clip_mrkdwn(prefix + ", ".join(kept) + tail + suffix, budget)


def _fallback(alerts: Sequence[AlertSnapshot], word: str, group: bool) -> str:
    first = alerts[0]
    if group:
        ids = [code(a.agent_id) for a in alerts[:MAX_REPLY_ITEMS]]
        prefix = f"{word} {_rule(first)}: {count_label(alerts)}: "
        return _listing(prefix, ids, len(alerts))
    text = f"{word} {_rule(first)}: {who_of(first, SLACK)}: {rate_line(first, SLACK)}"
    return clip_mrkdwn(text, FALLBACK_BUDGET)


def _status_lines(alerts: Sequence[AlertSnapshot], group: bool, marks: Marks | None) -> list[str]:
    lines = []
    if marks is not None and marks.acked_by and marks.acked_at is not None:
        lines.append(ack_line(marks.acked_by, marks.acked_at))
    quiet = silence_line(alerts, group)
    if quiet:
        lines.append(quiet)
    return lines


def render_main(
    alerts: Sequence[AlertSnapshot],
    group: bool,
    dashboard_url: str | None,
    word: str | None = None,
    marks: Marks | None = None,
) -> SlackMessage:
    """An incident's main message (posted when it fires, edited as it changes). ``marks``:
    its acknowledgement, and its buttons when Slack actions are on."""
    word = word or header_word(alerts)
    status = _status_lines(alerts, group, marks)
    controls: list[dict[str, Any]] = []
    if marks is not None and marks.buttons and word != "RESOLVED":
        controls = control_blocks(marks.incident, alerts, group, bool(marks.acked_by))
    extra = []
    if status:
        extra.append({"type": "context", "elements": [_mrkdwn("  ·  ".join(status))]})
    if group:
        reserve = controls_units(controls) + sum(units(x) for x in status)
        blocks = _group_blocks(alerts, word, dashboard_url, reserve)
    else:
        blocks = _single_blocks(alerts[0], word, dashboard_url)
    return SlackMessage(_fallback(alerts, word, group), blocks + extra + controls)


def _action_text(notice: Notice, budget: int) -> str:
    """The thread reply saying who acknowledged, silenced or unsilenced the incident."""
    by = untrusted(notice.actor or "someone", NAME_CHARS)
    if notice.verb == "ack":
        return clip_mrkdwn(f"✅ Acknowledged by {by}: no more reminders in this thread.", budget)
    if notice.verb == "silence":
        what = f"🔕 Silenced {silence_words(notice.until, notice.until_resolved)} by {by}"
    else:
        what = f"🔔 Unsilenced by {by}"
    alerts = notice.alerts
    if not notice.group and len(alerts) <= 1:
        return clip_mrkdwn(what + ".", budget)
    items = [code(a.agent_id) for a in alerts[:MAX_REPLY_ITEMS]]
    return _listing(what + ": ", items, len(alerts), ".", budget)


def _reply_text(notice: Notice) -> str:
    alerts = notice.alerts
    st = SLACK
    budget = MAX_TEXT_OBJECT  # the reply is also the text of its one section
    if notice.kind == "action":
        return _action_text(notice, budget)
    if notice.kind == "resolved":
        if len(alerts) == 1 and not notice.group:
            a = alerts[0]
            tail = resolved_tail(a)
            text = f"✅ Resolved{(' ' + tail) if tail else ''}: {rate_line(a, st)}."
            return clip_mrkdwn(text, budget)
        items = []
        for a in alerts[:MAX_REPLY_ITEMS]:
            rate = "" if a.resolved_rate is None else f" at {pct(a.resolved_rate)}"
            items.append(f"{code(a.agent_id)}{rate}")
        return _listing("✅ Resolved: ", items, len(alerts), ".", budget)
    if notice.kind == "joined":
        items = [f"{code(a.agent_id)} {headline(a)}" for a in alerts[:MAX_REPLY_ITEMS]]
        return _listing("🔴 Also firing now: ", items, len(alerts), ".", budget)
    # repeat
    since = min((a.fired_at for a in alerts if a.fired_at is not None), default=notice.at)
    for_ = human_duration(notice.at - since)
    if len(alerts) == 1 and not notice.group:
        a = alerts[0]
        spark = spark_of(a)
        peak = (
            f" (peak {pct(a.peak_rate)})" if a.peak_rate is not None and a.scope != "stale" else ""
        )
        text = f"🔁 Still firing after {for_}: {rate_line(a, st)}{peak}"
        if spark:
            text = clip_mrkdwn(text, budget - 2 - min(units(spark), 200)) + "  " + clip(spark, 200)
        return clip_mrkdwn(text, budget)
    items = [f"{code(a.agent_id)} {headline(a)}" for a in alerts[:MAX_REPLY_ITEMS]]
    prefix = f"🔁 Still firing after {for_}: {len(alerts)} agents: "
    return _listing(prefix, items, len(alerts), ".", budget)


def render_slack(notice: Notice, dashboard_url: str | None, buttons: bool = False) -> SlackMessage:
    """The Slack message for a notice, by its ``op``.

    ``post``/``update`` of kind ``main``: the incident's main message (with its buttons when
    ``buttons``). ``reply``: a short thread reply. ``post`` of a follow-up kind (webhook mode,
    which cannot edit or thread): a standalone message with the full content.
    """
    if notice.op == "reply" or notice.kind == "action":
        text = _reply_text(notice)
        return SlackMessage(text, [_section(text)])
    marks = Marks(notice.incident, buttons, notice.acked_by, notice.acked_at)
    if notice.kind == "main":
        return render_main(notice.alerts, notice.group, dashboard_url, marks=marks)
    word = {"repeat": "STILL FIRING", "resolved": "RESOLVED", "joined": "FIRING"}[notice.kind]
    return render_main(notice.alerts, notice.group, dashboard_url, word)


# ---- terminal --------------------------------------------------------------------------


def render_text(notice: Notice) -> str:
    """Readable lines for a terminal or log: one per alert, no escaping, no markup."""
    st = PLAIN
    if notice.kind == "action":
        who = printable(notice.actor or "someone")
        if notice.verb == "ack":
            return f"ACKED    {printable(notice.rule)}: acknowledged by {who}"
        if notice.verb == "silence":
            until = "until resolved" if notice.until is None else f"until {utc(notice.until)}"
            return f"SILENCED {printable(notice.rule)}: silenced {until} by {who}"
        return f"UNSILENCED {printable(notice.rule)}: unsilenced by {who}"
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
        line = f"{word:<8} {printable(a.rule)} {sev} {who_of(a, st)}: {rate_line(a, st)}"
        if a.state == "resolved":
            tail = resolved_tail(a)
            if tail:
                line += f" ({tail})"
        else:
            spark = spark_of(a)
            if spark:
                line += f" {spark}"
            if a.fired_at is not None:
                line += f", firing since {utc_seconds(a.fired_at)}"
        lines.append(line)
    return "\n".join(lines)


# re-exported: cli/alerts.py imports these from here
__all__ = [
    "Marks",
    "SlackMessage",
    "escape",
    "human_duration",
    "pct",
    "render_main",
    "render_slack",
    "render_text",
    "utc",
]
