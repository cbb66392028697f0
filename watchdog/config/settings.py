"""The ``Settings`` model: every section of the config file, validated.

Built by ``load.load_settings`` from a YAML file with ``WATCHDOG_<SECTION>__<KEY>``
environment variables on top. No side effects beyond reading secret files named by
``*_file`` keys.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ..durations import format_duration, parse_duration
from ..model import (
    DEFAULT_OUTCOMES,
    DENOMINATOR_STATUSES,
    EXCLUDED_STATUSES,
    PENDING_STATUSES,
    StatusClasses,
    normalise_status,
)
from ..windows import choose_bucket
from .alerts import AlertsSettings, RuleSettings, SlackSettings
from .types import (
    DAY,
    HOUR,
    MINUTE,
    Duration,
    Section,
    agent_list,
    between,
    finite_duration,
    read_secret_file,
)

DEFAULT_PORT = 10811
# Windows are kept in time buckets (windows.choose_bucket): more than this many per window
# would cost too much memory per agent.
MAX_BUCKETS = 20_000
_HOSTNAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")


class DialNexaSettings(Section):
    base_url: str = "https://api.dialnexa.com/v1"
    api_key: SecretStr | None = None
    api_key_file: Path | None = None
    # The overall deadline of one request: connect, headers and the whole body.
    timeout: Annotated[Duration, between(0.1, 5 * MINUTE)] = 10.0
    # A larger response is abandoned (dialnexa_api_requests_total{code="too_large"}).
    max_response_bytes: int = Field(16 * 1024 * 1024, ge=64 * 1024, le=1024 * 1024 * 1024)
    page_size: int = Field(100, ge=1, le=100)
    # Used until the API's X-RateLimit-* headers say otherwise.
    rate_limit: int = Field(150, ge=1, le=1_000_000)
    rate_limit_period: Annotated[Duration, between(1.0, DAY)] = 60.0
    # The share of the key's limit this daemon may use, for every request (new calls,
    # re-reads, backfill, retries): rate_budget x the smaller of rate_limit and the limit the
    # API's X-RateLimit-Limit announces. The rest is left to the key's other users.
    rate_budget: float = Field(0.5, gt=0.0, le=1.0)
    max_retries: int = Field(4, ge=0, le=20)
    backoff_base: Annotated[Duration, between(0.01, MINUTE)] = 0.5
    backoff_max: Annotated[Duration, between(0.01, HOUR)] = 30.0
    concurrency: int = Field(4, ge=1, le=32)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _key_file(self) -> DialNexaSettings:
        if self.api_key is None and self.api_key_file is not None:
            self.api_key = read_secret_file(self.api_key_file, "api_key_file")
        return self


class PollSettings(Section):
    interval: Annotated[Duration, between(1.0, HOUR)] = 30.0
    agents: Literal["all"] | list[str] = "all"
    # With an explicit agent list: list each agent on its own (per_agent) or the whole
    # workspace filtered to the list (workspace). auto = per_agent.
    listing: Literal["auto", "workspace", "per_agent"] = "auto"
    # A call in conversation this long is dropped (dialnexa_calls_stuck_total): 6 h, so that
    # calls of agents allowed 2-3 h conversations are still counted when they end.
    # How pending calls older than settle_horizon are re-read: status (one status=in-progress
    # listing, every pending_recheck, says which ended; only those are re-read), ranges (list
    # their created_at spans again), auto (status; the cheaper in bench/pending.py). status
    # falls back to ranges when the API rejects or ignores the filter, and when listing per
    # agent.
    pending_listing: Literal["auto", "status", "ranges"] = "auto"
    max_pending_age: Annotated[Duration, between(MINUTE, 7 * DAY)] = 21600.0
    max_call_duration: Annotated[Duration, between(MINUTE, DAY)] = 900.0
    max_agents: int = Field(10000, ge=1, le=1_000_000)
    # Calls created this recently are re-read every cycle: failures, busy and no-answer
    # settle within the ring time, so this range is where alert-relevant outcomes appear.
    settle_horizon: Annotated[Duration, between(1.0, HOUR)] = 90.0
    # Pending calls older than settle_horizon (mostly answered calls in conversation) are
    # re-read at most this often.
    pending_recheck: Annotated[Duration, between(1.0, HOUR)] = 30.0
    # New-call listings start this far before the previous listing's end, for calls that
    # appear in the API a little after their created_at.
    overlap: Annotated[Duration, between(0.0, 10 * MINUTE)] = 10.0

    @field_validator("agents", mode="before")
    @classmethod
    def _agents(cls, v: Any) -> Any:
        return agent_list(v, "an empty list polls nothing; use 'all' or list agent ids")


class AgentsSettings(Section):
    # List DialNexa's agents (GET /agents2: titles, published/deleted, call limits) at start
    # and every ``refresh``; false: never ask (names from slack.agent_names only).
    directory: bool = True
    refresh: Annotated[Duration, between(MINUTE, DAY)] = 600.0
    # Bound each agent's unsettled calls by its own max_call_duration_sec + ring_duration_sec
    # + limit_margin instead of poll.max_call_duration (agents without limits keep the global).
    call_limits: bool = True
    limit_margin: Annotated[Duration, between(1.0, HOUR)] = 60.0
    # A cold start's backfill also reaches back the longest agent limit (capped at
    # poll.max_pending_age), so calls that began hours before the start are counted; off by
    # default: with agents allowed 3 h calls it multiplies the backfill (bench realistic, 1M
    # calls/day: 2,145 requests and 1,706 s before /readyz is 200, under the rate budget).
    backfill_agent_limits: bool = False


def check_listen(v: str) -> str:
    """``HOST:PORT`` with an IPv4 address, ``[IPv6]``, a host name or nothing as HOST."""
    p = DEFAULT_PORT
    example = f"must be HOST:PORT, e.g. 0.0.0.0:{p}, 127.0.0.1:{p} or [::]:{p}"
    v = v.strip()
    host, sep, port = v.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{example}; got {v!r}")
    if host.startswith("[") or host.endswith("]") or ":" in host:
        try:
            if not (host.startswith("[") and host.endswith("]")):
                raise ValueError
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address in brackets, e.g. [::1]") from None
    elif host and not _HOSTNAME.fullmatch(host):
        raise ValueError(f"{host!r} is not an IP address or host name")
    return v


class MetricsSettings(Section):
    listen: str = f"0.0.0.0:{DEFAULT_PORT}"

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        return check_listen(v)

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)


class StateSettings(Section):
    path: Path = Path("dialnexa-watchdog.sqlite3")
    # PostgreSQL instead of the SQLite file at path: postgresql://USER@HOST:PORT/DB (any
    # libpq URL parameter, e.g. ?sslmode=verify-full). Required for more than one replica.
    # The password is never part of it: password_file, WATCHDOG_STATE__PASSWORD, PGPASSWORD
    # or ~/.pgpass.
    url: str | None = None
    url_file: Path | None = None  # the URL from a file (a mounted Secret); relative: credentials
    password: SecretStr | None = None
    password_file: Path | None = None
    connect_timeout: Annotated[Duration, between(1.0, MINUTE)] = 5.0

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip()
        if not v.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql:// (or leave it out for SQLite)")
        netloc = urlsplit(v).netloc
        userinfo = netloc.rpartition("@")[0]
        if ":" in userinfo or "password=" in v:
            raise ValueError(
                "must not contain the password: put it in state.password_file or "
                "WATCHDOG_STATE__PASSWORD"
            )
        return v

    @model_validator(mode="after")
    def _password_file(self) -> StateSettings:
        if self.url is None and self.url_file is not None:
            text = read_secret_file(self.url_file, "url_file").get_secret_value()
            try:
                self.url = self._url(text)
            except ValueError as exc:
                raise ValueError(f"url_file: {exc}") from None
        if self.password is None and self.password_file is not None:
            self.password = read_secret_file(self.password_file, "password_file")
        return self

    @property
    def backend(self) -> Literal["sqlite", "postgres"]:
        return "sqlite" if self.url is None else "postgres"


class HistorySettings(Section):
    # Settled-call counts per agent, status and window bucket are recorded in the state
    # store, cycle by cycle, and kept this long (the backtest replays them; restarts resume).
    retention: Annotated[Duration, between(DAY, 366 * DAY)] = 14 * DAY
    # Resume from the saved state at start (list only the gap since the last saved cycle);
    # false: always backfill.
    warm_restart: bool = True


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "text"] = "auto"


class StatusSettings(Section):
    pending: list[str] = Field(default_factory=lambda: sorted(PENDING_STATUSES))
    denominator: list[str] = Field(default_factory=lambda: list(DENOMINATOR_STATUSES))
    excluded: list[str] = Field(default_factory=lambda: list(EXCLUDED_STATUSES))

    @field_validator("pending", "denominator", "excluded")
    @classmethod
    def _norm(cls, v: list[str]) -> list[str]:
        return [normalise_status(s) for s in v]

    @model_validator(mode="after")
    def _disjoint(self) -> StatusSettings:
        for a, b in (
            ("pending", "denominator"),
            ("pending", "excluded"),
            ("denominator", "excluded"),
        ):
            both = set(getattr(self, a)) & set(getattr(self, b))
            if both:
                raise ValueError(f"{', '.join(sorted(both))} listed in both {a} and {b}")
        return self


def _default_outcomes() -> dict[str, list[str]]:
    return {k: list(v) for k, v in DEFAULT_OUTCOMES.items()}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WATCHDOG_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    dialnexa: DialNexaSettings = DialNexaSettings()
    poll: PollSettings = PollSettings()
    agents: AgentsSettings = AgentsSettings()
    windows: list[str] = Field(default_factory=lambda: ["5m", "15m", "1h"])
    outcomes: dict[str, list[str]] = Field(default_factory=_default_outcomes)
    statuses: StatusSettings = StatusSettings()
    metrics: MetricsSettings = MetricsSettings()
    state: StateSettings = StateSettings()
    history: HistorySettings = HistorySettings()
    log: LogSettings = LogSettings()
    rules: list[RuleSettings] = Field(default_factory=list)
    slack: SlackSettings = SlackSettings()
    alerts: AlertsSettings = AlertsSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init kwargs; the environment overrides it.
        return (env_settings, init_settings)

    @field_validator("windows", mode="before")
    @classmethod
    def _windows(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [w.strip() for w in v.split(",") if w.strip()]
        if not isinstance(v, list) or not v:
            raise ValueError("list at least one window, e.g. [5m, 15m, 1h]")
        out = []
        for w in v:
            try:
                seconds = finite_duration(w)
            except ValueError as exc:
                raise ValueError(f"window {w!r}: {exc}") from None
            if not 1 <= seconds <= DAY:
                raise ValueError(f"window {w!r} must be between 1s and 1d")
            out.append(str(w).strip())
        lengths = [parse_duration(w) for w in out]
        if len(set(lengths)) != len(out):
            raise ValueError("two windows have the same length")
        bucket = choose_bucket(dict(zip(out, lengths, strict=True)))
        if max(lengths) / bucket > MAX_BUCKETS:
            shortest, longest = out[lengths.index(min(lengths))], out[lengths.index(max(lengths))]
            raise ValueError(
                f"windows {shortest} and {longest} need {int(max(lengths) / bucket)} time "
                f"buckets of {format_duration(bucket)} per agent (at most {MAX_BUCKETS}): "
                "lengthen the shortest window or shorten the longest"
            )
        return out

    @field_validator("outcomes")
    @classmethod
    def _outcomes(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        if not v:
            raise ValueError("map at least one outcome, e.g. failed: [failed]")
        return {k: [normalise_status(s) for s in ss] for k, ss in v.items()}

    @model_validator(mode="after")
    def _outcomes_in_denominator(self) -> Settings:
        known = set(self.statuses.denominator)
        for outcome, statuses in self.outcomes.items():
            missing = [s for s in statuses if s not in known]
            if missing:
                raise ValueError(
                    f"outcomes.{outcome}: {', '.join(missing)} not in statuses.denominator"
                )
        return self

    # ---- derived values -------------------------------------------------------------
    @property
    def window_seconds(self) -> dict[str, float]:
        """Window label (as configured) -> seconds, shortest first."""
        pairs = sorted(((w, parse_duration(w)) for w in self.windows), key=lambda p: p[1])
        return dict(pairs)

    @property
    def longest_window(self) -> float:
        return max(self.window_seconds.values())

    @property
    def status_classes(self) -> StatusClasses:
        return StatusClasses(
            pending=frozenset(self.statuses.pending),
            denominator=tuple(self.statuses.denominator),
            excluded=tuple(self.statuses.excluded),
            outcomes={k: tuple(v) for k, v in self.outcomes.items()},
        )

    def masked(self) -> dict[str, Any]:
        """The effective config as plain data, every secret shown as ``**********``."""
        return self.model_dump(mode="json")
