"""EvseWbPilot against a SimulatedEvseBoard on a real pymodbus server (TCP loopback)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
import pytest_asyncio

from hal.config import ModbusEndpoint, PilotConfig
from hal.interfaces import ControlPilot
from hal.modbus.evse_wb import EvseWbPilot
from hal.sim.modbus_devices import SimulatedEvseBoard, SimulatedModbusServer
from hal.types import ConfigurationError, HardwareFault, PilotFailure, PilotState

MakeServer = Callable[..., SimulatedModbusServer]


@dataclass
class Bench:
    board: SimulatedEvseBoard
    server: SimulatedModbusServer
    pilot: EvseWbPilot


async def _bench(make: MakeServer, *, precise: bool = False, unit_id: int = 3) -> Bench:
    board = SimulatedEvseBoard(unit_id=unit_id, precise_current=precise, cable_limit_a=32)
    server = make(board)
    await server.start_tcp()
    endpoint = server.tcp_endpoint(timeout_s=0.1, retries=0)
    pilot = EvseWbPilot(PilotConfig("evse-wb", endpoint, unit_id=unit_id))
    return Bench(board, server, pilot)


@pytest_asyncio.fixture
async def evse_bench(modbus_server_factory: MakeServer) -> AsyncIterator[Bench]:
    bench = await _bench(modbus_server_factory)
    yield bench
    await bench.pilot.close()


@pytest_asyncio.fixture
async def precise_evse_bench(modbus_server_factory: MakeServer) -> AsyncIterator[Bench]:
    bench = await _bench(modbus_server_factory, precise=True)
    yield bench
    await bench.pilot.close()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "state", [PilotState.A, PilotState.B, PilotState.C, PilotState.D, PilotState.E]
)
async def test_vehicle_states_1_to_5(evse_bench: Bench, state: PilotState) -> None:
    evse_bench.board.vehicle_state = state
    reading = await evse_bench.pilot.read()
    assert reading.state is state
    assert reading.offered_a == 0.0
    assert reading.cable_limit_a == 32.0


@pytest.mark.asyncio
async def test_is_a_control_pilot(evse_bench: Bench) -> None:
    assert isinstance(evse_bench.pilot, ControlPilot)


@pytest.mark.asyncio
async def test_offer_then_stop(evse_bench: Bench) -> None:
    board, pilot = evse_bench.board, evse_bench.pilot
    board.vehicle_state = PilotState.C
    await pilot.offer_current(16)
    assert board.configured_current_a == 16
    assert not board.turned_off
    assert board.pwm_running
    reading = await pilot.read()
    assert (reading.state, reading.offered_a) == (PilotState.C, 16.0)

    # Whole-ampere board: rounded down, never up, and the driver says what it offers.
    assert await pilot.offer_current(10.9) == 10.0
    assert board.configured_current_a == 10

    await pilot.stop_offering()
    assert board.configured_current_a == 0
    assert not board.pwm_running
    assert (await pilot.read()).offered_a == 0.0
    assert (1000, [0]) in board.writes


@pytest.mark.asyncio
async def test_set_unavailable_is_state_f_and_offer_clears_it(evse_bench: Bench) -> None:
    board, pilot = evse_bench.board, evse_bench.pilot
    board.vehicle_state = PilotState.B
    await pilot.offer_current(16)
    await pilot.set_unavailable()
    assert board.turned_off
    assert board.configured_current_a == 0
    reading = await pilot.read()
    assert reading.state is PilotState.F
    assert reading.offered_a == 0.0

    await pilot.offer_current(13)
    assert not board.turned_off
    assert board.configured_current_a == 13
    assert (await pilot.read()).state is PilotState.B

    await pilot.set_unavailable()
    await pilot.stop_offering()  # steady +12 V is not F: the turn-off bit is cleared too
    assert not board.turned_off
    assert (await pilot.read()).state is PilotState.B


@pytest.mark.asyncio
async def test_precise_current_mode_counts_hundredths(precise_evse_bench: Bench) -> None:
    board, pilot = precise_evse_bench.board, precise_evse_bench.pilot
    board.vehicle_state = PilotState.C
    await pilot.offer_current(16.7)
    assert (1000, [1670]) in board.writes
    assert board.configured_current_a == 16.7
    assert (await pilot.read()).offered_a == 16.7
    assert pilot.precise_current is True
    await pilot.offer_current(6)
    await pilot.read()
    config_reads = [r for r in precise_evse_bench.server.requests if r.address == 2005]
    assert len(config_reads) == 1  # register 2005 is read once


@pytest.mark.asyncio
@pytest.mark.parametrize("amps", [0.0, 5.99, 80.01, -6.0, math.nan, math.inf])
async def test_offer_outside_6_to_80_a_is_refused_before_any_write(
    evse_bench: Bench, amps: float
) -> None:
    with pytest.raises(ValueError):
        await evse_bench.pilot.offer_current(amps)
    assert evse_bench.board.writes == []


@pytest.mark.asyncio
async def test_6_and_80_a_are_allowed(evse_bench: Bench) -> None:
    await evse_bench.pilot.offer_current(6)
    assert evse_bench.board.configured_current_a == 6
    await evse_bench.pilot.offer_current(80)
    assert evse_bench.board.configured_current_a == 80


@pytest.mark.asyncio
async def test_no_cable_detected_is_none(evse_bench: Bench) -> None:
    evse_bench.board.cable_limit_a = 0
    assert (await evse_bench.pilot.read()).cable_limit_a is None


@pytest.mark.asyncio
async def test_silent_board_raises_pilot_failure(evse_bench: Bench) -> None:
    evse_bench.board.set_responding(False)
    for call in (
        evse_bench.pilot.read(),
        evse_bench.pilot.offer_current(16),
        evse_bench.pilot.stop_offering(),
        evse_bench.pilot.set_unavailable(),
    ):
        with pytest.raises(PilotFailure) as info:
            await call
        assert info.value.fault is HardwareFault.EV_COMMUNICATION_ERROR
        assert "unit 3" in str(info.value)
    evse_bench.board.set_responding(True)
    assert (await evse_bench.pilot.read()).state is PilotState.A


@pytest.mark.asyncio
async def test_stopped_server_raises_pilot_failure(evse_bench: Bench) -> None:
    await evse_bench.pilot.read()
    await evse_bench.server.stop()
    with pytest.raises(PilotFailure):
        await evse_bench.pilot.read()
    with pytest.raises(PilotFailure, match="cannot connect"):
        await evse_bench.pilot.stop_offering()


def test_wrong_kind_or_unit_is_a_configuration_error() -> None:
    endpoint = ModbusEndpoint(host="127.0.0.1", tcp_port=1502)
    with pytest.raises(ConfigurationError):
        EvseWbPilot(PilotConfig("pi-pwm", endpoint))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        EvseWbPilot(PilotConfig("evse-wb", endpoint, unit_id=0))


def test_simulated_board_evse_state_follows_the_registers() -> None:
    board = SimulatedEvseBoard()
    assert board.evse_state == 1  # steady
    board.configured_current_a = 5  # below the minimum current (2002 = 6 A): no PWM
    assert board.evse_state == 1
    board.configured_current_a = 6
    assert board.evse_state == 2
    board.turned_off = True
    assert board.evse_state == 3
    with pytest.raises(ValueError):
        board.vehicle_state = PilotState.F  # not a vehicle state of the board
