"""JSON for what the store keeps: alert states, message snapshots, notices. Unknown keys
are ignored on the way in, so a newer file can still be read by an older binary's code."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, TypeVar

from ...notify import AlertSnapshot, Notice
from ..state import AlertState, State

_T = TypeVar("_T")


def _known(cls: type[_T], data: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return {k: v for k, v in data.items() if k in names}


_STATE_FIELDS = tuple(f.name for f in dataclasses.fields(AlertState))
_SNAPSHOT_FIELDS = tuple(f.name for f in dataclasses.fields(AlertSnapshot))


def state_to_json(s: AlertState) -> str:
    # a flat dict, not dataclasses.asdict: asdict deep-copies every value
    return json.dumps({f: getattr(s, f) for f in _STATE_FIELDS}, separators=(",", ":"))


def _snapshot_dict(a: AlertSnapshot) -> dict[str, Any]:
    return {f: getattr(a, f) for f in _SNAPSHOT_FIELDS}


def state_from_json(text: str) -> AlertState:
    d = _known(AlertState, json.loads(text))
    d["state"] = State(d["state"])
    return AlertState(**d)


def snapshot_from_dict(d: Mapping[str, Any]) -> AlertSnapshot:
    kw = _known(AlertSnapshot, d)
    kw["sparkline"] = tuple(kw.get("sparkline") or ())
    return AlertSnapshot(**kw)


def notice_to_json(n: Notice) -> str:
    d: dict[str, Any] = {f.name: getattr(n, f.name) for f in dataclasses.fields(n)}
    d["alerts"] = [_snapshot_dict(a) for a in n.alerts]
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False)


def notice_from_json(text: str) -> Notice:
    d = _known(Notice, json.loads(text))
    d["alerts"] = tuple(snapshot_from_dict(a) for a in d.get("alerts") or ())
    return Notice(**d)


def members_to_json(members: Mapping[str, AlertSnapshot]) -> str:
    return json.dumps(
        {k: _snapshot_dict(v) for k, v in members.items()},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def members_from_json(text: str) -> dict[str, AlertSnapshot]:
    return {k: snapshot_from_dict(v) for k, v in json.loads(text).items()}
