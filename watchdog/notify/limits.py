"""Slack's message limits, text clipping that keeps them, and ``check_blocks``. Pure.

The limits, from Slack's reference pages (Block Kit blocks, text object, button element,
``chat.postMessage``, message metadata), checked in 2025:

- a message holds at most 50 blocks;
- the top-level ``text`` should stay under 4,000 characters (Slack truncates it at 40,000);
- a text object's ``text`` has 1 to 3,000 characters (section text, context elements);
- a section has ``text`` or ``fields``; at most 10 fields of at most 2,000 characters each;
- a header's ``plain_text`` has at most 150 characters;
- a context block has 1 to 10 elements;
- an actions block has at most 25 elements; a button's text at most 75 characters, its
  ``action_id`` 255, ``value`` 2,000, ``url`` 3,000;
- a ``static_select`` has a placeholder of at most 150 characters and either ``options`` or
  ``option_groups`` (at most 100 each; a group's label at most 75 characters), an option's
  text at most 75 characters and its ``value`` at most 150;
- a ``block_id`` has at most 255 characters;
- metadata is ``{"event_type": ..., "event_payload": {...}}``; ``event_type`` starts with
  ``a-z`` and holds only ``a-z``, ``0-9`` and ``_``; payload values are strings, numbers,
  booleans, or objects/lists of those.

One budget is ours, not documented: Slack answers ``msg_blocks_too_long`` to messages whose
blocks hold about 13,000 characters in total although every single limit above is kept
(reported in slackapi/bolt-js#2509), so the blocks' texts are kept under ``MAX_BLOCKS_TEXT``.

"Characters" are counted as UTF-16 code units (an emoji outside the Basic Multilingual Plane
counts twice), which is never fewer than Slack's count whichever way it counts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

MAX_BLOCKS = 50
MAX_TEXT = 4000
MAX_TEXT_OBJECT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
MAX_BUTTON_TEXT = 75
MAX_ACTION_ID = 255
MAX_BUTTON_VALUE = 2000
MAX_URL = 3000
MAX_BLOCK_ID = 255
MAX_PLACEHOLDER = 150
MAX_OPTIONS = 100
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_BLOCKS_TEXT = 12000  # our budget below Slack's undocumented msg_blocks_too_long

ELLIPSIS = "…"
_EVENT_TYPE = re.compile(r"[a-z][a-z0-9_]*")
# What may follow "<" in mrkdwn we send: a date (<!date^...>) or a link (<https://...|label>).
# Never a mention (<@U..>, <!channel>, <!here>, <!subteam^..>) nor a channel (<#C..>).
_TOKEN = re.compile(r"<(!date\^[0-9]+\^[^<>|]*\|[^<>]*|https?://[^<>|\s]+\|[^<>]+)>")
_ENTITY = re.compile(r"&(amp|lt|gt);")
_SURROGATE = re.compile("[\ud800-\udfff]")


def units(text: str) -> int:
    """``text``'s length in UTF-16 code units (what the limits above are checked against)."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def clip(text: str, limit: int) -> str:
    """At most ``limit`` units: cut between two code points (never inside a surrogate pair)
    and end with an ellipsis when anything was cut. For text without markup."""
    if len(text) * 2 <= limit or units(text) <= limit:
        return text
    budget = limit - units(ELLIPSIS)
    n = 0
    end = 0
    for i, c in enumerate(text):
        n += 2 if ord(c) > 0xFFFF else 1
        if n > budget:
            end = i
            break
    return text[:end] + ELLIPSIS


def clip_mrkdwn(text: str, limit: int) -> str:
    """``clip`` for escaped mrkdwn: never cuts inside an entity (``&amp;``), a ``<...>``
    token or an inline code span, and never returns an empty string."""
    if units(text) <= limit:
        return text if text else ELLIPSIS
    kept = clip(text, limit)[: -len(ELLIPSIS)]
    amp = kept.rfind("&")
    if amp >= 0 and ";" not in kept[amp:]:
        kept = kept[:amp]
    lt = kept.rfind("<")
    if lt >= 0 and ">" not in kept[lt:]:
        kept = kept[:lt]
    if kept.count("`") % 2:
        kept = kept[: kept.rfind("`")]
    return kept.rstrip() + ELLIPSIS


def fit(
    items: Sequence[str],
    sep: str,
    budget: int,
    more: Callable[[int], str],
) -> tuple[list[str], str]:
    """As many ``items`` (in order) as fit in ``budget`` units when joined by ``sep`` and
    followed by ``more(k)``, the suffix for ``k`` items left out (e.g. " ...and 12 more"; it
    may say something for ``k == 0`` too). Returns the kept items and that suffix. At least
    one item is kept, clipped if it must be."""
    kept: list[str] = []
    used = 0
    for i, item in enumerate(items):
        cost = units(item) + (units(sep) if kept else 0)
        if used + cost + units(more(len(items) - i - 1)) > budget:
            break
        kept.append(item)
        used += cost
    if not kept and items:
        room = budget - units(more(len(items) - 1))
        kept = [clip_mrkdwn(items[0], max(1, room))]
    return kept, more(len(items) - len(kept))


# ---- the validator ---------------------------------------------------------------------


def check_blocks(payload: dict[str, Any]) -> list[str]:
    """Every Slack limit ``payload`` (the JSON body of chat.postMessage / chat.update / an
    incoming webhook: ``text``, ``blocks``, ``metadata``) breaks, one line each; ``[]`` when
    it keeps them all. Also flags mrkdwn that would ping, mention or link anyone (a raw ``<``
    not starting a date or a link), bare ``&``, and lone surrogates anywhere."""
    problems: list[str] = []
    text = payload.get("text")
    if text is not None:
        _check_string(problems, "text", text, 1, MAX_TEXT - 1, mrkdwn=True)
    blocks = payload.get("blocks")
    if blocks is not None:
        if not isinstance(blocks, list):
            problems.append("blocks: not a list")
        else:
            if len(blocks) > MAX_BLOCKS:
                problems.append(f"blocks: {len(blocks)} blocks > {MAX_BLOCKS}")
            total = 0
            for i, block in enumerate(blocks):
                total += _check_block(problems, f"blocks[{i}]", block)
            if total > MAX_BLOCKS_TEXT:
                problems.append(f"blocks: {total} characters of text in all > {MAX_BLOCKS_TEXT}")
    if text is None and not blocks:
        problems.append("text: missing (and no blocks)")
    if "metadata" in payload:
        _check_metadata(problems, payload["metadata"])
    return problems


def _check_string(
    problems: list[str], where: str, value: Any, low: int, high: int, mrkdwn: bool = False
) -> int:
    if not isinstance(value, str):
        problems.append(f"{where}: not a string")
        return 0
    n = units(value)
    if n < low:
        problems.append(f"{where}: empty (at least {low} character)")
    if n > high:
        problems.append(f"{where}: {n} characters > {high}")
    if _SURROGATE.search(value):
        problems.append(f"{where}: lone UTF-16 surrogate")
    if mrkdwn:
        _check_markup(problems, where, value)
    return n


def _check_markup(problems: list[str], where: str, value: str) -> None:
    """Only our own dates and links may use ``<``; ``&`` only in the three entities."""
    rest = _TOKEN.sub("", value)
    if "<" in rest or ">" in rest:
        found = re.search(r"<[^>]{0,40}>?|>", rest)
        problems.append(f"{where}: unescaped markup {found.group(0) if found else '<'!r}")
    if "&" in _ENTITY.sub("", rest):
        problems.append(f"{where}: unescaped '&'")


def _check_text_object(problems: list[str], where: str, obj: Any, high: int) -> int:
    if not isinstance(obj, dict):
        problems.append(f"{where}: not a text object")
        return 0
    kind = obj.get("type")
    if kind not in ("plain_text", "mrkdwn"):
        problems.append(f"{where}.type: {kind!r} is not plain_text or mrkdwn")
        return 0
    if kind == "plain_text" and "verbatim" in obj:
        problems.append(f"{where}: verbatim is only for mrkdwn")
    if kind == "mrkdwn" and "emoji" in obj:
        problems.append(f"{where}: emoji is only for plain_text")
    # plain_text is not parsed for mentions, but Slack still decodes the three entities
    return _check_string(problems, f"{where}.text", obj.get("text"), 1, high, mrkdwn=True)


def _check_block(problems: list[str], where: str, block: Any) -> int:
    if not isinstance(block, dict):
        problems.append(f"{where}: not an object")
        return 0
    if "block_id" in block:
        _check_string(problems, f"{where}.block_id", block["block_id"], 1, MAX_BLOCK_ID)
    kind = block.get("type")
    if kind == "header":
        obj = block.get("text")
        if isinstance(obj, dict) and obj.get("type") != "plain_text":
            problems.append(f"{where}.text: a header takes plain_text only")
        return _check_text_object(problems, f"{where}.text", obj, MAX_HEADER_TEXT)
    if kind == "section":
        return _check_section(problems, where, block)
    if kind == "context":
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            problems.append(f"{where}.elements: at least one element")
            return 0
        if len(elements) > MAX_CONTEXT_ELEMENTS:
            problems.append(f"{where}.elements: {len(elements)} > {MAX_CONTEXT_ELEMENTS}")
        total = 0
        for j, el in enumerate(elements):
            if isinstance(el, dict) and el.get("type") == "image":
                _check_string(
                    problems, f"{where}.elements[{j}].image_url", el.get("image_url"), 1, MAX_URL
                )
                continue
            total += _check_text_object(problems, f"{where}.elements[{j}]", el, MAX_TEXT_OBJECT)
        return total
    if kind == "actions":
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            problems.append(f"{where}.elements: at least one element")
            return 0
        if len(elements) > MAX_ACTIONS_ELEMENTS:
            problems.append(f"{where}.elements: {len(elements)} > {MAX_ACTIONS_ELEMENTS}")
        return sum(
            _check_element(problems, f"{where}.elements[{j}]", el) for j, el in enumerate(elements)
        )
    if kind == "divider":
        return 0
    problems.append(f"{where}.type: {kind!r} is not a block this project sends")
    return 0


def _check_section(problems: list[str], where: str, block: dict[str, Any]) -> int:
    total = 0
    has_text = "text" in block
    fields = block.get("fields")
    if not has_text and not fields:
        problems.append(f"{where}: a section needs text or fields")
    if has_text:
        total += _check_text_object(problems, f"{where}.text", block["text"], MAX_TEXT_OBJECT)
    if fields is not None:
        if not isinstance(fields, list) or not fields:
            problems.append(f"{where}.fields: at least one field")
        else:
            if len(fields) > MAX_FIELDS:
                problems.append(f"{where}.fields: {len(fields)} > {MAX_FIELDS}")
            for j, f in enumerate(fields):
                total += _check_text_object(problems, f"{where}.fields[{j}]", f, MAX_FIELD_TEXT)
    if "accessory" in block:
        total += _check_element(problems, f"{where}.accessory", block["accessory"])
    return total


def _check_element(problems: list[str], where: str, el: Any) -> int:
    if isinstance(el, dict) and el.get("type") == "static_select":
        return _check_select(problems, where, el)
    if not isinstance(el, dict) or el.get("type") != "button":
        problems.append(f"{where}: only buttons and static_select are checked; got {el!r:.40}")
        return 0
    if el.get("style") not in (None, "primary", "danger"):
        problems.append(f"{where}.style: {el.get('style')!r} is not primary or danger")
    text = el.get("text")
    if isinstance(text, dict) and text.get("type") != "plain_text":
        problems.append(f"{where}.text: a button takes plain_text only")
    n = _check_text_object(problems, f"{where}.text", text, MAX_BUTTON_TEXT)
    if "action_id" in el:
        _check_string(problems, f"{where}.action_id", el["action_id"], 1, MAX_ACTION_ID)
    if "value" in el:
        _check_string(problems, f"{where}.value", el["value"], 1, MAX_BUTTON_VALUE)
    if "url" in el:
        _check_string(problems, f"{where}.url", el["url"], 1, MAX_URL)
    return n


def _plain_text(problems: list[str], where: str, obj: Any, high: int) -> int:
    if isinstance(obj, dict) and obj.get("type") != "plain_text":
        problems.append(f"{where}: plain_text only")
    return _check_text_object(problems, where, obj, high)


def _check_options(problems: list[str], where: str, options: Any) -> int:
    if not isinstance(options, list) or not options:
        problems.append(f"{where}: at least one option")
        return 0
    if len(options) > MAX_OPTIONS:
        problems.append(f"{where}: {len(options)} options > {MAX_OPTIONS}")
    total = 0
    for k, opt in enumerate(options):
        at = f"{where}[{k}]"
        if not isinstance(opt, dict):
            problems.append(f"{at}: not an object")
            continue
        total += _plain_text(problems, f"{at}.text", opt.get("text"), MAX_OPTION_TEXT)
        _check_string(problems, f"{at}.value", opt.get("value"), 1, MAX_OPTION_VALUE)
    return total


def _check_select(problems: list[str], where: str, el: dict[str, Any]) -> int:
    total = 0
    if "placeholder" in el:
        total += _plain_text(problems, f"{where}.placeholder", el["placeholder"], MAX_PLACEHOLDER)
    _check_string(problems, f"{where}.action_id", el.get("action_id"), 1, MAX_ACTION_ID)
    has_options, has_groups = "options" in el, "option_groups" in el
    if has_options == has_groups:
        problems.append(f"{where}: options or option_groups (exactly one)")
    if has_options:
        total += _check_options(problems, f"{where}.options", el["options"])
    if has_groups:
        groups = el["option_groups"]
        if not isinstance(groups, list) or not groups:
            problems.append(f"{where}.option_groups: at least one group")
            return total
        if len(groups) > MAX_OPTIONS:
            problems.append(f"{where}.option_groups: {len(groups)} > {MAX_OPTIONS}")
        for g, group in enumerate(groups):
            at = f"{where}.option_groups[{g}]"
            if not isinstance(group, dict):
                problems.append(f"{at}: not an object")
                continue
            total += _plain_text(problems, f"{at}.label", group.get("label"), MAX_OPTION_TEXT)
            total += _check_options(problems, f"{at}.options", group.get("options"))
    return total


def _check_metadata(problems: list[str], meta: Any) -> None:
    if not isinstance(meta, dict):
        problems.append("metadata: not an object")
        return
    event_type = meta.get("event_type")
    if not isinstance(event_type, str) or not _EVENT_TYPE.fullmatch(event_type):
        problems.append(f"metadata.event_type: {event_type!r} is not [a-z][a-z0-9_]*")
    payload = meta.get("event_payload")
    if not isinstance(payload, dict):
        problems.append("metadata.event_payload: not an object")
        return
    for k, v in payload.items():
        if (
            not _scalar(v)
            and not (isinstance(v, dict) and all(_scalar(x) for x in v.values()))
            and not (
                isinstance(v, list)
                and all(isinstance(x, dict) and all(_scalar(y) for y in x.values()) for x in v)
            )
        ):
            problems.append(f"metadata.event_payload.{k}: not a string, number or boolean")
        elif isinstance(v, str) and _SURROGATE.search(v):
            problems.append(f"metadata.event_payload.{k}: lone UTF-16 surrogate")


def _scalar(v: Any) -> bool:
    return isinstance(v, str | int | float | bool)
