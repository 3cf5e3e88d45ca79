"""Status light: one RGB LED (or a strip behind three drivers) on three PWM GPIO outputs.

Patterns run in gpiozero's own background blink thread (``RGBLED.blink`` / ``pulse``), so the
firmware only calls ``show`` when the state changes.  Brightness scales the colour before it is
handed to gpiozero, so a blinking or pulsing pattern is restarted at the new level at once.
"""

from __future__ import annotations

import threading

from gpiozero import RGBLED

from hal.config import IndicatorConfig
from hal.types import OFF, Colour, LightPattern

# (on seconds, off seconds) as documented on hal.types.LightPattern.
_BLINK_TIMES = {
    LightPattern.BLINK: (0.5, 0.5),
    LightPattern.FAST_BLINK: (0.15, 0.15),
}
_PULSE_FADE_S = 1.0

RGB = tuple[float, float, float]


class GpioStatusIndicator:
    """``hal.interfaces.StatusIndicator`` on gpiozero's ``RGBLED`` with PWM.

    ``active_high=False`` is a common-anode LED; ``pwm_frequency_hz`` is set on each channel.
    ``brightness`` (0.0-1.0, default 1.0) multiplies each channel of the colour shown.
    """

    def __init__(self, cfg: IndicatorConfig, pin_factory: object | None = None) -> None:
        if cfg.pwm_frequency_hz <= 0:
            raise ValueError(f"pwm_frequency_hz must be > 0, not {cfg.pwm_frequency_hz}")
        self._lock = threading.Lock()
        self._colour: Colour = OFF
        self._pattern = LightPattern.OFF
        self._brightness = 1.0
        self._closed = False
        self._rgb = RGBLED(
            cfg.red_pin,
            cfg.green_pin,
            cfg.blue_pin,
            active_high=cfg.active_high,
            initial_value=(0, 0, 0),
            pwm=True,
            pin_factory=pin_factory,
        )
        try:
            # RGBLED has no frequency argument; its PWMLED children do (private but stable
            # attribute in gpiozero 2.0).
            for led in self._rgb._leds:
                led.frequency = cfg.pwm_frequency_hz
        except Exception:
            self._rgb.close()
            raise

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
                self._rgb.off()
            finally:
                self._rgb.close()

    def _apply(self) -> None:
        """Push colour x brightness with the pattern to gpiozero.  Caller holds ``self._lock``."""
        b = self._brightness
        scaled: RGB = (self._colour.red * b, self._colour.green * b, self._colour.blue * b)
        pattern = self._pattern
        if pattern is LightPattern.OFF or scaled == (0.0, 0.0, 0.0):
            self._rgb.off()
        elif pattern is LightPattern.STEADY:
            self._rgb.value = scaled  # also stops a running blink
        elif pattern is LightPattern.PULSE:
            self._rgb.pulse(
                fade_in_time=_PULSE_FADE_S,
                fade_out_time=_PULSE_FADE_S,
                on_color=scaled,
                off_color=(0, 0, 0),
                background=True,
            )
        else:
            on_s, off_s = _BLINK_TIMES[pattern]
            self._rgb.blink(
                on_time=on_s,
                off_time=off_s,
                on_color=scaled,
                off_color=(0, 0, 0),
                background=True,
            )
