"""The mains watch's hold-off (firmware.power_loss.MainsWatch) on simulated time (looptime): a
dip shorter than the hold-off ends nothing, a loss that lasts it is one power cut, a loss at
start counts from the start, and mains is "back" only after an unbroken hold-off."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from firmware.power_loss import MainsWatch
from hal.interfaces import PowerFailInput

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]

HOLD_OFF_S = 3.0


class Line:
    """A PowerFailInput the test sets, as a HAT's line would."""

    def __init__(self, lost: bool = False) -> None:
        self.lost = lost
        self.listener: Callable[[bool], None] | None = None

    def set_listener(self, listener: Callable[[bool], None]) -> None:
        self.listener = listener

    def mains_lost(self) -> bool:
        return self.lost

    def close(self) -> None:
        self.listener = None

    def set(self, lost: bool) -> None:
        self.lost = lost
        assert self.listener is not None
        self.listener(lost)


def watch(line: Line) -> tuple[MainsWatch, list[float]]:
    cuts: list[float] = []
    loop = asyncio.get_running_loop()
    w = MainsWatch(line, HOLD_OFF_S, lambda: cuts.append(loop.time()))
    w.start()
    return w, cuts


async def settle(seconds: float) -> None:
    """Let the line's hop onto the loop run, then ``seconds`` of simulated time pass."""
    await asyncio.sleep(0)
    await asyncio.sleep(seconds)


async def test_a_dip_shorter_than_the_hold_off_ends_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    line = Line()
    assert isinstance(line, PowerFailInput)
    w, cuts = watch(line)
    line.set(True)
    await settle(HOLD_OFF_S - 0.5)
    line.set(False)
    await settle(10 * HOLD_OFF_S)
    assert cuts == [] and not w.cut and not w.lost
    assert any("within the 3 s hold-off: nothing done" in r.getMessage() for r in caplog.records)


async def test_a_loss_that_lasts_the_hold_off_is_one_power_cut() -> None:
    line = Line()
    w, cuts = watch(line)
    loop = asyncio.get_running_loop()
    line.set(True)
    await asyncio.sleep(0)
    lost_at = loop.time()
    await settle(HOLD_OFF_S + 1)
    assert cuts == [pytest.approx(lost_at + HOLD_OFF_S)] and w.cut
    line.set(False)  # back, and lost again: still the one cut of this run
    line.set(True)
    await settle(10 * HOLD_OFF_S)
    assert len(cuts) == 1


async def test_each_dip_restarts_the_hold_off() -> None:
    line = Line()
    _, cuts = watch(line)
    for _ in range(5):  # a flapping supply: never lost for the whole hold-off
        line.set(True)
        await settle(HOLD_OFF_S - 1)
        line.set(False)
        await settle(0.1)
    assert cuts == []


async def test_mains_lost_at_start_counts_from_the_start() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    _, cuts = watch(Line(lost=True))
    await settle(HOLD_OFF_S + 1)
    assert cuts == [pytest.approx(started + HOLD_OFF_S)]


async def test_a_change_from_another_thread_is_decided_on_the_loop() -> None:
    line = Line()
    w, cuts = watch(line)
    thread = threading.Thread(target=line.set, args=(True,))
    thread.start()
    thread.join()
    assert not w.lost, "nothing decided on the line's thread"
    await settle(HOLD_OFF_S + 1)
    assert w.lost and len(cuts) == 1


async def test_stop_cancels_a_running_hold_off() -> None:
    line = Line()
    w, cuts = watch(line)
    line.set(True)
    await settle(1)
    w.stop()
    await settle(10 * HOLD_OFF_S)
    assert cuts == []


async def test_mains_is_back_only_after_an_unbroken_hold_off() -> None:
    line = Line(lost=True)
    w, _ = watch(line)
    await settle(HOLD_OFF_S + 1)
    loop = asyncio.get_running_loop()
    back = asyncio.create_task(w.wait_restored())
    line.set(False)
    await settle(HOLD_OFF_S - 1)
    line.set(True)  # it flapped before the hold-off ran out
    await settle(1)
    line.set(False)
    await asyncio.sleep(0)
    steady_from = loop.time()
    await settle(HOLD_OFF_S / 2)
    assert not back.done()
    await asyncio.wait_for(back, 2 * HOLD_OFF_S)
    assert loop.time() == pytest.approx(steady_from + HOLD_OFF_S, abs=0.01)


async def test_mains_back_before_the_wait_counts_from_its_return() -> None:
    """Mains returned while the StopTransactions were still being delivered: the park that
    follows ends one hold-off after the return."""
    line = Line(lost=True)
    w, _ = watch(line)
    await settle(HOLD_OFF_S + 1)
    line.set(False)
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    back_at = loop.time()
    await settle(1)
    await asyncio.wait_for(w.wait_restored(), 2 * HOLD_OFF_S)
    assert loop.time() == pytest.approx(back_at + HOLD_OFF_S, abs=0.01)
