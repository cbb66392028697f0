"""Logs: one JSON event per line off a TTY, and nothing shaped like a secret or a phone."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import sys
from urllib.parse import quote, quote_plus

import pytest
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.config import load_settings
from dialnexa_watchdog.logs import JsonFormatter, TextFormatter, Throttle, scrub, setup_logging
from dialnexa_watchdog.redact import Redactor, secrets_in
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr


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


# ---- the daemon's own secrets ------------------------------------------------------------------
SECRET = "sk_live/Zq+8x=Yv&k3y~Q9"


def _b64_runs_hide(text: str, secret: bytes) -> bool:
    """No run of base64 characters in ``text`` decodes (at any alignment) to the secret."""
    for run in re.findall(r"[A-Za-z0-9+/_-]{4,}", text):
        run = run.replace("-", "+").replace("_", "/")
        for start in range(4):
            part = run[start:]
            part = part[: len(part) - len(part) % 4]
            try:
                if secret in base64.b64decode(part):
                    return False
            except ValueError:
                continue
    return True


def test_redactor_masks_exact_values_and_obvious_encodings() -> None:
    r = Redactor([SECRET, None, SecretStr("xoxb-slack-token-value"), "short"])
    texts = [
        f"Authorization: Bearer {SECRET}",
        f"GET /calls?key={quote(SECRET, safe='')}&page=2",
        f"q={quote_plus(SECRET)}",
        f"lower {quote(SECRET, safe='').lower()} and upper {SECRET.upper()}",
        f'{{"k": {json.dumps(SECRET)}}}',
        "token xoxb-slack-token-value",
    ]
    for prefix in ("", "u", "us", "user:"):  # the key inside Basic auth, at every alignment
        texts.append("Basic " + base64.b64encode(f"{prefix}{SECRET}".encode()).decode())
        texts.append(base64.urlsafe_b64encode(f"{prefix}{SECRET}!".encode()).decode())
    for text in texts:
        out = r.redact(text)
        assert "[redacted]" in out, text
        assert SECRET.lower() not in out.lower() and "slack-token" not in out
        assert quote(SECRET, safe="").lower() not in out.lower()
        assert _b64_runs_hide(out, SECRET.encode()), (text, out)
    assert r.redact("a short note on 150 calls") == "a short note on 150 calls"  # 'short' < 6


@settings(max_examples=200, deadline=None)
@given(
    secret=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=8),
    before=st.text(max_size=20),
    after=st.text(max_size=20),
)
@pytest.mark.slow
def test_redactor_property_no_spelling_survives(secret: str, before: str, after: str) -> None:
    secret = secret.strip()
    assume(len(secret) >= 8)
    assume(secret not in "[redacted]")  # the mask itself would read as the secret
    r = Redactor([secret])
    for spelling in (secret, quote(secret, safe=""), quote_plus(secret)):
        out = r.redact(before + spelling + after)
        assert spelling not in out
    basic = base64.b64encode(f"{before}:{secret}".encode()).decode()
    assert _b64_runs_hide(r.redact(f"Basic {basic} {after}"), secret.encode())


def test_formatters_apply_the_registered_secrets_to_everything_they_print() -> None:
    r = Redactor([SECRET])
    for fmt in (JsonFormatter(r), TextFormatter(r)):
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(fmt)
        log = logging.getLogger("watchdog.test.secrets")
        log.addHandler(handler)
        try:
            log.warning(
                "answer was %s",
                f"echo key={quote(SECRET, safe='')}",
                extra={"body": {"nested": [SECRET]}, "hdr": f"Basic {SECRET}"},
            )
            try:
                raise ValueError(f"server said {SECRET}")
            except ValueError:
                log.exception("failed")
        finally:
            log.removeHandler(handler)
        out = stream.getvalue()
        assert SECRET not in out and quote(SECRET, safe="") not in out
        assert out.count("[redacted]") >= 4


def test_log_exception_keeps_the_traceback_in_json_and_text() -> None:
    def deep_failure() -> None:
        raise RuntimeError("state file is corrupt")

    for fmt, parse in (("json", json.loads), ("text", None)):
        stream = io.StringIO()
        setup_logging("info", fmt, stream)
        try:
            deep_failure()
        except RuntimeError:
            logging.getLogger("watchdog.test").exception("poll cycle failed")
        logging.getLogger().handlers.clear()
        text = stream.getvalue()
        if parse is not None:
            [event] = [parse(line) for line in text.splitlines()]
            assert event["error"] == "RuntimeError: state file is corrupt"
            text = event["traceback"]
        assert "Traceback (most recent call last)" in text
        assert "in deep_failure" in text and "RuntimeError: state file is corrupt" in text


# ---- floods ------------------------------------------------------------------------------------
def test_throttle_writes_one_line_per_kind_per_interval_with_a_count() -> None:
    clock = FakeClock()
    stream = io.StringIO()
    log = logging.getLogger("watchdog.test.flood")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(Redactor()))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        t = Throttle(log, 60.0, now=clock.now, max_kinds=3)
        # a million unknown agents in one cycle, one warning call each
        for i in range(100_000):
            t.warning(
                "unknown_agent",
                "agent ignored: poll.max_agents reached",
                extra={"agent_id": f"agt_{i}"},
            )
        t.warning("unknown_status", "unknown call status", n=900_000)
        assert t.held() == {"unknown_agent": 99_999}
        clock.advance(59)
        assert not t.warning("unknown_agent", "agent ignored: poll.max_agents reached")
        clock.advance(1)
        assert t.warning("unknown_agent", "agent ignored: poll.max_agents reached")
        for k in range(50):  # new kinds without end share one
            t.warning(f"reason {k}", "skipped invalid call items")
    finally:
        log.removeHandler(handler)
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["msg"], e["count"]) for e in events] == [
        ("agent ignored: poll.max_agents reached", 1),
        ("unknown call status", 900_000),
        ("agent ignored: poll.max_agents reached", 100_001),
        ("skipped invalid call items", 1),
        ("skipped invalid call items", 1),  # 'reason 0', then the rest as 'other'
    ]
    assert events[0]["agent_id"] == "agt_0"


def test_every_secret_in_the_settings_is_found_for_registration() -> None:
    cfg = load_settings(
        None,
        overrides={
            "dialnexa.api_key": "dn-key-123456",
            "slack.token": "xoxb-1-2-tokentoken",
            "slack.channel": "C0123456789",
            "slack.webhook_url": "https://hooks.slack.com/services/T0/B0/abcdefgh",
        },
        environ={},
    )
    found = {s.get_secret_value() for s in secrets_in(cfg)}
    assert found == {
        "dn-key-123456",
        "xoxb-1-2-tokentoken",
        "https://hooks.slack.com/services/T0/B0/abcdefgh",
    }
    r = Redactor(secrets_in(cfg))
    assert r.redact("posted to https://hooks.slack.com/services/T0/B0/abcdefgh") == (
        "posted to [redacted]"
    )


def test_default_handler_writes_to_the_stderr_of_the_moment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An embedding process (or a test) may swap sys.stderr and close the old one: records
    go to the current one, never to a closed stream ('--- Logging error ---')."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    first, second = io.StringIO(), io.StringIO()
    try:
        monkeypatch.setattr(sys, "stderr", first)
        setup_logging("info", "text")
        first.close()
        monkeypatch.setattr(sys, "stderr", second)
        logging.getLogger("watchdog.test").warning("after the swap")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    out = second.getvalue()
    assert "warning after the swap" in out and "Logging error" not in out
