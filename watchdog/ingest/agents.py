"""Decode List Agents pages (``GET /agents2``). Pure: bytes in, agents out.

DialNexa's API reference ("List Agents") documents ``{"data": [...], "meta": {page, limit,
total, totalPages}}`` with items carrying ``id``, ``is_deleted`` and ``current_version``
(``title``, ``is_published``, ``telephony.call_limits.max_call_duration_sec`` and
``ring_duration_sec``). Treated like the calls API: keys are matched without regard to case
or underscores (``is_deleted``, ``isDeleted`` and ``IsDeleted`` are one key), a bare array is
accepted, a field that is missing or of the wrong type is unknown (``None``), and an item
without a usable id is skipped and counted. Nothing else of an item is kept: the inbound
number's phone number, prompts and the like are never read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from .parse import PageError

MAX_ID_CHARS = 200
MAX_TITLE_CHARS = 500  # longer titles are cut (Slack and labels clip again)
MAX_LIMIT_SEC = 86_400.0  # a call limit above a day is not believed


@dataclass(frozen=True, slots=True)
class AgentEntry:
    """One agent of the directory; ``None``: the API did not say (or said nonsense)."""

    id: str
    title: str | None = None
    published: bool | None = None
    deleted: bool | None = None
    max_call_duration: float | None = None  # seconds
    ring_duration: float | None = None  # seconds

    @property
    def active(self) -> bool:
        """Published and not deleted, as far as the API said (unknown counts as active)."""
        return self.published is not False and self.deleted is not True

    def call_limit(self, margin: float) -> float | None:
        """The longest a call of this agent can stay unsettled (``max_call_duration`` +
        ``ring_duration`` + ``margin``), or None when its limit is unknown."""
        if self.max_call_duration is None:
            return None
        return self.max_call_duration + (self.ring_duration or 0.0) + margin

    def to_json(self) -> list[Any]:
        return [
            self.id,
            self.title,
            self.published,
            self.deleted,
            self.max_call_duration,
            self.ring_duration,
        ]

    @classmethod
    def from_json(cls, row: Any) -> AgentEntry | None:
        """An entry saved by ``to_json``, or None for anything else (a damaged state)."""
        if not isinstance(row, list) or len(row) != 6:
            return None
        aid, title, published, deleted, max_call, ring = row
        if _ident(aid) is None:
            return None
        return cls(
            aid,
            _text(title),
            _flag(published),
            _flag(deleted),
            _seconds(max_call),
            _seconds(ring),
        )


@dataclass(slots=True)
class AgentsPage:
    agents: list[AgentEntry] = field(default_factory=list)
    items: int = 0  # items in the page, valid or not (a short page ends a listing)
    invalid: int = 0
    total_pages: int | None = None


def _key(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def _fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Keys folded (case, underscores); the first spelling of a key wins."""
    out: dict[str, Any] = {}
    for k, v in obj.items():
        if isinstance(k, str):
            out.setdefault(_key(k), v)
    return out


def _get(obj: dict[str, Any], *names: str) -> Any:
    for n in names:
        if n in obj and obj[n] is not None:
            return obj[n]
    return None


def _sub(obj: dict[str, Any], *names: str) -> dict[str, Any]:
    v = _get(obj, *names)
    return _fields(v) if isinstance(v, dict) else {}


def _ident(v: Any) -> str | None:
    if isinstance(v, str) and 0 < len(v) <= MAX_ID_CHARS and v.isprintable() and v.strip() == v:
        return v
    return None


def _text(v: Any) -> str | None:
    if isinstance(v, str) and v.strip():
        return v[:MAX_TITLE_CHARS]
    return None


def _flag(v: Any) -> bool | None:
    return v if isinstance(v, bool) else None


def _seconds(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) and 0 < f <= MAX_LIMIT_SEC else None


def parse_agent(item: Any) -> AgentEntry | None:
    """One item of the list, or None when it has no usable id."""
    if not isinstance(item, dict):
        return None
    top = _fields(item)
    aid = _ident(_get(top, "id", "agentid"))
    if aid is None:
        return None
    version = _sub(top, "currentversion", "version")
    telephony = _sub(version, "telephony") or _sub(top, "telephony")
    limits = _sub(telephony, "calllimits") or _sub(version, "calllimits")
    deleted = _flag(_get(top, "isdeleted", "deleted"))
    return AgentEntry(
        aid,
        title=_text(_get(version, "title", "name")) or _text(_get(top, "title", "name")),
        published=_flag(_get(version, "ispublished", "published")),
        deleted=deleted,
        max_call_duration=_seconds(_get(limits, "maxcalldurationsec", "maxcallduration")),
        ring_duration=_seconds(_get(limits, "ringdurationsec", "ringduration")),
    )


def parse_agents(body: bytes) -> AgentsPage:
    """A page of ``GET /agents2``; ``PageError`` when the body is no list of agents at all."""
    try:
        doc = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise PageError(f"not JSON ({type(exc).__name__})") from None
    meta: dict[str, Any] = {}
    if isinstance(doc, dict):
        top = _fields(doc)
        items = _get(top, "data", "agents", "items", "results")
        meta = _sub(top, "meta", "pagination")
    else:
        items = doc
    if not isinstance(items, list):
        raise PageError("no list of agents in the body")
    page = AgentsPage(items=len(items))
    for item in items:
        entry = parse_agent(item)
        if entry is None:
            page.invalid += 1
        else:
            page.agents.append(entry)
    pages = _get(meta, "totalpages", "pages")
    if isinstance(pages, int) and not isinstance(pages, bool) and pages >= 0:
        page.total_pages = pages
    return page
