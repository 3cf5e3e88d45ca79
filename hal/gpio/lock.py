"""Socket-outlet connector lock: a motor (or solenoid) on an H-bridge, with a feedback switch.

``lock_pin`` drives the motor towards locked, ``unlock_pin`` towards unlocked; both outputs are
active high (an H-bridge input).  Both on at once would short the bridge, so every write goes
through ``_set_drive``, which switches the other output off *before* switching one on, under a
thread lock.  The safe state, also between pulses and after ``close``, is both outputs off.

The feedback switch is closed when locked.  Its pin is read with a pull-down when
``feedback_active_high`` (switch to 3V3) and a pull-up otherwise (switch to GND), so a broken
feedback wire reads "not locked": the firmware then never energises on a lock it cannot see.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from gpiozero import DigitalInputDevice, DigitalOutputDevice

from hal.config import LockConfig
from hal.timing import SYSTEM_CLOCK, Clock
from hal.types import ConfigurationError, LockFailure, LockState

log = logging.getLogger(__name__)


class GpioConnectorLock:
    """``hal.interfaces.ConnectorLock`` on two GPIO outputs and one input (BCM numbering).

    Timing comes from ``LockConfig`` (seconds): each attempt pulses for ``pulse_s``, switches the
    motor off, waits ``settle_s`` and reads the feedback; a failed attempt is retried after
    ``retry_delay_s``, ``attempts`` times in total, then ``LockFailure`` is raised.
    ``lock``/``unlock`` calls are serialised: a second call waits for the first to finish.
    ``clock`` times the pulses and waits (tests pass ``hal.sim.clock.SimulatedClock``).
    """

    def __init__(
        self, cfg: LockConfig, pin_factory: object | None = None, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        if cfg.attempts < 1:
            raise ConfigurationError(f"lock attempts must be >= 1, not {cfg.attempts}")
        if cfg.pulse_s <= 0 or cfg.settle_s < 0 or cfg.retry_delay_s < 0:
            raise ConfigurationError("lock pulse_s must be > 0, settle_s and retry_delay_s >= 0")
        if len({cfg.lock_pin, cfg.unlock_pin, cfg.feedback_pin}) != 3:
            raise ConfigurationError("lock, unlock and feedback need three different pins")
        self._cfg = cfg
        self._clock = clock
        self._drive_lock = threading.Lock()
        self._operation = asyncio.Lock()
        self._last_command: LockState | None = None
        self._closed = False
        devices: list[DigitalOutputDevice | DigitalInputDevice] = []
        try:
            self._lock_out = DigitalOutputDevice(
                cfg.lock_pin, active_high=True, initial_value=False, pin_factory=pin_factory
            )
            devices.append(self._lock_out)
            self._unlock_out = DigitalOutputDevice(
                cfg.unlock_pin, active_high=True, initial_value=False, pin_factory=pin_factory
            )
            devices.append(self._unlock_out)
            self._feedback = DigitalInputDevice(
                cfg.feedback_pin, pull_up=not cfg.feedback_active_high, pin_factory=pin_factory
            )
        except Exception:
            for device in devices:
                device.close()
            raise

    # -- ConnectorLock protocol -------------------------------------------------------------------

    async def lock(self) -> None:
        """Drive towards locked until the feedback confirms; ``LockFailure`` (code ``LOCK``)."""
        await self._move(LockState.LOCKED)

    async def unlock(self) -> None:
        """Drive towards unlocked until the feedback confirms; ``LockFailure`` (``UNLOCK``)."""
        await self._move(LockState.UNLOCKED)

    @property
    def state(self) -> LockState:
        """From the feedback switch, checked against the last command.

        Before any command: what the switch shows.  After a command: that state once the switch
        agrees, ``UNKNOWN`` while it does not (moving, failed, or forced by hand)."""
        if self._closed:
            return LockState.UNKNOWN
        seen = LockState.LOCKED if self._feedback_locked() else LockState.UNLOCKED
        if self._last_command is None or self._last_command is seen:
            return seen
        return LockState.UNKNOWN

    def close(self) -> None:
        """Motor off (both outputs low), then release the pins."""
        with self._drive_lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._lock_out.off()
                self._unlock_out.off()
            finally:
                self._lock_out.close()
                self._unlock_out.close()
                self._feedback.close()

    # -- internals --------------------------------------------------------------------------------

    def _feedback_locked(self) -> bool:
        return bool(self._feedback.is_active)

    def _set_drive(self, towards: LockState | None) -> None:
        """Energise one side of the bridge (``None``: neither).  The other side always goes off
        first, so no instant has both outputs on."""
        with self._drive_lock:
            if self._closed:
                return
            if towards is LockState.LOCKED:
                self._unlock_out.off()
                self._lock_out.on()
            elif towards is LockState.UNLOCKED:
                self._lock_out.off()
                self._unlock_out.on()
            else:
                self._lock_out.off()
                self._unlock_out.off()

    async def _move(self, target: LockState) -> None:
        cfg = self._cfg
        word = "locked" if target is LockState.LOCKED else "unlocked"
        async with self._operation:
            if self._closed:
                raise RuntimeError("connector lock driver is closed")
            self._last_command = target
            for attempt in range(1, cfg.attempts + 1):
                try:
                    self._set_drive(target)
                    await self._clock.sleep(cfg.pulse_s)
                finally:
                    # Also on cancellation: a motor left energised against its end stop burns.
                    self._set_drive(None)
                await self._clock.sleep(cfg.settle_s)
                if self._closed:
                    raise RuntimeError("connector lock driver closed while moving")
                if self._feedback_locked() == (target is LockState.LOCKED):
                    if attempt > 1:
                        log.info("connector lock %s on attempt %d", word, attempt)
                    return
                log.warning(
                    "connector lock not %s after attempt %d of %d", word, attempt, cfg.attempts
                )
                if attempt < cfg.attempts:
                    await self._clock.sleep(cfg.retry_delay_s)
            shown = "locked" if self._feedback_locked() else "not locked"
            drive_pin = cfg.lock_pin if target is LockState.LOCKED else cfg.unlock_pin
            raise LockFailure(
                f"connector lock did not confirm {word} after {cfg.attempts} attempt(s) of "
                f"{cfg.pulse_s} s on GPIO{drive_pin}: "
                f"feedback switch on GPIO{cfg.feedback_pin} reads {shown}",
                vendor_code="LOCK" if target is LockState.LOCKED else "UNLOCK",
            )
