"""Config models for alert rules (``rules:``), Slack (``slack:``) and alert behaviour (``alerts:``).

Field-level checks live on the models; checks that need the rest of the config (a rule's
``window`` must be one of the configured ``windows``, its ``outcome`` one of ``outcomes``)
are in ``load.validate_rules(settings)``, which ``load_settings`` calls after the models
validate.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .actions import SlackActionsSettings
from .levels import SEQUENTIAL_DEFAULTS, YEAR, Level, _above, check_detector, level
from .types import (
    DAY,
    HOUR,
    MINUTE,
    Duration,
    Section,
    WindowLabel,
    agent_list,
    between,
    read_secret_file,
)

# How long a rule's condition must hold before it fires.
ForDuration = Annotated[Duration, between(0.0, DAY)]
MinCalls = Annotated[int, Field(ge=1, le=1_000_000)]

RULE_NAME = re.compile(r"[a-z0-9-]+")
# Names the daemon uses itself.
RESERVED_RULE_NAMES = frozenset({"stale"})


class RuleOverride(Section):
    """Per-agent replacements of a rule's limits."""

    threshold: Level | None = None
    clear_below: Level | None = None
    min_calls: MinCalls | None = None
    for_: ForDuration | None = Field(None, alias="for")


class RuleSettings(Section):
    """One entry of ``rules:``. ``kind: rate`` (the default) fires on an outcome's rate over
    a window and needs ``outcome``, ``window`` and ``threshold``; ``kind: calls_stopped``
    fires when a published agent that placed at least ``min_calls`` calls in its
    ``baseline`` has placed none for ``quiet_after`` (it takes no outcome, window or
    threshold; ``load.validate_rules`` says which field is missing or unused)."""

    name: str
    kind: Literal["rate", "calls_stopped"] = "rate"
    outcome: str | None = None
    window: WindowLabel | None = None
    # A rate; sequential rules also take a multiple of the agent's baseline (3x).
    threshold: Level | None = None
    # Resolves only below this; default: threshold.
    clear_below: Level | None = None
    min_calls: MinCalls = 20
    # Wilson interval: fire when the lower bound >= threshold, resolve when the upper bound
    # < clear_below.
    confidence: float | None = Field(None, gt=0.0, lt=1.0, allow_inf_nan=False)
    for_: ForDuration = Field(0.0, alias="for")
    confirm_window: WindowLabel | None = None
    severity: str = "warning"
    agents: Literal["all"] | list[str] = "all"
    exclude: list[str] = Field(default_factory=list)
    overrides: dict[str, RuleOverride] = Field(default_factory=dict)
    scope: Literal["agent", "workspace"] = "agent"
    # calls_stopped: how long without a call fires (its baseline span: ``baseline`` below)
    quiet_after: Annotated[Duration, between(5 * MINUTE, DAY)] = 30 * MINUTE
    # window: the rate in ``window`` against threshold; sequential: a CUSUM over each agent's
    # calls (alerts/sequential.py), with the keys below.
    detector: Literal["window", "sequential"] = "window"
    # Sequential rules only (unset: the defaults in SEQUENTIAL_DEFAULTS).
    false_alarm: Annotated[Duration, between(HOUR, 1000 * YEAR)] | None = None
    # sequential: ``learned`` or a rate; calls_stopped: the span whose calls make an agent
    # expected to call, the same clock hour a day earlier (default) or the last 24 hours
    baseline: (
        Literal["learned", "same_hour_yesterday", "last_24h"]
        | Annotated[float, Field(gt=0.0, lt=1.0)]
        | None
    ) = None
    baseline_window: Annotated[Duration, between(DAY, 366 * DAY)] | None = None
    baseline_fallback: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None
    baseline_prior_calls: Annotated[float, Field(ge=0.0, le=1_000_000.0)] | None = None
    baseline_floor: Annotated[float, Field(ge=0.0, lt=1.0)] | None = None
    baseline_min_calls: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    # A second CUSUM for a larger rise (10x, or a rate), beside the one for threshold: pages a
    # hard failure in fewer calls; both limits then share false_alarm (alerts/sequential.py).
    fast_threshold: Level | None = None

    @field_validator(
        "false_alarm",
        "fast_threshold",
        "baseline_window",
        "baseline_fallback",
        "baseline_prior_calls",
        "baseline_floor",
        "baseline_min_calls",
    )
    @classmethod
    def _sequential_only(cls, v: Any, info: ValidationInfo) -> Any:
        if v is not None and info.data.get("detector", "window") != "sequential":
            raise ValueError("only for detector: sequential")
        return v

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None:
            return v
        spans = ("same_hour_yesterday", "last_24h")
        if info.data.get("kind", "rate") == "calls_stopped":
            if v not in spans:
                raise ValueError("kind calls_stopped takes same_hour_yesterday or last_24h")
        elif info.data.get("detector", "window") != "sequential":
            raise ValueError("only for detector: sequential (learned or a rate), or for kind "
                             "calls_stopped (same_hour_yesterday or last_24h)")  # fmt: skip
        elif v in spans:
            raise ValueError("detector: sequential takes learned or a rate (0.05)")
        return v

    @property
    def stopped_baseline(self) -> Literal["same_hour_yesterday", "last_24h"]:
        """A calls_stopped rule's baseline span."""
        return "last_24h" if self.baseline == "last_24h" else "same_hour_yesterday"

    def sequential(self, key: str) -> Any:
        """A sequential setting: as configured, else its default."""
        v = getattr(self, key)
        return SEQUENTIAL_DEFAULTS[key] if v is None else v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not RULE_NAME.fullmatch(v):
            raise ValueError(f"{v!r}: use lower-case letters, digits and '-' only")
        if v in RESERVED_RULE_NAMES:
            raise ValueError(f"{v!r} is the built-in stale rule; pick another name")
        return v

    @field_validator("severity")
    @classmethod
    def _severity(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("must not be empty (warning and critical are conventional)")
        return v

    @field_validator("agents", mode="before")
    @classmethod
    def _agents(cls, v: Any) -> Any:
        return agent_list(v, "an empty list matches no agent; use 'all' or list agent ids")

    @field_validator("exclude")
    @classmethod
    def _exclude(cls, v: list[str]) -> list[str]:
        if not all(a.strip() for a in v):
            raise ValueError("agent ids must be non-empty strings")
        return v

    @field_validator("clear_below")
    @classmethod
    def _clear_below(cls, v: float | str | None, info: ValidationInfo) -> float | str | None:
        threshold = info.data.get("threshold")
        if v is not None and threshold is not None and _above(v, threshold):
            raise ValueError(f"must be <= threshold ({threshold}); got {v}")
        return v

    @field_validator("overrides")
    @classmethod
    def _overrides(
        cls, v: dict[str, RuleOverride], info: ValidationInfo
    ) -> dict[str, RuleOverride]:
        base_threshold = info.data.get("threshold")
        if base_threshold is None:
            return v  # the threshold itself is invalid and reported
        base_clear = info.data.get("clear_below")
        for agent, o in v.items():
            threshold = o.threshold if o.threshold is not None else base_threshold
            if level(threshold)[0] <= 0:
                raise ValueError(f"{agent}: threshold must be > 0")
            clear = o.clear_below
            if clear is None:
                clear = base_clear if base_clear is not None else threshold
            if _above(clear, threshold):
                raise ValueError(
                    f"{agent}: clear_below ({clear}) would be above threshold ({threshold}); "
                    "set clear_below in the override too"
                )
        return v

    @field_validator("scope")
    @classmethod
    def _scope(cls, v: str, info: ValidationInfo) -> str:
        if v == "workspace" and (
            info.data.get("agents", "all") != "all"
            or info.data.get("exclude")
            or info.data.get("overrides")
        ):
            raise ValueError("workspace scope takes no agents, exclude or overrides")
        return v

    @model_validator(mode="after")
    def _detector(self) -> RuleSettings:
        check_detector(self)
        return self

    @property
    def effective_clear_below(self) -> float | str:
        if self.clear_below is not None:
            return self.clear_below
        return self.threshold if self.threshold is not None else 0.0


class SlackSettings(Section):
    """``slack:``. Bot-token mode when ``token`` is set (needs ``channel``), else webhook mode
    when ``webhook_url`` is set, else notifications go to the terminal/log. ``actions``:
    buttons and a slash command, over Socket Mode (``app_token``) or HTTP
    (``signing_secret``)."""

    token: SecretStr | None = None
    token_file: Path | None = None
    webhook_url: SecretStr | None = None
    webhook_url_file: Path | None = None
    channel: str | None = None
    api_url: str = "https://slack.com/api/"
    repeat_interval: Annotated[Duration, between(MINUTE, 7 * DAY, off=True)] = 4 * 3600.0
    group_threshold: int = Field(5, ge=2, le=10_000)
    dashboard_url: str | None = None  # a template with {agent_id}
    agent_names: dict[str, str] = Field(default_factory=dict)
    timeout: Annotated[Duration, between(1.0, 2 * MINUTE)] = 10.0
    app_token: SecretStr | None = None  # xapp-...: Socket Mode
    app_token_file: Path | None = None
    signing_secret: SecretStr | None = None  # HTTP mode: verifies Slack's requests
    signing_secret_file: Path | None = None
    actions: SlackActionsSettings = SlackActionsSettings()

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v if v.endswith("/") else v + "/"

    @field_validator("channel")
    @classmethod
    def _channel(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be empty (a channel ID such as C0123456789, or #name)")
        return v.strip() if v is not None else None

    @field_validator("dashboard_url")
    @classmethod
    def _dashboard(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(v) if f is not None}
        except ValueError as exc:
            raise ValueError(f"not a valid template: {exc}") from None
        unknown = fields - {"agent_id"}
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{sorted(unknown)[0]}}}; only {{agent_id}} is filled in"
            )
        return v

    @model_validator(mode="after")
    def _secrets(self) -> SlackSettings:
        if self.token is None and self.token_file is not None:
            self.token = read_secret_file(self.token_file, "token_file")
        if self.webhook_url is None and self.webhook_url_file is not None:
            self.webhook_url = read_secret_file(self.webhook_url_file, "webhook_url_file")
        if self.token is not None and not self.token.get_secret_value().strip():
            self.token = None
        if self.webhook_url is not None:
            url = self.webhook_url.get_secret_value().strip()
            if not url:
                self.webhook_url = None
            elif not url.startswith(("http://", "https://")):
                # never echo the value: it is a secret
                raise ValueError("webhook_url must start with https://")
        if self.token is not None and not self.channel:
            raise ValueError("channel is required with a bot token (e.g. C0123456789)")
        self._action_secrets()
        return self

    def _action_secrets(self) -> None:
        if self.app_token is None and self.app_token_file is not None:
            self.app_token = read_secret_file(self.app_token_file, "app_token_file")
        if self.signing_secret is None and self.signing_secret_file is not None:
            self.signing_secret = read_secret_file(self.signing_secret_file, "signing_secret_file")
        for name in ("app_token", "signing_secret"):
            value = getattr(self, name)
            if value is not None and not value.get_secret_value().strip():
                setattr(self, name, None)
        # never echo the values: they are secrets
        if self.app_token is not None and not self.app_token.get_secret_value().startswith("xapp-"):
            raise ValueError(
                "app_token must be an app-level token (xapp-...; Basic Information, App-Level "
                "Tokens, with the connections:write scope), not a bot token"
            )
        mode = self.actions.mode
        if mode == "off":
            return
        if self.token is None:
            raise ValueError(
                f"actions.mode {mode} needs a bot token (slack.token and slack.channel): the "
                "buttons edit and answer through it"
            )
        if mode == "socket" and self.app_token is None:
            raise ValueError(
                "actions.mode socket needs an app-level token: set SLACK_APP_TOKEN or "
                "slack.app_token_file"
            )
        if mode == "http" and self.signing_secret is None:
            raise ValueError(
                "actions.mode http needs the app's signing secret: set SLACK_SIGNING_SECRET or "
                "slack.signing_secret_file"
            )
        if not self.actions.allowed_users and not self.actions.allowed_usergroups:
            raise ValueError(
                "actions: say who may act: actions.allowed_users (user ids, or '*' for "
                "everyone in the workspace) and/or actions.allowed_usergroups"
            )

    @property
    def mode(self) -> Literal["bot", "webhook", "none"]:
        if self.token is not None:
            return "bot"
        if self.webhook_url is not None:
            return "webhook"
        return "none"


class AlertsSettings(Section):
    """``alerts:`` behaviour not tied to one rule."""

    # The built-in stale rule fires after this long without a successful poll; 0 disables it.
    stale_after: Annotated[Duration, between(10.0, DAY, off=True)] = 300.0
    stale_severity: str = "critical"
    # Points in the sparkline of the rate shown in messages.
    sparkline_points: int = Field(12, ge=2, le=60)
