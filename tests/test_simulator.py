"""The DialNexa simulator over real loopback HTTP, driven by a FakeClock (no sleeps)."""

from __future__ import annotations

import hashlib
import itertools
import math
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from dialnexa_watchdog.clock import FakeClock, SystemClock
from dialnexa_watchdog.ingest.parse import parse_page
from dialnexa_watchdog.model import UNKNOWN, StatusClasses
from dialnexa_watchdog.simulator import (
    HOSTILE_TITLES,
    AgentInfo,
    AgentProfile,
    BurstRecord,
    Bursts,
    CallSpec,
    Degradation,
    Latency,
    RealisticParams,
    RunningServer,
    Scenario,
    Simulator,
    lognormal_share_over,
    observed_outcome,
    serve,
)
from dialnexa_watchdog.simulator.__main__ import build_parser
from dialnexa_watchdog.simulator.calls import now_ms, to_ms
from dialnexa_watchdog.simulator.render import iso

T0 = 1_750_000_000.0  # 2025-06-15T15:06:40Z
KEY = "test-key"
RO_KEY = "read-only-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def sim(clock: FakeClock) -> Simulator:
    return Simulator(clock, keys=(KEY,), forbidden_keys=(RO_KEY,))


@pytest.fixture
def server(sim: Simulator) -> Iterator[RunningServer]:
    with serve(sim) as running:
        yield running


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    # verify=False: plain HTTP on loopback; skips loading CA certificates (~0.1 s per client)
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=5, verify=False) as client:
        yield client


@pytest.fixture
def raw() -> Iterator[httpx.Client]:
    """A client with no default headers."""
    with httpx.Client(timeout=5, verify=False) as client:
        yield client


def data(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    body = response.json()
    items = body if isinstance(body, list) else body["data"]
    assert isinstance(items, list)
    return items


def ids(response: httpx.Response) -> list[str]:
    return [item["id"] for item in data(response)]


# ---- shapes ------------------------------------------------------------------------------


def test_v1_shape_is_the_first_seed_example(sim: Simulator, http: httpx.Client) -> None:
    sim.add_call("agt_a", T0 - 200, "completed", ring=5, talk=145, call_id="call_done")
    sim.add_call("agt_a", T0 - 0.5, "completed", ring=5, talk=60, call_id="call_live")
    body = http.get("/calls").json()
    assert body["meta"] == {"page": 1, "limit": 20, "total": 2, "totalPages": 1}
    live, done = body["data"]
    assert set(done) == {
        "id",
        "agent_id",
        "agent_version_number",
        "to_phone_number",
        "from_phone_number",
        "status",
        "duration_seconds",
        "recording_url",
        "metadata",
        "created_at",
        "ended_at",
    }
    assert done["status"] == "completed" and done["duration_seconds"] == 145
    assert done["created_at"] == iso(to_ms(T0 - 200)) == "2025-06-15T15:03:20.000Z"
    assert done["ended_at"] == "2025-06-15T15:05:50.000Z"  # created + ring + talk
    assert done["to_phone_number"].startswith("+1555") and len(done["to_phone_number"]) == 12
    assert set(done["metadata"]) == {"customer_name", "account_id"}
    assert done["recording_url"].endswith("call_done.mp3")
    assert live["status"] == "initiated" and live["ended_at"] is None
    assert live["duration_seconds"] is None


def test_v2_shape_is_the_second_seed_example(sim: Simulator, http: httpx.Client) -> None:
    sim.shape = "v2"
    sim.add_call("agt_k", T0 - 300, "completed", ring=3, talk=142, vocab="hyphen", call_id="x")
    sim.add_call("agt_k", T0 - 100, "no_answer", ring=20, vocab="hyphen", call_id="y")
    body = http.get("/calls", params={"agent_id": "agt_k"}).json()
    assert body["meta"] == {"page": 1, "limit": 20, "total": 2}
    newest, oldest = body["data"]
    assert set(newest) == {
        "id",
        "status",
        "agent_id",
        "to_phone_number",
        "duration_sec",
        "created_at",
    }
    assert (newest["status"], newest["duration_sec"]) == ("no-answer", 0)
    assert (oldest["status"], oldest["duration_sec"]) == ("completed", 142)


def test_bare_shape_is_an_array_in_camel_case_with_end_reasons(
    sim: Simulator, http: httpx.Client
) -> None:
    sim.shape = "bare"
    outcomes = ["completed", "busy", "no_answer", "voicemail", "failed", "cancelled"]
    for i, outcome in enumerate(outcomes):
        sim.add_call("agt_b", T0 - 600 + i, outcome, ring=5, talk=30, call_id=f"c{i}")
    sim.add_call("agt_b", T0 - 10, "completed", ring=5, talk=30, call_id="live")
    body = http.get("/calls").json()
    assert isinstance(body, list)
    by_id = {item["id"]: item for item in body}
    assert set(by_id["c0"]) >= {"id", "agent_id", "to_number", "status", "createdAt", "endedAt"}
    assert by_id["live"]["status"] == "in_progress" and by_id["live"]["endedAt"] is None
    reasons = {item["id"]: item.get("end_reason") or item.get("hangup_reason") for item in body}
    assert all(by_id[f"c{i}"]["status"] == "ended" for i in range(5))
    assert reasons["c0"] in ("user_hangup", "agent_hangup")
    assert reasons["c1"] == "user_busy"
    assert reasons["c2"] == "user_did_not_pick_up"
    assert reasons["c3"] == "voicemail_detected"
    assert reasons["c4"] in ("network_failure", "sip_trunk_unreachable", "unallocated_phone_number")
    assert by_id["c5"]["status"] == "cancelled"
    # hangup_reason instead of end_reason on some items
    sim.add_calls(
        CallSpec(f"h{i}", "agt_b", T0 - 500 + i, "busy", ring=5, talk=0) for i in range(8)
    )
    body = http.get("/calls").json()
    assert any("hangup_reason" in item for item in body)


def test_vocabularies_and_voicemail_in_one_response(sim: Simulator, http: httpx.Client) -> None:
    for vocab in ("underscore", "hyphen"):
        agent = f"agt_{vocab}"
        for i, outcome in enumerate(("no_answer", "did_not_pick", "retry_expired", "voicemail")):
            sim.add_call(agent, T0 - 900 + i, outcome, ring=5, talk=20, vocab=vocab)
        sim.add_call(agent, T0 - 10, "completed", ring=2, talk=60, vocab=vocab)
    got = {
        (item["agent_id"], item["created_at"]): (item["status"], item.get("end_reason"))
        for item in data(http.get("/calls"))
    }
    u = [got[("agt_underscore", iso(to_ms(T0 - 900 + i)))] for i in range(4)]
    h = [got[("agt_hyphen", iso(to_ms(T0 - 900 + i)))] for i in range(4)]
    assert u == [
        ("no_answer", None),
        ("did_not_pick", None),
        ("retry_expired", None),
        ("completed", "voicemail_detected"),
    ]
    assert h == [
        ("no-answer", None),
        ("no-answer", None),
        ("failed", None),
        ("completed", "voicemail_detected"),
    ]
    assert got[("agt_underscore", iso(to_ms(T0 - 10)))][0] == "in_progress"
    assert got[("agt_hyphen", iso(to_ms(T0 - 10)))][0] == "in-progress"


# ---- errors ------------------------------------------------------------------------------


def test_auth_missing_unknown_and_forbidden_keys(server: RunningServer, raw: httpx.Client) -> None:
    url = f"{server.url}/calls"
    missing = raw.get(url)
    unknown = raw.get(url, headers={"Authorization": "Bearer nope"})
    basic = raw.get(url, headers={"Authorization": f"Basic {KEY}"})
    forbidden = raw.get(url, headers={"Authorization": f"Bearer {RO_KEY}"})
    for r in (missing, unknown, basic):
        assert r.status_code == 401
        assert r.json() == {
            "statusCode": 401,
            "message": "Invalid API key",
            "error": "Unauthorized",
        }
    assert forbidden.status_code == 403
    assert forbidden.json() == {
        "statusCode": 403,
        "message": "This API key cannot read calls on this workspace",
        "error": "Forbidden",
    }
    assert [r.key_ok for r in server.sim.requests] == [False, False, False, False]


def test_limit_over_100_and_other_bad_parameters_are_400(http: httpx.Client) -> None:
    r = http.get("/calls", params={"limit": 101})
    assert r.status_code == 400
    assert r.json() == {
        "statusCode": 400,
        "message": "limit must not be greater than 100",
        "error": "Bad Request",
    }
    assert http.get("/calls", params={"limit": 100}).status_code == 200
    for params in ({"page": 0}, {"page": "x"}, {"limit": 0}, {"from": "yesterday"}):
        assert http.get("/calls", params=params).status_code == 400


def test_unknown_paths_are_404_with_a_json_body(server: RunningServer, raw: httpx.Client) -> None:
    for path in ("/v1/call", "/v2/calls", "/"):
        r = raw.get(server.origin + path, headers=AUTH)
        assert r.status_code == 404 and r.json()["statusCode"] == 404
    r = raw.post(f"{server.url}/calls", headers=AUTH)
    assert r.status_code == 404 and r.json()["message"] == "Cannot POST /v1/calls"
    assert raw.get(f"{server.origin}/calls", headers=AUTH).status_code == 200


# ---- filters and pagination --------------------------------------------------------------


def test_filters_agent_status_in_both_vocabularies_and_inclusive_dates(
    sim: Simulator, http: httpx.Client, clock: FakeClock
) -> None:
    sim.add_call("agt_u", T0 - 300, "no_answer", ring=10, call_id="u_na")
    sim.add_call("agt_h", T0 - 290, "no_answer", ring=10, vocab="hyphen", call_id="h_na")
    sim.add_call("agt_h", T0 - 280, "completed", ring=5, talk=30, call_id="h_ok")
    sim.add_call("agt_u", T0 - 5, "completed", ring=2, talk=60, call_id="u_live")
    sim.add_call("agt_h", T0 - 5, "completed", ring=2, talk=60, call_id="h_live")
    sim.add_call("agt_u", T0 + 100, "completed", call_id="future")  # not visible yet

    assert set(ids(http.get("/calls", params={"agent_id": "agt_h"}))) == {"h_na", "h_ok", "h_live"}
    assert ids(http.get("/calls", params={"agent_id": "nobody"})) == []
    for spelling in ("no-answer", "no_answer", "NO-ANSWER"):
        assert ids(http.get("/calls", params={"status": spelling})) == ["h_na", "u_na"]
    for spelling in ("in-progress", "in_progress"):
        assert ids(http.get("/calls", params={"status": spelling})) == ["u_live", "h_live"]
    r = http.get("/calls", params={"status": "completed", "agent_id": "agt_h"})
    assert ids(r) == ["h_ok"] and r.json()["meta"]["total"] == 1

    bounds = {"from": iso(to_ms(T0 - 290)), "to": iso(to_ms(T0 - 280))}
    assert ids(http.get("/calls", params=bounds)) == ["h_ok", "h_na"]  # both ends inclusive
    plain = {"from": "2025-06-15T15:01:50Z", "to": "2025-06-15T15:02:00+00:00"}
    assert ids(http.get("/calls", params=plain)) == ["h_ok", "h_na"]

    sim.ignore_date_filter = True
    assert len(ids(http.get("/calls", params=bounds))) == 5
    clock.advance(100)
    assert "future" in ids(http.get("/calls"))


def test_newest_first_ties_by_id_and_inserts_between_pages_shift_pages(
    sim: Simulator, http: httpx.Client, clock: FakeClock
) -> None:
    for i in range(25):
        sim.add_call("agt_a", T0 - 1000 + i, call_id=f"c{i:02d}")
    sim.add_call("agt_a", T0 - 1000, call_id="c00b")  # same created_at as c00
    page1 = ids(http.get("/calls", params={"limit": 10}))
    assert page1 == [f"c{i:02d}" for i in range(24, 14, -1)]
    last = ids(http.get("/calls", params={"limit": 10, "page": 3}))
    assert last == ["c04", "c03", "c02", "c01", "c00b", "c00"]

    def insert(path: str, params: object) -> None:
        sim.add_call("agt_a", clock.now(), call_id=f"new{sim.request_count}")
        clock.advance(1)

    sim.on_request = insert
    first = ids(http.get("/calls", params={"limit": 10}))
    second = ids(http.get("/calls", params={"limit": 10, "page": 2}))
    # a call landed on top between the two requests: page 2 repeats page 1's last item
    assert first[0] == "new2" and second[0] == first[-1] == "c16"
    assert http.get("/calls", params={"limit": 100, "page": 9}).json()["data"] == []
    assert [r.params.get("page") for r in sim.requests][-3:] == [None, "2", "9"]


# ---- rate limit and faults ---------------------------------------------------------------


def test_rate_limit_headers_429_after_150_and_reset_when_the_clock_moves(
    sim: Simulator, http: httpx.Client, clock: FakeClock
) -> None:
    first = http.get("/calls")
    assert first.headers["X-RateLimit-Limit"] == "150"
    assert first.headers["X-RateLimit-Remaining"] == "149"
    assert first.headers["X-RateLimit-Reset"] == "60"
    clock.advance(30)
    for _ in range(149):
        r = http.get("/calls")
        assert r.status_code == 200
    assert r.headers["X-RateLimit-Remaining"] == "0"
    assert r.headers["X-RateLimit-Reset"] == "30"  # the first request leaves the window then
    limited = http.get("/calls")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "30"
    assert limited.json() == {
        "statusCode": 429,
        "message": "ThrottlerException: Too Many Requests",
        "error": "Too Many Requests",
    }
    clock.advance(30)  # the first request slid out: one slot
    assert http.get("/calls").status_code == 200
    assert http.get("/calls").status_code == 429
    clock.advance(60)
    assert http.get("/calls").headers["X-RateLimit-Remaining"] == "149"
    # limits are per key: another key is not limited
    sim.keys = frozenset({KEY, "other"})
    assert http.get("/calls", headers={"Authorization": "Bearer other"}).status_code == 200


def test_rate_limit_reset_as_epoch_seconds_and_disabled(clock: FakeClock) -> None:
    sim = Simulator(clock, keys=(KEY,), rate_limit=2, rate_reset="epoch")
    assert sim.handle("GET", "/v1/calls", "", f"Bearer {KEY}").headers[2] == (
        "X-RateLimit-Reset",
        str(int(T0 + 60)),
    )
    off = Simulator(clock, keys=(KEY,), rate_limit=None)
    responses = [off.handle("GET", "/v1/calls", "", f"Bearer {KEY}") for _ in range(300)]
    assert {r.status for r in responses} == {200} and responses[0].headers == []


def test_injected_status_faults_are_fifo_and_counted(sim: Simulator, http: httpx.Client) -> None:
    sim.add_call("agt_a", T0 - 100, call_id="c1")
    sim.inject("500")
    sim.inject("502", count=2)
    sim.inject("503")
    sim.inject("429", seconds=7)
    codes = [http.get("/calls") for _ in range(6)]
    assert [r.status_code for r in codes] == [500, 502, 502, 503, 429, 200]
    assert codes[0].json()["statusCode"] == 500
    assert codes[4].headers["Retry-After"] == "7"
    assert codes[4].json()["message"] == "ThrottlerException: Too Many Requests"
    assert [r.fault for r in sim.requests] == ["500", "502", "502", "503", "429", None]
    assert sim.pending_faults == 0


def test_injected_html_invalid_json_and_bad_items(sim: Simulator, http: httpx.Client) -> None:
    for i in range(6):
        sim.add_call("agt_a", T0 - 100 + i, call_id=f"good{i}")
    sim.inject("html")
    sim.inject("invalid_json")
    sim.inject("bad_items")
    html = http.get("/calls")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    broken = http.get("/calls")
    assert broken.status_code == 200
    with pytest.raises(ValueError):
        broken.json()
    items = http.get("/calls").json()["data"]
    good = [i for i in items if str(i.get("id", "")).startswith("good")]
    assert [i["id"] for i in good] == [f"good{i}" for i in range(5, -1, -1)]
    bad = [i for i in items if i not in good]
    assert any("id" not in i for i in bad)
    assert any(i.get("status") == 7 for i in bad)
    assert any(i.get("created_at") == 12345 for i in bad)
    assert any("status" not in i for i in bad) and any("created_at" not in i for i in bad)


def test_injected_timeout_and_disconnect(sim: Simulator, http: httpx.Client) -> None:
    sim.inject("timeout", seconds=5)
    with pytest.raises(httpx.ReadTimeout):
        http.get("/calls", timeout=0.2)
    assert sim.wait_for_requests(1)  # the held request reached the server: it comes first
    sim.release_held()
    sim.inject("disconnect")
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/calls")
    assert http.get("/calls").status_code == 200
    assert [r.fault for r in sim.requests] == ["timeout", "disconnect", None]
    assert sim.requests[1].status == 0


def test_requests_are_recorded_in_arrival_order_while_one_is_held(sim: Simulator) -> None:
    sim.inject("timeout", seconds=30)
    held = threading.Thread(target=sim.handle, args=("GET", "/v1/calls", "page=1", f"Bearer {KEY}"))
    held.start()
    try:
        assert sim.wait_for_requests(1)
        answered = sim.handle("GET", "/v1/calls", "page=2", f"Bearer {KEY}")
        first, second = sim.requests
        assert (first.params, first.fault, first.status) == ({"page": "1"}, "timeout", -1)
        assert (second.params, second.fault, second.status) == ({"page": "2"}, None, 200)
        assert answered.status == 200
    finally:
        sim.release_held()  # reaches the hold even if it had not started waiting yet
        held.join(timeout=10)
    assert not held.is_alive()
    assert [(r.params["page"], r.status) for r in sim.requests] == [("1", 200), ("2", 200)]
    assert not sim.wait_for_requests(3, timeout=0.01)


def test_wsgi_transport_in_process(clock: FakeClock) -> None:
    sim = Simulator(clock, Scenario.demo(), keys=(KEY,))
    transport = httpx.WSGITransport(app=sim)
    with httpx.Client(
        transport=transport, base_url="http://sim/v1", headers=AUTH, verify=False
    ) as c:
        r = c.get("/calls", params={"limit": 100})
    assert r.status_code == 200 and len(r.json()["data"]) == 100


# ---- lifecycle and ground truth ----------------------------------------------------------


def test_lifecycle_is_a_pure_function_of_time(
    sim: Simulator, http: httpx.Client, clock: FakeClock
) -> None:
    answered = CallSpec("a", "agt", T0, "completed", ring=6, talk=30)
    voicemail = CallSpec("v", "agt", T0, "voicemail", ring=6, talk=10)
    busy = CallSpec("b", "agt", T0, "busy", ring=6, talk=30)
    assert [answered.status_at(T0 + dt) for dt in (-1, 0, 0.999, 1, 5.999, 6, 35.999, 36)] == [
        None,
        "initiated",
        "initiated",
        "ringing",
        "ringing",
        "in_progress",
        "in_progress",
        "completed",
    ]
    assert (answered.settled_at, answered.duration) == (T0 + 36, 30)
    assert voicemail.status_at(T0 + 16) == "voicemail" and voicemail.settled_at == T0 + 16
    assert [busy.status_at(T0 + dt) for dt in (5, 6)] == ["ringing", "busy"]
    assert (busy.settled_at, busy.duration) == (T0 + 6, 0)

    sim.add_calls([answered, busy], vocab="hyphen")
    seen = []
    for dt in (0, 1, 6, 36):
        clock.set(T0 + dt)
        seen.append({i["id"]: (i["status"], i["ended_at"]) for i in data(http.get("/calls"))})
    assert [s["a"][0] for s in seen] == ["initiated", "ringing", "in-progress", "completed"]
    assert [s["b"][0] for s in seen] == ["initiated", "ringing", "busy", "busy"]
    assert seen[2]["b"][1] == iso(to_ms(T0 + 6)) and seen[2]["a"][1] is None

    sim.set_final("a", "failed", at=T0 + 50)
    assert sim.get_call("a").status_at(T0 + 40) == "ringing"
    assert sim.get_call("a").settled_at == T0 + 50
    sim.set_final("b", "completed", at=T0 + 100)
    assert sim.get_call("b").status_at(T0 + 50) == "in_progress"
    with pytest.raises(KeyError):
        sim.set_final("nope", "failed")


def brute_settled(sim: Simulator, agent: str | None, start: float, end: float) -> Counter[str]:
    counts: Counter[str] = Counter()
    for spec in sim.calls(until=end):
        if agent is not None and spec.agent_id != agent:
            continue
        if start < spec.settled_at <= end:
            vocab = sim.vocab_of(spec.agent_id) or "underscore"
            counts[observed_outcome(spec.outcome, vocab, sim.shape)] += 1
    return counts


def brute_changed(sim: Simulator, t0: float, t1: float) -> int:
    n = 0
    for spec in sim.calls(until=t1):
        events = {spec.created_at, spec.created_at + spec.ring, spec.settled_at}
        if spec.ring > 1:
            events.add(spec.created_at + 1)
        if spec.answered:
            events.add(spec.created_at + spec.ring)
        n += any(t0 < round(e, 3) <= t1 for e in events)
    return n


@pytest.mark.parametrize("shape", ["v1", "bare"])
@pytest.mark.slow
def test_ground_truth_matches_a_brute_force_recount(clock: FakeClock, shape: str) -> None:
    sim = Simulator(clock, Scenario.steady(8, 60_000, seed=5, history=1800), shape=shape)  # type: ignore[arg-type]
    sim.set_final(sim.calls(until=T0)[-1].id, "failed", at=T0 + 400)
    clock.advance(900)
    now = clock.now()
    for agent in (None, "agt_00001", "agt_00002"):
        for start, end in ((now - 300, now), (now - 1500, now - 600), (T0 - 1800, now)):
            assert sim.settled_counts(agent, start, end) == brute_settled(sim, agent, start, end)
    for t0, t1 in ((now - 15, now), (now - 600, now - 540), (T0 - 60, T0 + 60)):
        assert sim.changed_between(t0, t1) == brute_changed(sim, t0, t1)
    seen = Counter(s.outcome for s in sim.calls())
    total = sum(seen.values())
    assert 0.62 < seen["completed"] / total < 0.78 and 0.05 < seen["failed"] / total < 0.12


def test_generation_is_deterministic_and_independent_of_how_time_moves() -> None:
    def run(seed: int, steps: list[float]) -> list[CallSpec]:
        clock = FakeClock(T0)
        sim = Simulator(clock, Scenario.steady(5, 50_000, seed=seed, history=600))
        for step in steps:
            clock.advance(step)
            sim.count_calls()
        return sim.calls()

    jump = run(11, [1200])
    assert jump == run(11, [1.5] * 800)
    assert jump != run(12, [1200])
    assert len(jump) == pytest.approx(50_000 / 86400 * 1800, rel=0.15)
    assert all(a.created_at <= b.created_at for a, b in itertools.pairwise(jump))


def test_served_pages_are_identical_for_a_seed() -> None:
    bodies = []
    for _ in range(2):
        sim = Simulator(FakeClock(T0), Scenario.demo(seed=3), keys=(KEY,))
        with serve(sim) as running, httpx.Client(verify=False) as raw:
            bodies.append(raw.get(f"{running.url}/calls?limit=100&page=2", headers=AUTH).text)
    assert bodies[0] == bodies[1] and '"total":' in bodies[0]


def test_demo_scenario_degrades_one_agent_and_backfills_cheaply(clock: FakeClock) -> None:
    sim = Simulator(clock, Scenario.demo(), keys=(KEY,))
    assert len(sim.agent_ids) == 6
    assert {sim.vocab_of(a) for a in sim.agent_ids} == {"underscore", "hyphen"}
    support = sim.agent_info("agt_support_02")
    assert support is not None and support.title == "Customer Support Bot"
    assert all(s.ring <= 10 and s.talk_seconds <= 300 for s in sim.calls())
    assert math.ceil(sim.count_calls() / 100) < 20  # backfill pages at limit=100
    clock.advance(60)
    bad = Counter(
        s.outcome
        for s in sim.calls()
        if s.agent_id == "agt_support_02" and T0 + 15 <= s.created_at < T0 + 40
    )
    good = Counter(
        s.outcome for s in sim.calls() if s.agent_id == "agt_support_02" and s.created_at < T0
    )
    assert bad["failed"] / sum(bad.values()) > 0.5
    assert good["failed"] / sum(good.values()) < 0.2


def test_diurnal_rate_peaks_near_twice_the_mean() -> None:
    profile = AgentProfile("agt", 60.0)
    scenario = Scenario((profile,), seed=1, diurnal=True, history=0)
    peak_start = T0 - T0 % 86400 + 14 * 3600  # 14:00 UTC that day
    counts = []
    for start in (peak_start, peak_start + 12 * 3600):
        clock = FakeClock(start)
        sim = Simulator(clock, scenario)
        clock.advance(1800)
        counts.append(sim.count_calls())
    assert counts[0] > 1.6 * 1800 and counts[1] < 0.4 * 1800


def test_validation_and_cli_parser() -> None:
    with pytest.raises(ValueError):
        AgentProfile("agt", 1.0, outcomes={"exploded": 1.0})
    with pytest.raises(ValueError):
        CallSpec("x", "agt", T0, "teleported")
    with pytest.raises(ValueError):
        Simulator(FakeClock(T0), shape="v9")  # type: ignore[arg-type]
    sim = Simulator(FakeClock(T0))
    sim.add_call("agt", T0, call_id="dup")
    with pytest.raises(ValueError):
        sim.add_call("agt", T0, call_id="dup")
    with pytest.raises(ValueError):
        sim.inject("meteor")  # type: ignore[arg-type]
    args = build_parser().parse_args(
        ["--listen", "0.0.0.0:9000", "--scenario", "steady", "--key", "k", "--shape", "bare"]
    )
    assert (args.listen, args.scenario, args.key, args.shape) == (
        ("0.0.0.0", 9000),
        "steady",
        ["k"],
        "bare",
    )
    assert now_ms(T0 + 0.0015) == to_ms(T0) + 1


# ---- the kind scenario is unchanged ------------------------------------------------------


def _fingerprint(scenario: Scenario, shape: str, advance: float) -> str:
    clock = FakeClock(T0)
    sim = Simulator(clock, scenario, keys=(KEY,), shape=shape, rate_limit=None)  # type: ignore[arg-type]
    clock.advance(advance)
    h = hashlib.sha256()
    for s in sim.calls():
        h.update(repr((s.id, s.agent_id, s.created_at, s.outcome, s.ring, s.talk)).encode())
    for query in (
        "limit=100&page=3",
        "limit=100&status=in-progress",
        "limit=50&status=no_answer",
        "limit=100&agent_id=agt_00001",
    ):
        h.update(sim.handle("GET", "/v1/calls", query, f"Bearer {KEY}").body)
    h.update(repr(sorted(sim.settled_counts(None, T0 - 600, T0 + advance).items())).encode())
    h.update(repr(sim.changed_between(T0, T0 + 60)).encode())
    return h.hexdigest()[:16]


@pytest.mark.slow
def test_kind_scenarios_serve_exactly_what_they_served_before_realistic_traffic() -> None:
    """Golden fingerprints of calls, pages and ground truth, computed with the simulator as
    it was before realistic traffic existed (commit 24829f1): the published benchmark
    figures of the kind scenario reproduce."""
    steady = Scenario.steady(40, 300_000, 3, diurnal=True, history=1800)
    small = Scenario.steady(8, 60_000, seed=5, history=1800)
    assert _fingerprint(steady, "v1", 1800) == "b0965d1b7b3e5ab0"
    assert _fingerprint(small, "bare", 900) == "a827f8119845e54a"
    assert _fingerprint(small, "v2", 900) == "03ed0f86a1412aa7"
    assert _fingerprint(Scenario.demo(), "v1", 60) == "444666cd4e44eb5c"


# ---- realistic traffic -------------------------------------------------------------------


def realistic_sim(
    agents: int = 40,
    calls_per_day: float = 200_000,
    seed: int = 1,
    *,
    history: float = 3600,
    advance: float = 3600,
    **kw: Any,
) -> tuple[Simulator, FakeClock]:
    clock = FakeClock(T0)
    scenario = Scenario.realistic(agents, calls_per_day, seed, history=history, **kw)
    sim = Simulator(clock, scenario, keys=(KEY,), forbidden_keys=(RO_KEY,), rate_limit=None)
    clock.advance(advance)
    return sim, clock


@pytest.mark.slow
def test_talk_times_are_heavy_tailed_with_one_percent_over_30_minutes() -> None:
    params = RealisticParams(max_call_durations=((10800, 1.0),), bursts=None)
    assert lognormal_share_over(params.talk_median, params.talk_sigma, 1800) == pytest.approx(0.01)
    sim, _ = realistic_sim(4, 1_000_000, 2, history=0, advance=2.5 * 3600, params=params)
    talks = [s.talk for s in sim.calls() if s.outcome == "completed"]
    assert len(talks) > 40_000
    over_30m = sum(t > 1800 for t in talks) / len(talks)
    assert 0.007 < over_30m < 0.013
    assert sorted(talks)[len(talks) // 2] == pytest.approx(150, rel=0.08)
    assert 2 <= sum(t > 7200 for t in talks) <= 40  # "a few over 2 h" (expected ~8)
    assert max(talks) <= 10800


@pytest.mark.slow
def test_calls_respect_each_agents_call_limits() -> None:
    sim, _ = realistic_sim(60, 400_000, 4)
    limits = {a: sim.agent_info(a) for a in sim.agent_ids}
    scenario = sim.scenario
    assert scenario is not None
    over_30m: set[str] = set()
    no_answer_rings: list[float] = []
    for s in sim.calls():
        p = scenario.profile(s.agent_id)
        assert p.max_call_duration is not None and p.ring_limit is not None
        assert s.talk_seconds <= p.max_call_duration
        assert s.ring <= p.ring_limit
        if s.outcome == "no_answer":
            no_answer_rings.append(s.ring / p.ring_limit)
        if s.talk_seconds > 1800:
            over_30m.add(s.agent_id)
        info = limits[s.agent_id]
        assert info is not None
        if info.max_call_duration_sec is not None:  # what /agents2 says is what calls obey
            assert info.max_call_duration_sec == p.max_call_duration
    assert over_30m and all(scenario.profile(a).max_call_duration > 1800 for a in over_30m)  # type: ignore[operator]
    assert min(no_answer_rings) > 0.95  # unanswered calls ring to the agent's ring limit
    spread = {p.max_call_duration for p in scenario.agents}
    rings = {p.ring_limit for p in scenario.agents}
    assert min(spread) == 300 and max(spread) >= 3600  # type: ignore[type-var]
    assert all(20 <= r <= 45 for r in rings)  # type: ignore[operator]


@pytest.mark.slow
def test_volumes_are_zipf_like_and_outcome_mixes_differ_by_agent() -> None:
    sim, _ = realistic_sim(500, 500_000, 5, history=0, advance=2 * 3600, diurnal=False)
    per_agent = Counter(s.agent_id for s in sim.calls())
    scenario = sim.scenario
    assert scenario is not None
    callers = [a.agent_id for a in scenario.agents[:500]]
    volumes = sorted((per_agent[a] for a in callers), reverse=True)
    total = sum(volumes)
    assert 0.25 < sum(volumes[:5]) / total < 0.45  # top 1% (Zipf 1: 34%)
    assert sum(volumes[250:]) / total < 0.16  # bottom half (Zipf 1: 10%)
    # normal rates spread from a few percent to ~40% by outcome across agents
    no_answer = [a.outcomes["no_answer"] / sum(a.outcomes.values()) for a in scenario.agents]
    failed = [a.failed_share for a in scenario.agents]
    assert min(no_answer) < 0.06 and max(no_answer) > 0.35
    assert min(failed) < 0.025 and max(failed) > 0.05
    # the busiest agents' realised no-answer share follows their own profile
    for agent_id, n in per_agent.most_common(3):
        profile = scenario.profile(agent_id)
        want = profile.outcomes["no_answer"] / sum(profile.outcomes.values())
        got = sum(1 for s in sim.calls() if s.agent_id == agent_id and s.outcome == "no_answer") / n
        assert got == pytest.approx(want, abs=4 * math.sqrt(want * (1 - want) / n) + 0.005)


@pytest.mark.slow
def test_campaign_bursts_run_at_ten_times_the_agents_rate() -> None:
    bursts = Bursts(per_agent_per_day=24.0, multiplier=10.0, minutes=(3.0, 6.0))
    params = RealisticParams(bursts=bursts)
    sim, clock = realistic_sim(
        20, 100_000, 6, history=0, advance=6 * 3600, diurnal=False, params=params
    )
    records = sim.bursts()
    assert len(records) == pytest.approx(20 * 24 / 4, rel=0.3)  # 6 h of 24 a day each
    assert all(3 * 60 <= r.end - r.start <= 6 * 60 for r in records)
    scenario = sim.scenario
    assert scenario is not None
    calls = sim.calls()

    def overlaps(r: BurstRecord) -> bool:
        return any(
            o is not r and o.agent_id == r.agent_id and o.start < r.end and r.start < o.end
            for o in records
        )

    alone = [r for r in records if not overlaps(r) and r.end <= clock.now()]
    assert len(alone) > 60
    inside = expected_base = 0.0
    for r in alone:
        profile = scenario.profile(r.agent_id)
        inside += sum(
            1 for s in calls if s.agent_id == r.agent_id and r.start <= s.created_at < r.end
        )
        expected_base += profile.calls_per_minute * (r.end - r.start) / 60.0
    assert inside / expected_base == pytest.approx(10.0, rel=0.15)
    # the day's total stays the requested rate: bursts are taken out of the mean rate
    assert len(calls) == pytest.approx(100_000 / 4, rel=0.1)


@pytest.mark.slow
def test_failures_after_answer_are_failed_calls_that_ended_after_a_conversation(
    clock: FakeClock,
) -> None:
    scenario = Scenario.realistic(30, 300_000, 7, history=3600)
    sim = Simulator(clock, scenario, keys=(KEY,), rate_limit=None)
    specs = sim.calls()
    dropped = [s for s in specs if s.outcome == "dropped" and s.settled_at <= clock.now()]
    failed = [s for s in specs if s.outcome in ("failed", "dropped") and s.settled_at <= T0]
    assert sum(s.outcome == "dropped" for s in failed) / len(failed) == pytest.approx(
        0.35, abs=0.07
    )
    assert all(s.talk_seconds >= 1 for s in dropped)
    with serve(sim) as running, httpx.Client(base_url=running.url, headers=AUTH) as http:
        seen = {}
        for page in itertools.count(1):
            items = data(http.get("/calls", params={"limit": 100, "page": page}))
            seen.update({i["id"]: i for i in items})
            if len(items) < 100:
                break
    checked = 0
    for s in dropped:
        item = seen[s.id]
        assert item["status"] == "failed"
        created = item["created_at"]
        ended = item["ended_at"]
        assert ended == iso(to_ms(s.settled_at)) and ended > created
        assert item["duration_seconds"] == s.duration > 0
        assert sim.truth_of(s.id).outcome == "failed"  # type: ignore[union-attr]
        checked += 1
    assert checked > 20


@pytest.mark.parametrize("shape", ["v1", "v2", "bare"])
@pytest.mark.slow
def test_every_served_call_parses_to_its_ground_truth_incl_hangup_reasons(shape: str) -> None:
    """End to end over loopback: what the simulator serves (all vocabularies, hangup with
    reasons, drops after answer) is what the real parser concludes, call by call."""
    clock = FakeClock(T0)
    scenario = Scenario.realistic(40, 400_000, 8, history=1800)
    sim = Simulator(clock, scenario, keys=(KEY,), rate_limit=None, shape=shape)  # type: ignore[arg-type]
    clock.advance(120)
    parsed = {}
    reasons: Counter[str] = Counter()
    with serve(sim) as running, httpx.Client(base_url=running.url, headers=AUTH) as http:
        for page in itertools.count(1):
            r = http.get("/calls", params={"limit": 100, "page": page})
            assert r.status_code == 200
            body = r.json()
            items = body if isinstance(body, list) else body["data"]
            for item in items:
                if item["status"] == "hangup":
                    reasons[item.get("hangup_reason", "")] += 1
            got = parse_page(r.content)
            assert got.invalid == 0
            parsed.update({c.id: c for c in got.calls})
            if len(items) < 100:
                break
    assert len(parsed) == sim.count_calls()
    classes = StatusClasses()
    now = clock.now()
    settled = 0
    for cid, call in parsed.items():
        truth = sim.truth_of(cid)
        assert truth is not None
        if truth.settled_at <= now:
            assert call.status == truth.outcome, (cid, call, truth)
            assert classes.classify(call.status) != UNKNOWN
            settled += 1
        else:
            assert call.status in classes.pending
    assert settled > 1000
    if shape != "bare":  # the bare shape has its own spelling (ended + end_reason)
        assert {"user_unreachable", "sip_auth_failed", "user_busy", "unknown", ""} <= set(reasons)


@pytest.mark.slow
def test_hangup_calls_count_in_the_denominator() -> None:
    sim, clock = realistic_sim(40, 400_000, 9)
    truth = sim.settled_counts(None, T0, clock.now())
    assert truth["hangup"] > 0
    assert "hangup" in StatusClasses().denominator


def test_realistic_generation_is_deterministic_and_independent_of_how_time_moves() -> None:
    params = RealisticParams(bursts=Bursts(per_agent_per_day=40.0))

    def run(seed: int, steps: list[float]) -> list[CallSpec]:
        clock = FakeClock(T0)
        sim = Simulator(clock, Scenario.realistic(15, 80_000, seed, history=600, params=params))
        for step in steps:
            clock.advance(step)
            sim.count_calls()
        return sim.calls()

    jump = run(21, [2400])
    assert len(jump) > 1000
    assert jump == run(21, [7.0] * 342 + [6.0])
    assert jump != run(22, [2400])
    assert all(a.created_at <= b.created_at for a, b in itertools.pairwise(jump))
    assert len({s.id for s in jump}) == len(jump)


@pytest.mark.slow
def test_degradations_of_three_sizes_change_only_the_degraded_agent() -> None:
    base = Scenario.realistic(30, 300_000, 10, history=0, diurnal=False)
    busiest = max(base.agents, key=lambda a: a.calls_per_minute)
    sizes = [
        Degradation("hard", busiest.agent_id, start=600, duration=1800),
        Degradation("medium", start=None, duration=1200, within=3600),
        Degradation("soft", busiest.agent_id, start=3000, duration=1800),
    ]
    degraded = base.degrade(sizes)
    hard, medium, soft = degraded.injected
    on_clock = Simulator(FakeClock(T0), degraded).injected
    assert (on_clock[0].start, on_clock[0].end) == (T0 + 600, T0 + 2400)
    assert (hard.failed_share, medium.failed_share) == (0.6, 0.25)
    assert soft.failed_share == pytest.approx(2 * busiest.failed_share)
    assert medium.agent_id in base.agent_ids and 0 <= medium.start <= 2400
    assert degraded.degrade([]).injected == degraded.injected

    def calls(scenario: Scenario) -> list[CallSpec]:
        clock = FakeClock(T0)
        sim = Simulator(clock, scenario)
        clock.advance(4800)
        return sim.calls()

    before, after = calls(base), calls(degraded)
    assert [(s.id, s.agent_id, s.created_at) for s in before] == [
        (s.id, s.agent_id, s.created_at) for s in after
    ]
    touched = {hard.agent_id, medium.agent_id}
    assert [s for s in before if s.agent_id not in touched] == [
        s for s in after if s.agent_id not in touched
    ]

    def failed_share(agent: str, start: float, end: float) -> tuple[float, int]:
        window = [s for s in after if s.agent_id == agent and T0 + start <= s.created_at < T0 + end]
        n = sum(s.outcome in ("failed", "dropped") for s in window)
        return n / len(window), len(window)

    for injected in (hard, soft):
        share, n = failed_share(injected.agent_id, injected.start, injected.end)
        tol = 4 * math.sqrt(injected.failed_share * (1 - injected.failed_share) / n)
        assert share == pytest.approx(injected.failed_share, abs=tol)
    share, n = failed_share(busiest.agent_id, 0, 600)
    assert share < 0.2


def test_latency_is_drawn_per_request_and_taken_on_the_fake_clock(clock: FakeClock) -> None:
    latency = Latency(0.1, 0.3, 0.5, seed=4)
    sim = Simulator(clock, keys=(KEY,), latency=latency)
    sim.add_call("agt", T0 + 0.05, call_id="soon")
    first = sim.handle("GET", "/v1/calls", "", f"Bearer {KEY}")
    assert first.status == 200 and b"soon" not in first.body  # answered as of its arrival
    assert clock.now() > T0 + 0.1
    for _ in range(199):
        sim.handle("GET", "/v1/calls", "", f"Bearer {KEY}")
    drawn = [r.latency for r in sim.requests]
    assert all(0.1 <= d <= 0.5 for d in drawn)
    assert clock.now() == pytest.approx(T0 + sum(drawn))
    assert sorted(drawn)[100] == pytest.approx(0.3, abs=0.03)
    again = Simulator(FakeClock(T0), keys=(KEY,), latency=latency)
    for _ in range(200):
        again.handle("GET", "/v1/calls", "", f"Bearer {KEY}")
    assert [r.latency for r in again.requests] == drawn
    with pytest.raises(ValueError, match="FakeClock"):
        Simulator(SystemClock(), latency=latency)
    with pytest.raises(ValueError):
        Latency(0.5, 0.3, 0.1)


def test_latency_over_loopback_moves_the_clock_once_per_request(clock: FakeClock) -> None:
    sim = Simulator(clock, Scenario.realistic(5, 10_000, 1), keys=(KEY,), latency=Latency())
    with serve(sim) as running, httpx.Client(base_url=running.url, headers=AUTH) as http:
        for path in ("/calls", "/agents2", "/calls"):
            assert http.get(path).status_code == 200
    assert clock.now() == pytest.approx(T0 + sum(r.latency for r in sim.requests))
    assert len(sim.requests) == 3


def test_quiet_periods_stop_one_agents_calls_and_nothing_else() -> None:
    def run(quiet: tuple[tuple[float, float], ...]) -> list[CallSpec]:
        profiles = (
            AgentProfile("agt_a", 30.0, quiet=quiet),
            AgentProfile("agt_b", 30.0),
        )
        clock = FakeClock(T0)
        sim = Simulator(clock, Scenario(profiles, seed=3, history=0))
        clock.advance(1800)
        return sim.calls()

    def without_ids(specs: list[CallSpec], agent: str) -> list[tuple[float, str, float, float]]:
        # ids follow the order of all calls, so they shift; the calls themselves do not
        return [(s.created_at, s.outcome, s.ring, s.talk) for s in specs if s.agent_id == agent]

    calm, quiet = run(()), run(((600.0, 1200.0),))
    assert not [s for s in quiet if s.agent_id == "agt_a" and T0 + 600 <= s.created_at < T0 + 1200]
    assert without_ids(calm, "agt_b") == without_ids(quiet, "agt_b")
    assert without_ids(calm, "agt_a")[:50] == without_ids(quiet, "agt_a")[:50]
    assert sum(s.agent_id == "agt_a" for s in quiet) < sum(s.agent_id == "agt_a" for s in calm)


# ---- ground truth ------------------------------------------------------------------------


@pytest.mark.slow
def test_realistic_ground_truth_equals_a_brute_force_recount() -> None:
    sim, clock = realistic_sim(10, 60_000, 11, history=2 * 3600, advance=1800)
    sim.truth_windows([60]).advance(T0)  # builds the settle index ...
    a_call = sim.calls(until=T0)[-1]
    sim.set_final(a_call.id, "failed", at=T0 + 700)  # ... which an edit then rebuilds
    specs = sim.calls(until=clock.now() + 3600)  # incl. calls not created yet
    now = clock.now()

    def observed(s: CallSpec) -> str:
        return observed_outcome(s.outcome, sim.vocab_of(s.agent_id) or "underscore", sim.shape)

    def brute(start: float, end: float) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        for s in specs:
            if start < s.settled_at <= end:
                out.setdefault(s.agent_id, Counter())[observed(s)] += 1
        return out

    for start, end in ((now - 300, now), (now - 3600, now - 600), (T0 - 7200, now)):
        assert sim.settled_by_agent(start, end) == brute(start, end)
        want = sum(1 for s in specs if start < s.settled_at <= end)
        assert sim.count_settled(start, end) == want
        assert sim.settled_call_bound(start, end) == want / 100
        listed = sim.settled_calls(start, end)
        assert [c.settled_at for c in listed] == sorted(c.settled_at for c in listed)
        assert {c.id for c in listed} == {s.id for s in specs if start < s.settled_at <= end}
    windows = sim.truth_windows([300, 900])
    for tick in range(0, 1800, 97):
        t = T0 + tick
        windows.advance(t)
        for w in (300, 900):
            assert windows.counts(w) == brute(t - w, t)
    with pytest.raises(ValueError):
        windows.advance(T0)
    for s in specs[:: max(1, len(specs) // 200)]:
        assert sim.settle_time(s.id) == s.settled_at
        truth = sim.truth_of(s.id)
        assert truth is not None and truth.outcome == observed(s)
    assert sim.truth_of("call_nope") is None and sim.settle_time("call_nope") is None
    assert sim.in_flight() == sum(1 for s in specs if s.created_at <= now < s.settled_at)


@pytest.mark.slow
def test_in_progress_filter_lists_every_call_in_conversation_even_hours_long() -> None:
    params = RealisticParams(max_call_durations=((10800, 1.0),))
    sim, clock = realistic_sim(20, 300_000, 12, history=3 * 3600, advance=600, params=params)
    now = clock.now()
    for spelling in ("in-progress", "in_progress"):
        got: list[str] = []
        for page in itertools.count(1):
            r = sim.handle(
                "GET", "/v1/calls", f"limit=100&page={page}&status={spelling}", f"Bearer {KEY}"
            )
            items = msgspec.json.decode(r.body)["data"]
            got.extend(i["id"] for i in items)
            if len(items) < 100:
                break
        live = [s for s in sim.calls() if s.status_at(now) == "in_progress"]
        want = [s.id for s in sorted(live, key=lambda s: (s.created_at, s.id), reverse=True)]
        assert got == want
        assert any(now - s.created_at > 3600 for s in live)


# ---- GET /agents2 ------------------------------------------------------------------------


def agents_page(http: httpx.Client, **params: Any) -> dict[str, Any]:
    r = http.get("/agents2", params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body, dict)
    return body


def test_agents2_pages_the_directory_in_the_documented_shape(clock: FakeClock) -> None:
    scenario = Scenario.realistic(30, 100_000, 13)
    sim = Simulator(clock, scenario, keys=(KEY,), forbidden_keys=(RO_KEY,))
    with serve(sim) as running, httpx.Client(base_url=running.url, headers=AUTH) as http:
        first = agents_page(http)
        assert first["meta"] == {"page": 1, "limit": 20, "total": 32, "totalPages": 2}
        listed = []
        for page in (1, 2, 3, 4, 5):
            body = agents_page(http, limit=7, page=page)
            assert body["meta"]["totalPages"] == 5
            listed.extend(body["data"])
        assert agents_page(http, limit=7, page=6)["data"] == []
        one = http.get(f"/agents2/{listed[3]['id']}").json()
        missing = http.get("/agents2/agt_nobody")
    assert one == listed[3]
    assert missing.status_code == 404 and missing.json()["statusCode"] == 404
    assert [a["id"] for a in listed] == [a for a, _ in sim.directory()] == scenario.agent_ids
    by_id = {a["id"]: a for a in listed}
    for agent_id, info in sim.directory():
        item = by_id[agent_id]
        version = item["current_version"]
        assert item["is_deleted"] == info.deleted
        assert version["is_published"] == info.published
        assert version.get("title") == info.title
        limits = version["telephony"].get("call_limits", {})
        assert limits.get("max_call_duration_sec") == info.max_call_duration_sec
        assert limits.get("ring_duration_sec") == info.ring_duration_sec
    assert sum(a["is_deleted"] for a in listed) == 1
    assert sum(not a["current_version"]["is_published"] for a in listed) == 1
    titles = {a["current_version"].get("title") for a in listed}
    assert set(HOSTILE_TITLES) <= titles  # verbatim through JSON, unicode and all
    assert any(len(t or "") > 500 for t in titles) and "<!channel>" in titles


def test_agents2_camel_case_without_total_pages_and_bad_parameters(clock: FakeClock) -> None:
    sim = Simulator(
        clock,
        Scenario.steady(3, 1000, 1),
        keys=(KEY,),
        agents_shape="camel",
        agents_total_pages=False,
    )
    sim.add_call("agt_explicit", T0 - 60, call_id="x1")
    sim.set_agent("agt_silent", AgentInfo("Silent <b>", published=False, max_call_duration_sec=900))
    with serve(sim) as running, httpx.Client(base_url=running.url, headers=AUTH) as http:
        body = agents_page(http, limit=100)
        assert http.get("/agents2", params={"limit": 101}).status_code == 400
        assert http.get("/agents2", params={"page": 0}).status_code == 400
        assert http.get("/agents2/a/b").status_code == 404
    assert body["meta"] == {"page": 1, "limit": 100, "total": 5}
    by_id = {a["id"]: a for a in body["data"]}
    steady = by_id["agt_00000"]
    assert {"isDeleted", "currentVersion", "createdAt"} <= set(steady)
    limits = steady["currentVersion"]["telephony"]["callLimits"]
    assert limits["maxCallDurationSec"] == 480 and limits["ringDurationSec"] == 40
    assert by_id["agt_explicit"]["currentVersion"]["title"] == "Agent agt_explicit"
    assert "callLimits" not in by_id["agt_explicit"]["currentVersion"]["telephony"]
    silent = by_id["agt_silent"]["currentVersion"]
    assert silent["isPublished"] is False and silent["title"] == "Silent <b>"
    sim.set_agent("agt_silent", deleted=True)
    info = sim.agent_info("agt_silent")
    assert info is not None and info.deleted and info.title == "Silent <b>"
    assert sim.agent_info("agt_unknown") is None


def test_agents2_forbidden_key_not_deployed_garbage_and_shared_rate_limit(
    clock: FakeClock, raw: httpx.Client
) -> None:
    sim = Simulator(
        clock, Scenario.steady(3, 1000, 1), keys=(KEY,), forbidden_keys=(RO_KEY,), rate_limit=3
    )
    with serve(sim) as running:
        url = f"{running.url}/agents2"
        forbidden = raw.get(url, headers={"Authorization": f"Bearer {RO_KEY}"})
        assert forbidden.status_code == 403
        assert forbidden.json()["message"] == "This API key cannot read agents on this workspace"
        assert raw.get(url).status_code == 401
        assert raw.get(url, headers=AUTH).status_code == 200
        assert raw.get(f"{running.url}/calls", headers=AUTH).status_code == 200
        assert raw.get(f"{running.url}/calls", headers=AUTH).status_code == 200
        limited = raw.get(url, headers=AUTH)  # the calls API and agents2 share the key's limit
        assert limited.status_code == 429 and "Retry-After" in limited.headers
        sim.rate_limit = None
        sim.agents_api = "404"
        gone = raw.get(url, headers=AUTH)
        assert gone.status_code == 404 and gone.json()["message"] == "Cannot GET /v1/agents2"
        assert raw.get(f"{running.url}/calls", headers=AUTH).status_code == 200
        sim.agents_api = "garbage"
        garbage = raw.get(url, headers=AUTH)
        assert garbage.status_code == 200
        assert not all(isinstance(a, dict) for a in garbage.json()["data"])
        sim.agents_api = "on"
        sim.inject("bad_items")
        sim.inject("html")
        mixed = raw.get(url, headers=AUTH).json()["data"]
        assert raw.get(url, headers=AUTH).headers["content-type"].startswith("text/html")
    good = [
        a
        for a in mixed
        if isinstance(a.get("id"), str)
        and isinstance(a.get("current_version"), dict)
        and a["id"].startswith("agt_0")
    ]
    assert len(good) == 3 and len(mixed) > 3
    assert [r.path for r in sim.requests][:2] == ["/v1/agents2", "/v1/agents2"]


def test_realistic_cli_runs_the_simulator_alone() -> None:
    args = build_parser().parse_args(
        ["--scenario", "realistic", "--agents", "50", "--agents-shape", "camel"]
    )
    assert (args.scenario, args.agents, args.agents_shape) == ("realistic", 50, "camel")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dialnexa_watchdog.simulator",
            "--scenario",
            "realistic",
            "--listen",
            "127.0.0.1:0",
            "--history",
            "600",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("DialNexa simulator (realistic"), line
        url = line.rsplit(" at ", 1)[1].strip()
        with httpx.Client(headers={"Authorization": "Bearer test-key"}) as http:
            agents = http.get(f"{url}/agents2", params={"limit": 100}).json()
            calls = http.get(f"{url}/calls", params={"limit": 5}).json()
        assert agents["meta"]["total"] == 22  # 20 agents, a deleted one, a draft
        assert len(calls["data"]) == 5
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0
