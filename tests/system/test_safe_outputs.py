"""Every output goes safe on SIGTERM, on a crashed task and on an exception in a loop callback,
and the daemon's exit status tells systemd whether to restart it.

The controller runs in this process on the simulated bench (``app.start`` then ``app.serve``,
exactly what ``app.run`` does), so the mock pins' recorded history shows what the outputs did.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from centralsystem import CentralSystem
from firmware import app
from tests.conftest import Rig, bench_settings, start_fast

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def rig(csms: CentralSystem, tmp_path: Path) -> AsyncIterator[Rig]:
    """Like conftest's rig, but the test decides how the controller ends."""
    running = await start_fast(bench_settings(csms.url, tmp_path))
    r = Rig(csms, running, tmp_path)
    try:
        await r.wait_status("Available")
        yield r
    finally:
        if not getattr(running, "_shut_down", False):
            await app.shutdown(running)


def pin(rig: Rig, number: int) -> Any:
    return rig.bench.factory.pin(number)


def outputs(rig: Rig) -> dict[str, Any]:
    hw = rig.running.settings.hardware
    assert hw.indicator is not None and hw.buzzer is not None
    c = hw.connectors[0]
    assert c.lock is not None
    return {
        "contactor": pin(rig, c.contactor.pin),
        "lock": pin(rig, c.lock.lock_pin),
        "unlock": pin(rig, c.lock.unlock_pin),
        "red": pin(rig, hw.indicator.red_pin),
        "green": pin(rig, hw.indicator.green_pin),
        "blue": pin(rig, hw.indicator.blue_pin),
        "buzzer": pin(rig, hw.buzzer.pin),
    }


def assert_all_off(pins: dict[str, Any]) -> None:
    assert {name: p.state for name, p in pins.items()} == dict.fromkeys(pins, 0)


async def serve(rig: Rig) -> asyncio.Task[int]:
    task = asyncio.create_task(app.serve(rig.running))
    await asyncio.sleep(0.05)  # serve() has installed its signal and exception handlers
    return task


async def finished(rig: Rig, task: asyncio.Task[int]) -> int:
    code = await asyncio.wait_for(task, 15)
    rig.running._shut_down = True  # type: ignore[attr-defined]
    return code


async def test_sigterm_while_charging_opens_the_contactor_and_exits_0(rig: Rig) -> None:
    await rig.start_session("TAG-TERM")
    pins = outputs(rig)
    assert pins["contactor"].state == 1
    task = await serve(rig)
    os.kill(os.getpid(), signal.SIGTERM)
    assert await finished(rig, task) == 0
    history = [s.state for s in pins["contactor"].states]
    assert 1 in history and history[-1] == 0
    assert_all_off(pins)
    # serve() gave the signal back: a stray SIGTERM now would end pytest, so just check it.
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


async def test_a_crashed_task_drives_outputs_safe_and_exits_1(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """A driver raising an exception nobody expects (not a HardwareError) ends the charger task:
    the daemon must not limp on; it shuts down safe and asks systemd for a restart."""
    contactor = rig.running.devices.connectors[0].contactor
    pins = outputs(rig)

    def broken() -> None:
        raise RuntimeError("driver bug")

    contactor.request_closed = broken
    task = await serve(rig)
    mark = rig.cs.mark()
    await rig.command("plug")
    await rig.wait_status("Preparing", since=mark)
    await rig.command("swipe", tag="TAG-CRASH")
    await rig.wait_call("StartTransaction", since=mark)
    await rig.command("ev-charge")  # the machine asks for the contactor: RuntimeError
    assert await finished(rig, task) == 1
    assert "task charger crashed" in caplog.text
    assert_all_off(pins)


async def test_an_exception_in_a_loop_callback_opens_the_contactor_at_once(rig: Rig) -> None:
    await rig.start_session("TAG-CB")
    pins = outputs(rig)
    task = await serve(rig)
    seen: list[int] = []

    def bad_callback() -> None:
        raise RuntimeError("a safety event handler failed")

    loop = asyncio.get_running_loop()
    loop.call_soon(bad_callback)
    # The next callback runs right after the exception handler: the contactor is already open,
    # before any shutdown step had a chance to run.
    loop.call_soon(lambda: seen.append(pins["contactor"].state))
    assert await finished(rig, task) == 1
    assert seen == [0]
    assert_all_off(pins)


async def test_a_network_error_report_does_not_stop_the_charger(rig: Rig) -> None:
    await rig.start_session("TAG-NET")
    task = await serve(rig)
    loop = asyncio.get_running_loop()
    loop.call_exception_handler(
        {
            "message": "Fatal error on transport",
            "exception": ConnectionResetError(),
            "transport": object(),
            "handle": object(),
        }
    )
    await asyncio.sleep(0.2)
    assert not task.done()
    assert rig.bench.contactor_closed(1)
    rig.running.stop.set()
    assert await finished(rig, task) == 0


async def test_safe_state_silences_the_buzzer(rig: Rig) -> None:
    from hal.types import BeepPattern

    devices = rig.running.devices
    buzzer_pin = outputs(rig)["buzzer"]
    devices.buzzer.play(BeepPattern.FAULT)  # 2 s of beeps
    await asyncio.sleep(0.1)
    assert buzzer_pin.state > 0
    devices.safe_state()
    assert buzzer_pin.state == 0
    await asyncio.sleep(0.5)
    assert buzzer_pin.state == 0  # the pattern is stopped, not just paused
