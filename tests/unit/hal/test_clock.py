"""hal.timing's clocks: the simulated one the driver tests step, and the system one."""

from __future__ import annotations

import asyncio
import threading

import pytest

from hal.sim.clock import SimulatedClock
from hal.timing import SYSTEM_CLOCK, Clock


def test_both_clocks_are_clocks() -> None:
    def takes(clock: Clock) -> float:
        return clock.monotonic()

    assert takes(SimulatedClock(5.0)) == 5.0
    assert takes(SYSTEM_CLOCK) > 0


def test_timers_run_at_their_deadline_in_order_and_same_instant_in_call_order() -> None:
    clock = SimulatedClock()
    ran: list[tuple[str, float]] = []
    for name, at in (("c", 0.3), ("a", 0.1), ("b1", 0.2), ("b2", 0.2)):
        clock.call_later(at, lambda name=name: ran.append((name, clock.monotonic())))
    clock.advance(0.15)
    assert ran == [("a", 0.1)] and clock.monotonic() == 0.15
    clock.advance(1)
    assert ran == [("a", 0.1), ("b1", 0.2), ("b2", 0.2), ("c", 0.3)]
    assert clock.monotonic() == 1.15 and clock.pending == 0


def test_a_timer_set_by_a_timer_inside_the_span_runs_too_and_cancel_works() -> None:
    clock = SimulatedClock()
    ran: list[float] = []

    def tick() -> None:
        ran.append(clock.monotonic())
        if len(ran) < 3:
            clock.call_later(0.5, tick)

    clock.call_later(0.5, tick)
    cancelled = clock.call_later(0.7, lambda: ran.append(-1.0))
    cancelled.cancel()
    clock.advance(10)
    assert ran == [0.5, 1.0, 1.5]
    with pytest.raises(ValueError):
        clock.advance(-1)


@pytest.mark.asyncio
async def test_run_jumps_to_each_sleep_and_refuses_a_wait_it_cannot_end() -> None:
    clock = SimulatedClock()

    async def two_sleeps() -> float:
        await clock.sleep(2.0)
        await clock.sleep(3.0)
        return clock.monotonic()

    assert await clock.run(two_sleeps()) == 5.0
    with pytest.raises(RuntimeError, match="waits on nothing"):
        await clock.run(asyncio.Event().wait())


@pytest.mark.asyncio
async def test_a_cancelled_sleep_leaves_no_timer() -> None:
    clock = SimulatedClock()
    task = asyncio.ensure_future(clock.sleep(10))
    await clock.run_for(1)
    assert clock.pending == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.pending == 0


def test_the_system_clock_runs_callbacks_on_its_timer_thread_in_deadline_order() -> None:
    done = threading.Event()
    order: list[str] = []
    SYSTEM_CLOCK.call_later(0.05, lambda: (order.append("late"), done.set()))
    SYSTEM_CLOCK.call_later(0.0, lambda: order.append("soon"))
    SYSTEM_CLOCK.call_later(0.01, lambda: order.append("never")).cancel()
    assert done.wait(5)
    assert order == ["soon", "late"]
