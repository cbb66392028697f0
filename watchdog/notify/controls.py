"""The buttons on a firing message, what they send back, and the lines that show an
acknowledgement or a silence. Pure.

A firing message carries one ``actions`` block: *Acknowledge* (until someone has),
*Silence 1h*, *Silence 4h*, *Silence until resolved*, and *Unsilence* while any of its alerts
is silenced. A grouped message's buttons act on every agent still firing in it; a menu
(``static_select`` with one option group per choice) acts on one agent, for the worst
``MENU_AGENTS`` firing agents. What comes back is short and holds no agent id: a button's
``value`` is the incident's key (a hash of its id, as in the message metadata), a menu
option's value is ``<choice>:<incident key>:<agent key>`` (the agent key is a hash too).
``parse_choice`` turns an ``action_id`` and value back into a ``Choice``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import AlertSnapshot, Verb
from .limits import MAX_BUTTON_TEXT, clip_mrkdwn, units
from .wording import ID_CHARS, NAME_CHARS, untrusted, utc

# action_id of each control (Slack sends it back); the prefix marks them as ours
PREFIX = "dnx_"
MENU = "dnx_agent"  # the per-agent menu of a grouped message
BLOCK_ID = "dnx_actions"
MENU_AGENTS = 10  # agents offered per choice in the menu (worst first)
OPTION_CHARS = 60  # an option's text (Slack: 75)
UNTIL_RESOLVED_CAP = 7 * 86400.0  # a "until resolved" silence ends after this at the latest

_KEY = re.compile(r"[0-9a-f]{32}")
_AGENT_KEY = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True, slots=True)
class Choice:
    """What a person asked for with one control."""

    name: str  # ack | silence_1h | silence_4h | silence_resolved | unsilence
    verb: Verb
    label: str  # the button's text
    seconds: float | None = None  # a silence's length; None: until resolved (or no silence)
    until_resolved: bool = False


CHOICES: dict[str, Choice] = {
    c.name: c
    for c in (
        Choice("ack", "ack", "Acknowledge"),
        Choice("silence_1h", "silence", "Silence 1h", 3600.0),
        Choice("silence_4h", "silence", "Silence 4h", 4 * 3600.0),
        Choice("silence_resolved", "silence", "Silence until resolved", None, True),
        Choice("unsilence", "unsilence", "Unsilence"),
    )
}
SILENCES = ("silence_1h", "silence_4h", "silence_resolved")
MENU_LABELS = {
    "silence_1h": "Silence one agent for 1h",
    "silence_4h": "Silence one agent for 4h",
    "silence_resolved": "Silence one agent until resolved",
}


def incident_key(incident_id: str) -> str:
    """An incident as it appears outside the store (message metadata, button values): a
    hash, so no agent id leaves the message text (a 5,000-character id stays 32 characters)."""
    return hashlib.sha256(incident_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def agent_key(agent_id: str) -> str:
    return hashlib.sha256(agent_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Pressed:
    """A control decoded from an ``action_id`` and its value."""

    choice: Choice
    incident_key: str
    agent_key: str | None = None  # the menu: one agent of a grouped incident


def parse_choice(action_id: str, value: str) -> Pressed | None:
    """The control behind ``action_id`` and ``value``; None for anything that is not ours or
    does not have the shape we send (never raises)."""
    if not isinstance(action_id, str) or not isinstance(value, str):
        return None
    if action_id == MENU:
        parts = value.split(":")
        if len(parts) != 3 or parts[0] not in CHOICES or parts[0] == "ack":
            return None
        name, key, agent = parts
        if not _KEY.fullmatch(key) or not _AGENT_KEY.fullmatch(agent):
            return None
        return Pressed(CHOICES[name], key, agent)
    name = action_id.removeprefix(PREFIX)
    if not action_id.startswith(PREFIX) or name not in CHOICES or not _KEY.fullmatch(value):
        return None
    return Pressed(CHOICES[name], value)


# ---- rendering ---------------------------------------------------------------------------


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip_mrkdwn(text, limit), "emoji": True}


def _button(name: str, key: str, style: str | None = None) -> dict[str, Any]:
    b: dict[str, Any] = {
        "type": "button",
        "action_id": PREFIX + name,
        "text": _plain(CHOICES[name].label, MAX_BUTTON_TEXT),
        "value": key,
    }
    if style:
        b["style"] = style
    return b


def _option(a: AlertSnapshot, name: str, key: str) -> dict[str, Any]:
    label = untrusted(a.agent_id, ID_CHARS)
    if a.agent_name:
        label += f" ({untrusted(a.agent_name, NAME_CHARS)})"
    return {
        "text": _plain(label, OPTION_CHARS),
        "value": f"{name}:{key}:{agent_key(a.agent_id)}",
    }


def _menu(firing: Sequence[AlertSnapshot], key: str) -> dict[str, Any]:
    worst = sorted(firing, key=lambda a: (-(a.rate or 0.0), a.agent_id))[:MENU_AGENTS]
    silenced = [a for a in firing if a.silenced_until is not None][:MENU_AGENTS]
    groups = [
        {
            "label": _plain(MENU_LABELS[name], MAX_BUTTON_TEXT),
            "options": [_option(a, name, key) for a in worst],
        }
        for name in SILENCES
    ]
    if silenced:
        groups.append(
            {
                "label": _plain("Unsilence one agent", MAX_BUTTON_TEXT),
                "options": [_option(a, "unsilence", key) for a in silenced],
            }
        )
    return {
        "type": "static_select",
        "action_id": MENU,
        "placeholder": _plain("One agent…", MAX_BUTTON_TEXT),
        "option_groups": groups,
    }


def control_blocks(
    incident_id: str, alerts: Sequence[AlertSnapshot], group: bool, acked: bool
) -> list[dict[str, Any]]:
    """The actions block of a main message; ``[]`` once nothing in it is firing."""
    firing = [a for a in alerts if a.state != "resolved"]
    if not firing:
        return []
    key = incident_key(incident_id)
    elements = [] if acked else [_button("ack", key, "primary")]
    elements += [_button(name, key) for name in SILENCES]
    if any(a.silenced_until is not None for a in firing):
        elements.append(_button("unsilence", key, "danger"))
    if group:
        elements.append(_menu(firing, key))
    return [{"type": "actions", "block_id": BLOCK_ID, "elements": elements}]


def controls_units(blocks: Sequence[dict[str, Any]]) -> int:
    """The text the controls add to a message (counted against the blocks' total budget)."""
    total = 0
    for block in blocks:
        for el in block.get("elements", ()):
            total += units(el.get("text", {}).get("text", ""))
            total += units(el.get("placeholder", {}).get("text", ""))
            for g in el.get("option_groups", ()):
                total += units(g["label"]["text"])
                total += sum(units(o["text"]["text"]) for o in g["options"])
    return total


def clock_time(ts: float) -> str:
    """``15:06`` in the reader's time zone (``15:06 UTC`` where Slack cannot)."""
    return f"<!date^{int(ts)}^{{time}}|{utc(ts)[11:]}>"


def ack_line(by: str, at: float) -> str:
    return f"✅ Acknowledged by {untrusted(by, NAME_CHARS)} at {clock_time(at)}"


def silence_words(until: float | None, until_resolved: bool) -> str:
    """``until resolved`` or ``until 16:06``."""
    if until_resolved or until is None:
        return "until resolved"
    return f"until {clock_time(until)}"


def silence_line(alerts: Sequence[AlertSnapshot], group: bool) -> str | None:
    """Who silenced what, for the message's context; None when nothing is silenced."""
    firing = [a for a in alerts if a.state != "resolved"]
    quiet = [a for a in firing if a.silenced_until is not None]
    if not quiet:
        return None
    if group:
        return f"🔕 {len(quiet)} of {len(firing)} agents silenced: no reminders for them"
    a = quiet[0]
    by = f" by {untrusted(a.silenced_by, NAME_CHARS)}" if a.silenced_by else ""
    return f"🔕 Silenced {silence_words(a.silenced_until, a.silenced_until_resolved)}{by}"
