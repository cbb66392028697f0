"""Logs: one JSON event per line off a TTY, and nothing shaped like a secret or a phone."""

from __future__ import annotations

import io
import json
import logging

from dialnexa_watchdog.logs import scrub, setup_logging


def test_json_lines_with_extras_and_no_phone_or_token() -> None:
    stream = io.StringIO()
    setup_logging("info", "auto", stream)  # StringIO is not a TTY: JSON
    log = logging.getLogger("watchdog.test")
    log.warning("call to +919876543210 failed", extra={"agent_id": "agt_1", "n": 3})
    log.info("header Authorization: Bearer sk-live-abc123 sent")
    log.info("slack token xoxb-123-456-abc in use")
    lines = stream.getvalue().splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["level"] for e in events] == ["warning", "info", "info"]
    assert events[0]["agent_id"] == "agt_1" and events[0]["n"] == 3
    text = stream.getvalue()
    for secret in ("+919876543210", "sk-live-abc123", "xoxb-123-456-abc"):
        assert secret not in text
    logging.getLogger().handlers.clear()


def test_scrub_keeps_ordinary_numbers() -> None:
    assert scrub("took 1234 ms, 150 requests") == "took 1234 ms, 150 requests"
    assert scrub("to +1 555 010 9999 now") == "to [phone] now"
