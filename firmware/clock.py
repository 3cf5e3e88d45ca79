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
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Protocol


class Watched(Protocol):
    """What ``sleep_until`` needs of the key registry (``config_keys.KeyRegistry.watch``): kept
    as a Protocol so that the clock, which every module uses, imports none of them."""

    def watch(self, names: Iterable[str], changed: Callable[[], None]) -> Callable[[], None]: ...


def now() -> float:
    """Seconds on the controller's monotonic clock (the running event loop's time)."""
    return asyncio.get_running_loop().time()


def _system_wall_clock() -> datetime:
    return datetime.now(UTC)


_wall_clock: Callable[[], datetime] = _system_wall_clock


def utcnow() -> datetime:
    """Wall-clock time, timezone-aware UTC: for OCPP timestamps, certificate validity, cache
    expiry and the clock-aligned meter values only (use ``now()`` to measure durations)."""
    return _wall_clock()


def set_wall_clock(source: Callable[[], datetime] | None) -> None:
    """Make ``utcnow()`` read ``source`` (a test's simulated calendar); None restores the
    system clock.  ``source`` must return timezone-aware datetimes."""
    global _wall_clock
    _wall_clock = source or _system_wall_clock


def to_ocpp(dt: datetime | None = None) -> str:
    """An OCPP dateTime: RFC 3339 in UTC with a Z and millisecond precision
    (``2026-11-29T11:30:00.000Z``), the form every central system parses (OCPP-J 1.6 §4.1.4
    leaves the precision open).  ``dt`` defaults to ``utcnow()``; a naive ``dt`` is read as UTC.

    A time whose UTC instant lies outside Python's years 1-9999 (a valid RFC 3339
    ``9999-12-31T23:59:59-01:00``: "never expires" from a central system west of Greenwich) is
    written as the last (first) instant those years have: as far in the future (past) as can
    be.  It once raised OverflowError in every store it reached (ReserveNow and SendLocalList
    answered InternalError, the Authorize.conf of a driver's accepted card was dropped)."""
    dt = dt or utcnow()
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        dt = dt.astimezone(UTC)
    except OverflowError:
        dt = (datetime.max if dt.year == datetime.max.year else datetime.min).replace(tzinfo=UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_ocpp(text: object) -> datetime | None:
    """The datetime an OCPP dateTime string names, timezone-aware (a string without an offset
    is read as UTC, as OCPP 1.6 §2.1 asks for UTC everywhere); None for anything that is not
    a date-time string (None, '', a number, ``2026-13-01``)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


async def sleep_until(
    deadline: float | None,
    keys: Watched,
    names: Iterable[str],
    *,
    wake: asyncio.Event | None = None,
) -> bool:
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
        done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return not done
    finally:
        stop_watching()
        for w in waits:
            w.cancel()
