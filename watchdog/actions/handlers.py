"""What a button press comes to: the answer for the person, and the writes. Pure: takes the
open incidents, the alert states, the active silences and ``now``; returns a ``Decision``.

Every case a person can meet has its own clear answer and changes nothing twice:

- an unknown incident (older than the store keeps, or another watchdog's): nothing changes;
- an incident already resolved: nothing changes;
- a double click: the second press finds the first one's acknowledgement or silence;
- a replayed envelope: never gets here (the pipeline finds its id first).

A silence from a button is the same silence as ``silence add`` (agent, rule, end, reason),
with who made it. *Silence until resolved* ends when its alert resolves (the store ends it in
the commit that records the resolution), and after ``UNTIL_RESOLVED_CAP`` at the latest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from ..alerts.incidents import Book, Incident, acknowledge, mark_silences
from ..alerts.state import AlertState, Silence, State
from ..alerts.store.base import ActionChanges, Decision, NewSilence
from ..notify import AlertSnapshot, Notice
from ..notify.controls import UNTIL_RESOLVED_CAP, agent_key, clock_time, incident_key
from ..notify.wording import NAME_CHARS, WORD_CHARS, and_more, code, untrusted, utc
from .payloads import Click

Key = tuple[str, str]
# A new silence that would end less than this after an existing one is a double click.
SAME_SILENCE = 300.0
MAX_NAMED = 10  # agents named in an answer, then "...and K more"

UNKNOWN = (
    "❓ This alert is not known to this watchdog any more (incidents are kept 7 days after "
    "they resolve; or it came from another watchdog). Nothing was changed."
)


@dataclass(frozen=True, slots=True)
class Target:
    """The incident a press is about, and the agents it acts on (still active, in order)."""

    incident: Incident
    agents: tuple[str, ...]


def find_open(book: Book, key: str) -> Incident | None:
    return next((i for i in book.incidents.values() if incident_key(i.id) == key), None)


def _rule(inc: Incident) -> str:
    return f"*{untrusted(inc.rule, WORD_CHARS)}*"


def _agents(agents: Sequence[str]) -> str:
    named = ", ".join(code(a) for a in agents[:MAX_NAMED])
    return named + and_more(len(agents) - MAX_NAMED)


def _what(t: Target) -> str:
    if t.agents == ("*",):
        return _rule(t.incident)
    return f"{_rule(t.incident)} for {_agents(t.agents)}"


def resolve_target(
    click: Click, book: Book, states: Mapping[Key, AlertState], fallback: Incident | None
) -> Target | str:
    """The incident and agents a press acts on, or the answer explaining why there are
    none."""
    inc = find_open(book, click.pressed.incident_key)
    if (
        inc is None
        and fallback is not None
        and incident_key(fallback.id) == click.pressed.incident_key
    ):
        inc = fallback
    if inc is None:
        return UNKNOWN
    if inc.closed_at is not None:
        return (
            f"✅ {_rule(inc)} already resolved at {clock_time(inc.closed_at)} "
            f"({utc(inc.closed_at)}). Nothing was changed."
        )
    active = [
        agent
        for agent in sorted(inc.members)
        if book.incident_of.get((inc.rule, agent)) == inc.id
        and (st := states.get((inc.rule, agent))) is not None
        and st.state in (State.FIRING, State.PENDING)
    ]
    if click.pressed.agent_key is not None:
        active = [a for a in active if agent_key(a) == click.pressed.agent_key]
        if not active:
            return (
                f"✅ That agent's {_rule(inc)} alert already resolved (or left this alert). "
                "Nothing was changed."
            )
    if not active:
        return f"✅ {_rule(inc)} already resolved. Nothing was changed."
    return Target(inc, tuple(active))


def decide(
    click: Click,
    book: Book,
    states: Mapping[Key, AlertState],
    silences: Sequence[Silence],
    now: float,
    fallback: Incident | None = None,
) -> Decision:
    target = resolve_target(click, book, states, fallback)
    if isinstance(target, str):
        return Decision(target)
    verb = click.pressed.choice.verb
    if verb == "ack":
        return _ack(click, target, silences, now)
    if verb == "silence":
        return _silence(click, target, silences, now)
    return _unsilence(click, target, silences, now)


def _changes(
    click: Click,
    t: Target,
    answer: str,
    notices: Sequence[Notice],
    now: float,
    *,
    ack: tuple[str, float] | None = None,
    silences: Sequence[NewSilence] = (),
    ended: Sequence[int] = (),
) -> ActionChanges:
    return ActionChanges(
        id=click.id,
        at=now,
        user_id=click.who.user_id,
        action=click.pressed.choice.name,
        incident_id=t.incident.id,
        answer=answer,
        ack=ack,
        silences=tuple(silences),
        ended=tuple(ended),
        ended_by=click.who.name if ended else "",
        notices=tuple(notices),
    )


def _notices(
    click: Click,
    inc: Incident,
    silences: Sequence[Silence],
    now: float,
    concerned: Sequence[str],
    until: float | None = None,
    until_resolved: bool = False,
) -> list[Notice]:
    """The main message edited (acknowledgement, silences) and a thread reply saying who
    did what."""
    members = mark_silences(sorted(inc.members.values(), key=lambda a: a.agent_id), silences, now)
    snaps: tuple[AlertSnapshot, ...] = tuple(m for m in members if m.agent_id in concerned)
    main = Notice(
        kind="main",
        op="update",
        incident=inc.id,
        rule=inc.rule,
        group=inc.group,
        at=now,
        opened_at=inc.opened_at,
        alerts=members,
        acked_by=inc.acked_by,
        acked_at=inc.acked_at,
    )
    reply = replace(
        main,
        kind="action",
        op="reply",
        alerts=snaps,
        actor=click.who.name,
        verb=click.pressed.choice.verb,
        until=until,
        until_resolved=until_resolved,
    )
    return [main, reply]


def _ack(click: Click, t: Target, silences: Sequence[Silence], now: float) -> Decision:
    inc = t.incident
    if inc.acked_at is not None:
        by = untrusted(inc.acked_by or "someone", NAME_CHARS)
        return Decision(
            f"✅ Already acknowledged by {by} at {clock_time(inc.acked_at)}. Nothing was changed."
        )
    acked = acknowledge(inc, click.who.name, now)
    answer = (
        f"✅ You acknowledged {_what(t)}: no more reminders in its thread; its resolution "
        "will still be posted."
    )
    notices = _notices(click, acked, silences, now, t.agents)
    return Decision(answer, _changes(click, t, answer, notices, now, ack=(click.who.name, now)))


def _covered(
    silences: Sequence[Silence], rule: str, agent: str, until: float, now: float
) -> Silence | None:
    """An active silence that already does what a new one would (a double click)."""
    for s in silences:
        if not s.matches(rule, agent, now):
            continue
        if s.until_resolved or s.ends_at >= until - SAME_SILENCE:
            return s
    return None


def _silence(click: Click, t: Target, silences: Sequence[Silence], now: float) -> Decision:
    choice = click.pressed.choice
    inc = t.incident
    until_resolved = choice.until_resolved
    ends = now + (UNTIL_RESOLVED_CAP if until_resolved else float(choice.seconds or 0.0))
    new: list[NewSilence] = []
    covered: list[Silence] = []
    for agent in t.agents:
        existing = _covered(silences, inc.rule, agent, ends, now)
        if existing is not None and (existing.until_resolved or not until_resolved):
            covered.append(existing)
            continue
        reason = f"from Slack: {choice.label}"
        new.append(NewSilence(agent, inc.rule, now, ends, reason, click.who.name, until_resolved))
    if not new:
        s = covered[0]
        by = f" by {untrusted(s.created_by, NAME_CHARS)}" if s.created_by else ""
        words = "until resolved" if s.until_resolved else f"until {clock_time(s.ends_at)}"
        return Decision(f"🔕 Already silenced {words}{by}. Nothing was changed.")
    shown = "until resolved" if until_resolved else f"until {clock_time(ends)} ({utc(ends)})"
    concerned = tuple(s.agent_id for s in new)
    answer = (
        f"🔕 Silenced {_what(Target(inc, concerned))} {shown}: still evaluated and exported, "
        "not posted. It shows in `silence list`; *Unsilence* on the message ends it."
    )
    after = [
        *silences,
        *(
            Silence(
                -1 - i,
                s.agent_id,
                s.rule,
                s.starts_at,
                s.ends_at,
                s.reason,
                now,
                s.created_by,
                s.until_resolved,
            )
            for i, s in enumerate(new)
        ),
    ]
    until = None if until_resolved else ends
    notices = _notices(click, inc, after, now, concerned, until, until_resolved)
    return Decision(answer, _changes(click, t, answer, notices, now, silences=new))


def _unsilence(click: Click, t: Target, silences: Sequence[Silence], now: float) -> Decision:
    inc = t.incident
    ending = [s for s in silences if any(s.matches(inc.rule, agent, now) for agent in t.agents)]
    if not ending:
        return Decision(f"🔔 {_what(t)} is not silenced. Nothing was changed.")
    gone = {s.id for s in ending}
    concerned = tuple(a for a in t.agents if any(s.matches(inc.rule, a, now) for s in ending))
    ids = ", ".join(str(s.id) for s in ending)
    answer = (
        f"🔔 Unsilenced {_what(Target(inc, concerned))} (silence {ids} ended): reminders are "
        "posted again."
    )
    after = [s for s in silences if s.id not in gone]
    notices = _notices(click, inc, after, now, concerned)
    return Decision(answer, _changes(click, t, answer, notices, now, ended=sorted(gone)))
