"""Who may act: ``slack.actions.allowed_users`` (``"*"``: anyone in the team) and the members
of ``slack.actions.allowed_usergroups``, looked up with ``usergroups.users.list`` and kept for
``slack.actions.usergroup_cache``. When a look-up fails, the last answer is used however old;
with none, the person is told the check could not be made (and nothing changes).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from enum import Enum

from ..clock import Clock

log = logging.getLogger("watchdog.actions")


class Verdict(Enum):
    ALLOWED = "allowed"
    REFUSED = "refused"
    UNKNOWN = "unknown"  # a user group could not be read and nothing was cached


class Access:
    def __init__(
        self,
        users: Sequence[str],
        groups: Sequence[str],
        members_of: Callable[[str], list[str] | None],
        clock: Clock,
        ttl: float,
    ) -> None:
        """``members_of(group)``: the group's user ids, or None when Slack could not say."""
        self.anyone = "*" in users
        self.users = frozenset(u for u in users if u != "*")
        self.groups = tuple(groups)
        self._members_of = members_of
        self._clock = clock
        self._ttl = ttl
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def check(self, user_id: str) -> Verdict:
        if self.anyone or user_id in self.users:
            return Verdict.ALLOWED
        unknown = False
        for group in self.groups:
            members = self._members(group)
            if members is None:
                unknown = True
            elif user_id in members:
                return Verdict.ALLOWED
        return Verdict.UNKNOWN if unknown else Verdict.REFUSED

    def _members(self, group: str) -> frozenset[str] | None:
        now = self._clock.now()
        with self._lock:
            cached = self._cache.get(group)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        fresh = self._members_of(group)
        if fresh is None:
            if cached is not None:
                log.warning("cannot read user group %s; using its members as of earlier", group)
                return cached[1]
            return None
        members = frozenset(fresh)
        with self._lock:
            self._cache[group] = (now, members)
        return members
