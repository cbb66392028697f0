"""What a backtest found, summarised: per rule set and rule, the incidents, messages per
day, median and longest incident, flaps, share of time firing, agents that never alerted,
and the difference between two rule sets. Pure: ``engine.Log`` values in, plain data out
(``to_json``) and the terminal text (``text``)."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .engine import DAY, Episode, Log, Span

SCHEMA = "dialnexa-watchdog/backtest/1"
FLAP_WITHIN = 1800.0  # a re-fire this soon after a resolve is a flap
MESSAGE_OPS = ("post", "reply")  # what a person sees as a new message; "update" is an edit


def iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Window:
    """The span the report is about."""

    start: float  # the first cycle stepped
    end: float  # the last
    cycles: int
    interval: float
    agents: frozenset[str]
    source: str  # "recorded", "api" or "recorded+api"

    @property
    def seconds(self) -> float:
        return max(self.end - self.start, self.interval)

    @classmethod
    def of(cls, span: Span, interval: float, source: str) -> Window:
        start = span.first if span.first is not None else 0.0
        end = span.last if span.last is not None else start
        return cls(start, end, span.cycles, interval, frozenset(span.agents), source)


def flaps(episodes: Sequence[Episode], within: float = FLAP_WITHIN) -> set[int]:
    """Indices of the episodes that fired within ``within`` seconds of the same alert's
    previous resolve."""
    last_end: dict[tuple[str, str], float] = {}
    out: set[int] = set()
    order = sorted(range(len(episodes)), key=lambda i: episodes[i].start)
    for i in order:
        e = episodes[i]
        key = (e.rule, e.agent)
        prev = last_end.get(key)
        if prev is not None and e.start - prev <= within:
            out.add(i)
        if e.end is not None:
            last_end[key] = e.end
    return out


def _overlap(a: Episode, b: Episode, until: float) -> bool:
    a_end = a.end if a.end is not None else until
    b_end = b.end if b.end is not None else until
    return a.start <= b_end and b.start <= a_end


def only_in(mine: Log, other: Log, until: float) -> list[Episode]:
    """``mine``'s episodes that no episode of ``other`` overlaps for the same agent (and the
    same rule, when ``other`` has a rule of that name)."""
    names = {r.name for r in other.rules}
    by_agent: dict[str, list[Episode]] = {}
    for e in other.episodes:
        by_agent.setdefault(e.agent, []).append(e)
    out = []
    for e in mine.episodes:
        same = [o for o in by_agent.get(e.agent, ()) if e.rule not in names or o.rule == e.rule]
        if not any(_overlap(e, o, until) for o in same):
            out.append(e)
    return out


def _episode(
    e: Episode, until: float, flap: bool, names: Mapping[str, str] | None = None
) -> dict[str, Any]:
    return {
        "rule": e.rule,
        "agent": e.agent,
        "title": (names or {}).get(e.agent),
        "start": iso(e.start),
        "end": iso(e.end),
        "start_ts": e.start,
        "end_ts": e.end,
        "duration_s": round(e.duration(until), 3),
        "open_at_end": e.end is None,
        "peak_rate": None if e.peak_rate is None else round(e.peak_rate, 6),
        "calls": e.calls,
        "flap": flap,
        "note": e.note,
    }


def _stats(eps: Sequence[Episode], flapped: int, w: Window, covered: int) -> dict[str, Any]:
    durations = [e.duration(w.end) for e in eps]
    firing = sum(durations)
    return {
        "incidents": len(eps),
        "agents_alerted": len({e.agent for e in eps}),
        "median_s": round(statistics.median(durations), 3) if durations else None,
        "longest_s": round(max(durations), 3) if durations else None,
        "flaps": flapped,
        # firing agent-seconds over the span's agent-seconds (agents with calls)
        "firing_share": round(firing / (w.seconds * covered), 6) if covered else 0.0,
    }


def summarise(
    log: Log,
    w: Window,
    source_file: str | None = None,
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One rule set's part of the JSON report."""
    flapped = flaps(log.episodes)
    eps = log.episodes
    agents = len(w.agents)
    by_rule: dict[str, Any] = {}
    for r in log.rules:
        idx = [i for i, e in enumerate(eps) if e.rule == r.name]
        covered = sum(1 for a in w.agents if r.covers(a)) if r.scope == "agent" else 1
        stats = _stats([eps[i] for i in idx], len(flapped & set(idx)), w, covered)
        alerted = {eps[i].agent for i in idx}
        stats["never_alerted"] = sum(1 for a in w.agents if r.covers(a) and a not in alerted)
        stats["detector"] = detector_of(r)
        by_rule[r.name] = stats
    total = _stats(eps, len(flapped), w, agents * max(1, len(log.rules)))
    alerted_any = {e.agent for e in eps}
    days: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    edits = 0
    for at, kind, op in log.notices:
        if op in MESSAGE_OPS:
            days[datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")] += 1
            kinds[kind] += 1
        else:
            edits += 1
    messages = sum(days.values())
    return {
        "name": log.name,
        "file": source_file,
        "rules": [_rule(r) for r in log.rules],
        "incidents": [_episode(e, w.end, i in flapped, names) for i, e in enumerate(eps)],
        "by_rule": by_rule,
        "total": total,
        "messages": {
            "total": messages,
            "per_day": round(messages / (w.seconds / DAY), 3),
            "by_day": dict(sorted(days.items())),
            "by_kind": dict(sorted(kinds.items())),
            "edits": edits,
            "conversations": log.conversations,
        },
        "never_alerted": sorted(w.agents - alerted_any),
    }


def _rule(r: Any) -> dict[str, Any]:
    lim = r.limits
    seq = r.sequential
    return {
        "name": r.name,
        "detector": detector_of(r),
        "outcome": r.outcome,
        "window": r.window,
        "scope": r.scope,
        "threshold": lim.threshold,
        "clear_below": lim.clear_below,
        # sequential rules: threshold/clear_below as multiples of the baseline ("3x")
        "threshold_relative": lim.relative,
        "clear_relative": lim.clear_relative,
        "min_calls": lim.min_calls,
        "for_s": lim.for_s,
        "confidence": r.confidence,
        "confirm_window": r.confirm_window,
        # sequential rules only (None for window rules)
        "false_alarm_s": None if seq is None else seq.false_alarm,
        "baseline": None if seq is None else ("learned" if seq.baseline is None else seq.baseline),
        # fast_threshold (None: off, and for window rules), "10x" as 10.0 and relative true
        "fast_threshold": None if seq is None else seq.fast,
        "fast_threshold_relative": False if seq is None else seq.fast_relative,
    }


def detector_of(r: Any) -> str:
    """``window`` or ``sequential`` (the rule's ``detector:``)."""
    return "window" if getattr(r, "sequential", None) is None else "sequential"


def to_json(
    logs: Sequence[Log],
    w: Window,
    files: Mapping[str, str | None] | None = None,
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The whole report (the schema is in the README: "Tuning rules with a backtest").
    ``names``: agent id -> title (``slack.agent_names`` over the saved agent directory);
    the report keeps those of the agents it mentions."""
    files = files or {}
    names = names or {}
    mentioned = set(w.agents) | {e.agent for log in logs for e in log.episodes}
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "span": {
            "start": iso(w.start),
            "end": iso(w.end),
            "start_ts": w.start,
            "end_ts": w.end,
            "seconds": w.seconds,
            "cycles": w.cycles,
            "interval_s": w.interval,
            "agents": len(w.agents),
            "source": w.source,
        },
        "names": {a: names[a] for a in sorted(mentioned) if names.get(a)},
        "sets": [summarise(log, w, files.get(log.name), names) for log in logs],
        "difference": None,
    }
    if len(logs) == 2:
        a, b = logs
        out["difference"] = {
            f"only_{a.name}": [_episode(e, w.end, False, names) for e in only_in(a, b, w.end)],
            f"only_{b.name}": [_episode(e, w.end, False, names) for e in only_in(b, a, w.end)],
        }
    return out


# ---- the terminal report -------------------------------------------------------------------


def _dur(s: float | None) -> str:
    if s is None:
        return "-"
    s = round(s)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if s % 60 else f"{s // 60}m"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _rate(r: float | None) -> str:
    return "-" if r is None else f"{r:.1%}"


def _safe(text: str) -> str:
    """An id from the API, printable on a terminal (control characters escaped)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


TITLE_CHARS = 40  # a longer title is cut (the JSON has it whole)


def who(agent: str, title: str | None) -> str:
    """``Customer Support Bot (agt_k7m2nq9xw4p8)``, or the id alone; unescaped (the terminal
    defuses control characters with ``_safe``, the page escapes)."""
    if not title:
        return agent
    if len(title) > TITLE_CHARS:
        title = title[: TITLE_CHARS - 1] + "…"
    return f"{title} ({agent})"


def _short(t: str | None) -> str:
    return "(firing)" if t is None else t[5:16].replace("T", " ")


def _agent(e: Mapping[str, Any]) -> str:
    return _safe(who(e["agent"], e.get("title")))


def text(report: Mapping[str, Any], limit: int = 20) -> str:
    """The terminal report for ``to_json``'s output (an agent with a title as
    ``Customer Support Bot (agt_k7m2nq9xw4p8)``)."""
    sp = report["span"]
    shown = [e for s in report["sets"] for e in s["incidents"][:limit]]
    for eps in (report.get("difference") or {}).values():
        shown += eps[:limit]
    aw = max([16, *(len(_agent(e)) for e in shown)])
    lines = [
        f"Backtest {sp['start']} .. {sp['end']} ({_dur(sp['seconds'])}, {sp['cycles']} cycles "
        f"every {sp['interval_s']:g}s, {sp['agents']} agents with calls, from {sp['source']})",
    ]
    for s in report["sets"]:
        m = s["messages"]
        src = f" ({s['file']})" if s["file"] else ""
        lines += [
            "",
            f"== {s['name']}{src}: {s['total']['incidents']} incidents, "
            f"{m['total']} Slack messages ({m['per_day']:g}/day, {m['edits']} edits), "
            f"{len(s['never_alerted'])} agents never alerted",
            f"  {'rule':<22} {'detector':<10} {'incidents':>9} {'agents':>6} {'median':>8} "
            f"{'longest':>8} {'flaps':>5} {'firing':>7} {'never':>6}",
        ]
        for name, r in s["by_rule"].items():
            lines.append(
                f"  {name:<22} {r.get('detector', 'window'):<10} {r['incidents']:>9} "
                f"{r['agents_alerted']:>6} {_dur(r['median_s']):>8} {_dur(r['longest_s']):>8} "
                f"{r['flaps']:>5} {r['firing_share']:>7.2%} {r['never_alerted']:>6}"
            )
        if m["by_day"]:
            days = ", ".join(f"{d[5:]}: {n}" for d, n in m["by_day"].items())
            lines.append(f"  messages by day: {days}")
        incidents = s["incidents"]
        if incidents:
            lines.append(
                f"  {'rule':<22} {'agent':<{aw}} {'start':<12} {'end':<12} {'duration':>8} "
                f"{'peak':>6} {'calls':>5}"
            )
            for e in incidents[:limit]:
                flag = " flap" if e["flap"] else ""
                lines.append(
                    f"  {e['rule']:<22} {_agent(e):<{aw}} "
                    f"{_short(e['start']):<12} {_short(e['end']):<12} {_dur(e['duration_s']):>8} "
                    f"{_rate(e['peak_rate']):>6} {e['calls']:>5}{flag}"
                )
            if len(incidents) > limit:
                lines.append(f"  ... {len(incidents) - limit} more (--json has them all)")
    diff = report.get("difference")
    if diff:
        lines.append("")
        for key, eps in diff.items():
            name = key.removeprefix("only_")
            lines.append(f"== only with {name}: {len(eps)} incidents")
            for e in eps[:limit]:
                lines.append(
                    f"  {e['rule']:<22} {_agent(e):<{aw}} "
                    f"{_short(e['start']):<12} {_short(e['end']):<12} {_dur(e['duration_s']):>8} "
                    f"{_rate(e['peak_rate']):>6}"
                )
            if len(eps) > limit:
                lines.append(f"  ... {len(eps) - limit} more")
    return "\n".join(lines)
