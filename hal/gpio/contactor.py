"""Power contactor on a GPIO relay output, with an optional mirror (auxiliary) contact input.

The relay output is driven through gpiozero's ``OutputDevice``; the mirror contact, if fitted, is
a ``DigitalInputDevice`` whose internal pull is chosen so an idle (open) contact reads "open":
pull-down for ``mirror_active_high=True``, pull-up otherwise.  An external pull resistor on the
board overrides the weak internal one, which is what a long cable to a contactor needs anyway.

Diagnosis uses the mirror and a settle time (``ContactorConfig.settle_s``, seconds):

* mirror closed while commanded open for longer than ``settle_s``: *welded*.  Latched for the life
  of this object (vendor code ``WELD``); only a restart after repair clears it.
* mirror open while commanded closed for longer than ``settle_s``: *failed to close*.  Not latched:
  it describes the present only, and the firmware decides what to do.

The settle time counts from the later of the last command change and the last mirror change, so
a mirror that bounces restarts the clock rather than being judged on a stale edge.

Interlock: a safety input (``GpioSafetyInputs``) calls ``interlock(reason)`` from its own callback
thread; that opens the contactor and makes ``request_closed`` refuse until ``release_interlock``
is called for every engaged reason (``GpioSafetyInputs.reset()`` does that when the firmware
decides, after unplug or a person's action).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from gpiozero import DigitalInputDevice, OutputDevice

from hal.config import ContactorConfig
from hal.types import ContactorFailure, ContactorStatus

log = logging.getLogger(__name__)

Clock = Callable[[], float]


@runtime_checkable
class InterlockedContactor(Protocol):
    """What a safety input needs of a contactor (``GpioContactor``; a simulated one may offer
    the same): all three callable from any thread; ``interlock`` opens the contactor before it
    returns and makes ``request_closed`` refuse until every engaged reason is released."""

    def open(self) -> None: ...

    def interlock(self, reason: str) -> None: ...

    def release_interlock(self, reason: str | None = None) -> None: ...


class GpioContactor:
    """``hal.interfaces.Contactor`` on one GPIO relay output (BCM numbering).

    ``clock`` returns seconds on a monotonic scale (default ``time.monotonic``); tests inject a
    fake one to step through the settle time without sleeping.
    """

    def __init__(
        self,
        cfg: ContactorConfig,
        pin_factory: object | None = None,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        if cfg.settle_s < 0:
            raise ValueError(f"contactor settle_s must be >= 0, not {cfg.settle_s}")
        self._cfg = cfg
        self._clock = clock
        # RLock: open() may be reached from a callback that runs while this thread already holds
        # the lock (the mock pin factory calls callbacks synchronously).
        self._lock = threading.RLock()
        now = clock()
        self._commanded = False
        self._commanded_at = now
        self._mirror_changed_at = now
        self._welded = False
        self._weld_detail = ""
        self._failed_to_close = False
        self._interlocks: set[str] = set()
        self._closed = False
        self._out = OutputDevice(
            cfg.pin, active_high=cfg.active_high, initial_value=False, pin_factory=pin_factory
        )
        self._mirror: DigitalInputDevice | None = None
        if cfg.mirror_pin is not None:
            try:
                self._mirror = DigitalInputDevice(
                    cfg.mirror_pin, pull_up=not cfg.mirror_active_high, pin_factory=pin_factory
                )
            except Exception:
                self._out.close()
                raise
            self._mirror.when_activated = self._on_mirror_change
            self._mirror.when_deactivated = self._on_mirror_change

    # -- Contactor protocol -----------------------------------------------------------------------

    def request_closed(self) -> None:
        """Close the contactor.  ``ContactorFailure`` (vendor code ``WELD``) once a weld was
        diagnosed, (``TRIP``) while an interlock is engaged; ``RuntimeError`` after ``close``."""
        with self._lock:
            if self._closed:
                raise RuntimeError("contactor driver is closed")
            self._diagnose(self._clock())
            if self._welded:
                raise ContactorFailure(self._weld_detail, vendor_code="WELD")
            if self._interlocks:
                reasons = ", ".join(sorted(self._interlocks))
                raise ContactorFailure(
                    f"contactor on GPIO{self._cfg.pin} is interlocked by {reasons}; "
                    "it stays open until the interlock is released",
                    vendor_code="TRIP",
                )
            if not self._commanded:
                self._commanded = True
                self._commanded_at = self._clock()
            self._out.on()

    def open(self) -> None:
        """Open at once; allowed from any thread, idempotent, a no-op after ``close``."""
        with self._lock:
            if self._closed:
                return
            self._out.off()
            if self._commanded:
                self._commanded = False
                self._commanded_at = self._clock()

    def status(self) -> ContactorStatus:
        with self._lock:
            if not self._closed:
                self._diagnose(self._clock())
            return ContactorStatus(
                commanded_closed=self._commanded,
                feedback_closed=self._feedback(),
                welded=self._welded,
                failed_to_close=self._failed_to_close,
            )

    def close(self) -> None:
        """Open the contactor and release both pins.  After the release the pin floats: the
        board's pull resistor must hold the relay off (see docs on safe boot state)."""
        with self._lock:
            if self._closed:
                return
            try:
                self._out.off()
                self._commanded = False
            finally:
                self._closed = True
                self._out.close()
                if self._mirror is not None:
                    self._mirror.close()

    # -- interlock API (used by GpioSafetyInputs) -------------------------------------------------

    def interlock(self, reason: str) -> None:
        """Open the contactor and refuse ``request_closed`` until ``reason`` is released.

        Safe from any thread; engaging the same reason twice is harmless."""
        with self._lock:
            # One critical section: no request_closed can run between the two steps.
            self._interlocks.add(reason)
            self.open()
        log.warning("contactor on GPIO%d interlocked: %s", self._cfg.pin, reason)

    def release_interlock(self, reason: str | None = None) -> None:
        """Release one reason (``None``: all).  Does not close anything by itself."""
        with self._lock:
            if reason is None:
                self._interlocks.clear()
            else:
                self._interlocks.discard(reason)

    @property
    def interlocks(self) -> frozenset[str]:
        """Reasons currently engaged (empty: ``request_closed`` is allowed, unless welded)."""
        with self._lock:
            return frozenset(self._interlocks)

    # -- internals --------------------------------------------------------------------------------

    def _feedback(self) -> bool | None:
        if self._mirror is None or self._closed:
            return None
        return bool(self._mirror.is_active)

    def _on_mirror_change(self) -> None:
        with self._lock:
            self._mirror_changed_at = self._clock()

    def _diagnose(self, now: float) -> None:
        """Update the weld / failed-to-close flags.  Caller holds ``self._lock``."""
        feedback = self._feedback()
        if feedback is None:
            self._failed_to_close = False
            return
        since = max(self._commanded_at, self._mirror_changed_at)
        overdue = now - since > self._cfg.settle_s
        if feedback and not self._commanded and overdue and not self._welded:
            self._welded = True
            self._weld_detail = (
                f"contactor on GPIO{self._cfg.pin} welded: mirror contact on "
                f"GPIO{self._cfg.mirror_pin} still closed {now - since:.3f} s after the "
                f"contactor was commanded open (settle time {self._cfg.settle_s} s)"
            )
            log.error("%s", self._weld_detail)
        self._failed_to_close = self._commanded and not feedback and overdue
