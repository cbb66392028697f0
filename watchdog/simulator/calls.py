"""Simulated calls: outcomes, the lifecycle as a pure function of time, and how each
DialNexa response shape and status vocabulary spells a call's status. Pure: no I/O, no clock.

Lifecycle of a call created at ``c`` with ``ring`` and ``talk`` seconds:

* ``initiated`` for ``c <= t < c + min(1, ring)``
* ``ringing`` until ``c + ring``
* answered outcomes (``completed``, ``voicemail``, ``dropped``): ``in_progress`` until
  ``c + ring + talk``, then the outcome
* every other outcome: the outcome from ``c + ring`` on (talk is 0)

The settle time is the end of that sequence; ``duration`` is the talk time (0 unanswered).

``dropped`` is a call that failed after it was answered (the line dropped mid-conversation):
it shows ``failed`` with an ``ended_at`` after the answer. ``hangup`` is DialNexa's webhook
status for a call that never connected, here without a usable reason (``unknown`` or none).

Vocabularies (per agent): ``underscore`` and ``hyphen`` are the two List Calls spellings;
``webhook`` spells every call that never connected as ``hangup`` with a ``hangup_reason``
(``user_busy``, ``user_unreachable``, ``sip_auth_failed``...), as DialNexa's webhook
reference does, and answered calls as ``completed`` with who hung up first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Shape = Literal["v1", "v2", "bare"]
Vocab = Literal["underscore", "hyphen", "webhook"]

SHAPES: tuple[Shape, ...] = ("v1", "v2", "bare")
VOCABS: tuple[Vocab, ...] = ("underscore", "hyphen", "webhook")

# Final outcomes (canonical, underscore). Index = outcome code.
OUTCOMES: tuple[str, ...] = (
    "completed",
    "failed",
    "busy",
    "no_answer",
    "did_not_pick",
    "voicemail",
    "cancelled",
    "retry_expired",
    "dropped",  # failed after answer: shown as failed, ended_at after the conversation
    "hangup",  # never connected, no usable reason: shown as hangup
)
OUTCOME_CODE: dict[str, int] = {name: i for i, name in enumerate(OUTCOMES)}
ANSWERED: frozenset[str] = frozenset({"completed", "voicemail", "dropped"})
ANSWERED_CODES: frozenset[int] = frozenset(OUTCOME_CODE[o] for o in ANSWERED)
# The store keeps one byte per call: ov = outcome code << VOCAB_BITS | vocabulary code.
VOCAB_BITS = 2
VOCAB_MASK = (1 << VOCAB_BITS) - 1

# Phases before the outcome. A "status code" is a phase index (0..2) or 3 + outcome code.
PHASES: tuple[str, ...] = ("initiated", "ringing", "in_progress")
N_PHASES = len(PHASES)
N_CODES = N_PHASES + len(OUTCOMES)
FINAL_BASE = N_PHASES

# How each vocabulary spells every status code (phases then outcomes, in OUTCOMES order).
_UNDERSCORE = (
    "initiated",
    "sent",
    "in_progress",
    "completed",
    "failed",
    "busy",
    "no_answer",
    "did_not_pick",
    "completed",  # voicemail: completed + end_reason voicemail_detected
    "cancelled",
    "retry_expired",
    "failed",  # dropped
    "hangup",
)
_HYPHEN = (
    "initiated",
    "ringing",
    "in-progress",
    "completed",
    "failed",
    "busy",
    "no-answer",
    "no-answer",  # did_not_pick has no hyphen spelling
    "completed",  # voicemail
    "cancelled",
    "failed",  # retry_expired has no hyphen spelling
    "failed",  # dropped
    "hangup",
)
# DialNexa's webhook reference: a call that never connected is "hangup" + hangup_reason.
_WEBHOOK = (
    "initiated",
    "ringing",
    "in_progress",
    "completed",  # + hangup_reason user_hangup / agent_hangup (who hung up first)
    "hangup",  # failed: + network_failure, sip_auth_failed, sip_trunk_unreachable, ...
    "hangup",  # busy: + user_busy
    "hangup",  # no_answer: + user_did_not_pick_up / user_unreachable
    "hangup",  # did_not_pick: + user_did_not_pick_up
    "hangup",  # voicemail: + voicemail_detected
    "cancelled",
    "retry_expired",
    "failed",  # dropped after answer
    "hangup",  # hangup: + unknown, or no reason
)
_BARE = (
    "ongoing",
    "ongoing",
    "in_progress",
    "ended",
    "ended",
    "ended",
    "ended",
    "ended",
    "ended",
    "cancelled",
    "retry_expired",
    "ended",  # dropped: + network_failure
    "hangup",
)
_TABLES = (_UNDERSCORE, _HYPHEN, _WEBHOOK)
VOCAB_CODE: dict[str, int] = {v: i for i, v in enumerate(VOCABS)}


def status_text(shape: Shape, vocab: Vocab, code: int) -> str:
    """The ``status`` string a response of ``shape`` carries for an agent speaking ``vocab``."""
    if shape == "bare":
        return _BARE[code]
    return _TABLES[VOCAB_CODE[vocab]][code]


def status_table(shape: Shape) -> tuple[tuple[str, ...], ...]:
    """Status strings by code, one table per vocabulary in ``VOCABS`` order."""
    if shape == "bare":
        return (_BARE,) * len(VOCABS)
    return _TABLES


def normalise(raw: str) -> str:
    """Lower case, ``-`` -> ``_``: how the ``status`` query parameter is compared."""
    return raw.strip().lower().replace("-", "_")


# end reasons a ``bare`` item carries, by outcome; several = chosen per call.
BARE_REASONS: dict[str, tuple[str, ...]] = {
    "completed": ("user_hangup", "agent_hangup"),
    "failed": ("network_failure", "sip_trunk_unreachable", "unallocated_phone_number"),
    "busy": ("user_busy",),
    "no_answer": ("user_did_not_pick_up",),
    "did_not_pick": ("user_did_not_pick_up",),
    "voicemail": ("voicemail_detected",),
    "cancelled": (),
    "retry_expired": (),
    "dropped": ("network_failure",),
    "hangup": (),
}
# hangup_reason a ``webhook`` item carries, by outcome (DialNexa's webhook reference lists
# user_did_not_pick_up, user_busy, voicemail_detected, user_unreachable,
# unallocated_phone_number, network_failure, sip_auth_failed, sip_trunk_unreachable, unknown).
WEBHOOK_REASONS: dict[str, tuple[str, ...]] = {
    "completed": ("user_hangup", "agent_hangup"),
    "failed": (
        "network_failure",
        "sip_auth_failed",
        "sip_trunk_unreachable",
        "unallocated_phone_number",
    ),
    "busy": ("user_busy",),
    "no_answer": ("user_did_not_pick_up", "user_unreachable"),
    "did_not_pick": ("user_did_not_pick_up",),
    "voicemail": ("voicemail_detected",),
    "cancelled": (),
    "retry_expired": (),
    "dropped": ("network_failure",),
    "hangup": ("unknown", ""),  # "" = no reason at all
}


def observed_outcome(outcome: str, vocab: Vocab, shape: Shape) -> str:
    """The canonical status a correct client concludes from what the API shows.

    Some outcomes cannot be told apart in some spellings: the hyphen vocabulary shows
    ``did_not_pick`` as ``no-answer`` and ``retry_expired`` as ``failed``; the bare shape
    and the webhook vocabulary show ``did_not_pick`` as ``user_did_not_pick_up``
    (= ``no_answer``). ``dropped`` is always read as ``failed``.
    """
    if outcome == "dropped":
        return "failed"
    if shape == "bare":
        return "no_answer" if outcome == "did_not_pick" else outcome
    if vocab == "webhook":
        return "no_answer" if outcome == "did_not_pick" else outcome
    if vocab == "hyphen":
        if outcome == "did_not_pick":
            return "no_answer"
        if outcome == "retry_expired":
            return "failed"
    return outcome


def phase_code(elapsed_ms: int, ring_ms: int, talk_ms: int, answered: bool) -> int:
    """Phase (0..2) at ``elapsed_ms`` after creation, or ``FINAL_BASE`` once the call ended.

    ``elapsed_ms`` must be >= 0 (the call exists).
    """
    if elapsed_ms < ring_ms:
        return 0 if elapsed_ms < 1000 else 1
    if answered and elapsed_ms < ring_ms + talk_ms:
        return 2
    return FINAL_BASE


def to_ms(seconds: float) -> int:
    """Epoch (or duration) seconds -> integer milliseconds, rounded to the nearest."""
    return round(seconds * 1000.0)


def now_ms(seconds: float) -> int:
    """A clock reading -> the last whole millisecond at or before it."""
    return math.floor(seconds * 1000.0 + 1e-6)


@dataclass(frozen=True, slots=True)
class CallSpec:
    """One call's whole life, fixed in advance. Times in epoch seconds (millisecond grain)."""

    id: str
    agent_id: str
    created_at: float
    outcome: str = "completed"
    ring: float = 5.0
    talk: float = 60.0  # seconds on the line; treated as 0 for unanswered outcomes

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOME_CODE:
            raise ValueError(f"unknown outcome {self.outcome!r}; expected one of {OUTCOMES}")
        if self.ring < 0 or self.talk < 0:
            raise ValueError("ring and talk must be >= 0")
        if not self.id or not self.agent_id:
            raise ValueError("id and agent_id must not be empty")

    @property
    def answered(self) -> bool:
        return self.outcome in ANSWERED

    @property
    def talk_seconds(self) -> float:
        return self.talk if self.answered else 0.0

    @property
    def settled_at(self) -> float:
        """When the call reaches its final status."""
        return (to_ms(self.created_at) + to_ms(self.ring) + to_ms(self.talk_seconds)) / 1000.0

    @property
    def duration(self) -> int:
        """``duration_seconds`` once ended: whole talk seconds, 0 when unanswered."""
        return to_ms(self.talk_seconds) // 1000

    def status_at(self, t: float) -> str | None:
        """Canonical status at ``t``: a phase, the outcome, or None before creation."""
        elapsed = now_ms(t) - to_ms(self.created_at)
        if elapsed < 0:
            return None
        code = phase_code(elapsed, to_ms(self.ring), to_ms(self.talk_seconds), self.answered)
        return PHASES[code] if code < FINAL_BASE else self.outcome
