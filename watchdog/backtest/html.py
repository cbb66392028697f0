"""``backtest --html``: one self-contained page (no CDN, no external font, script or image):
a summary table, the difference of two rule sets, then per alerting agent a chart of its
rate over time with the threshold and clear lines, the window's calls beneath, and each
incident shaded (both rule sets when comparing). Charts are drawn with matplotlib (the
``[report]`` extra) and embedded as PNG data URLs; every string from the API is escaped.

A small inline script checks, once the page has loaded, that every chart decoded to a
non-empty image and says so on ``<body data-charts=...>`` (and ``console.error`` if not):
what the headless-browser test reads."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from .report import _dur, who
from .series import Series

MISSING = "--html needs matplotlib, which is not installed: pip install 'dialnexa-watchdog[report]'"
COLORS = {0: "#d62728", 1: "#1f77b4"}  # the configured rules, the candidate


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _t(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def chart(
    agent: str,
    pairs: Sequence[tuple[str, str]],
    series: Series,
    report: Mapping[str, Any],
) -> bytes:
    """The PNG of one agent: per (window, outcome), its rate with each set's threshold and
    clear lines and incidents shaded, and the window's calls beneath."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    times = [_t(t) for t in series.times]
    end = series.times[-1] if series.times else 0.0
    fig, axes = plt.subplots(
        2 * len(pairs),
        1,
        figsize=(11, 2.9 * len(pairs)),
        sharex=True,
        gridspec_kw={"height_ratios": [3, 1] * len(pairs)},
        squeeze=False,
    )
    for p, (window, outcome) in enumerate(pairs):
        rate_ax, vol_ax = axes[2 * p][0], axes[2 * p + 1][0]
        line = (agent, window, outcome)
        calls = series.calls.get(line, [])
        hits = series.hits.get(line, [])
        rate = [h / c if c else math.nan for h, c in zip(hits, calls, strict=True)]
        label = f"{outcome} rate ({window})"
        rate_ax.plot(times, rate, color="#333333", linewidth=0.9, label=label)
        for i, s in enumerate(report["sets"]):
            color = COLORS.get(i, "#2ca02c")
            names = set()
            for r in s["rules"]:
                if (r["window"], r["outcome"]) != (window, outcome):
                    continue
                names.add(r["name"])
                style = "-" if i == 0 else "--"
                seq = " (sequential)" if r.get("detector") == "sequential" else ""
                # a relative level ("3x" the agent's baseline) is no line on the rate axis
                if not r.get("threshold_relative"):
                    label = f"{s['name']} {r['name']}{seq} threshold {r['threshold']:g}"
                    rate_ax.axhline(r["threshold"], color=color, linestyle=style, label=label)
                if r["clear_below"] != r["threshold"] and not r.get("clear_relative"):
                    label = f"{s['name']} clear below {r['clear_below']:g}"
                    rate_ax.axhline(r["clear_below"], color=color, linestyle=":", label=label)
                vol_ax.axhline(r["min_calls"], color=color, linestyle=":", linewidth=1)
            for e in s["incidents"]:
                if e["agent"] != agent or e["rule"] not in names:
                    continue
                stop = e["end_ts"] if e["end_ts"] is not None else end
                for ax in (rate_ax, vol_ax):
                    ax.axvspan(
                        _t(e["start_ts"]),
                        _t(stop),
                        color=color,
                        alpha=0.15 + 0.05 * i,
                        hatch="//" if i else None,
                        linewidth=0,
                    )
        rate_ax.set_ylim(0, 1)
        rate_ax.set_ylabel("rate")
        rate_ax.legend(loc="upper left", fontsize=7, ncol=2)
        vol_ax.fill_between(times, calls, step="post", color="#7f7f7f", alpha=0.6)
        vol_ax.set_ylabel(f"calls ({window})", fontsize=8)
    last = axes[-1][0]
    fmt = mdates.DateFormatter("%m-%d %H:%M", tz=UTC)  # type: ignore[no-untyped-call]
    last.xaxis.set_major_formatter(fmt)
    fig.autofmt_xdate()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right;font-size:.9em}
th:first-child,td:first-child,td.l{text-align:left}
img.chart{display:block;max-width:100%;border:1px solid #ddd}
.note{color:#666;font-size:.9em}
"""

_CHECK = """
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img.chart'), bad = [];
  imgs.forEach(function (i) { if (!i.complete || i.naturalWidth < 10) bad.push(i.alt); });
  document.body.setAttribute('data-charts', bad.length ? 'broken' : imgs.length + ' ok');
  if (bad.length) console.error('empty charts: ' + bad.join(', '));
});
"""


def _summary(report: Mapping[str, Any]) -> list[str]:
    out = [
        "<table><tr><th>rule set</th><th>rule</th><th>detector</th><th>incidents</th>"
        "<th>agents</th><th>median</th><th>longest</th><th>flaps</th><th>firing</th>"
        "<th>never alerted</th>"
        "</tr>"
    ]
    for s in report["sets"]:
        for name, r in s["by_rule"].items():
            out.append(
                f"<tr><td>{escape(s['name'])}</td><td class=l>{escape(name)}</td>"
                f"<td class=l>{escape(r.get('detector', 'window'))}</td>"
                f"<td>{r['incidents']}</td><td>{r['agents_alerted']}</td>"
                f"<td>{_dur(r['median_s'])}</td><td>{_dur(r['longest_s'])}</td>"
                f"<td>{r['flaps']}</td><td>{r['firing_share']:.2%}</td>"
                f"<td>{r['never_alerted']}</td></tr>"
            )
    out.append("</table>")
    out.append(
        "<table><tr><th>rule set</th><th>Slack messages</th><th>per day</th>"
        "<th>edits</th><th>conversations</th></tr>"
    )
    for s in report["sets"]:
        m = s["messages"]
        out.append(
            f"<tr><td>{escape(s['name'])}</td><td>{m['total']}</td><td>{m['per_day']:g}</td>"
            f"<td>{m['edits']}</td><td>{m['conversations']}</td></tr>"
        )
    out.append("</table>")
    return out


def _who(agent: str, title: str | None) -> str:
    """``Customer Support Bot (<code>agt_k7m2nq9xw4p8</code>)``, escaped (a title is an
    API string: ``<script>`` in it stays text)."""
    if not title:
        return escape(agent)
    return f"{escape(title)} (<code>{escape(agent)}</code>)"


def _incidents(rows: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """A table of (rule set, incident) rows."""
    if not rows:
        return ["<p class=note>none</p>"]
    out = [
        "<table><tr><th>rule set</th><th>rule</th><th>agent</th><th>start</th><th>end</th>"
        "<th>duration</th><th>peak</th><th>calls</th></tr>"
    ]
    for name, e in rows:
        peak = "-" if e["peak_rate"] is None else f"{e['peak_rate']:.1%}"
        out.append(
            f"<tr><td>{escape(name)}</td><td class=l>{escape(e['rule'])}</td>"
            f"<td class=l>{_who(e['agent'], e.get('title'))}</td>"
            f"<td class=l>{escape(e['start'] or '')}</td>"
            f"<td class=l>{escape(e['end'] or 'still firing')}</td>"
            f"<td>{_dur(e['duration_s'])}</td><td>{peak}</td><td>{e['calls']}</td></tr>"
        )
    out.append("</table>")
    return out


def page(
    report: Mapping[str, Any],
    charts: Mapping[str, bytes],
    shown_of: int,
) -> str:
    """The whole page; ``charts``: agent -> PNG, in the order shown; ``shown_of``: how many
    agents alerted (charts are drawn for the first ones only)."""
    sp = report["span"]
    title = f"Backtest {sp['start']} .. {sp['end']}"
    sets = ", ".join(
        escape(s["name"]) + (f" ({escape(s['file'])})" if s["file"] else "") for s in report["sets"]
    )
    body = [
        f"<h1>{escape(title)}</h1>",
        f"<p class=note>{sp['cycles']} cycles every {sp['interval_s']:g}s, {sp['agents']} "
        f"agents with calls, from {escape(sp['source'])}. Rule sets: {sets}</p>",
        "<h2>Summary</h2>",
        *_summary(report),
    ]
    diff = report.get("difference")
    if diff:
        body.append("<h2>Difference</h2>")
        for key, rows in diff.items():
            name = key.removeprefix("only_")
            body.append(f"<h3>Only with {escape(name)}: {len(rows)}</h3>")
            body.extend(_incidents([(name, e) for e in rows]))
    body.append(f"<h2>Agents that alerted ({len(charts)} of {shown_of} shown)</h2>")
    if len(report["sets"]) > 1:
        body.append(
            "<p class=note>Shaded: incidents of the configured rules (red) and of the "
            "candidate (blue, hatched); solid and dashed lines: their thresholds.</p>"
        )
    names = report.get("names") or {}
    for agent, png in charts.items():
        data = base64.b64encode(png).decode("ascii")
        agent_title = names.get(agent)
        rows = [
            (s["name"], e) for s in report["sets"] for e in s["incidents"] if e["agent"] == agent
        ]
        body += [
            f"<section class=agent><h3>{_who(agent, agent_title)}</h3>",
            f'<img class=chart alt="{escape(who(agent, agent_title), quote=True)}" '
            f'src="data:image/png;base64,{data}">',
            *_incidents(rows),
            "</section>",
        ]
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>\n"
        + "\n".join(body)
        + f"\n<script>{_CHECK}</script>\n</body></html>\n"
    )
