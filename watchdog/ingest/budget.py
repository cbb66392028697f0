"""Which of a cycle's planned ranges fit the rate budget, and what was deferred. Pure.

The tracker plans ranges most important first (heads, then due pending calls longest-waiting
first, then stragglers); ``select`` spends the cycle's allowance (``RateLimiter.budget``: a
token bucket, so unused budget carries over) on them:

1. Heads first, a head whose listing has not run for ``overdue_after`` first among them:
   new calls, and failures (they settle while ringing), are listed every cycle the budget
   allows.
2. Then *overdue* ranges, longest-waiting first: due for longer than ``overdue_after``
   (``starvation_bound``: two intervals, at least 60 s). This is what keeps any range from
   starving whatever the interval, as long as the heads leave room: a range waits in line at
   most until it is overdue, and overdue ranges are served in order of waiting.
3. Then the rest, in the planned order, each while it fits what is left.

A pending or straggler range never lists more pages than planned (``pages`` is set to its
estimate, so a cycle does not overspend into the next window), and one larger than the
tokens left does not wait for the next cycle: it goes with ``pages`` set to the tokens left
(``Range.pages``), its newest pages are listed, and the part not reached stays due, so the
next cycle plans it again (a resumable listing: the listing's ``to`` is fixed up front, so
no call is missed or read twice as new calls arrive). This is how the whole budget is spent.
Any other range (a head, the live listing) is listed whole: the first range chosen goes
whenever at least one token is left, even if it costs more (the bucket goes below zero and
the next cycles pay it back), so a range larger than what the bucket can hold still gets its
turn. With no token left nothing goes out, heads included; the deferred ranges are reported
by kind so the daemon can show it (metric, log line, /readyz).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from ..model import Range

OVERDUE_FLOOR = 60.0  # seconds: a range due this long goes first, whatever the interval
KINDS = ("head", "pending", "straggler", "live")
SPLITTABLE = ("pending", "straggler")  # listed in part when the tokens do not cover them


def starvation_bound(interval: float) -> float:
    """How long a due range may wait before it goes first: two intervals, at least 60 s."""
    return max(2.0 * interval, OVERDUE_FLOOR)


def waiting_since(r: Range, head_listed: Mapping[str | None, float]) -> float | None:
    """Since when ``r`` has been waiting: a pending range since its earliest call became
    due, a head since its key's last complete head listing (None: never listed)."""
    if r.kind == "head":
        return head_listed.get(r.agent_id)
    if r.kind == "backfill":
        return None
    return r.due


@dataclass(frozen=True, slots=True)
class Selection:
    chosen: list[Range]
    deferred: dict[str, int] = field(default_factory=dict)  # kind -> ranges deferred
    oldest_wait: float = 0.0  # seconds the longest-waiting deferred range has waited
    overdue: int = 0  # ranges chosen ahead of the rest because they waited too long
    heads_deferred_for: float = 0.0  # seconds since the longest-deferred head last ran

    @property
    def deferred_total(self) -> int:
        return sum(self.deferred.values())


def select(
    ranges: Sequence[Range],
    allowance: int,
    now: float,
    overdue_after: float,
    head_listed: Mapping[str | None, float] | None = None,
) -> Selection:
    """Spend ``allowance`` requests on ``ranges`` (planned order); see the module doc."""
    listed = head_listed or {}
    waits = [waiting_since(r, listed) for r in ranges]
    overdue = sorted(
        (i for i, w in enumerate(waits) if w is not None and now - w >= overdue_after),
        key=lambda i: (waits[i] or 0.0, i),
    )
    late = set(overdue)
    heads = [i for i in overdue if ranges[i].kind == "head"]
    heads += [i for i, r in enumerate(ranges) if i not in late and r.kind == "head"]
    overdue = [i for i in overdue if ranges[i].kind != "head"]
    heads_set = set(heads)
    rest = [i for i, r in enumerate(ranges) if i not in late and r.kind != "head"]
    left = allowance
    chosen: list[int] = []
    parts: dict[int, Range] = {}
    for i in [*heads, *overdue, *rest]:
        r = ranges[i]
        cost = r.est_requests
        if left < 1:
            break
        if r.kind in SPLITTABLE:  # never more pages than planned: the rest stays due
            cost = min(cost, left)
            parts[i] = replace(r, pages=cost)
        elif cost > left and chosen and (i not in late or not set(chosen) <= heads_set):
            continue  # a whole listing overdraws only first, or overdue right after heads
        chosen.append(i)
        left -= cost
    taken = set(chosen)
    deferred: dict[str, int] = {}
    oldest = 0.0
    heads_for = 0.0
    for i, r in enumerate(ranges):
        if i in taken:
            continue
        deferred[r.kind] = deferred.get(r.kind, 0) + 1
        w = waits[i]
        if w is not None:
            oldest = max(oldest, now - w)
            if r.kind == "head":
                heads_for = max(heads_for, now - w)
    return Selection(
        [parts.get(i, ranges[i]) for i in chosen],
        deferred,
        oldest,
        sum(1 for i in late if i in taken),
        heads_for,
    )
