"""ModbusEnergyMeter and ModbusBus against real pymodbus servers (TCP loopback and RTU over
pseudo-terminals)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from datetime import UTC

import pytest

from hal.config import MeterConfig, ModbusEndpoint, PilotConfig
from hal.interfaces import EnergyMeter
from hal.modbus.bus import (
    BusDisconnected,
    BusExceptionResponse,
    BusTimeout,
    ModbusBus,
    bus_for,
    open_buses,
)
from hal.modbus.evse_wb import EvseWbPilot
from hal.modbus.meter import ModbusEnergyMeter
from hal.modbus.models import METER_MODELS
from hal.sim.modbus_devices import SimulatedEvseBoard, SimulatedMeter, SimulatedModbusServer
from hal.types import ConfigurationError, MeterHealth, Quantity

MakeServer = Callable[..., SimulatedModbusServer]

# Values on every model's grid (0.1 V, 0.01 A, 0.1 W, 100 Wh, 0.1 Hz) so integer models serve
# them exactly and float32 models within float32 precision.
LIVE = {
    "voltage_v": (230.1, 229.9, 231.2),
    "current_a": (16.12, 15.5, 0.25),
    "power_w": 7421.3,
    "energy_import_wh": 1_234_500.0,
    "energy_export_wh": 2_500.0,
    "frequency_hz": 49.9,
}


def approx(value: object) -> object:
    return pytest.approx(value, rel=1e-6)


@pytest.mark.asyncio
@pytest.mark.parametrize("model", sorted(METER_MODELS))
async def test_every_model_reads_what_the_simulator_serves_over_tcp(
    modbus_server_factory: MakeServer, model: str
) -> None:
    sim = SimulatedMeter(model, unit_id=7)
    sim.set_values(**LIVE)  # type: ignore[arg-type]
    server = modbus_server_factory(sim)
    await server.start_tcp()
    meter = ModbusEnergyMeter(MeterConfig(model, server.tcp_endpoint(timeout_s=0.5), unit_id=7))
    assert isinstance(meter, EnergyMeter)
    assert meter.quantities == METER_MODELS[model].quantities
    assert meter.latest is None

    reading = await meter.poll()

    assert reading.health is MeterHealth.OK
    assert reading.timestamp.tzinfo is UTC
    assert meter.latest is reading
    assert reading.energy_import_wh == approx(1_234_500.0)
    assert reading.energy_export_wh == approx(2_500.0)
    assert reading.power_w == approx(7421.3)
    assert reading.frequency_hz == approx(49.9)
    single_phase = METER_MODELS[model].voltage[1] is None
    if single_phase:
        assert reading.voltage_v == (approx(230.1), None, None)
        assert reading.current_a == (approx(16.12), None, None)
    else:
        assert reading.voltage_v == approx((230.1, 229.9, 231.2))
        assert reading.current_a == approx((16.12, 15.5, 0.25))
    # exactly what the model's own decoder gives for the served registers
    assert reading.energy_import_wh == sim.expected(Quantity.ENERGY_IMPORT)
    assert reading.voltage_v == sim.expected(Quantity.VOLTAGE_PER_PHASE)
    # one request per block of the read plan, all with the model's function code
    fcs = [(r.function_code, r.address, r.count) for r in server.requests]
    plan = METER_MODELS[model].read_plan
    assert fcs == [(METER_MODELS[model].function_code, b.address, b.count) for b in plan]
    await meter.close()


@pytest.mark.asyncio
async def test_live_values_follow_the_simulator(modbus_server_factory: MakeServer) -> None:
    sim = SimulatedMeter("SDM630")
    server = modbus_server_factory(sim)
    await server.start_tcp()
    meter = ModbusEnergyMeter(MeterConfig("SDM630", server.tcp_endpoint()))
    first = await meter.poll()
    assert first.energy_import_wh == 0.0 and first.voltage_v == (230.0, 230.0, 230.0)
    sim.add_energy_wh(1500)
    sim.current_a = (10.0, 0.0, 0.0)
    second = await meter.poll()
    assert second.energy_import_wh == 1500.0
    assert second.current_a == (10.0, 0.0, 0.0)
    assert second.timestamp >= first.timestamp


@pytest.mark.asyncio
async def test_invalid_values_read_as_none(modbus_server_factory: MakeServer) -> None:
    # An ABB "basic" variant without export serves all-FFFF; an SDM serving NaN frequency.
    abb, sdm = SimulatedMeter("B23", unit_id=1), SimulatedMeter("SDM630", unit_id=2)
    abb.set_values(energy_export_wh=None, voltage_v=(230.0, None, 230.0))
    sdm.frequency_hz = None
    server = modbus_server_factory(abb, sdm)
    await server.start_tcp()
    endpoint = server.tcp_endpoint()
    abb_reading = await ModbusEnergyMeter(MeterConfig("B23", endpoint, unit_id=1)).poll()
    sdm_reading = await ModbusEnergyMeter(MeterConfig("SDM630", endpoint, unit_id=2)).poll()
    assert abb_reading.health is MeterHealth.OK
    assert abb_reading.energy_export_wh is None
    assert abb_reading.energy_import_wh == 0.0
    assert abb_reading.voltage_v == (230.0, None, 230.0)
    assert sdm_reading.frequency_hz is None
    assert sdm_reading.voltage_v == (230.0, 230.0, 230.0)


@pytest.mark.asyncio
async def test_sdm630_over_rtu_through_a_pty_pair(
    modbus_server_factory: MakeServer, modbus_pty_pair: tuple[str, str]
) -> None:
    server_end, client_end = modbus_pty_pair
    sim = SimulatedMeter("SDM630", unit_id=1)
    sim.set_values(**LIVE)  # type: ignore[arg-type]
    board = SimulatedEvseBoard(unit_id=2)
    server = modbus_server_factory(sim, board)
    await server.start_rtu(server_end, baudrate=9600)
    endpoint = ModbusEndpoint(
        port=client_end, baudrate=9600, timeout_s=0.3, retries=0, quiet_gap_s=0.01
    )
    meter = ModbusEnergyMeter(MeterConfig("SDM630", endpoint, unit_id=1))
    pilot = EvseWbPilot(PilotConfig("evse-wb", endpoint, unit_id=2))

    reading = await meter.poll()
    assert reading.health is MeterHealth.OK
    assert reading.energy_import_wh == approx(1_234_500.0)
    assert reading.voltage_v == approx((230.1, 229.9, 231.2))
    await pilot.offer_current(10)
    assert board.configured_current_a == 10

    sim.set_responding(False)  # a dead meter on a live RS-485 line: silence, then a timeout
    assert (await meter.poll()).health is MeterHealth.STALE
    sim.set_responding(True)
    assert (await meter.poll()).health is MeterHealth.OK
    await meter.close()
    await pilot.close()


# --------------------------------------------------------------------------------------------------
# A meter that stops answering


@pytest.mark.asyncio
async def test_dead_meter_goes_stale_then_unavailable_and_recovers(
    modbus_server_factory: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    sim = SimulatedMeter("SDM630")
    sim.set_values(**LIVE)  # type: ignore[arg-type]
    server = modbus_server_factory(sim)
    await server.start_tcp()
    meter = ModbusEnergyMeter(
        MeterConfig("SDM630", server.tcp_endpoint(timeout_s=0.1, retries=0), unavailable_after=3)
    )
    good = await meter.poll()
    assert good.health is MeterHealth.OK

    caplog.set_level(logging.DEBUG, logger="hal.modbus.meter")
    sim.set_responding(False)
    healths = []
    for _ in range(5):
        reading = await meter.poll()
        healths.append(reading.health)
        # the last good values, with the time they were read, never presented as fresh
        assert reading.energy_import_wh == good.energy_import_wh
        assert reading.voltage_v == good.voltage_v
        assert reading.timestamp == good.timestamp
        assert meter.latest is reading
    assert healths == [MeterHealth.STALE, MeterHealth.STALE] + [MeterHealth.UNAVAILABLE] * 3

    sim.set_responding(True)
    sim.add_energy_wh(100)
    recovered = await meter.poll()
    assert recovered.health is MeterHealth.OK
    assert recovered.energy_import_wh == approx(1_234_600.0)
    assert recovered.timestamp > good.timestamp
    assert meter.consecutive_failures == 0

    # logged once per transition (OK->STALE, STALE->UNAVAILABLE, recovery), not per poll
    loud = [r for r in caplog.records if r.name == "hal.modbus.meter" and r.levelno >= logging.INFO]
    assert [r.levelno for r in loud] == [logging.WARNING, logging.ERROR, logging.INFO]
    assert "tcp:127.0.0.1" in loud[0].getMessage() and "unit 1" in loud[0].getMessage()


@pytest.mark.asyncio
async def test_meter_dead_from_the_start_has_no_values(modbus_server_factory: MakeServer) -> None:
    sim = SimulatedMeter("EM340")
    sim.set_responding(False)
    server = modbus_server_factory(sim)
    await server.start_tcp()
    meter = ModbusEnergyMeter(
        MeterConfig("EM340", server.tcp_endpoint(timeout_s=0.1, retries=0), unavailable_after=2)
    )
    first = await meter.poll()
    assert first.health is MeterHealth.STALE
    assert first.energy_import_wh is None and first.power_w is None
    assert first.voltage_v == (None, None, None)
    assert first.timestamp.tzinfo is UTC
    assert (await meter.poll()).health is MeterHealth.UNAVAILABLE
    sim.set_responding(True)
    assert (await meter.poll()).health is MeterHealth.OK


@pytest.mark.asyncio
async def test_dead_meter_poll_is_bounded_by_one_request_timeout(
    modbus_server_factory: MakeServer,
) -> None:
    # EM24 needs 6 reads per poll; a dead meter must cost one timeout x (1 + retries), not six.
    assert len(METER_MODELS["EM24"].read_plan) == 6
    sim = SimulatedMeter("EM24")
    sim.set_responding(False)
    server = modbus_server_factory(sim)
    await server.start_tcp()
    meter = ModbusEnergyMeter(MeterConfig("EM24", server.tcp_endpoint(timeout_s=0.2, retries=1)))
    started = time.monotonic()
    reading = await meter.poll()
    elapsed = time.monotonic() - started
    assert reading.health is MeterHealth.STALE
    assert elapsed >= 0.35  # it did wait for 2 attempts of 0.2 s
    assert elapsed < 1.5  # generous: 6 blocks x 0.4 s would be 2.4 s
    assert [r.answered for r in server.requests] == [False, False]  # first block, 1 + 1 retry


@pytest.mark.asyncio
async def test_stopped_server_is_a_failure_and_a_restart_recovers(
    modbus_server_factory: MakeServer,
) -> None:
    sim = SimulatedMeter("SDM630")
    server = modbus_server_factory(sim)
    port = await server.start_tcp()
    meter = ModbusEnergyMeter(MeterConfig("SDM630", server.tcp_endpoint(timeout_s=0.2, retries=0)))
    assert (await meter.poll()).health is MeterHealth.OK
    await server.stop()
    assert (await meter.poll()).health is MeterHealth.STALE
    await server.start_tcp(port=port)
    assert (await meter.poll()).health is MeterHealth.OK


def test_unknown_model_is_a_configuration_error() -> None:
    endpoint = ModbusEndpoint(host="127.0.0.1", tcp_port=1502)
    with pytest.raises(ConfigurationError, match="SDM630"):
        ModbusEnergyMeter(MeterConfig("NOPE", endpoint))


# --------------------------------------------------------------------------------------------------
# The bus: sharing, lock, quiet gap, errors


@pytest.mark.asyncio
async def test_devices_on_one_endpoint_share_one_bus(modbus_server_factory: MakeServer) -> None:
    endpoint = ModbusEndpoint(host="127.0.0.1", tcp_port=1502)
    a = ModbusEnergyMeter(MeterConfig("SDM630", endpoint, unit_id=1))
    b = EvseWbPilot(PilotConfig("evse-wb", endpoint, unit_id=2))
    assert [bus.key for bus in open_buses()] == ["tcp:127.0.0.1:1502"]
    with pytest.raises(ConfigurationError, match="tcp:127.0.0.1:1502"):
        bus_for(ModbusEndpoint(host="127.0.0.1", tcp_port=1502, timeout_s=2.0))
    await a.close()
    assert len(open_buses()) == 1  # still used by the pilot
    await b.close()
    assert open_buses() == []


@pytest.mark.asyncio
async def test_two_devices_on_one_bus_never_overlap_and_keep_the_quiet_gap(
    modbus_server_factory: MakeServer,
) -> None:
    meter_a, meter_b = SimulatedMeter("SDM630", unit_id=1), SimulatedMeter("EM340", unit_id=3)
    board = SimulatedEvseBoard(unit_id=2)
    server = modbus_server_factory(meter_a, board, meter_b)
    await server.start_tcp()
    gap = 0.04
    endpoint = server.tcp_endpoint(timeout_s=0.5, quiet_gap_s=gap)
    m1 = ModbusEnergyMeter(MeterConfig("SDM630", endpoint, unit_id=1))
    m2 = ModbusEnergyMeter(MeterConfig("EM340", endpoint, unit_id=3))
    pilot = EvseWbPilot(PilotConfig("evse-wb", endpoint, unit_id=2))

    async def polls(meter: ModbusEnergyMeter) -> None:
        for _ in range(3):
            assert (await meter.poll()).health is MeterHealth.OK

    async def pilot_traffic() -> None:
        for amps in (6, 10, 16):
            await pilot.offer_current(amps)
            await pilot.read()

    await asyncio.gather(polls(m1), polls(m2), pilot_traffic())

    arrivals = [r.time for r in server.requests]
    # SDM630 1 read per poll, EM340 2; pilot: 2005 once, 3 writes of 1000, 1004 cleared once,
    # 3 reads
    assert len(arrivals) == 3 + 6 + 1 + 3 + 1 + 3
    units = {r.unit for r in server.requests}
    assert units == {1, 2, 3}
    # Each request reached the server at least one quiet gap after the previous one: the next
    # request started only after the previous answer arrived plus the gap.
    for earlier, later in itertools.pairwise(arrivals):
        assert later - earlier >= gap - 0.001  # asyncio may wake a hair early


@pytest.mark.asyncio
async def test_bus_errors_carry_endpoint_unit_function_address_and_code(
    modbus_server_factory: MakeServer,
) -> None:
    server = modbus_server_factory(SimulatedMeter("SDM630", unit_id=1))
    await server.start_tcp()
    endpoint = server.tcp_endpoint(timeout_s=0.1, retries=0)
    bus = ModbusBus(endpoint)

    assert len(await bus.read_input_registers(1, 0, 4)) == 4
    with pytest.raises(BusExceptionResponse) as info:
        await bus.read_input_registers(1, 0x200, 2)  # not an SDM630 register
    err = info.value
    assert (err.unit, err.function_code, err.address, err.exception_code) == (1, 4, 0x200, 2)
    assert err.endpoint == endpoint.key
    assert f"{endpoint.key} unit 1 FC4 address 512" in str(err)
    assert "ILLEGAL DATA ADDRESS" in str(err)
    with pytest.raises(BusExceptionResponse):
        await bus.read_holding_registers(1, 0, 2)  # SDM630 values are input registers
    with pytest.raises(BusTimeout, match="unit 9"):
        await bus.read_input_registers(9, 0, 2)  # no such unit: silence, as on RS-485
    assert len(await bus.read_input_registers(1, 0, 2)) == 2  # the bus is still usable
    await bus.close()


@pytest.mark.asyncio
async def test_bus_reconnects_lazily(modbus_server_factory: MakeServer) -> None:
    server = modbus_server_factory(SimulatedMeter("SDM630", unit_id=1))
    port = await server.start_tcp()
    bus = ModbusBus(server.tcp_endpoint(timeout_s=0.2, retries=0))
    await bus.read_input_registers(1, 0, 2)
    await server.stop()
    # The first request may be sent before the client saw the close (then it times out).
    with pytest.raises((BusDisconnected, BusTimeout)):
        await bus.read_input_registers(1, 0, 2)
    with pytest.raises(BusDisconnected, match="cannot connect"):
        await bus.read_input_registers(1, 0, 2)
    assert not bus.connected
    await server.start_tcp(port=port)
    assert len(await bus.read_input_registers(1, 0, 2)) == 2
    assert bus.connected
    await bus.close()


@pytest.mark.asyncio
async def test_nothing_listening_is_a_bus_disconnected_error() -> None:
    # port 9 (discard) on loopback: connection refused at once on a test machine
    bus = ModbusBus(ModbusEndpoint(host="127.0.0.1", tcp_port=9, timeout_s=0.2, retries=0))
    with pytest.raises(BusDisconnected, match="cannot connect"):
        await bus.read_input_registers(1, 0, 2)
    await bus.close()
