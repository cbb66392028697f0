"""Several replicas on one PostgreSQL state store (``state.url``): one leads, the others
stand by.

A replica starts as a **standby**: it serves ``/metrics`` (``dialnexa_leader 0`` and the
process metrics, no per-agent series, no ``dialnexa_up``), ``/healthz`` and ``/readyz``
(200, ``ready (another replica leads)``, while its database session works), and every
``CHECK`` seconds tries to take the leader lock (``alerts/store/leader.py``). When it wins,
it builds the whole daemon (``app.build``): the windows and the tracker resume from the
shared recorded history and saved calls (a warm restart, no backfill), the alert states,
incidents and outbox are the shared ones, and its deliveries carry its fencing epoch. It then
leads until it stops (SIGTERM: it releases the lock as it exits, so the next replica takes
over at its next check) or until it loses the lock's session (its ``alive`` round trip
fails, or a claim finds a newer epoch): it stops polling and delivering at once, closes the
daemon, and stands by again.

The HTTP server lives as long as the process, so the port never closes during a change of
role; it serves whichever role is current.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder

from . import sdnotify
from .alerts.store import StateError
from .alerts.store.leader import LeaderLock
from .endpoints import Exposition, Served
from .httpd import make_http_server
from .metrics import leader_gauge
from .readiness import ANOTHER_REPLICA_LEADS, STATE_STORE_FAILING

log = logging.getLogger("watchdog.replica")

CHECK = 2.0  # seconds between a standby's attempts, and between a leader's session checks


class _Exposer:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class Standby:
    """What a standby serves."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        leader_gauge(self.registry, lambda: False)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._metrics = _Exposer(self.registry)
        self.db_ok = True
        self.beat = time.monotonic()

    @property
    def metrics(self) -> Exposition:
        return self._metrics

    def readiness(self) -> tuple[bool, list[str]]:
        if not self.db_ok:
            return False, [STATE_STORE_FAILING]
        return True, [ANOTHER_REPLICA_LEADS]

    def liveness(self) -> bool:
        return time.monotonic() - self.beat < 30 * CHECK


class Replica:
    """The HTTP server's view: the current role's."""

    def __init__(self, standby: Standby) -> None:
        self.current: Served = standby

    @property
    def metrics(self) -> Exposition:
        return self.current.metrics

    def readiness(self) -> tuple[bool, list[str]]:
        return self.current.readiness()

    def liveness(self) -> bool:
        return self.current.liveness()


def run_replica(
    lock: LeaderLock,
    listen: tuple[str, int],
    stop: threading.Event,
    lead: Callable[[LeaderLock, Callable[[Served], None], Callable[[], bool]], int],
    *,
    now: Callable[[], float] = time.time,
    check: float = CHECK,
) -> int:
    """Stand by until this replica takes the lock, then ``lead(lock, show, keep)``: build
    the daemon, ``show`` what it serves, and run it while ``keep()`` (False once
    leadership is lost or ``stop`` is set); repeat until ``stop``."""
    standby = Standby()
    replica = Replica(standby)
    host, port = listen
    try:
        server = make_http_server(replica, host, port)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc.strerror or exc)
        return 1
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    sdnotify.ready()  # a standby is started (systemd Type=notify): it serves, and waits
    log.info("standing by: another replica leads, or none yet", extra={"holder": lock.holder})
    code = 0
    last_error = ""
    try:
        while not stop.is_set():
            standby.beat = time.monotonic()
            sdnotify.watchdog_ping()
            try:
                epoch = lock.try_acquire(now(), wait=check)
                standby.db_ok = True
                last_error = ""
            except StateError as exc:
                standby.db_ok = False
                if str(exc) != last_error:
                    log.error("standby: cannot reach the state store: %s", exc)
                    last_error = str(exc)
                epoch = None
            if epoch is None:
                if not standby.db_ok:
                    stop.wait(check)
                continue
            log.warning("LEADING: this replica took over (epoch %d)", epoch)

            def show(served: Served) -> None:
                replica.current = served

            def keep() -> bool:
                return not stop.is_set() and lock.alive()

            try:
                code = lead(lock, show, keep)
            except Exception:
                log.exception("the leader's daemon failed; standing by again")
            finally:
                replica.current = standby
                lock.release()
                log.info("leader lock released", extra={"epoch": epoch})
            if not stop.is_set():
                log.error(
                    "LEADERSHIP LOST: this replica stopped polling and delivering; standing by"
                )
    finally:
        sdnotify.stopping()
        lock.release()
        server.shutdown()
        server.server_close()
    return code
