"""What Slack's answers and transport failures mean: each one becomes a reason from the
closed set ``notify.REASONS``, a short error that holds no secret, and, for a permanent error,
what the operator should fix. A transport failure names the host and the kind of failure
(DNS, refused, TLS, timeout, connection lost), never the URL's path or the exception's text.
"""

from __future__ import annotations

import errno
import http.client
import re
import socket
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.error import URLError
from urllib.parse import urlsplit

from slack_sdk.errors import SlackApiError

from . import Reason, SendResult

ERROR_CODE = re.compile(r"[a-z0-9_]{1,64}")  # what a Slack error code looks like
_SCOPES = re.compile(r"[a-z0-9_.:,]{1,200}")

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


def host_of(url: str) -> str:
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


def api_error(exc: SlackApiError) -> SendResult:
    """A Slack API error answer as a result: the reason, the error code (or ``HTTP nnn``)
    when it is shaped like one, Retry-After when rate limited, and the fix."""
    resp = exc.response
    status = getattr(resp, "status_code", None)
    data = getattr(resp, "data", None)
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, str) or not ERROR_CODE.fullmatch(error):
        error = None  # e.g. slack-sdk's "Received a response in a non-JSON format: ..."
    needed = data.get("needed") if isinstance(data, dict) else None
    if not isinstance(needed, str) or not _SCOPES.fullmatch(needed):
        needed = None
    reason = classify(status, error)
    if reason == "ok":  # 200 without ok:true and without an error code
        reason = "client_error"
    label = str(error) if error else f"HTTP {status}"
    ra = retry_after(getattr(resp, "headers", None)) if reason == "rate_limited" else None
    return SendResult(reason, retry_after=ra, error=label, fix=fix_for(str(error or ""), needed))
