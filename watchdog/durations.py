"""Durations as users write them: ``30s``, ``5m``, ``1h``, ``1d``, ``1h30m``, ``10y`` (365-day
years) or plain seconds."""

from __future__ import annotations

import re
from collections.abc import Mapping

_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "y": 365 * 86400.0,  # 365 days (false_alarm: 10y)
}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")


def parse_duration(value: object) -> float:
    """Seconds in ``value``; raises ValueError with a readable message."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m, 1h, 1d or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            pos = 0
            seconds = 0.0
            for m in _PART.finditer(text):
                if m.start() != pos:
                    break
                seconds += float(m.group(1)) * _UNITS[m.group(2)]
                pos = m.end()
            if pos != len(text) or not text:
                raise ValueError(
                    f"{value!r} is not a duration (use e.g. 30s, 5m, 1h, 1d or seconds)"
                ) from None
    else:
        raise ValueError("expected a duration such as 30s, 5m, 1h, 1d or a number of seconds")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: 300 -> ``5m``, 90 -> ``90s``, 3600 -> ``1h``."""
    s = float(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{int(s // size)}{unit}"
    return f"{int(s)}s" if s == int(s) else f"{s}s"


def window_label(settings_windows: Mapping[str, float], value: str) -> str:
    """The configured label for a window written as ``value`` (``900s`` -> ``15m``)."""
    seconds = parse_duration(value)
    for label, s in settings_windows.items():
        if s == seconds:
            return label
    raise KeyError(value)
