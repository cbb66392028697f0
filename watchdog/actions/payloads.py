"""What Slack sends: ``block_actions`` (a button or menu on our message) and slash commands,
decoded into plain values. Pure; never raises on a malformed payload (it becomes ``Ignored``).

Envelope shapes (Socket Mode ``type`` / HTTP form field):

- ``interactive`` / ``payload=<json>``: ``{"type": "block_actions", "team": {"id"},
  "user": {"id", "username", "name"}, "channel": {"id"}, "container": {"message_ts"},
  "response_url", "trigger_id", "actions": [{"action_id", "value" | "selected_option":
  {"value"}, "action_ts"}]}``;
- ``slash_commands`` / form fields: ``{"team_id", "user_id", "user_name", "channel_id",
  "command", "text", "response_url", "trigger_id"}``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..notify.controls import Pressed, parse_choice
from ..notify.limits import clip
from ..notify.wording import clean

NAME_CHARS = 80


@dataclass(frozen=True, slots=True)
class Who:
    team_id: str
    user_id: str
    name: str  # "@alice": how messages and `silence list` show who acted


@dataclass(frozen=True, slots=True)
class Click:
    """A button or menu choice on one of our messages."""

    id: str  # the action's identity: the same click delivered twice has the same id
    who: Who
    pressed: Pressed
    action_ts: str
    channel_id: str | None
    message_ts: str | None
    response_url: str | None


@dataclass(frozen=True, slots=True)
class Command:
    """A slash command (``/dialnexa status agt_1``)."""

    who: Who
    command: str
    text: str
    channel_id: str | None
    response_url: str | None


@dataclass(frozen=True, slots=True)
class Ignored:
    """Not something we act on; ``who`` when known (for the log)."""

    reason: str
    who: Who | None = None


Parsed = Click | Command | Ignored


def _str(value: Any, limit: int = 300) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _display(name: str, user_id: str) -> str:
    shown = clip(clean(name.strip()), NAME_CHARS) if name.strip() else user_id
    return "@" + shown.lstrip("@")


def action_id(who: Who, action: str, value: str, action_ts: str) -> str:
    text = "|".join((who.team_id, who.user_id, action, value, action_ts))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def parse(kind: str, payload: Any) -> Parsed:
    """``kind``: ``interactive`` or ``slash_commands`` (the Socket Mode envelope type)."""
    p = _map(payload)
    if kind == "slash_commands":
        return _command(p)
    if kind != "interactive":
        return Ignored(f"envelope type {kind[:40]!r}")
    if p.get("type") != "block_actions":
        return Ignored(f"interaction type {_str(p.get('type'), 40)!r}")
    user = _map(p.get("user"))
    team = _str(_map(p.get("team")).get("id")) or _str(user.get("team_id"))
    uid = _str(user.get("id"))
    if not uid:
        return Ignored("no user")
    name = _str(user.get("username")) or _str(user.get("name"))
    who = Who(team, uid, _display(name, uid))
    actions = p.get("actions")
    if not isinstance(actions, list) or len(actions) != 1:
        return Ignored("not exactly one action", who)
    act = _map(actions[0])
    aid = _str(act.get("action_id"))
    value = _str(act.get("value")) or _str(_map(act.get("selected_option")).get("value"))
    pressed = parse_choice(aid, value)
    if pressed is None:
        return Ignored(f"not one of our controls: {aid[:60]!r}", who)
    ts = _str(act.get("action_ts"), 40) or _str(p.get("trigger_id"), 100)
    container = _map(p.get("container"))
    channel = _str(_map(p.get("channel")).get("id")) or _str(container.get("channel_id"))
    return Click(
        id=action_id(who, aid, value, ts),
        who=who,
        pressed=pressed,
        action_ts=ts,
        channel_id=channel or None,
        message_ts=_str(container.get("message_ts"), 40) or None,
        response_url=_str(p.get("response_url"), 2000) or None,
    )


def _command(p: Mapping[str, Any]) -> Parsed:
    uid = _str(p.get("user_id"))
    if not uid:
        return Ignored("no user")
    who = Who(_str(p.get("team_id")), uid, _display(_str(p.get("user_name")), uid))
    return Command(
        who=who,
        command=_str(p.get("command"), 40),
        text=_str(p.get("text"), 500),
        channel_id=_str(p.get("channel_id")) or None,
        response_url=_str(p.get("response_url"), 2000) or None,
    )
