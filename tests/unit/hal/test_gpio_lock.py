"""GpioConnectorLock on gpiozero mock pins.

A ``JournalPin`` records every state change of every pin in one shared list, in the order they
happened, so "both H-bridge outputs on at the same instant" can be checked on the exact global
sequence, not only per pin.  A ``motor`` hook moves the feedback switch when the lock or unlock
output rises, after a chosen number of pulses (a lock that jams for the first N tries).
The driver runs on a simulated clock: pulses and waits take no real time, and their lengths are
checked exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from hal.config import LockConfig
from hal.gpio import GpioConnectorLock
from hal.interfaces import ConnectorLock
from hal.sim.clock import SimulatedClock
from hal.types import HardwareFault, LockFailure, LockState

LOCK, UNLOCK, FEEDBACK = 20, 21, 22
FAST = {"pulse_s": 0.01, "settle_s": 0.01, "retry_delay_s": 0.01}


class JournalPin(MockPWMPin):
    journal: list[tuple[str, float]]
    times: list[float]  # the simulated time of each journal entry
    clock: SimulatedClock
    on_rise: Callable[[], None] | None = None

    def _change_state(self, value: float) -> bool:
        changed: bool = super()._change_state(value)
        if changed and self.function == "output":
            self.journal.append((self.info.name, float(value)))
            self.times.append(self.clock.monotonic())
            if value and self.on_rise is not None:
                self.on_rise()
        return changed


class Bench:
    def __init__(self, factory: MockFactory) -> None:
        self.factory = factory
        self.clock = SimulatedClock()
        self.journal: list[tuple[str, float]] = []
        self.times: list[float] = []
        self.lock_pin = factory.pin(LOCK, pin_class=JournalPin)
        self.unlock_pin = factory.pin(UNLOCK, pin_class=JournalPin)
        for p in (self.lock_pin, self.unlock_pin):
            p.journal, p.times, p.clock = self.journal, self.times, self.clock
        self.feedback = factory.pin(FEEDBACK)

    def motor(
        self,
        locks_after: int | None = None,
        unlocks_after: int | None = None,
        active_high: bool = True,
    ) -> None:
        """The feedback follows after the n-th pulse towards that side (None: jammed)."""
        pulses = {"lock": 0, "unlock": 0}

        def drive(locked: bool) -> None:
            (self.feedback.drive_high if locked == active_high else self.feedback.drive_low)()

        def lock_rise() -> None:
            pulses["lock"] += 1
            if locks_after is not None and pulses["lock"] >= locks_after:
                drive(True)

        def unlock_rise() -> None:
            pulses["unlock"] += 1
            if unlocks_after is not None and pulses["unlock"] >= unlocks_after:
                drive(False)

        self.lock_pin.on_rise = lock_rise
        self.unlock_pin.on_rise = unlock_rise

    def assert_never_both_on(self) -> None:
        level = {"GPIO20": 0.0, "GPIO21": 0.0}
        for name, value in self.journal:
            level[name] = value
            assert not (level["GPIO20"] and level["GPIO21"]), self.journal

    @staticmethod
    def history(pin: MockPWMPin) -> list[float]:
        return [float(s.state) for s in pin.states]


@pytest.fixture
def bench(factory: MockFactory) -> Bench:
    return Bench(factory)


def make(bench: Bench, **kw: object) -> GpioConnectorLock:
    cfg = LockConfig(lock_pin=LOCK, unlock_pin=UNLOCK, feedback_pin=FEEDBACK, **{**FAST, **kw})  # type: ignore[arg-type]
    return GpioConnectorLock(cfg, pin_factory=bench.factory, clock=bench.clock)


@pytest.mark.asyncio
async def test_lock_first_attempt(bench: Bench) -> None:
    lk = make(bench)
    assert isinstance(lk, ConnectorLock)
    bench.motor(locks_after=1)
    assert lk.state is LockState.UNLOCKED  # feedback open, no command yet
    await bench.clock.run(lk.lock())
    assert lk.state is LockState.LOCKED
    assert bench.history(bench.lock_pin) == [0, 1, 0]
    assert bench.history(bench.unlock_pin) == [0]
    bench.assert_never_both_on()
    lk.close()


@pytest.mark.asyncio
async def test_pulse_length_and_settle(bench: Bench) -> None:
    lk = make(bench, pulse_s=0.05, settle_s=0.2)
    bench.motor(locks_after=1)
    await bench.clock.run(lk.lock())
    assert bench.journal == [("GPIO20", 1.0), ("GPIO20", 0.0)]
    rise, fall = bench.times
    assert fall - rise == pytest.approx(0.05)  # the pulse, to the simulated instant
    assert bench.clock.monotonic() == pytest.approx(0.25)  # then the settle time, then read


@pytest.mark.asyncio
async def test_retry_waits_the_retry_delay_between_pulses(bench: Bench) -> None:
    lk = make(bench, pulse_s=0.5, settle_s=0.1, retry_delay_s=2.0, attempts=2)
    bench.motor(locks_after=2)
    await bench.clock.run(lk.lock())
    # pulse 0.5, settle 0.1, retry delay 2.0, second pulse 0.5, settle 0.1
    assert bench.times == pytest.approx([0.0, 0.5, 2.6, 3.1])
    assert bench.clock.monotonic() == pytest.approx(3.2)


@pytest.mark.asyncio
async def test_lock_retries_then_confirms(bench: Bench) -> None:
    lk = make(bench, attempts=3)
    bench.motor(locks_after=2)
    await bench.clock.run(lk.lock())
    assert bench.history(bench.lock_pin) == [0, 1, 0, 1, 0]
    assert lk.state is LockState.LOCKED
    bench.assert_never_both_on()


@pytest.mark.asyncio
async def test_lock_fails_after_all_attempts(bench: Bench) -> None:
    lk = make(bench, attempts=4)
    bench.motor(locks_after=None)  # jammed
    with pytest.raises(LockFailure) as err:
        await bench.clock.run(lk.lock())
    assert bench.history(bench.lock_pin) == [0, 1, 0] + [1, 0] * 3  # 4 pulses
    assert bench.history(bench.unlock_pin) == [0]
    assert err.value.fault is HardwareFault.CONNECTOR_LOCK_FAILURE
    assert err.value.vendor_code == "LOCK"
    assert "4 attempt" in str(err.value) and f"GPIO{FEEDBACK}" in str(err.value)
    assert "not locked" in err.value.detail
    assert lk.state is LockState.UNKNOWN  # commanded locked, feedback says otherwise
    assert (bench.lock_pin.state, bench.unlock_pin.state) == (0, 0)  # motor off


@pytest.mark.asyncio
async def test_unlock_symmetrical(bench: Bench) -> None:
    lk = make(bench)
    bench.motor(locks_after=1, unlocks_after=2)
    await bench.clock.run(lk.lock())
    await bench.clock.run(lk.unlock())
    assert lk.state is LockState.UNLOCKED
    assert bench.history(bench.unlock_pin) == [0, 1, 0, 1, 0]
    assert bench.history(bench.lock_pin) == [0, 1, 0]
    bench.assert_never_both_on()


@pytest.mark.asyncio
async def test_unlock_failure_code(bench: Bench) -> None:
    lk = make(bench, attempts=2)
    bench.motor(locks_after=1, unlocks_after=None)
    await bench.clock.run(lk.lock())
    with pytest.raises(LockFailure) as err:
        await bench.clock.run(lk.unlock())
    assert err.value.vendor_code == "UNLOCK"
    assert "unlocked" in err.value.detail and "reads locked" in err.value.detail
    assert lk.state is LockState.UNKNOWN


@pytest.mark.asyncio
async def test_concurrent_commands_serialised_never_both_on(bench: Bench) -> None:
    lk = make(bench, pulse_s=0.02)
    bench.motor(locks_after=1, unlocks_after=1)
    await bench.clock.run(asyncio.gather(lk.lock(), lk.unlock(), lk.lock(), lk.unlock()))
    bench.assert_never_both_on()
    assert bench.history(bench.lock_pin) == [0, 1, 0, 1, 0]
    assert bench.history(bench.unlock_pin) == [0, 1, 0, 1, 0]
    # Serialised: each pulse ends before the next begins (journal alternates on/off).
    assert [v for _, v in bench.journal] == [1, 0] * 4


@pytest.mark.asyncio
async def test_cancel_during_pulse_switches_motor_off(bench: Bench) -> None:
    lk = make(bench, pulse_s=5.0)
    task = asyncio.create_task(lk.lock())
    await bench.clock.run_for(4.9)
    assert bench.lock_pin.state == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert bench.history(bench.lock_pin) == [0, 1, 0]


@pytest.mark.asyncio
async def test_feedback_active_low(bench: Bench) -> None:
    lk = make(bench, feedback_active_high=False)
    assert bench.feedback.pull == "up"
    assert lk.state is LockState.UNLOCKED
    bench.motor(locks_after=1, active_high=False)
    await bench.clock.run(lk.lock())
    assert bench.feedback.state == 0 and lk.state is LockState.LOCKED


@pytest.mark.asyncio
async def test_state_unknown_when_forced_after_lock(bench: Bench) -> None:
    lk = make(bench)
    bench.motor(locks_after=1)
    await bench.clock.run(lk.lock())
    bench.feedback.drive_low()  # pin pulled open by force / switch broke
    assert lk.state is LockState.UNKNOWN


def test_close_leaves_motor_off_and_releases(bench: Bench) -> None:
    lk = make(bench)
    lk.close()
    assert (bench.lock_pin.state, bench.unlock_pin.state) == (0, 0)
    assert bench.lock_pin.function == bench.unlock_pin.function == "input"
    assert lk.state is LockState.UNKNOWN
    lk.close()


def test_bad_config() -> None:
    with pytest.raises(ValueError):
        GpioConnectorLock(LockConfig(1, 2, 3, attempts=0), pin_factory=MockFactory())
    with pytest.raises(ValueError):
        GpioConnectorLock(LockConfig(1, 1, 3), pin_factory=MockFactory())
