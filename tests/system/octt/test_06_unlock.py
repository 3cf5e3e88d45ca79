"""OCTT 1.6 charge point test cases, chapter "Unlock".

- TC_017_1_CS Unlock connector - no charging session running (Not fixed cable).
- TC_018_1_CS Unlock Connector - With Charging Session (Not fixed cable).
- TC_017_2_CS / TC_018_2_CS the same with a fixed cable: the bench with a tethered cable
  (``cable = "tethered"``, no lock); UnlockConnector is NotSupported and a transaction goes on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import pytest_asyncio
from ocpp.v16 import call

from centralsystem import CentralSystem
from firmware import app
from tests.conftest import Rig, bench_settings, start_fast

pytestmark = pytest.mark.asyncio


async def test_tc_017_1_unlock_connector_without_a_session(rig: Rig) -> None:
    result = await rig.cs.call(rig.cp_id, call.UnlockConnector(connector_id=1))
    assert result.status == "Unlocked"
    unknown = await rig.cs.call(rig.cp_id, call.UnlockConnector(connector_id=9))
    assert unknown.status == "NotSupported"


async def test_tc_018_1_unlock_connector_with_a_session(rig: Rig) -> None:
    await rig.start_session()
    mark = rig.cs.mark()
    result = await rig.cs.call(rig.cp_id, call.UnlockConnector(connector_id=1))
    assert result.status == "Unlocked"
    stop = await rig.wait_call("StopTransaction", since=mark)
    assert stop.payload["reason"] == "UnlockCommand"
    assert rig.bench.status()["1"]["lock"] == "unlocked"


@pytest_asyncio.fixture
async def tethered(csms: CentralSystem, tmp_path: Path) -> AsyncIterator[Rig]:
    """The bench with its connector's cable fixed to the charger (no lock to drive)."""
    settings = bench_settings(csms.url, tmp_path)
    hardware = replace(
        settings.hardware,
        connectors=tuple(replace(c, lock=None) for c in settings.hardware.connectors),
    )
    running = await start_fast(replace(settings, hardware=hardware))
    rig = Rig(csms, running, tmp_path)
    try:
        await rig.wait_status("Available")
        yield rig
    finally:
        await app.shutdown(running)


async def test_tc_017_2_unlock_a_fixed_cable_without_a_session(tethered: Rig) -> None:
    rig = tethered
    mark = rig.cs.mark()
    await rig.command("plug")
    await rig.wait_status("Preparing", since=mark)
    result = await rig.cs.call(rig.cp_id, call.UnlockConnector(connector_id=1))
    assert result.status == "NotSupported"


async def test_tc_018_2_unlock_a_fixed_cable_with_a_session(tethered: Rig) -> None:
    rig = tethered
    mark = rig.cs.mark()
    await rig.command("plug")
    await rig.wait_status("Preparing", since=mark)
    started = await rig.cs.call(rig.cp_id, call.RemoteStartTransaction(id_tag="FIXED-1"))
    assert started.status == "Accepted"
    start = await rig.wait_call("StartTransaction", since=mark)
    assert start.payload["idTag"] == "FIXED-1"
    await rig.command("ev-charge")
    await rig.wait_status("Charging", since=mark)
    mark = rig.cs.mark()
    result = await rig.cs.call(rig.cp_id, call.UnlockConnector(connector_id=1))
    assert result.status == "NotSupported"
    # Nothing was unlocked, so nothing stops: the transaction goes on (a later Heartbeat
    # proves the charger has handled the request completely).
    beat = await rig.cs.call(rig.cp_id, call.TriggerMessage(requested_message="Heartbeat"))
    assert beat.status == "Accepted"
    await rig.wait_call("Heartbeat", since=mark)
    assert not any(r.seq >= mark for r in rig.calls("StopTransaction"))
    assert rig.running.charger.status()["1"]["status"] == "Charging"
    assert rig.bench.contactor_closed(1)
