"""Residual-current (RCD / RDC-DD) trip input and optional emergency-stop input.

Reaction path: the gpiozero edge callback (lgpio's callback thread on a Pi; the thread calling
``drive_high``/``drive_low`` on a mock pin) opens every guarded contactor and engages its
interlock *first*, and only then calls the firmware's listener.  A stalled event loop therefore
cannot delay the opening, and a listener that is not set yet does not matter.

That thread still needs the GIL: it wakes from its wait (lgpio's notification read) and takes
the GIL from whichever thread holds it.  A busy event loop gives it up only after the
interpreter's switch interval, 5 ms by default, which was the whole latency of a trip with the
loop blocked (5.3 ms p50).  While safety inputs are watched the interval is
``SWITCH_INTERVAL_S`` (0.25 ms): a trip with the loop blocked for 200 ms then reaches the
contactor pin in about 0.5 ms (issue 15).  It costs nothing while one thread runs (the idle
controller); with two threads computing at once it costs about 5-10 % more CPU (more GIL
hand-overs, measured with two CPU-bound threads).

Release of an input is reported (``SafetyEvent(active=False)``) but does *not* release the
interlock: re-closing after a trip needs unplug or a person's action (not allowed automatically in
CH, DK, GB, FR), so the firmware calls ``reset()`` when it decides.

Pin levels (``SafetyConfig``), and how each is read:

* RCD, ``residual_current_active_high``: the level the module's trip output drives when tripped.
  True: trip = pin high, read with a pull-down.  False: trip = pin low (open-collector output),
  read with a pull-up.
* Emergency stop, ``emergency_stop_healthy_high``: describes the *contact* of a normally-closed
  switch, i.e. the level the pin sees while the switch is closed (healthy, not pressed).
  False (default): NC switch between the pin and GND, read with a pull-up: healthy = low,
  pressed *or wire broken* = high.  True: NC switch to 3V3, read with a pull-down: healthy = high,
  pressed or broken = low.  Either way an open circuit counts as pressed (fail-safe).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Sequence

from gpiozero import DigitalInputDevice

from hal.config import SafetyConfig
from hal.gpio.contactor import InterlockedContactor
from hal.types import SafetyEvent, SafetyInput

log = logging.getLogger(__name__)

Listener = Callable[[SafetyEvent], None]

#: The GIL switch interval (s) while any GpioSafetyInputs is open (see the module docstring).
SWITCH_INTERVAL_S = 0.00025


class _SwitchInterval:
    """Keeps the interpreter's switch interval at most SWITCH_INTERVAL_S while a holder is
    open, and gives back the previous value when the last one closes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._previous = sys.getswitchinterval()

    def hold(self) -> None:
        with self._lock:
            if self._holders == 0:
                self._previous = sys.getswitchinterval()
                sys.setswitchinterval(min(self._previous, SWITCH_INTERVAL_S))
            self._holders += 1

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders == 0:
                sys.setswitchinterval(self._previous)


_switch_interval = _SwitchInterval()


class _Input:
    """One safety input: the gpiozero device and whether ``is_active`` means tripped."""

    def __init__(self, source: SafetyInput, device: DigitalInputDevice, trip_is_active: bool):
        self.source = source
        self.device = device
        self.trip_is_active = trip_is_active
        self.reported: bool | None = None  # last state sent to the listener

    def tripped(self) -> bool:
        return bool(self.device.is_active) == self.trip_is_active


class GpioSafetyInputs:
    """``hal.interfaces.SafetyInputs`` on GPIO inputs (BCM numbering).

    ``guarded``: the contactors a trip opens and interlocks (each must offer ``open``,
    ``interlock(reason)`` and ``release_interlock(reason)``, e.g. ``GpioContactor``).  The reason
    string is the ``SafetyInput`` value (``"residual-current"``, ``"emergency-stop"``).

    An input already tripped at construction interlocks the contactors at once (no event is sent;
    the firmware reads ``active()`` at start-up).
    """

    def __init__(
        self,
        cfg: SafetyConfig,
        guarded: Sequence[InterlockedContactor],
        pin_factory: object | None = None,
    ) -> None:
        self._guarded = tuple(guarded)
        self._listener: Listener | None = None
        self._lock = threading.Lock()
        # Sources that tripped since the last successful reset().
        self._latched: set[SafetyInput] = set()
        self._closed = False
        self._inputs: list[_Input] = []
        try:
            rcd = DigitalInputDevice(
                cfg.residual_current_pin,
                pull_up=not cfg.residual_current_active_high,
                pin_factory=pin_factory,
            )
            # gpiozero inverts is_active when pull_up=True, so is_active == "trip level seen".
            self._inputs.append(_Input(SafetyInput.RESIDUAL_CURRENT, rcd, trip_is_active=True))
            if cfg.emergency_stop_pin is not None:
                estop = DigitalInputDevice(
                    cfg.emergency_stop_pin,
                    pull_up=not cfg.emergency_stop_healthy_high,
                    pin_factory=pin_factory,
                )
                # is_active == "NC contact closed" == healthy.
                self._inputs.append(_Input(SafetyInput.EMERGENCY_STOP, estop, trip_is_active=False))
        except Exception:
            self._close_inputs()
            raise
        _switch_interval.hold()
        for inp in self._inputs:
            # Callbacks first, then the initial check: a trip in between is seen twice at worst,
            # which is harmless, rather than not at all.
            inp.device.when_activated = self._make_callback(inp)
            inp.device.when_deactivated = self._make_callback(inp)
        for inp in self._inputs:
            if inp.tripped():
                self._trip(inp, notify=False)
            inp.reported = inp.tripped()

    # -- SafetyInputs protocol --------------------------------------------------------------------

    def set_listener(self, listener: Listener) -> None:
        """``listener`` runs in gpiozero's callback thread, after the contactors were opened."""
        with self._lock:
            self._listener = listener

    def active(self) -> list[SafetyEvent]:
        """The inputs tripped right now (pin levels, not the latch)."""
        if self._closed:
            return []
        return [SafetyEvent(inp.source, True) for inp in self._inputs if inp.tripped()]

    def close(self) -> None:
        """Release the input pins.  Interlocks stay as they are."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._listener = None
        self._close_inputs()
        _switch_interval.release()

    # -- latch / reset ----------------------------------------------------------------------------

    @property
    def latched(self) -> frozenset[SafetyInput]:
        """Sources that tripped since the last successful ``reset`` (their interlock holds)."""
        with self._lock:
            return frozenset(self._latched)

    def reset(self) -> bool:
        """A person's action / unplug: release the interlocks this object engaged.

        Refused (returns False, interlocks kept) while any input is still tripped; returns True
        when the interlocks were released.  Does not close any contactor."""
        tripped = self.active()
        if tripped:
            log.warning(
                "safety reset refused: still tripped: %s",
                ", ".join(e.source.value for e in tripped),
            )
            return False
        for contactor in self._guarded:
            for inp in self._inputs:
                contactor.release_interlock(inp.source.value)
        with self._lock:
            self._latched.clear()
        log.info("safety interlocks released")
        return True

    # -- internals --------------------------------------------------------------------------------

    def _make_callback(self, inp: _Input) -> Callable[[], None]:
        def on_edge() -> None:
            if inp.tripped():
                self._trip(inp, notify=True)
            else:
                self._release(inp)

        return on_edge

    def _trip(self, inp: _Input, notify: bool) -> None:
        """Open and interlock every guarded contactor, then tell the listener.

        Every contactor is tried even if an earlier one raises: one broken driver must not keep
        the others closed."""
        reason = inp.source.value
        for contactor in self._guarded:
            try:
                contactor.open()  # fastest path first; interlock() opens again under its lock
            except Exception:
                log.exception("could not open a guarded contactor on %s trip", reason)
            try:
                contactor.interlock(reason)
            except Exception:
                log.exception("could not interlock a guarded contactor on %s trip", reason)
        with self._lock:
            self._latched.add(inp.source)
            listener = self._listener
            changed = inp.reported is not True
            inp.reported = True
        log.error("safety input tripped: %s", reason)
        if notify and changed and listener is not None:
            self._notify(listener, SafetyEvent(inp.source, True))

    def _release(self, inp: _Input) -> None:
        with self._lock:
            listener = self._listener
            changed = inp.reported is not False
            inp.reported = False
        log.warning("safety input released: %s (interlock kept until reset)", inp.source.value)
        if changed and listener is not None:
            self._notify(listener, SafetyEvent(inp.source, False))

    @staticmethod
    def _notify(listener: Listener, event: SafetyEvent) -> None:
        try:
            listener(event)
        except Exception:
            log.exception("safety listener failed on %s", event)

    def _close_inputs(self) -> None:
        for inp in self._inputs:
            inp.device.when_activated = None
            inp.device.when_deactivated = None
            inp.device.close()
