"""Optional parts built from Settings (kept apart so the core never imports a notifier)."""

from __future__ import annotations

from typing import TextIO

from prometheus_client import CollectorRegistry

from .clock import Clock
from .config import Settings
from .daemon import AlertHook


def build_alerting(
    settings: Settings,
    registry: CollectorRegistry,
    clock: Clock,
    stream: TextIO | None = None,
) -> AlertHook | None:
    from .alerts.pipeline import Alerting

    hook: AlertHook = Alerting(settings, registry, clock, stream)
    return hook
