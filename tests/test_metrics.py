"""The hand-written /metrics families equal what prometheus_client renders from collect()."""

from __future__ import annotations

import threading

from dialnexa_watchdog.metrics import Metrics
from dialnexa_watchdog.model import StatusClasses
from dialnexa_watchdog.windows import Windows
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

AGENTS = ["a1", "a2", 'we"ird\\agent', "a\nnewline"]
STATUSES = ["completed", "failed", "busy", "no_answer", "cancelled", "odd"]


def samples(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    out = set()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.add((s.name, tuple(sorted(s.labels.items())), s.value))
    return out


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(AGENTS),
            st.sampled_from(STATUSES),
            st.floats(0, 500),
            st.floats(0, 200),
            st.booleans(),
        ),
        max_size=40,
    )
)
def test_cached_render_matches_prometheus_client(
    ops: list[tuple[str, str, float, float, bool]],
) -> None:
    lock = threading.Lock()
    w = Windows({"1m": 60.0, "5m": 300.0}, StatusClasses())
    now = 100_000.0
    w.advance(now)
    m = Metrics(CollectorRegistry(), w, lock)
    m.windows.ready = True
    reference = CollectorRegistry()
    reference.register(m.windows)
    for agent, status, ago, step, scrape in ops:
        w.add(agent, status, now - ago)
        m.windows.count_settled(agent, w.statuses[w.slot(status)])
        now += step
        w.advance(now)
        if scrape:  # scrapes in between exercise the per-agent cache
            m.windows.render()
    ours = samples(m.windows.render().decode())
    theirs = samples(generate_latest(reference).decode())
    assert ours == theirs
