"""dialnexa-watchdog: per-agent health alerting for DialNexa voice agents."""

__version__ = "0.1.0"
