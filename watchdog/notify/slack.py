"""Slack notifiers over slack-sdk: bot token (post, thread, edit, look up) and incoming webhook.

slack-sdk's own retry handlers are turned off: retries belong to the outbox, which honours
Retry-After against the injected clock and keeps per-incident order. Errors are classified
into the closed set of ``watchdog.notify.REASONS``; no token or webhook URL ever appears in
a result, an exception text or a log line (slack-sdk's debug logging, which prints webhook
URLs, is kept off by giving it a logger of its own that only passes CRITICAL; the outbox logs
every failure itself, classified and without secrets). A transport failure names the host
and what went wrong (DNS, refused, TLS, timeout, connection lost), never the URL's path.

A post whose answer never came (a timeout, a connection lost after sending, a 5xx) may still
have been posted: its result says ``maybe_delivered``. Every top-level message carries a
marker in its Slack message metadata (``incident_metadata``), so the bot notifier's
``find_posted`` can look it up with ``conversations.history`` before anything posts again.

What each answer and failure means is in ``slack_errors.py``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import Any, cast

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from . import MessageRef, Notice, NoticeKind, SendResult
from .controls import incident_key
from .message import SlackMessage, render_slack
from .slack_errors import (
    ERROR_CODE,
    api_error,
    classify,
    describe,
    fix_for,
    host_of,
    retry_after,
    transport_failure,
)

log = logging.getLogger(__name__)

_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,30}")
_sdk_logger = logging.getLogger("watchdog.notify.slack_sdk")
_sdk_logger.setLevel(logging.CRITICAL)

# The marker in every top-level message's metadata. Slack asks for [a-z][a-z0-9_]* and
# "<resource>_<action in the past tense>".
EVENT_TYPE = "dialnexa_incident_posted"
HISTORY_PAGE = 200  # conversations.history page size (Slack allows up to 999)
HISTORY_PAGES = 10  # pages searched before giving up (2,000 messages since the first try)
CLOCK_SKEW = 120.0  # seconds subtracted from ``since``: our clock may run ahead of Slack's

# ---- the incident marker -------------------------------------------------------------------


def incident_metadata(incident_id: str, kind: NoticeKind, at: float) -> dict[str, Any]:
    """Slack message metadata marking a top-level message as this notice's."""
    return {
        "event_type": EVENT_TYPE,
        "event_payload": {"incident": incident_key(incident_id), "kind": kind, "at": int(at)},
    }


def build_message(notice: Notice, dashboard_url: str | None, buttons: bool = False) -> SlackMessage:
    """What the bot notifier sends for ``notice``: the rendered message (with its buttons when
    ``buttons``), plus the incident marker in its metadata when it is a top-level post."""
    msg = render_slack(notice, dashboard_url, buttons)
    if notice.op != "post":
        return msg
    return replace(msg, metadata=incident_metadata(notice.incident, notice.kind, notice.at))


RENDER_FAILED = SendResult("client_error", error="the message could not be rendered (a bug)")


def _render(
    notice: Notice, dashboard_url: str | None, marker: bool = True, buttons: bool = False
) -> SlackMessage | None:
    """``build_message`` that never raises (a notifier never does): None, logged, on a bug."""
    try:
        if marker:
            return build_message(notice, dashboard_url, buttons)
        return render_slack(notice, dashboard_url)
    except Exception:
        log.exception(
            "cannot render the %s %s message for %s", notice.kind, notice.op, notice.incident
        )
        return None


def _marks(message: Any, key: str, kind: NoticeKind, at: float | None) -> bool:
    if not isinstance(message, dict):
        return False
    meta = message.get("metadata")
    if not isinstance(meta, dict) or meta.get("event_type") != EVENT_TYPE:
        return False
    payload = meta.get("event_payload")
    if not isinstance(payload, dict):
        return False
    if payload.get("incident") != key or payload.get("kind") != kind:
        return False
    return at is None or payload.get("at") == int(at)


# ---- bot token -------------------------------------------------------------------------------


class SlackBotNotifier:
    """Bot-token mode: main message via chat.postMessage, follow-ups in its thread, edits via
    chat.update, look-ups via conversations.history. Needs the ``chat:write`` scope, and
    ``channels:history`` (``groups:history`` for a private channel) for ``find_posted``.
    ``buttons``: firing messages carry the Slack action buttons (``slack.actions.mode``)."""

    name = "slack"
    can_edit = True

    def __init__(
        self,
        token: str,
        channel: str,
        api_url: str = "https://slack.com/api/",
        timeout: float = 10.0,
        dashboard_url: str | None = None,
        buttons: bool = False,
    ) -> None:
        self.channel = channel
        self.dashboard_url = dashboard_url
        self.buttons = buttons
        self.can_find_posted = True  # False once Slack said the token may not read history
        self._no_history: SendResult | None = None
        self._channel_id = channel if _CHANNEL_ID.fullmatch(channel) else None
        self._host = host_of(api_url)
        self._timeout = timeout
        self._client = WebClient(
            token=token,
            base_url=api_url,
            # slack-sdk annotates int but hands it to urllib, which takes seconds as a float
            timeout=cast(int, timeout),
            retry_handlers=[],
            logger=_sdk_logger,
        )

    def send(self, notice: Notice, ref: MessageRef | None) -> SendResult:
        msg = _render(notice, self.dashboard_url, buttons=self.buttons)
        if msg is None:
            return RENDER_FAILED
        if notice.op == "post":
            return self.post(msg)
        if ref is None:
            return SendResult("client_error", error="no main message to thread or edit")
        if notice.op == "reply":
            return self.post(msg, ref)
        return self.update(msg, ref)

    def post(self, msg: SlackMessage, thread: MessageRef | None = None) -> SendResult:
        channel = thread.channel if thread is not None else self.channel
        return self._call(
            "chat_postMessage",
            channel=channel,
            text=msg.text,
            blocks=msg.blocks,
            thread_ts=thread.ts if thread is not None else None,
            metadata=msg.metadata if thread is None else None,
            unfurl_links=False,
            unfurl_media=False,
            link_names=False,
            parse="none",
        )

    def update(self, msg: SlackMessage, ref: MessageRef) -> SendResult:
        return self._call(
            "chat_update",
            channel=ref.channel,
            ts=ref.ts,
            text=msg.text,
            blocks=msg.blocks,
            link_names=False,
            parse="none",
        )

    def find_posted(
        self, incident_id: str, since: float, kind: NoticeKind = "main", at: float | None = None
    ) -> SendResult:
        """Look for this incident's top-level message (of ``kind``; of the notice made at
        ``at`` if given) posted since ``since`` (epoch seconds, e.g. the notice's ``at``).

        ``ok`` with ``ref``: found, do not post again. ``ok`` without ``ref``: not there, post.
        Not ``ok`` and ``transient`` (timeout, 429, 5xx): cannot tell yet, ask again later.
        Not ``ok`` otherwise (e.g. ``missing_scope``: the token lacks channels:history): cannot
        tell at all, so post again (at-least-once); ``can_find_posted`` turns False and a
        warning is logged once."""
        if self._no_history is not None:
            return self._no_history
        channel = self._channel_id or self.channel
        key = incident_key(incident_id)
        cursor: str | None = None
        for _ in range(HISTORY_PAGES):
            try:
                resp = self._client.conversations_history(
                    channel=channel,
                    oldest=f"{max(0.0, since - CLOCK_SKEW):.6f}",
                    inclusive=True,
                    include_all_metadata=True,
                    limit=HISTORY_PAGE,
                    cursor=cursor,
                )
            except SlackApiError as exc:
                return self._history_failed(api_error(exc))
            except SlackClientError as exc:
                return SendResult("client_error", error=type(exc).__name__)
            except Exception as exc:  # transport: refused, reset, DNS, timeout
                return transport_failure(exc, self._host, self._timeout)
            data = resp.data if isinstance(resp.data, dict) else {}
            messages = data.get("messages")
            for m in messages if isinstance(messages, list) else []:
                if _marks(m, key, kind, at) and isinstance(m.get("ts"), str):
                    return SendResult("ok", ref=MessageRef(channel, m["ts"]))
            meta = data.get("response_metadata")
            cursor = meta.get("next_cursor") if isinstance(meta, dict) else None
            if not data.get("has_more") or not isinstance(cursor, str) or not cursor:
                return SendResult("ok")
        return SendResult(
            "client_error",
            error=f"not among the first {HISTORY_PAGES * HISTORY_PAGE} messages since then",
        )

    def _history_failed(self, result: SendResult) -> SendResult:
        if result.reason in ("auth_error", "channel_error"):
            self.can_find_posted = False
            self._no_history = result
            log.warning(
                "Slack: cannot read the history of %s (%s), so after a timed-out post the "
                "daemon cannot check whether Slack posted it: a slow Slack may show an alert "
                "twice (at-least-once delivery)%s",
                self.channel,
                result.error,
                f"; fix: {result.fix}" if result.fix else "",
            )
        return result

    def auth_test(self) -> tuple[SendResult, dict[str, Any]]:
        """Who the token belongs to (for ``slack-test``)."""
        try:
            resp = self._client.auth_test()
        except SlackApiError as exc:
            return api_error(exc), {}
        except SlackClientError as exc:
            return SendResult("client_error", error=type(exc).__name__), {}
        except Exception as exc:
            return transport_failure(exc, self._host, self._timeout), {}
        data = resp.data if isinstance(resp.data, dict) else {}
        return SendResult("ok"), data

    def _call(self, method: str, **kwargs: Any) -> SendResult:
        posting = method == "chat_postMessage"
        try:
            resp = getattr(self._client, method)(**kwargs)
        except SlackApiError as exc:
            result = api_error(exc)
            # a 5xx may come after Slack stored the message
            return replace(result, maybe_delivered=posting and result.reason == "server_error")
        except SlackClientError as exc:
            return SendResult("client_error", error=type(exc).__name__)
        except Exception as exc:  # transport: refused, reset, DNS, timeout
            return transport_failure(exc, self._host, self._timeout, posting)
        data = resp.data if isinstance(resp.data, dict) else {}
        ts = data.get("ts")
        channel = data.get("channel") or kwargs.get("channel")
        if isinstance(channel, str) and _CHANNEL_ID.fullmatch(channel):
            self._channel_id = self._channel_id or channel
        ref = MessageRef(str(channel), str(ts)) if ts else None
        return SendResult("ok", ref=ref)

    def close(self) -> None:
        return None


# ---- incoming webhook --------------------------------------------------------------------------

NO_LOOKUP = SendResult(
    "client_error",
    error="an incoming webhook cannot look messages up",
    fix="use a bot token (slack.token, slack.channel) with channels:history to avoid duplicate "
    "posts when Slack answers late",
)


class SlackWebhookNotifier:
    """Incoming-webhook mode: every notice is a new message (webhooks cannot edit or read)."""

    name = "webhook"
    can_edit = False
    can_find_posted = False

    def __init__(self, url: str, timeout: float = 10.0, dashboard_url: str | None = None) -> None:
        self.dashboard_url = dashboard_url
        self._host = host_of(url)
        self._timeout = timeout
        self._client = WebhookClient(
            url, timeout=cast(int, timeout), retry_handlers=[], logger=_sdk_logger
        )

    def send(self, notice: Notice, ref: MessageRef | None) -> SendResult:
        del ref  # webhooks have no message to thread or edit
        if notice.op != "post":
            return SendResult("client_error", error=f"webhooks cannot {notice.op}")
        msg = _render(notice, self.dashboard_url, marker=False)
        if msg is None:
            return RENDER_FAILED
        return self.post(msg)

    def post(self, msg: SlackMessage) -> SendResult:
        try:
            resp = self._client.send(
                text=msg.text, blocks=msg.blocks, unfurl_links=False, unfurl_media=False
            )
        except Exception as exc:
            return transport_failure(exc, self._host, self._timeout, posting=True)
        body = (resp.body or "").strip()
        if resp.status_code == 200 and body in ("ok", ""):
            return SendResult("ok")
        error = body if ERROR_CODE.fullmatch(body) else ""
        reason = classify(resp.status_code, error or None)
        if reason == "ok":
            reason = "client_error"
        ra = retry_after(resp.headers) if reason == "rate_limited" else None
        return SendResult(
            reason,
            retry_after=ra,
            error=error or f"HTTP {resp.status_code}",
            fix=fix_for(error),
            maybe_delivered=reason == "server_error",
        )

    def find_posted(
        self, incident_id: str, since: float, kind: NoticeKind = "main", at: float | None = None
    ) -> SendResult:
        """Always ``NO_LOOKUP``: a webhook can post, nothing else (at-least-once delivery)."""
        del incident_id, since, kind, at
        return NO_LOOKUP

    def close(self) -> None:
        return None


# re-exported: cli/alerts.py imports describe from here
__all__ = [
    "CLOCK_SKEW",
    "EVENT_TYPE",
    "HISTORY_PAGE",
    "HISTORY_PAGES",
    "NO_LOOKUP",
    "RENDER_FAILED",
    "SlackBotNotifier",
    "SlackWebhookNotifier",
    "build_message",
    "describe",
    "incident_key",
    "incident_metadata",
]
