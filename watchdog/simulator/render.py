"""JSON items as each DialNexa response shape spells a call. Pure."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from .calls import (
    BARE_REASONS,
    FINAL_BASE,
    OUTCOMES,
    VOCAB_BITS,
    VOCAB_CODE,
    VOCAB_MASK,
    WEBHOOK_REASONS,
    Shape,
    status_table,
)
from .store import CallStore

Item = dict[str, Any]

_FIRST = ("Priya", "Arjun", "Maria", "Chen", "Amara", "Lukas", "Sofia", "Kenji", "Fatima", "Diego")
_LAST = ("Sharma", "Okafor", "Garcia", "Wei", "Novak", "Silva", "Tanaka", "Haddad", "Rossi", "Kim")
_VOICEMAIL = OUTCOMES.index("voicemail")
_WEBHOOK = VOCAB_CODE["webhook"]
_WEBHOOK_REASONS = tuple(WEBHOOK_REASONS[o] for o in OUTCOMES)
_BARE_REASONS = tuple(BARE_REASONS[o] for o in OUTCOMES)


@lru_cache(maxsize=4096)
def _day(days: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(days * 86400))


def iso(ms: int) -> str:
    """``2024-03-01T10:00:00.000Z`` for epoch milliseconds."""
    s, m = divmod(ms, 1000)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    mi, s = divmod(s, 60)
    return f"{_day(d)}T{h:02d}:{mi:02d}:{s:02d}.{m:03d}Z"


def fake_phone(n: int) -> str:
    """A fake E.164 number in the +1 555 range, derived from ``n``."""
    return f"+1555{(n * 2654435761 + 12345) % 10_000_000:07d}"


def fake_name(k: int) -> str:
    return f"{_FIRST[k % len(_FIRST)]} {_LAST[(k // len(_FIRST)) % len(_LAST)]}"


def render(store: CallStore, serials: list[int], now: int, shape: Shape) -> list[Item]:
    """The ``data`` items for calls ``serials`` as seen at ``now`` (ms)."""
    tables = status_table(shape)
    id_of, agents, agent_col = store.id_of, store.agents, store.agent
    created, settle, talk, ov = store.created, store.settle, store.talk, store.ov
    items: list[Item] = []
    for k in serials:
        code = store.code_at(k, now)
        o = ov[k]
        vocab = o & VOCAB_MASK
        status = tables[vocab][code]
        ended = code >= FINAL_BASE
        oc = o >> VOCAB_BITS
        cid = id_of(k)
        agent_id = agents[agent_col[k]]
        item: Item
        if shape == "bare":
            item = {
                "id": cid,
                "agent_id": agent_id,
                "to_number": fake_phone(k),
                "status": status,
                "createdAt": iso(created[k]),
                "endedAt": iso(settle[k]) if ended else None,
            }
            reasons = _BARE_REASONS[oc]
            if ended and reasons:
                field = "hangup_reason" if k % 4 == 3 else "end_reason"
                item[field] = reasons[k % len(reasons)]
            items.append(item)
            continue
        duration = talk[k] // 1000 if ended else None
        if shape == "v1":
            answered_and_over = ended and talk[k] > 0
            a = agent_col[k]
            item = {
                "id": cid,
                "agent_id": agent_id,
                "agent_version_number": 1 + a % 3,
                "to_phone_number": fake_phone(k),
                "from_phone_number": fake_phone(1_000_003 + a),
                "status": status,
                "duration_seconds": duration,
                "recording_url": (
                    f"https://recordings.dialnexa.example/{cid}.mp3" if answered_and_over else None
                ),
                "metadata": {"customer_name": fake_name(k), "account_id": f"ACC-{k % 10000:04d}"},
                "created_at": iso(created[k]),
                "ended_at": iso(settle[k]) if ended else None,
            }
        else:
            item = {
                "id": cid,
                "status": status,
                "agent_id": agent_id,
                "to_phone_number": fake_phone(k),
                "duration_sec": duration if duration is not None else 0,
                "created_at": iso(created[k]),
            }
        if vocab == _WEBHOOK:
            reasons = _WEBHOOK_REASONS[oc]
            reason = reasons[k % len(reasons)] if ended and reasons else ""
            if reason:  # the webhook's field, and sometimes its deprecated alias as well
                item["hangup_reason"] = reason
                if k % 5 == 0:
                    item["disconnection_reason"] = reason
        elif ended and oc == _VOICEMAIL:
            item["end_reason"] = "voicemail_detected"
        items.append(item)
    return items


def bad_items(good: list[Item], shape: Shape) -> list[Item]:
    """``good`` with malformed items interleaved: missing or ill-typed id/status/created_at."""
    created_key = "createdAt" if shape == "bare" else "created_at"
    template: Item = (
        dict(good[0])
        if good
        else {
            "id": "call_template",
            "agent_id": "agt_bad",
            "status": "completed",
            created_key: "2024-03-01T10:00:00.000Z",
        }
    )
    broken: list[Item] = []
    for i, (field, value) in enumerate(
        (
            ("id", None),  # missing
            ("status", 7),
            (created_key, 12345),
            ("status", None),  # missing
            (created_key, None),  # missing
            ("agent_id", ["not", "a", "string"]),
            ("id", 42),
        )
    ):
        item = dict(template)
        item["id"] = f"call_bad_{i:04d}"
        if value is None:
            item.pop(field, None)
        else:
            item[field] = value
        broken.append(item)
    out: list[Item] = []
    for i, item in enumerate(good):
        out.append(item)
        if i % 2 == 1 and broken:
            out.append(broken.pop(0))
    out.extend(broken)
    return out
