"""OCTT 1.6 charge point test cases, chapter "Remote Trigger", and every MessageTrigger value
of TriggerMessage (OCPP 1.6 §5.17) and ExtendedTriggerMessage (Security Whitepaper F06) with and
without a connectorId (issue 13 item 3).

- TC_054_CS Trigger Message: MeterValues (connector 1), Heartbeat, StatusNotification
  (connector 1), DiagnosticsStatusNotification (Idle), FirmwareStatusNotification (Idle), each
  Accepted and sent after its answer.
- TC_055_CS Trigger Message - Rejected: MeterValues for connector 4352, which does not exist.
"""

from __future__ import annotations

from typing import Any

import pytest
from ocpp.v16 import call

from centralsystem.records import MessageRecord
from firmware.ocpp.mapping import sampled_value_fields
from tests.conftest import Rig

pytestmark = pytest.mark.asyncio


async def _trigger(rig: Rig, requested: str, connector_id: int | None = None) -> str:
    answer = await rig.cs.call(
        rig.cp_id, call.TriggerMessage(requested_message=requested, connector_id=connector_id)
    )
    return str(answer.status)


async def _extended(rig: Rig, requested: str, connector_id: int | None = None) -> str:
    answer = await rig.cs.call(
        rig.cp_id,
        call.ExtendedTriggerMessage(requested_message=requested, connector_id=connector_id),
    )
    return str(answer.status)


async def _follows_answer(rig: Rig, answered: str, action: str, since: int) -> MessageRecord:
    """The triggered ``action`` CALL, checked to come after the (Extended)TriggerMessage
    answer on the wire (§5.17: the answer first)."""
    answer = await rig.cs.wait_for(
        lambda r: r.action == answered and r.message_type == "CALLRESULT", since=since
    )
    sent = await rig.wait_call(action, since=since)
    assert sent.seq > answer.seq, f"{action} went out before the {answered} answer"
    return sent


def _statuses(rig: Rig, since: int) -> list[dict[str, Any]]:
    return [r.payload for r in rig.calls("StatusNotification") if r.seq >= since]


async def test_tc_054_trigger_message(rig: Rig) -> None:
    # Step 1: the charger is registered and idle (the rig waited for Available; the heartbeat
    # interval the central system gave is 300 s, so the first Heartbeat is the triggered one).
    await rig.wait_call("BootNotification")
    # Steps 2-3: MeterValues for connector 1, idle (no transaction): the most recent values of
    # MeterValuesSampledData, context Trigger (ERRATA 3.46), no transactionId.
    mark = rig.cs.mark()
    assert await _trigger(rig, "MeterValues", 1) == "Accepted"
    values = await _follows_answer(rig, "TriggerMessage", "MeterValues", mark)
    assert values.payload["connectorId"] == 1 and "transactionId" not in values.payload
    contexts = {
        sampled_value_fields(sv)["context"]
        for m in values.payload["meterValue"]
        for sv in m["sampledValue"]
    }
    assert contexts == {"Trigger"}
    # Steps 4-5: Heartbeat.
    mark = rig.cs.mark()
    assert await _trigger(rig, "Heartbeat") == "Accepted"
    await _follows_answer(rig, "TriggerMessage", "Heartbeat", mark)
    # Steps 6-7: StatusNotification for connector 1 only.
    mark = rig.cs.mark()
    assert await _trigger(rig, "StatusNotification", 1) == "Accepted"
    status = await _follows_answer(rig, "TriggerMessage", "StatusNotification", mark)
    assert status.payload["connectorId"] == 1 and status.payload["status"] == "Available"
    # Steps 8-9: DiagnosticsStatusNotification Idle (no diagnostics task runs).
    mark = rig.cs.mark()
    assert await _trigger(rig, "DiagnosticsStatusNotification") == "Accepted"
    diagnostics = await _follows_answer(
        rig, "TriggerMessage", "DiagnosticsStatusNotification", mark
    )
    assert diagnostics.payload == {"status": "Idle"}
    # Steps 10-11: FirmwareStatusNotification Idle (no firmware task runs).
    mark = rig.cs.mark()
    assert await _trigger(rig, "FirmwareStatusNotification") == "Accepted"
    firmware = await _follows_answer(rig, "TriggerMessage", "FirmwareStatusNotification", mark)
    assert firmware.payload == {"status": "Idle"}


async def test_tc_055_trigger_message_rejected(rig: Rig) -> None:
    mark = rig.cs.mark()
    assert await _trigger(rig, "MeterValues", 4352) == "Rejected"
    assert await _trigger(rig, "StatusNotification", 4352) == "Rejected"
    assert await _extended(rig, "MeterValues", 4352) == "Rejected"
    assert await _extended(rig, "StatusNotification", 2) == "Rejected"
    # Nothing was promised, nothing is sent (a Heartbeat proves the link went on).
    assert await _trigger(rig, "Heartbeat") == "Accepted"
    await rig.wait_call("Heartbeat", since=mark)
    assert not rig.calls("MeterValues") or all(r.seq < mark for r in rig.calls("MeterValues"))
    assert _statuses(rig, mark) == []


async def test_a_connector_id_that_is_not_relevant_is_ignored(rig: Rig) -> None:
    """§5.17: "if the connectorId is not relevant to the message, it should be ignored" (the
    message is sent all the same), even a connector the charger does not have."""
    for requested, action in (
        ("Heartbeat", "Heartbeat"),
        ("DiagnosticsStatusNotification", "DiagnosticsStatusNotification"),
        ("FirmwareStatusNotification", "FirmwareStatusNotification"),
    ):
        mark = rig.cs.mark()
        assert await _trigger(rig, requested, 4352) == "Accepted", requested
        await _follows_answer(rig, "TriggerMessage", action, mark)


async def test_status_notification_without_connector_is_one_per_connector_and_the_charger(
    rig: Rig,
) -> None:
    """§5.17: a connectorId absent where it is relevant means every connectorId, 0 (the charge
    point) included; connector 0 alone is the charge point's status."""
    mark = rig.cs.mark()
    assert await _trigger(rig, "StatusNotification") == "Accepted"
    await rig.wait_status("Available", connector=0, since=mark)
    await rig.wait_status("Available", connector=1, since=mark)
    mark = rig.cs.mark()
    assert await _trigger(rig, "StatusNotification", 0) == "Accepted"
    await rig.wait_status("Available", connector=0, since=mark)
    assert await _trigger(rig, "Heartbeat") == "Accepted"  # a later message: the statuses are in
    await rig.wait_call("Heartbeat", since=mark)
    assert [s["connectorId"] for s in _statuses(rig, mark)] == [0]


async def test_meter_values_for_every_connector_but_not_for_the_charge_point(rig: Rig) -> None:
    """Without connectorId: each connector's values.  Connector 0 is the charge point's main
    meter, which this charger does not have: Rejected (nothing it could send would be true)."""
    await rig.start_session()
    mark = rig.cs.mark()
    assert await _trigger(rig, "MeterValues") == "Accepted"
    values = await _follows_answer(rig, "TriggerMessage", "MeterValues", mark)
    assert values.payload["connectorId"] == 1
    assert values.payload["transactionId"] > 0, "during a transaction, its transactionId"
    assert await _trigger(rig, "MeterValues", 0) == "Rejected"


async def test_boot_notification_is_rejected_once_accepted(rig: Rig) -> None:
    """ERRATA 3.35: after BootNotification.conf(Accepted) a triggered BootNotification is
    refused until the next reboot or reconnect (it is accepted while Pending:
    tests/system/octt/test_01_cold_boot.py)."""
    await rig.wait_call("BootNotification")
    assert await _trigger(rig, "BootNotification") == "Rejected"
    assert await _trigger(rig, "BootNotification", 4352) == "Rejected"
    assert await _extended(rig, "BootNotification") == "Rejected"


async def test_extended_trigger_message_serves_the_same_registry(rig: Rig) -> None:
    """Security Whitepaper F06: ExtendedTriggerMessage asks the same registry; its
    FirmwareStatusNotification is a SignedFirmwareStatusNotification (Idle, no requestId when
    no update runs)."""
    for requested, action in (
        ("Heartbeat", "Heartbeat"),
        ("StatusNotification", "StatusNotification"),
        ("MeterValues", "MeterValues"),
        ("FirmwareStatusNotification", "SignedFirmwareStatusNotification"),
        ("LogStatusNotification", "LogStatusNotification"),
    ):
        mark = rig.cs.mark()
        connector = 1 if requested in ("StatusNotification", "MeterValues") else None
        assert await _extended(rig, requested, connector) == "Accepted", requested
        sent = await _follows_answer(rig, "ExtendedTriggerMessage", action, mark)
        if action == "SignedFirmwareStatusNotification":
            assert sent.payload == {"status": "Idle"}
