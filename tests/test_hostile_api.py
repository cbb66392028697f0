"""The client against a hostile List Calls server (tests/hostile_api.py), one test per attack."""

from __future__ import annotations

import gzip
import io
import logging
from collections import Counter
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from dialnexa_watchdog.clock import FakeClock
from dialnexa_watchdog.ingest.client import (
    ERROR_KINDS,
    MAX_RESPONSE_BYTES,
    ApiClient,
    ApiError,
    Listing,
)
from dialnexa_watchdog.logs import JsonFormatter, TextFormatter
from dialnexa_watchdog.model import Range
from dialnexa_watchdog.redact import Redactor
from hostile_api import (
    HostileApi,
    Reply,
    Request,
    created_in,
    echo_body,
    huge_body,
    item,
    key_forms,
    page,
    refused_url,
)
from pydantic import SecretStr
from support import T0

# a key with characters that URL-encoding and base64 change
HKEY = "sk_live/Zq+8x=Yv&k3y~Q9"
RANGE = Range(T0 - 600, T0)


class Obs:
    def __init__(self) -> None:
        self.codes: Counter[str] = Counter()
        self.invalid = 0

    def request(self, code: str, seconds: float) -> None:
        self.codes[code] += 1

    def invalid_items(self, n: int) -> None:
        self.invalid += n

    def rate_limit_remaining(self, remaining: float) -> None:
        pass


def client(url: str, clock: FakeClock, **kw: object) -> ApiClient:
    kw.setdefault("rng", lambda: 0.5)
    kw.setdefault("redactor", Redactor())  # the client's own; the global one stays untouched
    return ApiClient(url, SecretStr(HKEY), clock, **kw)  # type: ignore[arg-type]


@pytest.fixture
def logs() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """What the client logs, through both formatters, which know no secret themselves: what
    they print is clean only if the client cleaned it."""
    as_json, as_text = io.StringIO(), io.StringIO()
    handlers = []
    for stream, fmt in ((as_json, JsonFormatter(Redactor())), (as_text, TextFormatter(Redactor()))):
        h = logging.StreamHandler(stream)
        h.setFormatter(fmt)
        handlers.append(h)
    logger = logging.getLogger("watchdog")
    old = logger.level
    logger.setLevel(logging.DEBUG)
    for h in handlers:
        logger.addHandler(h)
    yield as_json, as_text
    for h in handlers:
        logger.removeHandler(h)
    logger.setLevel(old)


def leaks(text: str) -> list[str]:
    return [f for f in [HKEY, *key_forms(HKEY)] if f in text]


def fine_page(req: Request) -> Reply:
    t = created_in(req, T0 - 10)
    return Reply(200, page([item("c1", t), item("c2", t)]))


# ---- 1. secrets never leak -------------------------------------------------------------------
@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 500])
@pytest.mark.parametrize("as_json", [True, False])
@pytest.mark.slow
def test_an_api_that_echoes_the_key_leaks_it_nowhere(
    clock: FakeClock, logs: tuple[io.StringIO, io.StringIO], status: int, as_json: bool
) -> None:
    with HostileApi(lambda req: Reply(status, echo_body(req, HKEY, as_json))) as api:
        c = client(api.url, clock, max_retries=1)
        listing = c.list_range(RANGE)
    err = listing.error
    assert err is not None and not listing.complete
    assert err.code == status and err.kind in ERROR_KINDS
    assert err.kind == {401: "auth", 403: "auth", 500: "server_error"}.get(status, "client_error")
    assert f"127.0.0.1:{api.port}" in err.reason or status in (401, 403, 500)
    if status in (400, 422) and as_json:
        assert "invalid request from" in err.reason  # the API's message is kept, cleaned
    # what the daemon does with it: log it plainly and with a traceback
    log = logging.getLogger("watchdog.daemon")
    log.warning("poll failed: %s", err.reason, extra={"error": repr(err)})
    try:
        raise err
    except ApiError:
        log.exception("poll cycle failed")
    as_json_out, as_text_out = logs[0].getvalue(), logs[1].getvalue()
    assert "Traceback" in as_json_out and "Traceback" in as_text_out
    for text in (err.reason, str(err), repr(err), repr(listing), as_json_out, as_text_out):
        assert leaks(text) == []


# ---- 2. every request has an overall deadline ------------------------------------------------
@pytest.mark.slow
def test_a_body_trickled_at_one_byte_a_second_ends_at_the_deadline(clock: FakeClock) -> None:
    body = page([item(f"c{i}", T0 - 10) for i in range(20)])
    obs = Obs()
    with HostileApi(lambda req: Reply(200, body, trickle=1.0)) as api:
        # the deadline guards a real socket: real time (the default timer), a short deadline
        listing = client(api.url, clock, timeout=1.5, max_retries=0, observer=obs).list_range(RANGE)
        sent = api.body_bytes_sent
    assert listing.error is not None and listing.error.kind == "timeout"
    assert "dialnexa.timeout" in listing.error.reason and str(api.port) in listing.error.reason
    assert obs.codes == {"timeout": 1}
    assert sent < len(body) // 2  # cut off mid-body, not read to the end


@pytest.mark.slow
def test_a_server_that_hangs_after_the_headers_times_out(clock: FakeClock) -> None:
    obs = Obs()
    with HostileApi(lambda req: Reply(200, content_length=5000, hang_after_headers=True)) as api:
        c = client(api.url, clock, timeout=0.5, max_retries=2, observer=obs)
        listing = c.list_range(RANGE)
        requests = len(api.requests)
    assert listing.error is not None and listing.error.kind == "timeout"
    assert requests == 3 and obs.codes == {"timeout": 3}  # retried, each one bounded


# ---- 3. never sleep past the next cycle inside a fetch ---------------------------------------
def test_a_long_retry_after_defers_instead_of_sleeping_and_holds_later_cycles(
    clock: FakeClock,
) -> None:
    answers = iter([Reply(429, b"{}", headers=[("Retry-After", "3600")])])

    def responder(req: Request) -> Reply:
        return next(answers, None) or fine_page(req)

    with HostileApi(responder) as api:
        c = client(api.url, clock, max_sleep=30.0)
        first = c.list_range(RANGE)
        assert first.error is not None and first.error.kind == "deferred"
        assert first.error.retry_at == c.hold_until == T0 + 3600
        assert all(s <= 30.0 for s in clock.slept)  # never slept the hour
        assert first.requests == 1 and len(api.requests) == 1
        # the next cycle sends nothing while the hold lasts
        clock.advance(30)
        second = c.list_range(RANGE)
        assert second.error is not None and second.error.kind == "deferred"
        assert second.requests == 0 and len(api.requests) == 1
        # a restarted daemon that persisted hold_until keeps holding
        restarted = client(api.url, clock, max_sleep=30.0)
        restarted.hold(c.hold_until)
        assert restarted.list_range(RANGE).error is not None and len(api.requests) == 1
        clock.set(T0 + 3600)
        third = c.list_range(RANGE)
        assert third.complete and len(third.calls) == 2 and c.hold_until is None
        assert len(api.requests) == 2


def test_a_rate_limit_that_resets_far_ahead_defers_too(clock: FakeClock) -> None:
    def responder(req: Request) -> Reply:
        t = created_in(req, T0 - 10)
        full = page([item(f"p{req.query['page']}_{i}", t) for i in range(100)])
        return Reply(
            200,
            full,
            headers=[
                ("X-RateLimit-Limit", "150"),
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", "900"),
            ],
        )

    with HostileApi(responder) as api:
        c = client(api.url, clock, max_sleep=30.0)
        listing = c.list_range(RANGE)
    assert listing.error is not None and listing.error.kind == "deferred"
    assert len(listing.calls) == 100 and listing.requests == 1  # page 1 kept, page 2 held
    assert c.hold_until == T0 + 900 and all(s <= 30.0 for s in clock.slept)


def test_an_absurd_retry_after_is_capped(clock: FakeClock) -> None:
    with HostileApi(lambda req: Reply(429, b"{}", headers=[("Retry-After", "1e12")])) as api:
        c = client(api.url, clock, max_sleep=30.0, max_hold=3600.0)
        listing = c.list_range(RANGE)
    assert listing.error is not None and listing.error.kind == "deferred"
    assert c.hold_until == T0 + 3600.0


# ---- 4. lone surrogates ----------------------------------------------------------------------
def test_a_lone_surrogate_skips_only_the_item_that_carries_it_where_we_read(
    clock: FakeClock,
) -> None:
    def responder(req: Request) -> Reply:
        t = created_in(req, T0 - 10)
        body = page(
            [
                item("in_metadata", t, metadata={"note": "SURROGATE"}),
                item("in_agent", t, agent="agt_SURROGATE"),
                item("in_phone", t, from_number="+1555RAWBYTES"),
                item("in_status", t, status="failed_SURROGATE"),
                item("plain", t),
            ]
        )
        # a JSON escape msgspec rejects (json.loads accepts it), and raw bytes that are not UTF-8
        body = body.replace(b"SURROGATE", b"\\ud83d").replace(b"RAWBYTES", b"\xff\xfe")
        return Reply(200, body)

    obs = Obs()
    with HostileApi(responder) as api:
        listing = client(api.url, clock, observer=obs).list_range(RANGE)
    assert listing.complete and listing.error is None
    assert sorted(c.id for c in listing.calls) == ["in_metadata", "in_phone", "plain"]
    assert listing.invalid == 2 and obs.invalid == 2 and obs.codes == {"200": 1}


# ---- 5. a 50 MB body -------------------------------------------------------------------------
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "close-delimited"])
def test_a_50_mb_body_is_refused_at_the_limit(clock: FakeClock, declared: bool) -> None:
    size = 50 * 1024 * 1024
    obs = Obs()
    reply = Reply(200, huge_body(size), content_length=size if declared else -1)
    with HostileApi(lambda req: reply) as api:
        listing = client(api.url, clock, observer=obs).list_range(RANGE)
        sent = api.body_bytes_sent
    err = listing.error
    assert err is not None and err.kind == "too_large" and not err.permanent
    assert "max_response_bytes" in err.reason and str(MAX_RESPONSE_BYTES) in err.reason
    assert obs.codes == {"too_large": 1}  # not retried: the same page would be as large
    assert sent < size // 2  # the rest was never read


@pytest.mark.slow
def test_gzip_pages_decode_and_a_gzip_bomb_stops_at_the_limit(clock: FakeClock) -> None:
    good = gzip.compress(page([item("z1", T0 - 10), item("z2", T0 - 10)]))
    bomb = gzip.compress(b'{"data": [{"id": "' + b"0" * (64 * 1024 * 1024) + b'"}]}')
    assert len(bomb) < 100_000  # 64 MiB inflated from under 100 kB
    bodies = iter([good, bomb])
    obs = Obs()
    gz = [("Content-Encoding", "gzip")]
    with HostileApi(lambda req: Reply(200, next(bodies), headers=gz)) as api:
        c = client(api.url, clock, observer=obs, max_response_bytes=1024 * 1024)
        ok = c.list_range(RANGE)
        assert api.requests[0].headers["accept-encoding"] == "gzip"
        bombed = c.list_range(RANGE)
    assert ok.complete and [x.id for x in ok.calls] == ["z1", "z2"]
    assert bombed.error is not None and bombed.error.kind == "too_large"
    assert obs.codes == {"200": 1, "too_large": 1}


# ---- 6. an endless listing -------------------------------------------------------------------
def test_an_endless_listing_stops_at_the_page_cap_and_says_so(
    clock: FakeClock, logs: tuple[io.StringIO, io.StringIO]
) -> None:
    def responder(req: Request) -> Reply:  # every page full and fresh, no totalPages
        t = created_in(req, T0 - 10)
        n = req.query["page"]
        good = [item(f"p{n}_{i}", t) for i in range(90)]
        bad = [item(f"bad{n}_{i}", t, agent="") for i in range(10)]  # 10 invalid per page
        return Reply(200, page(good + bad))

    with HostileApi(responder) as api:
        listing = client(api.url, clock, max_pages=25).list_range(RANGE)
    assert not listing.complete and listing.requests == 25 == len(api.requests)
    assert len(listing.calls) == 25 * 90 and listing.invalid == 250
    err = listing.error
    assert err is not None and err.kind == "page_cap" and "25 pages" in err.reason
    lines = logs[1].getvalue().splitlines()
    # 25 pages of bad items: one line for them (with the count), one for the cap
    assert len(lines) == 2, lines
    assert "missing agent_id" in lines[0] and "count=10" in lines[0]
    assert "cap of 25 pages" in lines[1]


# ---- 7. errors that say what failed ----------------------------------------------------------
def _fail(url: str, clock: FakeClock) -> Listing:
    obs = Obs()
    listing = client(url, clock, max_retries=1, observer=obs).list_range(RANGE)
    assert obs.codes == {"error": 2}  # retried once, counted as connection errors
    return listing


def test_refused_connections_name_the_host(clock: FakeClock) -> None:
    url = refused_url()
    err = _fail(url, clock).error
    port = url.rsplit(":", 1)[1].split("/")[0]
    assert err is not None and err.kind == "refused"
    assert f"127.0.0.1:{port}" in err.reason and "refused" in err.reason


def test_an_unresolvable_host_is_a_dns_failure(clock: FakeClock) -> None:
    err = _fail("http://api.dialnexa.invalid/v1", clock).error
    assert err is not None and err.kind == "dns"
    assert "cannot resolve api.dialnexa.invalid" in err.reason


def test_tls_failures_are_told_apart_and_never_show_credentials(clock: FakeClock) -> None:
    with HostileApi(fine_page) as api:  # plain HTTP where TLS is expected
        url = f"https://user:{quote(HKEY, safe='')}@127.0.0.1:{api.port}/v1?api_key={HKEY}"
        err = _fail(url, clock).error
    assert err is not None and err.kind == "tls"
    assert f"TLS handshake with 127.0.0.1:{api.port} failed" in err.reason
    assert leaks(err.reason + repr(err)) == [] and "user" not in err.reason
