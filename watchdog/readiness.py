"""What /readyz and /healthz may say: a closed vocabulary. Pure.

/readyz serves a fixed sentence from the constants below (plus integers), never text that
came from the API: the daemon's ``readiness()`` returns reasons built with ``stale_reason``
or taken from the constants, and ``readyz_text`` replaces any other string with
``UNRECOGNISED`` before it is served. A poll error is named by ``error_kind``: ``http_NNN``
or one of ``ERROR_KINDS`` (ApiError.kind's vocabulary).
"""

from __future__ import annotations

import re

from .model import PollStatus

BACKFILL_NOT_DONE = "backfill not done"
NO_POLL_YET = "no successful poll yet"
NO_POLL_FOR = "no successful poll for {seconds}s"  # seconds: an integer
LAST_ERROR = "last error: {kind}"  # kind: one of ERROR_KINDS or http_NNN, see error_kind()
STATE_STORE_FAILING = "state store commit failing"
ANOTHER_REPLICA_LEADS = "another replica leads"
# a standby that cannot read the leader's recorded history: still ready (a takeover rebuilds
# its windows from the whole history, or backfills), but not warm
HISTORY_NOT_FOLLOWED = "recorded history not followed"
UNRECOGNISED = "unrecognised reason"  # served in place of a string outside the vocabulary
NEW_CALLS_DEFERRED = "new calls not listed for {seconds}s (rate budget)"  # seconds: an integer
POLL_LOOP_STALLED = "poll loop stalled"  # /healthz
REASONS = (
    BACKFILL_NOT_DONE,
    NO_POLL_YET,
    NO_POLL_FOR,
    STATE_STORE_FAILING,
    ANOTHER_REPLICA_LEADS,
    HISTORY_NOT_FOLLOWED,
    NEW_CALLS_DEFERRED,
    UNRECOGNISED,
)
# what a failed poll's error is called on /readyz besides http_NNN: ApiError.kind's vocabulary
ERROR_KINDS = frozenset(
    {
        "auth",  # 401 / 403
        "client_error",  # another 4xx
        "server_error",  # 5xx
        "rate_limited",  # 429 after every retry
        "deferred",  # held until a long Retry-After has passed
        "timeout",  # no complete answer within the deadline
        "dns",  # the API host name does not resolve
        "refused",  # connection refused
        "tls",  # TLS handshake or certificate error
        "network",  # any other connection error
        "too_large",  # a response over dialnexa.max_response_bytes
        "invalid",  # a 200 whose body is not a List Calls page
        "page_cap",  # a listing stopped at the page cap
        "other",  # anything else (and any kind not in this set)
    }
)
_HTTP_KIND = re.compile(r"http_[1-5][0-9][0-9]")
_KIND = "|".join([_HTTP_KIND.pattern, *sorted(ERROR_KINDS)])
_STALE = rf"no successful poll (?:yet|for [0-9]{{1,15}}s)(?: \(last error: (?:{_KIND})\))?"
_FIXED = "|".join(re.escape(r) for r in REASONS if "{" not in r and r != NO_POLL_YET)
_DEFERRED = r"new calls not listed for [0-9]{1,15}s \(rate budget\)"
_REASON = re.compile(rf"(?:{_FIXED}|{_STALE}|{_DEFERRED})")


def error_kind(kind: str | None = None, code: int | None = None) -> str:
    """The name /readyz shows for a poll error: ``http_403`` when there is an HTTP status
    (the most precise), else the kind when it is in ERROR_KINDS, else ``other``."""
    if code is not None and 100 <= code <= 599:
        return f"http_{code}"
    if kind is not None and (kind in ERROR_KINDS or _HTTP_KIND.fullmatch(kind)):
        return kind
    return "other"


def stale_reason(seconds: float | None, kind: str | None = None) -> str:
    """``no successful poll for 95s (last error: http_403)``; ``seconds`` None: ``yet``."""
    text = NO_POLL_YET if seconds is None else NO_POLL_FOR.format(seconds=max(0, int(seconds)))
    if kind is not None:
        text += " (" + LAST_ERROR.format(kind=error_kind(kind)) + ")"
    return text


def poll_reasons(
    status: PollStatus, now: float, fresh_for: float, kind: str | None = None
) -> list[str]:
    """The polling part of readiness: the backfill, and a success within ``fresh_for``
    seconds. ``kind`` names the last error (ApiError.kind) when the last poll failed."""
    reasons = []
    if not status.backfilled:
        reasons.append(BACKFILL_NOT_DONE)
    last_error = kind if status.last_error is not None else None
    if status.last_success is None:
        if last_error is not None:
            reasons.append(stale_reason(None, last_error))
    elif now - status.last_success >= fresh_for:
        reasons.append(stale_reason(now - status.last_success, last_error))
    return reasons


def deferred_reason(seconds: float) -> str:
    """``new calls not listed for 75s (rate budget)``: heads waited past the starvation bound."""
    return NEW_CALLS_DEFERRED.format(seconds=max(0, int(seconds)))


def readyz_text(ok: bool, reasons: list[str]) -> str:
    """The /readyz body: ``ready``, ``ready (another replica leads)`` (a standby) or
    ``not ready: <reason>; <reason>``, each reason checked
    against the vocabulary (anything else becomes UNRECOGNISED and is not echoed)."""
    safe = [r if isinstance(r, str) and _REASON.fullmatch(r) else UNRECOGNISED for r in reasons]
    if ok:  # a standby is ready, and says why it does not poll (nothing unrecognised)
        shown = [r for r in dict.fromkeys(safe) if r != UNRECOGNISED]
        return f"ready ({'; '.join(shown)})\n" if shown else "ready\n"
    return "not ready: " + "; ".join(dict.fromkeys(safe) or [UNRECOGNISED]) + "\n"
