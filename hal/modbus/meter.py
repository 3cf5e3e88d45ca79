"""``EnergyMeter`` over Modbus for every model in ``hal.modbus.models``."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime

from hal.config import MeterConfig
from hal.modbus.bus import BusError, ModbusBus, bus_for
from hal.modbus.models import MeterModel, PhaseValues, QuantityValue, meter_model
from hal.types import MeterHealth, MeterReading, Quantity

logger = logging.getLogger(__name__)


class ModbusEnergyMeter:
    """A Modbus energy meter (``hal.interfaces.EnergyMeter``).

    ``poll`` reads the model's registers in as few requests as the model allows and converts them
    to OCPP units (Wh, W, A, V phase-to-neutral, Hz).  It never raises on a communication failure:
    the first failed poll returns the last good values marked STALE, ``unavailable_after`` failed
    polls in a row mark them UNAVAILABLE, and the next good poll is OK again.  Before any good
    poll the values are None (and the timestamp is that of the failed poll).  A failing meter is
    logged on each health transition only, not on every poll.

    The bus is shared with every other device on the same endpoint (``bus_for``).  Construct on or
    off the event loop; the connection is opened on the first poll.
    """

    def __init__(self, config: MeterConfig, *, bus: ModbusBus | None = None) -> None:
        if config.unavailable_after < 1:
            raise ValueError("unavailable_after must be >= 1")
        if not 0 <= config.unit_id <= 247:
            raise ValueError(f"Modbus unit id {config.unit_id} outside 0..247")
        self._config = config
        self._model: MeterModel = meter_model(config.model)  # ConfigurationError if unknown
        self._bus = bus if bus is not None else bus_for(config.endpoint)
        self._owns_bus_ref = bus is None
        self._latest: MeterReading | None = None
        self._last_good: MeterReading | None = None
        self._failures = 0  # consecutive failed polls
        self._health = MeterHealth.OK
        self._closed = False
        self._name = f"{self._model.name} unit {config.unit_id} on {config.endpoint.key}"

    def __repr__(self) -> str:
        return f"ModbusEnergyMeter({self._name})"

    @property
    def model(self) -> MeterModel:
        return self._model

    @property
    def quantities(self) -> frozenset[Quantity]:
        """What this meter model can measure."""
        return self._model.quantities

    @property
    def latest(self) -> MeterReading | None:
        """The last reading ``poll`` returned (None before the first poll)."""
        return self._latest

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    async def poll(self) -> MeterReading:
        """Read the meter once; see the class docstring for failure handling."""
        if self._closed:
            raise RuntimeError(f"{self._name} is closed")
        try:
            values = await self._read()
        except BusError as exc:
            reading = self._failed(exc)
        else:
            reading = self._succeeded(values)
        self._latest = reading
        return reading

    async def close(self) -> None:
        """Release the shared bus (the last device on it closes the connection)."""
        if self._closed:
            return
        self._closed = True
        if self._owns_bus_ref:
            await self._bus.release()

    # --- internals -------------------------------------------------------------------------------

    async def _read(self) -> dict[Quantity, QuantityValue]:
        registers: dict[int, int] = {}
        for block in self._model.read_plan:
            # The first failing block ends the poll: the meter is not answering, and trying the
            # other blocks would only multiply the timeout.
            words = await self._bus.read_registers(
                self._model.function_code, self._config.unit_id, block.address, block.count
            )
            registers.update(zip(range(block.address, block.end), words, strict=True))
        return self._model.decode(registers)

    def _succeeded(self, values: dict[Quantity, QuantityValue]) -> MeterReading:
        if self._health is not MeterHealth.OK:
            logger.info(
                "energy meter %s answers again after %d failed polls", self._name, self._failures
            )
        self._failures = 0
        self._health = MeterHealth.OK
        reading = _reading(values, datetime.now(UTC))
        self._last_good = reading
        return reading

    def _failed(self, exc: BusError) -> MeterReading:
        self._failures += 1
        health = (
            MeterHealth.UNAVAILABLE
            if self._failures >= self._config.unavailable_after
            else MeterHealth.STALE
        )
        if health is not self._health:
            if health is MeterHealth.UNAVAILABLE:
                logger.error(
                    "energy meter %s unavailable after %d failed polls: %s",
                    self._name,
                    self._failures,
                    exc,
                )
            else:
                logger.warning(
                    "energy meter %s not answering, values are stale: %s", self._name, exc
                )
        else:
            logger.debug("energy meter %s still failing (%d): %s", self._name, self._failures, exc)
        self._health = health
        if self._last_good is None:
            return MeterReading(timestamp=datetime.now(UTC), health=health)
        return dataclasses.replace(self._last_good, health=health)


def _reading(values: dict[Quantity, QuantityValue], timestamp: datetime) -> MeterReading:
    """A good reading from decoded values (quantities the model lacks stay None)."""

    def single(quantity: Quantity) -> float | None:
        value = values.get(quantity)
        return None if isinstance(value, tuple) else value

    def phases(quantity: Quantity) -> PhaseValues:
        value = values.get(quantity)
        return value if isinstance(value, tuple) else (None, None, None)

    return MeterReading(
        timestamp=timestamp,
        health=MeterHealth.OK,
        energy_import_wh=single(Quantity.ENERGY_IMPORT),
        energy_export_wh=single(Quantity.ENERGY_EXPORT),
        power_w=single(Quantity.POWER),
        current_a=phases(Quantity.CURRENT_PER_PHASE),
        voltage_v=phases(Quantity.VOLTAGE_PER_PHASE),
        frequency_hz=single(Quantity.FREQUENCY),
    )
