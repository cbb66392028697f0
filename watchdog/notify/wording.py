"""The words and numbers in every message, shared by the Slack and terminal renderers.
Pure.

Untrusted strings (agent ids and names, rule names, severities, error texts) are cleaned
(control characters, lone surrogates and bidi overrides become U+FFFD), clipped to a display
length and, for Slack, escaped (``&``, ``<``, ``>``). A ``Style`` says how one renderer shows
untrusted text, identifiers, emphasis and dates; the alert lines (who, rate, resolution) are
written once for both.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from . import AlertSnapshot
from .limits import clip

BARS = "▁▂▃▄▅▆▇█"
# Display lengths of untrusted values, in characters before escaping.
ID_CHARS = 100
NAME_CHARS = 80
WORD_CHARS = 64  # rule, severity, outcome, window
ERROR_CHARS = 300

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
class Style:
    esc: Callable[[str, int], str]  # untrusted text, clipped to so many characters
    ident: Callable[[str], str]  # untrusted identifiers (agent ids)
    lit: Callable[[str], str]  # our own wording that may hold < or >
    bold: Callable[[str], str]
    when: Callable[[float], str]


SLACK = Style(untrusted, code, escape, lambda s: f"*{s}*", slack_date)
PLAIN = Style(lambda s, _n: printable(s), printable, str, lambda s: s, utc_seconds)


def who_of(a: AlertSnapshot, st: Style) -> str:
    if a.scope == "workspace":
        return "all agents (workspace)"
    if a.scope == "stale":
        return "DialNexa polling"
    if a.agent_name:  # "Customer Support Bot (`agt_k7m2nq9xw4p8`)"
        return f"{st.esc(a.agent_name, NAME_CHARS)} ({st.ident(a.agent_id)})"
    return f"agent {st.ident(a.agent_id)}"


def stale_line(a: AlertSnapshot, st: Style) -> str:
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


def stopped_line(a: AlertSnapshot, st: Style) -> str:
    """``no calls for 42m (fires after 30m; 57 calls in the same hour yesterday)``."""
    if a.state == "resolved":
        if a.note:
            return f"resolved: {st.esc(a.note, ERROR_CHARS)}"
        return "calls resumed"
    quiet = human_duration(a.age or 0.0)
    after = human_duration(a.stale_after or 0.0)
    return (
        f"no calls for {st.bold(quiet)} (fires after {after}; {a.calls} calls in "
        f"{st.esc(a.window, WORD_CHARS)})"
    )


def headline(a: AlertSnapshot) -> str:
    """The short form of an alert's number in lists: ``31.0%``, or ``silent 42m``."""
    if a.scope == "stopped":
        return f"silent {human_duration(a.age or 0.0)}"
    return pct(a.rate)


def rate_line(a: AlertSnapshot, st: Style) -> str:
    """``failed rate 31.0% >= 25.0% over 15m (13 of 42 calls)`` and its resolved form."""
    if a.scope == "stale":
        return stale_line(a, st)
    if a.scope == "stopped":
        return stopped_line(a, st)
    outcome = st.esc(a.outcome, WORD_CHARS)
    window = st.esc(a.window, WORD_CHARS)
    if a.state == "resolved":
        if a.resolved_rate is None:
            return f"resolved: {st.esc(a.note or 'no longer evaluated', ERROR_CHARS)}"
        return (
            f"{outcome} rate {st.bold(pct(a.resolved_rate))} {st.lit('<')} "
            f"{pct(a.clear_below)} over {window}"
        )
    if a.baseline is not None:
        return sequential_line(a, st, outcome)
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


# How "h of the last n calls ..." ends, per outcome; other outcomes: "had outcome <name>".
OUTCOME_WORDS = {"failed": "failed", "busy": "were busy", "no_answer": "went unanswered"}


def sequential_line(a: AlertSnapshot, st: Style, outcome: str) -> str:
    """A sequential rule's evidence in words: ``12 of the last 15 calls failed; normal for
    this agent is 4.0% (learned); fires at 12.0%``."""
    did = OUTCOME_WORDS.get(a.outcome, f"had outcome {outcome}")
    normal = f"normal for this agent is {st.bold(pct(a.baseline))}"
    if a.baseline_source and a.baseline_source != "configured":
        normal += f" ({st.esc(a.baseline_source, ERROR_CHARS)})"
    return (
        f"{st.bold(f'{a.hits} of the last {a.calls} calls')} {did}; {normal}; "
        f"{st.lit(f'tested for {pct(a.threshold)}, clears under {pct(a.clear_below)}')}"
    )


def resolved_tail(a: AlertSnapshot) -> str:
    parts = []
    if a.fired_at is not None and a.resolved_at is not None:
        parts.append(f"after {human_duration(a.resolved_at - a.fired_at)}")
    if a.scope != "stale" and a.peak_rate is not None:
        parts.append(f"peak {pct(a.peak_rate)}")
    return ", ".join(parts)


def spark_of(a: AlertSnapshot) -> str:
    if a.scope in ("stale", "stopped"):
        return ""
    return sparkline(a.sparkline, a.threshold)


def header_word(alerts: Sequence[AlertSnapshot]) -> str:
    if alerts and all(a.state == "resolved" for a in alerts):
        return "RESOLVED"
    return "FIRING"


def count_label(alerts: Sequence[AlertSnapshot]) -> str:
    firing = sum(1 for a in alerts if a.state != "resolved")
    if firing in (0, len(alerts)):
        return f"{len(alerts)} agents"
    return f"{firing} of {len(alerts)} agents firing"


def and_more(k: int, sep: str = " ") -> str:
    return f"{sep}…and {k} more" if k > 0 else ""
