"""GpioBuzzer on a gpiozero mock PWM pin: pulses counted in the recorded history."""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import pairwise

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from hal.config import BuzzerConfig
from hal.gpio import GpioBuzzer
from hal.interfaces import Buzzer
from hal.types import BeepPattern

PIN = 18
CFG = BuzzerConfig(pin=PIN, tone_hz=2700.0)




@pytest.fixture
def buzzer(factory: MockFactory) -> Iterator[GpioBuzzer]:
    bz = GpioBuzzer(CFG, pin_factory=factory)
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
    factory: MockFactory, buzzer: GpioBuzzer, pattern: BeepPattern, count: int
) -> None:
    buzzer.play(pattern)
    assert buzzer.wait(2)
    assert history(factory) == [0] + [0.5, 0] * count
    # Each beep lasts about 0.08 s (the timestamp of a fall is the time since the rise).
    for fall in factory.pin(PIN).states[2::2]:
        assert 0.075 <= fall.timestamp < 0.25  # sleeps only overrun under load


def test_long_pattern_three_pulses(factory: MockFactory, buzzer: GpioBuzzer) -> None:
    buzzer.volume = 0.8
    t0 = time.monotonic()
    buzzer.play(BeepPattern.REJECTED)
    assert buzzer.playing
    assert buzzer.wait(3)
    assert 1.75 <= time.monotonic() - t0 < 2.6  # 3 x (0.4 on + 0.2 off)
    h = history(factory)
    assert pulses(h) == 3
    assert h == [0] + [pytest.approx(0.4), 0] * 3  # volume 0.8 -> duty 0.4


@pytest.mark.parametrize(("volume", "duty"), [(1.0, 0.5), (0.5, 0.25), (0.1, 0.05)])
def test_volume_scales_duty(
    factory: MockFactory, buzzer: GpioBuzzer, volume: float, duty: float
) -> None:
    buzzer.volume = volume
    buzzer.play(BeepPattern.CARD_READ)
    assert buzzer.wait(2)
    assert history(factory) == [0, pytest.approx(duty), 0]


def test_volume_zero_is_silent(factory: MockFactory, buzzer: GpioBuzzer) -> None:
    buzzer.volume = 0
    buzzer.play(BeepPattern.ACCEPTED)
    assert buzzer.wait(2)
    assert history(factory) == [0]


def test_disabled_stays_silent(factory: MockFactory, buzzer: GpioBuzzer) -> None:
    buzzer.enabled = False
    buzzer.play(BeepPattern.ACCEPTED)
    assert not buzzer.playing
    time.sleep(0.2)
    assert history(factory) == [0]


def test_disabling_silences_running_pattern(factory: MockFactory, buzzer: GpioBuzzer) -> None:
    buzzer.play(BeepPattern.FAULT)
    time.sleep(0.05)
    buzzer.enabled = False
    assert not buzzer.playing
    assert history(factory) == [0, 0.5, 0]
    time.sleep(0.1)
    assert history(factory) == [0, 0.5, 0]


def test_new_pattern_replaces_running_one(factory: MockFactory, buzzer: GpioBuzzer) -> None:
    buzzer.play(BeepPattern.REJECTED)  # first beep is 0.4 s long
    time.sleep(0.05)
    t0 = time.monotonic()
    buzzer.play(BeepPattern.CARD_READ)
    assert buzzer.wait(2)
    assert time.monotonic() - t0 < 0.35  # the long pattern did not continue
    # cut-short long beep, then one short beep
    assert history(factory) == [0, 0.5, 0, 0.5, 0]
    assert factory.pin(PIN).states[2].timestamp < 0.2


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_volume_range(buzzer: GpioBuzzer, bad: float) -> None:
    with pytest.raises(ValueError):
        buzzer.volume = bad
    assert buzzer.volume == 1.0
    with pytest.raises(ValueError):
        GpioBuzzer(
            BuzzerConfig(pin=PIN + 1), pin_factory=MockFactory(pin_class=MockPWMPin), volume=bad
        )


def test_close_mid_beep_silences_and_releases(factory: MockFactory) -> None:
    bz = GpioBuzzer(CFG, pin_factory=factory)
    bz.play(BeepPattern.FAULT)
    time.sleep(0.05)
    bz.close()
    pin = factory.pin(PIN)
    assert pin.state == 0 and pin.function == "input" and pin.frequency is None
    bz.play(BeepPattern.CARD_READ)  # ignored after close
    bz.close()
    assert [float(s.state) for s in pin.states] == [0, 0.5, 0]
