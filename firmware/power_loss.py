"""Power cut on a charger with backup power (OCPP 1.6 §5.14 reason PowerLoss; OCTT TC_032_1).

A UPS HAT or a supercapacitor module keeps the Pi running for a while after mains is lost and
says so on a GPIO line (``hal.interfaces.PowerFailInput``, ``[power_fail]``).  ``MainsWatch``
turns that line into one decision: mains lost for ``hold_off_s`` without a break is a power
cut (``on_power_cut`` runs once); mains back within the hold-off is a flicker and nothing
happens.  What a power cut does (every transaction stopped with reason PowerLoss, outputs
safe, the StopTransactions given ``deliver_s`` to leave, the controller stopped and parked
until mains is back) is ``firmware.daemon``'s, which owns the controller's life.

Why a hold-off: distribution grids clear a fault by opening and re-closing a breaker
(auto-recloser, 0.3-3 s), and a contactor or a load switching nearby can dip the supply for a
few cycles: ending every session for that would be wrong, while waiting too long eats the
backup's reserve that the StopTransactions need.  The default, 3 s, covers a fast reclose.

Every change is one log line.  The line's listener may run on any thread: it hops onto the
event loop before anything is decided.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from firmware import clock
from hal.interfaces import PowerFailInput

log = logging.getLogger(__name__)


class MainsWatch:
    """The hold-off debounce of a mains-lost line.

    ``lost``: the line as last heard; ``cut``: the hold-off ran out (a power cut, reported
    once per controller run).  ``start`` must run on the event loop."""

    def __init__(
        self, line: PowerFailInput, hold_off_s: float, on_power_cut: Callable[[], None]
    ) -> None:
        self.line = line
        self.hold_off_s = hold_off_s
        self._on_power_cut = on_power_cut
        self.lost = False
        self.cut = False
        self._lost_at = 0.0
        self._back_at = 0.0  # when mains last came back (the loop's clock)
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._back = asyncio.Event()  # set while mains is present
        self._back.set()
        self._edges = 0  # changes heard: tells an unbroken stretch from a flapping one

    def start(self) -> None:
        """Listen to the line, and act on its level now (mains may be lost at start: a
        restart while the backup runs, and the hold-off applies as to any loss)."""
        self._loop = asyncio.get_running_loop()
        self.line.set_listener(self._from_any_thread)
        if self.line.mains_lost():
            self.changed(True)

    def stop(self) -> None:
        """No more decisions (the controller is shutting down); the line stays readable."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _from_any_thread(self, lost: bool) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.changed, lost)

    def changed(self, lost: bool) -> None:
        """The line changed (on the event loop)."""
        if lost == self.lost:
            return
        self.lost = lost
        self._edges += 1
        if lost:
            self._back.clear()
            self._lost_at = clock.now()
            if self.cut:
                log.warning("mains lost again")
                return
            log.warning(
                "mains lost: every transaction stops in %g s unless mains returns first",
                self.hold_off_s,
            )
            self._timer = asyncio.get_running_loop().call_later(self.hold_off_s, self._held)
            return
        self._back.set()
        self._back_at = clock.now()
        lasted = self._back_at - self._lost_at
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            log.warning(
                "mains back after %.1f s, within the %g s hold-off: nothing done",
                lasted,
                self.hold_off_s,
            )
        else:
            log.warning("mains back after %.1f s", lasted)

    def _held(self) -> None:
        self._timer = None
        if not self.lost or self.cut:
            return
        self.cut = True
        log.error("power cut: mains lost for %g s", self.hold_off_s)
        self._on_power_cut()

    async def wait_restored(self) -> None:
        """Until mains has been present for ``hold_off_s`` without a break (a supply that
        flaps while it comes back must not restart the controller on every flap)."""
        while True:
            await self._back.wait()
            edges = self._edges
            # Counted from the return, which may precede the wait (mains came back while the
            # StopTransactions were still being delivered).
            remaining = self._back_at + self.hold_off_s - clock.now()
            if remaining > 0:
                await asyncio.sleep(remaining)
            if not self.lost and self._edges == edges:
                log.warning("mains back for %g s", self.hold_off_s)
                return
