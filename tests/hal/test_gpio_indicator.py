"""GpioStatusIndicator on gpiozero mock PWM pins."""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import pairwise

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from hal.config import IndicatorConfig
from hal.gpio import GpioStatusIndicator
from hal.interfaces import StatusIndicator
from hal.types import BLUE, GREEN, RED, YELLOW, Colour, LightPattern

R, G, B = 5, 6, 13
CFG = IndicatorConfig(red_pin=R, green_pin=G, blue_pin=B, pwm_frequency_hz=250.0)




@pytest.fixture
def led(factory: MockFactory) -> Iterator[GpioStatusIndicator]:
    ind = GpioStatusIndicator(CFG, pin_factory=factory)
    yield ind
    ind.close()


def history(pin: MockPWMPin) -> list[float]:
    return [round(float(s.state), 6) for s in pin.states]


def rising_edges(values: list[float]) -> int:
    return sum(1 for a, b in pairwise(values) if a == 0 and b > 0)


def test_protocol_and_frequency(factory: MockFactory, led: GpioStatusIndicator) -> None:
    assert isinstance(led, StatusIndicator)
    for n in (R, G, B):
        assert factory.pin(n).frequency == 250.0
        assert factory.pin(n).state == 0
    assert led.brightness == 1.0


def test_steady_colour_and_brightness_applied_at_once(
    factory: MockFactory, led: GpioStatusIndicator
) -> None:
    led.show(RED, LightPattern.STEADY)
    assert [factory.pin(n).state for n in (R, G, B)] == [1, 0, 0]
    led.brightness = 0.5
    assert [factory.pin(n).state for n in (R, G, B)] == [0.5, 0, 0]
    led.show(YELLOW, LightPattern.STEADY)  # (1, 0.6, 0) x 0.5
    assert factory.pin(R).state == pytest.approx(0.5)
    assert factory.pin(G).state == pytest.approx(0.3)
    assert history(factory.pin(R)) == [0, 1, 0.5]
    assert history(factory.pin(G)) == [0, 0.3]
    assert history(factory.pin(B)) == [0]


def test_common_anode_inverts(factory: MockFactory) -> None:
    cfg = IndicatorConfig(red_pin=R, green_pin=G, blue_pin=B, active_high=False)
    ind = GpioStatusIndicator(cfg, pin_factory=factory)
    assert [factory.pin(n).state for n in (R, G, B)] == [1, 1, 1]  # off = high
    ind.brightness = 0.25
    ind.show(BLUE, LightPattern.STEADY)
    assert [factory.pin(n).state for n in (R, G, B)] == [1, 1, 0.75]
    ind.close()
    assert factory.pin(B).function == "input"


def test_fast_blink_scaled_by_brightness(factory: MockFactory, led: GpioStatusIndicator) -> None:
    led.brightness = 0.4
    led.show(GREEN, LightPattern.FAST_BLINK)  # 0.15 s on / 0.15 s off
    time.sleep(0.5)
    led.show(GREEN, LightPattern.OFF)
    g = history(factory.pin(G))
    assert set(g) == {0, 0.4}
    assert 2 <= rising_edges(g) <= 3
    assert history(factory.pin(R)) == [0] and history(factory.pin(B)) == [0]
    # The on time is about 0.15 s (timestamps are deltas from the previous change).
    assert 0.14 <= factory.pin(G).states[2].timestamp < 0.3


def test_brightness_change_restarts_pattern_scaled(
    factory: MockFactory, led: GpioStatusIndicator
) -> None:
    led.show(RED, LightPattern.BLINK)
    time.sleep(0.05)
    led.brightness = 0.2  # at once, mid on-phase
    time.sleep(0.05)
    assert factory.pin(R).state == pytest.approx(0.2)
    led.show(RED, LightPattern.OFF)
    assert history(factory.pin(R)) == [0, 1, 0.2, 0]


def test_pulse_fades(factory: MockFactory, led: GpioStatusIndicator) -> None:
    led.brightness = 0.5
    led.show(Colour(0, 0, 1), LightPattern.PULSE)
    time.sleep(0.45)
    led.show(BLUE, LightPattern.OFF)
    b = history(factory.pin(B))
    fading_in = b[1:-1]
    assert len(fading_in) >= 5
    assert fading_in == sorted(fading_in)  # rising ramp during the 1 s fade-in
    assert 0 < max(fading_in) < 0.5  # never above colour x brightness
    assert b[-1] == 0


def test_off_stops_pattern(factory: MockFactory, led: GpioStatusIndicator) -> None:
    led.show(GREEN, LightPattern.FAST_BLINK)
    time.sleep(0.05)
    led.show(GREEN, LightPattern.OFF)
    before = history(factory.pin(G))
    time.sleep(0.35)
    assert history(factory.pin(G)) == before == [0, 1, 0]


def test_same_show_twice_does_not_restart(factory: MockFactory, led: GpioStatusIndicator) -> None:
    led.show(GREEN, LightPattern.BLINK)
    time.sleep(0.02)
    led.show(GREEN, LightPattern.BLINK)
    time.sleep(0.02)
    assert history(factory.pin(G)) == [0, 1]
    assert (led.colour, led.pattern) == (GREEN, LightPattern.BLINK)


@pytest.mark.parametrize("bad", [-0.01, 1.01, 2])
def test_brightness_range(led: GpioStatusIndicator, bad: float) -> None:
    led.brightness = 0.7
    with pytest.raises(ValueError):
        led.brightness = bad
    assert led.brightness == 0.7


def test_zero_brightness_is_dark(factory: MockFactory, led: GpioStatusIndicator) -> None:
    led.brightness = 0
    led.show(RED, LightPattern.FAST_BLINK)
    time.sleep(0.05)
    assert history(factory.pin(R)) == [0]


def test_close_turns_off_and_releases(factory: MockFactory) -> None:
    ind = GpioStatusIndicator(CFG, pin_factory=factory)
    ind.show(RED, LightPattern.FAST_BLINK)
    time.sleep(0.02)
    ind.close()
    ind.close()
    for n in (R, G, B):
        assert factory.pin(n).state == 0
        assert factory.pin(n).function == "input"
    ind.show(GREEN, LightPattern.STEADY)  # ignored after close
    assert factory.pin(G).state == 0
