"""``GET /agents2`` items: an agent as DialNexa's List Agents API spells it. Pure.

The documented item (DialNexa's API reference, "List Agents", ``GET /v1/agents2``) carries
``id``, ``is_deleted``, ``createdAt``/``updatedAt`` and ``current_version`` with ``title``,
``is_published`` and ``telephony.call_limits`` (``max_call_duration_sec``,
``ring_duration_sec``, ...), paginated as ``{"data": [...], "meta": {page, limit, total,
totalPages}}``. The simulator serves it in snake_case (as documented) or camelCase, with or
without ``totalPages``; a field whose value is unknown (``AgentInfo`` None) is left out.
The inbound number's details carry a phone number, as a real answer can: a client must not
log or export it.
"""

from __future__ import annotations

from typing import Any, Literal

from .profiles import AgentInfo
from .render import fake_phone, iso

AgentsShape = Literal["snake", "camel"]
AGENTS_SHAPES: tuple[AgentsShape, ...] = ("snake", "camel")
AgentsApi = Literal["on", "404", "403", "garbage"]  # 403: every key may read calls, not agents
AGENTS_APIS: tuple[AgentsApi, ...] = ("on", "404", "403", "garbage")

Item = dict[str, Any]

# a 200 answer that is JSON but no agent list: wrong types everywhere
GARBAGE: dict[str, Any] = {
    "data": [
        1,
        "agt_not_an_object",
        None,
        {"id": 42, "current_version": "v1", "is_deleted": "maybe"},
        {"id": ["agt_x"], "current_version": {"title": {"en": "x"}, "is_published": "yes"}},
    ],
    "meta": {"page": "one", "total": -7, "totalPages": None},
}


def agent_item(agent_id: str, info: AgentInfo, index: int, created_ms: int) -> Item:
    """The documented snake_case item for one agent (``index``: its place in the directory,
    for deterministic version numbers and fake ids)."""
    version = 1 + index % 4
    limits: Item = {"end_call_on_silence_sec": 180, "pause_before_speaking_sec": 1.5}
    if info.max_call_duration_sec is not None:
        limits["max_call_duration_sec"] = info.max_call_duration_sec
    if info.ring_duration_sec is not None:
        limits["ring_duration_sec"] = info.ring_duration_sec
    telephony: Item = {
        "inbound": {
            "id": f"phn_{index:06d}",
            "details": {"phone_number": fake_phone(7_000_000 + index), "provider": "sip"},
        },
        "outbound": {"id": None, "details": None},
    }
    if info.max_call_duration_sec is not None or info.ring_duration_sec is not None:
        telephony["call_limits"] = limits
    current: Item = {"agent_id": agent_id, "number": version}
    if info.title is not None:
        current["title"] = info.title
    current |= {
        "is_published": info.published,
        "conversation_start_type": "agent",
        "allow_interruptions": True,
        "prompts": {"welcome_message": "Hello! How can I help you today?"},
        "telephony": telephony,
    }
    return {
        "id": agent_id,
        "organization_id": "org_simulated",
        "folder_id": None,
        "current_version_number": version,
        "is_deleted": info.deleted,
        "createdAt": iso(created_ms),
        "updatedAt": iso(created_ms + 3_600_000 * (1 + index % 48)),
        "timezone": None,
        "current_version": current,
    }


def _camel_key(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def camel(value: Any) -> Any:
    """``value`` with every dict key in camelCase (``is_deleted`` -> ``isDeleted``)."""
    if isinstance(value, dict):
        return {_camel_key(k): camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


def bad_agents(good: list[Item]) -> list[Item]:
    """``good`` with malformed agents interleaved: missing or ill-typed id, versions, limits."""
    broken: list[Item] = [
        {"organization_id": "org_simulated", "is_deleted": False},  # no id
        {"id": 7, "is_deleted": False, "current_version": {"title": "Numeric id"}},
        {"id": "agt_bad_version", "is_deleted": False, "current_version": "draft"},
        {
            "id": "agt_bad_limits",
            "is_deleted": "no",
            "current_version": {
                "title": ["not", "a", "string"],
                "is_published": "yes",
                "telephony": {"call_limits": {"max_call_duration_sec": "ten minutes"}},
            },
        },
        {
            "id": "agt_negative",
            "current_version": {
                "telephony": {
                    "call_limits": {"max_call_duration_sec": -5, "ring_duration_sec": 1e308}
                }
            },
        },
    ]
    out: list[Item] = []
    for i, item in enumerate(good):
        out.append(item)
        if i % 2 == 1 and broken:
            out.append(broken.pop(0))
    out.extend(broken)
    return out
