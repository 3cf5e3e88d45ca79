"""The two timers of one connector's run time, each a task that posts its expiry back into the
connector's queue as the state machine's event: ConnectionTimeOut (from Preparing, the OCPP 1.6
§9.1 key; a changed value re-arms the running timer from the same start) and the EV's reaction
time after the PWM stopped (``charging.EV_REACTION_S``, IEC 61851-1).

Apart from ``firmware.connector`` (which carries out the machine's commands) because a timer
only starts, is cancelled and expires: it decides nothing and touches no device.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from firmware import charging as m
from firmware import clock
from firmware.config_keys import K, KeyRegistry


class ConnectorTimers:
    """``post(event)`` queues an event on the connector (from the event loop's thread)."""

    def __init__(
        self, connector_id: int, keys: KeyRegistry, post: Callable[[m.Event], None]
    ) -> None:
        self.id = connector_id
        self.keys = keys
        self._post = post
        self._timer: asyncio.Task[None] | None = None  # ConnectionTimeOut
        self._reaction_timer: asyncio.Task[None] | None = None  # EV_REACTION_S after PWM stop

    def start_connection(self) -> None:
        """StartConnectionTimer: ConnectionTimeOut seconds from now (Preparing began)."""
        self.cancel_connection()
        self._timer = asyncio.get_running_loop().create_task(
            self._connection_timer(clock.now()), name=f"connector{self.id}-timeout"
        )

    def cancel_connection(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def start_ev_reaction(self) -> None:
        """StartEvReactionTimer: ``charging.EV_REACTION_S`` from now."""
        self.cancel_ev_reaction()
        self._reaction_timer = asyncio.get_running_loop().create_task(
            self._ev_reaction_timer(), name=f"connector{self.id}-ev-reaction"
        )

    def cancel_ev_reaction(self) -> None:
        if self._reaction_timer is not None:
            self._reaction_timer.cancel()
            self._reaction_timer = None

    async def _ev_reaction_timer(self) -> None:
        await asyncio.sleep(m.EV_REACTION_S)
        self._reaction_timer = None
        self._post(m.EvReactionTimedOut())

    async def _connection_timer(self, started: float) -> None:
        """ConnectionTimeOut seconds from ``started`` (Preparing began); a changed value
        re-arms the running timer from that same start (a new value already past fires at
        once)."""
        while not await clock.sleep_until(
            started + self.keys[K.ConnectionTimeOut], self.keys, (K.ConnectionTimeOut,)
        ):
            pass
        self._timer = None
        self._post(m.ConnectionTimedOut())


__all__ = ["ConnectorTimers"]
