"""Types shared by every config model: durations, ratios, secrets, the strict section base.

Nothing here reads the environment or the disk except ``read_secret_file`` (called while a
model validates, for ``*_file`` keys).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
)

from ..durations import format_duration, parse_duration


class ConfigError(Exception):
    """A config that cannot be used; ``problems`` holds one line per bad field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _finite(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


def finite_duration(value: object) -> float:
    """Seconds in ``value`` as users write durations; NaN and infinity are errors."""
    return _finite(parse_duration(value))


# A duration as users write it (30s, 5m, 1h, 1d or seconds), as float seconds.
Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    AfterValidator(_finite),
    PlainSerializer(format_duration, return_type=str),
]
# A share between 0 and 1.
Ratio = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
# A share above 0, up to 1 (a threshold, or a clear_below that can be reached).
PositiveRatio = Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0


def between(low: float, high: float, *, off: bool = False) -> AfterValidator:
    """Bounds for a ``Duration``: ``Annotated[Duration, between(1, HOUR)]``. With ``off``,
    0 is also accepted (it turns the feature off). The message names both bounds."""
    span = f"between {format_duration(low)} and {format_duration(high)}"
    wanted = f"0 (off) or {span}" if off else span

    def check(v: float) -> float:
        if (off and v == 0) or low <= v <= high:
            return v
        raise ValueError(f"must be {wanted}; got {format_duration(v)}")

    return AfterValidator(check)


def _window_text(v: Any) -> str:
    finite_duration(v)  # raises a readable ValueError
    return str(v).strip()


# A window as written in the config (``5m``); must also be one of ``windows`` (checked later).
WindowLabel = Annotated[str, BeforeValidator(_window_text)]


class Section(BaseModel):
    """A config section: unknown keys are errors, defaults are validated too."""

    model_config = ConfigDict(
        extra="forbid",
        validate_default=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


def read_secret_file(path: Path, field: str) -> SecretStr:
    """A secret from a file; a relative path is read from ``$CREDENTIALS_DIRECTORY`` (systemd
    ``LoadCredential=``) when that is set."""
    if not path.is_absolute() and os.environ.get("CREDENTIALS_DIRECTORY"):
        path = Path(os.environ["CREDENTIALS_DIRECTORY"]) / path
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"{field}: cannot read {path}: {exc.strerror or exc}") from None
    if not text:
        raise ValueError(f"{field}: {path} is empty")
    return SecretStr(text)


def agent_list(value: Any, empty: str) -> Any:
    """A list of agent ids must be non-empty, of non-empty strings, without repeats."""
    if isinstance(value, list):
        if not value:
            raise ValueError(empty)
        if not all(isinstance(a, str) and a.strip() for a in value):
            raise ValueError("agent ids must be non-empty strings")
        if len(set(value)) != len(value):
            raise ValueError("agent ids are listed more than once")
    return value
