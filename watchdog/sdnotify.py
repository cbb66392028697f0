"""systemd's readiness and watchdog protocol (sd_notify), in a few lines and no dependency.

systemd passes ``$NOTIFY_SOCKET`` to a ``Type=notify`` service: an AF_UNIX datagram socket,
either a path or, when it starts with ``@``, a name in the abstract namespace. Each message is
one datagram of ``KEY=VALUE`` lines, e.g. ``READY=1`` once start-up is done and ``WATCHDOG=1``
at least every ``$WATCHDOG_USEC`` microseconds while ``WatchdogSec=`` is set.

Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op that returns False, so the daemon
calls these unconditionally. Sending never raises: a lost notification must not stop the daemon.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

__all__ = ["notify", "ready", "status", "stopping", "watchdog_interval", "watchdog_ping"]


def _address(raw: str) -> str | bytes | None:
    if raw.startswith("@"):
        # Abstract namespace: a leading NUL byte instead of "@", no terminating NUL.
        return b"\0" + raw[1:].encode()
    if raw.startswith("/"):
        return raw
    return None  # systemd also allows vsock:...; not used for services on the host


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``message`` to ``$NOTIFY_SOCKET``; True if it was sent, False if unset or failed."""
    env = os.environ if environ is None else environ
    address = _address(env.get("NOTIFY_SOCKET", ""))
    if address is None or not message:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True


def ready(environ: Mapping[str, str] | None = None) -> bool:
    """Start-up is done (for the daemon: backfill finished, /readyz is 200)."""
    return notify("READY=1", environ)


def watchdog_ping(environ: Mapping[str, str] | None = None) -> bool:
    """The main loop is alive; systemd restarts the service if this stops for ``WatchdogSec``."""
    return notify("WATCHDOG=1", environ)


def stopping(environ: Mapping[str, str] | None = None) -> bool:
    """Shutdown has begun."""
    return notify("STOPPING=1", environ)


def status(text: str, environ: Mapping[str, str] | None = None) -> bool:
    """A one-line status shown by ``systemctl status`` (newlines are replaced by spaces)."""
    return notify("STATUS=" + " ".join(text.splitlines()), environ)


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds within which ``watchdog_ping`` must be sent, or None when no watchdog is set.

    ``$WATCHDOG_PID``, when present, must name this process (systemd sets it so that a child
    process does not take the parent's watchdog). Ping at half this interval or more often.
    """
    env = os.environ if environ is None else environ
    raw = env.get("WATCHDOG_USEC", "")
    try:
        usec = int(raw)
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid is not None and pid.strip() != str(os.getpid()):
        return None
    return usec / 1_000_000
