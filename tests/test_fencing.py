"""Fencing on PostgreSQL, at the store: a claim of outbox notices checks the claimer's epoch
in its own transaction, and a new leader's epoch waits for the old leader's open claim
(its deliveries in flight) to end. Real PostgreSQL (``pg_server``)."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from dialnexa_watchdog.alerts.store import Changes, Fenced
from dialnexa_watchdog.alerts.store.leader import LeaderLock
from dialnexa_watchdog.alerts.store.postgres import PgStore
from pgserver import PASSWORD, PgServer
from support import T0
from test_store import notice


def lock_for(store: PgStore, who: str) -> LeaderLock:
    return LeaderLock(store.conninfo, store.url, who)


def test_a_claim_with_an_old_epoch_is_fenced(pg_url: str) -> None:
    a, b = PgStore(pg_url, PASSWORD), PgStore(pg_url, PASSWORD)
    la, lb = lock_for(a, "a"), lock_for(b, "b")
    try:
        a.commit(T0, Changes(notices=[notice("i1")]))
        epoch_a = la.try_acquire(T0)
        assert epoch_a == 1 and lb.try_acquire(T0) is None  # one leader at a time
        with a.claim(T0, 20, epoch_a) as entries:
            assert [e.incident_id for e in entries] == ["i1"]
        la.release()
        epoch_b = lb.try_acquire(T0)
        assert epoch_b == 2
        with (
            pytest.raises(Fenced, match="leader epoch is 2, this replica's 1"),
            a.claim(T0, 20, epoch_a),
        ):
            pass
        with b.claim(T0, 20, epoch_b) as entries:
            assert [e.incident_id for e in entries] == ["i1"]
        with a.claim(T0, 20, None) as entries:  # no epoch: a single replica's claim
            assert len(entries) == 1
    finally:
        la.release()
        lb.release()
        a.close()
        b.close()


def waiting_on_a_lock(admin: psycopg.Connection[tuple[object, ...]], pid: int) -> bool:
    row = admin.execute(
        "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
    ).fetchone()
    return row is not None and row[0] == "Lock"


@pytest.mark.slow
def test_a_new_leaders_epoch_waits_for_the_old_leaders_open_claim(
    pg_server: PgServer, pg_url: str
) -> None:
    a, b = PgStore(pg_url, PASSWORD), PgStore(pg_url, PASSWORD)
    la, lb = lock_for(a, "a"), lock_for(b, "b")
    admin = psycopg.connect(pg_server.url(), password=PASSWORD, autocommit=True)
    try:
        a.commit(T0, Changes(notices=[notice("i1")]))
        epoch_a = la.try_acquire(T0)
        assert epoch_a is not None
        got: list[int | None] = []
        with a.claim(T0, 20, epoch_a) as entries:
            assert entries
            # the old leader's lock session is terminated while it delivers
            assert la._conn is not None
            admin.execute("SELECT pg_terminate_backend(%s)", (la._conn.info.backend_pid,))
            b_raw_pid: list[int] = []

            def take_over() -> None:
                got.append(lb.try_acquire(T0 + 1))

            t = threading.Thread(target=take_over)
            # b's lock session: find it once it exists and is blocked on the epoch row
            t.start()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if lb._conn is not None:
                    b_raw_pid = [lb._conn.info.backend_pid]
                    if waiting_on_a_lock(admin, b_raw_pid[0]):
                        break
                time.sleep(0.01)  # polling the server's view, not waiting for a race
            assert b_raw_pid and waiting_on_a_lock(admin, b_raw_pid[0])
            assert got == []  # the new epoch is not there while the old claim is open
        t.join(20)
        assert got == [2]
        with pytest.raises(Fenced), a.claim(T0 + 2, 20, epoch_a):
            pass
    finally:
        admin.close()
        la.release()
        lb.release()
        a.close()
        b.close()


def test_a_replica_that_lost_the_lead_cannot_write_states_notices_or_history(
    pg_url: str,
) -> None:
    from dialnexa_watchdog.history.base import Checkpoint

    old, new = PgStore(pg_url, PASSWORD), PgStore(pg_url, PASSWORD)
    lo, ln = lock_for(old, "old"), lock_for(new, "new")
    try:
        assert lo.try_acquire(T0) == 1
        old.epoch = lambda: lo.epoch
        old.commit(T0, Changes(notices=[notice("i1")]))  # while it leads: written
        [entry] = old.due(T0)
        lo.release()  # (its session ended)
        assert ln.try_acquire(T0) == 2
        with pytest.raises(Fenced):
            old.commit(T0, Changes(notices=[notice("i2")]))
        with pytest.raises(Fenced):
            old.save_history(Checkpoint(rows=[], names=[], resume="{}"))
        with pytest.raises(Fenced):
            old.set_meta("api_hold_until", "1")
        assert [e.incident_id for e in new.due(T0)] == ["i1"]  # nothing of i2
        assert new.load_saved() is None and new.get_meta("api_hold_until") is None
        new.epoch = lambda: ln.epoch
        new.commit(T0, Changes(notices=[notice("i3")]))  # the new leader writes
        new.mark_sent(entry.id, T0)  # the outbox's bookkeeping is fenced by the claims
        assert [e.incident_id for e in new.due(T0)] == ["i3"]
    finally:
        lo.release()
        ln.release()
        old.close()
        new.close()


def test_a_terminated_lock_session_is_seen_on_its_socket_and_the_leader_reads_0(
    pg_server: PgServer, pg_url: str
) -> None:
    """The loss is noticed as it happens (the server's FATAL message makes the lock's
    socket readable), not at the next 2 s round trip: ``lost`` returns True before its
    timeout would have, and the epoch (what ``dialnexa_leader`` reads) is gone with it."""
    store = PgStore(pg_url, PASSWORD)
    lock = lock_for(store, "a")
    admin = psycopg.connect(pg_server.url(), password=PASSWORD, autocommit=True)
    try:
        assert lock.try_acquire(T0) == 1
        assert lock.lost(0.05) is False and lock.epoch == 1  # alive: nothing to read
        assert lock._conn is not None
        admin.execute("SELECT pg_terminate_backend(%s)", (lock._conn.info.backend_pid,))
        # True only if the socket became readable: a timeout returns False
        assert lock.lost(30.0) is True
        assert lock.epoch is None
    finally:
        admin.close()
        lock.release()
        store.close()


def test_the_watch_ends_a_fenced_term_and_abandons_the_lock_at_once(pg_url: str) -> None:
    """A write fenced by a newer epoch ends the leader's term while its lock session still
    looks alive: the watch thread abandons the lock (epoch None: ``dialnexa_leader`` 0)
    without waiting for a session check."""
    from dialnexa_watchdog.alerts.store.postgres import EPOCH_KEY
    from dialnexa_watchdog.replica import watch_leadership

    old, other = PgStore(pg_url, PASSWORD), PgStore(pg_url, PASSWORD)
    lock = lock_for(old, "old")
    term, stop = threading.Event(), threading.Event()
    try:
        assert lock.try_acquire(T0) == 1
        old.epoch = lambda: lock.epoch
        other.set_meta(EPOCH_KEY, "2")  # a newer epoch, as a successor's would be
        with pytest.raises(Fenced):
            old.commit(T0, Changes(notices=[notice("i1")]))
        assert old.fenced
        watch = threading.Thread(
            target=watch_leadership,
            args=(lock, term, stop, lambda: old.fenced),
            kwargs={"check": 3600.0},
        )
        watch.start()
        watch.join(20)  # returns at once; without the fenced check it would run on
        assert not watch.is_alive() and term.is_set() and lock.epoch is None
    finally:
        stop.set()
        lock.release()
        old.close()
        other.close()
