"""The mains-lost (power-fail) line of a backup supply on a GPIO input.

UPS HATs for the Pi signal a mains loss on one GPIO line (the Geekworm X728 / X708 "PLD" line:
GPIO6, high while the external supply is lost); supercapacitor hold-up modules have a power-fail
output (PFO), often open-drain and low on loss.  ``PowerFailConfig.active_high`` is the level
on loss; the pull resistor is chosen as for the RCD input: active high is read with a
pull-down, active low with a pull-up (an open-drain output needs it).

This driver only reports: every edge (after gpiozero's ``bounce_time``) goes to the listener as
``lost`` True/False.  The hold-off that tells a flicker from a power cut, and what a cut means,
is the firmware's (``firmware.power_loss``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from gpiozero import DigitalInputDevice

from hal.config import PowerFailConfig

log = logging.getLogger(__name__)


class GpioPowerFailInput:
    """``hal.interfaces.PowerFailInput`` on one GPIO input (BCM numbering)."""

    def __init__(self, cfg: PowerFailConfig, pin_factory: object | None = None) -> None:
        self._lock = threading.Lock()
        self._listener: Callable[[bool], None] | None = None
        self._reported: bool | None = None
        # gpiozero inverts is_active when pull_up=True, so is_active == "loss level seen".
        self._device = DigitalInputDevice(
            cfg.pin,
            pull_up=not cfg.active_high,
            bounce_time=cfg.bounce_s or None,
            pin_factory=pin_factory,
        )
        self._device.when_activated = self._edge
        self._device.when_deactivated = self._edge
        with self._lock:
            self._reported = self.mains_lost()
        if self._reported:
            log.warning("power fail input: mains lost at start (GPIO%d)", cfg.pin)

    def set_listener(self, listener: Callable[[bool], None]) -> None:
        with self._lock:
            self._listener = listener

    def mains_lost(self) -> bool:
        return bool(self._device.is_active)

    def close(self) -> None:
        with self._lock:
            self._listener = None
        self._device.when_activated = None
        self._device.when_deactivated = None
        self._device.close()

    def _edge(self) -> None:
        lost = self.mains_lost()
        with self._lock:
            changed = lost != self._reported
            self._reported = lost
            listener = self._listener
        if not changed:
            return
        log.warning("power fail input: mains %s", "LOST" if lost else "back")
        if listener is not None:
            try:
                listener(lost)
            except Exception:
                log.exception("power fail listener failed")
