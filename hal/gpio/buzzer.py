"""Passive piezo buzzer on one PWM GPIO output.

A passive piezo needs a square wave at its resonance (``BuzzerConfig.tone_hz``); the duty cycle
sets the loudness: 50 % is the loudest a square wave gets, so ``volume`` 1.0 maps to duty 0.5 and
``volume`` v to 0.5 * v (0 is silent).  A pattern's beeps are timed by a small daemon thread that
switches the duty between that level and 0; a new ``play`` stops the running pattern first.

On a Pi gpiozero's lgpio PWM is software-timed in whole percent, which is fine for a beeper.
"""

from __future__ import annotations

import logging
import threading

from gpiozero import PWMOutputDevice

from hal.config import BuzzerConfig
from hal.types import BeepPattern

log = logging.getLogger(__name__)

# Duty cycle at volume 1.0: a square wave, the loudest a piezo gets from PWM.
_FULL_DUTY = 0.5


class GpioBuzzer:
    """``hal.interfaces.Buzzer`` on gpiozero's ``PWMOutputDevice`` at ``tone_hz``.

    ``enabled`` (default True): when False ``play`` does nothing and disabling silences a pattern
    that is playing.  ``volume`` 0.0-1.0 (default 1.0; ``ValueError`` outside), read at the start
    of each beep.
    """

    def __init__(
        self,
        cfg: BuzzerConfig,
        pin_factory: object | None = None,
        *,
        enabled: bool = True,
        volume: float = 1.0,
    ) -> None:
        if cfg.tone_hz <= 0:
            raise ValueError(f"tone_hz must be > 0, not {cfg.tone_hz}")
        self._check_volume(volume)
        self._enabled = enabled
        self._volume = float(volume)
        self._lock = threading.Lock()
        self._player: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        self._out = PWMOutputDevice(
            cfg.pin,
            active_high=True,
            initial_value=0,
            frequency=cfg.tone_hz,
            pin_factory=pin_factory,
        )

    def play(self, pattern: BeepPattern) -> None:
        """Start ``pattern`` in the background, replacing a running one; returns at once."""
        with self._lock:
            if self._closed:
                return
            self._stop_player()
            if not self._enabled:
                return
            stop = threading.Event()
            player = threading.Thread(
                target=self._run,
                args=(pattern.beeps, stop),
                name=f"buzzer-{pattern.value}",
                daemon=True,
            )
            self._stop, self._player = stop, player
            player.start()

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
        """True while a pattern's thread runs (including its last off time)."""
        player = self._player
        return player is not None and player.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the running pattern ends; False on timeout.  For tests and shutdown."""
        player = self._player
        if player is None:
            return True
        player.join(timeout)
        return not player.is_alive()

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
        """Stop and join the running pattern (it ends silent).  Caller holds ``self._lock``."""
        player = self._player
        self._stop.set()
        if player is not None and player is not threading.current_thread():
            player.join()
        self._player = None

    def _run(self, beeps: tuple[tuple[float, float], ...], stop: threading.Event) -> None:
        try:
            for on_s, off_s in beeps:
                duty = _FULL_DUTY * self._volume
                if duty > 0:
                    self._out.value = duty
                if stop.wait(on_s):
                    break
                self._out.value = 0
                if stop.wait(off_s):
                    break
        except Exception:  # a closed device or a pin error must not kill silently in a thread
            log.exception("buzzer pattern failed")
        finally:
            try:
                if not self._out.closed:
                    self._out.value = 0
            except Exception:
                log.debug("could not silence buzzer", exc_info=True)
