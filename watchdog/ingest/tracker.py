"""Which calls are new, which settled, which may still change, and what to re-read. Pure.

The List Calls API has no "changed since" filter: the only way to see a status change is to
list a created_at range that holds the call again. Each cycle the tracker plans ranges:

1. the *head*: from the end of the previous listing (less ``overlap``) or ``settle_horizon``
   ago, whichever is older, to now. It holds every new call and every call young enough to
   still be ringing, which is where failed, busy and no-answer outcomes settle.
2. ranges that cover the pending calls older than the head that are *due* (each pending call
   is re-checked every ``pending_recheck``; calls older than ``max_call_duration``, or than
   their agent's own limit when the agent directory knows it (``call_limit``), back off to
   a quarter of their age, at most 10 minutes, and so do all calls while the rate budget is
   short: ``recheck_period``; a range of only such old calls is a straggler). Neighbouring
   due calls share a range when that costs no more requests than listing them apart,
   counted from the calls already known in between; a lone old straggler gets a narrow
   ``from == to == created_at`` query instead of
   stretching a range back to it.

With ``live`` (``poll.pending_listing: status``), pending calls older than the head are not
re-read by range: one ``status=in-progress`` listing over their span (kind ``live``, every
``pending_recheck``) says which are still in conversation; a pending call it does not return
has ended (or changed) and is re-read by range at once, like a due call above.

Calls settled in windows by settle time; a settled call is remembered (to move it if its
status changes, and never to count it twice) while its created_at is in the re-read horizon.
An item older than that horizon that the tracker does not know is ignored: it was counted
before and forgotten, or settled too long ago to matter.

Longer than ~400 lines: planning and applying share the pending set's bookkeeping (next
checks, the live listing, warm restarts), which reads best in one class.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter

from ..model import PAGE, UNKNOWN, Call, Range, RangeKind, StatusClasses
from ..windows import Windows

WATCHED = 1e15  # next_check of a pending call the live listing watches (finite: it is saved)
RATE_SPAN = 300.0  # seconds of known calls a head's new calls are estimated from
RECHECK_SHARE = 0.25  # a pending call is re-read every quarter of its age (recheck_period)
MAX_RECHECK = 600.0  # seconds: the longest a pending call waits between re-reads
CHUNK_CALLS = 10 * PAGE  # a pending range holds at most about this many known calls
SavedCall = tuple[str, str, float, str | None, int | None, float]  # _Tracked's fields (restarts)
_saved = attrgetter("agent_id", "status", "created_at", "counted_as", "bucket", "next_check")


@dataclass(slots=True)
class _Tracked:
    agent_id: str
    status: str  # normalised status as last seen
    created_at: float
    counted_as: str | None = None  # status it is counted under in windows (None: pending)
    bucket: int | None = None  # window bucket it was counted in (None: too old)
    next_check: float = 0.0


@dataclass(slots=True)
class Applied:
    """What one ``apply`` changed, for metrics and logs."""

    new_terminal: list[tuple[str, str]] = field(default_factory=list)  # (agent, counted status)
    settled_ids: list[str] = field(default_factory=list)  # ids of new_terminal, same order
    moved: int = 0
    stuck: list[str] = field(default_factory=list)  # agent ids of calls dropped as stuck
    dropped_agents: list[str] = field(default_factory=list)  # first time over max_agents
    unknown_statuses: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    longest_window: float
    max_pending_age: float = 21600.0
    max_call_duration: float = 900.0
    settle_horizon: float = 90.0
    pending_recheck: float = 30.0
    overlap: float = 10.0
    max_agents: int = 10000
    agents: tuple[str, ...] | None = None  # explicit list, or None for all
    per_agent: bool = False  # list per agent (explicit list) instead of workspace-wide
    live: bool = False  # watch pending calls with one status=in-progress listing (workspace)


class Tracker:
    def __init__(
        self,
        config: TrackerConfig,
        windows: Windows,
        classes: StatusClasses,
        call_limit: Callable[[str], float | None] | None = None,
        longest_limit: Callable[[], float | None] | None = None,
    ) -> None:
        """``call_limit``: agent id -> how long its calls can stay unsettled (the agent
        directory's max call + ring + margin), or None for ``max_call_duration``;
        ``longest_limit``: the longest of those the directory knows (see ``reach``)."""
        self.cfg = config
        self.call_limit = call_limit
        self.longest_limit = longest_limit
        self.windows = windows
        self.classes = classes
        self._calls: dict[str, _Tracked] = {}  # pending + settled within the horizon
        self._pending: set[str] = set()
        self._last_end: dict[str | None, float] = {}  # listing key -> end of last full head
        self._agents: set[str] = set()
        self._dropped: set[str] = set()
        self._allowed = frozenset(config.agents) if config.agents else None
        self._seen_unknown: set[str] = set()
        self.backfilled = False
        self.per_agent = config.per_agent and bool(config.agents)
        self._touched: set[str] | None = None  # known calls that settled or moved (saving)
        self.live = config.live and not self.per_agent
        self._live_next = -math.inf  # when the next live listing is due
        self.short = False  # the rate budget is short: pending calls back off by age

    # ---- introspection ----------------------------------------------------------------
    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def tracked_count(self) -> int:
        return len(self._calls)

    def _keys(self) -> list[str | None]:
        if self.per_agent and self.cfg.agents:
            return list(self.cfg.agents)
        return [None]

    def use_per_agent(self) -> None:
        """Switch an explicit agent list from one workspace listing to one per agent."""
        if self.per_agent or not self.cfg.agents:
            return
        self.per_agent = True
        self.use_ranges()
        end = self._last_end.pop(None, None)
        if end is not None:
            for agent in self.cfg.agents:
                self._last_end[agent] = end

    def use_ranges(self) -> None:
        """Stop the live listing (the API rejects or ignores the status filter): every
        pending call is due for a re-read by range."""
        if not self.live:
            return
        self.live = False
        for cid in self._pending:
            self._calls[cid].next_check = 0.0

    def forget_before(self, now: float) -> float:
        """Untracked items created before this are ignored; settled ones are forgotten."""
        horizon = now - max(self.cfg.max_call_duration, self.cfg.settle_horizon + self.cfg.overlap)
        ends = [e - self.cfg.overlap for e in self._last_end.values()]
        return min([horizon, *ends])

    # ---- planning ---------------------------------------------------------------------
    def reach(self) -> float:
        """How far before the longest window the backfill (and a head after a gap) lists, so
        that a call started that long ago and settling inside the window is counted: the
        longest call an agent of the directory allows when that is longer than
        ``max_call_duration`` (never shorter: agents the directory does not know yet use the
        global), capped at ``max_pending_age`` (a call pending longer is dropped as stuck)."""
        longest = self.longest_limit() if self.longest_limit is not None else None
        if longest is None:
            return self.cfg.max_call_duration
        return max(self.cfg.max_call_duration, min(longest, self.cfg.max_pending_age))

    def plan_backfill(self, now: float) -> list[Range]:
        start = now - self.cfg.longest_window - self.reach()
        return [Range(start, now, key, "backfill") for key in self._keys()]

    def plan(self, now: float) -> list[Range]:
        """Ranges to list this cycle, most important first (heads, then due pending calls
        youngest first, then stragglers)."""
        ranges: list[Range] = []
        known = self._known_times()
        for key in self._keys():
            head_start = self._head_start(key, now)
            times = known.get(key, [])
            est = self._count_between(times, head_start, now) + self._new_calls(times, now)
            ranges.append(Range(head_start, now, key, "head", est))
            ranges.extend(self._plan_pending(key, head_start, now, known.get(key, [])))
        live = self._plan_live([r for r in ranges if r.kind == "head"], now)
        heads = [r for r in ranges if r.kind == "head"]
        rest = live + [r for r in ranges if r.kind == "pending"]
        stragglers = [r for r in ranges if r.kind == "straggler"]
        # longest-waiting first, so a short budget rotates through the span instead of
        # starving its oldest part; newer first among equals
        rest.sort(key=lambda r: (r.due, -r.end))
        stragglers.sort(key=lambda r: (r.due, -r.end))
        return heads + rest + stragglers

    def _new_calls(self, times: list[float], now: float) -> int:
        """About how many calls were created since the newest one known (``times`` sorted):
        the rate of the last ``RATE_SPAN`` seconds known, so the head is budgeted right."""
        if not times:
            return 0
        newest = times[-1]
        since = newest - RATE_SPAN
        rate = self._count_between(times, since, newest) / RATE_SPAN
        return math.ceil(rate * max(0.0, now - newest))

    def _head_start(self, key: str | None, now: float) -> float:
        start = now - self.cfg.settle_horizon
        last = self._last_end.get(key)
        if last is not None:
            start = min(start, last - self.cfg.overlap)
        return max(start, now - self.cfg.longest_window - self.reach())

    def plan_live(self, now: float) -> list[Range]:
        """The live listing alone, when due (listed before the cycle's plan, so that the calls
        it finds ended are re-read in the same cycle)."""
        return self._plan_live([Range(self._head_start(k, now), now, k) for k in self._keys()], now)

    def _plan_live(self, heads: list[Range], now: float) -> list[Range]:
        """The live listing, when due: in-progress calls from the oldest pending call to the
        start of the head (one key: live is workspace-wide)."""
        if not self.live or not heads or now < self._live_next - 0.25 * self.cfg.pending_recheck:
            return []
        end = min(r.start for r in heads)
        older = [self._calls[c].created_at for c in self._pending]
        older = [t for t in older if t < end]
        if not older:
            self._live_next = now + self.cfg.pending_recheck
            return []
        return [Range(min(older), end, None, "live", len(older), max(0.0, self._live_next))]

    def _known_times(self) -> dict[str | None, list[float]]:
        out: dict[str | None, list[float]] = {}
        per_agent = self.per_agent
        for t in self._calls.values():
            key = t.agent_id if per_agent else None
            out.setdefault(key, []).append(t.created_at)
        for v in out.values():
            v.sort()
        return out

    @staticmethod
    def _count_between(times: list[float], start: float, end: float) -> int:
        return bisect.bisect_right(times, end) - bisect.bisect_left(times, start)

    def _plan_pending(
        self, key: str | None, head_start: float, now: float, known: list[float]
    ) -> list[Range]:
        due_at: dict[float, float] = {}
        overdue: dict[float, bool] = {}  # every due call created then is past its limit
        slack = 0.25 * self.cfg.pending_recheck  # the tick and the last apply are not aligned
        for cid in self._pending:
            t = self._calls[cid]
            if key is not None and t.agent_id != key:
                continue
            if t.created_at < head_start and t.next_check <= now + slack:
                prev = due_at.get(t.created_at)
                due_at[t.created_at] = t.next_check if prev is None else min(prev, t.next_check)
                over = now - t.created_at > self._limit(t.agent_id)
                overdue[t.created_at] = overdue.get(t.created_at, True) and over
        due = list(due_at)
        if not due:
            return []
        due.sort()
        straggler_before = now - self.cfg.max_call_duration
        # Calls older than the memory horizon are not known one by one: estimate how many a
        # range back there holds from the recent call rate.
        span = max(1.0, now - self.forget_before(now))
        density = len(known) / span
        out: list[Range] = []
        group: list[float] = []

        def estimate(start: float, end: float) -> int:
            if start >= straggler_before:
                return self._count_between(known, start, end)
            return math.ceil(density * (end - start)) + 1

        def flush() -> None:
            if not group:
                return
            start, end = group[0], group[-1]
            late = all(overdue[c] for c in group)  # each call past its own agent's limit
            kind: RangeKind = "straggler" if late else "pending"
            since = min(due_at[c] for c in group)
            out.append(Range(start, end, key, kind, estimate(start, end), since))
            group.clear()

        for created in due:
            if group:
                together = estimate(group[0], created)
                apart = estimate(group[0], group[-1])
                # merge when it costs no more requests than listing `created` on its own, up to
                # a chunk size, so that a short rate budget can still take the newest chunks
                cheap = math.ceil((together + 1) / PAGE) <= math.ceil((apart + 1) / PAGE) + 1
                if cheap and together <= CHUNK_CALLS:
                    group.append(created)
                    continue
                flush()
            group.append(created)
        flush()
        return out

    # ---- applying what was listed -----------------------------------------------------
    def apply(
        self,
        calls: Iterable[Call],
        now: float,
        completed: Iterable[Range] = (),
        backfill: bool = False,
    ) -> Applied:
        """Take in the calls listed this cycle. ``completed`` are the ranges listed to the
        end: their pending calls are rescheduled, and a head's end becomes the next start."""
        out = Applied()
        completed = list(completed)
        seen: set[str] = set()
        if any(r.kind == "live" for r in completed):
            calls = list(calls)
            seen = {c.id for c in calls}
        self.windows.advance(now)
        forget = -math.inf if backfill else self.forget_before(now)
        # New calls (most of a backfill, a head's newest) take an inlined path: this loop is
        # the ingest hot path measured by bench/ingest.py. Known calls go through _take.
        tracked = self._calls
        agents = self._agents
        pending_statuses = self.classes.pending
        counted_as = self.windows.counted_as
        add = self.windows.add
        new_terminal = out.new_terminal
        settled_ids = out.settled_ids
        for call in calls:
            cid, agent, status, created, settled = call
            known = tracked.get(cid)
            if known is not None:
                self._take(call, known, now, out)
                continue
            if created < forget:  # counted before and forgotten, or settled too long ago
                continue
            if agent not in agents and not self._admit_agent(agent, out):
                continue
            if status in pending_statuses:
                t = tracked[cid] = _Tracked(agent, status, created)
                self._pending.add(cid)
                t.next_check = self._next_check(t, now)
                continue
            counted = counted_as(status)
            if counted == UNKNOWN:
                self._note_unknown(status, out)
            k = add(agent, counted, now if settled is None else settled)
            tracked[cid] = _Tracked(agent, status, created, counted, k)
            new_terminal.append((agent, counted))
            settled_ids.append(cid)
        for r in completed:
            if r.kind == "live":
                self._watch(r, seen, now)
                continue
            if r.kind in ("head", "backfill"):
                prev = self._last_end.get(r.agent_id, -math.inf)
                self._last_end[r.agent_id] = max(prev, r.end)
            self._reschedule(r, now)
        if backfill:
            self.backfilled = True
        self._expire(now, out)
        return out

    def _admit_agent(self, agent: str, out: Applied) -> bool:
        if agent in self._agents:
            return True
        if self._allowed is not None and agent not in self._allowed:
            return False
        if agent in self._dropped:
            return False
        if len(self._agents) >= self.cfg.max_agents:
            if len(self._dropped) < 100_000:  # remembered to count each once; bounded
                self._dropped.add(agent)
                out.dropped_agents.append(agent)
            return False
        self._agents.add(agent)
        return True

    def _take(self, call: Call, t: _Tracked, now: float, out: Applied) -> None:
        """A call seen before (new calls take the inlined path in ``apply``)."""
        pending = call.status in self.classes.pending
        t.status = call.status
        if t.counted_as is None:
            if pending:
                return
            self._pending.discard(call.id)
            self._settle(t, call, now, out)
            out.settled_ids.append(call.id)
            if self._touched is not None:
                self._touched.add(call.id)
            return
        # already counted: move it only if the status it counts under changed
        if pending:
            return
        status = self.windows.counted_as(call.status)
        if status != t.counted_as:
            if t.bucket is not None:
                self.windows.remove(t.agent_id, t.counted_as, t.bucket)
            settled = call.settled_at if call.settled_at is not None else now
            t.bucket = self.windows.add(t.agent_id, status, settled)
            t.counted_as = status
            out.moved += 1
            if self._touched is not None:
                self._touched.add(call.id)

    def _note_unknown(self, raw: str, out: Applied) -> None:
        if raw not in self._seen_unknown and len(self._seen_unknown) < 1000:
            self._seen_unknown.add(raw)
            out.unknown_statuses.add(raw)

    def _settle(self, t: _Tracked, call: Call, now: float, out: Applied) -> None:
        status = self.windows.counted_as(call.status)
        if status == UNKNOWN:
            self._note_unknown(call.status, out)
        settled = call.settled_at if call.settled_at is not None else now
        t.counted_as = status
        t.bucket = self.windows.add(t.agent_id, status, settled)
        out.new_terminal.append((t.agent_id, status))

    def _watch(self, r: Range, seen: set[str], now: float) -> None:
        """A complete live listing: the pending calls in its span that it returned stay
        watched; the others have ended (or changed) and are due for a re-read now."""
        for cid in self._pending:
            t = self._calls[cid]
            if r.start <= t.created_at <= r.end:
                if cid in seen:
                    t.next_check = WATCHED
                elif t.next_check == WATCHED:  # due from now; one already due keeps its turn
                    t.next_check = now
        self._live_next = now + self.cfg.pending_recheck

    def _limit(self, agent_id: str) -> float:
        """How long a call of this agent can stay unsettled: its own limit, or the global."""
        own = self.call_limit(agent_id) if self.call_limit is not None else None
        return self.cfg.max_call_duration if own is None else own

    def _next_check(self, t: _Tracked, now: float) -> float:
        if self.live:
            return WATCHED
        return now + recheck_period(
            now - t.created_at, self.cfg, self.short, self._limit(t.agent_id)
        )

    def _reschedule(self, r: Range, now: float) -> None:
        for cid in self._pending:
            t = self._calls[cid]
            if r.start <= t.created_at <= r.end and (r.agent_id in (None, t.agent_id)):
                t.next_check = self._next_check(t, now)

    def _expire(self, now: float, out: Applied) -> None:
        stuck_before = now - self.cfg.max_pending_age
        forget = self.forget_before(now)
        for cid in [c for c in self._pending if self._calls[c].created_at < stuck_before]:
            self._pending.discard(cid)
            out.stuck.append(self._calls.pop(cid).agent_id)
        old = [
            cid
            for cid, t in self._calls.items()
            if t.counted_as is not None and t.created_at < forget
        ]
        for cid in old:
            del self._calls[cid]

    # ---- warm restart: exporting and importing the state to resume from ---------------
    def export_changes(self, saved: set[str]) -> tuple[dict[str, SavedCall], set[str]]:
        """(Calls new, settled or moved since the ids ``saved`` were exported, ids gone);
        ``saved`` becomes the tracked ids. A pending call is saved as first seen."""
        calls, touched, keys = self._calls, self._touched, self._calls.keys()
        new, gone = keys - saved, saved - keys
        new |= (touched or set()) & keys
        self._touched = set()
        saved -= gone
        saved |= new
        return {c: _saved(calls[c]) for c in new}, gone

    def cursor(self) -> dict[str | None, float]:
        """Listing key (None: the workspace, else an agent) -> end of its last full head."""
        return dict(self._last_end)

    def restore(
        self,
        calls: Mapping[str, SavedCall],
        cursor: Mapping[str | None, float],
        *,
        at: float,
        per_agent: bool,
    ) -> None:
        """Resume (backfilled) from the cycle at ``at``; the windows are rebuilt apart."""
        self._calls = {cid: _Tracked(*saved) for cid, saved in calls.items()}
        self._pending = {cid for cid, t in self._calls.items() if t.counted_as is None}
        for t in (self._calls[cid] for cid in self._pending):  # as if rechecked at ``at``
            saved = t.next_check if t.next_check < WATCHED else 0.0  # saved in another mode
            t.next_check = max(saved, self._next_check(t, at))
        self._last_end = dict(cursor)
        self._agents = {t.agent_id for t in self._calls.values()} | set(self.windows.agents())
        self.backfilled = True
        self.per_agent = per_agent and bool(self.cfg.agents)
        self._touched = set()  # from here on, calls that settle or move are noted


def recheck_period(
    age: float, cfg: TrackerConfig, short: bool = False, limit: float | None = None
) -> float:
    """How long a pending call ``age`` seconds old waits before its range is re-read:
    ``pending_recheck`` up to ``max_call_duration`` (or ``limit``, the agent's own), then a
    quarter of its age (``RECHECK_SHARE``), at most 10 minutes. While the rate budget is
    ``short`` (ranges wait past the starvation bound) every pending call backs off by its
    age: talk times are heavy-tailed, so the young calls are the likeliest to end soon, and
    re-reading every span equally would make every call late."""
    longest = cfg.max_call_duration if limit is None else limit  # the agent's own, if known
    if age <= longest and not short:
        return cfg.pending_recheck
    return min(max(cfg.pending_recheck, age * RECHECK_SHARE), MAX_RECHECK)


def listing_costs(
    calls: Iterable[Call], span: float, reread: float, agents: Iterable[str]
) -> tuple[int, int]:
    """Requests per cycle to re-read ``reread`` seconds of calls, estimated from ``calls``
    listed over ``span`` seconds: (one workspace-wide listing, one listing per agent in
    ``agents``, each at least one request)."""
    per_agent: dict[str, int] = {}
    total = 0
    for c in calls:
        per_agent[c.agent_id] = per_agent.get(c.agent_id, 0) + 1
        total += 1
    workspace = math.ceil(total / span * reread / PAGE)
    separate = sum(max(1, math.ceil(per_agent.get(a, 0) / span * reread / PAGE)) for a in agents)
    return workspace, separate
