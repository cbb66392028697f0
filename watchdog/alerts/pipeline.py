"""The alert path, stage by stage: evaluate -> plan incidents -> commit -> (delivery).

``AlertPipeline.on_poll`` runs after every poll: the pure evaluator (``rules.evaluate``)
turns window counts into alert states, the pure planner (``incidents.plan``) turns state
changes into incident changes and notices, and the store writes states, incidents and
notices in one transaction. Delivery (``delivery.DeliveryWorker``) sends the notices from the
outbox on its own schedule. ``on_tick`` runs the built-in stale rule on a timer of its own,
so it fires even while the poll thread is stuck or no poll has ever succeeded.

The in-memory state is the truth between polls. When a commit fails (a full disk, a locked
file), nothing is thrown away: the changes are kept and committed with the next evaluation,
the failure is counted (``dialnexa_state_commit_failures_total``) and /readyz says so; the
notices reach Slack once a commit works again.

Alerts that are not about one agent (``scope: workspace`` rules and the built-in ``stale``
rule) carry the agent id ``"*"``, also as the ``agent_id`` metric label.

``act`` applies a Slack action (acknowledge, silence, unsilence) between two evaluations:
under the same lock, against the in-memory incidents, in one store transaction keyed by the
action's id, so a replayed action changes nothing.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Protocol

from ..model import WORKSPACE_AGENT, CountsView, PollStatus
from ..notify import Notice
from .diff import changed_members, durable
from .evidence import EvidenceFeed
from .incidents import Book, Incident, Policy, Snapshotter, acknowledge, new_incident_id, plan
from .incremental import Incremental
from .rules import evaluate_stale
from .state import STALE_RULE, AlertState, Evaluation, Rule, Silence, StaleRule, State
from .stopped import with_stopped
from .store import ActionChanges, Changes, Decision

log = logging.getLogger("watchdog.alerts")

Key = tuple[str, str]
STALE_KEY: Key = (STALE_RULE, WORKSPACE_AGENT)

# States whose only changes are display values (rate, calls) are rewritten at most this often,
# and at most REFRESH_BATCH of them per commit, so that `alerts` shows recent numbers without
# a commit per state per poll.
REFRESH_AFTER = 600.0
REFRESH_BATCH = 500
NEVER = -1e18  # the write time of a state loaded at start (refreshed first)


class StateStore(Protocol):
    """The part of the state store the pipeline uses."""

    def load_states(self) -> tuple[dict[Key, AlertState], dict[Key, str]]: ...
    def load_incidents(self, open_only: bool = True) -> dict[str, Incident]: ...
    def commit(self, now: float, changes: Changes) -> None: ...
    def silences(self, now: float | None = None) -> list[Silence]: ...
    def apply_action(self, changes: ActionChanges) -> str | None: ...
    def action_answer(self, action_id: str) -> str | None: ...


# (open incidents, alert states, active silences) -> what the action comes to
Decide = Callable[[Book, Mapping[Key, AlertState], Sequence[Silence]], Decision]


class ActionRefused(Exception):
    """An action cannot be applied now (stopping, or the state store is failing); ``str()``
    is the answer for the person. Nothing changed."""


@dataclass(frozen=True, slots=True)
class Acted:
    answer: str
    applied: bool  # this call wrote the action
    replay: bool = False  # the same action was applied before: nothing changed


class Wakeable(Protocol):
    def wake(self, added: int) -> None: ...


@dataclass
class _Unsaved:
    """Changes not yet committed (the last commit failed), merged newest-wins."""

    states: dict[Key, tuple[AlertState, str | None]] = field(default_factory=dict)
    deleted: set[Key] = field(default_factory=set)
    incidents: dict[str, Incident] = field(default_factory=dict)
    notices: list[Notice] = field(default_factory=list)

    def add(self, c: Changes) -> None:
        for s, iid in c.states:
            self.states[s.key] = (s, iid)
            self.deleted.discard(s.key)
        for k in c.deleted:
            self.states.pop(k, None)
            self.deleted.add(k)
        for inc in c.incidents:
            self.incidents[inc.id] = inc
        self.notices.extend(c.notices)

    def changes(self) -> Changes:
        return Changes(
            states=list(self.states.values()),
            deleted=sorted(self.deleted),
            incidents=list(self.incidents.values()),
            notices=list(self.notices),
        )

    def __len__(self) -> int:
        return len(self.states) + len(self.deleted) + len(self.incidents) + len(self.notices)


@dataclass(frozen=True, slots=True)
class AlertView:
    """What the metrics collector reads: replaced as a whole after every evaluation."""

    states: Mapping[Key, AlertState] = field(default_factory=dict)
    covered: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    evidence: Mapping[Key, float] = field(default_factory=dict)  # sequential rules, > 0 only


@dataclass(frozen=True, slots=True)
class CommitHealth:
    failures: int = 0  # commits that failed since start
    failing: bool = False  # the last commit failed
    uncommitted: int = 0  # changes waiting for a commit that works
    error: str | None = None  # short and fixed-form, e.g. "OperationalError: disk is full"


class AlertPipeline:
    """Evaluate, plan, commit. Built by the composition root (``app.build``)."""

    def __init__(
        self,
        rules: Sequence[Rule],
        stale: StaleRule,
        store: StateStore,
        policy: Policy,
        snapshots: Callable[[CountsView | None], Snapshotter],
        *,
        delivery: Wakeable | None = None,
        new_id: Callable[[str, str, float], str] = new_incident_id,
        stopped: Callable[[Mapping[Key, AlertState], float], Evaluation] | None = None,
        evidence: EvidenceFeed | None = None,
    ) -> None:
        """``stopped``: evaluates the ``calls_stopped`` rules (``stopped.evaluate_stopped``
        bound to the call activity and the agent directory by the composition root)."""
        self.rules = list(rules)
        self.stale = stale
        self.store = store
        self.policy = policy
        self._snapshots = snapshots
        self.delivery = delivery
        self._new_id = new_id
        self.stopped = stopped
        self.evidence = evidence  # the sequential rules' detector and its feed
        self._lock = threading.Lock()  # one evaluation at a time (poll thread, stale timer)
        # evaluate(), stepping only the agents whose counts moved since the last poll's
        self.evaluator = Incremental()
        states, incident_of = store.load_states()
        self._states: dict[Key, AlertState] = states
        self._book = Book(store.load_incidents(open_only=True), incident_of)
        self._silences: list[Silence] = []
        # when each state was last written, and the same as a heap (lazily cleaned: an entry
        # whose time is not the key's in _written is stale) for the display refreshes
        self._written: dict[Key, float] = dict.fromkeys(states, NEVER)
        self._due: list[tuple[float, Key]] = [(NEVER, k) for k in sorted(states)]
        self._unsaved = _Unsaved()
        self._health = CommitHealth()
        self.view = AlertView(dict(states), {})
        self._closed = False

    # ---- reads ---------------------------------------------------------------------------
    @property
    def health(self) -> CommitHealth:
        return self._health

    def states(self) -> dict[Key, AlertState]:
        return dict(self.view.states)

    @property
    def book(self) -> Book:
        return self._book

    # ---- stages --------------------------------------------------------------------------
    def on_poll(self, view: CountsView, poll: PollStatus, now: float) -> None:
        """Evaluate the rules after a poll. Never raises."""

        def both(prev: Mapping[Key, AlertState]) -> Evaluation:
            ev = self._evaluate(prev, view, poll, now)
            if self.stopped is None:
                return ev
            return with_stopped(ev, self.stopped(prev, now), self.rules)

        self._run(both, view, now)

    def _evaluate(
        self, prev: Mapping[Key, AlertState], view: CountsView, poll: PollStatus, now: float
    ) -> Evaluation:
        feed = self.evidence
        if feed is None or not feed.active:
            return self.evaluator.evaluate(self.rules, prev, view, poll, now)
        feed.advance(view, now)
        return self.evaluator.evaluate(self.rules, prev, view, poll, now, detector=feed.detector)

    def on_tick(self, poll: PollStatus, now: float) -> None:
        """Evaluate the stale rule alone (on a timer). Never raises."""
        self._run(
            lambda prev: evaluate_stale(prev.get(STALE_KEY), self.stale, poll, now), None, now
        )

    def close(self) -> None:
        self._closed = True

    def act(self, action_id: str, decide: Decide, now: float) -> Acted:
        """Apply one Slack action. Raises ``ActionRefused`` (nothing changed) while stopping or
        while state commits fail, and whatever the store raises (nothing changed either)."""
        with self._lock:
            if self._closed:
                raise ActionRefused("the watchdog is stopping; try again in a minute")
            if self._health.failing:
                raise ActionRefused(
                    "the watchdog cannot write its state file right now, so nothing was "
                    "changed; try again in a minute (or use `silence add` on its host)"
                )
            earlier = self.store.action_answer(action_id)
            if earlier is not None:
                return Acted(earlier, applied=False, replay=True)
            decision = decide(self._book, self._states, self.store.silences(now))
            changes = decision.changes
            if changes is None:
                return Acted(decision.answer, applied=False)
            earlier = self.store.apply_action(changes)
            if earlier is not None:  # another process applied it between our two reads
                return Acted(earlier, applied=False, replay=True)
            inc = self._book.incidents.get(changes.incident_id or "")
            if changes.ack is not None and inc is not None:
                incidents = dict(self._book.incidents)
                incidents[inc.id] = acknowledge(inc, *changes.ack)
                self._book = Book(incidents, self._book.incident_of)
        if changes.notices and self.delivery is not None:
            self.delivery.wake(len(changes.notices))
        return Acted(decision.answer, applied=True)

    def _run(
        self,
        step: Callable[[Mapping[Key, AlertState]], Evaluation],
        view: CountsView | None,
        now: float,
    ) -> None:
        if self._closed:
            return
        try:
            with self._lock:
                prev = self._states
                ev = step(prev)
                self._apply(prev, ev, view, now)
        except Exception:
            self.evaluator.reset()  # the states it stepped from were not adopted
            log.exception("alert evaluation failed; it runs again after the next poll")

    def _apply(
        self, prev: Mapping[Key, AlertState], ev: Evaluation, view: CountsView | None, now: float
    ) -> None:
        partial = view is None  # the stale rule alone: other states carry over
        states = dict(prev) if partial else {}
        covered = dict(self.view.covered) if partial else {}
        if partial:
            states.pop(STALE_KEY, None)
            covered.pop(STALE_RULE, None)
        states.update(ev.states)
        covered.update(ev.covered)
        silences = self._read_silences(now)
        p = plan(self._book, ev, silences, now, self.policy, self._snapshots(view), self._new_id)
        # the states whose durable part or incident may have changed (None: any): the stale
        # rule's alone, or all but the firing ones carried, and those the plan (de)attached
        carried = self.evaluator.carried
        maybe = {STALE_KEY} if partial else None if carried is None else ev.states.keys() - carried
        if maybe is not None:
            maybe = maybe | p.attached
        changes = self._changes(
            prev, states, p.book.incident_of, p.incidents, p.notices, now, maybe
        )
        self._states = states
        self._book = p.book
        if partial or self.evidence is None:
            evidence = self.view.evidence
        else:
            evidence = self.evidence.ratios()
        self.view = AlertView(states, covered, evidence)
        self._commit(now, changes)
        for iid in p.orphaned:
            log.warning("closing incident %s: none of its alerts is active", iid)
        for t in ev.transitions:
            if t.new in (State.FIRING, State.RESOLVED):
                rate = "n/a" if t.alert.rate is None else f"{t.alert.rate:.3f}"
                log.info(
                    "alert %s %s: %s -> %s (rate %s)",
                    t.key[0],
                    t.key[1],
                    t.old.value,
                    t.new.value,
                    rate,
                )

    def _read_silences(self, now: float) -> list[Silence]:
        try:
            self._silences = self.store.silences(now)
        except Exception:  # keep the last ones read: a silence must not lapse on a read error
            log.warning("cannot read silences from the state store; using the last ones read")
        return self._silences

    def _changes(
        self,
        prev: Mapping[Key, AlertState],
        states: Mapping[Key, AlertState],
        incident_of: Mapping[Key, str],
        incidents: Sequence[Incident],
        notices: Sequence[Notice],
        now: float,
        maybe: Set[Key] | None = None,
    ) -> Changes:
        """What to write: states whose durable part or incident changed, states that ended,
        and a bounded number of display refreshes (the states written longest ago first).
        ``maybe``: the only states that can have changed so (None: look at every one)."""
        old_of = self._book.incident_of
        written, due = self._written, self._due
        out: list[tuple[AlertState, str | None]] = []
        keys = states if maybe is None else [k for k in states if k in maybe]
        for k in keys:
            s = states[k]
            before = prev.get(k)
            if (
                before is None
                or durable(before) != durable(s)
                or old_of.get(k) != incident_of.get(k)
            ):
                out.append((s, incident_of.get(k)))
                written[k] = now
                heapq.heappush(due, (now, k))
        refresh: list[Key] = []
        while due and len(refresh) < REFRESH_BATCH and now - due[0][0] >= REFRESH_AFTER:
            t, k = heapq.heappop(due)
            if written.get(k) == t and k in states:  # else written since, or gone
                refresh.append(k)
                written[k] = now  # (a twin entry of the same time is stale now)
        for k in refresh:
            out.append((states[k], incident_of.get(k)))
            heapq.heappush(due, (now, k))
        deleted = [k for k in prev if k not in states]
        for k in deleted:
            written.pop(k, None)
        return Changes(
            states=out,
            deleted=deleted,
            incidents=incidents,
            notices=notices,
            members=changed_members(self._book.incidents, incidents),
        )

    def _commit(self, now: float, changes: Changes) -> None:
        if not changes and not len(self._unsaved):
            return
        if len(self._unsaved):
            self._unsaved.add(changes)
            changes = self._unsaved.changes()
        try:
            self.store.commit(now, changes)
        except Exception as exc:
            if not len(self._unsaved):
                self._unsaved.add(changes)
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
            h = self._health
            if not h.failing:
                log.error(
                    "STATE STORE COMMIT FAILED (%s): alerting continues in memory; %d change(s) "
                    "and %d notification(s) wait for a commit that works",
                    error,
                    len(self._unsaved),
                    len(self._unsaved.notices),
                )
            self._health = CommitHealth(h.failures + 1, True, len(self._unsaved), error)
            return
        if self._health.failing:
            log.info("state store commits work again; %d change(s) written", len(changes.states))
        self._unsaved = _Unsaved()
        self._health = CommitHealth(self._health.failures, False, 0, None)
        if changes.notices and self.delivery is not None:
            self.delivery.wake(len(changes.notices))
