"""A current limit on the simulated bench: the EVSE-WB board's current register (1000, the PWM
duty) follows ``ConnectorController.set_limit``; below 6 A it is 0 (no PWM, SuspendedEVSE) and the
contactor opens once the bench's EV goes back to B; ``chargepoint bench status`` shows the offer
and the limit."""

from __future__ import annotations

import pytest

from firmware import app_devices
from tests.conftest import Rig

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

CURRENT_REGISTER = 1000  # EVSE-WB: configured current (0 = no PWM)


async def test_the_board_register_follows_the_limit_and_stops_below_6_a(rig: Rig) -> None:
    await rig.start_session()
    board = rig.bench.connectors[1].board
    connector = rig.running.charger.connectors[1]
    mark = len(board.writes)
    # The status each limit changes to (None: unchanged, no StatusNotification).
    for amps, status in ((10, None), (4, "SuspendedEVSE"), (0, None), (12, "Charging")):
        since = rig.cs.mark()
        connector.set_limit(amps)
        offered = amps if amps >= 6 else 0
        await rig.wait_bench(lambda s, a=offered: s["1"]["outputs"]["pwm_offered_a"] == a)
        if status is not None:
            await rig.wait_status(status, since=since)
        if status == "SuspendedEVSE":
            # The EV saw the PWM stop and went back to B: the contactor opened.
            await rig.wait_bench(lambda s: s["1"]["outputs"]["contactor"] is False)
        answer = await app_devices.bench_command(rig.state_dir, {"cmd": "status"})
        assert answer["connectors"]["1"]["status"] == ("Charging" if offered else "SuspendedEVSE")
        assert answer["connectors"]["1"]["limit_a"] == amps
        assert answer["connectors"]["1"]["offered_a"] == offered
    assert rig.bench.status()["1"]["outputs"]["contactor"] is True
    per_amp = board.counts_per_amp
    currents = [v[0] / per_amp for a, v in board.writes[mark:] if a == CURRENT_REGISTER]
    assert currents == [10, 0, 12]
    assert len(rig.calls("StartTransaction")) == 1 and rig.calls("StopTransaction") == []
