"""The state store on both backends (``open_store``: SQLite and PostgreSQL): round trips,
outbox order, silences, meta, migrations; SQLite's corrupt files, unusable directories and
lock; PostgreSQL's connection errors (``test_store_postgres.py``)."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from dialnexa_watchdog.alerts.incidents import Incident
from dialnexa_watchdog.alerts.state import AlertState, State
from dialnexa_watchdog.alerts.store import SCHEMA_VERSION, Changes, StateError, Store
from dialnexa_watchdog.alerts.store.sql import SqlStore
from dialnexa_watchdog.notify import AlertSnapshot, MessageRef, Notice

T0 = 1_750_000_000.0


def notice(incident: str, kind: str = "main", op: str = "post") -> Notice:
    snap = AlertSnapshot("r", "<!channel>", "critical", "firing", "failed", "15m", rate=0.5)
    return Notice(kind, op, incident, "r", False, T0, T0, (snap,))  # type: ignore[arg-type]


def test_states_incidents_and_outbox_round_trip(open_store: Callable[[], SqlStore]) -> None:
    store = open_store()
    st = AlertState("r", "a1", "critical", State.FIRING, T0, T0, fired_at=T0, rate=0.5)
    inc = Incident("i1", "r", False, T0, last_notified_at=T0)
    store.commit(T0, Changes(states=[(st, "i1")], incidents=[inc], notices=[notice("i1")]))
    store.close()

    store = open_store()
    states, incident_of = store.load_states()
    assert states == {("r", "a1"): st}
    assert incident_of == {("r", "a1"): "i1"}
    [due] = store.due(T0)
    assert due.notice == notice("i1")
    store.mark_sent(due.id, T0, MessageRef("C1", "1.000100"))
    assert store.message_ref("i1") == MessageRef("C1", "1.000100")
    assert store.load_incidents() == {"i1": inc}
    assert store.due(T0) == []
    store.close()


def test_outbox_keeps_per_incident_order(open_store: Callable[[], SqlStore]) -> None:
    store = open_store()
    store.commit(
        T0, Changes(notices=[notice("i1"), notice("i1", "resolved", "reply"), notice("i2")])
    )
    due = store.due(T0)
    assert [(e.incident_id, e.notice.kind) for e in due] == [("i1", "main"), ("i2", "main")]
    store.retry_later(due[0].id, T0 + 10, "HTTP 500")
    # i1's follow-up waits behind its main message, even though it is due itself
    assert [e.incident_id for e in store.due(T0 + 5)] == ["i2"]
    assert [e.notice.kind for e in store.due(T0 + 10) if e.incident_id == "i1"] == ["main"]


def test_silences(open_store: Callable[[], SqlStore]) -> None:
    store = open_store()
    s = store.add_silence("a1", None, T0, T0 + 60, "maintenance")
    assert store.silences(T0 + 1) == [s]
    assert store.silences(T0 + 61) == []
    assert store.silences() == [s]
    assert store.remove_silence(s.id)
    assert not store.remove_silence(s.id)


def test_corrupt_file_is_moved_aside_with_a_loud_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.ERROR):
        store = Store(path, now=T0)
    assert store.moved_aside is not None and store.moved_aside.exists()
    assert store.moved_aside.read_bytes().startswith(b"this is not")
    assert "STATE FILE UNUSABLE" in caplog.text and str(store.moved_aside) in caplog.text
    assert store.load_states() == ({}, {})  # fresh


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="does not exist"):
        Store(tmp_path / "nope" / "state.sqlite3")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_read_only_directory_is_a_clear_error(tmp_path: Path) -> None:
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(StateError, match="not writable"):
            Store(d / "state.sqlite3")
    finally:
        d.chmod(stat.S_IRWXU)


def test_directory_as_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="is a directory"):
        Store(tmp_path)


def test_parked_notice_holds_back_its_incident_until_unparked(
    open_store: Callable[[], SqlStore],
) -> None:
    store = open_store()
    store.commit(
        T0, Changes(notices=[notice("i1"), notice("i1", "resolved", "reply"), notice("i2")])
    )
    first = store.due(T0)[0]
    store.park(first.id, T0, "channel_not_found")
    assert [e.incident_id for e in store.due(T0)] == ["i2"]  # i1's reply stays behind
    assert store.parked_count() == 1
    assert store.unpark(T0 + 5) == 1
    assert [(e.incident_id, e.notice.kind) for e in store.due(T0 + 5)] == [
        ("i1", "main"),
        ("i2", "main"),
    ]


def test_a_timed_out_attempt_is_remembered_as_uncertain(open_store: Callable[[], SqlStore]) -> None:
    store = open_store()
    store.commit(T0, Changes(notices=[notice("i1")]))
    [e] = store.due(T0)
    assert not e.uncertain
    store.retry_later(e.id, T0 + 1, "timeout", uncertain=True)
    store.retry_later(e.id, T0 + 2, "HTTP 500")  # a later plain failure keeps the flag
    [e] = store.due(T0 + 2)
    assert e.uncertain and e.attempts == 2


def test_meta_values_survive_a_reopen(open_store: Callable[[], SqlStore]) -> None:
    store = open_store()
    assert store.get_meta("api_hold_until") is None
    store.set_meta("api_hold_until", "1750003600")
    store.set_meta("api_hold_until", "1750007200")
    store.close()
    assert open_store().get_meta("api_hold_until") == "1750007200"


def test_a_second_daemon_on_the_same_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    first = Store(path, now=T0, exclusive=True)
    with pytest.raises(
        StateError, match=rf"in use by another dialnexa-watchdog \(pid {os.getpid()}\)"
    ):
        Store(path, now=T0, exclusive=True)
    shared = Store(path, now=T0)  # the CLI (alerts, silence) still opens it
    shared.close()
    first.close()
    Store(path, now=T0, exclusive=True).close()  # released on close


def test_the_lock_dies_with_its_process(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    path = tmp_path / "s.sqlite3"
    code = (
        "import sys; from dialnexa_watchdog.alerts.store import Store; "
        f"s = Store({str(path)!r}, exclusive=True); print('locked', flush=True); "
        "sys.stdin.read()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        with pytest.raises(StateError, match="in use"):
            Store(path, now=T0, exclusive=True)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        Store(path, now=T0, exclusive=True).close()
    finally:
        child.kill()
        child.wait(10)


def test_a_version_1_file_is_migrated_and_a_newer_one_refused(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "v1.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('schema_version', '1');"
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, incident_id TEXT NOT NULL,"
        " op TEXT NOT NULL, kind TEXT NOT NULL, notice TEXT NOT NULL, created_at REAL NOT NULL,"
        " next_attempt_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
        " status TEXT NOT NULL DEFAULT 'pending', last_error TEXT, done_at REAL);"
    )
    conn.commit()
    conn.close()
    store = Store(path, now=T0)
    assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
    store.commit(T0, Changes(notices=[notice("i1")]))
    assert not store.due(T0)[0].uncertain
    store.set_meta("schema_version", "99")
    store.close()
    with pytest.raises(StateError, match="newer dialnexa-watchdog"):
        Store(path, now=T0)


def test_codec_writes_the_same_json_objects_as_json_dumps_of_the_fields() -> None:
    """msgspec encodes the dataclasses directly: the objects must be the ones the earlier
    json.dumps code wrote (files written by either are read by both), non-ASCII included."""
    import dataclasses
    import json

    from dialnexa_watchdog.alerts.state import AlertState, State
    from dialnexa_watchdog.alerts.store.codec import (
        members_from_json,
        members_to_json,
        notice_from_json,
        notice_to_json,
        state_from_json,
        state_to_json,
    )
    from dialnexa_watchdog.notify import AlertSnapshot, Notice

    def fields(x: object) -> dict[str, object]:
        return {f.name: getattr(x, f.name) for f in dataclasses.fields(x)}  # type: ignore[arg-type]

    snap = AlertSnapshot(
        "failed-5m", "agt_1", "critical", "firing", "failed", "5m",
        agent_name="Ünï 客服 <b>", rate=0.25, calls=8, sparkline=(0.1, None, 0.3),
    )  # fmt: skip
    members = {"agt_1": snap, "agt_2": dataclasses.replace(snap, agent_id="agt_2", rate=None)}
    old_members = json.dumps({k: fields(v) for k, v in members.items()}, ensure_ascii=False)
    assert json.loads(members_to_json(members)) == json.loads(old_members)
    assert members_from_json(members_to_json(members)) == members
    st = AlertState("failed-5m", "agt_1", "critical", State.FIRING, 1.5, 2.0, note="Ünï")
    assert json.loads(state_to_json(st)) == json.loads(json.dumps(fields(st)))
    assert state_from_json(state_to_json(st)) == st
    notice = Notice(kind="main", op="post", incident="i1", rule="failed-5m", group=True, at=2.0,
                    opened_at=1.0, alerts=(snap,))  # fmt: skip
    old = fields(notice) | {"alerts": [fields(snap)]}
    assert json.loads(notice_to_json(notice)) == json.loads(json.dumps(old, ensure_ascii=False))
    assert notice_from_json(notice_to_json(notice)) == notice
