"""Smart Charging on the simulated bench and in real processes: a profile with three periods
drives the simulated EVSE board's current register (the PWM duty) at its boundaries; the
profile store survives a writer SIGKILLed at any instant whole; a real daemon, given its
profiles over OCPP and killed in a transaction, comes back with its TxDefaultProfile in force
and the TxProfile of the cut transaction gone."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from ocpp.v16 import call

from centralsystem import CentralSystem
from firmware import app_devices, clock
from firmware.profile_store import ProfileStore
from tests.conftest import REPO, Rig
from tests.system.helpers import Controller, _charging
from tests.unit.test_smart_charging import profile

pytestmark = [pytest.mark.slow]

TXD, TXP = "TxDefaultProfile", "TxProfile"
CURRENT_REGISTER = 1000  # EVSE-WB: configured current (0 = no PWM)


@pytest.mark.asyncio
async def test_the_board_register_follows_a_profile_with_three_periods(rig: Rig) -> None:
    await rig.start_session()
    board = rig.bench.connectors[1].board
    mark, since = len(board.writes), rig.cs.mark()
    smart = rig.running.smart
    assert smart is not None
    # From 2 s from now: 10 A for 3 s, then 4 A (below 6 A: no PWM) for 3 s, then 12 A.
    start = clock.utcnow() + timedelta(seconds=2)
    assert smart.set_charging_profile(profile((0, 10), (3, 4), (6, 12), start=start)) is None
    await rig.wait_status("SuspendedEVSE", since=since)
    await rig.wait_status("Charging", since=since + 1, timeout=15)
    status = await rig.wait_bench(
        lambda s: s["1"]["outputs"]["pwm_offered_a"] == 12 and s["1"]["outputs"]["contactor"]
    )
    assert status["1"]["ev"]["pilot"] == "C"
    per_amp = board.counts_per_amp
    currents = [v[0] / per_amp for a, v in board.writes[mark:] if a == CURRENT_REGISTER]
    assert currents == [10, 0, 12]
    answer = await app_devices.bench_command(rig.state_dir, {"cmd": "status"})
    assert answer["connectors"]["1"]["limit_a"] == 12
    assert answer["connectors"]["1"]["offered_a"] == 12
    assert len(rig.calls("StartTransaction")) == 1 and rig.calls("StopTransaction") == []


@pytest.mark.asyncio
async def test_the_offer_reported_is_the_one_the_board_makes(rig: Rig) -> None:
    """The simulated EVSE-WB counts whole amperes: a 7.6 A limit is a 7 A PWM (rounded down,
    never up).  The charger reported 7.6 A offered (bench status, Current.Offered) while the
    EV was offered 7 A and drew 7 A."""
    await rig.start_session()
    smart = rig.running.smart
    assert smart is not None
    start = clock.utcnow() - timedelta(seconds=1)
    assert smart.set_charging_profile(profile((0, 7.6), start=start)) is None
    status = await rig.wait_bench(lambda s: s["1"]["outputs"]["pwm_offered_a"] == 7)
    answer = await app_devices.bench_command(rig.state_dir, {"cmd": "status"})
    assert answer["connectors"]["1"]["limit_a"] == 7.6
    assert answer["connectors"]["1"]["offered_a"] == 7.0 == status["1"]["outputs"]["pwm_offered_a"]
    assert rig.running.charger.connectors[1].offered_current_a == 7.0


WRITER = """
import sys
from pathlib import Path
from firmware.profile_store import ProfileStore
from tests.unit.test_smart_charging import profile
store = ProfileStore.open(Path(sys.argv[1]))
i = max([p.charging_profile_id for p in store.profiles()], default=0)
while True:
    i += 1
    # Profile i replaces i - 1 (same purpose, stack level and connector): one transaction.
    store.install(profile((0, 6 + i % 20), (60, 6), id=i), [i - 1])
    if i % 50 == 0:
        print(i, flush=True)
"""


def test_a_writer_killed_at_any_instant_leaves_one_whole_profile(tmp_path: Path) -> None:
    """A real process replaces one profile by the next as fast as it can; SIGKILLed at any
    instant, the file holds exactly one whole profile (never none, never two)."""
    for attempt in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert proc.stdout is not None
        assert proc.stdout.readline(), "the writer started"
        for _ in range(attempt):  # a different instant of the writing each time
            proc.stdout.readline()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        left = ProfileStore.open(tmp_path).profiles()
        assert len(left) == 1, left
        assert left[0].charging_schedule.charging_schedule_period[1].start_period == 60


def _wire(pid: int, purpose: str, limit: float, tx: int | None = None) -> dict[str, object]:
    """A one-period Relative profile in the wire form (camelCase, as a central system sends)."""
    p: dict[str, object] = {
        "chargingProfileId": pid,
        "stackLevel": 0,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Relative",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
        },
    }
    if tx is not None:
        p["transactionId"] = tx
    return p


async def _offered(state: Path, amps: float) -> dict[str, Any]:
    """The bench status once connector 1 offers ``amps`` (or the last one after ~10 s)."""
    for _ in range(200):
        status = await app_devices.bench_command(state, {"cmd": "status"})
        if status["connectors"]["1"]["offered_a"] == amps:
            break
        await asyncio.sleep(0.05)
    return status


@pytest.mark.asyncio
async def test_a_killed_daemon_restarts_with_its_profiles_and_without_the_cut_tx_profile(
    csms: CentralSystem, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    ctl = Controller(csms.url, state, tmp_path / "cp.log")
    ctl.start()
    try:
        await _charging(csms, ctl, "SMART-KILL")
        cp = "DURABLE-1"
        # Installed over OCPP: a TxDefaultProfile of 10 A for every connector, and a TxProfile
        # of 7 A for the running transaction (the central system's transactionId).
        r = await csms.call(
            cp, call.SetChargingProfile(connector_id=0, cs_charging_profiles=_wire(1, TXD, 10))
        )
        assert r.status == "Accepted"
        (tx,) = csms.state(cp).transactions.keys()
        r = await csms.call(
            cp, call.SetChargingProfile(connector_id=1, cs_charging_profiles=_wire(2, TXP, 7, tx))
        )
        assert r.status == "Accepted"
        status = await _offered(state, 7)
        assert status["connectors"]["1"]["offered_a"] == 7
        assert status["connectors"]["1"]["limit_a"] == 7
        ctl.kill()  # a power cut in the middle of the transaction
        assert sorted(p.charging_profile_id for p in ProfileStore.open(state).profiles()) == [1, 2]
        mark = csms.mark()
        ctl.start()
        await csms.wait_for(
            lambda r: r.action == "StopTransaction" and r.message_type == "CALLRESULT",
            timeout=20,
            since=mark,
        )
        await ctl.bench("unplug")
        again = csms.mark()
        await ctl.bench("plug")
        await ctl.bench("swipe", tag="SMART-AGAIN")
        await ctl.bench("ev-charge")
        await csms.wait_for(
            lambda r: r.action == "StatusNotification" and r.payload.get("status") == "Charging",
            timeout=20,
            since=again,
        )
        status = await _offered(state, 10)
        assert status["connectors"]["1"]["limit_a"] == 10, "the default survived, not the 7 A"
        assert status["connectors"]["1"]["offered_a"] == 10
        code = await asyncio.to_thread(ctl.terminate)
        assert code == 0
        left = ProfileStore.open(state).profiles()
        assert [p.charging_profile_id for p in left] == [1]
    finally:
        ctl.stop_quietly()
