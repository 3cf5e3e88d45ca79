"""Simulated Modbus devices served by a real pymodbus server (TCP or RTU).

Built from the same data as the drivers: ``SimulatedMeter`` encodes its live values with the
encoders of ``hal.modbus.models``, so whatever model the driver is configured for, the simulator
serves that model's registers, word order, scale and sentinels.  ``SimulatedEvseBoard`` emulates
the EVSE-WB register map of ``hal.modbus.evse_wb``.

pymodbus stays behind ``hal.modbus.server`` (this module never imports it).

Usage, a meter and an EVSE board sharing one simulated bus::

    meter = SimulatedMeter("SDM630", unit_id=1)
    board = SimulatedEvseBoard(unit_id=2)
    server = SimulatedModbusServer([meter, board])
    port = await server.start_tcp()            # 127.0.0.1, a free port
    endpoint = server.tcp_endpoint(timeout_s=0.2, retries=0, quiet_gap_s=0.0)
    ...
    meter.set_responding(False)                # it stops answering, like a dead RS-485 meter
    await server.stop()

or ``await server.start_rtu("/tmp/ttyA")`` to serve Modbus RTU on one end of a pty pair.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence

from hal.config import ModbusEndpoint
from hal.modbus.evse_wb import (
    CONFIG_PRECISE_CURRENT,
    EVSE_OFF,
    EVSE_PWM,
    EVSE_STEADY,
    REG_CONFIG_BITS,
    REG_CONFIGURED_CURRENT,
    REG_TURN_OFF,
    TURN_OFF_BIT,
    VEHICLE_STATES,
)
from hal.modbus.models import MeterModel, PhaseValues, QuantityValue, meter_model
from hal.modbus.server import (
    ILLEGAL_ADDRESS,
    ILLEGAL_FUNCTION,
    ILLEGAL_VALUE,
    TABLE_HOLDING,
    DeviceException,
    RegisterDevice,
    RegisterServer,
    ServedRequest,
)
from hal.types import PilotState, Quantity

__all__ = [
    "ObservedDevice",
    "ServedRequest",
    "SimulatedEvseBoard",
    "SimulatedMeter",
    "SimulatedModbusServer",
]


# --------------------------------------------------------------------------------------------------
# Meter


class _Keep(enum.Enum):
    KEEP = "keep"  # set_values(): leave this value as it is


_KEEP = _Keep.KEEP

# A per-phase value: (L1, L2, L3), or one number for all three phases.
PhaseInput = Sequence[float | None] | float | None


class SimulatedMeter:
    """Any model of ``hal.modbus.models`` with live values settable from Python (OCPP units).

    Values the model does not map (e.g. L2/L3 on a single-phase meter) are accepted and not
    served.  Set a value to None to serve the model's invalid sentinel (NaN for floats).
    Requests are checked like a strict meter would: the wrong function code or an address outside
    the model's readable ranges answers ILLEGAL ADDRESS, a read over the model's per-read limit
    ILLEGAL VALUE.
    """

    def __init__(self, model: str | MeterModel = "SDM630", unit_id: int = 1) -> None:
        self.model: MeterModel = meter_model(model) if isinstance(model, str) else model
        self.unit_id = unit_id
        self._responding = True
        self.reads = 0  # read requests answered
        self._values: dict[Quantity, QuantityValue] = {
            Quantity.VOLTAGE_PER_PHASE: (230.0, 230.0, 230.0),
            Quantity.CURRENT_PER_PHASE: (0.0, 0.0, 0.0),
            Quantity.POWER: 0.0,
            Quantity.FREQUENCY: 50.0,
            Quantity.ENERGY_IMPORT: 0.0,
            Quantity.ENERGY_EXPORT: 0.0,
        }
        self._registers = self.model.encode(self._values)

    def __repr__(self) -> str:
        return f"SimulatedMeter({self.model.name}, unit {self.unit_id})"

    # --- liveness --------------------------------------------------------------------------------

    @property
    def responding(self) -> bool:
        return self._responding

    def set_responding(self, responding: bool) -> None:
        """False: requests get no answer at all (the client times out); True: answers again."""
        self._responding = responding

    # --- live values (OCPP units) ----------------------------------------------------------------

    def set_values(
        self,
        *,
        voltage_v: PhaseInput | _Keep = _KEEP,
        current_a: PhaseInput | _Keep = _KEEP,
        power_w: float | None | _Keep = _KEEP,
        frequency_hz: float | None | _Keep = _KEEP,
        energy_import_wh: float | None | _Keep = _KEEP,
        energy_export_wh: float | None | _Keep = _KEEP,
    ) -> None:
        """Change any of the live values at once (omitted ones keep their value).  A single
        number for a per-phase quantity sets all three phases; None serves "invalid".

        ValueError (and nothing changed) if a value cannot be encoded by the model."""
        given: dict[Quantity, object] = {
            Quantity.VOLTAGE_PER_PHASE: voltage_v,
            Quantity.CURRENT_PER_PHASE: current_a,
            Quantity.POWER: power_w,
            Quantity.FREQUENCY: frequency_hz,
            Quantity.ENERGY_IMPORT: energy_import_wh,
            Quantity.ENERGY_EXPORT: energy_export_wh,
        }
        new = dict(self._values)
        for quantity, value in given.items():
            if value is _KEEP:
                continue
            new[quantity] = _normalise(quantity, value)
        self._registers = self.model.encode(new)  # raises before anything changes
        self._values = new

    def values(self) -> Mapping[Quantity, QuantityValue]:
        """The live values as set (before the model's quantisation)."""
        return dict(self._values)

    @property
    def voltage_v(self) -> PhaseValues:
        return _phases(self._values[Quantity.VOLTAGE_PER_PHASE])

    @voltage_v.setter
    def voltage_v(self, value: PhaseInput) -> None:
        self.set_values(voltage_v=value)

    @property
    def current_a(self) -> PhaseValues:
        return _phases(self._values[Quantity.CURRENT_PER_PHASE])

    @current_a.setter
    def current_a(self, value: PhaseInput) -> None:
        self.set_values(current_a=value)

    @property
    def power_w(self) -> float | None:
        return _single(self._values[Quantity.POWER])

    @power_w.setter
    def power_w(self, value: float | None) -> None:
        self.set_values(power_w=value)

    @property
    def frequency_hz(self) -> float | None:
        return _single(self._values[Quantity.FREQUENCY])

    @frequency_hz.setter
    def frequency_hz(self, value: float | None) -> None:
        self.set_values(frequency_hz=value)

    @property
    def energy_import_wh(self) -> float | None:
        return _single(self._values[Quantity.ENERGY_IMPORT])

    @energy_import_wh.setter
    def energy_import_wh(self, value: float | None) -> None:
        self.set_values(energy_import_wh=value)

    @property
    def energy_export_wh(self) -> float | None:
        return _single(self._values[Quantity.ENERGY_EXPORT])

    @energy_export_wh.setter
    def energy_export_wh(self, value: float | None) -> None:
        self.set_values(energy_export_wh=value)

    def add_energy_wh(self, wh: float) -> None:
        """Advance the import register by ``wh`` (a car charging)."""
        self.set_values(energy_import_wh=(self.energy_import_wh or 0.0) + wh)

    def expected(self, quantity: Quantity) -> QuantityValue:
        """What a correct driver decodes for ``quantity`` now (the value after the model's
        encoding: float32 precision, integer steps, sentinels as None)."""
        return self.model.decode(self._registers)[quantity]

    # --- RegisterDevice --------------------------------------------------------------------------

    def read_registers(self, table: int, address: int, count: int) -> list[int]:
        if table != self.model.function_code:
            raise DeviceException(ILLEGAL_ADDRESS, f"{self.model.name} has no table {table}")
        if count > self.model.max_registers_per_read:
            raise DeviceException(ILLEGAL_VALUE, f"{count} registers is over the read limit")
        registers = self._registers
        words: list[int] = []
        for a in range(address, address + count):
            if not self.model.is_readable(a):
                raise DeviceException(ILLEGAL_ADDRESS, f"{self.model.name} has no register {a}")
            words.append(registers.get(a, 0))
        self.reads += 1
        return words

    def write_registers(self, address: int, values: list[int]) -> None:
        raise DeviceException(ILLEGAL_ADDRESS, "the simulated meter has no writable registers")


def _normalise(quantity: Quantity, value: object) -> QuantityValue:
    if quantity in (Quantity.VOLTAGE_PER_PHASE, Quantity.CURRENT_PER_PHASE):
        if isinstance(value, Sequence) and not isinstance(value, str):
            if len(value) != 3:
                raise ValueError(f"{quantity.name} needs (L1, L2, L3)")
            return (_number(value[0]), _number(value[1]), _number(value[2]))
        single = _number(value)
        return (single, single, single)
    return _number(value)


def _number(value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def _phases(value: QuantityValue) -> PhaseValues:
    return value if isinstance(value, tuple) else (value, value, value)


def _single(value: QuantityValue) -> float | None:
    return None if isinstance(value, tuple) else value


# --------------------------------------------------------------------------------------------------
# EVSE-WB board


_REG_ACTUAL = 1001
_REG_VEHICLE = 1002
_REG_CABLE = 1003
_REG_FIRMWARE = 1005
_REG_EVSE_STATE = 1006
_REG_MIN_CURRENT = 2002
_STATE_CODES = {state: code for code, state in VEHICLE_STATES.items()}
_READABLE = set(range(1000, 1008)) | set(range(2000, 2018))
_WRITABLE = {REG_CONFIGURED_CURRENT, REG_TURN_OFF} | set(range(2000, 2018))


class SimulatedEvseBoard:
    """An EVSE-WB / EVSE-DIN board: holding registers 1000-1007 and 2000-2017 (FC3/FC6/FC16).

    The driver's writes are visible as ``configured_current_a`` (A; register 1000, scaled by the
    0.01 A mode) and ``turned_off`` (bit 0 of 1004); ``writes`` records every (address, values).
    Python sets ``vehicle_state`` (A-E; E is the board's "failure", 5), ``cable_limit_a`` and
    ``precise_current``.  The EVSE state (1006) follows: off (3) when turned off, PWM (2) when the
    configured current is at least the minimum (2002, default 6 A), steady (1) otherwise; 1001
    (actual current) is the configured current while PWM runs, else 0.
    """

    def __init__(
        self,
        unit_id: int = 1,
        *,
        precise_current: bool = False,
        cable_limit_a: int = 0,
        firmware_version: int = 18,
        vehicle_state: PilotState = PilotState.A,
    ) -> None:
        self.unit_id = unit_id
        self._responding = True
        self._holding: dict[int, int] = {a: 0 for a in _READABLE}
        self._holding[_REG_FIRMWARE] = firmware_version
        self._holding[_REG_MIN_CURRENT] = 6
        self._holding[2000] = 0  # current after boot
        self.writes: list[tuple[int, list[int]]] = []
        self.precise_current = precise_current
        self.cable_limit_a = cable_limit_a
        self.vehicle_state = vehicle_state

    def __repr__(self) -> str:
        return f"SimulatedEvseBoard(unit {self.unit_id})"

    # --- liveness --------------------------------------------------------------------------------

    @property
    def responding(self) -> bool:
        return self._responding

    def set_responding(self, responding: bool) -> None:
        """False: requests get no answer at all (the client times out); True: answers again."""
        self._responding = responding

    # --- state seen from Python ------------------------------------------------------------------

    @property
    def vehicle_state(self) -> PilotState:
        return VEHICLE_STATES[self._holding[_REG_VEHICLE]]

    @vehicle_state.setter
    def vehicle_state(self, state: PilotState) -> None:
        if state not in _STATE_CODES:
            raise ValueError(f"the EVSE-WB vehicle state register cannot show {state}")
        self._holding[_REG_VEHICLE] = _STATE_CODES[state]

    @property
    def precise_current(self) -> bool:
        """Bit 7 of register 2005: currents in 0.01 A."""
        return bool(self._holding[REG_CONFIG_BITS] & CONFIG_PRECISE_CURRENT)

    @precise_current.setter
    def precise_current(self, precise: bool) -> None:
        bits = self._holding[REG_CONFIG_BITS] & ~CONFIG_PRECISE_CURRENT
        self._holding[REG_CONFIG_BITS] = bits | (CONFIG_PRECISE_CURRENT if precise else 0)

    @property
    def counts_per_amp(self) -> int:
        """Register counts per ampere of 1000/1001: 100 in the 0.01 A mode, else 1."""
        return 100 if self.precise_current else 1

    @property
    def configured_current_a(self) -> float:
        """Register 1000 in amperes (0: no PWM)."""
        return self._holding[REG_CONFIGURED_CURRENT] / self.counts_per_amp

    @configured_current_a.setter
    def configured_current_a(self, amps: float) -> None:
        self._holding[REG_CONFIGURED_CURRENT] = round(amps * self.counts_per_amp)

    @property
    def turned_off(self) -> bool:
        return bool(self._holding[REG_TURN_OFF] & TURN_OFF_BIT)

    @turned_off.setter
    def turned_off(self, off: bool) -> None:
        self._holding[REG_TURN_OFF] = TURN_OFF_BIT if off else 0

    @property
    def cable_limit_a(self) -> int:
        """Register 1003: proximity-pilot rating of the plugged cable (0: none)."""
        return self._holding[_REG_CABLE]

    @cable_limit_a.setter
    def cable_limit_a(self, amps: int) -> None:
        self._holding[_REG_CABLE] = int(amps)

    @property
    def evse_state(self) -> int:
        """Register 1006: 1 steady +12 V, 2 PWM, 3 off."""
        if self.turned_off:
            return EVSE_OFF
        # 2002 (minimum current) taken in whole amperes in both current modes.
        minimum_a = self._holding[_REG_MIN_CURRENT]
        configured_a = self.configured_current_a
        return EVSE_PWM if configured_a > 0 and configured_a >= minimum_a else EVSE_STEADY

    @property
    def pwm_running(self) -> bool:
        return self.evse_state == EVSE_PWM

    @property
    def offered_a(self) -> float:
        """What the PWM advertises now (A; 0 without PWM)."""
        return self.configured_current_a if self.pwm_running else 0.0

    # --- RegisterDevice --------------------------------------------------------------------------

    def read_registers(self, table: int, address: int, count: int) -> list[int]:
        if table != TABLE_HOLDING:
            raise DeviceException(ILLEGAL_FUNCTION, "the EVSE-WB has holding registers only")
        words = []
        for a in range(address, address + count):
            if a not in _READABLE:
                raise DeviceException(ILLEGAL_ADDRESS, f"no register {a}")
            words.append(self._live(a))
        return words

    def write_registers(self, address: int, values: list[int]) -> None:
        span = range(address, address + len(values))
        if any(a not in _WRITABLE for a in span):
            raise DeviceException(ILLEGAL_ADDRESS, f"registers {span} are not writable")
        if REG_CONFIGURED_CURRENT in span:
            raw = values[REG_CONFIGURED_CURRENT - address]
            if raw / self.counts_per_amp > 80:
                raise DeviceException(ILLEGAL_VALUE, f"{raw} is over 80 A")
        self.writes.append((address, list(values)))
        for a, value in zip(span, values, strict=True):
            self._holding[a] = value

    def _live(self, address: int) -> int:
        if address == _REG_EVSE_STATE:
            return self.evse_state
        if address == _REG_ACTUAL:
            return self._holding[REG_CONFIGURED_CURRENT] if self.pwm_running else 0
        return self._holding[address]


# --------------------------------------------------------------------------------------------------
# Observing a device


# (table, address, count) of a read request; the answer's words for ``after_read``.
BeforeRead = Callable[[int, int, int], None]
AfterRead = Callable[[int, int, int, list[int]], None]


class ObservedDevice:
    """``device`` as the server sees it, with hooks around each read: ``before_read(table,
    address, count)`` runs before the device answers, ``after_read(table, address, count,
    words)`` after it answered (not after a ``DeviceException``).  The bench uses it to save
    the meter register before a read and to count the controller's pilot reads, without
    touching the device's own methods."""

    def __init__(
        self,
        device: RegisterDevice,
        *,
        before_read: BeforeRead | None = None,
        after_read: AfterRead | None = None,
    ) -> None:
        self.device = device
        self._before_read = before_read
        self._after_read = after_read

    def __repr__(self) -> str:
        return f"ObservedDevice({self.device!r})"

    @property
    def unit_id(self) -> int:
        return self.device.unit_id

    @property
    def responding(self) -> bool:
        return self.device.responding

    def read_registers(self, table: int, address: int, count: int) -> list[int]:
        if self._before_read is not None:
            self._before_read(table, address, count)
        words = self.device.read_registers(table, address, count)
        if self._after_read is not None:
            self._after_read(table, address, count, words)
        return words

    def write_registers(self, address: int, values: list[int]) -> None:
        self.device.write_registers(address, values)


# --------------------------------------------------------------------------------------------------
# Server


class SimulatedModbusServer(RegisterServer):
    """A real pymodbus server for simulated devices (several unit ids on one bus).

    ``await start_tcp()`` (127.0.0.1, free port; returns it) or ``await start_rtu(path)``;
    ``await stop()``.  ``requests`` lists every request that reached a device, with its arrival
    time, for tests of bus timing."""

    def tcp_endpoint(
        self, *, timeout_s: float = 0.5, retries: int = 1, quiet_gap_s: float = 0.0
    ) -> ModbusEndpoint:
        """A client endpoint for the running TCP server."""
        if self.tcp_port is None:
            raise RuntimeError("the server is not serving TCP")
        return ModbusEndpoint(
            host="127.0.0.1",
            tcp_port=self.tcp_port,
            timeout_s=timeout_s,
            retries=retries,
            quiet_gap_s=quiet_gap_s,
        )
