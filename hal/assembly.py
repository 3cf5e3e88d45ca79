"""Build every driver of a charger from its ``HardwareConfig``.

Used for a real Pi (gpiozero's default pin factory, the configured serial ports) and by the
simulated bench (gpiozero's mock factory, Modbus endpoints pointing at simulated devices), so
the bench runs exactly the drivers a Pi runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from hal.config import (
    ConnectorHardware,
    HardwareConfig,
    MeterConfig,
    ModbusEndpoint,
    PilotConfig,
)
from hal.interfaces import (
    Buzzer,
    CardReader,
    ConnectorDevices,
    Display,
    EnergyMeter,
    PowerFailInput,
    SafetyInputs,
    StatusIndicator,
)
from hal.types import PilotReading

log = logging.getLogger(__name__)


@dataclass
class Devices:
    connectors: list[ConnectorDevices]
    safety: SafetyInputs
    indicator: StatusIndicator | None
    buzzer: Buzzer | None
    card_reader: CardReader | None
    display: Display | None = None
    # The grid-connection meter (HardwareConfig.grid_meter), read by firmware.grid_meter.
    grid_meter: EnergyMeter | None = None
    # The backup supply's mains-lost line (HardwareConfig.power_fail), read by
    # firmware.power_loss.  None: no backup power.
    power_fail: PowerFailInput | None = None

    def safe_state(self) -> None:
        """Every output to its safe state (contactors open, lock motors off, light and sound
        off).  Synchronous and exception-proof: it runs first thing at start, on SIGTERM and
        on a crash."""
        for c in self.connectors:
            _quietly(c.contactor.open)
        indicator = self.indicator
        if indicator is not None:
            from hal.types import OFF, LightPattern

            _quietly(lambda: indicator.show(OFF, LightPattern.OFF))
        if self.buzzer is not None:
            _quietly(self.buzzer.silence)

    async def close(self) -> None:
        self.safe_state()
        for c in self.connectors:
            _quietly(c.contactor.close)
            if c.lock is not None:
                _quietly(c.lock.close)
            try:
                await c.pilot.stop_offering()
            except Exception:  # noqa: BLE001 - closing: best effort
                pass
            await c.pilot.close()
            await c.meter.close()
        if self.grid_meter is not None:
            await self.grid_meter.close()
        for device in (
            self.safety,
            self.indicator,
            self.buzzer,
            self.card_reader,
            self.display,
            self.power_fail,
        ):
            if device is not None:
                _quietly(device.close)
        from hal.modbus.bus import close_all_buses

        await close_all_buses()


def _quietly(action: Callable[[], Any]) -> None:
    try:
        action()
    except Exception:  # noqa: BLE001 - safe-state paths must never raise
        log.exception("while driving outputs safe")


def build_devices(
    hw: HardwareConfig,
    *,
    pin_factory: object | None = None,
    endpoint_for: Callable[[str, ConnectorHardware | None], ModbusEndpoint] | None = None,
    card_reader: CardReader | None = None,
) -> Devices:
    """Construct all drivers; outputs start in their safe state as each is built.

    ``endpoint_for(role, connector)`` may replace the Modbus endpoint of a connector's "pilot"
    or "meter", or (connector None) of the "grid_meter" (the bench points them at its simulated
    devices).  A device on the same endpoint as another shares its bus owner (``bus_for``)."""
    from hal.gpio.buzzer import GpioBuzzer
    from hal.gpio.contactor import GpioContactor
    from hal.gpio.indicator import GpioStatusIndicator
    from hal.gpio.lock import GpioConnectorLock
    from hal.gpio.safety import GpioSafetyInputs
    from hal.modbus.evse_wb import EvseWbPilot
    from hal.modbus.meter import ModbusEnergyMeter

    connectors: list[ConnectorDevices] = []
    contactors: list[GpioContactor] = []
    for c in hw.connectors:
        pilot_cfg, meter_cfg = c.pilot, c.meter
        if endpoint_for is not None:
            pilot_cfg = replace(pilot_cfg, endpoint=endpoint_for("pilot", c))
            meter_cfg = replace(meter_cfg, endpoint=endpoint_for("meter", c))
        contactor = GpioContactor(c.contactor, pin_factory=pin_factory)
        contactors.append(contactor)
        lock = GpioConnectorLock(c.lock, pin_factory=pin_factory) if c.lock else None
        connectors.append(
            ConnectorDevices(
                c.connector_id,
                EvseWbPilot(pilot_cfg),
                contactor,
                ModbusEnergyMeter(meter_cfg),
                lock,
                c.max_current_a,
            )
        )
    safety = GpioSafetyInputs(hw.safety, contactors, pin_factory=pin_factory)
    indicator = GpioStatusIndicator(hw.indicator, pin_factory=pin_factory) if hw.indicator else None
    buzzer = GpioBuzzer(hw.buzzer, pin_factory=pin_factory) if hw.buzzer else None
    display = None
    if hw.display is not None:
        from hal.gpio.display import GpioBacklight

        display = GpioBacklight(hw.display, pin_factory=pin_factory)
    if card_reader is None and hw.card_reader is not None:
        from hal.cardreader.rdm6300 import Rdm6300Reader

        card_reader = Rdm6300Reader(hw.card_reader)
    grid_meter = None
    if hw.grid_meter is not None:
        grid_cfg = hw.grid_meter
        if endpoint_for is not None:
            grid_cfg = replace(grid_cfg, endpoint=endpoint_for("grid_meter", None))
        grid_meter = ModbusEnergyMeter(grid_cfg)
    power_fail = None
    if hw.power_fail is not None:
        from hal.gpio.power_fail import GpioPowerFailInput

        power_fail = GpioPowerFailInput(hw.power_fail, pin_factory=pin_factory)
    return Devices(
        connectors, safety, indicator, buzzer, card_reader, display, grid_meter, power_fail
    )


# ------------------------------------------------------------------ bring-up probes (doctor)


async def probe_meter(cfg: MeterConfig) -> dict[Any, Any]:
    """Read every register a meter model serves once and decode it (``Quantity`` -> value).

    Unlike ``ModbusEnergyMeter.poll`` this raises the bus error (``BusError``: timeout,
    exception answer, port missing), because a bring-up check wants the reason.  The caller
    picks the timeout through ``cfg.endpoint``."""
    from hal.modbus.bus import bus_for
    from hal.modbus.models import meter_model

    model = meter_model(cfg.model)
    bus = bus_for(cfg.endpoint)
    try:
        registers: dict[int, int] = {}
        for block in model.read_plan:
            words = await bus.read_registers(
                model.function_code, cfg.unit_id, block.address, block.count
            )
            registers.update(zip(range(block.address, block.end), words, strict=True))
        return model.decode(registers)
    finally:
        await bus.release()


async def probe_pilot(cfg: PilotConfig) -> PilotReading:
    """Read the control pilot board once (``PilotFailure`` with the reason if it does not
    answer)."""
    from hal.modbus.evse_wb import EvseWbPilot

    pilot = EvseWbPilot(cfg)
    try:
        return await pilot.read()
    finally:
        await pilot.close()
