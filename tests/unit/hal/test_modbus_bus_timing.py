"""ModbusBus's quiet gap on a simulated clock: a fake client answers after a set turnaround, so
the gap between the end of one request and the start of the next is checked exactly, without a
server or real time (the bus against real pymodbus servers: test_modbus_meter.py)."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass

import pytest

from hal.config import ModbusEndpoint
from hal.modbus.bus import ModbusBus
from hal.sim.clock import SimulatedClock

GAP = 0.1
TURNAROUND = 0.03  # from request to answer on the (simulated) wire


@dataclass
class Answer:
    registers: list[int]

    @staticmethod
    def isError() -> bool:  # noqa: N802 - pymodbus's name
        return False


class FakeClient:
    """What ModbusBus uses of a pymodbus client; records when each request started."""

    def __init__(self, clock: SimulatedClock) -> None:
        self.clock = clock
        self.connected = False
        self.started: list[float] = []

    async def connect(self) -> bool:
        self.connected = True
        return True

    def close(self) -> None:
        self.connected = False

    async def read_holding_registers(self, address: int, count: int, device_id: int) -> Answer:
        self.started.append(self.clock.monotonic())
        await self.clock.sleep(TURNAROUND)
        return Answer([device_id] * count)

    read_input_registers = read_holding_registers


class FakeWireBus(ModbusBus):
    """The bus with its pymodbus client replaced by ``FakeClient`` (the only override)."""

    def __init__(self, clock: SimulatedClock) -> None:
        super().__init__(
            ModbusEndpoint(host="192.0.2.1", tcp_port=502, quiet_gap_s=GAP), clock=clock
        )
        self.client = FakeClient(clock)

    def _make_client(self) -> FakeClient:  # type: ignore[override]
        return self.client


@pytest.mark.asyncio
async def test_requests_of_several_devices_keep_the_quiet_gap_exactly() -> None:
    clock = SimulatedClock()
    bus = FakeWireBus(clock)

    async def device(unit: int) -> None:
        for _ in range(3):
            assert await bus.read_holding_registers(unit, 0, 2) == [unit, unit]

    await clock.run(asyncio.gather(device(1), device(2), device(3)))
    started = bus.client.started
    assert len(started) == 9
    # Each request starts one quiet gap after the previous answer: turnaround + gap apart.
    for earlier, later in itertools.pairwise(started):
        assert later - earlier == pytest.approx(TURNAROUND + GAP)


@pytest.mark.asyncio
async def test_no_wait_once_the_gap_has_passed() -> None:
    clock = SimulatedClock()
    bus = FakeWireBus(clock)
    await clock.run(bus.read_input_registers(1, 0, 1))
    await clock.run_for(5.0)  # the bus idles far longer than the gap
    await clock.run(bus.read_input_registers(1, 0, 1))
    assert bus.client.started == pytest.approx([0.0, 5.0 + TURNAROUND])
