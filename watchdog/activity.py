"""Per-agent call activity over the last day, for the ``calls_stopped`` rule. Pure.

The windows count calls by settle time over at most the longest window (an hour by
default): too short to say that an agent placed 40 calls at this hour yesterday. The
recorded history could say it, but reading a day of per-cycle rows every cycle costs far
more than keeping, per agent:

* ``last_call``: the newest ``created_at`` of any call listed for it (pending or settled):
  "has placed none for ``quiet_after``" is ``now - last_call``;
* ``hourly``: calls per clock hour of their ``created_at``, each counted once (when it
  settles, as the windows count it), for the last ``KEEP_HOURS`` hours: 26 small integers per
  agent at most.

It is saved in the state store (``dump``/``load``) so that a restart keeps yesterday's
counts; the daemon saves it every few minutes (``Memory``), so a crash loses minutes of
hourly counts, and the listing after a restart re-reads the newest calls anyway.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Literal, Protocol

from .model import Call

HOUR = 3600.0
KEEP_HOURS = 26
Baseline = Literal["same_hour_yesterday", "last_24h"]
MEMORY_KEY = "agent_activity"


class Memory(Protocol):
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...


class Activity:
    """When each agent last placed a call, and its calls per hour over the last day."""

    def __init__(self, started_at: float) -> None:
        self.started_at = started_at  # observing since: "quiet since" for unseen agents
        self.last_call: dict[str, float] = {}
        self.hourly: dict[str, dict[int, int]] = {}
        self._newest_hour = -(2**62)

    # ---- taking in a cycle --------------------------------------------------------------
    def observe(self, calls: Iterable[Call], settled_ids: Iterable[str]) -> None:
        """The calls listed this cycle, and the ids of those counted (settled) this cycle."""
        settled = set(settled_ids)
        last = self.last_call
        for c in calls:
            agent, created = c.agent_id, c.created_at
            if created > last.get(agent, -math.inf):
                last[agent] = created
            if c.id in settled:
                settled.discard(c.id)  # once, even if two ranges listed it
                hour = math.floor(created / HOUR)
                per = self.hourly.setdefault(agent, {})
                per[hour] = per.get(hour, 0) + 1
                self._newest_hour = max(self._newest_hour, hour)

    def prune(self, now: float) -> None:
        """Forget hours older than ``KEEP_HOURS``, and agents with nothing left."""
        oldest = math.floor(now / HOUR) - KEEP_HOURS
        for agent in list(self.hourly):
            per = self.hourly[agent]
            for h in [h for h in per if h < oldest]:
                del per[h]
            if not per:
                del self.hourly[agent]
        cut = now - KEEP_HOURS * HOUR
        for agent in [a for a, t in self.last_call.items() if t < cut]:
            del self.last_call[agent]

    # ---- reading ------------------------------------------------------------------------
    def agents(self) -> list[str]:
        """Agents with calls in the last day (the candidates of ``calls_stopped``)."""
        return sorted(self.hourly.keys() | self.last_call.keys())

    def baseline(self, agent: str, now: float, mode: Baseline) -> int:
        """Calls the agent placed in its baseline: the clock hour a day before ``now``'s, or
        the last 24 hours (in whole clock hours: the current one and the 24 before it)."""
        per = self.hourly.get(agent)
        if not per:
            return 0
        hour = math.floor(now / HOUR)
        if mode == "same_hour_yesterday":
            return per.get(hour - 24, 0)
        return sum(n for h, n in per.items() if hour - 24 <= h <= hour)

    def quiet_for(self, agent: str, now: float) -> float:
        """Seconds since the agent's newest call (or since observing began)."""
        return max(0.0, now - self.last_call.get(agent, self.started_at))

    # ---- the state store ----------------------------------------------------------------
    def dump(self) -> str:
        doc = {
            "started_at": self.started_at,
            "last_call": self.last_call,
            "hourly": {a: [[h, n] for h, n in per.items()] for a, per in self.hourly.items()},
        }
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def load(cls, text: str, now: float) -> Activity | None:
        """A saved activity (pruned to ``now``), or None when it is unreadable."""
        try:
            doc = json.loads(text)
            out = cls(float(doc["started_at"]))
            out.last_call = {str(a): float(t) for a, t in doc["last_call"].items()}
            for a, rows in doc["hourly"].items():
                out.hourly[str(a)] = {int(h): int(n) for h, n in rows}
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        if not all(math.isfinite(t) for t in [out.started_at, *out.last_call.values()]):
            return None
        out.started_at = min(out.started_at, now)
        out.prune(now)
        return out


class ActivityKeeper:
    """The daemon's side: feeds an ``Activity`` each cycle and saves it every ``every``
    seconds in the state store's meta table (a failed save is retried next time)."""

    def __init__(self, activity: Activity, memory: Memory | None, every: float = 300.0) -> None:
        self.activity = activity
        self.memory = memory
        self.every = every
        self.saved_at = -math.inf
        self.save_failures = 0

    @classmethod
    def start(cls, memory: Memory | None, now: float) -> ActivityKeeper:
        """From the saved activity when there is a readable one, else empty from ``now``."""
        saved = None
        if memory is not None:
            try:
                text = memory.get_meta(MEMORY_KEY)
            except Exception:
                text = None
            saved = Activity.load(text, now) if text else None
        return cls(saved or Activity(now), memory)

    def cycle(self, calls: Iterable[Call], settled_ids: Iterable[str], now: float) -> bool:
        """Take in one cycle; save when due. False when a due save failed."""
        self.activity.observe(calls, settled_ids)
        if now - self.saved_at < self.every:
            return True
        self.activity.prune(now)
        return self.save(now)

    def save(self, now: float) -> bool:
        if self.memory is None:
            return True
        try:
            self.memory.set_meta(MEMORY_KEY, self.activity.dump())
        except Exception:
            self.save_failures += 1
            return False
        self.saved_at = now
        return True
