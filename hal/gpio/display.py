"""A display backlight dimmed by PWM on one GPIO."""

from __future__ import annotations

import threading

from gpiozero import PWMOutputDevice

from hal.config import DisplayConfig


class GpioBacklight:
    """``hal.interfaces.Display``: brightness 0.0-1.0 is the PWM duty cycle."""

    def __init__(self, cfg: DisplayConfig, pin_factory: object | None = None) -> None:
        self._lock = threading.Lock()
        self._brightness = 1.0
        self._device = PWMOutputDevice(
            cfg.backlight_pin,
            active_high=cfg.active_high,
            initial_value=0.0,
            frequency=int(cfg.pwm_frequency_hz),
            pin_factory=pin_factory,
        )
        self._device.value = self._brightness

    @property
    def brightness(self) -> float:
        return self._brightness

    @brightness.setter
    def brightness(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"brightness {value} outside 0..1")
        with self._lock:
            self._brightness = value
            if not self._device.closed:
                self._device.value = value

    def close(self) -> None:
        with self._lock:
            if not self._device.closed:
                self._device.value = 0.0
                self._device.close()
