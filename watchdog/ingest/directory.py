"""The agent directory: DialNexa's List Agents API (``GET /agents2``), listed at start and every
``agents.refresh``, kept in the state store. The I/O edge around ``agents.parse_agents``.

Requests go through the calls client (``ApiClient.get_parsed``): the same pacing, rate limit
(and rate budget), deadline, retries, body limit and redaction as List Calls. A refresh costs
``ceil(agents / 100)`` requests.

When the endpoint fails (403: the key may not read agents, 404: not deployed, a body that is
no agent list, a timeout) the directory keeps what it had (from the last good listing, or the
state store), says so once in the log, and ``dialnexa_agents_api_up`` is 0; nothing else
changes: names then come from ``slack.agent_names`` only and the tracker uses the global
``poll.max_call_duration``, exactly as without a directory.

Names from ``slack.agent_names`` always win over the API's titles.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..clock import Clock
from ..textformat import escape_label, gauge_header, rendered_apart
from .agents import AgentEntry, AgentsPage, parse_agents
from .client import ApiClient, ApiError, Listing, Stopped

log = logging.getLogger("watchdog.agents")

MEMORY_KEY = "agent_directory"
MAX_PAGES = 1000  # 100,000 agents
INFO_TITLE_CHARS = 200


class Memory(Protocol):
    """The state store's meta table (``alerts.store.Store``)."""

    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Refresh:
    """What one refresh did."""

    ok: bool
    requests: int
    agents: int
    invalid: int = 0
    kind: str | None = None  # why it failed: an ApiError kind, or "invalid" for garbage


class AgentDirectory:
    """Agents by id, with titles, published/deleted flags and call limits.

    Read from any thread (the alert path, Slack actions, /metrics): the mapping is replaced
    whole on refresh, never changed in place."""

    def __init__(
        self,
        client: ApiClient | None,
        clock: Clock,
        *,
        refresh: float = 600.0,
        margin: float = 60.0,
        names: Mapping[str, str] | None = None,
        memory: Memory | None = None,
        call_limits: bool = True,
        max_pages: int = MAX_PAGES,
    ) -> None:
        """``client`` None: the directory is off (only ``names``)."""
        self.client = client
        self.clock = clock
        self.refresh_every = refresh
        self.margin = margin
        self.names = dict(names or {})
        self.memory = memory
        self.call_limits = call_limits
        self.max_pages = max_pages
        self.agents: dict[str, AgentEntry] = {}
        self.up = False
        self.refreshed_at: float | None = None
        self.next_at = -math.inf
        self._failing: str | None = None  # the kind last logged
        # its own request and invalid-item counts: a 403 here is not the calls API's 403
        self.requests: dict[str, int] = dict.fromkeys(("200", "403", "404"), 0)
        self.invalid = 0
        self._lock = threading.Lock()  # one refresh at a time
        self._longest: tuple[dict[str, AgentEntry], float | None] | None = None

    @property
    def enabled(self) -> bool:
        return self.client is not None

    # ---- reading ------------------------------------------------------------------------
    def title_of(self, agent_id: str) -> str | None:
        """``slack.agent_names`` first, then the API's title, else None."""
        name = self.names.get(agent_id)
        if name:
            return name
        entry = self.agents.get(agent_id)
        return entry.title if entry is not None else None

    def entry(self, agent_id: str) -> AgentEntry | None:
        return self.agents.get(agent_id)

    def is_active(self, agent_id: str) -> bool | None:
        """Published and not deleted (True), deleted or unpublished (False), or not known."""
        entry = self.agents.get(agent_id)
        return None if entry is None else entry.active

    def limit_of(self, agent_id: str) -> float | None:
        """The agent's own call limit (max call + ring + margin), or None: use the global."""
        if not self.call_limits:
            return None
        entry = self.agents.get(agent_id)
        return entry.call_limit(self.margin) if entry is not None else None

    def longest_limit(self) -> float | None:
        """The longest call limit of an agent not deleted (max call + ring + margin), or None
        when none is known (or ``agents.call_limits`` is off): how far before the longest
        window the tracker's backfill reaches."""
        if not self.call_limits:
            return None
        agents = self.agents  # replaced whole on refresh: the cache is keyed on the object
        cached = self._longest
        if cached is not None and cached[0] is agents:
            return cached[1]
        limits = [e.call_limit(self.margin) for e in agents.values() if not e.deleted]
        known = [x for x in limits if x is not None]
        longest = max(known) if known else None
        self._longest = (agents, longest)
        return longest

    # ---- state store --------------------------------------------------------------------
    def load(self) -> int:
        """The directory saved by the last good refresh (so a restart has names and limits
        before its first listing); the number of agents loaded."""
        if self.memory is None or self.client is None:
            return 0
        try:
            raw = self.memory.get_meta(MEMORY_KEY)
            doc = json.loads(raw) if raw else None
        except Exception:  # a damaged value must not stop the daemon
            log.warning("ignoring an unreadable saved agent directory")
            return 0
        rows = doc.get("agents") if isinstance(doc, dict) else None
        if not isinstance(rows, list):
            return 0
        entries = (AgentEntry.from_json(r) for r in rows)
        self.agents = {e.id: e for e in entries if e is not None}
        at = doc.get("at") if isinstance(doc, dict) else None
        self.refreshed_at = float(at) if isinstance(at, int | float) else None
        if self.refreshed_at is not None and self.agents:  # fresh: the next refresh is due
            self.next_at = min(self.refreshed_at, self.clock.now()) + self.refresh_every
        return len(self.agents)

    def _save(self, now: float) -> None:
        if self.memory is None:
            return
        doc = {"at": now, "agents": [e.to_json() for e in self.agents.values()]}
        try:
            self.memory.set_meta(MEMORY_KEY, json.dumps(doc, separators=(",", ":")))
        except Exception:
            log.warning("cannot save the agent directory in the state store")

    # ---- refreshing ---------------------------------------------------------------------
    def due(self, now: float) -> bool:
        return self.client is not None and now >= self.next_at

    def refresh(self, now: float | None = None) -> Refresh:
        """List every agent (page by page); on success replace the directory and save it."""
        if self.client is None:
            return Refresh(False, 0, 0, kind="off")
        with self._lock:
            now = self.clock.now() if now is None else now
            agents, kind, requests, invalid = self._list(self.client)
            if agents is None:
                # a failure waits a whole refresh too: a hanging endpoint (up to
                # dialnexa.timeout per attempt) must not hold the poll thread every few cycles
                self.next_at = now + self.refresh_every
                self.up = False
                return Refresh(False, requests, len(self.agents), invalid, kind)
            self.agents = agents
            self.up = True
            self.refreshed_at = now
            self.next_at = now + self.refresh_every
            self._save(now)
            if self._failing is not None:
                log.info("the agent directory answers again", extra={"agents": len(agents)})
                self._failing = None
            return Refresh(True, requests, len(agents), invalid)

    def _list(self, client: ApiClient) -> tuple[dict[str, AgentEntry] | None, str | None, int, int]:
        tally = Listing()
        found: dict[str, AgentEntry] = {}
        invalid = 0
        limit = client.page_size
        for page_no in range(1, self.max_pages + 1):
            params: dict[str, str | int] = {"page": page_no, "limit": limit}
            try:
                page: AgentsPage = client.get_parsed(
                    "agents2", params, parse_agents, tally, observer=self
                )
            except ApiError as exc:
                self._fail(exc.kind, exc.code, exc.reason)
                return None, exc.kind, tally.requests, invalid
            except Stopped:
                return None, "stopped", tally.requests, invalid
            invalid += page.invalid
            fresh = 0
            for entry in page.agents:
                if entry.id not in found:
                    fresh += 1
                found[entry.id] = entry
            if page.items < limit or (page.total_pages is not None and page_no >= page.total_pages):
                break
            if fresh == 0:
                break  # a full page of nothing new: the API ignores ``page``
        if invalid:
            self.invalid_items(invalid)
        if not found and invalid:
            self._fail("invalid", None, f"{invalid} item(s), none of them an agent")
            return None, "invalid", tally.requests, invalid
        return found, None, tally.requests, invalid

    # ---- ApiObserver: the client reports each request of a refresh here ----------------
    def request(self, code: str, seconds: float) -> None:
        if code in self.requests or len(self.requests) < 50:
            self.requests[code] = self.requests.get(code, 0) + 1

    def invalid_items(self, n: int) -> None:
        self.invalid += n

    def rate_limit_remaining(self, remaining: float) -> None:
        if self.client is not None:  # one key, one limit: the calls' gauge shows it
            self.client.observer.rate_limit_remaining(remaining)

    def _fail(self, kind: str, code: int | None, reason: str) -> None:
        if self._failing == kind:
            return
        self._failing = kind
        what = {
            403: "the API key may not read agents (403)",
            404: "this DialNexa API has no agent list (404)",
        }.get(code or 0, reason)
        log.warning(
            "agent directory unavailable: %s; names from slack.agent_names only, "
            "poll.max_call_duration for every agent (retrying every %ss)",
            what,
            round(self.refresh_every),
            extra={"kind": kind},
        )


def saved_titles(memory: Memory) -> dict[str, str]:
    """Agent id -> title from the directory the daemon saved (the ``alerts`` command reads
    the state file; it lists nothing); empty when there is none or it is unreadable."""
    try:
        raw = memory.get_meta(MEMORY_KEY)
        doc = json.loads(raw) if raw else {}
    except Exception:
        return {}
    rows = doc.get("agents") if isinstance(doc, dict) else None
    entries = (AgentEntry.from_json(r) for r in rows) if isinstance(rows, list) else ()
    return {e.id: e.title for e in entries if e is not None and e.title}


_INFO = "dialnexa_agent_info"
_INFO_HELP = "Always 1: an agent's title and published flag, to join on agent_id."


class DirectoryCollector(Collector):
    """``dialnexa_agents_api_up`` and ``dialnexa_agent_info{agent_id,title,published}`` = 1
    (one series per agent not deleted; ``title`` is ``slack.agent_names``' name, else the
    API's title, else the id). /metrics takes ``dialnexa_agent_info`` as text rendered once
    per listing (``render_apart``: the mapping is replaced whole on refresh)."""

    def __init__(self, directory: AgentDirectory) -> None:
        self.directory = directory
        # (agents, names) the text was rendered from, and its sample lines
        self._text: tuple[object, object, str] | None = None

    def _info(
        self, agents: Mapping[str, AgentEntry], names: Mapping[str, str]
    ) -> Iterator[tuple[str, str, str]]:
        """(agent_id, title, published) of every agent_info series (the title as
        ``AgentDirectory.title_of`` has it, else the id)."""
        seen: set[str] = set()
        for aid, entry in agents.items():
            if entry.deleted:
                continue
            seen.add(aid)
            title = names.get(aid) or entry.title or aid
            published = "unknown" if entry.published is None else str(entry.published).lower()
            yield aid, title[:INFO_TITLE_CHARS], published
        for aid, name in names.items():  # named in the config, not (yet) listed
            if aid not in seen and aid not in agents:
                yield aid, name[:INFO_TITLE_CHARS], "unknown"

    def render_apart(self, openmetrics: bool) -> str:
        """``dialnexa_agent_info`` as prometheus_client writes it (labels sorted by name)."""
        d = self.directory
        text = self._text
        if text is None or text[0] is not d.agents or text[1] is not d.names:
            agents, names = d.agents, d.names
            lines = [
                f'{_INFO}{{agent_id="{escape_label(aid)}",published="{escape_label(pub)}",'
                f'title="{escape_label(title)}"}} 1.0\n'
                for aid, title, pub in self._info(agents, names)
            ]
            text = self._text = (agents, names, "".join(lines))
        return gauge_header(_INFO, _INFO_HELP, openmetrics) + text[2]

    def collect(self) -> Iterator[Metric]:
        d = self.directory
        up = GaugeMetricFamily(
            "dialnexa_agents_api_up",
            "1 when the last listing of DialNexa's agents (GET /agents2) succeeded.",
        )
        up.add_metric([], 1.0 if d.up else 0.0)
        yield up
        requests = CounterMetricFamily(
            "dialnexa_agents_api_requests",
            "Requests to DialNexa's List Agents API by HTTP status code (or timeout / error).",
            labels=["code"],
        )
        for code, n in sorted(d.requests.items()):
            requests.add_metric([code], float(n))
        yield requests
        invalid = CounterMetricFamily(
            "dialnexa_agents_api_invalid_items",
            "Agent items (or whole pages) from GET /agents2 that were unusable and skipped.",
        )
        invalid.add_metric([], float(d.invalid))
        yield invalid
        if rendered_apart():  # /metrics appends render_apart's text
            return
        info = GaugeMetricFamily(_INFO, _INFO_HELP, labels=["agent_id", "title", "published"])
        for aid, title, published in self._info(d.agents, d.names):
            info.add_metric([aid, title, published], 1.0)
        yield info
