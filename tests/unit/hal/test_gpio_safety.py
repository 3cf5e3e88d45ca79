"""GpioSafetyInputs with real GpioContactors on gpiozero mock pins.

The mock pin calls gpiozero callbacks synchronously inside ``drive_high``/``drive_low``, so "the
contactor is already open when the listener runs" and "it is open when drive_high() returns" are
both checked on the recorded pin history.
"""

from __future__ import annotations

import threading

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from hal.config import ContactorConfig, SafetyConfig
from hal.gpio import GpioContactor, GpioSafetyInputs
from hal.interfaces import SafetyInputs
from hal.types import ContactorFailure, SafetyEvent, SafetyInput

RELAY1, RELAY2, RCD, ESTOP = 17, 27, 23, 24
RCD_TRIP = SafetyEvent(SafetyInput.RESIDUAL_CURRENT, True)
RCD_CLEAR = SafetyEvent(SafetyInput.RESIDUAL_CURRENT, False)
ESTOP_TRIP = SafetyEvent(SafetyInput.EMERGENCY_STOP, True)
ESTOP_CLEAR = SafetyEvent(SafetyInput.EMERGENCY_STOP, False)


def history(pin: MockPWMPin) -> list[float]:
    return [float(s.state) for s in pin.states]


class Recorder:
    """Listener that also records the relay pins' states at the moment it is called."""

    def __init__(self, factory: MockFactory, *relays: int) -> None:
        self.factory = factory
        self.relays = relays
        self.calls: list[tuple[SafetyEvent, tuple[float, ...], str]] = []

    def __call__(self, event: SafetyEvent) -> None:
        states = tuple(float(self.factory.pin(n).state) for n in self.relays)
        self.calls.append((event, states, threading.current_thread().name))

    @property
    def events(self) -> list[SafetyEvent]:
        return [c[0] for c in self.calls]


def test_rcd_trip_opens_contactor_before_listener(factory: MockFactory) -> None:
    c = GpioContactor(ContactorConfig(pin=RELAY1), pin_factory=factory)
    safety = GpioSafetyInputs(SafetyConfig(residual_current_pin=RCD), [c], pin_factory=factory)
    assert isinstance(safety, SafetyInputs)
    rec = Recorder(factory, RELAY1)
    safety.set_listener(rec)
    assert factory.pin(RCD).pull == "down" and safety.active() == []
    c.request_closed()
    assert factory.pin(RELAY1).state == 1

    factory.pin(RCD).drive_high()  # the trip

    # Synchronous: by the time drive_high() returns the relay is open and the firmware told,
    # and when the listener ran the relay pin was already low.
    assert rec.calls == [(RCD_TRIP, (0.0,), threading.current_thread().name)]
    assert history(factory.pin(RELAY1)) == [0, 1, 0]
    assert safety.active() == [RCD_TRIP]
    assert safety.latched == {SafetyInput.RESIDUAL_CURRENT}
    with pytest.raises(ContactorFailure) as err:
        c.request_closed()
    assert err.value.vendor_code == "TRIP"
    assert history(factory.pin(RELAY1)) == [0, 1, 0]


def test_release_reports_but_keeps_interlock_until_reset(factory: MockFactory) -> None:
    c = GpioContactor(ContactorConfig(pin=RELAY1), pin_factory=factory)
    safety = GpioSafetyInputs(SafetyConfig(residual_current_pin=RCD), [c], pin_factory=factory)
    rec = Recorder(factory, RELAY1)
    safety.set_listener(rec)
    rcd = factory.pin(RCD)
    rcd.drive_high()
    assert not safety.reset()  # still tripped: refused
    assert c.interlocks == {"residual-current"}
    rcd.drive_low()
    assert rec.events == [RCD_TRIP, RCD_CLEAR]
    assert safety.active() == []
    with pytest.raises(ContactorFailure):
        c.request_closed()  # released input does not re-enable power
    assert safety.reset()
    assert safety.latched == frozenset() and c.interlocks == frozenset()
    c.request_closed()
    assert history(factory.pin(RELAY1)) == [0, 1]


def test_trip_without_listener_still_opens_all_guarded(factory: MockFactory) -> None:
    c1 = GpioContactor(ContactorConfig(pin=RELAY1), pin_factory=factory)
    c2 = GpioContactor(ContactorConfig(pin=RELAY2, active_high=False), pin_factory=factory)
    GpioSafetyInputs(SafetyConfig(residual_current_pin=RCD), [c1, c2], pin_factory=factory)
    c1.request_closed()
    c2.request_closed()
    factory.pin(RCD).drive_high()
    assert history(factory.pin(RELAY1)) == [0, 1, 0]
    assert history(factory.pin(RELAY2)) == [0, 1, 0, 1]  # active low: open = high
    for c in (c1, c2):
        with pytest.raises(ContactorFailure):
            c.request_closed()


def test_trip_from_another_thread(factory: MockFactory) -> None:
    c = GpioContactor(ContactorConfig(pin=RELAY1), pin_factory=factory)
    safety = GpioSafetyInputs(SafetyConfig(residual_current_pin=RCD), [c], pin_factory=factory)
    rec = Recorder(factory, RELAY1)
    safety.set_listener(rec)
    c.request_closed()
    t = threading.Thread(target=factory.pin(RCD).drive_high, name="edge-thread")
    t.start()
    t.join()
    assert rec.calls == [(RCD_TRIP, (0.0,), "edge-thread")]


class Broken:
    def open(self) -> None:
        raise RuntimeError("driver broken")

    def interlock(self, reason: str) -> None:
        raise RuntimeError("driver broken")

    def release_interlock(self, reason: str | None = None) -> None:
        pass


def test_broken_contactor_and_listener_do_not_stop_the_others(factory: MockFactory) -> None:
    c = GpioContactor(ContactorConfig(pin=RELAY1), pin_factory=factory)
    safety = GpioSafetyInputs(
        SafetyConfig(residual_current_pin=RCD), [Broken(), c], pin_factory=factory
    )

    def bad_listener(event: SafetyEvent) -> None:
        raise ValueError("firmware bug")

    safety.set_listener(bad_listener)
    c.request_closed()
    factory.pin(RCD).drive_high()  # no exception escapes into the edge thread
    assert factory.pin(RELAY1).state == 0
    assert c.interlocks == {"residual-current"}


def test_rcd_active_low_output(factory: MockFactory) -> None:
    c = GpioContactor(ContactorConfig(pin=RELAY1), pin_factory=factory)
    cfg = SafetyConfig(residual_current_pin=RCD, residual_current_active_high=False)
    safety = GpioSafetyInputs(cfg, [c], pin_factory=factory)
    assert factory.pin(RCD).pull == "up" and safety.active() == []
    c.request_closed()
    factory.pin(RCD).drive_low()
    assert factory.pin(RELAY1).state == 0 and safety.active() == [RCD_TRIP]


def test_estop_nc_to_gnd_default(factory: MockFactory) -> None:
    """NC switch to GND with pull-up: low = healthy, high = pressed or wire broken."""
    c = GpioContactor(ContactorConfig(pin=RELAY1), pin_factory=factory)
    cfg = SafetyConfig(residual_current_pin=RCD, emergency_stop_pin=ESTOP)
    safety = GpioSafetyInputs(cfg, [c], pin_factory=factory)
    estop = factory.pin(ESTOP)
    assert estop.pull == "up"
    # Nothing holds the pin low yet (like a broken wire): tripped from the start, interlocked.
    assert safety.active() == [ESTOP_TRIP]
    with pytest.raises(ContactorFailure):
        c.request_closed()
    rec = Recorder(factory, RELAY1)
    safety.set_listener(rec)
    estop.drive_low()  # circuit closed: healthy
    assert rec.events == [ESTOP_CLEAR]
    assert safety.reset()
    c.request_closed()
    estop.drive_high()  # pressed
    assert rec.calls[-1] == (ESTOP_TRIP, (0.0,), threading.current_thread().name)
    assert safety.active() == [ESTOP_TRIP]
    assert history(factory.pin(RELAY1)) == [0, 1, 0]


def test_estop_nc_to_3v3(factory: MockFactory) -> None:
    c = GpioContactor(ContactorConfig(pin=RELAY1), pin_factory=factory)
    cfg = SafetyConfig(
        residual_current_pin=RCD, emergency_stop_pin=ESTOP, emergency_stop_healthy_high=True
    )
    safety = GpioSafetyInputs(cfg, [c], pin_factory=factory)
    estop = factory.pin(ESTOP)
    assert estop.pull == "down"
    estop.drive_high()  # healthy
    assert safety.active() == [] and safety.reset()
    c.request_closed()
    estop.drive_low()  # pressed / broken
    assert factory.pin(RELAY1).state == 0
    assert safety.active() == [ESTOP_TRIP]


def test_both_inputs_reset_needs_both_clear(factory: MockFactory) -> None:
    c = GpioContactor(ContactorConfig(pin=RELAY1), pin_factory=factory)
    cfg = SafetyConfig(residual_current_pin=RCD, emergency_stop_pin=ESTOP)
    safety = GpioSafetyInputs(cfg, [c], pin_factory=factory)
    factory.pin(ESTOP).drive_low()
    assert safety.reset()
    factory.pin(RCD).drive_high()
    factory.pin(ESTOP).drive_high()
    assert set(safety.active()) == {RCD_TRIP, ESTOP_TRIP}
    factory.pin(RCD).drive_low()
    assert not safety.reset()  # e-stop still pressed
    factory.pin(ESTOP).drive_low()
    assert safety.reset()
    c.request_closed()


class HeldPin(MockPWMPin):
    """An input an outside driver holds at ``held`` (the pull resistor cannot move it)."""

    held: bool | None = None

    def _set_pull(self, value: str) -> None:
        super()._set_pull(value)
        if self.held is not None:
            self._change_state(self.held)


def test_rcd_tripped_at_start_interlocks_without_event(factory: MockFactory) -> None:
    c = GpioContactor(ContactorConfig(pin=RELAY1), pin_factory=factory)
    factory.pin(RCD, pin_class=HeldPin).held = True  # the RCD module drives its trip output
    safety = GpioSafetyInputs(SafetyConfig(residual_current_pin=RCD), [c], pin_factory=factory)
    rec = Recorder(factory, RELAY1)
    safety.set_listener(rec)
    assert factory.pin(RCD).state == 1
    assert safety.active() == [RCD_TRIP]
    assert safety.latched == {SafetyInput.RESIDUAL_CURRENT}
    with pytest.raises(ContactorFailure):
        c.request_closed()
    assert rec.events == []  # the firmware reads active() at start-up
    factory.pin(RCD).drive_low()
    assert rec.events == [RCD_CLEAR]
    assert safety.reset()
    c.request_closed()


def test_close_releases_pins_keeps_interlock(factory: MockFactory) -> None:
    c = GpioContactor(ContactorConfig(pin=RELAY1), pin_factory=factory)
    cfg = SafetyConfig(residual_current_pin=RCD, emergency_stop_pin=ESTOP)
    safety = GpioSafetyInputs(cfg, [c], pin_factory=factory)
    safety.close()
    safety.close()
    assert safety.active() == []
    assert c.interlocks == {"emergency-stop"}
    # Pins are free for a new instance.
    GpioSafetyInputs(cfg, [c], pin_factory=factory).close()


def test_trip_opens_the_contactor_while_the_event_loop_is_blocked(factory: MockFactory) -> None:
    """The trip path never goes through the event loop: with the loop's thread stuck inside a
    callback, an edge from another thread (lgpio's notification thread on a Pi) opens and
    interlocks the contactor and tells the listener, all before the loop runs again."""
    import asyncio

    c = GpioContactor(ContactorConfig(pin=RELAY1), pin_factory=factory)
    safety = GpioSafetyInputs(SafetyConfig(residual_current_pin=RCD), [c], pin_factory=factory)
    rec = Recorder(factory, RELAY1)
    safety.set_listener(rec)
    c.request_closed()
    loop = asyncio.new_event_loop()
    blocked, release = threading.Event(), threading.Event()
    loop_ran_after: list[bool] = []

    def block_the_loop() -> None:
        blocked.set()
        release.wait(timeout=30)

    def loop_thread() -> None:
        loop.call_soon(block_the_loop)
        loop.call_soon(lambda: loop_ran_after.append(True))
        loop.call_soon(loop.stop)
        loop.run_forever()

    runner = threading.Thread(target=loop_thread, name="event-loop")
    runner.start()
    try:
        assert blocked.wait(timeout=10)
        edge = threading.Thread(target=factory.pin(RCD).drive_high, name="edge")
        edge.start()
        edge.join(timeout=10)
        # The loop is still stuck in block_the_loop, and the trip is complete.
        assert not edge.is_alive() and loop_ran_after == []
        assert history(factory.pin(RELAY1)) == [0, 1, 0]
        assert c.interlocks == {"residual-current"}
        assert rec.calls == [(RCD_TRIP, (0.0,), "edge")]
    finally:
        release.set()
        runner.join(timeout=10)
        loop.close()
    assert loop_ran_after == [True]
    safety.close()


def test_switch_interval_is_short_while_inputs_are_watched(factory: MockFactory) -> None:
    """A trip's thread takes the GIL from a busy event loop within the switch interval: it is
    at most SWITCH_INTERVAL_S while safety inputs are open, and the previous value again after
    the last holder closes."""
    import sys

    from hal.gpio.safety import SWITCH_INTERVAL_S, _SwitchInterval

    c = GpioContactor(ContactorConfig(pin=RELAY1), pin_factory=factory)
    safety = GpioSafetyInputs(SafetyConfig(residual_current_pin=RCD), [c], pin_factory=factory)
    assert sys.getswitchinterval() <= SWITCH_INTERVAL_S
    safety.close()

    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        hold = _SwitchInterval()
        hold.hold()
        hold.hold()
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
        hold.release()
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
        hold.release()
        assert sys.getswitchinterval() == pytest.approx(0.005)
    finally:
        sys.setswitchinterval(before)
