"""Display backlight: brightness is the PWM duty cycle, seen on the mock pin."""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory

from hal.config import DisplayConfig
from hal.gpio.display import GpioBacklight


def test_brightness_sets_the_duty_cycle_and_close_darkens(factory: MockFactory) -> None:
    display = GpioBacklight(DisplayConfig(backlight_pin=18), pin_factory=factory)
    pin = factory.pin(18)
    assert pin.state == 1.0 and pin.frequency == 500
    display.brightness = 0.25
    assert pin.state == 0.25
    with pytest.raises(ValueError):
        display.brightness = 1.5
    assert pin.state == 0.25
    display.close()
    assert [s.state for s in pin.states][-1] == 0.0
