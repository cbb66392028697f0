"""Several replicas on one PostgreSQL state store (``state.url``): one leads, the others
stand by.

A replica starts as a **standby**: it serves ``/metrics`` (``dialnexa_leader 0`` and the
process metrics, no per-agent series, no ``dialnexa_up``), ``/healthz`` and ``/readyz``
(200, ``ready (another replica leads)``, while its database session works), and every
``CHECK`` seconds reads the history rows the leader recorded since its last read into its
own windows (``Follower``, ``history/follow.py``) and tries to take the leader lock
(``alerts/store/leader.py``). When it wins, it builds the whole daemon (``app.build``) on
those windows: only the cycles recorded since its last read are applied (a failed check
falls back to the full rebuild from the shared history), the tracker resumes from the saved
calls (a warm restart, no backfill), the alert states,
incidents and outbox are the shared ones, and its deliveries carry its fencing epoch. It then
leads until it stops (SIGTERM: it releases the lock as it exits, so the next replica takes
over at its next check) or until it loses the lock's session (``watch_leadership``: the
session's socket reports its end, its ``alive`` round trip fails, or a write or claim finds
a newer epoch): it exports ``dialnexa_leader 0`` and stops polling and delivering at once,
closes the daemon, and stands by again.

The HTTP server lives as long as the process, so the port never closes during a change of
role; it serves whichever role is current.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from . import sdnotify
from .alerts.store import StateError
from .alerts.store.leader import LeaderLock
from .alerts.store.sql import SqlStore
from .endpoints import Exposition, Served
from .history import Followed, HistoryReader, catch_up
from .httpd import make_http_server
from .metrics import leader_gauge
from .readiness import ANOTHER_REPLICA_LEADS, HISTORY_NOT_FOLLOWED, STATE_STORE_FAILING
from .windows import Windows

log = logging.getLogger("watchdog.replica")

CHECK = 2.0  # seconds between a standby's attempts, and between a leader's session checks


class _Exposer:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class Standby:
    """What a standby serves. ``follower``: how its windows follow the recorded history
    (``dialnexa_standby_history_*`` and a /readyz reason while it cannot)."""

    def __init__(self, follower: Follower | None = None) -> None:
        self.registry = CollectorRegistry()
        leader_gauge(self.registry, lambda: False)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.follower = follower
        if follower is not None:
            self.registry.register(FollowCollector(follower))
        self._metrics = _Exposer(self.registry)
        self.db_ok = True
        self.beat = time.monotonic()

    @property
    def metrics(self) -> Exposition:
        return self._metrics

    def readiness(self) -> tuple[bool, list[str]]:
        if not self.db_ok:
            return False, [STATE_STORE_FAILING]
        if self.follower is not None and self.follower.failing:
            return True, [ANOTHER_REPLICA_LEADS, HISTORY_NOT_FOLLOWED]
        return True, [ANOTHER_REPLICA_LEADS]

    def liveness(self) -> bool:
        return time.monotonic() - self.beat < 30 * CHECK


class Follower:
    """A standby's windows, kept current from the shared recorded history. ``follow``
    never raises: a failure is logged (once per distinct reason), the windows are
    forgotten, and the next read rebuilds them (a takeover meanwhile rebuilds too)."""

    def __init__(
        self, open_store: Callable[[], SqlStore], new_windows: Callable[[], Windows]
    ) -> None:
        self._open = open_store
        self._new = new_windows
        self._store: SqlStore | None = None
        self._reader: HistoryReader | None = None
        self.followed: Followed | None = None
        self._error = ""
        self.errors = 0  # failed reads since start
        self.last_cycle: float | None = None  # the newest recorded cycle applied (epoch s)

    @property
    def failing(self) -> bool:
        """The last read failed."""
        return bool(self._error)

    def follow(self) -> int:
        """Apply the cycles recorded since the last read; the number applied."""
        try:
            if self._reader is None:
                self._store = self._open()
                self._reader = HistoryReader(self._store)
            if self.followed is None:
                self.followed = Followed(self._new())
            first = self.followed.at is None
            applied = catch_up(self._reader, self.followed)
        except Exception as exc:
            self.errors += 1
            if str(exc) != self._error:
                log.error("standby: cannot follow the recorded history (%s)", exc)
                self._error = str(exc) or type(exc).__name__
            self.close()
            return 0
        if self.followed.at is not None:
            self.last_cycle = self.followed.at
        if self._error or (first and self.followed.at is not None):
            log.info(
                "standby: following the recorded history",
                extra={"at": self.followed.at},
            )
            self._error = ""
        return applied

    def take(self) -> Followed | None:
        """Hand the followed windows over (to the daemon that takes over); close."""
        followed, self.followed = self.followed, None
        self.close()
        return followed

    def close(self) -> None:
        if self.followed is not None:
            self.followed.reset()
        self.followed = None
        self._reader = None
        store, self._store = self._store, None
        if store is not None:
            store.close()


class FollowCollector(Collector):
    """A standby's view of the recorded history it follows."""

    def __init__(self, follower: Follower) -> None:
        self.follower = follower

    def collect(self) -> Iterator[Metric]:
        errors = CounterMetricFamily(
            "dialnexa_standby_history_read_errors",
            "Reads of the leader's recorded history that failed on this standby (its windows "
            "are then rebuilt from the whole history at the next read or at takeover).",
        )
        errors.add_metric([], float(self.follower.errors))
        yield errors
        yield GaugeMetricFamily(
            "dialnexa_standby_history_last_cycle_timestamp_seconds",
            "The newest recorded cycle this standby's windows include (Unix time); 0 before "
            "the first successful read. Far behind time(): a takeover will not be warm.",
            value=self.follower.last_cycle or 0.0,
        )


def watch_leadership(
    lock: LeaderLock,
    term: threading.Event,
    stop: threading.Event,
    fenced: Callable[[], bool],
    *,
    check: float = CHECK,
    tick: float = 0.2,
) -> None:
    """A leader's watch (its own thread): end the ``term`` as soon as the lock's session
    is gone (seen on its socket as it happens; a round trip every ``check`` for a silent
    network loss), a write or claim was fenced (another replica has a newer epoch: the
    lock is abandoned, so ``dialnexa_leader`` reads 0 at once), or ``stop`` is set."""
    last = time.monotonic()
    while not term.is_set() and not stop.is_set():
        if fenced():
            lock.abandon()
            log.error("FENCED: another replica took over; this one stops leading")
            break
        if lock.lost(tick):
            break
        if time.monotonic() - last >= check:
            last = time.monotonic()
            if not lock.alive():
                break
    term.set()


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
    follower: Follower | None = None,
) -> int:
    """Stand by until this replica takes the lock, then ``lead(lock, show, keep)``: build
    the daemon, ``show`` what it serves, and run it while ``keep()`` (False once
    leadership is lost or ``stop`` is set); repeat until ``stop``. ``follower``: read the
    recorded history before each attempt (``lead`` takes its windows)."""
    standby = Standby(follower)
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
            if follower is not None:
                follower.follow()
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
        if follower is not None:
            follower.close()
        lock.release()
        server.shutdown()
        server.server_close()
    return code
