"""The daemon as a service: serve HTTP, run the poll, stale-check and delivery jobs on an
APScheduler, stop cleanly within 5 seconds of SIGTERM."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from . import sdnotify
from .daemon import Watchdog
from .gcpolicy import GcPolicy
from .httpd import make_http_server

log = logging.getLogger("watchdog.daemon")

TICK_SECONDS = 5.0  # how often the stale rule is evaluated
STOP_GRACE = 3.0  # seconds a running poll gets to finish at SIGTERM (the whole stop: < 5 s)


def run(
    wd: Watchdog,
    stop: threading.Event,
    *,
    serve: bool = True,
    until: float | None = None,
    final: bool = True,
) -> int:
    """Serve HTTP (unless ``serve`` is False: a replica's server outlives its daemon),
    backfill, then poll on an APScheduler job until ``stop`` is set. ``final``: the process
    ends with it (systemd is told it is stopping); a replica's term as leader is not."""
    from apscheduler.schedulers.background import BackgroundScheduler

    server = None
    if serve:
        host, port = wd.settings.metrics.host_port
        try:
            server = make_http_server(wd, host, port)
        except OSError as exc:
            log.error("cannot listen on %s: %s", wd.settings.metrics.listen, exc.strerror or exc)
            return 1
        threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
        listen = wd.settings.metrics.listen
        log.info("serving /metrics, /healthz, /readyz", extra={"listen": listen})

    interval = wd.settings.poll.interval
    idle = threading.Event()
    idle.set()
    gc_policy = GcPolicy()  # fewer, cheaper collections while it runs (gcpolicy.py)
    gc_policy.start()

    def job() -> None:
        if stop.is_set():
            return
        idle.clear()
        try:
            wd.poll_once()
            if not gc_policy.frozen and wd.tracker.backfilled:
                gc_policy.started()  # start-up's objects: never traversed again
        except Exception:  # the daemon outlives any single fault
            log.exception("poll cycle failed")
        finally:
            idle.set()

    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        job,
        "interval",
        seconds=interval,
        id="poll",
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(1, int(interval)),
        next_run_time=_utcnow(),
    )
    if wd.alerting is not None:
        scheduler.add_job(
            wd.deliver, "interval", seconds=1, id="deliver", max_instances=1, coalesce=True
        )
        # the stale rule on its own timer: it fires even while a poll is stuck
        scheduler.add_job(
            wd.tick,
            "interval",
            seconds=TICK_SECONDS,
            id="tick",
            max_instances=1,
            coalesce=True,
        )
    scheduler.start()
    try:
        while not stop.is_set():
            if until is not None and time.monotonic() >= until:
                break
            stop.wait(0.2)
    finally:
        stop.set()
        if final:
            sdnotify.stopping()
        scheduler.shutdown(wait=False)
        if not idle.wait(STOP_GRACE):
            log.warning("a poll was still running at shutdown; abandoning it")
        if server is not None:
            server.shutdown()
            server.server_close()
        wd.close()
        gc_policy.stop()  # after the last poll (idle): nothing freezes after this
        log.info("stopped")
    return 0


def _utcnow() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
