"""Slack notifiers over slack-sdk: bot token (post, thread, edit) and incoming webhook.

slack-sdk's own retry handlers are turned off: retries belong to the outbox, which honours
Retry-After against the injected clock and keeps per-incident order. Errors are classified
into the closed set of ``watchdog.notify.REASONS``; no token or webhook URL ever appears in
a result, an exception text or a log line (slack-sdk's debug logging, which prints webhook
URLs, is kept off by giving it a logger of its own that only passes CRITICAL; the outbox logs
every failure itself, classified and without secrets).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.error import URLError

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from . import MessageRef, Notice, Reason, SendResult
from .message import SlackMessage, render_slack

_ERROR_CODE = re.compile(r"[a-z0-9_]{1,64}")
_sdk_logger = logging.getLogger("watchdog.notify.slack_sdk")
_sdk_logger.setLevel(logging.CRITICAL)

AUTH_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "not_allowed_token_type",
        "no_permission",
        "ekm_access_denied",
        "invalid_token",  # webhooks
        "no_service",  # webhooks: the webhook was removed
        "no_team",
        "team_disabled",
        "action_prohibited",
    }
)
CHANNEL_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "channel_is_archived",
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "restricted_action_non_threadable_channel",
        "no_service_id",
        "no_active_hooks",
    }
)
SERVER_ERRORS = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)

FIXES: dict[str, str] = {
    "invalid_auth": "slack.token is not a valid token: copy the Bot User OAuth Token (xoxb-...) "
    "from the app's OAuth & Permissions page",
    "not_authed": "no token was sent: set slack.token or SLACK_BOT_TOKEN",
    "token_revoked": "the token was revoked: reinstall the Slack app and update slack.token",
    "token_expired": "the token expired: reinstall the Slack app and update slack.token",
    "account_inactive": "the app's bot user was deactivated: reinstall the Slack app",
    "missing_scope": "the app lacks the chat:write scope: add it under OAuth & Permissions "
    "and reinstall the app",
    "not_allowed_token_type": "use a bot token (xoxb-...) in slack.token",
    "channel_not_found": "slack.channel does not exist or the bot cannot see it: use the "
    "channel ID (C0123456789) and, for a private channel, /invite the bot",
    "not_in_channel": "the bot is not a member of slack.channel: type /invite @<your bot> "
    "in that channel",
    "is_archived": "slack.channel is archived: unarchive it or pick another channel",
    "channel_is_archived": "the webhook's channel is archived: create a new incoming webhook",
    "invalid_token": "slack.webhook_url is not valid any more: create a new incoming webhook",
    "no_service": "slack.webhook_url was disabled or removed: create a new incoming webhook",
    "action_prohibited": "a workspace admin restricted posting to this channel",
    "restricted_action": "posting to slack.channel is restricted for the bot",
}


def fix_for(error: str) -> str:
    return FIXES.get(error, "")


def classify(status: int | None, error: str | None) -> Reason:
    """A Slack answer (HTTP status, ``error`` code) as a closed-set reason."""
    if status == 429 or error in ("ratelimited", "rate_limited"):
        return "rate_limited"
    if error in AUTH_ERRORS:
        return "auth_error"
    if error in CHANNEL_ERRORS:
        return "channel_error"
    if status is not None and status >= 500:
        return "server_error"
    if error in SERVER_ERRORS:
        return "server_error"
    if status in (401, 403):
        return "auth_error"
    if status in (404, 410):
        return "channel_error"
    if status == 200 and not error:
        return "ok"
    return "client_error"


def classify_exception(exc: BaseException) -> Reason:
    """A transport failure (no HTTP answer) as ``timeout`` or ``network_error``."""
    cur: BaseException | None = exc
    while cur is not None:
        if isinstance(cur, TimeoutError):  # socket.timeout is an alias
            return "timeout"
        if isinstance(cur, URLError) and isinstance(cur.reason, TimeoutError):
            return "timeout"
        cur = cur.__cause__ or cur.__context__
    if isinstance(exc, URLError) and "timed out" in str(exc.reason):
        return "timeout"
    return "network_error"


def retry_after(headers: Mapping[str, Any] | None) -> float | None:
    if not headers:
        return None
    for k, v in headers.items():
        if str(k).lower() == "retry-after":
            value = v[0] if isinstance(v, list | tuple) and v else v
            try:
                return max(0.0, float(str(value).strip()))
            except ValueError:
                return None
    return None


def _transport_error(exc: BaseException) -> SendResult:
    reason = classify_exception(exc)
    # Name the exception type only: its text might carry a URL.
    return SendResult(reason, error=f"{reason.replace('_', ' ')} ({type(exc).__name__})")


class SlackBotNotifier:
    """Bot-token mode: main message via chat.postMessage, follow-ups in its thread, edits via
    chat.update. Needs the ``chat:write`` scope."""

    name = "slack"
    can_edit = True
    counts_as_slack = True

    def __init__(
        self,
        token: str,
        channel: str,
        api_url: str = "https://slack.com/api/",
        timeout: float = 10.0,
        dashboard_url: str | None = None,
    ) -> None:
        self.channel = channel
        self.dashboard_url = dashboard_url
        self._client = WebClient(
            token=token,
            base_url=api_url,
            timeout=max(1, round(timeout)),
            retry_handlers=[],
            logger=_sdk_logger,
        )

    def send(self, notice: Notice, ref: MessageRef | None) -> SendResult:
        msg = render_slack(notice, self.dashboard_url)
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
            unfurl_links=False,
            unfurl_media=False,
        )

    def update(self, msg: SlackMessage, ref: MessageRef) -> SendResult:
        return self._call(
            "chat_update", channel=ref.channel, ts=ref.ts, text=msg.text, blocks=msg.blocks
        )

    def auth_test(self) -> tuple[SendResult, dict[str, Any]]:
        """Who the token belongs to (for ``slack-test``)."""
        try:
            resp = self._client.auth_test()
        except SlackApiError as exc:
            return self._api_error(exc), {}
        except SlackClientError as exc:
            return SendResult("client_error", error=type(exc).__name__), {}
        except Exception as exc:
            return _transport_error(exc), {}
        data = resp.data if isinstance(resp.data, dict) else {}
        return SendResult("ok"), data

    def _call(self, method: str, **kwargs: Any) -> SendResult:
        try:
            resp = getattr(self._client, method)(**kwargs)
        except SlackApiError as exc:
            return self._api_error(exc)
        except SlackClientError as exc:
            return SendResult("client_error", error=type(exc).__name__)
        except Exception as exc:  # transport: refused, reset, DNS, timeout
            return _transport_error(exc)
        data = resp.data if isinstance(resp.data, dict) else {}
        ts = data.get("ts")
        channel = data.get("channel") or kwargs.get("channel")
        ref = MessageRef(str(channel), str(ts)) if ts else None
        return SendResult("ok", ref=ref)

    @staticmethod
    def _api_error(exc: SlackApiError) -> SendResult:
        resp = exc.response
        status = getattr(resp, "status_code", None)
        data = getattr(resp, "data", None)
        error = data.get("error") if isinstance(data, dict) else None
        if not isinstance(error, str) or not _ERROR_CODE.fullmatch(error):
            error = None  # e.g. slack-sdk's "Received a response in a non-JSON format: ..."
        reason = classify(status, error)
        if reason == "ok":  # 200 without ok:true and without an error code
            reason = "client_error"
        label = str(error) if error else f"HTTP {status}"
        ra = retry_after(getattr(resp, "headers", None)) if reason == "rate_limited" else None
        return SendResult(reason, retry_after=ra, error=label, fix=fix_for(str(error or "")))

    def close(self) -> None:
        return None


class SlackWebhookNotifier:
    """Incoming-webhook mode: every notice is a new message (webhooks cannot edit)."""

    name = "webhook"
    can_edit = False
    counts_as_slack = True

    def __init__(self, url: str, timeout: float = 10.0, dashboard_url: str | None = None) -> None:
        self.dashboard_url = dashboard_url
        self._client = WebhookClient(
            url, timeout=max(1, round(timeout)), retry_handlers=[], logger=_sdk_logger
        )

    def send(self, notice: Notice, ref: MessageRef | None) -> SendResult:
        del ref  # webhooks have no message to thread or edit
        if notice.op != "post":
            return SendResult("client_error", error=f"webhooks cannot {notice.op}")
        msg = render_slack(notice, self.dashboard_url)
        return self.post(msg)

    def post(self, msg: SlackMessage) -> SendResult:
        try:
            resp = self._client.send(
                text=msg.text, blocks=msg.blocks, unfurl_links=False, unfurl_media=False
            )
        except Exception as exc:
            return _transport_error(exc)
        body = (resp.body or "").strip()
        if resp.status_code == 200 and body in ("ok", ""):
            return SendResult("ok")
        error = body if _ERROR_CODE.fullmatch(body) else ""
        reason = classify(resp.status_code, error or None)
        if reason == "ok":
            reason = "client_error"
        ra = retry_after(resp.headers) if reason == "rate_limited" else None
        return SendResult(
            reason,
            retry_after=ra,
            error=error or f"HTTP {resp.status_code}",
            fix=fix_for(error),
        )

    def close(self) -> None:
        return None
