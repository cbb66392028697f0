"""Decode List Calls pages in every shape DialNexa has documented. Pure: bytes in, calls out.

Shapes accepted:
- ``{"data": [...], "meta": {"page", "limit", "total", "totalPages"?}}`` (both seed examples)
- a bare JSON array of calls (an older API version), with camelCase ``createdAt``/``endedAt``
- durations as ``duration_seconds``, ``duration_sec`` or ``duration``
- statuses in either vocabulary, refined by ``end_reason`` / ``hangup_reason`` (or the
  deprecated ``disconnection_reason``, or camelCase ``endReason`` / ``hangupReason``); the
  webhook reference's ``hangup`` status with its reasons (see model.END_REASONS)

Phone numbers, metadata and recording URLs are never decoded: the struct below has no field
for them, so msgspec skips them without allocating a string.

A page msgspec rejects as a whole because of one bad string (a lone UTF-16 surrogate escape
such as ``"\\ud83d"``, or bytes that are not UTF-8) is decoded again leniently, and only the
items whose *read* fields carry the bad text are skipped and counted; bad text in metadata or
phone numbers costs nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from ..model import PENDING_STATUSES, Call, normalise_status, refine_status


class _RawCall(msgspec.Struct):
    id: str | None = None
    agent_id: str | None = None
    agentId: str | None = None
    status: str | None = None
    created_at: datetime | None = None
    createdAt: datetime | None = None
    ended_at: datetime | None = None
    endedAt: datetime | None = None
    duration_seconds: float | None = None
    duration_sec: float | None = None
    duration: float | None = None
    end_reason: str | None = None
    hangup_reason: str | None = None
    disconnection_reason: str | None = None
    endReason: str | None = None
    hangupReason: str | None = None


class _Meta(msgspec.Struct):
    page: int | None = None
    limit: int | None = None
    total: int | None = None
    totalPages: int | None = None


class _Page(msgspec.Struct):
    data: list[_RawCall]
    meta: _Meta | None = None


_decode_typed = msgspec.json.Decoder(_Page | list[_RawCall]).decode
_decode_any = msgspec.json.Decoder().decode


class PageError(Exception):
    """The body is not a List Calls page at all (HTML, invalid JSON, wrong top-level type)."""


@dataclass(slots=True)
class ParsedPage:
    calls: list[Call]
    items: int  # items in the page, valid or not (a short page ends a listing)
    invalid: int = 0
    total: int | None = None
    total_pages: int | None = None
    bare: bool = False
    invalid_reasons: list[str] = field(default_factory=list)


def _ts(value: datetime) -> float:
    if value.tzinfo is None:  # no offset given: DialNexa times are UTC
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    return value.timestamp()


_STATUS_MEMO: dict[str, str] = {}


def _status(raw: str) -> str:
    s = _STATUS_MEMO.get(raw)
    if s is None:
        s = normalise_status(raw)
        if len(_STATUS_MEMO) < 1000:  # statuses repeat; an adversarial API cannot grow it
            _STATUS_MEMO[raw] = s
    return s


def _to_call(raw: _RawCall) -> Call | str:
    """A Call, or the reason the item is unusable."""
    call_id = raw.id
    if call_id is None or call_id == "":
        return "missing id"
    agent = raw.agent_id if raw.agent_id is not None else raw.agentId
    if not agent:
        return "missing agent_id"
    if not raw.status:
        return "missing status"
    created = raw.created_at if raw.created_at is not None else raw.createdAt
    if created is None:
        return "missing created_at"
    created_ts = _ts(created)
    status = _status(raw.status)
    reason = (
        raw.end_reason
        or raw.hangup_reason
        or raw.disconnection_reason
        or raw.endReason
        or raw.hangupReason
    )
    if reason:
        status = refine_status(status, reason)
    settled: float | None = None
    if status not in PENDING_STATUSES:
        ended = raw.ended_at if raw.ended_at is not None else raw.endedAt
        if ended is not None:
            settled = _ts(ended)
        else:
            dur = raw.duration_seconds
            if dur is None:
                dur = raw.duration_sec if raw.duration_sec is not None else raw.duration
            if dur is not None and dur >= 0:
                settled = created_ts + dur
    return Call(call_id, agent, status, created_ts, settled)


def _from_raw(raws: list[_RawCall], page: ParsedPage) -> None:
    append = page.calls.append
    for raw in raws:
        c = _to_call(raw)
        if isinstance(c, str):
            page.invalid += 1
            page.invalid_reasons.append(c)
        else:
            append(c)


def parse_page(body: bytes) -> ParsedPage:
    """Decode one page; items that are missing or ill-typed are skipped and counted."""
    try:
        decoded = _decode_typed(body)
    except msgspec.ValidationError:
        return _parse_item_by_item(body)
    except (msgspec.DecodeError, RecursionError) as exc:  # msgspec: RecursionError past its depth
        return _parse_doc(_decode_lenient(body, exc))
    if isinstance(decoded, list):
        page = ParsedPage(calls=[], items=len(decoded), bare=True)
        _from_raw(decoded, page)
        return page
    page = ParsedPage(calls=[], items=len(decoded.data))
    if decoded.meta is not None:
        page.total = decoded.meta.total
        page.total_pages = decoded.meta.totalPages
    _from_raw(decoded.data, page)
    return page


def _parse_item_by_item(body: bytes) -> ParsedPage:
    """Slow path when some item is ill-typed: validate items one at a time."""
    try:
        doc = _decode_any(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        doc = _decode_lenient(body, exc)
    return _parse_doc(doc)


def _decode_lenient(body: bytes, exc: Exception) -> object:
    """What msgspec refused, decoded by the standard library: lone surrogate escapes are kept
    as such, and bytes that are not UTF-8 become lone surrogates (``surrogateescape``), so the
    bad text stays confined to the strings that carry it. PageError if not even that works."""
    try:
        return json.loads(body.decode("utf-8", "surrogateescape"))
    except (ValueError, RecursionError):
        raise PageError(_describe_bad_body(body, exc)) from None


_READ_FIELDS = _RawCall.__struct_fields__


def _bad_text(item: dict[str, object]) -> str | None:
    """The first field we read whose text cannot be valid Unicode (a lone surrogate)."""
    for name in _READ_FIELDS:
        v = item.get(name)
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return name
    return None


def _parse_doc(doc: object) -> ParsedPage:
    """A decoded page, validated item by item."""
    meta: object = None
    if isinstance(doc, list):
        items, bare = doc, True
    elif isinstance(doc, dict) and isinstance(doc.get("data"), list):
        items, bare, meta = doc["data"], False, doc.get("meta")
    else:
        raise PageError("response is JSON but has no 'data' list")
    page = ParsedPage(calls=[], items=len(items), bare=bare)
    if isinstance(meta, dict):
        total, pages = meta.get("total"), meta.get("totalPages")
        page.total = total if isinstance(total, int) else None
        page.total_pages = pages if isinstance(pages, int) else None
    for item in items:
        bad = _bad_text(item) if isinstance(item, dict) else None
        if bad is not None:
            page.invalid += 1
            page.invalid_reasons.append(f"invalid unicode in field: $.{bad}")
            continue
        try:
            raw = msgspec.convert(item, _RawCall, strict=True)
        except msgspec.ValidationError as exc:
            page.invalid += 1
            page.invalid_reasons.append(f"ill-typed field: {_field_of(exc)}")
            continue
        c = _to_call(raw)
        if isinstance(c, str):
            page.invalid += 1
            page.invalid_reasons.append(c)
        else:
            page.calls.append(c)
    return page


def _field_of(exc: msgspec.ValidationError) -> str:
    # msgspec says e.g. "Expected `str | null`, got `int` - at `$.status`"; keep the path only
    text = str(exc)
    return text.rsplit("at `", 1)[-1].rstrip("`") if "at `" in text else "item"


def _describe_bad_body(body: bytes, exc: Exception) -> str:
    head = body[:64].lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<")):
        return "response is HTML, not JSON (a proxy or error page?)"
    if not body.strip():
        return "response body is empty"
    return f"response is not valid JSON ({exc})"
