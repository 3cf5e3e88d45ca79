"""GpioStatusIndicator on gpiozero mock PWM pins and a simulated clock: blinking and pulsing are
checked by stepping simulated time (no test sleeps)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from itertools import pairwise

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from hal.config import IndicatorConfig
from hal.gpio import GpioStatusIndicator
from hal.interfaces import StatusIndicator
from hal.sim.clock import SimulatedClock
from hal.types import BLUE, GREEN, RED, YELLOW, Colour, LightPattern

R, G, B = 5, 6, 13
CFG = IndicatorConfig(red_pin=R, green_pin=G, blue_pin=B, pwm_frequency_hz=250.0)
EPS = 1e-6  # a hair of simulated time: "just before" / "just after" an edge


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock()


@pytest.fixture
def led(factory: MockFactory, clock: SimulatedClock) -> Iterator[GpioStatusIndicator]:
    ind = GpioStatusIndicator(CFG, pin_factory=factory, clock=clock)
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


def test_fast_blink_scaled_by_brightness(
    factory: MockFactory, led: GpioStatusIndicator, clock: SimulatedClock
) -> None:
    led.brightness = 0.4
    led.show(GREEN, LightPattern.FAST_BLINK)  # 0.15 s on / 0.15 s off
    assert factory.pin(G).state == pytest.approx(0.4)
    clock.advance(0.15 - EPS)
    assert factory.pin(G).state == pytest.approx(0.4)  # on for 0.15 s ...
    clock.advance(2 * EPS)
    assert factory.pin(G).state == 0  # ... then off ...
    clock.advance(0.15 - 2 * EPS)
    assert factory.pin(G).state == 0
    clock.advance(2 * EPS)
    assert factory.pin(G).state == pytest.approx(0.4)  # ... for 0.15 s
    clock.advance(0.2)  # t = 0.5
    led.show(GREEN, LightPattern.OFF)
    g = history(factory.pin(G))
    assert g == [0, 0.4, 0, 0.4, 0]
    assert rising_edges(g) == 2
    assert history(factory.pin(R)) == [0] and history(factory.pin(B)) == [0]
    clock.advance(10)
    assert history(factory.pin(G)) == g, "OFF stopped the blinking"


def test_blink_is_half_a_second_on_half_off(
    factory: MockFactory, led: GpioStatusIndicator, clock: SimulatedClock
) -> None:
    led.show(RED, LightPattern.BLINK)
    clock.advance(10 - EPS)  # 10 periods of 1 s
    assert rising_edges(history(factory.pin(R))) == 10


def test_brightness_change_restarts_pattern_scaled(
    factory: MockFactory, led: GpioStatusIndicator, clock: SimulatedClock
) -> None:
    led.show(RED, LightPattern.BLINK)
    clock.advance(0.05)
    led.brightness = 0.2  # at once, mid on-phase
    assert factory.pin(R).state == pytest.approx(0.2)
    clock.advance(0.5 - EPS)  # the restarted on-phase is a whole 0.5 s
    assert factory.pin(R).state == pytest.approx(0.2)
    led.show(RED, LightPattern.OFF)
    assert history(factory.pin(R)) == [0, 1, 0.2, 0]


def test_pulse_fades(factory: MockFactory, led: GpioStatusIndicator, clock: SimulatedClock) -> None:
    led.brightness = 0.5
    led.show(Colour(0, 0, 1), LightPattern.PULSE)
    clock.advance(0.45)
    b = history(factory.pin(B))
    fading_in = b[1:]
    # 25 steps a second: the values at 0.04 ... 0.44 s of the 1 s fade-in to 0.5.
    assert fading_in == [round(0.5 * i / 25, 6) for i in range(1, 12)]
    clock.advance(1.56)  # t = 2.01: faded in (1 s), faded out (1 s): dark again
    b = history(factory.pin(B))
    assert max(b) == 0.5  # never above colour x brightness
    assert b[-1] == 0
    peak = b.index(0.5)
    assert b[1 : peak + 1] == sorted(b[1 : peak + 1]) and b[peak:] == sorted(b[peak:], reverse=True)
    led.show(BLUE, LightPattern.OFF)
    assert factory.pin(B).state == 0


def test_off_stops_pattern(
    factory: MockFactory, led: GpioStatusIndicator, clock: SimulatedClock
) -> None:
    led.show(GREEN, LightPattern.FAST_BLINK)
    clock.advance(0.05)
    led.show(GREEN, LightPattern.OFF)
    before = history(factory.pin(G))
    clock.advance(10)
    assert history(factory.pin(G)) == before == [0, 1, 0]
    assert clock.pending == 0


def test_same_show_twice_does_not_restart(
    factory: MockFactory, led: GpioStatusIndicator, clock: SimulatedClock
) -> None:
    led.show(GREEN, LightPattern.BLINK)
    clock.advance(0.3)
    led.show(GREEN, LightPattern.BLINK)
    clock.advance(0.2 - EPS)  # the first on-phase goes on to its 0.5 s, not 0.3 + 0.5
    assert history(factory.pin(G)) == [0, 1]
    clock.advance(2 * EPS)
    assert history(factory.pin(G)) == [0, 1, 0]
    assert (led.colour, led.pattern) == (GREEN, LightPattern.BLINK)


@pytest.mark.parametrize("bad", [-0.01, 1.01, 2])
def test_brightness_range(led: GpioStatusIndicator, bad: float) -> None:
    led.brightness = 0.7
    with pytest.raises(ValueError):
        led.brightness = bad
    assert led.brightness == 0.7


def test_zero_brightness_is_dark(
    factory: MockFactory, led: GpioStatusIndicator, clock: SimulatedClock
) -> None:
    led.brightness = 0
    led.show(RED, LightPattern.FAST_BLINK)
    clock.advance(1)
    assert history(factory.pin(R)) == [0]


def test_close_turns_off_and_releases(factory: MockFactory, clock: SimulatedClock) -> None:
    ind = GpioStatusIndicator(CFG, pin_factory=factory, clock=clock)
    ind.show(RED, LightPattern.FAST_BLINK)
    clock.advance(0.02)
    ind.close()
    clock.advance(1)
    ind.close()
    for n in (R, G, B):
        assert factory.pin(n).state == 0
        assert factory.pin(n).function == "input"
    ind.show(GREEN, LightPattern.STEADY)  # ignored after close
    assert factory.pin(G).state == 0


def test_on_the_system_clock_blinking_runs_in_the_background(factory: MockFactory) -> None:
    """The default clock: steps run on the timer thread until the pattern is replaced."""
    ind = GpioStatusIndicator(CFG, pin_factory=factory)
    ind.show(RED, LightPattern.FAST_BLINK)
    pin = factory.pin(R)
    assert pin.state == 1
    for _ in range(200):  # a bound, not a timing: the first off-step comes after 0.15 s
        if pin.state == 0:
            break
        threading.Event().wait(0.01)
    ind.close()
    assert history(pin)[:3] == [0, 1, 0]
