"""Structured logs: one event per line, JSON when not on a TTY (or ``log.format: json``).

Nothing here knows a secret, and nothing the daemon logs carries one; as a second line of
defence a filter masks anything shaped like a phone number or a bearer token.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

_PHONE = re.compile(r"\+\d[\d\s().-]{6,18}\d")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_SLACK = re.compile(r"xox[abposr]-[A-Za-z0-9-]+")
_STD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def scrub(text: str) -> str:
    text = _BEARER.sub(r"\1[redacted]", text)
    text = _SLACK.sub("[redacted]", text)
    return _PHONE.sub("[phone]", text)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        for k, v in _extras(record).items():
            event[k] = scrub(v) if isinstance(v, str) else v
        if record.exc_info and record.exc_info[0] is not None:
            event["error"] = scrub(f"{record.exc_info[0].__name__}: {record.exc_info[1]}")
        return json.dumps(event, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        line = f"{ts} {record.levelname.lower():7} {scrub(record.getMessage())}"
        if extras:
            line += "  " + scrub(extras)
        if record.exc_info and record.exc_info[0] is not None:
            line += scrub(f"  ({record.exc_info[0].__name__}: {record.exc_info[1]})")
        return line


def setup_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "apscheduler", "slack_sdk", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
