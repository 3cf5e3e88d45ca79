"""A clock that only moves when told: driver tests step time instead of sleeping.

``SimulatedClock`` implements ``hal.timing.Clock``.  Nothing waits in real time: a
``call_later`` callback runs inside ``advance`` (in the caller's thread) when simulated time
reaches its deadline, and an ``await clock.sleep(s)`` ends when ``advance`` or ``run_for``
passes its deadline.  Timers due at the same instant run in the order they were set.

    clock = SimulatedClock()
    buzzer = GpioBuzzer(cfg, pin_factory=factory, clock=clock)
    buzzer.play(BeepPattern.CARD_READ)     # output on at t = 0
    clock.advance(0.08)                    # output off at t = 0.08, exactly

    await clock.run(lock.lock())           # an async driver: time jumps to each deadline
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from hal.timing import TimerHandle

T = TypeVar("T")

# Event-loop turns given to woken tasks before time moves on: enough for a driver to run from
# one await to its next sleep (a lock and a sleep in between); nothing here waits for I/O.
_TURNS = 20


class _Timer:
    __slots__ = ("deadline", "callback", "cancelled")

    def __init__(self, deadline: float, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class SimulatedClock:
    """Simulated seconds from ``start``; see the module docstring."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._queue: list[tuple[float, int, _Timer]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def call_later(self, seconds: float, callback: Callable[[], None]) -> TimerHandle:
        timer = _Timer(self._now + max(0.0, seconds), callback)
        heapq.heappush(self._queue, (timer.deadline, next(self._order), timer))
        return timer

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        timer = self.call_later(seconds, wake)
        try:
            await future
        finally:
            timer.cancel()

    @property
    def pending(self) -> int:
        """Timers and sleeps not yet due (cancelled ones excluded)."""
        return sum(1 for _, _, t in self._queue if not t.cancelled)

    def next_deadline(self) -> float | None:
        self._drop_cancelled()
        return self._queue[0][0] if self._queue else None

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, running every timer that falls due on the way, at
        its own deadline (a callback that sets a new timer inside the span sees it run too)."""
        if seconds < 0:
            raise ValueError(f"time does not go back ({seconds} s)")
        target = self._now + seconds
        while self._fire_next(target):
            pass
        self._now = target

    async def run_for(self, seconds: float) -> None:
        """``advance`` for asyncio drivers: after each deadline the woken tasks run up to their
        next sleep before time moves on."""
        if seconds < 0:
            raise ValueError(f"time does not go back ({seconds} s)")
        target = self._now + seconds
        await self._turns()
        while self._fire_next(target):
            await self._turns()
        self._now = target
        await self._turns()

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` while jumping time to each next deadline whenever every task is
        waiting on this clock (an autojump clock).  RuntimeError if it waits for something else
        that never comes (no deadline left)."""
        task = asyncio.ensure_future(awaitable)
        while True:
            await self._turns(until=task)
            if task.done():
                return task.result()
            deadline = self.next_deadline()
            if deadline is None:
                task.cancel()
                raise RuntimeError("the awaited driver waits on nothing this clock can advance")
            self._fire_next(deadline)

    # -- internals --------------------------------------------------------------------------------

    def _drop_cancelled(self) -> None:
        while self._queue and self._queue[0][2].cancelled:
            heapq.heappop(self._queue)

    def _fire_next(self, target: float) -> bool:
        """Run the earliest timer due by ``target`` (time moves to its deadline); False if none."""
        self._drop_cancelled()
        if not self._queue or self._queue[0][0] > target:
            return False
        deadline, _, timer = heapq.heappop(self._queue)
        self._now = max(self._now, deadline)
        timer.callback()
        return True

    @staticmethod
    async def _turns(until: asyncio.Future[Any] | None = None) -> None:
        for _ in range(_TURNS):
            if until is not None and until.done():
                return
            await asyncio.sleep(0)


__all__ = ["SimulatedClock"]
