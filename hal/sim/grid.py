"""The bench's grid connection: a house load and the grid-connection meter that measures it
together with what the bench's connectors draw (dynamic load management, ``[site.grid_meter]``).

Per phase, the simulated grid meter shows ``house load + the sum of the connectors' currents``
(the connectors' simulated meters, which the EV models drive), updated at every physics step.
``chargepoint bench house-load AMPS`` sets the house load.  Served by a real pymodbus server:
the same ``RegisterServer`` as connector 1's devices when the file puts the grid meter on that
connector's bus (one bus, as on a real RS-485 line), else a server of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

from hal.config import HardwareConfig
from hal.sim.modbus_devices import ObservedDevice, SimulatedMeter

# What `house-load` accepts, A per phase: 0 up to well over any domestic main fuse.
MAX_HOUSE_LOAD_A = 100.0

Phases = tuple[float, float, float]


def house_load_phases(amps: Sequence[float]) -> Phases:
    """One value (every phase) or three (L1, L2, L3), each 0-MAX_HOUSE_LOAD_A A; ValueError
    with one line otherwise."""
    if len(amps) not in (1, 3):
        raise ValueError(f"house-load takes 1 value (every phase) or 3 (L1 L2 L3), not {len(amps)}")
    for a in amps:
        if (
            isinstance(a, bool)
            or not isinstance(a, int | float)
            or not math.isfinite(a)
            or not 0 <= a <= MAX_HOUSE_LOAD_A
        ):
            raise ValueError(
                f"house load must be a number from 0 to {MAX_HOUSE_LOAD_A:g} A, not {a!r}"
            )
    values = [float(a) for a in amps]
    return (values[0],) * 3 if len(values) == 1 else (values[0], values[1], values[2])


def grid_connector(hardware: HardwareConfig) -> int | None:
    """The connector on whose simulated server the grid meter is served: the first whose pilot
    or meter the file puts on the grid meter's bus; None: a server of its own (or no grid
    meter)."""
    grid = hardware.grid_meter
    if grid is None:
        return None
    for c in hardware.connectors:
        if grid.endpoint.key in (c.pilot.endpoint.key, c.meter.endpoint.key):
            return c.connector_id
    return None


class SimulatedGrid:
    """The house load and the grid meter (a ``SimulatedMeter`` of any model)."""

    def __init__(self, model: str, unit_id: int, voltage_v: float) -> None:
        self.meter = SimulatedMeter(model, unit_id)
        self.meter.voltage_v = voltage_v
        self.voltage_v = voltage_v
        self.house_load_a: Phases = (0.0, 0.0, 0.0)
        self.polls = 0  # complete reads of the meter's values by the controller
        self._last_block = self.meter.model.read_plan[-1].address

    def served(self, on_poll: Callable[[], None] | None = None) -> ObservedDevice:
        """The meter as its server serves it, counting the controller's complete polls (the
        read of the model's last register block ends a poll)."""

        def counted(table: int, address: int, count: int, words: list[int]) -> None:
            if address == self._last_block:
                self.polls += 1
                if on_poll is not None:
                    on_poll()

        return ObservedDevice(self.meter, after_read=counted)

    def set_house_load(self, amps: Sequence[float]) -> None:
        self.house_load_a = house_load_phases(amps)

    def step(self, connector_currents: Iterable[Sequence[float | None]]) -> None:
        """The grid current now: the house load plus every connector's current, per phase."""
        totals = list(self.house_load_a)
        for phases in connector_currents:
            for i, amps in enumerate(phases):
                totals[i] += amps or 0.0
        self.meter.set_values(
            current_a=tuple(totals), power_w=sum(a * self.voltage_v for a in totals)
        )

    def status(self) -> dict[str, object]:
        return {
            "house_load_a": list(self.house_load_a),
            "current_a": [round(a or 0.0, 2) for a in self.meter.current_a],
            "responding": self.meter.responding,
        }
