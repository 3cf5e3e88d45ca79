"""GpioPowerFailInput on gpiozero mock pins: the level on loss, the pull resistor it implies,
one listener call per change, and the level at start."""

from __future__ import annotations

from gpiozero.pins.mock import MockFactory

from hal.config import PowerFailConfig
from hal.gpio import GpioPowerFailInput
from hal.interfaces import PowerFailInput
from hal.sim.wiring import wired_pin_class

PIN = 26


def test_active_high_line_reports_each_change_once(factory: MockFactory) -> None:
    line = GpioPowerFailInput(PowerFailConfig(pin=PIN, bounce_s=0), pin_factory=factory)
    heard: list[bool] = []
    line.set_listener(heard.append)
    pin = factory.pin(PIN)
    try:
        assert isinstance(line, PowerFailInput)
        assert pin.pull == "down"  # active high: a loose wire reads "mains present"
        assert not line.mains_lost()
        pin.drive_high()
        assert line.mains_lost()
        pin.drive_high()  # no edge, no second report
        pin.drive_low()
        assert heard == [True, False]
    finally:
        line.close()
    pin.drive_high()
    assert heard == [True, False], "no report after close"


def test_active_low_open_drain_line_is_read_with_a_pull_up(factory: MockFactory) -> None:
    line = GpioPowerFailInput(
        PowerFailConfig(pin=PIN, active_high=False, bounce_s=0), pin_factory=factory
    )
    heard: list[bool] = []
    line.set_listener(heard.append)
    pin = factory.pin(PIN)
    try:
        assert pin.pull == "up"
        assert not line.mains_lost()  # pulled up: mains present
        pin.drive_low()
        assert line.mains_lost() and heard == [True]
    finally:
        line.close()


def test_a_line_lost_at_start_reads_lost() -> None:
    # A HAT's output holds the line whatever pull the driver sets (the bench's wired pin).
    factory = MockFactory(pin_class=wired_pin_class())
    pin = factory.pin(PIN)
    pin.wire = True
    pin.drive_high()
    line = GpioPowerFailInput(PowerFailConfig(pin=PIN, bounce_s=0), pin_factory=factory)
    try:
        assert line.mains_lost()
    finally:
        line.close()
        factory.close()
