"""OCTT 1.6 charge point test cases, chapter "Core remote actions".

- TC_010_CS Remote Start Charging Session - Cable Plugged in First, and TC_012_CS Remote Stop
  Charging Session (one test).
- TC_011_1_CS Remote Start Charging Session - Remote Start First.
- TC_011_2_CS Remote Start Charging Session - Time Out.
- A remote start without Authorize when AuthorizeRemoteTxRequests is false.
"""

from __future__ import annotations

import pytest
from ocpp.v16 import call

from tests.conftest import Rig

pytestmark = pytest.mark.asyncio


async def test_tc_010_remote_start_and_tc_012_remote_stop(rig: Rig) -> None:
    await rig.command("plug")
    result = await rig.cs.call(
        rig.cp_id, call.RemoteStartTransaction(id_tag="REMOTE-1", connector_id=1)
    )
    assert result.status == "Accepted"
    start = await rig.wait_call("StartTransaction")
    await rig.command("ev-charge")
    await rig.wait_status("Charging")
    tx_id = next(iter(rig.cs.state(rig.cp_id).transactions))
    assert start.payload["idTag"] == "REMOTE-1"
    wrong = await rig.cs.call(rig.cp_id, call.RemoteStopTransaction(transaction_id=tx_id + 99))
    assert wrong.status == "Rejected"
    ok = await rig.cs.call(rig.cp_id, call.RemoteStopTransaction(transaction_id=tx_id))
    assert ok.status == "Accepted"
    stop = await rig.wait_call("StopTransaction")
    assert stop.payload["reason"] == "Remote"


async def test_tc_011_1_remote_start_first_then_plug(rig: Rig) -> None:
    result = await rig.cs.call(rig.cp_id, call.RemoteStartTransaction(id_tag="REMOTE-2"))
    assert result.status == "Accepted"
    # AuthorizeRemoteTxRequests (seed: true): the idTag is authorized like a local one.
    await rig.wait_call("Authorize")
    await rig.wait_status("Preparing")
    mark = rig.cs.mark()
    await rig.command("plug")
    start = await rig.wait_call("StartTransaction", since=mark)
    assert start.payload["idTag"] == "REMOTE-2"


@pytest.mark.keys(ConnectionTimeOut=1)
async def test_tc_011_2_remote_start_times_out_without_a_cable(rig: Rig) -> None:
    await rig.cs.call(rig.cp_id, call.RemoteStartTransaction(id_tag="REMOTE-3", connector_id=1))
    await rig.wait_status("Preparing")
    mark = rig.cs.mark()
    await rig.wait_status("Available", since=mark, timeout=5)
    assert not rig.calls("StartTransaction")


@pytest.mark.keys(AuthorizeRemoteTxRequests=False)
async def test_remote_start_without_authorize_when_the_key_is_false(rig: Rig) -> None:
    await rig.command("plug")
    await rig.cs.call(rig.cp_id, call.RemoteStartTransaction(id_tag="TRUSTED"))
    await rig.wait_call("StartTransaction")
    assert not rig.calls("Authorize")
