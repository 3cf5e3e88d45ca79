"""Timed output patterns (beeps, blinks, fades) played on a ``hal.timing.Clock``.

A pattern is a sequence of steps ``(value, seconds)``: the value is written, then the player
waits that long on the clock before the next step (a step of 0 s is only written).  One pattern
plays at a time; ``play`` replaces a running one and ``stop`` ends it, and after either returns
the old pattern writes nothing more (a generation number checked under a lock), so a driver can
drive its output safe right after.  On ``SYSTEM_CLOCK`` the steps run on the clock's timer
thread; on a ``SimulatedClock`` inside ``advance``, so a test checks every edge at its exact
simulated time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from hal.timing import Clock, TimerHandle

log = logging.getLogger(__name__)

V = TypeVar("V")


class PatternPlayer(Generic[V]):
    """Plays patterns through ``write`` (called with each step's value, from the clock's timer
    thread or from ``play`` itself for the first step).  ``name`` appears in a failure's log."""

    def __init__(self, write: Callable[[V], None], clock: Clock, name: str) -> None:
        self._write = write
        self._clock = clock
        self._name = name
        self._lock = threading.RLock()
        self._generation = 0
        self._steps: Iterator[tuple[V, float]] = iter(())
        self._timer: TimerHandle | None = None
        self._done = threading.Event()
        self._done.set()

    @property
    def playing(self) -> bool:
        """True from ``play`` until the last step's time has passed (or ``stop``)."""
        return not self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block (real time) until the pattern ends; False on timeout.  For a finite pattern on
        the system clock (shutdown); a simulated clock ends patterns in ``advance``."""
        return self._done.wait(timeout)

    def play(self, steps: Iterable[tuple[V, float]]) -> None:
        """Stop the running pattern, then write the first step of ``steps`` at once.  ``steps``
        is consumed lazily (an endless ``itertools.cycle`` blinks forever; a generator may read
        a setting, e.g. the volume, at each step)."""
        with self._lock:
            self.stop()
            self._generation += 1
            self._steps = iter(steps)
            self._done = threading.Event()
            self._step(self._generation)

    def stop(self) -> bool:
        """End the running pattern; True if one was playing.  Nothing of it is written after
        this returns; the output keeps the value last written."""
        with self._lock:
            was_playing = self.playing
            self._generation += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._done.set()
            return was_playing

    def _step(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return  # stopped or replaced while this step waited for its time
            self._timer = None
            try:
                for value, seconds in self._steps:
                    self._write(value)
                    if seconds > 0:
                        self._timer = self._clock.call_later(
                            seconds, lambda: self._step(generation)
                        )
                        return
            except Exception:  # a closed device or a pin error: the pattern ends, logged
                log.exception("%s pattern failed", self._name)
            self._done.set()


__all__ = ["PatternPlayer"]
