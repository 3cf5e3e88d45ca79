"""The controller's one clock, and the one way to wait on a configured period or timeout.

The clock is the event loop's monotonic time (``loop.time()``, seconds): it never jumps when NTP
sets the wall clock (a Pi has no RTC and is set minutes after boot).  Wall-clock time is used
only where OCPP asks for it: timestamps, and the clock-aligned meter values.

Every wait whose length comes from a configuration key (HeartbeatInterval,
MeterValueSampleInterval, ClockAlignedDataInterval, WebSocketPingInterval, MinimumStatusDuration,
ConnectionTimeOut, TransactionMessageRetryInterval) goes through ``sleep_until``: it ends at its
deadline or as soon as one of its keys takes a new value, whoever changed it (ChangeConfiguration,
``chargepoint config set``, the BootNotification interval).  The caller then computes its
deadline again from the value now in force, so a new value takes effect at once instead of
after the old period ran out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from firmware.config_keys import KeyRegistry


def now() -> float:
    """Seconds on the controller's monotonic clock (the running event loop's time)."""
    return asyncio.get_running_loop().time()


async def sleep_until(deadline: float | None, keys: KeyRegistry, names: Iterable[str], *,
                      wake: asyncio.Event | None = None) -> bool:
    """Sleep until ``deadline`` (a ``now()`` value; None: no deadline) or until one of the
    configuration keys ``names`` takes a new value or ``wake`` is set, whichever comes first.

    Returns True when the deadline was reached, False when woken early: the caller then
    recomputes its deadline from the keys now in force (and from whatever ``wake`` announced).
    A deadline already past returns True at once.  ``wake`` is neither cleared nor consumed."""
    loop = asyncio.get_running_loop()
    if deadline is not None and deadline <= loop.time():
        return True
    changed = asyncio.Event()
    stop_watching = keys.watch(names, changed.set)
    waits = [asyncio.ensure_future(changed.wait())]
    if wake is not None:
        waits.append(asyncio.ensure_future(wake.wait()))
    try:
        timeout = None if deadline is None else max(0.0, deadline - loop.time())
        done, _ = await asyncio.wait(waits, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        return not done
    finally:
        stop_watching()
        for w in waits:
            w.cancel()
