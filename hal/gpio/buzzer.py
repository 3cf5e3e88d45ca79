"""Passive piezo buzzer on one PWM GPIO output.

A passive piezo needs a square wave at its resonance (``BuzzerConfig.tone_hz``); the duty cycle
sets the loudness: 50 % is the loudest a square wave gets, so ``volume`` 1.0 maps to duty 0.5 and
``volume`` v to 0.5 * v (0 is silent).  A pattern's beeps are timed on a ``hal.timing.Clock``
(``hal.gpio.pattern.PatternPlayer``), which switches the duty between that level and 0; a new
``play`` stops the running pattern first.

On a Pi gpiozero's lgpio PWM is software-timed in whole percent, which is fine for a beeper.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

from gpiozero import PWMOutputDevice

from hal.config import BuzzerConfig
from hal.gpio.pattern import PatternPlayer
from hal.timing import SYSTEM_CLOCK, Clock
from hal.types import BeepPattern

log = logging.getLogger(__name__)

# Duty cycle at volume 1.0: a square wave, the loudest a piezo gets from PWM.
_FULL_DUTY = 0.5


class GpioBuzzer:
    """``hal.interfaces.Buzzer`` on gpiozero's ``PWMOutputDevice`` at ``tone_hz``.

    ``enabled`` (default True): when False ``play`` does nothing and disabling silences a pattern
    that is playing.  ``volume`` 0.0-1.0 (default 1.0; ``ValueError`` outside), read at the start
    of each beep.  ``clock`` times the beeps (tests pass ``hal.sim.clock.SimulatedClock``).
    """

    def __init__(
        self,
        cfg: BuzzerConfig,
        pin_factory: object | None = None,
        *,
        enabled: bool = True,
        volume: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if cfg.tone_hz <= 0:
            raise ValueError(f"tone_hz must be > 0, not {cfg.tone_hz}")
        self._check_volume(volume)
        self._enabled = enabled
        self._volume = float(volume)
        self._lock = threading.Lock()
        self._closed = False
        self._out = PWMOutputDevice(
            cfg.pin,
            active_high=True,
            initial_value=0,
            frequency=cfg.tone_hz,
            pin_factory=pin_factory,
        )
        self._player: PatternPlayer[float] = PatternPlayer(self._set_duty, clock, "buzzer")

    def play(self, pattern: BeepPattern) -> None:
        """Start ``pattern`` in the background, replacing a running one; returns at once."""
        with self._lock:
            if self._closed:
                return
            self._stop_player()
            if not self._enabled:
                return
            self._player.play(self._steps(pattern.beeps))

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        with self._lock:
            self._enabled = bool(value)
            if not value and not self._closed:
                self._stop_player()

    @property
    def volume(self) -> float:
        return self._volume

    @volume.setter
    def volume(self, value: float) -> None:
        self._check_volume(value)
        self._volume = float(value)

    @property
    def playing(self) -> bool:
        """True while a pattern plays (including its last off time)."""
        return self._player.playing

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running pattern ends; False on timeout.  For shutdown (on the
        system clock; a simulated clock ends the pattern in ``advance``)."""
        return self._player.wait(timeout)

    def silence(self) -> None:
        """Stop any pattern and drive the output to 0 (the safe state); the pin stays claimed."""
        with self._lock:
            if self._closed:
                return
            self._stop_player()
            self._out.value = 0

    def close(self) -> None:
        """Stop any pattern, silence the output and release the pin."""
        with self._lock:
            if self._closed:
                return
            try:
                self._stop_player()
                self._out.value = 0
            finally:
                self._closed = True
                self._out.close()

    @staticmethod
    def _check_volume(value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"volume {value} outside 0..1")

    def _stop_player(self) -> None:
        """Stop the running pattern; it ends silent.  Caller holds ``self._lock``."""
        if self._player.stop() and not self._out.closed:
            self._out.value = 0

    def _set_duty(self, duty: float) -> None:
        self._out.value = duty

    def _steps(self, beeps: tuple[tuple[float, float], ...]) -> Iterator[tuple[float, float]]:
        for on_s, off_s in beeps:
            # The volume is read at the start of each beep.
            yield _FULL_DUTY * self._volume, on_s
            yield 0.0, off_s
