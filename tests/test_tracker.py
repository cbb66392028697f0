"""The tracker, pure: new calls, settling, moves, stuck calls, what to re-read."""

from __future__ import annotations

from dialnexa_watchdog.ingest.tracker import Tracker, TrackerConfig
from dialnexa_watchdog.model import Call, Range, StatusClasses
from dialnexa_watchdog.windows import Windows

T0 = 1_750_000_000.0
CLASSES = StatusClasses()


def make(**kw: object) -> Tracker:
    cfg = TrackerConfig(longest_window=3600.0, **kw)  # type: ignore[arg-type]
    return Tracker(cfg, Windows({"5m": 300, "1h": 3600}, CLASSES), CLASSES)


def test_transitions_are_counted_once_at_final_status() -> None:
    tr = make()
    tr.apply([], T0, tr.plan_backfill(T0), backfill=True)
    c = "c1"
    seen = []
    for i, status in enumerate(["initiated", "ringing", "in_progress", "completed", "completed"]):
        now = T0 + 30 * (i + 1)
        settled = T0 + 100 if status == "completed" else None
        call = Call(c, "agt", status, T0 + 10, settled)
        applied = tr.apply([call, call], now, tr.plan(now))  # listed twice in one cycle
        seen.append(len(applied.new_terminal))
    assert seen == [0, 0, 0, 1, 0]
    assert tr.windows.counts("agt", "5m").calls == 1
    assert tr.pending_count == 0


def test_a_counted_call_that_changes_status_moves_and_is_not_counted_twice() -> None:
    tr = make()
    tr.apply([Call("c", "a", "completed", T0 - 20, T0 - 5)], T0, backfill=True)
    assert tr.windows.counts("a", "5m").outcomes["failed"] == 0
    applied = tr.apply([Call("c", "a", "failed", T0 - 20, T0 - 5)], T0 + 30)
    assert applied.moved == 1 and applied.new_terminal == []
    wc = tr.windows.counts("a", "5m")
    assert wc.calls == 1 and wc.outcomes["failed"] == 1


def test_settle_time_is_ended_at_else_first_seen_terminal() -> None:
    tr = make()
    tr.apply([Call("x", "a", "ringing", T0 - 5)], T0, backfill=True)
    tr.apply([Call("x", "a", "busy", T0 - 5, None)], T0 + 400)  # no ended_at, no duration
    assert tr.windows.counts("a", "5m").outcomes["busy"] == 1  # settled "now", not at creation


def test_calls_pending_past_max_age_are_dropped_as_stuck() -> None:
    tr = make(max_pending_age=600.0)
    tr.apply([Call("s", "a", "in_progress", T0 - 10)], T0, backfill=True)
    assert tr.apply([], T0 + 300).stuck == []
    assert tr.apply([], T0 + 700).stuck == ["a"]
    assert tr.pending_count == 0


def test_old_untracked_items_are_ignored_and_settled_memory_is_bounded() -> None:
    tr = make(max_call_duration=900.0)
    calls = [Call(f"c{i}", "a", "completed", T0 - 100 + i, T0 - 50 + i) for i in range(50)]
    tr.apply(calls, T0, backfill=True)
    assert tr.tracked_count == 50
    later = T0 + 2000
    tr.apply([], later, [Range(later - 90, later)])
    assert tr.tracked_count == 0  # settled calls older than the horizon are forgotten
    again = tr.apply(calls, later + 30, [Range(later - 90, later + 30)])
    assert again.new_terminal == [] and tr.tracked_count == 0  # never recounted nor tracked


def test_head_covers_settle_horizon_and_gaps_after_an_outage() -> None:
    tr = make(settle_horizon=90.0, overlap=10.0)
    tr.apply([], T0, tr.plan_backfill(T0), backfill=True)
    head = tr.plan(T0 + 30)[0]
    assert head.kind == "head" and head.start == T0 + 30 - 90 and head.end == T0 + 30
    tr.apply([], T0 + 30, [head])
    # the next three cycles fail; the head of the next one reaches back to the last good end
    head = tr.plan(T0 + 300)[0]
    assert head.start == T0 + 30 - 10


def test_backfill_lists_longest_window_plus_longest_call() -> None:
    tr = make(max_call_duration=900.0)
    [r] = tr.plan_backfill(T0)
    assert (r.kind, r.end - r.start) == ("backfill", 3600 + 900)


def test_due_pending_calls_get_ranges_and_lone_stragglers_narrow_queries() -> None:
    tr = make(settle_horizon=90.0, pending_recheck=30.0, max_call_duration=900.0)
    talking = [Call(f"t{i}", "a", "in_progress", T0 - 300 + i) for i in range(5)]
    settled = [Call(f"s{i}", "a", "completed", T0 - 290 + i, T0 - 200) for i in range(300)]
    straggler = Call("old", "a", "in_progress", T0 - 3000)
    tr.apply([*talking, *settled, straggler], T0, tr.plan_backfill(T0), backfill=True)
    assert [r.kind for r in tr.plan(T0 + 30)] == ["head", "pending"]  # straggler backs off
    later = T0 + 601
    plan = tr.plan(later)
    kinds = [r.kind for r in plan]
    assert kinds == ["head", "pending", "straggler"]
    pending = plan[1]
    assert pending.start == T0 - 300 and pending.end == T0 - 296  # not stretched over settled
    assert plan[2].start == plan[2].end == T0 - 3000
    # once re-read, they are not due again until pending_recheck has passed
    tr.apply([], later, plan)
    assert [r.kind for r in tr.plan(later + 15)] == ["head"]


def test_max_agents_caps_cardinality() -> None:
    tr = make(max_agents=2)
    applied = tr.apply(
        [Call(f"c{i}", f"agent{i}", "failed", T0 - 5, T0 - 1) for i in range(4)], T0, backfill=True
    )
    assert applied.dropped_agents == ["agent2", "agent3"]
    assert tr.windows.agents() == ["agent0", "agent1"]


def test_explicit_agent_list_ignores_other_agents_and_plans_per_agent() -> None:
    tr = make(agents=("a", "b"), per_agent=True)
    plan = tr.plan_backfill(T0)
    assert [r.agent_id for r in plan] == ["a", "b"]
    tr.apply([Call("x", "zzz", "failed", T0 - 5, T0 - 1)], T0, plan, backfill=True)
    assert tr.windows.agents() == []


# ---- live listing (poll.pending_listing: status) -----------------------------------------


def test_live_listing_watches_pending_calls_and_rereads_only_those_that_ended() -> None:
    tr = make(live=True)
    calls = [Call(f"c{i}", "a", "in_progress", T0 - 600 + 60 * i) for i in range(5)]
    tr.apply(calls, T0, tr.plan_backfill(T0), backfill=True)
    now = T0 + 30
    assert [r.kind for r in tr.plan(now)] == ["head", "live"]  # no pending ranges at all
    (live,) = tr.plan_live(now)
    assert (live.start, live.kind, live.agent_id) == (T0 - 600, "live", None)
    assert live.end == tr.plan(now)[0].start and live.est_calls == 5
    # c1 and c3 are no longer in progress: the live listing does not return them
    still = [c for c in calls if c.id not in ("c1", "c3")]
    tr.apply(still, now, [live])
    assert tr.plan_live(now) == []  # not due again before pending_recheck
    ranges = tr.plan(now)
    rereads = [r for r in ranges if r.kind == "pending"]
    assert {(r.start, r.end) for r in rereads} == {(T0 - 540, T0 - 420)}
    ended = [Call("c1", "a", "completed", T0 - 540, now - 5), Call("c3", "a", "failed",
             T0 - 420, now - 3)]  # fmt: skip
    applied = tr.apply([*ended, still[1]], now + 1, rereads)
    assert sorted(applied.settled_ids) == ["c1", "c3"] and tr.pending_count == 3
    assert [r.kind for r in tr.plan(now + 2)] == ["head"]  # the others stay watched
    assert [r.kind for r in tr.plan(now + 30)] == ["head", "live"]


def test_an_incomplete_live_listing_changes_nothing_and_stays_due() -> None:
    tr = make(live=True)
    tr.apply([Call("c", "a", "in_progress", T0 - 600)], T0, tr.plan_backfill(T0), backfill=True)
    assert len(tr.plan_live(T0 + 30)) == 1
    tr.apply([], T0 + 30, [])  # the listing failed: not in completed
    assert [r.kind for r in tr.plan(T0 + 31)] == ["head", "live"]


def test_falling_back_to_ranges_makes_every_pending_call_due() -> None:
    tr = make(live=True)
    tr.apply([Call("c", "a", "in_progress", T0 - 600)], T0, tr.plan_backfill(T0), backfill=True)
    tr.use_ranges()
    assert not tr.live and tr.plan_live(T0 + 1) == []
    assert [r.kind for r in tr.plan(T0 + 1)] == ["head", "pending"]


def test_live_is_workspace_wide_only() -> None:
    tr = make(live=True, agents=("a", "b"), per_agent=True)
    assert not tr.live
    tr = make(live=True, agents=("a", "b"))
    tr.use_per_agent()
    assert not tr.live


def test_a_restart_from_status_mode_into_ranges_rereads_the_watched_calls() -> None:
    live = make(live=True)
    live.restore({}, {}, at=T0, per_agent=False)
    live.apply([Call("c", "a", "in_progress", T0 - 600)], T0)
    saved, _ = live.export_changes(set())
    tr = make()
    tr.restore(saved, live.cursor(), at=T0 + 30, per_agent=False)
    assert [r.kind for r in tr.plan(T0 + 60)] == ["head", "pending"]
