"""Writing the text exposition formats by hand (Prometheus text 0.0.4 and OpenMetrics 1.0),
line for line as prometheus_client writes them, for the families /metrics keeps as text:
label values escaped, HELP lines, and which collect() is /metrics' own. Pure."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Protocol

# True while Metrics.exposition encodes the registry: the collectors it renders apart
# (``RendersApart``) leave their big families out of collect() then (a context variable:
# every thread has its own, so another thread's collect() is whole meanwhile)
APART: ContextVar[bool] = ContextVar("dialnexa_rendered_apart", default=False)


def rendered_apart() -> bool:
    """Whether this collect() is /metrics' own: the families a ``RendersApart`` collector
    renders itself must be left out of it (they are appended as text)."""
    return APART.get()


class RendersApart(Protocol):
    """A registered collector whose big per-agent families /metrics takes as text it keeps
    rendered (prometheus_client builds a Sample object per line: thousands per scrape).
    ``render_apart`` gives those families exactly as prometheus_client would write them
    (HELP, TYPE, samples with labels sorted by name); ``collect()`` leaves them out while
    ``rendered_apart()`` is true, and yields them otherwise (``get_sample_value``, tools)."""

    def render_apart(self, openmetrics: bool) -> str: ...


def gauge_header(name: str, documentation: str, openmetrics: bool) -> str:
    """A gauge family's HELP and TYPE lines as prometheus_client writes them (OpenMetrics
    escapes double quotes in HELP too)."""
    doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
    if openmetrics:
        doc = doc.replace('"', r"\"")
    return f"# HELP {name} {doc}\n# TYPE {name} gauge\n"


def escape_label(value: str) -> str:
    """A label value for the text format: backslash, double quote and newline escaped."""
    if not value.isascii():
        value = clean(value)
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def clean(value: str) -> str:
    """``value`` if it encodes as UTF-8; else with each lone surrogate (which a lenient JSON
    decoder lets through) spelled as the text ``\\udXXX``, so the exposition stays valid
    UTF-8 and two such ids stay two series."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode()
    return value
