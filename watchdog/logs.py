"""Structured logs: one event per line, JSON when not on a TTY (or ``log.format: json``).

Every line goes through the process-wide :data:`~.redact.REDACTOR` (the daemon's own secret
values and their encodings) and then, as a second line of defence, :func:`~.redact.mask_shapes`
(anything shaped like a phone number, a bearer token, a ``key=`` parameter or a Slack token).
``log.exception`` keeps its traceback: a ``traceback`` field in JSON, indented lines in text.

:class:`Throttle` keeps a flood (a million unknown agents, a page of bad items every request)
to one line per kind per interval, with the count of what it held back.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from .redact import REDACTOR, Redactor, mask_shapes

_STD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def scrub(text: str, redactor: Redactor | None = None) -> str:
    """Registered secrets, then phone-number and token shapes, masked."""
    return mask_shapes((redactor or REDACTOR).redact(text))


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STD and not k.startswith("_")}


class _Base(logging.Formatter):
    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redactor = redactor

    def scrub(self, text: str) -> str:
        return scrub(text, self.redactor)

    def _trace(self, record: logging.LogRecord) -> str | None:
        parts = []
        if record.exc_info and record.exc_info[0] is not None:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        return "\n".join(parts) if parts else None


class JsonFormatter(_Base):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": self.scrub(record.getMessage()),
        }
        for k, v in _extras(record).items():
            event[k] = self.scrub(v) if isinstance(v, str) else v
        if record.exc_info and record.exc_info[0] is not None:
            event["error"] = self.scrub(f"{record.exc_info[0].__name__}: {record.exc_info[1]}")
        trace = self._trace(record)
        if trace is not None:
            event["traceback"] = self.scrub(trace)
        # the whole line once more: extras that are not strings (lists, dicts) are covered too
        return self.scrub(json.dumps(event, default=str))


class TextFormatter(_Base):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{ts} {record.levelname.lower():7} {record.getMessage()}"
        if extras:
            line += "  " + extras
        if record.exc_info and record.exc_info[0] is not None:
            line += f"  ({record.exc_info[0].__name__}: {record.exc_info[1]})"
        trace = self._trace(record)
        if trace is not None:
            line += "\n" + "\n".join("    " + t for t in trace.splitlines())
        return self.scrub(line)


def setup_logging(
    level: str = "info",
    fmt: str = "auto",
    stream: TextIO | None = None,
    redactor: Redactor | None = None,
) -> None:
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    # without an explicit stream, whatever sys.stderr is when a record is written (an
    # embedding process or a test may swap it, and close the one there was at set-up)
    handler = logging.StreamHandler(out) if stream is not None else _StderrHandler()
    handler.setFormatter(JsonFormatter(redactor) if use_json else TextFormatter(redactor))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "apscheduler", "slack_sdk", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler on the current ``sys.stderr``, looked up at every record."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


class Throttle:
    """At most one log line per kind per ``interval`` seconds.

    ``warning(kind, msg, n=...)`` counts ``n`` events of ``kind``; the first of a quiet kind is
    logged at once, then the kind stays quiet for ``interval``; the next line that goes out
    carries ``count`` (events since the previous line, this one included). Kinds are bounded:
    past ``max_kinds`` distinct kinds new ones share one (``"other"``), so a hostile API that
    invents a new reason per item cannot grow memory or the log. Time comes from ``now``
    (pass the daemon clock's ``now``; the default is a monotonic clock).
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 60.0,
        *,
        now: Callable[[], float] = time.monotonic,
        max_kinds: int = 256,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.max_kinds = max_kinds
        self._now = now
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def _admit(self, kind: str, n: int) -> int:
        """The count to log now, or 0 to stay quiet."""
        with self._lock:
            if kind not in self._last and len(self._last) >= self.max_kinds:
                kind = "other"
            now = self._now()
            held = self._held.get(kind, 0) + n
            last = self._last.get(kind)
            if last is not None and now - last < self.interval:
                self._held[kind] = held
                return 0
            self._last[kind] = now
            self._held[kind] = 0
            return held

    def log(
        self,
        level: int,
        kind: str,
        msg: str,
        *args: object,
        n: int = 1,
        extra: Mapping[str, object] | None = None,
    ) -> bool:
        """Log ``msg`` for ``n`` events of ``kind`` unless the kind logged within
        ``interval``; returns whether a line went out."""
        count = self._admit(kind, n)
        if count <= 0:
            return False
        fields = dict(extra or {})
        fields["count"] = count
        self.logger.log(level, msg, *args, extra=fields)
        return True

    def warning(
        self,
        kind: str,
        msg: str,
        *args: object,
        n: int = 1,
        extra: Mapping[str, object] | None = None,
    ) -> bool:
        return self.log(logging.WARNING, kind, msg, *args, n=n, extra=extra)

    def held(self) -> dict[str, int]:
        """Events counted but not yet logged, per kind."""
        with self._lock:
            return {k: v for k, v in self._held.items() if v}
