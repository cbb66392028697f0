"""The Slack calls of the action side, over slack-sdk with the bot token: answering a person
(``response_url``, else ``chat.postEphemeral``), reading a user group
(``usergroups.users.list``) and the bot's team (``auth.test``). Never raises; failures are
logged without the URL's path (a ``response_url`` is a bearer credential for 30 minutes).

A ``response_url`` is only followed to Slack itself (``https://hooks.slack.com/``) or to the
host of ``slack.api_url`` (a proxy, or a test's fake Slack): a payload can name any URL, and
the daemon must not be made to post to other hosts.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, cast
from urllib.parse import urlsplit

from slack_sdk.errors import SlackApiError
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from ..notify.message import SlackMessage

log = logging.getLogger("watchdog.actions")
_sdk_logger = logging.getLogger("watchdog.actions.slack_sdk")
_sdk_logger.setLevel(logging.CRITICAL)

SLACK_HOOKS = ("https", "hooks.slack.com")


def _why(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        data = exc.response.data if isinstance(exc.response.data, dict) else {}
        return str(data.get("error") or f"HTTP {exc.response.status_code}")[:64]
    return type(exc).__name__


class SlackIO:
    def __init__(self, token: str, api_url: str, timeout: float = 10.0) -> None:
        self._timeout = timeout
        self._client = WebClient(
            token=token,
            base_url=api_url,
            timeout=cast(int, timeout),
            retry_handlers=[],
            logger=_sdk_logger,
        )
        api = urlsplit(api_url)
        self._api_origin = (api.scheme, api.netloc)
        self._team: str | None = None
        self._lock = threading.Lock()

    # ---- who we are, who may act ---------------------------------------------------------
    def team_id(self) -> str | None:
        """The bot token's team id (``auth.test``), once known; None while Slack cannot say."""
        with self._lock:
            if self._team is not None:
                return self._team
        try:
            data = self._client.auth_test().data
        except Exception as exc:
            log.warning("Slack actions: cannot read the bot's team (auth.test: %s)", _why(exc))
            return None
        team = data.get("team_id") if isinstance(data, dict) else None
        if not isinstance(team, str) or not team:
            return None
        with self._lock:
            self._team = team
        return team

    def usergroup_members(self, group: str) -> list[str] | None:
        try:
            data = self._client.usergroups_users_list(usergroup=group).data
        except Exception as exc:
            log.warning(
                "Slack actions: cannot read user group %s (usergroups.users.list: %s); the "
                "bot token needs the usergroups:read scope",
                group,
                _why(exc),
            )
            return None
        users = data.get("users") if isinstance(data, dict) else None
        if not isinstance(users, list):
            return None
        return [u for u in users if isinstance(u, str)]

    # ---- answers -------------------------------------------------------------------------
    def trusted(self, url: str) -> bool:
        parts = urlsplit(url)
        origin = (parts.scheme, parts.netloc)
        return origin == SLACK_HOOKS or origin == self._api_origin

    def respond(
        self, msg: SlackMessage, response_url: str | None, channel: str | None, user: str
    ) -> bool:
        """An ephemeral answer only ``user`` sees. True when Slack took it."""
        if response_url and self.trusted(response_url):
            try:
                resp = WebhookClient(
                    response_url,
                    timeout=cast(int, self._timeout),
                    retry_handlers=[],
                    logger=_sdk_logger,
                ).send(
                    text=msg.text,
                    blocks=msg.blocks,
                    response_type="ephemeral",
                    replace_original=False,
                )
                if resp.status_code == 200:
                    return True
                log.warning("Slack actions: response_url answered HTTP %d", resp.status_code)
            except Exception as exc:
                log.warning("Slack actions: cannot answer through response_url (%s)", _why(exc))
        elif response_url:
            log.warning(
                "Slack actions: ignoring a response_url outside Slack (%s)",
                urlsplit(response_url).netloc[:100],
            )
        if not channel:
            return False
        return self.post_ephemeral(msg, channel, user)

    def post_ephemeral(self, msg: SlackMessage, channel: str, user: str) -> bool:
        kwargs: dict[str, Any] = {"channel": channel, "user": user, "text": msg.text}
        if msg.blocks:
            kwargs["blocks"] = msg.blocks
        try:
            self._client.chat_postEphemeral(**kwargs)
        except Exception as exc:
            log.warning("Slack actions: chat.postEphemeral failed (%s)", _why(exc))
            return False
        return True
