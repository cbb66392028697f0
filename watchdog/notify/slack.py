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
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import logging
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, cast
from urllib.error import URLError
from urllib.parse import urlsplit

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from . import MessageRef, Notice, NoticeKind, Reason, SendResult
from .message import SlackMessage, render_slack

log = logging.getLogger(__name__)

_ERROR_CODE = re.compile(r"[a-z0-9_]{1,64}")
_SCOPES = re.compile(r"[a-z0-9_.:,]{1,200}")
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{2,30}")
_sdk_logger = logging.getLogger("watchdog.notify.slack_sdk")
_sdk_logger.setLevel(logging.CRITICAL)

# The marker in every top-level message's metadata. Slack asks for [a-z][a-z0-9_]* and
# "<resource>_<action in the past tense>".
EVENT_TYPE = "dialnexa_incident_posted"
HISTORY_PAGE = 200  # conversations.history page size (Slack allows up to 999)
HISTORY_PAGES = 10  # pages searched before giving up (2,000 messages since the first try)
CLOCK_SKEW = 120.0  # seconds subtracted from ``since``: our clock may run ahead of Slack's

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
    "missing_scope": "the app lacks a scope it needs (chat:write to post; channels:history, "
    "or groups:history for a private channel, to look a post up after a timeout): add it "
    "under OAuth & Permissions and reinstall the app",
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


def fix_for(error: str, needed: str | None = None) -> str:
    if error == "missing_scope" and needed:
        return (
            f"the app lacks the {needed} scope: add it under OAuth & Permissions and "
            "reinstall the app"
        )
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


# ---- transport failures ------------------------------------------------------------------

# kind -> (reason, may the request have reached Slack?, what the operator reads)
_TRANSPORT: dict[str, tuple[Reason, bool, str]] = {
    "dns": ("network_error", False, "DNS lookup failed for {host}"),
    "refused": ("network_error", False, "connection refused by {host}"),
    "unreachable": ("network_error", False, "no route to {host}"),
    "tls_cert": ("network_error", False, "the TLS certificate of {host} is not trusted"),
    "tls": ("network_error", True, "TLS error with {host} ({name})"),
    "timeout": ("timeout", True, "no answer from {host} within {timeout}"),
    "lost": ("network_error", True, "the connection to {host} was lost ({name})"),
    "network": ("network_error", True, "network error with {host} ({name})"),
}


_LOST = (
    ConnectionResetError,  # also http.client.RemoteDisconnected
    ConnectionAbortedError,
    BrokenPipeError,
    http.client.IncompleteRead,
)


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, its causes and contexts, and what URLError wraps (its ``reason``)."""
    out: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(out) < 20:
        cur = todo.pop(0)
        if cur in out:
            continue
        out.append(cur)
        if isinstance(cur, URLError) and isinstance(cur.reason, BaseException):
            todo.append(cur.reason)
        todo += [e for e in (cur.__cause__, cur.__context__) if e is not None]
    return out


def transport_kind(exc: BaseException) -> str:
    """What kind of transport failure ``exc`` is: a key of ``_TRANSPORT``."""
    for e in _chain(exc):
        if isinstance(e, socket.gaierror):
            return "dns"
        if isinstance(e, ConnectionRefusedError):
            return "refused"
        if isinstance(e, ssl.SSLCertVerificationError):
            return "tls_cert"
        if isinstance(e, ssl.SSLError):
            return "tls"
        if isinstance(e, TimeoutError):  # socket.timeout is an alias
            return "timeout"
        if isinstance(e, _LOST):
            return "lost"
        if isinstance(e, OSError) and e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return "unreachable"
    if isinstance(exc, URLError) and "timed out" in str(exc.reason):
        return "timeout"
    return "network"


def classify_exception(exc: BaseException) -> Reason:
    """A transport failure (no HTTP answer) as ``timeout`` or ``network_error``."""
    return _TRANSPORT[transport_kind(exc)][0]


def transport_failure(
    exc: BaseException, host: str, timeout: float, posting: bool = False
) -> SendResult:
    """A transport failure as a result that names the host and the kind of failure (never the
    exception's text: it might carry a URL). ``posting``: the request was a post, so a failure
    after it may have been sent leaves it ``maybe_delivered``."""
    kind = transport_kind(exc)
    reason, maybe_sent, text = _TRANSPORT[kind]
    error = text.format(host=host, name=type(exc).__name__, timeout=f"{timeout:g}s")
    return SendResult(reason, error=error, maybe_delivered=posting and maybe_sent)


def _host(url: str) -> str:
    """The host (and a non-default port) of ``url``: never its path, which may be secret."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        return f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "?"


def describe(result: SendResult) -> str:
    """One line for a person: what failed and, when known, how to fix it."""
    if result.reason in ("timeout", "network_error"):
        text = f"cannot reach Slack: {result.error}"
    else:
        text = f"Slack answered {result.error} ({result.reason})"
    return text + (f"\n  fix: {result.fix}" if result.fix else "")


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


# ---- the incident marker -------------------------------------------------------------------


def incident_key(incident_id: str) -> str:
    """The incident as it appears in message metadata: a hash, so no agent id leaves the
    message text (and a 5,000-character id stays 32 characters)."""
    return hashlib.sha256(incident_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def incident_metadata(incident_id: str, kind: NoticeKind, at: float) -> dict[str, Any]:
    """Slack message metadata marking a top-level message as this notice's."""
    return {
        "event_type": EVENT_TYPE,
        "event_payload": {"incident": incident_key(incident_id), "kind": kind, "at": int(at)},
    }


def build_message(notice: Notice, dashboard_url: str | None) -> SlackMessage:
    """What the bot notifier sends for ``notice``: the rendered message, plus the incident
    marker in its metadata when it is a top-level post."""
    msg = render_slack(notice, dashboard_url)
    if notice.op != "post":
        return msg
    return replace(msg, metadata=incident_metadata(notice.incident, notice.kind, notice.at))


RENDER_FAILED = SendResult("client_error", error="the message could not be rendered (a bug)")


def _render(notice: Notice, dashboard_url: str | None, marker: bool = True) -> SlackMessage | None:
    """``build_message`` that never raises (a notifier never does): None, logged, on a bug."""
    try:
        if marker:
            return build_message(notice, dashboard_url)
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
    ``channels:history`` (``groups:history`` for a private channel) for ``find_posted``."""

    name = "slack"
    can_edit = True

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
        self.can_find_posted = True  # False once Slack said the token may not read history
        self._no_history: SendResult | None = None
        self._channel_id = channel if _CHANNEL_ID.fullmatch(channel) else None
        self._host = _host(api_url)
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
        msg = _render(notice, self.dashboard_url)
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
                return self._history_failed(self._api_error(exc))
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
            return self._api_error(exc), {}
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
            result = self._api_error(exc)
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

    @staticmethod
    def _api_error(exc: SlackApiError) -> SendResult:
        resp = exc.response
        status = getattr(resp, "status_code", None)
        data = getattr(resp, "data", None)
        error = data.get("error") if isinstance(data, dict) else None
        if not isinstance(error, str) or not _ERROR_CODE.fullmatch(error):
            error = None  # e.g. slack-sdk's "Received a response in a non-JSON format: ..."
        needed = data.get("needed") if isinstance(data, dict) else None
        if not isinstance(needed, str) or not _SCOPES.fullmatch(needed):
            needed = None
        reason = classify(status, error)
        if reason == "ok":  # 200 without ok:true and without an error code
            reason = "client_error"
        label = str(error) if error else f"HTTP {status}"
        ra = retry_after(getattr(resp, "headers", None)) if reason == "rate_limited" else None
        return SendResult(
            reason, retry_after=ra, error=label, fix=fix_for(str(error or ""), needed)
        )

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
        self._host = _host(url)
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
