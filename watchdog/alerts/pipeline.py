"""The alerting facade the daemon wires in: evaluate, persist, notify.

``on_poll`` runs the pure evaluator (``watchdog.rules``), decides what to tell the channel
(one message per incident, a grouped message for a storm, thread replies for repeats, an edit
plus a reply on resolution) and writes states and notices to the store in one transaction.
``deliver_due`` sends what is due from the outbox, oldest first and one at a time per incident,
honouring Retry-After and backing off on 5xx and network errors.

Alerts that are not about one agent (``scope: workspace`` rules and the built-in ``stale``
rule) carry the agent id ``"*"``, also as the ``agent_id`` metric label.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import TextIO

import prometheus_client
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..clock import Clock
from ..config import ConfigError, Settings, SlackSettings, validate_rules
from ..model import WORKSPACE_AGENT, CountsView, PollStatus
from ..notify import REASONS, AlertSnapshot, Notice, NoticeKind, Notifier, Op, Reason
from ..notify.console import ConsoleNotifier
from ..notify.slack import SlackBotNotifier, SlackWebhookNotifier
from .compile import compile_rules
from .rules import (
    STALE_RULE,
    AlertState,
    Evaluation,
    Rule,
    Silence,
    StaleRule,
    State,
    evaluate,
    is_silenced,
    needs_notify,
)
from .store import Incident, OutboxEntry, Store

log = logging.getLogger(__name__)

Key = tuple[str, str]

MAX_SENDS_PER_CALL = 20
BACKOFF_BASE = 2.0  # seconds; doubles per failed attempt
BACKOFF_MAX = 300.0
DEFAULT_RETRY_AFTER = 5.0  # when a 429 comes without Retry-After
MAX_AGE = 86400.0  # a notice not delivered within a day is given up (and logged)
PURGE_EVERY = 3600.0


def backoff(attempts: int) -> float:
    """Delay before the next try after ``attempts`` failed ones (2s, 4s, 8s ... 5m)."""
    return float(min(BACKOFF_MAX, BACKOFF_BASE * 2 ** max(0, attempts - 1)))


def make_notifier(slack: SlackSettings, stream: TextIO | None) -> Notifier:
    """Bot token (with channel) > webhook > console."""
    if slack.token is not None and slack.channel:
        return SlackBotNotifier(
            slack.token.get_secret_value(),
            slack.channel,
            api_url=slack.api_url,
            timeout=slack.timeout,
            dashboard_url=slack.dashboard_url,
        )
    if slack.webhook_url is not None:
        return SlackWebhookNotifier(
            slack.webhook_url.get_secret_value(),
            timeout=slack.timeout,
            dashboard_url=slack.dashboard_url,
        )
    return ConsoleNotifier(stream)


class Alerting:
    """Rules, state, Slack. Built once by the daemon; every public method is safe to call
    from scheduler threads and never raises (except the constructor: ``ConfigError`` for bad
    rules, ``store.StateError`` for an unusable state file)."""

    def __init__(
        self,
        settings: Settings,
        registry: prometheus_client.CollectorRegistry,
        clock: Clock,
        stream: TextIO | None = None,
    ) -> None:
        problems = validate_rules(settings)
        if problems:
            raise ConfigError(problems)
        self._clock = clock
        self._slack = settings.slack
        self._points = settings.alerts.sparkline_points
        self._rules: list[Rule] = compile_rules(settings.rules, settings.window_seconds)
        self._rule_by_name = {r.name: r for r in self._rules}
        self._stale = StaleRule(settings.alerts.stale_after, settings.alerts.stale_severity)
        self._store = Store(settings.state.path, now=clock.now())
        self._notifier: Notifier = make_notifier(settings.slack, stream)
        self._lock = threading.RLock()  # in-memory state below
        self._deliver_lock = threading.Lock()  # one delivery pass at a time
        self._states, self._incident_of = self._store.load_states()
        self._incidents: dict[str, Incident] = self._store.load_incidents(open_only=True)
        self._covered: dict[str, tuple[str, ...]] = {}
        self._sent: dict[Reason, int] = dict.fromkeys(REASONS, 0)
        self._outbox_pending = self._store.pending_count()
        self._hold_until = 0.0
        self._logged_errors: set[str] = set()
        self._failing = False
        self._last_purge = 0.0
        self._closed = False
        self._registry = registry
        self._collector = _AlertCollector(self)
        registry.register(self._collector)
        log.info(
            "alerting: %d rule(s), stale check %s, notifications via %s, state in %s",
            len(self._rules),
            "off" if self._stale.after <= 0 else f"after {self._stale.after:g}s",
            self._notifier.name,
            self._store.path,
        )

    @property
    def notifier(self) -> Notifier:
        return self._notifier

    @property
    def store(self) -> Store:
        return self._store

    def states(self) -> dict[Key, AlertState]:
        with self._lock:
            return dict(self._states)

    # ---- evaluation --------------------------------------------------------------------

    def on_poll(self, view: CountsView, poll: PollStatus, now: float) -> None:
        """Evaluate the rules after a poll, persist states and enqueue notices."""
        if self._closed:
            return
        try:
            with self._lock:
                try:
                    self._on_poll(view, poll, now)
                except Exception:
                    # Nothing of this evaluation was committed: forget what the planner
                    # changed in memory, so the next poll plans again from the store.
                    self._reload()
                    raise
        except Exception:
            log.exception("alert evaluation failed; it runs again after the next poll")

    def _reload(self) -> None:
        self._states, self._incident_of = self._store.load_states()
        self._incidents = self._store.load_incidents(open_only=True)

    def _on_poll(self, view: CountsView, poll: PollStatus, now: float) -> None:
        silences = self._store.silences(now)
        ev = evaluate(self._rules, self._states, view, poll, now, self._stale)
        prev_states, prev_of = self._states, dict(self._incident_of)
        notices, touched = _Planner(self, ev, view, silences, now).plan()
        changed = [
            (s, self._incident_of.get(k))
            for k, s in ev.states.items()
            if prev_states.get(k) != s or prev_of.get(k) != self._incident_of.get(k)
        ]
        deleted = [k for k in prev_states if k not in ev.states]
        for k in deleted:
            self._incident_of.pop(k, None)
        self._store.commit(
            now,
            states=changed,
            deleted=deleted,
            incidents=[self._incidents[i] for i in sorted(touched)],
            notices=notices,
        )
        for iid in touched:
            if self._incidents[iid].closed_at is not None:
                del self._incidents[iid]
        self._states = ev.states
        self._covered = ev.covered
        self._outbox_pending += len(notices)
        for t in ev.transitions:
            if t.new in (State.FIRING, State.RESOLVED):
                log.info(
                    "alert %s %s: %s -> %s (rate %s)",
                    t.key[0],
                    t.key[1],
                    t.old.value,
                    t.new.value,
                    "n/a" if t.alert.rate is None else f"{t.alert.rate:.3f}",
                )

    def snapshot(
        self, st: AlertState, view: CountsView | None, base: AlertSnapshot | None = None
    ) -> AlertSnapshot:
        """What a message shows about ``st`` (the sparkline read from ``view``). ``base``:
        an earlier snapshot, for alerts whose rule is no longer configured."""
        rule = self._rule_by_name.get(st.rule)
        spark: tuple[float | None, ...] = ()
        confidence: float | None = None
        confirm: str | None = None
        scope: str
        if rule is not None:
            outcome, window, scope = rule.outcome, rule.window, rule.scope
            confidence, confirm = rule.confidence, rule.confirm_window
            if view is not None:
                agent = None if rule.scope == "workspace" else st.agent_id
                try:
                    spark = tuple(view.series(agent, rule.outcome, rule.window, self._points))
                except Exception:  # a sparkline is decoration; never fail a notice for it
                    log.debug("no sparkline for %s/%s", st.rule, st.agent_id, exc_info=True)
        elif st.rule == STALE_RULE:
            outcome, window, scope = "", "", "stale"
        elif base is not None:
            outcome, window, scope = base.outcome, base.window, base.scope
            confidence, confirm, spark = base.confidence, base.confirm_window, base.sparkline
        else:
            outcome, window = "?", "?"
            scope = "workspace" if st.agent_id == WORKSPACE_AGENT else "agent"
        return AlertSnapshot(
            rule=st.rule,
            agent_id=st.agent_id,
            severity=st.severity,
            state=st.state.value,
            outcome=outcome,
            window=window,
            scope=scope,
            agent_name=self._slack.agent_names.get(st.agent_id),
            rate=st.rate,
            calls=st.calls,
            hits=st.hits,
            threshold=st.threshold,
            clear_below=st.clear_below,
            confidence=confidence,
            bound=st.bound,
            confirm_window=confirm,
            fired_at=st.fired_at,
            resolved_at=st.resolved_at,
            peak_rate=st.peak_rate,
            resolved_rate=st.resolved_rate,
            sparkline=spark,
            last_error=st.last_error,
            note=st.note,
        )

    # ---- delivery ----------------------------------------------------------------------

    def deliver_due(self, now: float) -> None:
        """Send what is due from the outbox. Called every ~1s; returns quickly when idle."""
        if self._closed or now < self._hold_until:
            return
        if not self._deliver_lock.acquire(blocking=False):
            return  # a previous pass is still sending
        try:
            self._deliver(now)
        except Exception:
            log.exception("notification delivery failed; it runs again shortly")
        finally:
            self._deliver_lock.release()

    def _deliver(self, now: float) -> None:
        if now - self._last_purge >= PURGE_EVERY:
            self._last_purge = now
            self._store.purge(now)
        if self._outbox_pending <= 0:
            self._outbox_pending = self._store.pending_count()
            if self._outbox_pending <= 0:
                return
        budget = MAX_SENDS_PER_CALL
        while budget > 0:
            entries = self._store.due(now, limit=budget)
            if not entries:
                break
            for entry in entries:
                budget -= 1
                if not self._deliver_one(entry, now):
                    return  # rate limited: everything waits for Retry-After
        self._outbox_pending = self._store.pending_count()

    def _deliver_one(self, entry: OutboxEntry, now: float) -> bool:
        """Send one notice; False when Slack rate-limits us."""
        notice = entry.notice
        if now - entry.created_at > MAX_AGE:
            self._store.mark_failed(entry.id, now, "expired")
            log.error(
                "gave up a %s notification for %s after %s of failed attempts",
                notice.kind,
                notice.incident,
                "a day",
            )
            return True
        if notice.op != "post" and (entry.ref is None or not self._notifier.can_edit):
            # No main message to thread or edit: it failed, or the incident was opened in a
            # mode without edits. Edits are dropped; follow-ups become standalone messages.
            if notice.op == "update" or entry.post_failed:
                self._store.mark_failed(entry.id, now, "skipped: no main message")
                return True
            notice = replace(notice, op="post")
        result = self._notifier.send(notice, entry.ref)
        if self._notifier.counts_as_slack:
            with self._lock:
                self._sent[result.reason] += 1
        if result.ok:
            ref = result.ref if notice.op == "post" and notice.kind == "main" else None
            self._store.mark_sent(entry.id, now, ref)
            if self._failing:
                log.info("notifications via %s are being delivered again", self._notifier.name)
            self._failing = False
            self._logged_errors.clear()
            return True
        what = f"{self._notifier.name} {notice.kind} {notice.op} for {notice.incident}"
        if result.reason == "rate_limited":
            wait = result.retry_after if result.retry_after is not None else DEFAULT_RETRY_AFTER
            self._hold_until = now + wait
            self._store.retry_later(entry.id, now + wait, result.error or "rate_limited")
            log.warning("%s: rate limited by Slack; retrying after %gs (Retry-After)", what, wait)
            return False
        if result.transient:
            delay = backoff(entry.attempts + 1)
            self._store.retry_later(entry.id, now + delay, result.error)
            if not self._failing:
                log.warning(
                    "%s failed (%s: %s); retrying with backoff, nothing is lost",
                    what,
                    result.reason,
                    result.error,
                )
            self._failing = True
            return True
        self._store.mark_failed(entry.id, now, result.error)
        code = f"{result.reason}:{result.error}"
        if code not in self._logged_errors:
            self._logged_errors.add(code)
            fix = f"; fix: {result.fix}" if result.fix else ""
            log.error(
                "%s failed permanently (%s: %s)%s",
                what,
                result.reason,
                result.error,
                fix,
            )
        return True

    # ---- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(KeyError):
            self._registry.unregister(self._collector)
        with self._deliver_lock:
            self._notifier.close()
            self._store.close()

    # ---- metrics -----------------------------------------------------------------------

    def _metric_rows(self) -> Iterator[tuple[str, str, str, State]]:
        with self._lock:
            covered = dict(self._covered)
            states = dict(self._states)
        seen: set[Key] = set()
        for rule_name, agents in covered.items():
            rule = self._rule_by_name.get(rule_name)
            default = rule.severity if rule is not None else self._stale.severity
            for agent in agents:
                key = (rule_name, agent)
                seen.add(key)
                st = states.get(key)
                yield (
                    rule_name,
                    agent,
                    st.severity if st else default,
                    (st.state if st else State.INACTIVE),
                )
        for key, st in states.items():
            if key not in seen:
                yield key[0], key[1], st.severity, st.state

    def _slack_counts(self) -> dict[Reason, int]:
        with self._lock:
            return dict(self._sent)


class _Planner:
    """Turns one evaluation into incident changes and outbox notices."""

    def __init__(
        self,
        owner: Alerting,
        ev: Evaluation,
        view: CountsView,
        silences: Sequence[Silence],
        now: float,
    ) -> None:
        self.o = owner
        self.ev = ev
        self.view = view
        self.silences = silences
        self.now = now
        self.edit = owner.notifier.can_edit
        self.notices: list[Notice] = []
        self.touched: set[str] = set()

    def notice(
        self, inc: Incident, kind: NoticeKind, op: Op, alerts: Iterable[AlertSnapshot]
    ) -> None:
        self.notices.append(
            Notice(
                kind=kind,
                op=op,
                incident=inc.id,
                rule=inc.rule,
                group=inc.group,
                at=self.now,
                opened_at=inc.opened_at,
                alerts=tuple(alerts),
            )
        )
        self.touched.add(inc.id)

    def snap(self, st: AlertState, inc: Incident | None = None) -> AlertSnapshot:
        base = inc.members.get(st.agent_id) if inc is not None else None
        return self.o.snapshot(st, self.view, base)

    def members(self, inc: Incident) -> list[AlertSnapshot]:
        """Every member, firing ones refreshed from the current states."""
        for agent in list(inc.members):
            st = self.ev.states.get((inc.rule, agent))
            if st is not None and st.state is State.FIRING:
                inc.members[agent] = self.snap(st, inc)
        return sorted(inc.members.values(), key=lambda a: a.agent_id)

    def silenced(self, key: Key) -> bool:
        return is_silenced(self.silences, key[0], key[1], self.now)

    def plan(self) -> tuple[list[Notice], set[str]]:
        self.resolutions()
        opened = self.openings()
        self.repeats(opened)
        self.orphans()
        return self.notices, self.touched

    def resolutions(self) -> None:
        by_incident: dict[str, list[AlertState]] = {}
        for t in self.ev.transitions:
            if t.new is not State.RESOLVED:
                continue
            iid = self.o._incident_of.pop(t.key, None)
            if iid is not None and iid in self.o._incidents:
                by_incident.setdefault(iid, []).append(t.alert)
        for iid, alerts in by_incident.items():
            inc = self.o._incidents[iid]
            snaps = [self.snap(a, inc) for a in alerts]
            for s in snaps:
                inc.members[s.agent_id] = s
            if all(m.state == "resolved" for m in inc.members.values()):
                inc.closed_at = self.now
            if self.edit:
                self.notice(inc, "main", "update", self.members(inc))
                self.notice(inc, "resolved", "reply", snaps)
            else:
                self.notice(inc, "resolved", "post", snaps)
            self.touched.add(iid)

    def openings(self) -> set[str]:
        """Incidents for firing alerts that have none yet (and are not silenced)."""
        o = self.o
        new_by_rule: dict[str, list[AlertState]] = {}
        for key, st in sorted(self.ev.states.items()):
            if st.state is State.FIRING and key not in o._incident_of and not self.silenced(key):
                new_by_rule.setdefault(st.rule, []).append(st)
        opened: set[str] = set()
        for rule_name, alerts in new_by_rule.items():
            rule = o._rule_by_name.get(rule_name)
            groupable = rule is not None and rule.scope == "agent"
            open_group = next(
                (
                    i
                    for i in o._incidents.values()
                    if i.rule == rule_name and i.group and i.closed_at is None
                ),
                None,
            )
            if groupable and open_group is not None:
                snaps = [self.snap(a) for a in alerts]
                for a, s in zip(alerts, snaps, strict=True):
                    open_group.members[a.agent_id] = s
                    o._incident_of[a.key] = open_group.id
                if self.edit:
                    self.notice(open_group, "main", "update", self.members(open_group))
                    self.notice(open_group, "joined", "reply", snaps)
                else:
                    self.notice(open_group, "joined", "post", snaps)
                opened.add(open_group.id)
            elif groupable and len(alerts) >= o._slack.group_threshold:
                inc = self.open(rule_name, "group", True, alerts)
                self.notice(inc, "main", "post", self.members(inc))
                opened.add(inc.id)
            else:
                for a in alerts:
                    inc = self.open(rule_name, a.agent_id, False, [a])
                    self.notice(inc, "main", "post", self.members(inc))
                    opened.add(inc.id)
        return opened

    def open(self, rule: str, label: str, group: bool, alerts: Sequence[AlertState]) -> Incident:
        iid = f"{rule}/{label}/{int(self.now)}-{uuid.uuid4().hex[:8]}"
        inc = Incident(
            id=iid,
            rule=rule,
            group=group,
            opened_at=self.now,
            members={a.agent_id: self.snap(a) for a in alerts},
            last_notified_at=self.now,
        )
        self.o._incidents[iid] = inc
        for a in alerts:
            self.o._incident_of[a.key] = iid
        self.touched.add(iid)
        return inc

    def repeats(self, skip: set[str]) -> None:
        o = self.o
        for inc in list(o._incidents.values()):
            if inc.closed_at is not None or inc.id in skip:
                continue
            loud = [
                st
                for agent in inc.members
                if (st := self.ev.states.get((inc.rule, agent))) is not None
                and st.state is State.FIRING
                and o._incident_of.get(st.key) == inc.id
                and not self.silenced(st.key)
            ]
            if not loud or not needs_notify(
                loud[0], inc.last_notified_at, o._slack.repeat_interval, self.now
            ):
                continue
            snaps = [self.snap(st, inc) for st in loud]
            for s in snaps:
                inc.members[s.agent_id] = s
            inc.last_notified_at = self.now
            self.notice(inc, "repeat", "reply" if self.edit else "post", snaps)

    def orphans(self) -> None:
        """Close incidents no alert belongs to any more (e.g. an unreadable stored state)."""
        attached = set(self.o._incident_of.values())
        for inc in list(self.o._incidents.values()):
            if inc.closed_at is None and inc.id not in attached:
                log.warning("closing incident %s: none of its alerts is active", inc.id)
                inc.closed_at = self.now
                self.touched.add(inc.id)


class _AlertCollector(Collector):
    """``dialnexa_alert_firing``/``_pending`` per (rule, agent), Slack delivery counters."""

    def __init__(self, owner: Alerting) -> None:
        self._owner = owner

    def _families(
        self,
    ) -> tuple[GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily, GaugeMetricFamily]:
        labels = ["rule", "agent_id", "severity"]
        return (
            GaugeMetricFamily(
                "dialnexa_alert_firing",
                '1 while the alert is firing, else 0 (agent_id "*": workspace-wide or stale)',
                labels=labels,
            ),
            GaugeMetricFamily(
                "dialnexa_alert_pending",
                "1 while the alert's condition holds but 'for' has not yet passed, else 0",
                labels=labels,
            ),
            CounterMetricFamily(
                "dialnexa_slack_notifications",
                "Slack delivery attempts by result",
                labels=["result"],
            ),
            GaugeMetricFamily(
                "dialnexa_slack_outbox_messages",
                "Notifications written to the outbox and not yet delivered",
            ),
        )

    def describe(self) -> Iterator[Metric]:
        yield from self._families()

    def collect(self) -> Iterator[Metric]:
        firing, pending, slack, outbox = self._families()
        for rule, agent, severity, state in self._owner._metric_rows():
            labels = [rule, agent, severity]
            firing.add_metric(labels, 1.0 if state is State.FIRING else 0.0)
            pending.add_metric(labels, 1.0 if state is State.PENDING else 0.0)
        for reason, n in self._owner._slack_counts().items():
            slack.add_metric([reason], float(n))
        outbox.add_metric([], float(max(0, self._owner._outbox_pending)))
        yield firing
        yield pending
        yield slack
        yield outbox
