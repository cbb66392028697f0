"""Notifiers: one small protocol, plain data in, a classified result out.

The core (``watchdog.alerting``) builds ``Notice`` values and stores them in the outbox; a
notifier renders one and sends it. It never raises: every failure becomes a ``SendResult``
whose ``reason`` is one of ``REASONS`` (the ``result`` label of
``dialnexa_slack_notifications_total``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, get_args

Reason = Literal[
    "ok",
    "rate_limited",
    "server_error",
    "timeout",
    "network_error",
    "auth_error",
    "channel_error",
    "client_error",
]
REASONS: tuple[Reason, ...] = get_args(Reason)  # every label value, pre-created at 0
# Worth trying again later (with Retry-After or backoff); the rest are permanent.
TRANSIENT: frozenset[Reason] = frozenset(
    {"rate_limited", "server_error", "timeout", "network_error"}
)

# What a notice is about: the incident's main message, or a follow-up ("action": someone
# acknowledged, silenced or unsilenced it from Slack; a thread reply saying who).
NoticeKind = Literal["main", "repeat", "resolved", "joined", "action"]
# What a Slack action did (a notice of kind "action").
Verb = Literal["ack", "silence", "unsilence"]
# How it is delivered: a new message, a reply in the main message's thread, an edit of it.
Op = Literal["post", "reply", "update"]


@dataclass(frozen=True, slots=True)
class AlertSnapshot:
    """What a message shows about one alert. Never a phone number or call metadata."""

    rule: str
    agent_id: str  # "*": workspace scope / stale
    severity: str
    state: str  # "pending" | "firing" | "resolved"
    outcome: str
    window: str
    scope: str = "agent"  # "agent" | "workspace" | "stale" | "stopped" (calls_stopped)
    agent_name: str | None = None
    rate: float | None = None
    calls: int = 0
    hits: int = 0
    threshold: float = 0.0
    clear_below: float = 0.0
    confidence: float | None = None
    bound: float | None = None
    confirm_window: str | None = None
    fired_at: float | None = None
    resolved_at: float | None = None
    peak_rate: float | None = None
    resolved_rate: float | None = None
    sparkline: tuple[float | None, ...] = ()
    last_error: str | None = None
    note: str | None = None
    age: float | None = None  # stale: seconds since the last successful poll; stopped: call
    stale_after: float | None = None  # stale: the age at which it fires; stopped: quiet_after
    # an active silence (``silence add`` or a Slack action), shown on the message
    silenced_until: float | None = None
    silenced_by: str | None = None
    silenced_until_resolved: bool = False
    # sequential rules: the agent's normal rate, where it comes from, the evidence / limit
    baseline: float | None = None
    baseline_source: str | None = None
    evidence: float | None = None


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing to tell the channel about one incident."""

    kind: NoticeKind
    op: Op
    incident: str
    rule: str
    group: bool
    at: float
    opened_at: float
    # main: every member of the incident; repeat/resolved/joined/action: the alerts concerned
    alerts: tuple[AlertSnapshot, ...] = field(default_factory=tuple)
    acked_by: str | None = None  # "@alice": the incident was acknowledged from Slack
    acked_at: float | None = None
    # kind "action": who did what (until: the silence's end; None with until_resolved)
    actor: str | None = None
    verb: Verb | None = None
    until: float | None = None
    until_resolved: bool = False


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Where an incident's main message lives (bot-token mode)."""

    channel: str
    ts: str


@dataclass(frozen=True, slots=True)
class SendResult:
    """How a send (or a look-up) went.

    ``maybe_delivered``: no success answer came, yet Slack may have posted the message (a
    timeout, a connection lost after the request went out, a 5xx). Posting again could show
    it twice: when the notifier ``can_find_posted``, call ``find_posted`` first.
    """

    reason: Reason
    ref: MessageRef | None = None  # the posted (or found) message, bot-token mode
    retry_after: float | None = None  # seconds, from Slack's Retry-After
    error: str = ""  # short, e.g. "not_in_channel" or "HTTP 500"; never a secret
    fix: str = ""  # what the operator should do, for permanent errors
    maybe_delivered: bool = False

    @property
    def ok(self) -> bool:
        return self.reason == "ok"

    @property
    def transient(self) -> bool:
        return self.reason in TRANSIENT


class Notifier(Protocol):
    """Sends notices. ``can_edit``: supports threads and edits (``reply``/``update``).
    ``can_find_posted``: can tell whether a top-level post whose answer was lost arrived."""

    name: str
    can_edit: bool
    can_find_posted: bool

    def send(self, notice: Notice, ref: MessageRef | None) -> SendResult:
        """Deliver one notice; ``ref`` is the main message for reply/update. Never raises."""
        ...

    def find_posted(
        self, incident_id: str, since: float, kind: NoticeKind = "main", at: float | None = None
    ) -> SendResult:
        """Look up the top-level message of ``incident_id`` (and ``kind``; of the notice made
        at ``at`` if given) posted since ``since``. ``ok`` with ``ref``: it is there; ``ok``
        without: it is not; ``transient``: ask again later; otherwise: cannot tell. Never
        raises."""
        ...

    def close(self) -> None: ...
