"""Status light: one RGB LED (or a strip behind three drivers) on three PWM GPIO outputs.

Patterns run in the background on a ``hal.timing.Clock`` (``hal.gpio.pattern.PatternPlayer``; a
pulse is gpiozero's: linear fades in 25 steps a second), so the firmware only calls ``show`` when
the state changes, and a test steps simulated time instead of sleeping.  Brightness scales the
colour before it is written, so a blinking or pulsing pattern is restarted at the new level at
once.
"""

from __future__ import annotations

import itertools
import threading

from gpiozero import PWMLED

from hal.config import IndicatorConfig
from hal.gpio.pattern import PatternPlayer
from hal.timing import SYSTEM_CLOCK, Clock
from hal.types import OFF, Colour, LightPattern

# (on seconds, off seconds) as documented on hal.types.LightPattern.
_BLINK_TIMES = {
    LightPattern.BLINK: (0.5, 0.5),
    LightPattern.FAST_BLINK: (0.15, 0.15),
}
_PULSE_FADE_S = 1.0
_FADE_STEPS_PER_S = 25  # gpiozero's pulse: 25 frames a second

RGB = tuple[float, float, float]
_DARK: RGB = (0.0, 0.0, 0.0)


class GpioStatusIndicator:
    """``hal.interfaces.StatusIndicator`` on three of gpiozero's ``PWMLED`` (red, green, blue).

    ``active_high=False`` is a common-anode LED; ``pwm_frequency_hz`` is set on each channel.
    ``brightness`` (0.0-1.0, default 1.0) multiplies each channel of the colour shown.
    ``clock`` times blinking and pulsing (tests pass ``hal.sim.clock.SimulatedClock``).
    """

    def __init__(
        self,
        cfg: IndicatorConfig,
        pin_factory: object | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if cfg.pwm_frequency_hz <= 0:
            raise ValueError(f"pwm_frequency_hz must be > 0, not {cfg.pwm_frequency_hz}")
        self._lock = threading.Lock()
        self._colour: Colour = OFF
        self._pattern = LightPattern.OFF
        self._brightness = 1.0
        self._closed = False
        # Three PWM LEDs rather than gpiozero's RGBLED: the patterns are played here (on the
        # clock), and each channel takes its PWM frequency at construction.
        leds: list[PWMLED] = []
        try:
            for pin in (cfg.red_pin, cfg.green_pin, cfg.blue_pin):
                leds.append(
                    PWMLED(
                        pin,
                        active_high=cfg.active_high,
                        initial_value=0,
                        frequency=cfg.pwm_frequency_hz,
                        pin_factory=pin_factory,
                    )
                )
        except Exception:
            for led in leds:
                led.close()
            raise
        self._leds = tuple(leds)
        self._player: PatternPlayer[RGB] = PatternPlayer(self._write, clock, "status light")

    def show(self, colour: Colour, pattern: LightPattern) -> None:
        """Show ``colour`` with ``pattern``; repeating what is already shown changes nothing (so
        a running blink is not restarted by a firmware that refreshes its state)."""
        with self._lock:
            if self._closed:
                return
            if (colour, pattern) == (self._colour, self._pattern):
                return
            self._colour, self._pattern = colour, pattern
            self._apply()

    @property
    def brightness(self) -> float:
        return self._brightness

    @brightness.setter
    def brightness(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"brightness {value} outside 0..1")
        with self._lock:
            if value == self._brightness:
                return
            self._brightness = float(value)
            if not self._closed:
                self._apply()

    @property
    def colour(self) -> Colour:
        """The colour last passed to ``show`` (before brightness)."""
        return self._colour

    @property
    def pattern(self) -> LightPattern:
        return self._pattern

    def close(self) -> None:
        """LED off (stops any pattern), then release the pins."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._player.stop()
                self._write(_DARK)
            finally:
                for led in self._leds:
                    led.close()

    def _apply(self) -> None:
        """Write colour x brightness with the pattern.  Caller holds ``self._lock``."""
        scaled = _times((self._colour.red, self._colour.green, self._colour.blue), self._brightness)
        pattern = self._pattern
        self._player.stop()
        if pattern is LightPattern.OFF or scaled == _DARK:
            self._write(_DARK)
        elif pattern is LightPattern.STEADY:
            self._write(scaled)
        elif pattern is LightPattern.PULSE:
            self._player.play(itertools.cycle(_pulse(scaled)))
        else:
            on_s, off_s = _BLINK_TIMES[pattern]
            self._player.play(itertools.cycle([(scaled, on_s), (_DARK, off_s)]))

    def _write(self, rgb: RGB) -> None:
        for led, value in zip(self._leds, rgb, strict=True):
            led.value = value


def _pulse(colour: RGB) -> list[tuple[RGB, float]]:
    """One period of a pulse: fade in from dark, fade out to dark (linear, as gpiozero's
    ``RGBLED.pulse``)."""
    frames = int(_FADE_STEPS_PER_S * _PULSE_FADE_S)
    frame_s = 1 / _FADE_STEPS_PER_S
    return (
        [(_times(colour, i / frames), frame_s) for i in range(frames)]
        + [(colour, 0.0)]
        + [(_times(colour, 1 - i / frames), frame_s) for i in range(frames)]
        + [(_DARK, 0.0)]
    )


def _times(colour: RGB, k: float) -> RGB:
    return (colour[0] * k, colour[1] * k, colour[2] * k)
