"""The bench's grid connection: the simulated grid meter, on the connector's Modbus bus, shows
the house load plus what the EV draws, per phase, read through the real meter driver."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from firmware.settings import BenchSettings, example_path
from firmware.settings_load import load
from hal.modbus.bus import open_buses
from hal.sim.bench import SimulatedBench
from hal.sim.control import BenchControlServer
from hal.sim.grid import house_load_phases
from hal.types import MeterHealth

pytestmark = pytest.mark.asyncio


async def test_the_grid_meter_reads_house_load_plus_the_ev(tmp_path: Path) -> None:
    settings = load(example_path("bench"))
    bench = SimulatedBench(settings.hardware, BenchSettings(), tmp_path)
    devices = await bench.start()
    try:
        grid = devices.grid_meter
        assert grid is not None
        # On connector 1's server, as the file puts it on the connector's bus: one bus owner.
        assert len(open_buses()) == 1
        assert (await grid.poll()).current_a == (0.0, 0.0, 0.0)
        bench.set_house_load([7.5])
        await bench.wait_steps(1)
        reading = await grid.poll()
        assert reading.health is MeterHealth.OK and reading.current_a == (7.5, 7.5, 7.5)
        bench.set_house_load([10, 4, 0.5])
        connector = devices.connectors[0]
        bench.plug(1)
        bench.ev_charge(1)
        await connector.pilot.offer_current(10)
        connector.contactor.request_closed()
        await bench.wait_steps(2)
        assert (await grid.poll()).current_a == pytest.approx((20.0, 14.0, 10.5))
        assert (await connector.meter.poll()).current_a == pytest.approx((10.0, 10.0, 10.0))
        status = bench.status()["grid"]
        assert status == {
            "house_load_a": [10.0, 4.0, 0.5],
            "current_a": [20.0, 14.0, 10.5],
            "responding": True,
        }
        await bench.fault("grid-meter", True)
        assert (await grid.poll()).health is MeterHealth.STALE
        assert bench.status()["grid"]["responding"] is False
        await bench.fault("grid-meter", False)
        assert (await grid.poll()).health is MeterHealth.OK
    finally:
        await devices.close()
        await bench.stop()


async def test_a_grid_meter_on_a_bus_of_its_own_gets_a_server_of_its_own(tmp_path: Path) -> None:
    settings = load(example_path("bench"))
    assert settings.hardware.grid_meter is not None
    own = replace(
        settings.hardware.grid_meter,
        model="B23",
        endpoint=replace(settings.hardware.grid_meter.endpoint, port="/dev/ttyUSB1"),
    )
    bench = SimulatedBench(replace(settings.hardware, grid_meter=own), BenchSettings(), tmp_path)
    devices = await bench.start()
    try:
        assert devices.grid_meter is not None
        bench.set_house_load([12])
        await bench.wait_steps(1)
        assert (await devices.grid_meter.poll()).current_a == pytest.approx((12.0,) * 3)
        assert len(open_buses()) == 2
    finally:
        await devices.close()
        await bench.stop()


async def test_house_load_is_range_checked_in_one_line(tmp_path: Path) -> None:
    settings = load(example_path("bench"))
    bench = SimulatedBench(settings.hardware, BenchSettings(), tmp_path)
    devices = await bench.start()
    control = BenchControlServer(tmp_path / "bench.sock", bench)
    try:

        async def ask(request: dict[str, Any]) -> dict[str, Any]:
            return await control.execute(json.dumps({**request, "settle": False}).encode())

        ok = await ask({"cmd": "house-load", "amps": [20]})
        assert ok["ok"] is True
        assert ok["bench"]["grid"]["house_load_a"] == [20.0, 20.0, 20.0]
        for amps, error in (
            ([101], "house load must be a number from 0 to 100 A, not 101"),
            ([-1], "house load must be a number from 0 to 100 A, not -1"),
            (["9"], "house load must be a number from 0 to 100 A, not '9'"),
            ([1, 2], "house-load takes 1 value (every phase) or 3 (L1 L2 L3), not 2"),
            (20, "house-load needs amps: a list of 1 or 3 numbers"),
        ):
            assert await ask({"cmd": "house-load", "amps": amps}) == {"ok": False, "error": error}
        assert bench.status()["grid"]["house_load_a"] == [20.0, 20.0, 20.0]  # unchanged
    finally:
        await devices.close()
        await bench.stop()
    without = SimulatedBench(
        replace(settings.hardware, grid_meter=None), BenchSettings(), tmp_path / "x"
    )
    with pytest.raises(ValueError, match=r"^this bench has no grid meter: add \[site.grid_meter\]"):
        without.set_house_load([1])
    assert house_load_phases([3]) == (3.0, 3.0, 3.0)
