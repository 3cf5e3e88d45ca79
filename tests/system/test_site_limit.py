"""Dynamic load management on the simulated bench (the shipped bench file: a 32 A main fuse and
a grid meter on the connector's Modbus bus): ``house-load`` moves the house's current on the
grid meter, the controller reads it through the real meter driver and the pymodbus server, and
the offered current (EVSE board register, bench status ``offered_a`` / ``limit_a``, the meter
values' Current.Import) follows fuse - house load, with hysteresis, and the safe fallback when
the grid meter dies, logged once."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from centralsystem import CentralSystem
from firmware import app, app_devices
from firmware.settings import Settings
from tests.conftest import REPO, Rig, start_fast
from tests.system.helpers import Controller, _charging
from tests.system.test_two_connectors import two_connector_settings

pytestmark = pytest.mark.asyncio

CURRENT_REGISTER = 1000  # EVSE-WB: configured current (0 = no PWM)
GRID_LOG = "firmware.grid_meter"


async def house_load(rig: Rig, *amps: float) -> dict[str, Any]:
    """``chargepoint bench house-load``: answered after the controller acted on it."""
    answer = await app_devices.bench_command(
        rig.state_dir, {"cmd": "house-load", "amps": list(amps)}
    )
    assert answer["ok"], answer
    return answer


def offered(rig: Rig) -> float:
    return float(rig.bench.status()["1"]["outputs"]["pwm_offered_a"])


def pwm_history(rig: Rig, mark: int) -> list[float]:
    board = rig.bench.connectors[1].board
    return [v[0] / board.counts_per_amp for a, v in board.writes[mark:] if a == CURRENT_REGISTER]


def current_import(record: Any) -> list[float]:
    return [
        float(v["value"])
        for mv in record.payload["meterValue"]
        for v in mv["sampledValue"]
        if v.get("measurand") == "Current.Import"
    ]


@pytest.mark.keys(
    MeterValueSampleInterval=1, MeterValuesSampledData="Current.Import,Current.Offered"
)
async def test_the_house_load_pushes_the_offer_down_and_up_without_toggling_the_ev(
    rig: Rig,
) -> None:
    await rig.start_session()
    await rig.wait_bench(lambda s: s["1"]["outputs"]["pwm_offered_a"] == 16)
    board = rig.bench.connectors[1].board
    mark = len(board.writes)

    down = await house_load(rig, 20)  # 32 - 20 = 12 A left for the charger
    assert down["connectors"]["1"]["offered_a"] == 12 and down["connectors"]["1"]["limit_a"] == 12
    assert down["site"] == {
        "max_current_a": 32.0,
        "allowance_a": 12.0,
        "fallback": False,
        "grid_current_a": down["site"]["grid_current_a"],
    }
    assert down["bench"]["grid"]["house_load_a"] == [20.0, 20.0, 20.0]
    assert down["bench"]["1"]["outputs"]["pwm_offered_a"] == 12
    # The grid meter sees the house and the EV's lower draw: 20 + 12 A per phase.
    await rig.wait_bench(lambda s: s["grid"]["current_a"] == [32.0, 32.0, 32.0])

    # Meter values while limited show the lower current.
    since = rig.cs.mark()
    values = await rig.wait_for(
        lambda r: r.direction == "rx" and r.action == "MeterValues" and current_import(r) != [],
        since=since,
    )
    assert current_import(values) == [12.0, 12.0, 12.0]

    # Half an ampere more room is under the hysteresis (1 A): the EV keeps its 12 A.
    ripple = await house_load(rig, 19.5)
    assert ripple["connectors"]["1"]["offered_a"] == 12
    assert ripple["site"]["allowance_a"] == 12
    up = await house_load(rig, 18)  # 14 A: 2 A more, taken
    assert up["connectors"]["1"]["offered_a"] == 14
    free = await house_load(rig, 0)  # 32 A: the connector's own 16 A caps it
    assert free["connectors"]["1"]["offered_a"] == 16 and free["site"]["allowance_a"] == 32
    assert free["connectors"]["1"]["limit_a"] is None  # a share at its rating limits nothing

    assert pwm_history(rig, mark) == [12, 14, 16]  # one write per change, no toggling
    assert rig.bench.status()["1"]["outputs"]["contactor"] is True
    statuses = [r.payload["status"] for r in rig.calls("StatusNotification")]
    assert "SuspendedEVSE" not in statuses
    assert len(rig.calls("StartTransaction")) == 1 and rig.calls("StopTransaction") == []


async def test_below_6_a_the_charger_stops_offering_and_restarts_at_6_a_plus_hysteresis(
    rig: Rig,
) -> None:
    await rig.start_session()
    since = rig.cs.mark()
    stopped = await house_load(rig, 28)  # 4 A left: less than IEC 61851's 6 A
    assert stopped["connectors"]["1"]["offered_a"] == 0
    await rig.wait_status("SuspendedEVSE", since=since)
    await rig.wait_bench(lambda s: s["1"]["outputs"]["contactor"] is False)
    still = await house_load(rig, 25.5)  # 6.5 A: not yet 6 A + 1 A
    assert still["connectors"]["1"]["offered_a"] == 0
    since = rig.cs.mark()
    again = await house_load(rig, 25)  # 7 A
    assert again["connectors"]["1"]["offered_a"] == 7
    await rig.wait_status("Charging", since=since)
    assert rig.calls("StopTransaction") == []  # the transaction went on throughout


async def test_a_dead_grid_meter_falls_back_to_6_a_logged_once(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    await rig.start_session()
    await house_load(rig, 5)  # 27 A left: the connector's 16 A
    with caplog.at_level(logging.INFO, logger=GRID_LOG):
        await rig.command("fault", name="grid-meter", state="on")
        # Unavailable after 3 failed polls: the fallback, 6 A for the whole charger.
        await rig.wait_bench(lambda s: s["1"]["outputs"]["pwm_offered_a"] == 6, timeout=10)
        status = await app_devices.bench_command(rig.state_dir, {"cmd": "status"})
        assert status["site"]["fallback"] is True and status["site"]["allowance_a"] == 6
        assert status["connectors"]["1"]["status"] == "Charging"
        mark = len(rig.bench.connectors[1].board.writes)
        await rig.command("fault", name="grid-meter", state="off")
        await rig.wait_bench(lambda s: s["1"]["outputs"]["pwm_offered_a"] == 16, timeout=10)
    lines = [r.getMessage() for r in caplog.records if r.name == GRID_LOG]
    assert lines == [
        "site limit: the grid meter does not answer: offering the fallback, 6 A per phase in "
        "total, until it answers",
        "site limit: the grid meter answers again: fuse 32 A, allowance 27 A per phase",
    ]
    assert pwm_history(rig, mark) == [16]
    assert rig.bench.status()["1"]["outputs"]["contactor"] is True


async def test_two_connectors_share_what_the_house_leaves(
    csms: CentralSystem, tmp_path: Path
) -> None:
    settings = two_connector_settings(csms.url, tmp_path)
    assert isinstance(settings, Settings) and settings.hardware.grid_meter is not None
    running = await start_fast(settings)
    rig = Rig(csms, running, tmp_path)
    try:
        await rig.wait_status("Available", connector=2)
        for connector, tag in ((1, "FIRST"), (2, "SECOND")):
            since = csms.mark()
            await rig.command("plug", connector=connector)
            await rig.wait_status("Preparing", connector=connector, since=since)
            await rig.command("swipe", tag=tag)
            await rig.wait_call("StartTransaction", since=since)
            await rig.command("ev-charge", connector=connector)
            await rig.wait_status("Charging", connector=connector, since=since)

        def offers(answer: dict[str, Any]) -> list[float]:
            return [answer["connectors"][n]["offered_a"] for n in ("1", "2")]

        assert offers(await house_load(rig, 0)) == [16, 16]  # 32 A: each its own 16 A
        assert offers(await house_load(rig, 12)) == [10, 10]  # 20 A shared equally
        since = csms.mark()
        # 10 A: not 6 A for each; the first to start keeps charging, the second pauses.
        assert offers(await house_load(rig, 22)) == [10, 0]
        await rig.wait_status("SuspendedEVSE", connector=2, since=since)
        since = csms.mark()
        assert offers(await house_load(rig, 0)) == [16, 16]
        await rig.wait_status("Charging", connector=2, since=since)
        assert rig.calls("StopTransaction") == []
    finally:
        await app.shutdown(running)


# ------------------------------------------------------------------ the command line, end to end


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "firmware", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


async def wait_log(log: Path, text: str, timeout: float = 20) -> None:
    for _ in range(int(timeout / 0.1)):
        if text in log.read_text():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{text!r} not in the daemon's log:\n{log.read_text()[-3000:]}")


async def test_chargepoint_bench_house_load_on_a_running_daemon(
    csms: CentralSystem, tmp_path: Path
) -> None:
    """`chargepoint run` on the shipped bench file as its own process, driven with
    `chargepoint bench house-load` and `fault grid-meter` as a bench engineer types them."""
    state, log = tmp_path / "state", tmp_path / "daemon.log"
    daemon = Controller(csms.url, state, log)
    daemon.start()
    try:
        await _charging(csms, daemon, "SITE-CARD")

        async def bench(*args: str) -> subprocess.CompletedProcess[str]:
            # In a thread: the central system answering the daemon runs on this loop.
            return await asyncio.to_thread(cli, "bench", "--state-dir", str(state), *args)

        done = await bench("house-load", "20")
        assert done.returncode == 0, done.stdout + done.stderr
        answer = json.loads(done.stdout)
        assert answer["connectors"]["1"]["offered_a"] == 12  # answered after it took effect
        assert answer["site"]["allowance_a"] == 12 and answer["site"]["max_current_a"] == 32
        assert answer["bench"]["grid"]["house_load_a"] == [20.0, 20.0, 20.0]
        assert answer["bench"]["1"]["outputs"]["pwm_offered_a"] == 12

        status = json.loads((await bench("status")).stdout)
        assert set(status["bench"]["grid"]) == {"house_load_a", "current_a", "responding"}
        assert status["site"]["fallback"] is False

        too_much = await bench("house-load", "500")
        assert too_much.returncode == 1
        assert json.loads(too_much.stdout) == {
            "ok": False,
            "error": "house load must be a number from 0 to 100 A, not 500.0",
        }
        not_a_number = await bench("house-load", "lots")
        assert not_a_number.returncode == 2
        assert "argument AMPS: not a number of amperes: 'lots'" in not_a_number.stderr

        dead = await bench("fault", "grid-meter", "on")
        assert dead.returncode == 0, dead.stdout + dead.stderr
        await wait_log(log, "site limit: the grid meter does not answer: offering the fallback")
        back = await bench("fault", "grid-meter", "off")
        assert back.returncode == 0
        await wait_log(log, "site limit: the grid meter answers again")
        text = log.read_text()
        assert text.count("site limit: the grid meter does not answer") == 1
        assert daemon.terminate() == 0
    finally:
        daemon.stop_quietly()
