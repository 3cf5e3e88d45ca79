"""The site limit at run time: read the grid-connection meter each meter cycle and tell the
charger how much it may draw (dynamic load management, ``[site]`` of the configuration file;
docs/smart-charging.md "The site limit and the grid meter").

Each cycle (``meter_poll_interval_s``):

1. poll the grid meter through the HAL (``hal.interfaces.EnergyMeter``; no Modbus here);
2. read the connectors' meters again right after it: the charger's own draw per phase;
3. if that draw is the one the connectors' meters showed before the grid reading (within
   ``STEADY_A`` per phase), the pair (grid, own draw) is consistent and becomes the reading in
   force; if not, an EV changed its current while the meters were read one after the other,
   and the grid reading minus a draw from another moment would be a false house load (an EV
   that just started would look like house load, and the allowance would drop for one cycle
   and rise again: a toggled EV).  The cycle then keeps the last consistent pair;
4. build a ``firmware.site_limit.GridReading`` from that pair, its age on the one clock
   (``firmware.clock.now()``) since it was read, and feed ``SiteLimiter.update`` (fuse -
   house load, hysteresis, fallback); the allowance, A per phase for the whole charger, goes
   to ``on_allowance`` (the charger's smart charging, which shares it between the connectors)
   when it changed.

No grid reading is trusted when the meter is dead (``MeterHealth.UNAVAILABLE``: its
``unavailable_after`` failed polls in a row), never answered, or no consistent reading is newer
than ``stale_after_s``: the charger then offers the fallback current.  The transition to the
fallback and back is logged once each, one line.

A connector meter that is not answering counts as drawing nothing: the house load is then
over-estimated, so the allowance errs low, never high.  The extra read of each connector's
meter per cycle is the price of a consistent pair (one more poll per meter cycle on its bus);
it goes through the meter's own ``poll``, so a failed one counts towards that meter's
``unavailable_after`` like the connector's own polls.

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

# The charger's draw is steady when its readings before and after the grid reading differ by
# less than this on every phase, A (a meter's own noise is a few tenths).
STEADY_A = 1.0


def _steady(before: PhaseCurrents, after: PhaseCurrents) -> bool:
    return all(abs((a or 0.0) - (b or 0.0)) < STEADY_A for a, b in zip(before, after, strict=True))


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
        # The last consistent (grid, charger draw) pair and when it was read (clock.now()).
        self._pair: tuple[PhaseCurrents, PhaseCurrents] = ((None, None, None), (0.0, 0.0, 0.0))
        self._answered_at: float | None = None
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
        for meter in self.connector_meters:
            if meter.latest is None:  # at start, before the connector's own first poll
                await meter.poll()
        before = self.charger_draw()
        reading = await self.meter.poll()
        for meter in self.connector_meters:
            await meter.poll()
        own = self.charger_draw()
        now = clock.now()
        self.grid_a = reading.current_a
        if reading.health is MeterHealth.OK:
            if _steady(before, own):
                self._pair = (reading.current_a, own)
                self._answered_at = now
            else:
                log.debug(
                    "site limit: the charger's draw moved (%s -> %s A): cycle skipped", before, own
                )
        grid = None
        if reading.health is not MeterHealth.UNAVAILABLE and self._answered_at is not None:
            grid = GridReading(self._pair[0], age_s=now - self._answered_at)
        allowance = self.limiter.update(grid, self._pair[1])
        log.debug(
            "site limit: grid %s A, charger %s A: %s", self._pair[0], self._pair[1], allowance
        )
        self._log_transition(allowance, grid, reading.health)
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

    def _log_transition(
        self, allowance: SiteAllowance, grid: GridReading | None, health: MeterHealth
    ) -> None:
        if allowance.fallback and self._in_fallback is not True:
            if grid is None and health is MeterHealth.OK:
                why = "gave no reading consistent with the charger's draw yet"
            elif grid is None:
                why = "does not answer"
            elif grid.age_s > self.policy.stale_after_s:
                why = f"gave no usable reading for more than {self.policy.stale_after_s:g} s"
            else:
                why = "reports no phase current"
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
