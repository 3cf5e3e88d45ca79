"""The grid meter poller (firmware.grid_meter) on real pymodbus servers: the HAL's Modbus meter
driver reads a simulated grid meter (house + charger) and a simulated connector meter, over TCP
and over RTU through a pseudo-terminal pair; the allowance it gives follows fuse - house load
with hysteresis, and falls back to the safe current, logged once, when the meter dies or its
readings go stale.  Each cycle is run by the test (``cycle()``), so nothing depends on timing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from firmware.grid_meter import GridMeterPoller
from firmware.site_limit import SitePolicy
from hal.config import MeterConfig, ModbusEndpoint
from hal.modbus.bus import ModbusBus, bus_for, open_buses
from hal.modbus.meter import ModbusEnergyMeter
from hal.modbus.models import METER_MODELS
from hal.sim.modbus_devices import SimulatedMeter, SimulatedModbusServer

pytestmark = pytest.mark.asyncio

MakeServer = Callable[..., SimulatedModbusServer]
LOGGER = "firmware.grid_meter"


class Site:
    """A grid meter and one connector meter on one simulated bus, and the poller reading them;
    ``given`` records every allowance the poller handed to the charger."""

    def __init__(
        self,
        endpoint: ModbusEndpoint,
        grid: SimulatedMeter,
        connector: SimulatedMeter,
        policy: SitePolicy,
        *,
        unavailable_after: int = 3,
    ) -> None:
        self.grid, self.connector = grid, connector
        self.given: list[float | None] = []
        self.grid_meter = ModbusEnergyMeter(
            MeterConfig(
                grid.model.name, endpoint, grid.unit_id, unavailable_after=unavailable_after
            )
        )
        self.connector_meter = ModbusEnergyMeter(
            MeterConfig(connector.model.name, endpoint, connector.unit_id)
        )
        self.poller = GridMeterPoller(
            policy, self.grid_meter, [self.connector_meter], self.given.append, poll_s=0.1
        )

    async def house(self, house_a: float, charger_a: float = 0.0) -> float | None:
        """The house draws ``house_a`` and the charger ``charger_a`` on every phase: one
        connector-meter poll and one grid cycle; the allowance in force after it."""
        self.connector.current_a = charger_a
        self.grid.current_a = house_a + charger_a
        await self.connector_meter.poll()
        await self.poller.cycle()
        return self.poller.applied

    async def close(self) -> None:
        await self.grid_meter.close()
        await self.connector_meter.close()


def fallback_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == LOGGER and "fallback" in r.getMessage()
    ]


async def test_the_allowance_follows_the_house_load_down_and_up_with_hysteresis(
    modbus_server_factory: MakeServer,
) -> None:
    grid, connector = SimulatedMeter("SDM630", 3), SimulatedMeter("SDM630", 2)
    server = modbus_server_factory(grid, connector)
    await server.start_tcp()
    site = Site(
        server.tcp_endpoint(timeout_s=0.3, retries=0), grid, connector, SitePolicy(fuse_a=32.0)
    )
    try:
        assert await site.house(10.0) == 22.0  # the first reading is taken as it is
        # The charger's own draw is not house load: 16 A charging changes nothing.
        assert await site.house(10.0, charger_a=16.0) == 22.0
        assert await site.house(20.0, charger_a=16.0) == 12.0  # a fall at once
        assert await site.house(19.5, charger_a=12.0) == 12.0  # 12.5: less than 1 A above
        assert await site.house(19.2, charger_a=12.0) == 12.0  # ripple: the EV is not toggled
        assert await site.house(18.0, charger_a=12.0) == 14.0  # 1 A above: taken
        assert await site.house(30.0, charger_a=14.0) == 2.0  # under 6 A: charging stops
        assert await site.house(25.5, charger_a=0.0) == 2.0  # 6.5 A: not 6 + 1 A yet
        assert await site.house(25.0, charger_a=0.0) == 7.0  # restarts at 6 A + hysteresis
        assert await site.house(0.0, charger_a=7.0) == 32.0
        # One call per change, none for the cycles that kept the allowance.
        assert site.given == [22.0, 12.0, 14.0, 2.0, 7.0, 32.0]
        assert site.poller.status() == {
            "max_current_a": 32.0,
            "allowance_a": 32.0,
            "fallback": False,
            "grid_current_a": [pytest.approx(7.0)] * 3,
        }
    finally:
        await site.close()


async def test_an_ev_starting_between_the_readings_is_not_taken_for_house_load(
    modbus_server_factory: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The connector's meter last showed 0 A; the EV then started at 16 A, which the grid
    meter already sees.  Grid minus the old draw would be 26 A of house load and 6 A for the
    charger, for one cycle: the EV would be toggled.  The draw read again after the grid
    reading differs, so the cycle keeps the consistent reading in force."""
    grid, connector = SimulatedMeter("SDM630", 3), SimulatedMeter("SDM630", 2)
    server = modbus_server_factory(grid, connector)
    await server.start_tcp()
    site = Site(server.tcp_endpoint(timeout_s=0.3, retries=0), grid, connector, SitePolicy(32))
    try:
        assert await site.house(10.0) == 22.0
        connector.current_a = 16.0  # the EV starts; the connector's last reading says 0 A
        grid.current_a = 26.0
        with caplog.at_level(logging.DEBUG, logger=LOGGER):
            assert (await site.poller.cycle()).amps == 22.0
        assert any("cycle skipped" in r.getMessage() for r in caplog.records)
        assert (await site.poller.cycle()).amps == 22.0  # now steady: 26 - 16 = 10 A of house
        assert site.given == [22.0]
    finally:
        await site.close()


async def test_a_start_while_an_ev_charges_takes_the_first_reading(
    modbus_server_factory: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A restart while charging: the connector's meter was never read yet (its task has not
    run); the first cycle reads it before and after the grid meter, so the EV is not house
    load and no fallback is logged."""
    grid, connector = SimulatedMeter("SDM630", 3), SimulatedMeter("SDM630", 2)
    server = modbus_server_factory(grid, connector)
    await server.start_tcp()
    site = Site(server.tcp_endpoint(timeout_s=0.3, retries=0), grid, connector, SitePolicy(32))
    connector.current_a = 16.0
    grid.current_a = 26.0
    try:
        with caplog.at_level(logging.INFO, logger=LOGGER):
            await site.poller.first_cycle()
        assert site.given == [22.0]
        assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == [
            "site limit: the grid meter answers: fuse 32 A, allowance 22 A per phase"
        ]
    finally:
        await site.close()


async def test_the_worst_phase_decides(modbus_server_factory: MakeServer) -> None:
    grid, connector = SimulatedMeter("SDM630", 3), SimulatedMeter("SDM630", 2)
    server = modbus_server_factory(grid, connector)
    await server.start_tcp()
    site = Site(server.tcp_endpoint(timeout_s=0.3, retries=0), grid, connector, SitePolicy(25))
    try:
        connector.current_a = (10.0, 10.0, 10.0)
        grid.current_a = (12.0, 21.0, 10.0)  # house: 2, 11 and 0 A
        await site.connector_meter.poll()
        assert (await site.poller.cycle()).amps == 14.0
    finally:
        await site.close()


async def test_a_dead_grid_meter_falls_back_once_and_recovers(
    modbus_server_factory: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    grid, connector = SimulatedMeter("SDM630", 3), SimulatedMeter("SDM630", 2)
    server = modbus_server_factory(grid, connector)
    await server.start_tcp()
    policy = SitePolicy(fuse_a=32.0, fallback_a=6.0, stale_after_s=60.0)
    site = Site(server.tcp_endpoint(timeout_s=0.2, retries=0), grid, connector, policy)
    try:
        with caplog.at_level(logging.INFO, logger=LOGGER):
            assert await site.house(4.0) == 28.0
            grid.set_responding(False)
            # STALE for the first failed polls: the last reading holds (one RS-485 hiccup
            # must not stop the charging), then UNAVAILABLE after unavailable_after (3).
            assert await site.house(4.0) == 28.0
            assert await site.house(4.0) == 28.0
            assert await site.house(4.0) == 6.0
            for _ in range(3):
                assert await site.house(4.0) == 6.0
            assert site.poller.status()["fallback"] is True
            assert fallback_lines(caplog) == [
                "site limit: the grid meter does not answer: offering the fallback, 6 A per "
                "phase in total, until it answers"
            ]
            grid.set_responding(True)
            assert await site.house(4.0) == 28.0  # the first good reading after none
        answers = [r.getMessage() for r in caplog.records if "answers again" in r.getMessage()]
        assert answers == [
            "site limit: the grid meter answers again: fuse 32 A, allowance 28 A per phase"
        ]
        assert len(fallback_lines(caplog)) == 1
        assert site.given == [28.0, 6.0, 28.0]
    finally:
        await site.close()


async def test_a_stopped_server_and_stale_readings_fall_back_after_stale_after_s(
    modbus_server_factory: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """With a meter that is never declared unavailable, the age of the last good reading
    (on the controller's clock) decides: older than stale_after_s, the fallback."""
    grid, connector = SimulatedMeter("SDM630", 3), SimulatedMeter("SDM630", 2)
    server = modbus_server_factory(grid, connector)
    await server.start_tcp()
    policy = SitePolicy(fuse_a=32.0, fallback_a=0.0, stale_after_s=0.5)
    endpoint = server.tcp_endpoint(timeout_s=0.2, retries=0)
    site = Site(endpoint, grid, connector, policy, unavailable_after=100)
    try:
        with caplog.at_level(logging.INFO, logger=LOGGER):
            assert await site.house(8.0) == 24.0
            await server.stop()  # the whole bus gone: the TCP gateway is switched off
            results = []
            for _ in range(400):  # a meter cycle after another until 0.5 s have passed
                results.append((await site.poller.cycle()).amps)
                if results[-1] == 0.0:
                    break
                await asyncio.sleep(0.02)
            assert results[-1] == 0.0 and set(results[:-1]) <= {24.0}
            assert (await site.poller.cycle()).amps == 0.0
        assert fallback_lines(caplog) == [
            "site limit: the grid meter gave no usable reading for more than 0.5 s: offering the "
            "fallback, 0 A per phase in total, until it answers"
        ]
        assert site.given == [24.0, 0.0]
    finally:
        await site.close()


@pytest.mark.parametrize("model", sorted(METER_MODELS))
async def test_any_meter_model_is_a_grid_meter(
    modbus_server_factory: MakeServer, model: str
) -> None:
    grid, connector = SimulatedMeter(model, 3), SimulatedMeter("SDM630", 2)
    server = modbus_server_factory(grid, connector)
    await server.start_tcp()
    site = Site(server.tcp_endpoint(timeout_s=0.3, retries=0), grid, connector, SitePolicy(25))
    try:
        # A single-phase model measures L1 only; the others, every phase.
        assert await site.house(9.5, charger_a=6.0) == pytest.approx(15.5, abs=0.01)
    finally:
        await site.close()


async def test_over_rtu_the_grid_meter_shares_the_connector_meters_bus(
    modbus_server_factory: MakeServer, modbus_pty_pair: tuple[str, str]
) -> None:
    server_end, client_end = modbus_pty_pair
    grid, connector = SimulatedMeter("SDM630", 3), SimulatedMeter("SDM630", 2)
    server = modbus_server_factory(grid, connector)
    await server.start_rtu(server_end, baudrate=9600)
    endpoint = ModbusEndpoint(
        port=client_end, baudrate=9600, timeout_s=0.3, retries=0, quiet_gap_s=0.01
    )
    site = Site(endpoint, grid, connector, SitePolicy(fuse_a=25.0))
    try:
        assert [b.key for b in open_buses()] == [f"rtu:{client_end}"]  # one owner, one lock
        assert await site.house(5.0, charger_a=16.0) == 20.0
        assert await site.house(15.0, charger_a=16.0) == 10.0
        assert await site.house(12.0, charger_a=10.0) == 13.0
        grid.set_responding(False)
        for _ in range(3):
            await site.house(12.0, charger_a=10.0)
        assert site.poller.applied == 6.0
    finally:
        await site.close()


async def test_without_a_grid_meter_the_fuse_is_the_allowance(
    caplog: pytest.LogCaptureFixture,
) -> None:
    given: list[float | None] = []
    poller = GridMeterPoller(SitePolicy(fuse_a=25.0), None, [], given.append, poll_s=1.0)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        await poller.first_cycle()
        await poller.run()  # nothing to poll: returns at once
    assert given == [25.0]
    assert poller.status() == {
        "max_current_a": 25.0,
        "allowance_a": 25.0,
        "fallback": False,
        "grid_current_a": None,
    }
    assert [r.getMessage() for r in caplog.records] == [
        "site limit: the fuse, 25 A per phase, is the charger's limit"
    ]


def answer_as_cancelled(bus: ModbusBus) -> Callable[[], None]:
    """Make the bus's next answer arrive in the same instant as a cancellation of the task that
    asked: exactly the moment at which Python 3.11's ``asyncio.wait_for`` (with which the Modbus
    library awaits its answers) returns the answer and drops the cancellation (gh-86296).  The
    real client reads the real server; the answer then goes through the real ``wait_for``.
    Returns the switch that arms it for one request."""
    client: Any = bus._client
    assert client is not None, "poll once first: the bus connects on its first request"
    armed = [False]

    def racing(read: Callable[..., Any]) -> Callable[..., Any]:
        async def request(*args: Any, **kwargs: Any) -> Any:
            response = await read(*args, **kwargs)
            if not armed[0]:
                return response
            armed[0] = False
            loop, task = asyncio.get_running_loop(), asyncio.current_task()
            assert task is not None
            answer: asyncio.Future[Any] = loop.create_future()

            def together() -> None:
                answer.set_result(response)
                task.cancel()

            loop.call_soon(together)
            return await asyncio.wait_for(answer, 5)

        return request

    client.read_input_registers = racing(client.read_input_registers)
    client.read_holding_registers = racing(client.read_holding_registers)
    return lambda: armed.__setitem__(0, True)


async def test_a_cancellation_that_arrives_with_an_answer_still_stops_the_poller(
    modbus_server_factory: MakeServer,
) -> None:
    grid, connector = SimulatedMeter("SDM630", 3), SimulatedMeter("SDM630", 2)
    server = modbus_server_factory(grid, connector)
    await server.start_tcp()
    endpoint = server.tcp_endpoint(timeout_s=0.3, retries=0)
    site = Site(endpoint, grid, connector, SitePolicy(32))
    try:
        await site.poller.first_cycle()
        arm = answer_as_cancelled(bus_for(endpoint))
        arm()
        task = asyncio.create_task(site.poller.run())
        with pytest.raises(asyncio.CancelledError):
            # Without the bus's check the task polls on for ever (the daemon's stop, which
            # cancels it and waits, would hang): this wait would end in TimeoutError.
            await asyncio.wait_for(task, 10)
        assert task.cancelled()
    finally:
        await site.close()


async def test_a_cancelled_tasks_last_request_still_gets_its_answer(
    modbus_server_factory: MakeServer,
) -> None:
    """The check is for a cancellation that came during the request: a task already cancelled
    that does one more request in its clean-up (a last write, a last read) gets the answer."""
    grid, connector = SimulatedMeter("SDM630", 3), SimulatedMeter("SDM630", 2)
    server = modbus_server_factory(grid, connector)
    await server.start_tcp()
    endpoint = server.tcp_endpoint(timeout_s=0.3, retries=0)
    site = Site(endpoint, grid, connector, SitePolicy(32))
    grid.current_a = 7.0
    seen: list[float | None] = []
    started = asyncio.Event()

    async def clean_up_after_cancel() -> None:
        try:
            started.set()
            await asyncio.sleep(3600)
        finally:
            reading = await site.grid_meter.poll()
            seen.append(reading.current_a[0])

    try:
        task = asyncio.create_task(clean_up_after_cancel())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert seen == [pytest.approx(7.0)]
    finally:
        await site.close()
