"""Day-one failures seen through the whole daemon (issue 9): a poll stuck in a request, a key
that never works, and what the operator sees (metric, /readyz, Slack)."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from dialnexa_watchdog.app import App, build
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.config import load_settings
from dialnexa_watchdog.simulator import Simulator, serve
from fakeslack import CHANNEL_ID, TOKEN, FakeSlack
from hostile_api import HostileApi, Reply, Request, page
from support import KEY, T0


def make_app(url: str, tmp: Path, clock: FakeClock, **extra: object) -> App:
    overrides = {
        "dialnexa.base_url": url,
        "dialnexa.api_key": KEY,
        "dialnexa.timeout": "5m",  # a hung request is not cut short during the test
        "poll.interval": "10s",
        "alerts.stale_after": "30s",
        "metrics.listen": "127.0.0.1:0",
        "state.path": str(tmp / "state.sqlite3"),
        **extra,
    }
    settings = load_settings(None, overrides=overrides, environ={})
    return build(settings, clock, stream=io.StringIO())


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.close()


def test_a_poll_stuck_in_a_request_shows_up_0_and_still_pages_stale(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    hung = threading.Event()
    answered: list[int] = []

    def responder(req: Request) -> Reply:
        if req.path.endswith("/agents2"):  # an API without the agent directory
            return Reply(404, b'{"statusCode": 404, "message": "Cannot GET /v1/agents2"}')
        if not answered:  # the backfill: an empty, complete page
            answered.append(1)
            return Reply(200, page([], total_pages=1))
        hung.set()
        return Reply(200, b"", content_length=5000, hang_after_headers=True)  # never completes

    with HostileApi(responder) as api:
        app = make_app(api.url, tmp_path, clock)
        wd = app.daemon
        registry = app.registry
        assert wd.backfill().ok
        assert registry.get_sample_value("dialnexa_up") == 1
        poll = threading.Thread(target=wd.poll_once, daemon=True)
        poll.start()
        assert hung.wait(10), "the poll never reached the hanging server"
        clock.advance(60)  # the poll thread is stuck inside the request all along
        wd.tick()  # the stale check's own timer
        wd.deliver()
        assert poll.is_alive()
        assert registry.get_sample_value("dialnexa_up") == 0
        ok, [reason] = wd.readiness()
        # (the client may have given up on the hung request and retried meanwhile)
        assert not ok and reason.startswith("no successful poll for 6"), reason
        firing = {"rule": "stale", "agent_id": "*", "severity": "critical"}
        assert registry.get_sample_value("dialnexa_alert_firing", firing) == 1
        out = app.alerts.notifier.stream.getvalue()  # type: ignore[union-attr]
        assert "DialNexa data is stale" in out
    poll.join(10)
    assert not poll.is_alive()
    app.close()


def test_a_key_that_never_works_pages_stale_in_slack(tmp_path: Path, slack: FakeSlack) -> None:
    clock = FakeClock(T0)
    sim = Simulator(clock, keys=("another-key",), forbidden_keys=(KEY,))
    with serve(sim) as server:
        app = make_app(
            server.url,
            tmp_path,
            clock,
            **{"slack.token": TOKEN, "slack.channel": CHANNEL_ID, "slack.api_url": slack.api_url},
        )
        wd = app.daemon
        for _ in range(6):  # one minute of failing polls, the timer ticking between them
            report = wd.poll_once()
            assert not report.ok
            wd.tick()
            wd.deliver()
            clock.advance(10)
        wd.tick()
        wd.deliver()
        app.close()
    [post] = slack.posts()
    text = json.dumps(post.params, ensure_ascii=False)
    assert "DialNexa data is stale" in text
    assert "cannot read calls on this workspace" in text  # our own words for a 403
    assert all(KEY not in r.body for r in slack.requests)
    assert not wd.status.backfilled  # it never polled successfully, and still paged
