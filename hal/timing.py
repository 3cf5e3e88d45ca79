"""The clock the drivers time their outputs by: a lock pulse, a beep, a blink, a Modbus quiet gap.

A driver takes a ``Clock`` (default ``SYSTEM_CLOCK``) instead of calling ``time.monotonic``,
``asyncio.sleep`` or a thread's ``Event.wait`` itself, so a test hands it
``hal.sim.clock.SimulatedClock`` and steps time instead of sleeping (gpiozero's idea: the clock
belongs to the port, not to the code that uses it).  Standard library only.

Two ways to wait, for the two kinds of driver:

* ``await clock.sleep(s)``: an asyncio driver (the connector lock, the Modbus bus);
* ``clock.call_later(s, callback)``: a driver whose outputs run in the background while the
  firmware goes on (buzzer patterns, indicator blinking); ``callback`` runs on the clock's
  timer thread, never on the event loop, and ``cancel()`` on the returned handle stops it
  if it has not started.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)


class TimerHandle(Protocol):
    def cancel(self) -> None:
        """The callback will not run (if it has not started yet)."""


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a monotonic scale (only differences mean anything)."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on the running event loop (cancellable)."""

    def call_later(self, seconds: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` once, ``seconds`` from now, on the clock's timer thread."""


class _Timer:
    __slots__ = ("deadline", "callback", "cancelled")

    def __init__(self, deadline: float, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class SystemClock:
    """``time.monotonic`` and ``asyncio.sleep``; ``call_later`` callbacks run one after the
    other on one daemon thread (started on first use), in deadline order."""

    def __init__(self) -> None:
        self._queue: list[tuple[float, int, _Timer]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_later(self, seconds: float, callback: Callable[[], None]) -> TimerHandle:
        timer = _Timer(time.monotonic() + max(0.0, seconds), callback)
        with self._changed:
            heapq.heappush(self._queue, (timer.deadline, next(self._order), timer))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="hal-timers", daemon=True)
                self._thread.start()
            self._changed.notify()
        return timer

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._queue or self._queue[0][0] > time.monotonic():
                    # The condition is notified by every new timer (it may be the earliest).
                    self._changed.wait(
                        self._queue[0][0] - time.monotonic() if self._queue else None
                    )
                _, _, timer = heapq.heappop(self._queue)
            if not timer.cancelled:
                try:
                    timer.callback()
                except Exception:  # noqa: BLE001 - one driver's bug must not stop the others
                    log.exception("timer callback failed")


SYSTEM_CLOCK = SystemClock()

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock", "TimerHandle"]
