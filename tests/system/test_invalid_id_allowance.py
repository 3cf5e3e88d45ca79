"""MaxEnergyOnInvalidId end to end on the simulated bench: an allowance used up stays used up
for the rest of the transaction, across an unplug and a replug (the transaction goes on with
StopTransactionOnEVSideDisconnect=false)."""

from __future__ import annotations

from typing import Any

import pytest
from ocpp.v16 import call

from firmware import app_devices
from tests.conftest import Rig

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


async def _settled(rig: Rig, cmd: str) -> dict[str, Any]:
    """A bench command answered once the controller has acted on it."""
    answer = await app_devices.bench_command(rig.state_dir, {"cmd": cmd})
    assert answer["ok"], answer
    return answer


@pytest.mark.keys(
    StopTransactionOnInvalidId=False,
    MaxEnergyOnInvalidId=200,
    StopTransactionOnEVSideDisconnect=False,
    AuthorizeRemoteTxRequests=False,
)
async def test_a_used_up_allowance_survives_unplug_and_replug(rig: Rig) -> None:
    rig.cs.id_tags["INVALIDATED"] = "Invalid"
    await rig.command("plug")
    await rig.cs.call(rig.cp_id, call.RemoteStartTransaction(id_tag="INVALIDATED"))
    await rig.command("ev-charge")
    await rig.wait_status("Charging")
    await rig.wait_status("SuspendedEVSE", timeout=15)
    mark = rig.cs.mark()
    await _settled(rig, "unplug")
    await _settled(rig, "plug")
    answer = await _settled(rig, "ev-charge")
    assert answer["connectors"]["1"]["status"] == "SuspendedEVSE", answer
    assert answer["connectors"]["1"]["offered_a"] == 0, "no PWM offered after the allowance"
    assert not rig.bench.contactor_closed(1)
    assert not [
        r
        for r in rig.calls("StatusNotification")
        if r.seq >= mark and r.payload["status"] == "Charging"
    ]
    assert not rig.calls("StopTransaction"), "the transaction stays open"
