"""The state file on disk: checks before opening, moving a corrupt file aside, and the
exclusive lock that keeps a second daemon off the same file."""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path

from .base import StateError

log = logging.getLogger("watchdog.store")


def check_directory(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise StateError(
            f"state.path: directory {parent} does not exist (create it or point state.path "
            "at a writable directory)"
        )
    if not parent.is_dir():
        raise StateError(f"state.path: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StateError(
            f"state.path: directory {parent} is not writable by this user (SQLite needs to "
            "create its journal next to the file)"
        )
    if path.exists() and path.is_dir():
        raise StateError(f"state.path: {path} is a directory; name a file inside it")


def _sidecars(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


def move_aside(path: Path, why: str, now: float) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    for p in _sidecars(path):
        if p.exists():
            os.replace(p, target.with_name(target.name + p.name[len(path.name) :]))
    log.error(
        "STATE FILE UNUSABLE: %s (%s). Moved it to %s and started a fresh state store. "
        "Alerts that were firing will be posted again as new incidents, and their earlier "
        "Slack messages will not be marked resolved.",
        path,
        why,
        target,
    )
    return target


def take_lock(path: Path) -> int:
    """An exclusive, non-blocking flock on ``<path>.lock`` holding our pid; StateError when
    another process holds it. The kernel releases it when the process dies, even on SIGKILL."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StateError(f"state.path: cannot create {lock_path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
        finally:
            os.close(fd)
        raise StateError(
            f"state.path: {path} is in use by another dialnexa-watchdog (pid {holder}); "
            "stop it first, or give this one its own state.path"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
