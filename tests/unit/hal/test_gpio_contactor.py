"""GpioContactor on gpiozero mock pins: assertions are on the recorded pin history."""

from __future__ import annotations

import threading

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from hal.config import ContactorConfig
from hal.gpio import GpioContactor
from hal.interfaces import Contactor
from hal.types import ContactorFailure, ContactorStatus, HardwareFault

RELAY, MIRROR = 17, 27


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def history(pin: MockPWMPin) -> list[float]:
    return [float(s.state) for s in pin.states]


def test_implements_protocol(factory: MockFactory) -> None:
    c = GpioContactor(ContactorConfig(pin=RELAY), pin_factory=factory)
    assert isinstance(c, Contactor)
    c.close()


def test_close_open_sequence_active_high(factory: MockFactory) -> None:
    c = GpioContactor(ContactorConfig(pin=RELAY), pin_factory=factory)
    pin = factory.pin(RELAY)
    assert pin.function == "output"
    assert history(pin) == [0]  # starts open
    c.request_closed()
    c.request_closed()  # idempotent: no extra edge
    c.open()
    c.open()
    assert history(pin) == [0, 1, 0]
    st = c.status()
    assert (st.commanded_closed, st.feedback_closed, st.welded) == (False, None, False)
    c.close()
    assert pin.function == "input"


def test_close_open_sequence_active_low(factory: MockFactory) -> None:
    c = GpioContactor(ContactorConfig(pin=RELAY, active_high=False), pin_factory=factory)
    pin = factory.pin(RELAY)
    c.request_closed()
    assert c.status().commanded_closed
    c.open()
    # MockPin starts low; the driver sets the inactive (high) level at once.
    assert history(pin) == [0, 1, 0, 1]


def test_open_from_another_thread(factory: MockFactory) -> None:
    c = GpioContactor(ContactorConfig(pin=RELAY), pin_factory=factory)
    c.request_closed()
    t = threading.Thread(target=c.open)
    t.start()
    t.join()
    assert history(factory.pin(RELAY)) == [0, 1, 0]
    assert not c.status().commanded_closed


def test_mirror_following_is_healthy(factory: MockFactory) -> None:
    clock = FakeClock()
    cfg = ContactorConfig(pin=RELAY, mirror_pin=MIRROR, settle_s=0.25)
    c = GpioContactor(cfg, pin_factory=factory, clock=clock)
    mirror = factory.pin(MIRROR)
    assert mirror.pull == "down"
    c.request_closed()
    clock.now += 0.1
    mirror.drive_high()
    clock.now += 1.0
    st = c.status()
    assert (st.commanded_closed, st.feedback_closed, st.welded, st.failed_to_close) == (
        True,
        True,
        False,
        False,
    )
    c.open()
    clock.now += 0.1
    mirror.drive_low()
    clock.now += 5.0
    st = c.status()
    assert (st.feedback_closed, st.welded, st.failed_to_close) == (False, False, False)


def test_weld_detected_latched_and_refuses(factory: MockFactory) -> None:
    clock = FakeClock()
    cfg = ContactorConfig(pin=RELAY, mirror_pin=MIRROR, settle_s=0.25)
    c = GpioContactor(cfg, pin_factory=factory, clock=clock)
    mirror = factory.pin(MIRROR)
    c.request_closed()
    mirror.drive_high()
    c.open()
    clock.now += 0.2  # within the settle time: not yet a weld
    assert not c.status().welded
    clock.now += 0.1
    st = c.status()
    assert st.welded and st.feedback_closed and not st.commanded_closed
    # Mirror opening later does not clear the latch.
    mirror.drive_low()
    clock.now += 10
    assert c.status().welded
    with pytest.raises(ContactorFailure) as err:
        c.request_closed()
    assert err.value.vendor_code == "WELD"
    assert err.value.fault is HardwareFault.POWER_SWITCH_FAILURE
    assert f"GPIO{RELAY}" in err.value.detail
    assert history(factory.pin(RELAY)) == [0, 1, 0]  # never re-closed


def test_weld_found_by_request_closed_without_status_poll(factory: MockFactory) -> None:
    clock = FakeClock()
    cfg = ContactorConfig(pin=RELAY, mirror_pin=MIRROR, settle_s=0.25)
    c = GpioContactor(cfg, pin_factory=factory, clock=clock)
    factory.pin(MIRROR).drive_high()  # mirror closed since start-up, never commanded closed
    clock.now += 0.5
    with pytest.raises(ContactorFailure):
        c.request_closed()
    assert history(factory.pin(RELAY)) == [0]


def test_mirror_bounce_restarts_settle_time(factory: MockFactory) -> None:
    clock = FakeClock()
    cfg = ContactorConfig(pin=RELAY, mirror_pin=MIRROR, settle_s=0.25)
    c = GpioContactor(cfg, pin_factory=factory, clock=clock)
    mirror = factory.pin(MIRROR)
    clock.now += 5  # long open and idle
    mirror.drive_high()  # a bounce/glitch just now
    clock.now += 0.1
    assert not c.status().welded
    clock.now += 0.2
    assert c.status().welded


def test_failed_to_close_not_latched(factory: MockFactory) -> None:
    clock = FakeClock()
    cfg = ContactorConfig(pin=RELAY, mirror_pin=MIRROR, settle_s=0.25)
    c = GpioContactor(cfg, pin_factory=factory, clock=clock)
    c.request_closed()
    clock.now += 0.2
    assert not c.status().failed_to_close
    clock.now += 0.1
    st = c.status()
    assert st.failed_to_close and not st.welded and st.feedback_closed is False
    factory.pin(MIRROR).drive_high()
    assert not c.status().failed_to_close
    c.open()
    factory.pin(MIRROR).drive_low()
    clock.now += 1
    assert c.status() == ContactorStatus(False, False, welded=False, failed_to_close=False)


def test_mirror_active_low_uses_pull_up(factory: MockFactory) -> None:
    clock = FakeClock()
    cfg = ContactorConfig(pin=RELAY, mirror_pin=MIRROR, mirror_active_high=False)
    c = GpioContactor(cfg, pin_factory=factory, clock=clock)
    mirror = factory.pin(MIRROR)
    assert mirror.pull == "up"
    assert c.status().feedback_closed is False
    c.request_closed()
    mirror.drive_low()
    clock.now += 1
    st = c.status()
    assert st.feedback_closed and not st.failed_to_close


def test_interlock_opens_and_refuses_until_released(factory: MockFactory) -> None:
    c = GpioContactor(ContactorConfig(pin=RELAY), pin_factory=factory)
    pin = factory.pin(RELAY)
    c.request_closed()
    c.interlock("residual-current")
    c.interlock("emergency-stop")
    assert history(pin) == [0, 1, 0]
    assert c.interlocks == {"residual-current", "emergency-stop"}
    with pytest.raises(ContactorFailure) as err:
        c.request_closed()
    assert err.value.vendor_code == "TRIP"
    c.release_interlock("residual-current")
    with pytest.raises(ContactorFailure):
        c.request_closed()  # one reason still engaged
    c.release_interlock("emergency-stop")
    c.request_closed()
    assert history(pin) == [0, 1, 0, 1]
    c.interlock("x")
    c.release_interlock()  # all
    assert c.interlocks == frozenset()


def test_interlock_races_request_closed(factory: MockFactory) -> None:
    """Whatever the interleaving, once interlock() returned the relay is off and stays off."""
    c = GpioContactor(ContactorConfig(pin=RELAY), pin_factory=factory)
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                c.request_closed()
            except ContactorFailure:
                pass

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    c.interlock("residual-current")
    assert factory.pin(RELAY).state == 0
    stop.set()
    for t in threads:
        t.join()
    assert factory.pin(RELAY).state == 0
    assert not c.status().commanded_closed


def test_close_leaves_relay_open_and_releases(factory: MockFactory) -> None:
    cfg = ContactorConfig(pin=RELAY, mirror_pin=MIRROR)
    c = GpioContactor(cfg, pin_factory=factory)
    c.request_closed()
    c.close()
    assert history(factory.pin(RELAY))[:3] == [0, 1, 0]
    assert factory.pin(RELAY).function == "input"
    c.open()  # no-op, no error
    c.close()
    assert c.status().feedback_closed is None
    with pytest.raises(RuntimeError):
        c.request_closed()
    # The pins are free again.
    GpioContactor(cfg, pin_factory=factory).close()
