"""Configuration: every pydantic model, shared duration and secret types, the loader.

Import from here: ``from ..config import Settings, load_settings, ConfigError``.
"""

from __future__ import annotations

from .alerts import RESERVED_RULE_NAMES, AlertsSettings, RuleOverride, RuleSettings, SlackSettings
from .load import load_settings, read_yaml, validate_rules, validate_settings
from .settings import (
    DEFAULT_PORT,
    DialNexaSettings,
    HistorySettings,
    LogSettings,
    MetricsSettings,
    PollSettings,
    Settings,
    StateSettings,
    StatusSettings,
)
from .types import ConfigError, Duration, Ratio, Section, WindowLabel

__all__ = [
    "DEFAULT_PORT",
    "RESERVED_RULE_NAMES",
    "AlertsSettings",
    "ConfigError",
    "DialNexaSettings",
    "Duration",
    "HistorySettings",
    "LogSettings",
    "MetricsSettings",
    "PollSettings",
    "Ratio",
    "RuleOverride",
    "RuleSettings",
    "Section",
    "Settings",
    "SlackSettings",
    "StateSettings",
    "StatusSettings",
    "WindowLabel",
    "load_settings",
    "read_yaml",
    "validate_rules",
    "validate_settings",
]
