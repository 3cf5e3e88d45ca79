"""PatternPlayer on a simulated clock: steps at their times, replacement, stop, a failing write."""

from __future__ import annotations

import itertools
import logging

import pytest

from hal.gpio.pattern import PatternPlayer
from hal.sim.clock import SimulatedClock


def player() -> tuple[PatternPlayer[int], list[tuple[float, int]], SimulatedClock]:
    clock = SimulatedClock()
    written: list[tuple[float, int]] = []
    return (
        PatternPlayer(lambda v: written.append((clock.monotonic(), v)), clock, "test"),
        written,
        clock,
    )


def test_steps_are_written_at_their_times_and_zero_length_steps_at_once() -> None:
    p, written, clock = player()
    p.play([(1, 0.5), (2, 0.0), (3, 0.25), (4, 1.0)])
    assert written == [(0.0, 1)] and p.playing
    clock.advance(10)
    assert written == [(0.0, 1), (0.5, 2), (0.5, 3), (0.75, 4)]
    assert not p.playing and p.wait(0)


def test_replace_and_stop_leave_nothing_of_the_old_pattern() -> None:
    p, written, clock = player()
    p.play(itertools.cycle([(1, 0.1), (0, 0.1)]))
    clock.advance(0.15)
    p.play([(7, 1.0)])
    clock.advance(0.5)
    assert written == [(0.0, 1), (0.1, 0), (0.15, 7)]
    assert p.stop() is True and p.stop() is False
    clock.advance(10)
    assert written[-1] == (0.15, 7) and clock.pending == 0


def test_a_failing_write_ends_the_pattern_with_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = SimulatedClock()

    def write(value: int) -> None:
        if value == 2:
            raise OSError("pin gone")

    p = PatternPlayer(write, clock, "lamp")
    p.play([(1, 0.1), (2, 0.1), (3, 0.1)])
    with caplog.at_level(logging.ERROR, logger="hal.gpio.pattern"):
        clock.advance(1)
    assert not p.playing
    assert [r.getMessage() for r in caplog.records] == ["lamp pattern failed"]
