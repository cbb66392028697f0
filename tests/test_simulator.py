"""The DialNexa simulator over real loopback HTTP, driven by a FakeClock (no sleeps)."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.simulator import (
    AgentProfile,
    CallSpec,
    RunningServer,
    Scenario,
    Simulator,
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
    sim.release_held()
    sim.inject("disconnect")
    with pytest.raises(httpx.RemoteProtocolError):
        http.get("/calls")
    assert http.get("/calls").status_code == 200
    assert [r.fault for r in sim.requests] == ["timeout", "disconnect", None]
    assert sim.requests[1].status == 0


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
