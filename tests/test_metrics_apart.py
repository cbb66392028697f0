"""The families /metrics renders apart (issue 10 item 4): ``dialnexa_alert_firing`` /
``_pending`` and ``dialnexa_agent_info`` as kept text equal what prometheus_client writes
from the collectors' own collect(), in both formats, and a whole exposition holds each
family once, with the same samples as prometheus_client's rendering of the registry."""

from __future__ import annotations

import threading

import pytest
from dialnexa_watchdog.alerts.collector import AlertCollector
from dialnexa_watchdog.alerts.pipeline import AlertView, CommitHealth
from dialnexa_watchdog.alerts.state import AlertState, State
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.ingest.agents import AgentEntry
from dialnexa_watchdog.ingest.directory import AgentDirectory, DirectoryCollector
from dialnexa_watchdog.metrics import Metrics
from dialnexa_watchdog.model import StatusClasses
from dialnexa_watchdog.windows import Windows
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics import exposition as om
from test_metrics import ACCEPTS, parsed, without_process

# label values a scraper must get escaped: quotes, backslashes, newlines, non-ASCII
IDS = ["a1", "a2", 'we"ird\\agent', "a\nnewline", "ünï", "*"]
RULES = ["failed-5m", 'r"q', "busy\\1h"]


def _state(rule: str, agent: str, state: State, severity: str) -> AlertState:
    return AlertState(rule, agent, severity, state, 1.0, 2.0)


views = st.builds(
    lambda covered, states: AlertView(states, covered),
    st.dictionaries(st.sampled_from(RULES), st.lists(st.sampled_from(IDS), unique=True).map(tuple)),
    st.lists(
        st.tuples(
            st.sampled_from(RULES),
            st.sampled_from(IDS),
            st.sampled_from([State.FIRING, State.PENDING, State.RESOLVED]),
            st.sampled_from(["critical", 'warn"ing', "page\nme"]),
        )
    ).map(lambda xs: {(r, a): _state(r, a, s, sev) for r, a, s, sev in xs}),
)


def _alerts(view: AlertView) -> AlertCollector:
    return AlertCollector(
        lambda: view,
        {"failed-5m": "warning", 'r"q': "critical"},
        lambda: CommitHealth(),
        lambda: {"ok": 3},
        lambda: (1, 0),
    )


def _directory(entries: list[AgentEntry], names: dict[str, str]) -> DirectoryCollector:
    d = AgentDirectory(None, FakeClock(0.0), names=names)
    d.agents = {e.id: e for e in entries}
    return DirectoryCollector(d)


def _same_as_prometheus_client(collector: object, names: set[str]) -> None:
    reference = CollectorRegistry(auto_describe=False)
    reference.register(collector)  # type: ignore[arg-type]
    for openmetrics in (False, True):
        encode = om.generate_latest if openmetrics else generate_latest
        theirs = parsed(encode(reference).decode(), openmetrics)
        text = collector.render_apart(openmetrics)  # type: ignore[attr-defined]
        ours = parsed(text + ("# EOF\n" if openmetrics else ""), openmetrics)
        assert ours[0] == {f for f in theirs[0] if f[0] in names}
        assert ours[1] == {s for s in theirs[1] if s[0] in names}
        assert sum(1 for line in text.splitlines() if not line.startswith("#")) == len(ours[1])
        # line for line: the same text prometheus_client writes for these families
        theirs_lines = [
            line
            for line in encode(reference).decode().splitlines()
            if [*line.split(" "), "", ""][2 if line.startswith("#") else 0].split("{")[0] in names
        ]
        assert sorted(text.splitlines()) == sorted(theirs_lines)


@settings(max_examples=60, deadline=None)
@given(views)
def test_alert_series_rendered_apart_are_prometheus_clients(view: AlertView) -> None:
    _same_as_prometheus_client(_alerts(view), {"dialnexa_alert_firing", "dialnexa_alert_pending"})


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.builds(
            AgentEntry,
            st.sampled_from(IDS),
            st.sampled_from([None, "", 'Sales "EU"', "x" * 300, "line\nbreak", "bs\\"]),
            st.sampled_from([None, True, False]),
            st.sampled_from([None, True, False]),
        )
    ),
    st.dictionaries(st.sampled_from([*IDS, "named-only"]), st.sampled_from(["", "Named", 'q"'])),
)
def test_agent_info_rendered_apart_is_prometheus_clients(
    entries: list[AgentEntry], names: dict[str, str]
) -> None:
    _same_as_prometheus_client(_directory(entries, names), {"dialnexa_agent_info"})


def test_the_text_is_kept_until_the_view_or_the_listing_is_replaced() -> None:
    view = AlertView({}, {"failed-5m": ("a1",)})
    current = [view]
    c = AlertCollector(lambda: current[0], {}, CommitHealth, dict, lambda: (0, 0))
    first = c.render_apart(False)
    assert c._text is not None and c._text[0] is view
    kept = c._text
    assert c.render_apart(False) == first and c._text is kept  # not rendered again
    current[0] = AlertView({}, {"failed-5m": ("a1", "a2")})
    assert 'agent_id="a2"' in c.render_apart(False)
    d = _directory([AgentEntry("a1", "One")], {})
    assert 'title="One"' in d.render_apart(False)
    d.directory.agents = {"a1": AgentEntry("a1", "Uno")}  # a refresh replaces the mapping
    assert 'title="Uno"' in d.render_apart(False)


def test_a_lone_surrogate_is_spelled_out_not_an_error() -> None:
    view = AlertView({}, {"r": ("lone\ud83dsurrogate",)})
    text = _alerts(view).render_apart(False)
    assert 'agent_id="lone\\\\ud83dsurrogate"' in text
    text.encode()


def _metrics(view: AlertView) -> Metrics:
    w = Windows({"1m": 60.0}, StatusClasses())
    w.advance(100.0)
    w.add("a1", "failed", 99.0)
    m = Metrics(CollectorRegistry(), w, threading.Lock())
    m.windows.render()
    m.register_apart(_alerts(view))
    m.register_apart(
        _directory([AgentEntry("a1", "One", True), AgentEntry("a\nb", None, None)], {"z": "Z"})
    )
    return m


@pytest.mark.parametrize("accept", ACCEPTS)
def test_a_whole_exposition_has_each_family_once_as_prometheus_client_renders_it(
    accept: str | None,
) -> None:
    covered = {"failed-5m": ("a1", "a2", "ünï"), "busy\\1h": ("a1",)}
    states = {("failed-5m", "a1"): _state("failed-5m", "a1", State.FIRING, "critical"),
              ("gone", "a9"): _state("gone", "a9", State.PENDING, "warning")}  # fmt: skip
    m = _metrics(AlertView(states, covered))
    everything = CollectorRegistry(auto_describe=False)
    everything.register(m.registry)
    everything.register(m.windows)
    encoder, their_type = choose_encoder(accept or "")
    theirs = encoder(everything)
    ours, our_type = m.exposition(accept)
    assert our_type == their_type
    openmetrics = our_type.startswith("application/openmetrics-text")
    try:
        expected = without_process(parsed(theirs.decode(), openmetrics))
    except ValueError:  # its OpenMetrics under dots/values escaping: its own parser refuses it
        return
    got = without_process(parsed(ours.decode(), openmetrics))
    assert got == expected
    if "escaping=dots" not in (accept or ""):  # dots renames every family
        for family in ("dialnexa_alert_firing", "dialnexa_agent_info"):
            assert ours.count(f"# TYPE {family} gauge".encode()) == 1
        line = b'dialnexa_alert_pending{agent_id="a9",rule="gone",severity="warning"} 1.0\n'
        assert ours.count(line) == 1
    # the registry still answers for these families as before (tests, tools)
    assert m.registry.get_sample_value(
        "dialnexa_alert_firing", {"rule": "failed-5m", "agent_id": "a1", "severity": "critical"}
    ) == 1.0  # fmt: skip
    assert m.registry.get_sample_value(
        "dialnexa_agent_info", {"agent_id": "z", "title": "Z", "published": "unknown"}
    ) == 1.0  # fmt: skip


def test_unregistering_apart_removes_the_families() -> None:
    m = _metrics(AlertView({}, {"failed-5m": ("a1",)}))
    c = m._apart[0]
    assert b"dialnexa_alert_firing{" in m.body()
    m.unregister_apart(c)
    assert b"dialnexa_alert_firing" not in m.body()
    assert m.registry.get_sample_value("dialnexa_slack_outbox_messages") is None
