"""The hand-written /metrics families equal what prometheus_client renders from collect(), in
both exposition formats, and /metrics negotiates its format as prometheus_client does."""

from __future__ import annotations

import subprocess
import threading

import pytest
from dialnexa_watchdog import __version__
from dialnexa_watchdog.metrics import Metrics
from dialnexa_watchdog.model import StatusClasses
from dialnexa_watchdog.windows import Windows
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics import exposition as om
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as om_families,
)
from prometheus_client.parser import text_string_to_metric_families
from support import require_tool

# a lone surrogate (what a lenient JSON decoder lets through) must not break the exposition
AGENTS = ["a1", "a2", 'we"ird\\agent', "a\nnewline", "ünï", "lone\ud83dsurrogate"]
STATUSES = ["completed", "failed", "busy", "no_answer", "cancelled", "odd"]
Sample = tuple[str, tuple[tuple[str, str], ...], float]
Family = tuple[str, str, str]


def parsed(text: str, openmetrics: bool) -> tuple[set[Family], set[Sample]]:
    """(name, type, help) per family and every sample, as the format's own parser reads it."""
    parse = om_families if openmetrics else text_string_to_metric_families
    fams, samples = set(), set()
    for fam in parse(text):
        fams.add((fam.name, fam.type, fam.documentation))
        for s in fam.samples:
            samples.add((s.name, tuple(sorted(s.labels.items())), s.value))
    return fams, samples


def without_process(found: tuple[set[Family], set[Sample]]) -> tuple[set[Family], set[Sample]]:
    """process_* values (CPU seconds, memory) change between two renders."""
    fams, samples = found
    return (
        {f for f in fams if not f[0].startswith("process_")},
        {s for s in samples if not s[0].startswith("process_")},
    )


ops_strategy = st.lists(
    st.tuples(
        st.sampled_from(AGENTS),
        st.sampled_from(STATUSES),
        st.floats(0, 500),
        st.floats(0, 200),
        st.booleans(),
    ),
    max_size=40,
)


def build(ops: list[tuple[str, str, float, float, bool]], ready: bool = True) -> Metrics:
    """A Metrics after ``ops`` (add a call, move time, maybe scrape in between)."""
    lock = threading.Lock()
    w = Windows({"1m": 60.0, "5m": 300.0}, StatusClasses())
    now = 100_000.0
    w.advance(now)
    m = Metrics(CollectorRegistry(), w, lock)
    m.windows.ready = ready
    for agent, status, ago, step, scrape in ops:
        w.add(agent, status, now - ago)
        m.windows.count_settled(agent, w.statuses[w.slot(status)])
        now += step
        w.advance(now)
        if scrape:  # scrapes in between exercise the per-agent cache
            m.windows.render(openmetrics=step > 100)
    return m


@settings(max_examples=80, deadline=None)
@given(ops_strategy, st.booleans())
@pytest.mark.slow
def test_cached_render_matches_prometheus_client_in_both_formats(
    ops: list[tuple[str, str, float, float, bool]], ready: bool
) -> None:
    m = build(ops, ready)
    reference = CollectorRegistry()
    reference.register(m.windows)
    ours = parsed(m.windows.render().decode(), openmetrics=False)
    assert ours == parsed(generate_latest(reference).decode(), openmetrics=False)
    ours_om = parsed((m.windows.render(openmetrics=True) + b"# EOF\n").decode(), openmetrics=True)
    assert ours_om == parsed(om.generate_latest(reference).decode(), openmetrics=True)
    # OpenMetrics names the counter family without _total; the text format with it
    assert b"# TYPE dialnexa_calls counter\n" in m.windows.render(openmetrics=True)
    assert b"# TYPE dialnexa_calls_total counter\n" in m.windows.render()


# Accept headers a scraper sends: none, Prometheus 2.x, Prometheus 3.x, each escaping, an
# OpenMetrics request without a version, and one choose_encoder itself cannot handle
ACCEPTS = [
    None,
    "*/*",
    "text/plain;version=0.0.4",
    "text/plain;version=1.0.0;escaping=allow-utf-8",
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;"
    "q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
    "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;"
    "escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
    "application/openmetrics-text",
    "application/openmetrics-text;version=1.0.0;escaping=underscores",
    "application/openmetrics-text;version=1.0.0;escaping=values",
    "application/openmetrics-text;version=1.0.0;escaping=dots",
    "text/plain;version=1.0.0;escaping=dots",
]


@pytest.mark.parametrize("accept", ACCEPTS)
def test_exposition_answers_each_accept_header_as_prometheus_client_does(
    accept: str | None,
) -> None:
    m = build([(a, s, 10.0, 1.0, False) for a in AGENTS for s in STATUSES])
    m.requests.labels("200").inc()
    everything = CollectorRegistry(auto_describe=False)
    everything.register(m.registry)
    everything.register(m.windows)
    encoder, their_type = choose_encoder(accept or "")
    theirs = encoder(everything)
    ours, our_type = m.exposition(accept)
    assert our_type == their_type
    openmetrics = our_type.startswith("application/openmetrics-text")
    assert ours.endswith(b"# EOF\n") == openmetrics and ours.count(b"# EOF") == int(openmetrics)
    try:
        expected = without_process(parsed(theirs.decode(), openmetrics))
    except ValueError:  # its OpenMetrics under dots/values escaping: its own parser refuses it
        assert lines(ours) == lines(theirs)
        return
    got = without_process(parsed(ours.decode(), openmetrics))
    assert got == expected
    assert len(got[1]) > 100  # the comparison saw the per-agent families


def lines(body: bytes) -> list[bytes]:
    return [line for line in body.splitlines() if b"process_" not in line]


def test_an_accept_header_prometheus_client_chokes_on_gets_the_default_format() -> None:
    m = build([("a1", "failed", 1.0, 1.0, False)])
    with pytest.raises(TypeError):  # its version comparison mixes str and int
        choose_encoder("application/openmetrics-text;version=a.0")
    body, content_type = m.exposition("application/openmetrics-text;version=a.0")
    assert content_type == choose_encoder("")[1]
    assert lines(body) == lines(m.body())


def test_build_info_process_and_platform_collectors_are_on_the_registry() -> None:
    m = build([])
    r = m.registry
    assert r.get_sample_value("dialnexa_watchdog_build_info", {"version": __version__}) == 1
    assert (r.get_sample_value("process_resident_memory_bytes") or 0) > 0
    assert (r.get_sample_value("process_open_fds") or 0) > 0
    assert any(s.name == "python_info" for f in r.collect() for s in f.samples)


@pytest.mark.parametrize("openmetrics", [False, True])
def test_the_whole_exposition_is_clean_for_promtool_and_the_openmetrics_parser(
    openmetrics: bool,
) -> None:
    m = build([(a, s, 10.0, 1.0, True) for a in AGENTS for s in STATUSES])
    accept = "application/openmetrics-text;version=1.0.0" if openmetrics else None
    body, _ = m.exposition(accept)
    if openmetrics:
        # promtool lints the text format only (it reads OpenMetrics' counter family names as
        # HELP-less): the OpenMetrics exposition is checked by prometheus_client's strict
        # parser here, and by a real Prometheus scraping it in tests/test_httpd.py
        fams, samples = parsed(body.decode(), openmetrics=True)
        assert ("dialnexa_calls", "counter") in {(f[0], f[1]) for f in fams}
        assert any(s[0] == "dialnexa_watchdog_build_info" for s in samples)
        return
    promtool = require_tool("promtool")
    r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    assert r.returncode == 0 and r.stdout.strip() == b"" and r.stderr.strip() == b"", r.stderr
