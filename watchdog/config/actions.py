"""Config model for ``slack.actions:``: buttons on firing messages and the ``/dialnexa``
command, who may use them, and how Slack reaches the watchdog."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from .types import DAY, Duration, Section, between

_USER_ID = re.compile(r"[UW][A-Z0-9]{2,30}")
_USERGROUP_ID = re.compile(r"S[A-Z0-9]{2,30}")
_TEAM_ID = re.compile(r"[TE][A-Z0-9]{2,30}")
DEFAULT_ACTIONS_PORT = 10812


class SlackActionsSettings(Section):
    """``slack.actions:`` buttons on firing messages and the ``/dialnexa`` command."""

    # off | socket (an outbound WebSocket: needs slack.app_token) | http (a Request URL:
    # needs slack.signing_secret and a listener Slack can reach)
    mode: Literal["off", "socket", "http"] = "off"
    listen: str = f"127.0.0.1:{DEFAULT_ACTIONS_PORT}"  # http mode only
    allowed_users: list[str] = Field(default_factory=list)  # user ids; "*": anyone in the team
    allowed_usergroups: list[str] = Field(default_factory=list)  # user group ids (S...)
    usergroup_cache: Annotated[Duration, between(10.0, DAY)] = 300.0
    team_id: str | None = None  # default: the bot token's team (auth.test)

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, v: Any) -> Any:
        return "off" if v is False else v  # YAML reads a bare `off` as false

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        _host, sep, port = v.strip().rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"must be HOST:PORT, e.g. 127.0.0.1:{DEFAULT_ACTIONS_PORT}; got {v!r}")
        return v.strip()

    @field_validator("allowed_users")
    @classmethod
    def _users(cls, v: list[str]) -> list[str]:
        bad = [u for u in v if u != "*" and not _USER_ID.fullmatch(u)]
        if bad:
            raise ValueError(
                f"{bad[0]!r} is not a Slack user id (U0123ABCD; in Slack: a profile's ⋮ menu, "
                "Copy member ID); '*' allows everyone in the workspace"
            )
        return v

    @field_validator("allowed_usergroups")
    @classmethod
    def _groups(cls, v: list[str]) -> list[str]:
        bad = [g for g in v if not _USERGROUP_ID.fullmatch(g)]
        if bad:
            raise ValueError(f"{bad[0]!r} is not a Slack user group id (S0123ABCD)")
        return v

    @field_validator("team_id")
    @classmethod
    def _team(cls, v: str | None) -> str | None:
        if v is not None and not _TEAM_ID.fullmatch(v):
            raise ValueError(f"{v!r} is not a Slack team id (T0123ABCD)")
        return v

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)
