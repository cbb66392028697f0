"""Backtests: what a rule set would have paged over a past span (``dialnexa-watchdog
backtest``), replayed through the daemon's own windows, rules and incident planner.

- ``engine``: the replay: a source of cycles into ``Windows``, then per rule set its
  ``Detector`` (pluggable; ``WindowRules`` is ``alerts.rules.evaluate``) and the planner;
- ``report``: incidents, messages per day, flaps, firing share, the difference of two sets;
- ``runner``: the rule sets and the policy from the settings, and a backtest run.
"""

from .engine import Detector, Episode, Log, RuleSetRun, Span, WindowRules
from .runner import Outcome, RuleSet, backtest, from_history

__all__ = [
    "Detector",
    "Episode",
    "Log",
    "Outcome",
    "RuleSet",
    "RuleSetRun",
    "Span",
    "WindowRules",
    "backtest",
    "from_history",
]
