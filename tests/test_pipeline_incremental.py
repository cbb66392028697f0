"""The alert step proportional to what changed (issue 10 item 4) writes exactly what the step
that looks at everything writes.

Two pipelines see the same windows, silences and stale checks, poll after poll: one as the
daemon runs it (incremental evaluation, the commit looking only at the states that can have
changed, display refreshes from a heap), one with the full evaluation and the earlier
``_changes`` (every state compared, the refreshes sorted). Every commit must be the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from unittest import mock

from dialnexa_watchdog.alerts import pipeline as pipeline_module
from dialnexa_watchdog.alerts.diff import changed_members, durable
from dialnexa_watchdog.alerts.incidents import Incident, Policy
from dialnexa_watchdog.alerts.pipeline import AlertPipeline, Key
from dialnexa_watchdog.alerts.rules import evaluate
from dialnexa_watchdog.alerts.snapshots import Snapshots
from dialnexa_watchdog.alerts.state import AlertState, Limits, Rule, Silence, StaleRule
from dialnexa_watchdog.alerts.store import Changes
from dialnexa_watchdog.model import PollStatus, StatusClasses
from dialnexa_watchdog.notify import Notice
from dialnexa_watchdog.windows import Windows
from hypothesis import given, settings
from hypothesis import strategies as st

T0 = 1_750_000_000.0
AGENTS = [f"a{i}" for i in range(8)]
STATUSES = ["completed", "failed", "failed", "busy", "no_answer"]


class Store:
    """What the pipeline writes, commit by commit; silences as the test sets them."""

    def __init__(self) -> None:
        self.commits: list[tuple[float, Changes]] = []
        self.active: list[Silence] = []

    def load_states(self) -> tuple[dict[Key, AlertState], dict[Key, str]]:
        return {}, {}

    def load_incidents(self, open_only: bool = True) -> dict[str, Incident]:
        return {}

    def commit(self, now: float, changes: Changes) -> None:
        self.commits.append((now, changes))

    def silences(self, now: float | None = None) -> list[Silence]:
        return list(self.active)

    def apply_action(self, changes: Any) -> str | None:
        return None

    def action_answer(self, action_id: str) -> str | None:
        return None


class Full:
    """``rules.evaluate`` behind the evaluator's interface: every agent stepped."""

    carried = None

    def evaluate(self, *a: Any, **kw: Any) -> Any:
        return evaluate(*a, **kw)

    def reset(self) -> None:
        pass


class Reference(AlertPipeline):
    """The pipeline with the full evaluation and the earlier ``_changes``."""

    def _changes(
        self,
        prev: Mapping[Key, AlertState],
        states: Mapping[Key, AlertState],
        incident_of: Mapping[Key, str],
        incidents: Sequence[Incident],
        notices: Sequence[Notice],
        now: float,
        maybe: Any = None,
    ) -> Changes:
        old_of = self._book.incident_of
        written = self._written
        out: list[tuple[AlertState, str | None]] = []
        stale_display: list[tuple[float, Key]] = []
        for k, s in states.items():
            before = prev.get(k)
            if (
                before is None
                or durable(before) != durable(s)
                or old_of.get(k) != incident_of.get(k)
            ):
                out.append((s, incident_of.get(k)))
                written[k] = now
            elif now - written.get(k, -1e18) >= pipeline_module.REFRESH_AFTER:
                stale_display.append((written.get(k, -1e18), k))
        if stale_display:
            stale_display.sort()
            for _, k in stale_display[: pipeline_module.REFRESH_BATCH]:
                out.append((states[k], incident_of.get(k)))
                written[k] = now
        deleted = [k for k in prev if k not in states]
        for k in deleted:
            written.pop(k, None)
        return Changes(
            states=out,
            deleted=deleted,
            incidents=incidents,
            notices=notices,
            members=changed_members(self._book.incidents, incidents),
        )


RULES = [
    Rule("failed-1m", "failed", "1m", Limits(0.4, 0.3, 2, 0.0)),
    Rule("failed-5m", "failed", "5m", Limits(0.3, 0.2, 3, 60.0)),
    Rule("busy-5m", "busy", "5m", Limits(0.25, 0.25, 1, 0.0), confirm_window="1m"),
    Rule("ws-failed", "failed", "5m", Limits(0.5, 0.4, 5, 0.0), scope="workspace"),
]


def _pipeline(cls: type[AlertPipeline], store: Store, repeat: float) -> AlertPipeline:
    policy = Policy(
        can_edit=True,
        group_threshold=3,
        repeat_interval=repeat,
        groupable=frozenset({"failed-1m", "failed-5m", "busy-5m"}),
    )
    snaps = Snapshots(RULES, lambda a: None, 6)
    ids = iter(range(10**6))
    return cls(
        RULES,
        StaleRule(120.0),
        store,  # type: ignore[arg-type]
        policy,
        snaps.bind,
        new_id=lambda rule, label, now: f"{rule}/{label}/{next(ids)}",
    )


@settings(max_examples=30, deadline=None)
@given(
    cycles=st.lists(
        st.tuples(
            st.lists(
                st.tuples(st.sampled_from(AGENTS), st.sampled_from(STATUSES), st.floats(0, 25)),
                max_size=10,
            ),
            st.booleans(),  # the poll succeeded (else the stale rule may fire on a tick)
            st.integers(0, 3),  # ticks of the stale timer before the next poll
        ),
        min_size=25,
        max_size=50,
    ),
    repeat=st.sampled_from([0.0, 300.0]),
    silenced=st.sampled_from(AGENTS),
)
def test_the_step_commits_what_the_full_step_commits(
    cycles: list[tuple[list[tuple[str, str, float]], bool, int]],
    repeat: float,
    silenced: str,
) -> None:
    # display refreshes 2 at a time (the oldest first) every 5 minutes: the batch is full
    with (
        mock.patch.object(pipeline_module, "REFRESH_BATCH", 2),
        mock.patch.object(pipeline_module, "REFRESH_AFTER", 300.0),
    ):
        _run(cycles, repeat, silenced)


def _run(
    cycles: list[tuple[list[tuple[str, str, float]], bool, int]], repeat: float, silenced: str
) -> None:
    w = Windows({"1m": 60.0, "5m": 300.0}, StatusClasses())
    ours, theirs = Store(), Store()
    ours_p, theirs_p = _pipeline(AlertPipeline, ours, repeat), _pipeline(Reference, theirs, repeat)
    theirs_p.evaluator = Full()  # type: ignore[assignment]
    now, last_ok = T0, T0
    for i, (calls, ok, ticks) in enumerate(cycles):
        now += 30
        w.advance(now)
        for agent, status, ago in calls:
            w.add(agent, status, now - ago)
        if ok:
            last_ok = now
        # a silence for one agent for a while: its firing alerts wait without an incident
        active = [Silence(1, silenced, None, T0, T0 + 600)] if i % 40 < 15 else []
        ours.active, theirs.active = active, active
        error = None if ok else f"timeout #{i % 3}"  # a firing stale alert shows the last one
        poll = PollStatus(started_at=T0, last_success=last_ok, last_error=error, backfilled=True)
        for p in (ours_p, theirs_p):
            p.on_poll(w, poll, now)
        for k in range(ticks):
            for p in (ours_p, theirs_p):
                p.on_tick(poll, now + 5 * (k + 1))
        assert len(ours.commits) == len(theirs.commits)
        for (t1, a), (t2, b) in zip(ours.commits, theirs.commits, strict=True):
            assert t1 == t2
            assert {s.key: (s, iid) for s, iid in a.states} == {
                s.key: (s, iid) for s, iid in b.states
            }
            assert len(a.states) == len(b.states)
            assert sorted(a.deleted) == sorted(b.deleted)
            assert list(a.incidents) == list(b.incidents)
            assert list(a.notices) == list(b.notices)
            assert dict(a.members) == dict(b.members)
        ours.commits.clear()
        theirs.commits.clear()
        assert ours_p.view == theirs_p.view
    assert ours_p.evaluator.partial > 0
