"""Value types and the status vocabulary. Pure: no I/O, no clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

# Statuses a call passes through before it settles. Both documented vocabularies
# normalise onto these (lower case, "-" -> "_").
PENDING_STATUSES: frozenset[str] = frozenset(
    {
        "created",
        "scheduled",
        "queued",
        "registered",
        "initiated",
        "dialing",
        "ringing",
        "sent",
        "received",
        "in_progress",
        "ongoing",
    }
)
# Terminal and in the denominator of every ratio. ``hangup`` is the status DialNexa's webhook
# reference gives a call that never connected; with a known ``hangup_reason`` it is refined
# (END_REASONS: user_busy -> busy, sip_auth_failed -> failed, ...); a bare ``hangup`` (no
# reason, or ``unknown``) stays ``hangup``: a settled call in the denominator that counts
# towards no outcome, as completed calls do, so it neither drops out of the ratios nor
# inflates the failed ratio with calls whose cause the API does not give.
DENOMINATOR_STATUSES: tuple[str, ...] = (
    "completed",
    "failed",
    "busy",
    "no_answer",
    "did_not_pick",
    "voicemail",
    "retry_expired",
    "hangup",
)
# Terminal but excluded from ratios.
EXCLUDED_STATUSES: tuple[str, ...] = ("cancelled",)
UNKNOWN = "unknown"
# The agent_id of alerts that are not about one agent (workspace scope, stale), also as the
# ``agent_id`` metric label.
WORKSPACE_AGENT = "*"

DEFAULT_OUTCOMES: dict[str, tuple[str, ...]] = {
    "failed": ("failed",),
    "busy": ("busy",),
    "no_answer": ("no_answer", "did_not_pick"),
}

# Spellings seen in DialNexa's differing docs, mapped onto one canonical status.
STATUS_ALIASES: dict[str, str] = {
    "canceled": "cancelled",
    "noanswer": "no_answer",
    "not_answered": "no_answer",
    "inprogress": "in_progress",
    "in_call": "in_progress",
    "answered": "in_progress",
    "ended": "completed",
    "error": "failed",
    "not_connected": "failed",
    "hang_up": "hangup",
    "hung_up": "hangup",
}

# ``end_reason`` / ``hangup_reason`` / ``disconnection_reason`` values that refine a terminal
# status into an outcome. The webhook reference's reasons for ``hangup`` (a call that never
# connected) are all here except ``unknown``: user_did_not_pick_up, user_busy,
# voicemail_detected, user_unreachable (the callee's phone is off or out of coverage: Q.850
# "subscriber absent", which SIP reports as 480 like an unanswered call, so no_answer: the
# callee, not the agent's telephony, is why), unallocated_phone_number, network_failure,
# sip_auth_failed (the agent's SIP trunk rejects its credentials: a failure the team must fix)
# and sip_trunk_unreachable.
END_REASONS: dict[str, str] = {
    "user_busy": "busy",
    "busy": "busy",
    "dial_busy": "busy",
    "line_busy": "busy",
    "user_did_not_pick_up": "no_answer",
    "dial_no_answer": "no_answer",
    "user_unreachable": "no_answer",
    "no_answer": "no_answer",
    "did_not_pick": "did_not_pick",
    "voicemail_detected": "voicemail",
    "voicemail_reached": "voicemail",
    "voicemail": "voicemail",
    "machine_detected": "voicemail",
    "network_failure": "failed",
    "sip_trunk_unreachable": "failed",
    "sip_auth_failed": "failed",
    "unallocated_phone_number": "failed",
    "invalid_destination": "failed",
    "invalid_number": "failed",
    "dial_failed": "failed",
    "telephony_error": "failed",
    "carrier_error": "failed",
}


def normalise_status(raw: str) -> str:
    """Lower case, ``-`` and spaces to ``_``, known aliases folded."""
    s = raw.strip().lower().replace("-", "_").replace(" ", "_")
    return STATUS_ALIASES.get(s, s)


def refine_status(status: str, reason: str | None) -> str:
    """Apply an ``end_reason``/``hangup_reason`` refinement to a terminal status."""
    if not reason or status in PENDING_STATUSES or status in EXCLUDED_STATUSES:
        return status
    r = normalise_status(reason)
    refined = END_REASONS.get(r)
    if refined is not None:
        return refined
    if r.startswith("error") or r.endswith("_error") or r.endswith("_failure"):
        return "failed"
    return status


class Call(NamedTuple):
    """One call as the daemon needs it: no phone numbers, no metadata, no recording URL.

    A NamedTuple: built once per listed item, so construction cost matters (bench/)."""

    id: str
    agent_id: str
    status: str  # normalised; may be a status outside the known vocabulary
    created_at: float  # epoch seconds
    settled_at: float | None = None  # ended_at, else created_at + duration; None if unknown


# What a listing is for: new calls (head), the start-up backfill, calls still in
# conversation (pending), or one old unsettled call (straggler).
RangeKind = Literal["head", "pending", "straggler", "backfill", "live"]
PAGE = 100  # items per page the API returns at most


@dataclass(frozen=True, slots=True)
class Range:
    """One listing: calls with ``start <= created_at <= end`` (optionally one agent's)."""

    start: float
    end: float
    agent_id: str | None = None
    kind: RangeKind = "head"
    est_calls: int = 0
    due: float = 0.0  # when its earliest call became due (older first when budget is short)
    pages: int = 0  # list at most this many pages, newest first (0: all); see Listing.cut

    @property
    def est_requests(self) -> int:
        return self.est_calls // PAGE + 1


@dataclass(frozen=True, slots=True)
class StatusClasses:
    """Which normalised statuses are pending, in the denominator, excluded; outcome mapping."""

    pending: frozenset[str] = PENDING_STATUSES
    denominator: tuple[str, ...] = DENOMINATOR_STATUSES
    excluded: tuple[str, ...] = EXCLUDED_STATUSES
    outcomes: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_OUTCOMES))

    @property
    def terminal(self) -> tuple[str, ...]:
        """Every status a call is counted under, ``unknown`` last."""
        return (*self.denominator, *self.excluded, UNKNOWN)

    def classify(self, status: str) -> str:
        """The status a settled call is counted under (``unknown`` if not in the vocabulary)."""
        if status in self.denominator or status in self.excluded:
            return status
        return UNKNOWN


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """One agent's (or the workspace's) settled calls in one window."""

    calls: int  # the denominator: settled calls whose status is in the denominator
    outcomes: dict[str, int]  # every configured outcome -> settled calls with that outcome

    def ratio(self, outcome: str) -> float | None:
        """Share of the denominator with ``outcome``; None when there are no calls."""
        if self.calls <= 0:
            return None
        return self.outcomes.get(outcome, 0) / self.calls


class CountsView(Protocol):
    """What rules and notifiers read: current window counts. Implemented by windows.Windows."""

    def agents(self) -> list[str]:
        """Agents with any settled call in the longest window, sorted."""
        ...

    def window_labels(self) -> list[str]:
        """Configured window labels, shortest first (e.g. ["5m", "15m", "1h"])."""
        ...

    def counts(self, agent_id: str, window: str) -> WindowCounts:
        """Counts for one agent (zero counts for an agent with no calls)."""
        ...

    def workspace(self, window: str) -> WindowCounts:
        """Counts summed over all agents."""
        ...

    def series(
        self, agent_id: str | None, outcome: str, window: str, points: int
    ) -> list[float | None]:
        """``outcome``'s ratio in ``points`` equal slices of ``window``, oldest first (for
        sparklines); None where a slice has no calls. ``agent_id=None``: the workspace."""
        ...


@dataclass(frozen=True, slots=True)
class PollStatus:
    """How polling is going, for the built-in stale rule and /readyz."""

    started_at: float
    last_success: float | None = None
    last_error: str | None = None  # e.g. "403: this API key cannot read calls on this workspace"
    last_error_kind: str | None = None  # fixed label, e.g. "auth", "http_500", "timeout"
    backfilled: bool = False
