"""What ``slack-test`` checks of Slack actions: the team, the app-level token and a Socket
Mode connection (socket mode), what HTTP mode needs from the network, and that each user group
of ``allowed_usergroups`` can be read."""

from __future__ import annotations

from ..config import Settings
from .slackio import SlackIO
from .socket import check_connection


def check_actions(settings: Settings, bot_team: str | None) -> list[tuple[bool, str]]:
    """(ok, line) per check, in order; a line that is not ok says what to fix."""
    slack = settings.slack
    cfg = slack.actions
    out: list[tuple[bool, str]] = []
    if cfg.mode == "off":
        if slack.app_token is not None:
            out.append((True, "note: slack.app_token is set but slack.actions.mode is off"))
        return out
    if cfg.team_id and bot_team and cfg.team_id != bot_team:
        out.append(
            (
                False,
                f"slack.actions.team_id is {cfg.team_id} but the bot token belongs to "
                f"{bot_team}: every button press would be ignored",
            )
        )
    if cfg.mode == "socket" and slack.app_token is not None:
        ok, what = check_connection(
            slack.app_token.get_secret_value(), slack.api_url, slack.timeout
        )
        out.append((ok, f"ok: {what}" if ok else f"Slack actions: {what}"))
    elif cfg.mode == "http":
        out.append(
            (
                True,
                "note: HTTP mode: Slack must reach https://<your host>/slack/actions (the "
                "app's Interactivity and Slash Command Request URL), forwarded to "
                f"{cfg.listen}; requests are checked with slack.signing_secret, which only "
                "Slack can test",
            )
        )
    if cfg.allowed_usergroups and slack.token is not None:
        io = SlackIO(slack.token.get_secret_value(), slack.api_url, slack.timeout)
        for group in cfg.allowed_usergroups:
            members = io.usergroup_members(group)
            if members is None:
                out.append(
                    (
                        False,
                        f"cannot read user group {group} (usergroups.users.list): add the "
                        "usergroups:read scope and reinstall the app, or check the group id",
                    )
                )
            else:
                out.append(
                    (True, f"ok: user group {group} has {len(members)} member(s) who may act")
                )
    return out
