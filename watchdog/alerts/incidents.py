"""Incident planning: one evaluation in, an immutable plan out. Pure: no store, no notifier.

An *incident* is one Slack conversation: a single alert, or a group of agents for one rule
when ``group_threshold`` of them start firing together. ``plan`` takes the open incidents
(a ``Book``), the evaluation, the active silences and ``now``, and returns the book after
this evaluation, every incident it created or changed (to be stored), and the notices to
send. What to send follows Alertmanager's model: one living message per incident, edited
when it resolves, with repeats and joins as thread replies. An incident acknowledged from
Slack gets no more repeats (its resolution is still posted), and every main message shows
the silences that apply to its alerts (``mark_silences``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from ..notify import AlertSnapshot, Notice, NoticeKind, Op
from .rules import repeat_due
from .state import AlertState, Evaluation, Silence, State, is_silenced

Key = tuple[str, str]
# (state, the incident's earlier snapshot of that agent or None) -> what a message shows
Snapshotter = Callable[[AlertState, AlertSnapshot | None], AlertSnapshot]


def new_incident_id(rule: str, label: str, now: float) -> str:
    return f"{rule}/{label}/{int(now)}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class Incident:
    """One Slack conversation. Immutable: the planner returns changed copies."""

    id: str
    rule: str
    group: bool
    opened_at: float
    members: Mapping[str, AlertSnapshot] = field(default_factory=dict)  # agent -> latest
    last_notified_at: float | None = None
    closed_at: float | None = None
    acked_by: str | None = None  # "@alice": acknowledged from Slack; no more repeats
    acked_at: float | None = None


def acknowledge(inc: Incident, by: str, at: float) -> Incident:
    """``inc`` acknowledged by ``by`` at ``at`` (the first acknowledgement stays)."""
    if inc.acked_at is not None:
        return inc
    return replace(inc, acked_by=by, acked_at=at)


def shows_same(snap: AlertSnapshot, st: AlertState) -> bool:
    """Whether ``snap`` already shows every number of ``st`` a message shows (the window's
    counts unchanged, so is its sparkline, but for buckets without calls sliding out)."""
    return (
        snap.state == st.state.value
        and snap.calls == st.calls
        and snap.hits == st.hits
        and snap.rate == st.rate
        and snap.severity == st.severity
        and snap.bound == st.bound
        and snap.threshold == st.threshold
        and snap.clear_below == st.clear_below
        and snap.fired_at == st.fired_at
        and snap.resolved_at == st.resolved_at
        and snap.peak_rate == st.peak_rate
        and snap.resolved_rate == st.resolved_rate
        and snap.last_error == st.last_error
        and snap.note == st.note
        and snap.age == st.age
    )


def mark_silences(
    alerts: Sequence[AlertSnapshot], silences: Sequence[Silence], now: float
) -> tuple[AlertSnapshot, ...]:
    """``alerts`` with the silence that applies to each (the one that lasts longest; an
    until-resolved silence counts as lasting longest), or with none."""
    out = []
    for a in alerts:
        match = [s for s in silences if s.matches(a.rule, a.agent_id, now)]
        if not match:
            unmarked = replace(
                a, silenced_until=None, silenced_by=None, silenced_until_resolved=False
            )
            out.append(a if a.silenced_until is None else unmarked)
            continue
        s = max(match, key=lambda s: (s.until_resolved, s.ends_at, s.id))
        out.append(
            replace(
                a,
                silenced_until=s.ends_at,
                silenced_by=s.created_by or None,
                silenced_until_resolved=s.until_resolved,
            )
        )
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Book:
    """The open incidents and which incident each (rule, agent) alert belongs to."""

    incidents: Mapping[str, Incident] = field(default_factory=dict)
    incident_of: Mapping[Key, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Policy:
    """What the notifier can do and how the channel wants to be told."""

    can_edit: bool  # threads and edits (bot token); else every notice is a new message
    group_threshold: int  # this many agents of one rule firing together: one message
    repeat_interval: float  # seconds between thread reminders; 0: never
    groupable: frozenset[str]  # rules whose alerts may be grouped (agent scope)


@dataclass(frozen=True, slots=True)
class Plan:
    book: Book  # after this evaluation; closed incidents left out
    incidents: tuple[Incident, ...]  # created or changed (closed ones included), to store
    notices: tuple[Notice, ...]  # in the order they must be sent
    orphaned: tuple[str, ...] = ()  # incidents closed because none of their alerts is active
    attached: frozenset[Key] = frozenset()  # alerts whose incident this plan set or cleared

    @property
    def changed_ids(self) -> frozenset[str]:
        return frozenset(i.id for i in self.incidents)


def plan(
    book: Book,
    ev: Evaluation,
    silences: Sequence[Silence],
    now: float,
    policy: Policy,
    snapshot: Snapshotter,
    new_id: Callable[[str, str, float], str] = new_incident_id,
) -> Plan:
    """Incident changes and notices for one evaluation. ``ev`` may cover only some rules
    (e.g. the stale rule alone): alerts it does not mention are left as they are."""
    p = _Planner(book, ev, silences, now, policy, snapshot, new_id)
    p.resolutions()
    opened = p.openings()
    p.repeats(opened)
    p.orphans()
    open_now = {i: inc for i, inc in p.incidents.items() if inc.closed_at is None}
    return Plan(
        book=Book(open_now, p.incident_of),
        incidents=tuple(p.incidents[i] for i in p.order),
        notices=tuple(p.notices),
        orphaned=tuple(p.orphaned),
        attached=frozenset(p.attached),
    )


class _Planner:
    """The working state of one ``plan`` call (copies; the inputs are never changed)."""

    def __init__(
        self,
        book: Book,
        ev: Evaluation,
        silences: Sequence[Silence],
        now: float,
        policy: Policy,
        snapshot: Snapshotter,
        new_id: Callable[[str, str, float], str],
    ) -> None:
        self.incidents: dict[str, Incident] = dict(book.incidents)
        self.incident_of: dict[Key, str] = dict(book.incident_of)
        self.attached: set[Key] = set()  # keys whose entry in incident_of this plan changed
        self.orphaned: list[str] = []
        self.ev = ev
        self.silences = silences
        self.now = now
        self.policy = policy
        self.snapshot = snapshot
        self.new_id = new_id
        self.notices: list[Notice] = []
        self.order: list[str] = []  # changed incident ids, first change first

    # ---- helpers -------------------------------------------------------------------------
    def _touch(self, inc: Incident) -> Incident:
        if inc.id not in self.order:
            self.order.append(inc.id)
        self.incidents[inc.id] = inc
        return inc

    def _notice(
        self, inc: Incident, kind: NoticeKind, op: Op, alerts: Sequence[AlertSnapshot]
    ) -> None:
        shown = mark_silences(alerts, self.silences, self.now) if kind == "main" else alerts
        self.notices.append(
            Notice(
                kind=kind,
                op=op,
                incident=inc.id,
                rule=inc.rule,
                group=inc.group,
                at=self.now,
                opened_at=inc.opened_at,
                alerts=tuple(shown),
                acked_by=inc.acked_by,
                acked_at=inc.acked_at,
            )
        )
        self._touch(inc)

    def _snap(self, st: AlertState, inc: Incident | None = None) -> AlertSnapshot:
        return self.snapshot(st, inc.members.get(st.agent_id) if inc is not None else None)

    def _with_members(self, inc: Incident, snaps: Sequence[AlertSnapshot]) -> Incident:
        members = dict(inc.members)
        for s in snaps:
            members[s.agent_id] = s
        return replace(inc, members=members)

    def _refreshed(self, inc: Incident) -> tuple[Incident, list[AlertSnapshot]]:
        """The incident with its firing members re-read from this evaluation, and every
        member sorted by agent (what the main message shows). A member whose alert shows
        the same numbers as its snapshot keeps that snapshot (and its sparkline): a large
        group is not re-read, nor rewritten, whole when one member joins or resolves."""
        fresh = [
            self._snap(st, inc)
            for agent, was in inc.members.items()
            if (st := self.ev.states.get((inc.rule, agent))) is not None
            and st.state is State.FIRING
            and not shows_same(was, st)
        ]
        if fresh:
            inc = self._with_members(inc, fresh)
        return inc, sorted(inc.members.values(), key=lambda a: a.agent_id)

    def _silenced(self, key: Key) -> bool:
        return is_silenced(self.silences, key[0], key[1], self.now)

    # ---- stages --------------------------------------------------------------------------
    def resolutions(self) -> None:
        by_incident: dict[str, list[AlertState]] = {}
        for t in self.ev.transitions:
            if t.new is not State.RESOLVED:
                continue
            iid = self.incident_of.pop(t.key, None)
            if iid is not None:
                self.attached.add(t.key)
            if iid is not None and iid in self.incidents:
                by_incident.setdefault(iid, []).append(t.alert)
        for iid, alerts in by_incident.items():
            inc = self.incidents[iid]
            snaps = [self._snap(a, inc) for a in alerts]
            inc = self._with_members(inc, snaps)
            if all(m.state == "resolved" for m in inc.members.values()):
                inc = replace(inc, closed_at=self.now)
            if self.policy.can_edit:
                inc, members = self._refreshed(inc)
                self._notice(inc, "main", "update", members)
                self._notice(inc, "resolved", "reply", snaps)
            else:
                self._notice(inc, "resolved", "post", snaps)

    def openings(self) -> set[str]:
        """Incidents for firing alerts that have none yet (and are not silenced)."""
        new_by_rule: dict[str, list[AlertState]] = {}
        states, incident_of = self.ev.states, self.incident_of
        # the few firing alerts without an incident, sorted: not every state
        for key in sorted(
            k for k, st in states.items() if st.state is State.FIRING and k not in incident_of
        ):
            if not self._silenced(key):
                st = states[key]
                new_by_rule.setdefault(st.rule, []).append(st)
        opened: set[str] = set()
        for rule_name, alerts in new_by_rule.items():
            groupable = rule_name in self.policy.groupable
            open_group = next(
                (
                    i
                    for i in self.incidents.values()
                    if i.rule == rule_name and i.group and i.closed_at is None
                ),
                None,
            )
            if groupable and open_group is not None:
                snaps = [self._snap(a) for a in alerts]
                inc = self._with_members(open_group, snaps)
                for a in alerts:
                    self.incident_of[a.key] = inc.id
                    self.attached.add(a.key)
                if self.policy.can_edit:
                    inc, members = self._refreshed(inc)
                    self._notice(inc, "main", "update", members)
                    self._notice(inc, "joined", "reply", snaps)
                else:
                    self._notice(inc, "joined", "post", snaps)
                opened.add(inc.id)
            elif groupable and len(alerts) >= self.policy.group_threshold:
                inc = self._open(rule_name, "group", True, alerts)
                self._notice(inc, "main", "post", sorted(inc.members.values(), key=_agent))
                opened.add(inc.id)
            else:
                for a in alerts:
                    inc = self._open(rule_name, a.agent_id, False, [a])
                    self._notice(inc, "main", "post", list(inc.members.values()))
                    opened.add(inc.id)
        return opened

    def _open(self, rule: str, label: str, group: bool, alerts: Sequence[AlertState]) -> Incident:
        inc = Incident(
            id=self.new_id(rule, label, self.now),
            rule=rule,
            group=group,
            opened_at=self.now,
            members={a.agent_id: self._snap(a) for a in alerts},
            last_notified_at=self.now,
        )
        for a in alerts:
            self.incident_of[a.key] = inc.id
            self.attached.add(a.key)
        return self._touch(inc)

    def repeats(self, skip: set[str]) -> None:
        for inc in list(self.incidents.values()):
            if inc.closed_at is not None or inc.id in skip or inc.acked_at is not None:
                continue
            # needs_notify of a firing alert: whether a repeat is due, whichever member it is
            if not repeat_due(inc.last_notified_at, self.policy.repeat_interval, self.now):
                continue
            loud = [
                st
                for agent in inc.members
                if (st := self.ev.states.get((inc.rule, agent))) is not None
                and st.state is State.FIRING
                and self.incident_of.get(st.key) == inc.id
                and not self._silenced(st.key)
            ]
            if not loud:
                continue
            snaps = [self._snap(st, inc) for st in loud]
            inc = replace(self._with_members(inc, snaps), last_notified_at=self.now)
            self._notice(inc, "repeat", "reply" if self.policy.can_edit else "post", snaps)

    def orphans(self) -> None:
        """Close incidents no alert belongs to any more (e.g. an unreadable stored state)."""
        attached = set(self.incident_of.values())
        for inc in list(self.incidents.values()):
            if inc.closed_at is None and inc.id not in attached:
                self.orphaned.append(inc.id)
                self._touch(replace(inc, closed_at=self.now))


def _agent(a: AlertSnapshot) -> str:
    return a.agent_id
