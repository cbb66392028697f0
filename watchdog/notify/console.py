"""Notifications as readable text on a stream (the terminal in the demo) or in the log.

Used when no Slack is configured. It cannot edit or thread, so every notice is a new
block of lines, e.g.::

    [2025-06-15 14:02:00 UTC] FIRING   failed-rate [critical] agent `agt_k7m2nq9xw4p8`: failed rate
    31.0% >= 25.0% over 15m (13 of 42 calls) ▁▂▃▅▇█ (one line in reality)
"""

from __future__ import annotations

import logging
from typing import TextIO

from . import MessageRef, Notice, NoticeKind, SendResult
from .message import render_text
from .wording import utc_seconds

log = logging.getLogger("watchdog.alerts")


class ConsoleNotifier:
    name = "console"
    can_edit = False
    can_find_posted = False

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def send(self, notice: Notice, ref: MessageRef | None) -> SendResult:
        del ref
        text = render_text(notice)
        stamp = f"[{utc_seconds(notice.at)}] "
        lines = [stamp + line for line in text.splitlines()]
        if self.stream is None:
            for line in lines:
                log.warning("%s", line)
            return SendResult("ok")
        try:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
        except (OSError, ValueError) as exc:  # closed or broken stream
            return SendResult("client_error", error=f"cannot write: {type(exc).__name__}")
        return SendResult("ok")

    def find_posted(
        self, incident_id: str, since: float, kind: NoticeKind = "main", at: float | None = None
    ) -> SendResult:
        """A terminal line cannot be looked up (nor lost: a write has no late answer)."""
        del incident_id, since, kind, at
        return SendResult("client_error", error="the console cannot look messages up")

    def close(self) -> None:
        return None
