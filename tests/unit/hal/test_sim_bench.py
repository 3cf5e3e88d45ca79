"""The simulated bench's own behaviour: a failing physics step is logged on the transition, not
20 times a second."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from firmware.settings import BenchSettings, example_path
from firmware.settings_load import load
from hal.sim.bench import SimulatedBench

pytestmark = pytest.mark.asyncio


async def test_a_failing_physics_step_is_logged_once_and_on_recovery(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load(example_path("bench"))
    bench = SimulatedBench(settings.hardware, BenchSettings(), tmp_path)
    devices = await bench.start()
    meter = bench.connectors[1].meter
    serve = meter.add_energy_wh

    def broken(wh: float) -> None:
        raise ValueError("cannot encode -1 Wh")

    try:
        with caplog.at_level(logging.INFO, logger="hal.sim.bench"):
            meter.add_energy_wh = broken  # type: ignore[method-assign]
            await bench.wait_steps(20)
            meter.add_energy_wh = serve  # type: ignore[method-assign]
            await bench.wait_steps(5)
    finally:
        await devices.close()
        await bench.stop()
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "hal.sim.bench" and "physics" in r.getMessage()
    ]
    assert lines == [
        "bench physics step failed: ValueError: cannot encode -1 Wh",
        "bench physics steps work again",
    ]
