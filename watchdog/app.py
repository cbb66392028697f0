"""The composition root: the one place that builds the object graph from ``Settings``.

``build`` returns an ``App`` holding every part (client, tracker, windows, metrics, state
store, alert pipeline, delivery worker, notifier, Slack actions, history recorder,
daemon); with a state store it resumes from the saved state when it can (a warm restart).
``run``, ``once``, ``demo``, the tests and the benchmarks all go through it; nothing else
assembles parts by hand.

Longer than ~400 lines: it is the one place the whole graph is assembled (single daemon and
a replica leading on PostgreSQL alike); split, the wiring would be read in pieces.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TextIO

import httpx
from prometheus_client import CollectorRegistry

from .actions.access import Access
from .actions.health import ActionsCollector
from .actions.http import HttpTransport
from .actions.service import ActionService, StatusReader
from .actions.slackio import SlackIO
from .actions.socket import SocketTransport
from .activity import ActivityKeeper
from .alerts.collector import AlertCollector
from .alerts.compile import compile_rules, evidence_feed
from .alerts.delivery import DeliveryWorker, RetryPolicy
from .alerts.incidents import Policy
from .alerts.pipeline import AlertPipeline
from .alerts.snapshots import Snapshots
from .alerts.state import AlertState, Evaluation, StaleRule
from .alerts.stopped import evaluate_stopped, has_stopped_rules
from .alerts.store.leader import LeaderLock
from .alerts.store.open import open_state
from .alerts.store.sql import SqlStore
from .clock import Clock
from .config import ConfigError, Settings, SlackSettings, validate_rules
from .daemon import CycleReport, Watchdog
from .heartbeat import ApiMetrics, Heartbeat
from .history import Followed, Recorder, Resumed, start_history
from .ingest.client import ApiClient, RateLimiter
from .ingest.directory import AgentDirectory, DirectoryCollector
from .ingest.tracker import Tracker, TrackerConfig
from .metrics import Metrics, leader_gauge
from .model import CountsView, PollStatus
from .notify import Notifier
from .notify.console import ConsoleNotifier
from .notify.slack import SlackBotNotifier, SlackWebhookNotifier
from .readiness import STATE_STORE_FAILING
from .redact import register_secrets, secrets_in
from .windows import Windows

log = logging.getLogger("watchdog.app")


def build_notifier(slack: SlackSettings, stream: TextIO | None) -> Notifier:
    """Bot token (with channel) > webhook > console."""
    if slack.token is not None and slack.channel:
        return SlackBotNotifier(
            slack.token.get_secret_value(),
            slack.channel,
            api_url=slack.api_url,
            timeout=slack.timeout,
            dashboard_url=slack.dashboard_url,
            buttons=slack.actions.mode != "off",
        )
    if slack.webhook_url is not None:
        return SlackWebhookNotifier(
            slack.webhook_url.get_secret_value(),
            timeout=slack.timeout,
            dashboard_url=slack.dashboard_url,
        )
    return ConsoleNotifier(stream)


class Closeable(Protocol):
    def close(self) -> None: ...


@dataclass
class Actions:
    """Slack actions: the service doing the work and the transport bringing requests in."""

    service: ActionService
    transport: SocketTransport | HttpTransport
    collector: ActionsCollector
    registry: CollectorRegistry

    def close(self) -> None:
        with contextlib.suppress(KeyError):  # closed twice
            self.registry.unregister(self.collector)
        self.transport.close()
        self.service.close()


@dataclass
class Alerts:
    """The alert path's parts, as one ``daemon.AlertHook``."""

    store: SqlStore
    pipeline: AlertPipeline
    delivery: DeliveryWorker
    notifier: Notifier
    collector: AlertCollector
    registry: CollectorRegistry
    actions: Closeable | None = None  # Slack actions (stopped first on close)
    metrics: Metrics | None = None  # renders the collector's per-alert families apart

    def on_poll(self, view: CountsView, poll: PollStatus, now: float) -> None:
        self.pipeline.on_poll(view, poll, now)

    def on_tick(self, poll: PollStatus, now: float) -> None:
        self.pipeline.on_tick(poll, now)

    def deliver_due(self, now: float) -> None:
        self.delivery.deliver_due(now)

    def readiness(self) -> list[str]:
        h = self.pipeline.health
        return [STATE_STORE_FAILING] if h.failing else []

    def close(self) -> None:
        if self.actions is not None:
            self.actions.close()
            self.actions = None
        self.pipeline.close()
        with contextlib.suppress(KeyError, ValueError):  # closed twice
            if self.metrics is not None:
                self.metrics.unregister_apart(self.collector)
            else:
                self.registry.unregister(self.collector)
        self.delivery.close()
        self.store.close()


def build_alerts(
    settings: Settings,
    registry: CollectorRegistry,
    clock: Clock,
    *,
    stream: TextIO | None = None,
    notifier: Notifier | None = None,
    exclusive: bool = False,
    retry: RetryPolicy | None = None,
    rand: Callable[[], float] = random.random,
    leader: LeaderLock | None = None,
    name_of: Callable[[str], str | None] | None = None,
    metrics: Metrics | None = None,
) -> Alerts:
    """The alert path: store, rules, planner policy, pipeline, delivery, metrics.
    ``name_of``: agent id -> the name people read (the agent directory's ``title_of``;
    default ``slack.agent_names``); ``metrics``: /metrics renders the per-alert families
    apart (else the collector is registered on ``registry`` alone). Raises ``ConfigError``
    for bad rules and ``store.StateError`` for an unusable state."""
    problems = validate_rules(settings)
    if problems:
        raise ConfigError(problems)
    rules = compile_rules(settings.rules, settings.window_seconds)
    stale = StaleRule(settings.alerts.stale_after, settings.alerts.stale_severity)
    # a replica that leads holds the leader lock already: the store is shared
    epoch = None if leader is None else (lambda: leader.epoch)
    store = open_state(settings.state, clock.now(), exclusive=exclusive and not epoch, epoch=epoch)
    try:
        sender = notifier if notifier is not None else build_notifier(settings.slack, stream)
        counted = settings.slack.mode != "none"
        delivery = DeliveryWorker(
            store, sender, policy=retry, rand=rand, count_results=counted, epoch=epoch
        )
        if name_of is None:
            name_of = dict(settings.slack.agent_names).get
        snapshots = Snapshots(rules, name_of, settings.alerts.sparkline_points)
        policy = Policy(
            can_edit=sender.can_edit,
            group_threshold=settings.slack.group_threshold,
            repeat_interval=settings.slack.repeat_interval,
            groupable=frozenset(r.name for r in rules if r.scope == "agent"),
        )
        pipeline = AlertPipeline(rules, stale, store, policy, snapshots.bind, delivery=delivery)
        pipeline.evidence = evidence_feed(settings, rules)  # sequential rules' detector
        delivery.resume(clock.now())
    except BaseException:
        store.close()
        raise
    severities = {r.name: r.severity for r in rules}
    severities["stale"] = stale.severity
    collector = AlertCollector(
        lambda: pipeline.view,
        severities,
        lambda: pipeline.health,
        delivery.results,
        delivery.backlog,
    )
    if metrics is not None:
        metrics.register_apart(collector)
    else:
        registry.register(collector)
    log.info(
        "alerting: %d rule(s), stale check %s, notifications via %s, state in %s",
        len(rules),
        "off" if stale.after <= 0 else f"after {stale.after:g}s",
        sender.name,
        store.where,
    )
    return Alerts(store, pipeline, delivery, sender, collector, registry, metrics=metrics)


def build_actions(
    settings: Settings,
    clock: Clock,
    alerts: Alerts,
    view: CountsView,
    lock: threading.Lock,
    *,
    socket_ping: float = 10.0,
    name_of: Callable[[str], str | None] | None = None,
) -> Actions | None:
    """Slack actions (``slack.actions.mode``), started: Socket Mode connects in the
    background; HTTP mode listens on ``slack.actions.listen`` (``ConfigError`` when it
    cannot). None when off."""
    slack = settings.slack
    cfg = slack.actions
    if cfg.mode == "off" or slack.token is None:
        return None
    io = SlackIO(slack.token.get_secret_value(), slack.api_url, slack.timeout)
    access = Access(
        cfg.allowed_users, cfg.allowed_usergroups, io.usergroup_members, clock, cfg.usergroup_cache
    )
    if name_of is None:
        name_of = dict(slack.agent_names).get
    reader = StatusReader(
        view, lock, list(settings.outcomes), settings.alerts.sparkline_points, name_of
    )
    service = ActionService(
        alerts.pipeline,
        alerts.store,
        io,
        access,
        clock,
        reader,
        team_id=cfg.team_id,
        deliver=alerts.delivery.deliver_due,
    )
    transport: SocketTransport | HttpTransport
    if cfg.mode == "socket" and slack.app_token is not None:
        transport = SocketTransport(
            slack.app_token.get_secret_value(),
            slack.api_url,
            service.dispatch,
            timeout=slack.timeout,
            ping_interval=socket_ping,
        )
    elif cfg.mode == "http" and slack.signing_secret is not None:
        host, port = cfg.host_port
        try:
            transport = HttpTransport(
                host, port, slack.signing_secret.get_secret_value(), clock, service.dispatch
            )
        except OSError as exc:
            service.close()
            raise ConfigError(
                [f"slack.actions.listen: cannot listen on {cfg.listen}: {exc.strerror or exc}"]
            ) from None
    else:  # the settings' validation makes this unreachable
        service.close()
        return None
    transport.start()
    collector = ActionsCollector(transport, cfg.mode)
    alerts.registry.register(collector)
    log.info("Slack actions on (%s): buttons on firing messages and the slash command", cfg.mode)
    return Actions(service, transport, collector, alerts.registry)


@dataclass
class App:
    settings: Settings
    clock: Clock
    registry: CollectorRegistry
    windows: Windows
    tracker: Tracker
    client: ApiClient
    metrics: Metrics
    daemon: Watchdog
    alerts: Alerts | None
    recorder: Recorder | None = None  # the recorded history (with the state store)
    resumed: Resumed | None = None  # set when this start resumed from the saved state
    directory: AgentDirectory | None = None  # the agent directory (GET /agents2)

    def close(self) -> None:
        self.daemon.close()


def build_windows(settings: Settings) -> Windows:
    return Windows(settings.window_seconds, settings.status_classes)


def build_activity(
    alerts: Alerts | None, directory: AgentDirectory, clock: Clock
) -> ActivityKeeper | None:
    """With a ``calls_stopped`` rule: the agents' call activity (kept in the state store)
    and the pipeline's evaluation of those rules against it and the directory."""
    if alerts is None or not has_stopped_rules(alerts.pipeline.rules):
        return None
    keeper = ActivityKeeper.start(alerts.store, clock.now())
    rules = alerts.pipeline.rules

    def stopped(prev: Mapping[tuple[str, str], AlertState], now: float) -> Evaluation:
        return evaluate_stopped(rules, prev, keeper.activity, directory.is_active, now)

    alerts.pipeline.stopped = stopped
    return keeper


def build_tracker(
    settings: Settings,
    windows: Windows,
    call_limit: Callable[[str], float | None] | None = None,
    longest_limit: Callable[[], float | None] | None = None,
) -> Tracker:
    """``call_limit``: the agent directory's per-agent limits (``AgentDirectory.limit_of``);
    ``longest_limit``: the longest of them (``AgentDirectory.longest_limit``), how far before
    the longest window the backfill reaches."""
    p = settings.poll
    explicit = None if p.agents == "all" else tuple(p.agents)
    return Tracker(
        TrackerConfig(
            longest_window=settings.longest_window,
            max_pending_age=p.max_pending_age,
            max_call_duration=p.max_call_duration,
            settle_horizon=p.settle_horizon,
            pending_recheck=p.pending_recheck,
            overlap=p.overlap,
            max_agents=p.max_agents,
            agents=explicit,
            # auto starts workspace-wide and decides after the backfill (choose_listing)
            per_agent=explicit is not None and p.listing == "per_agent",
            live=p.pending_listing in ("auto", "status"),
        ),
        windows,
        settings.status_classes,
        call_limit if settings.agents.call_limits else None,
        longest_limit
        if settings.agents.call_limits and settings.agents.backfill_agent_limits
        else None,
    )


def build(
    settings: Settings,
    clock: Clock,
    *,
    alerting: bool = True,
    registry: CollectorRegistry | None = None,
    transport: httpx.BaseTransport | None = None,
    stream: TextIO | None = None,
    notifier: Notifier | None = None,
    exclusive_state: bool = False,
    leader: LeaderLock | None = None,
    followed: Followed | None = None,
    on_cycle: Callable[[CycleReport], None] | None = None,
    timer: Callable[[], float] = time.perf_counter,
    socket_ping: float = 10.0,
) -> App:
    """Everything, from ``settings``. ``alerting=False`` leaves the alert path (and the state
    store) out, as ``once`` does; ``transport`` replaces the network (tests, benchmarks);
    ``exclusive_state``: the daemon holds the state store's lock (``run``); ``leader``:
    this replica leads with that lock (``replica.py``), its deliveries fenced by its epoch;
    ``followed``: the windows it kept warm as a standby (only newer cycles are applied).
    Slack actions
    (``slack.actions.mode``) start with the alert path; ``socket_ping``: seconds between
    Socket Mode pings (a dropped connection is replaced within about one)."""
    # before anything can log or raise: every secret in the settings is masked everywhere
    register_secrets(*secrets_in(settings))
    registry = registry if registry is not None else CollectorRegistry()
    lock = threading.Lock()
    windows = followed.windows if followed is not None else build_windows(settings)
    metrics = Metrics(registry, windows, lock)
    leader_gauge(registry, lambda: leader is None or leader.epoch is not None)
    heartbeat = Heartbeat(clock)
    d = settings.dialnexa
    client = ApiClient(
        d.base_url,
        d.api_key,
        clock,
        timeout=d.timeout,
        page_size=d.page_size,
        limiter=RateLimiter(
            d.rate_limit, d.rate_limit_period, d.rate_budget, settings.poll.interval
        ),
        max_retries=d.max_retries,
        backoff_base=d.backoff_base,
        backoff_max=d.backoff_max,
        observer=ApiMetrics(metrics, heartbeat),
        transport=transport,
        max_response_bytes=d.max_response_bytes,
        # a longer wait (a long Retry-After) defers the listing instead of blocking the poll
        # thread; pacing to the rate-limit window's reset (the backfill) may still wait
        max_sleep=max(settings.poll.interval, d.rate_limit_period),
    )
    directory = AgentDirectory(
        client if settings.agents.directory else None,
        clock,
        refresh=settings.agents.refresh,
        margin=settings.agents.limit_margin,
        names=settings.slack.agent_names,
        call_limits=settings.agents.call_limits,
    )
    metrics.register_apart(DirectoryCollector(directory))
    tracker = build_tracker(settings, windows, directory.limit_of, directory.longest_limit)
    alerts = None
    if alerting:
        try:
            alerts = build_alerts(
                settings,
                registry,
                clock,
                stream=stream,
                notifier=notifier,
                exclusive=exclusive_state,
                leader=leader,
                name_of=directory.title_of,
                metrics=metrics,
            )
        except BaseException:
            client.close()
            raise
        directory.memory = alerts.store  # names and limits before the first listing
        directory.load()
    recorder, resumed = None, None
    if alerts is not None:  # the history lives in the state store: resume, then record
        try:
            recorder, resumed = start_history(
                alerts.store,
                windows,
                tracker,
                retention=settings.history.retention,
                warm=settings.history.warm_restart,
                now=clock.now(),
                followed=followed,
            )
        except BaseException:
            client.close()
            alerts.close()
            raise
        if alerts.pipeline.evidence is not None:  # fed every cycle, and the recent history
            alerts.pipeline.evidence.attach(recorder, windows, clock.now(), alerts.store)
    if alerts is not None:
        try:
            alerts.actions = build_actions(
                settings,
                clock,
                alerts,
                windows,
                lock,
                socket_ping=socket_ping,
                name_of=directory.title_of,
            )
        except BaseException:
            client.close()
            alerts.close()
            raise
    activity = build_activity(alerts, directory, clock)
    daemon = Watchdog(
        settings,
        clock,
        client=client,
        tracker=tracker,
        windows=windows,
        metrics=metrics,
        lock=lock,
        heartbeat=heartbeat,
        alerts=alerts,
        on_cycle=on_cycle,
        timer=timer,
        memory=alerts.store if alerts is not None else None,
        record=recorder.record if recorder is not None else None,
        directory=directory if directory.enabled else None,
        activity=activity,
    )
    return App(
        settings,
        clock,
        registry,
        windows,
        tracker,
        client,
        metrics,
        daemon,
        alerts,
        recorder,
        resumed,
        directory,
    )
