"""The one clock of the firmware (``firmware.clock``) driven by the event loop's time, for
tests under looptime: a wall-clock instant is ``epoch`` plus the loop's seconds, so a sleep of
an hour in simulated time is an hour on the clock every module reads."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from firmware import clock


@contextmanager
def wall_clock_follows_the_loop(epoch: datetime) -> Iterator[None]:
    """Within the block ``clock.utcnow()`` is ``epoch`` + the running loop's time (timezone-
    aware UTC ``epoch``); the real wall clock comes back on leaving."""
    loop = asyncio.get_running_loop()
    clock.set_wall_clock(lambda: epoch + timedelta(seconds=loop.time()))
    try:
        yield
    finally:
        clock.set_wall_clock(None)
