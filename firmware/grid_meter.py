"""The site limit at run time: read the grid-connection meter each meter cycle and tell the
charger how much it may draw (dynamic load management, ``[site]`` of the configuration file;
docs/smart-charging.md "The site limit and the grid meter").

Each cycle (``meter_poll_interval_s``):

1. poll the grid meter through the HAL (``hal.interfaces.EnergyMeter``; no Modbus here);
2. build a ``firmware.site_limit.GridReading``: its current per phase, and its age on the one
   clock (``firmware.clock.now()``) since the meter last answered;
3. take the charger's own draw per phase from its connectors' last meter readings;
4. ``SiteLimiter.update`` (fuse - house load, hysteresis, fallback) gives the allowance, A per
   phase for the whole charger, which goes to ``on_allowance`` (the charger's smart charging,
   which shares it between the connectors) when it changed.

No grid reading is trusted when the meter is dead (``MeterHealth.UNAVAILABLE``: its
``unavailable_after`` failed polls in a row), never answered, or last answered more than
``stale_after_s`` ago: the charger then offers the fallback current.  The transition to the
fallback and back is logged once each, one line.

A connector meter that is not answering counts as drawing nothing: the house load is then
over-estimated, so the allowance errs low, never high.

Without a grid meter the fuse is a static allowance, given once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from firmware import clock
from firmware.site_limit import GridReading, PhaseCurrents, SiteAllowance, SiteLimiter, SitePolicy
from hal.interfaces import EnergyMeter
from hal.types import MeterHealth

log = logging.getLogger(__name__)


class GridMeterPoller:
    """The site limit of one charger.  ``meter``: the grid meter (None: the fuse alone);
    ``connector_meters``: the connectors' meters (their ``latest`` readings, which the
    connectors poll); ``on_allowance(amps)``: A per phase for the whole charger, called at the
    first cycle and whenever the allowance changes; ``poll_s``: the meter cycle, s."""

    def __init__(
        self,
        policy: SitePolicy,
        meter: EnergyMeter | None,
        connector_meters: Sequence[EnergyMeter],
        on_allowance: Callable[[float | None], None],
        *,
        poll_s: float,
    ) -> None:
        self.policy = policy
        self.meter = meter
        self.connector_meters = tuple(connector_meters)
        self.on_allowance = on_allowance
        self.poll_s = poll_s
        self.limiter = SiteLimiter(policy)
        self.applied: float | None = None  # the allowance last given to on_allowance
        self.last: SiteAllowance | None = None
        self.grid_a: PhaseCurrents = (None, None, None)  # the last grid reading, per phase
        self._answered_at: float | None = None  # clock.now() of the last good poll
        self._in_fallback: bool | None = None  # None: before the first cycle

    async def first_cycle(self) -> None:
        """The allowance before any connector charges: one poll (bounded by the bus timeout)
        or, without a grid meter, the fuse."""
        if self.meter is None:
            log.info(
                "site limit: the fuse, %g A per phase, is the charger's limit", self.policy.fuse_a
            )
            self._apply(SiteAllowance(self.policy.fuse_a, False))
            return
        await self.cycle()

    async def run(self) -> None:
        """Every ``poll_s`` one cycle, until cancelled (nothing to do without a grid meter)."""
        if self.meter is None:
            return
        while True:
            await asyncio.sleep(self.poll_s)
            await self.cycle()

    async def cycle(self) -> SiteAllowance:
        """Poll the grid meter once and apply the allowance; returns it."""
        assert self.meter is not None
        reading = await self.meter.poll()
        now = clock.now()
        if reading.health is MeterHealth.OK:
            self._answered_at = now
        self.grid_a = reading.current_a
        grid = None
        if reading.health is not MeterHealth.UNAVAILABLE and self._answered_at is not None:
            grid = GridReading(reading.current_a, age_s=now - self._answered_at)
        allowance = self.limiter.update(grid, self.charger_draw())
        self._log_transition(allowance, reading.health)
        self._apply(allowance)
        return allowance

    def charger_draw(self) -> PhaseCurrents:
        """What the charger draws per phase: the sum of its connectors' last good readings
        (a connector meter without one counts 0 A)."""
        totals = [0.0, 0.0, 0.0]
        for meter in self.connector_meters:
            latest = meter.latest
            if latest is None or latest.health is not MeterHealth.OK:
                continue
            for i, amps in enumerate(latest.current_a):
                totals[i] += amps or 0.0
        return (totals[0], totals[1], totals[2])

    def status(self) -> dict[str, Any]:
        """For ``chargepoint bench status`` (``site``): the fuse, the allowance in force (A per
        phase for the whole charger), whether it is the fallback, the last grid currents."""
        return {
            "max_current_a": self.policy.fuse_a,
            "allowance_a": self.applied,
            "fallback": bool(self.last and self.last.fallback and self.meter is not None),
            "grid_current_a": list(self.grid_a) if self.meter is not None else None,
        }

    def _apply(self, allowance: SiteAllowance) -> None:
        self.last = allowance
        if allowance.amps != self.applied:
            self.applied = allowance.amps
            self.on_allowance(allowance.amps)

    def _log_transition(self, allowance: SiteAllowance, health: MeterHealth) -> None:
        if allowance.fallback and self._in_fallback is not True:
            if health is MeterHealth.UNAVAILABLE or self._answered_at is None:
                why = "does not answer"
            elif health is MeterHealth.OK:
                why = "reports no phase current"
            else:
                why = f"gave no reading for more than {self.policy.stale_after_s:g} s"
            log.warning(
                "site limit: the grid meter %s: offering the fallback, %g A per phase in total, "
                "until it answers",
                why,
                allowance.amps,
            )
        elif not allowance.fallback and self._in_fallback is not False:
            log.info(
                "site limit: the grid meter answers%s: fuse %g A, allowance %g A per phase",
                "" if self._in_fallback is None else " again",
                self.policy.fuse_a,
                allowance.amps,
            )
        self._in_fallback = allowance.fallback


__all__ = ["GridMeterPoller"]
