"""Injectable time: the daemon, the simulator and the tests read time only through a Clock."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def sleep(self, seconds: float) -> bool:
        """Wait; return False when woken early because the program is stopping."""
        ...


class SystemClock:
    """Wall-clock time; sleeps are interrupted by ``stop``."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> bool:
        if seconds <= 0:
            return not self.stop.is_set()
        return not self.stop.wait(seconds)


class FakeClock:
    """A clock that only moves when told to: ``sleep`` advances it instantly."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, when: float) -> None:
        with self._lock:
            self._now = when

    def sleep(self, seconds: float) -> bool:
        self.slept.append(seconds)
        if seconds > 0:
            self.advance(seconds)
        return True
