"""GpioBuzzer on a gpiozero mock PWM pin and a simulated clock: pulses counted in the recorded
history, their lengths checked by stepping simulated time (no test sleeps)."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from hal.config import BuzzerConfig
from hal.gpio import GpioBuzzer
from hal.interfaces import Buzzer
from hal.sim.clock import SimulatedClock
from hal.types import BeepPattern

PIN = 18
CFG = BuzzerConfig(pin=PIN, tone_hz=2700.0)
EPS = 1e-6  # a hair of simulated time: "just before" / "just after" an edge


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock()


@pytest.fixture
def buzzer(factory: MockFactory, clock: SimulatedClock) -> Iterator[GpioBuzzer]:
    bz = GpioBuzzer(CFG, pin_factory=factory, clock=clock)
    yield bz
    bz.close()


def history(factory: MockFactory) -> list[float]:
    return [float(s.state) for s in factory.pin(PIN).states]


def pulses(values: list[float]) -> int:
    return sum(1 for a, b in pairwise(values) if a == 0 and b > 0)


def test_protocol_tone_and_silent_start(factory: MockFactory, buzzer: GpioBuzzer) -> None:
    assert isinstance(buzzer, Buzzer)
    assert factory.pin(PIN).frequency == 2700.0
    assert history(factory) == [0]
    assert buzzer.enabled and buzzer.volume == 1.0


@pytest.mark.parametrize(
    ("pattern", "count"), [(BeepPattern.CARD_READ, 1), (BeepPattern.ACCEPTED, 2)]
)
def test_short_patterns(
    factory: MockFactory,
    buzzer: GpioBuzzer,
    clock: SimulatedClock,
    pattern: BeepPattern,
    count: int,
) -> None:
    buzzer.play(pattern)
    assert pattern.beeps[0][0] == 0.08
    assert history(factory) == [0, 0.5]  # on at once
    clock.advance(0.08 - EPS)
    assert history(factory) == [0, 0.5]  # each beep lasts 0.08 s ...
    clock.advance(EPS)
    assert history(factory) == [0, 0.5, 0]  # ... to the simulated instant
    clock.advance(10)
    assert not buzzer.playing
    assert history(factory) == [0] + [0.5, 0] * count


def test_long_pattern_three_pulses(
    factory: MockFactory, buzzer: GpioBuzzer, clock: SimulatedClock
) -> None:
    buzzer.volume = 0.8
    buzzer.play(BeepPattern.REJECTED)
    assert buzzer.playing
    clock.advance(3 * (0.4 + 0.2) - EPS)  # 3 x (0.4 on + 0.2 off)
    assert buzzer.playing  # the last off time is part of the pattern
    clock.advance(EPS)
    assert not buzzer.playing and buzzer.wait(0)
    h = history(factory)
    assert pulses(h) == 3
    assert h == [0] + [pytest.approx(0.4), 0] * 3  # volume 0.8 -> duty 0.4


@pytest.mark.parametrize(("volume", "duty"), [(1.0, 0.5), (0.5, 0.25), (0.1, 0.05)])
def test_volume_scales_duty(
    factory: MockFactory, buzzer: GpioBuzzer, clock: SimulatedClock, volume: float, duty: float
) -> None:
    buzzer.volume = volume
    buzzer.play(BeepPattern.CARD_READ)
    clock.advance(1)
    assert history(factory) == [0, pytest.approx(duty), 0]


def test_volume_is_read_at_the_start_of_each_beep(
    factory: MockFactory, buzzer: GpioBuzzer, clock: SimulatedClock
) -> None:
    buzzer.play(BeepPattern.ACCEPTED)
    buzzer.volume = 0.5  # during the first beep: the second one is quieter
    clock.advance(1)
    assert history(factory) == [0, 0.5, 0, 0.25, 0]


def test_volume_zero_is_silent(
    factory: MockFactory, buzzer: GpioBuzzer, clock: SimulatedClock
) -> None:
    buzzer.volume = 0
    buzzer.play(BeepPattern.ACCEPTED)
    clock.advance(1)
    assert history(factory) == [0]


def test_disabled_stays_silent(
    factory: MockFactory, buzzer: GpioBuzzer, clock: SimulatedClock
) -> None:
    buzzer.enabled = False
    buzzer.play(BeepPattern.ACCEPTED)
    assert not buzzer.playing
    clock.advance(1)
    assert history(factory) == [0]
    assert clock.pending == 0


def test_disabling_silences_running_pattern(
    factory: MockFactory, buzzer: GpioBuzzer, clock: SimulatedClock
) -> None:
    buzzer.play(BeepPattern.FAULT)
    clock.advance(0.05)
    buzzer.enabled = False
    assert not buzzer.playing
    assert history(factory) == [0, 0.5, 0]
    clock.advance(10)
    assert history(factory) == [0, 0.5, 0]


def test_new_pattern_replaces_running_one(
    factory: MockFactory, buzzer: GpioBuzzer, clock: SimulatedClock
) -> None:
    buzzer.play(BeepPattern.REJECTED)  # first beep is 0.4 s long
    clock.advance(0.05)
    buzzer.play(BeepPattern.CARD_READ)
    # cut-short long beep, then one short beep
    assert history(factory) == [0, 0.5, 0, 0.5]
    clock.advance(0.08)
    assert history(factory) == [0, 0.5, 0, 0.5, 0]
    clock.advance(0.08)  # CARD_READ's off time: the pattern ends at 0.05 + 0.08 + 0.08
    assert not buzzer.playing
    clock.advance(10)
    assert history(factory) == [0, 0.5, 0, 0.5, 0]  # the long pattern did not continue


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_volume_range(buzzer: GpioBuzzer, bad: float) -> None:
    with pytest.raises(ValueError):
        buzzer.volume = bad
    assert buzzer.volume == 1.0
    with pytest.raises(ValueError):
        GpioBuzzer(
            BuzzerConfig(pin=PIN + 1), pin_factory=MockFactory(pin_class=MockPWMPin), volume=bad
        )


def test_close_mid_beep_silences_and_releases(factory: MockFactory, clock: SimulatedClock) -> None:
    bz = GpioBuzzer(CFG, pin_factory=factory, clock=clock)
    bz.play(BeepPattern.FAULT)
    clock.advance(0.05)
    bz.close()
    pin = factory.pin(PIN)
    assert pin.state == 0 and pin.function == "input" and pin.frequency is None
    bz.play(BeepPattern.CARD_READ)  # ignored after close
    bz.close()
    clock.advance(10)
    assert [float(s.state) for s in pin.states] == [0, 0.5, 0]


def test_on_the_system_clock_a_pattern_plays_in_the_background(factory: MockFactory) -> None:
    """The default clock: the pattern runs on the timer thread; wait() ends with it."""
    bz = GpioBuzzer(CFG, pin_factory=factory)
    bz.play(BeepPattern.CARD_READ)  # 0.08 s on, 0.08 s off
    assert bz.wait(5)
    assert history(factory) == [0, 0.5, 0]
    bz.close()
