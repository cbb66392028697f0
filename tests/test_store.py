"""The SQLite state store: round trips, outbox order, corrupt files, unusable directories."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
from dialnexa_watchdog.alerts.rules import AlertState, State
from dialnexa_watchdog.alerts.store import Incident, StateError, Store
from dialnexa_watchdog.notify import AlertSnapshot, MessageRef, Notice

T0 = 1_750_000_000.0


def notice(incident: str, kind: str = "main", op: str = "post") -> Notice:
    snap = AlertSnapshot("r", "<!channel>", "critical", "firing", "failed", "15m", rate=0.5)
    return Notice(kind, op, incident, "r", False, T0, T0, (snap,))  # type: ignore[arg-type]


def test_states_incidents_and_outbox_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = Store(path, now=T0)
    st = AlertState("r", "a1", "critical", State.FIRING, T0, T0, fired_at=T0, rate=0.5)
    inc = Incident("i1", "r", False, T0, last_notified_at=T0)
    store.commit(T0, states=[(st, "i1")], incidents=[inc], notices=[notice("i1")])
    store.close()

    store = Store(path, now=T0)
    states, incident_of = store.load_states()
    assert states == {("r", "a1"): st}
    assert incident_of == {("r", "a1"): "i1"}
    [due] = store.due(T0)
    assert due.notice == notice("i1")
    store.mark_sent(due.id, T0, MessageRef("C1", "1.000100"))
    assert store.load_incidents()["i1"].ref == MessageRef("C1", "1.000100")
    assert store.due(T0) == []
    store.close()


def test_outbox_keeps_per_incident_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3", now=T0)
    store.commit(T0, notices=[notice("i1"), notice("i1", "resolved", "reply"), notice("i2")])
    due = store.due(T0)
    assert [(e.incident_id, e.notice.kind) for e in due] == [("i1", "main"), ("i2", "main")]
    store.retry_later(due[0].id, T0 + 10, "HTTP 500")
    # i1's follow-up waits behind its main message, even though it is due itself
    assert [e.incident_id for e in store.due(T0 + 5)] == ["i2"]
    assert [e.notice.kind for e in store.due(T0 + 10) if e.incident_id == "i1"] == ["main"]


def test_silences(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3", now=T0)
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
