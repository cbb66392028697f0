"""``backtest`` for a span (or the part of it) the daemon did not record: the calls come from
the API (``backtest/fetch.py``), after an estimate and a confirmation (or ``--yes``), with
progress and an ETA on stderr; then the replay, continued by the recorded history if the
span reaches it."""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..alerts.store.sql import SqlStore
from ..backtest import calls as from_calls
from ..backtest import fetch
from ..backtest.engine import Cycles, recorded_cycles
from ..backtest.report import iso
from ..backtest.runner import RuleSet, backtest
from ..clock import SystemClock
from ..config import Settings
from ..durations import format_duration
from ..history import HistoryReader
from ..ingest.errors import ApiError
from ..model import Call
from ..windows import Windows
from .backtest_out import finish
from .util import PROG


def _dur(seconds: float) -> str:
    return format_duration(max(1, round(seconds)))


def cache_dir(args: argparse.Namespace, settings: Settings) -> Path:
    if args.cache:
        return Path(args.cache)
    state = settings.state.path
    return state.with_name(state.name + ".backtest-cache")


def fetch_and_replay(
    args: argparse.Namespace,
    settings: Settings,
    sets: Sequence[RuleSet],
    store: SqlStore | None,
    bounds: tuple[float, float] | None,
    start: float,
    end: float,
    agents: list[str] | None,
) -> int:
    assert settings.dialnexa.api_key is not None
    recorded_from = bounds[0] if bounds is not None and bounds[0] <= end else None
    api_end = end if recorded_from is None else min(end, recorded_from)
    # calls settling in the longest window before ``start`` were created up to
    # max_call_duration earlier still
    lead = settings.longest_window + settings.poll.max_call_duration
    grid = fetch.chunks(start - lead, api_end)
    clock = SystemClock()
    client = fetch.api_client(settings, clock)
    path = cache_dir(args, settings) / fetch.cache_name(
        settings.dialnexa.base_url, settings.dialnexa.api_key.get_secret_value()
    )
    cache = fetch.PageCache(path)
    try:
        cached = cache.cached()
        todo = [c for c in grid if c[0] not in cached]
        d = settings.dialnexa
        per_second = d.rate_limit / d.rate_limit_period
        if todo:
            try:
                est = fetch.estimate(client, todo, len(grid) - len(todo), per_second)
            except ApiError as exc:
                print(f"{PROG}: cannot list calls: {exc.reason}", file=sys.stderr)
                return 1
            calls = "an unknown number of" if est.calls is None else f"~{est.calls:,}"
            print(
                f"{PROG}: {format_duration(round(api_end - start))} of the span is not recorded; "
                f"listing it from the API: {calls} calls in {est.chunks} chunks "
                f"({est.cached} cached), ~{est.requests:,} requests, ~{_dur(est.seconds)} at "
                f"{d.rate_limit}/{format_duration(d.rate_limit_period)}",
                file=sys.stderr,
            )
            if not args.yes:
                if not sys.stdin.isatty():
                    print(f"{PROG}: not a terminal: add --yes to fetch", file=sys.stderr)
                    return 2
                answer = input("Fetch? [y/N] ").strip().lower()
                if answer not in ("y", "yes"):
                    print(f"{PROG}: not fetched", file=sys.stderr)
                    return 1
            t0 = time.monotonic()
            shown = [-1e9]
            tty = sys.stderr.isatty()

            def progress(p: fetch.Progress) -> None:
                now = time.monotonic()
                if not tty and now - shown[0] < 5.0 and p.done < p.todo:
                    return  # a log, not a terminal: a line every 5 s
                shown[0] = now
                left = (p.todo - p.done) * (now - t0) / max(1, p.done)
                line = (
                    f"  {p.done}/{p.todo} chunks, {p.calls:,} calls, {p.requests:,} requests, "
                    f"ETA {_dur(left)}"
                )
                end = "" if tty and p.done < p.todo else "\n"
                print(("\r" if tty else "") + line, end=end, file=sys.stderr, flush=True)

            try:
                prog = fetch.fetch(
                    client,
                    cache,
                    todo,
                    settled_before=clock.now() - settings.poll.max_call_duration,
                    on_chunk=progress,
                )
            except fetch.FetchStopped as exc:
                p = exc.progress
                print(
                    f"{PROG}: fetch stopped listing calls created "
                    f"{iso(exc.chunk[0])} .. {iso(exc.chunk[1])}: {exc}. "
                    f"Kept {p.done} finished chunk(s) ({p.calls:,} calls) in {path}; run the "
                    "same command again to resume",
                    file=sys.stderr,
                )
                return 1
            except KeyboardInterrupt:
                print(
                    f"\n{PROG}: interrupted; every finished chunk is kept in {path} (none half "
                    "written): run the same command again to resume",
                    file=sys.stderr,
                )
                return 130
            fresh = prog.fresh
        else:
            fresh = {}
            print(f"{PROG}: all {len(grid)} chunks are cached: no request", file=sys.stderr)
        listed: dict[str, Call] = {}
        for s, _ in grid:
            for c in fresh[s] if s in fresh else cache.get(s):
                listed[c.id] = c
    finally:
        cache.close()
        client.close()
    only = None if agents is None else set(agents)
    chosen = [c for c in listed.values() if only is None or c.agent_id in only]
    settled = from_calls.settled(chosen, settings.status_classes)
    last = api_end if recorded_from is None else recorded_from - 1e-6
    times = from_calls.steps(start, last, settings.poll.interval)

    def cycles(windows: Windows) -> Cycles:
        api = from_calls.api_cycles(settled, windows, times)
        if recorded_from is None or store is None:
            return api
        recorded = recorded_cycles(HistoryReader(store), windows, recorded_from, end)
        return itertools.chain(api, recorded)

    source = "api" if recorded_from is None else "api+recorded"
    outcome = backtest(settings, sets, cycles, source=source, agents=agents)
    return finish(args, outcome.report, settings, cycles, agents)
