"""OCTT 1.6 charge point test cases, chapter "Unlock" (a connector without a fixed cable).

- TC_017_1_CS Unlock connector - no charging session running.
- TC_018_1_CS Unlock Connector - With Charging Session.
"""

from __future__ import annotations

import pytest
from ocpp.v16 import call

from tests.conftest import Rig

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
