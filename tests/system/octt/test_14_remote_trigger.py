"""OCTT 1.6 charge point test cases, chapter "Remote Trigger".

- TriggerMessage: accepted Heartbeat and MeterValues follow the answer, BootNotification is
  Rejected, FirmwareStatusNotification NotImplemented (TC_054_CS Trigger Message, TC_055_CS
  Trigger Message - Rejected).
"""

from __future__ import annotations

import pytest
from ocpp.v16 import call

from tests.conftest import Rig

pytestmark = pytest.mark.asyncio


async def test_trigger_message(rig: Rig) -> None:
    mark = rig.cs.mark()
    hb = await rig.cs.call(rig.cp_id, call.TriggerMessage(requested_message="Heartbeat"))
    assert hb.status == "Accepted"
    answer = await rig.cs.wait_for(
        lambda r: r.action == "TriggerMessage" and r.message_type == "CALLRESULT", since=mark
    )
    beat = await rig.wait_call("Heartbeat", since=mark)
    assert beat.seq > answer.seq, "the triggered message follows the answer"
    await rig.start_session()
    mark = rig.cs.mark()
    mv = await rig.cs.call(
        rig.cp_id, call.TriggerMessage(requested_message="MeterValues", connector_id=1)
    )
    assert mv.status == "Accepted"
    values = await rig.wait_call("MeterValues", since=mark)
    contexts = {sv["context"] for m in values.payload["meterValue"] for sv in m["sampledValue"]}
    assert contexts == {"Trigger"}
    boot = await rig.cs.call(rig.cp_id, call.TriggerMessage(requested_message="BootNotification"))
    assert boot.status == "Rejected"
    firmware = await rig.cs.call(
        rig.cp_id, call.TriggerMessage(requested_message="FirmwareStatusNotification")
    )
    assert firmware.status == "NotImplemented"
