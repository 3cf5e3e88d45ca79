"""Every frame the charger sends, checked against the OCPP 1.6 JSON schemas by an
implementation independent of the Python ``ocpp`` package the charger uses: the npm package
``ocpp-rpc`` in strict mode (ajv), as the central system (``csms.js``, see harness.py).

Each test drives real sessions on the simulated bench and ends with
``assert_every_frame_valid``: no inbound strict-validation failure and no bad message.
The last test is the negative control: the harness does report a bad frame.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from firmware.ocpp.mapping import sampled_value_fields
from tests.system.ocpp_rpc.conftest import NodeRig
from tests.system.ocpp_rpc.harness import NodeCsms, framing_problems

pytestmark = pytest.mark.asyncio
ENERGY = "Energy.Active.Import.Register"


def assert_every_frame_valid(node: NodeCsms) -> None:
    failures = node.validation_failures()
    assert not failures, (
        "frames of the charger failed ocpp-rpc's strict OCPP 1.6 validation:\n"
        + node.failure_report()
    )
    # It really was validating: the charger agreed on ocpp1.6 (strict mode applies only then).
    connects = [e for e in node.events if e.get("ev") == "connect"]
    assert connects and all(e["protocol"] == "ocpp1.6" for e in connects), connects
    # And the OCPP-J framing rules the schemas do not cover.
    for cp_id in {e["id"] for e in connects}:
        problems = framing_problems(node.events, cp_id)
        assert not problems, "\n".join(problems)


def result_of(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["ev"] == "result", f"{answer['method']} failed: {answer.get('error')}"
    return dict(answer["result"])


@pytest.mark.parametrize(
    "compact",
    [
        pytest.param(True, id="compact"),
        pytest.param(False, id="full", marks=pytest.mark.keys(**{"PiCP.CompactMessages": False})),
    ],
)
async def test_card_session_with_meter_values_then_unplug(node_rig: NodeRig, compact: bool) -> None:
    """Both forms of PiCP.CompactMessages: the defaulted SampledValue fields left out, or
    written out."""
    node = node_rig.node
    boot = node.received_calls("BootNotification")
    assert len(boot) == 1 and boot[0]["chargePointVendor"] == "PiChargepoint"
    tx_id = await node_rig.start_session("CONF-TAG-1")
    mark = node.mark()
    # MeterValueSampleInterval = 1 s: periodic samples with every measurand the bench serves.
    meter = await node_rig.wait_call("MeterValues", since=mark, timeout=5)
    await node_rig.wait_call("MeterValues", since=node.mark(), timeout=5)
    assert meter["payload"]["transactionId"] == tx_id
    sampled = [sv for mv in meter["payload"]["meterValue"] for sv in mv["sampledValue"]]
    # The periodic energy reading: its value alone, or every field written out.
    energy = [sv for sv in sampled if sv.get("measurand") in (None, ENERGY)]
    assert energy and all(("context" in sv) is not compact for sv in energy), energy
    measurands = {sampled_value_fields(sv)["measurand"] for sv in sampled}
    assert {
        "Energy.Active.Import.Register",
        "Power.Active.Import",
        "Current.Import",
        "Voltage",
        "Current.Offered",
    } <= measurands
    mark = node.mark()
    await node_rig.command("unplug")
    stop = (await node_rig.wait_call("StopTransaction", since=mark))["payload"]
    await node_rig.wait_answered("StopTransaction", since=mark)
    await node_rig.wait_status("Available", since=mark)
    assert stop["transactionId"] == tx_id
    assert stop["reason"] == "EVDisconnected" and stop["idTag"] == "CONF-TAG-1"
    contexts = {
        sampled_value_fields(sv)["context"]
        for mv in stop["transactionData"]
        for sv in mv["sampledValue"]
    }
    assert {"Transaction.Begin", "Transaction.End"} <= contexts
    start = node.received_calls("StartTransaction")[-1]
    assert stop["meterStop"] > start["meterStart"]
    assert_every_frame_valid(node)


async def test_local_stop_faults_and_their_status_notifications(node_rig: NodeRig) -> None:
    node = node_rig.node
    # A local stop by the same card.
    await node_rig.start_session("CONF-TAG-2")
    mark = node.mark()
    await node_rig.command("swipe", tag="CONF-TAG-2")
    stop = (await node_rig.wait_call("StopTransaction", since=mark))["payload"]
    assert stop["reason"] == "Local"
    await node_rig.wait_status("Finishing", since=mark)
    mark = node.mark()
    await node_rig.command("unplug")
    await node_rig.wait_status("Available", since=mark)

    # A residual-current trip in a session: Faulted with errorCode and vendorErrorCode.
    await node_rig.start_session("CONF-TAG-3")
    mark = node.mark()
    await node_rig.command("fault", name="rcd", state="on")
    faulted = (await node_rig.wait_status("Faulted", since=mark, error_code="GroundFailure"))[
        "payload"
    ]
    assert faulted["vendorErrorCode"] == "RCD"
    stop = (await node_rig.wait_call("StopTransaction", since=mark))["payload"]
    assert stop["reason"] == "Other"
    await node_rig.command("fault", name="rcd", state="off")
    mark = node.mark()
    await node_rig.command("unplug")
    await node_rig.wait_status("Available", since=mark)

    # The emergency stop: StopTransaction reason EmergencyStop, vendor code ESTOP.
    await node_rig.start_session("CONF-TAG-4")
    mark = node.mark()
    await node_rig.command("fault", name="estop", state="on")
    stop = (await node_rig.wait_call("StopTransaction", since=mark))["payload"]
    assert stop["reason"] == "EmergencyStop"
    await node_rig.wait_status("Faulted", since=mark, error_code="OtherError")
    await node_rig.command("fault", name="estop", state="off")
    mark = node.mark()
    await node_rig.command("unplug")
    await node_rig.wait_status("Available", since=mark)

    # A dead meter: Faulted / PowerMeterFailure, and back by itself.
    mark = node.mark()
    await node_rig.command("fault", name="meter", state="on")
    faulted = (
        await node_rig.wait_status(
            "Faulted", since=mark, timeout=10, error_code="PowerMeterFailure"
        )
    )["payload"]
    assert faulted["vendorErrorCode"] == "METER"
    mark = node.mark()
    await node_rig.command("fault", name="meter", state="off")
    await node_rig.wait_status("Available", since=mark, timeout=10)
    assert_every_frame_valid(node)


async def test_answers_to_the_central_systems_requests(node_rig: NodeRig) -> None:
    node = node_rig.node

    everything = result_of(await node_rig.call("GetConfiguration", {}))
    names = {k["key"] for k in everything["configurationKey"]}
    assert {"HeartbeatInterval", "MeterValueSampleInterval", "NumberOfConnectors"} <= names
    some = result_of(
        await node_rig.call("GetConfiguration", {"key": ["HeartbeatInterval", "NoSuchKey"]})
    )
    assert [k["key"] for k in some["configurationKey"]] == ["HeartbeatInterval"]
    assert some["unknownKey"] == ["NoSuchKey"]
    too_many = await node_rig.call("GetConfiguration", {"key": [f"K{n}" for n in range(101)]})
    assert too_many["ev"] == "error"  # a CALLERROR (GetConfigurationMaxKeys 100), well formed

    for key, value, expected in (
        ("MeterValueSampleInterval", "2", "Accepted"),
        ("HeartbeatInterval", "not-a-number", "Rejected"),
        ("NumberOfConnectors", "4", "Rejected"),
        ("NoSuchKey", "1", "NotSupported"),
    ):
        answer = result_of(await node_rig.call("ChangeConfiguration", {"key": key, "value": value}))
        assert answer["status"] == expected, (key, value, answer)
    # A call that breaks the schema itself is refused by ocpp-rpc before it is sent: it is
    # the test's fault, not the charger's, and validation_failures() leaves it out.
    refused = await node_rig.call("ChangeConfiguration", {"key": "HeartbeatInterval", "value": 5})
    assert refused["ev"] == "error" and refused["error"]["code"] == "TypeConstraintViolation"

    transfer = result_of(
        await node_rig.call(
            "DataTransfer", {"vendorId": "com.example", "messageId": "Hello", "data": "{}"}
        )
    )
    assert transfer["status"] == "UnknownVendorId"

    mark = node.mark()
    assert (
        result_of(
            await node_rig.call(
                "TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 1}
            )
        )["status"]
        == "Accepted"
    )
    await node_rig.wait_status("Available", since=mark)
    assert (
        result_of(await node_rig.call("TriggerMessage", {"requestedMessage": "Heartbeat"}))[
            "status"
        ]
        == "Accepted"
    )
    await node_rig.wait_call("Heartbeat", since=mark)
    assert (
        result_of(await node_rig.call("TriggerMessage", {"requestedMessage": "BootNotification"}))[
            "status"
        ]
        == "Rejected"
    )

    # RemoteStart on a plugged connector, then RemoteStop (a wrong id first).
    await node_rig.command("plug")
    mark = node.mark()
    assert (
        result_of(
            await node_rig.call("RemoteStartTransaction", {"idTag": "REMOTE-1", "connectorId": 1})
        )["status"]
        == "Accepted"
    )
    start = await node_rig.wait_call("StartTransaction", since=mark)
    assert start["payload"]["idTag"] == "REMOTE-1"
    tx_id = (await node_rig.wait_answered("StartTransaction", since=mark))["payload"][
        "transactionId"
    ]
    await node_rig.command("ev-charge")
    await node_rig.wait_status("Charging", since=mark)
    assert (
        result_of(await node_rig.call("RemoteStopTransaction", {"transactionId": tx_id + 99}))[
            "status"
        ]
        == "Rejected"
    )
    mark = node.mark()
    assert (
        result_of(await node_rig.call("RemoteStopTransaction", {"transactionId": tx_id}))["status"]
        == "Accepted"
    )
    stop = await node_rig.wait_call("StopTransaction", since=mark)
    assert stop["payload"]["reason"] == "Remote"

    # UnlockConnector, then unplug.
    mark = node.mark()
    unlocked = result_of(await node_rig.call("UnlockConnector", {"connectorId": 1}))
    assert unlocked["status"] == "Unlocked"
    assert (
        result_of(await node_rig.call("UnlockConnector", {"connectorId": 7}))["status"]
        == "NotSupported"
    )
    await node_rig.command("unplug")
    await node_rig.wait_status("Available", since=mark)

    # ChangeAvailability: connector 1 Inoperative and back, connector 0, an unknown connector.
    mark = node.mark()
    assert (
        result_of(
            await node_rig.call("ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
        )["status"]
        == "Accepted"
    )
    await node_rig.wait_status("Unavailable", since=mark)
    mark = node.mark()
    assert (
        result_of(
            await node_rig.call("ChangeAvailability", {"connectorId": 1, "type": "Operative"})
        )["status"]
        == "Accepted"
    )
    await node_rig.wait_status("Available", since=mark)
    assert (
        result_of(
            await node_rig.call("ChangeAvailability", {"connectorId": 0, "type": "Operative"})
        )["status"]
        == "Accepted"
    )
    assert (
        result_of(
            await node_rig.call("ChangeAvailability", {"connectorId": 7, "type": "Inoperative"})
        )["status"]
        == "Rejected"
    )

    # The central system drops the connection: the charger reconnects (no new Boot, OCPP-J
    # §5.4) and reports its statuses again, all of it through the same strict validation.
    mark = node.mark()
    node.disconnect(node_rig.cp_id)
    await node.awaited_for(lambda e: e.get("ev") == "connect", since=mark, timeout=10)
    await node_rig.wait_status("Available", connector=1, since=mark)
    assert not node.received_calls("BootNotification", since=mark)

    # Let the last triggered/answered frames arrive before judging.
    await asyncio.sleep(0.2)
    assert_every_frame_valid(node)


async def test_smart_charging_answers(node_rig: NodeRig) -> None:
    """SetChargingProfile, GetCompositeSchedule (A, W, connector 0, Rejected) and
    ClearChargingProfile answers, through ocpp-rpc's strict validation (a composite limit is
    a multiple of 0.1, scheduleStart a date-time)."""
    profile = {
        "chargingProfileId": 7,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": {
            "chargingRateUnit": "W",
            "duration": 600,
            "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": 11000.0},
                {"startPeriod": 300, "limit": 4140.0, "numberPhases": 1},
            ],
        },
    }
    for connector, expected in ((1, "Accepted"), (7, "Rejected")):
        answer = result_of(
            await node_rig.call(
                "SetChargingProfile", {"connectorId": connector, "csChargingProfiles": profile}
            )
        )
        assert answer["status"] == expected
    for request in (
        {"connectorId": 1, "duration": 900},
        {"connectorId": 1, "duration": 900, "chargingRateUnit": "W"},
        {"connectorId": 0, "duration": 60, "chargingRateUnit": "A"},
    ):
        answer = result_of(await node_rig.call("GetCompositeSchedule", request))
        assert answer["status"] == "Accepted" and answer["connectorId"] == request["connectorId"]
        assert answer["chargingSchedule"]["chargingSchedulePeriod"][0]["startPeriod"] == 0
    unknown = {"connectorId": 7, "duration": 60}
    assert result_of(await node_rig.call("GetCompositeSchedule", unknown)) == {"status": "Rejected"}
    cleared = result_of(await node_rig.call("ClearChargingProfile", {"id": 7}))
    assert cleared["status"] == "Accepted"
    again = result_of(await node_rig.call("ClearChargingProfile", {}))
    assert again["status"] == "Unknown"
    assert_every_frame_valid(node_rig.node)  # every answer above has arrived: all awaited


@pytest.mark.keys(CpoName="Test CPO")
async def test_security_whitepaper_frames(node_rig: NodeRig) -> None:
    """ocpp-rpc 2.2.1 has the Security Whitepaper (ed. 2) schemas: SecurityEventNotification,
    SignCertificate and LogStatusNotification from the charger, and its answers to the
    certificate, trigger and log requests, all pass strict validation."""
    from tests.pki import Authority

    node = node_rig.node
    event = await node_rig.wait_call("SecurityEventNotification")
    assert event["payload"]["type"] == "StartupOfTheDevice"
    mark = node.mark()
    assert (
        result_of(
            await node_rig.call(
                "ExtendedTriggerMessage", {"requestedMessage": "SignChargePointCertificate"}
            )
        )["status"]
        == "Accepted"
    )
    csr = (await node_rig.wait_call("SignCertificate", since=mark))["payload"]["csr"]
    assert csr.startswith("-----BEGIN CERTIFICATE REQUEST-----")
    await node_rig.wait_answered("SignCertificate", since=mark)
    root = Authority.root()
    assert (
        result_of(
            await node_rig.call(
                "InstallCertificate",
                {"certificateType": "CentralSystemRootCertificate", "certificate": root.pem},
            )
        )["status"]
        == "Accepted"
    )
    ids = result_of(
        await node_rig.call(
            "GetInstalledCertificateIds", {"certificateType": "CentralSystemRootCertificate"}
        )
    )
    assert ids["status"] == "Accepted" and len(ids["certificateHashData"]) == 1
    assert (
        result_of(
            await node_rig.call("CertificateSigned", {"certificateChain": root.sign_csr(csr)})
        )["status"]
        == "Accepted"
    )
    assert (
        result_of(
            await node_rig.call(
                "DeleteCertificate", {"certificateHashData": ids["certificateHashData"][0]}
            )
        )["status"]
        == "Accepted"
    )
    mark = node.mark()
    assert (
        result_of(
            await node_rig.call(
                "ExtendedTriggerMessage", {"requestedMessage": "LogStatusNotification"}
            )
        )["status"]
        == "Accepted"
    )
    assert (await node_rig.wait_call("LogStatusNotification", since=mark))["payload"] == {
        "status": "Idle"
    }
    # Nobody listens on port 9 of 127.0.0.1: Uploading, then UploadFailure.
    mark = node.mark()
    answer = result_of(
        await node_rig.call(
            "GetLog",
            {
                "logType": "SecurityLog",
                "requestId": 3,
                "log": {"remoteLocation": "http://127.0.0.1:9/"},
                # No retry (absent: one more attempt 30 s later): the failure's frame at once.
                "retries": 0,
            },
        )
    )
    assert answer["status"] == "Accepted" and answer["filename"]
    await node.awaited_for(
        lambda e: (
            e.get("ev") == "rx"
            and e.get("action") == "LogStatusNotification"
            and (e.get("payload") or {}).get("status") == "UploadFailure"
        ),
        since=mark,
        timeout=10,
    )
    events = [
        e["payload"]["type"]
        for e in node.events
        if e.get("ev") == "rx" and e.get("action") == "SecurityEventNotification"
    ]
    assert "ReconfigurationOfSecurityParameters" in events
    assert_every_frame_valid(node)


async def test_negative_control_the_harness_reports_bad_frames(node_csms: NodeCsms) -> None:
    """A raw client sends what the charger must never send; the harness must catch each kind."""
    async with connect(f"{node_csms.url}/BAD-CP-1", subprotocols=[Subprotocol("ocpp1.6")]) as ws:
        assert ws.subprotocol == "ocpp1.6"
        # 1. A CALL with a status outside the enum.
        await ws.send(
            json.dumps(
                [
                    2,
                    "m1",
                    "StatusNotification",
                    {"connectorId": 1, "errorCode": "NoError", "status": "Charged"},
                ]
            )
        )
        error = json.loads(await ws.recv())
        assert error[:3] == [4, "m1", "FormationViolation"], error
        # 2. A CALLRESULT that breaks the schema (readonly must be a boolean).
        answer_task = asyncio.create_task(node_csms.acall("BAD-CP-1", "GetConfiguration", {}))
        request = json.loads(await ws.recv())
        assert request[0] == 2 and request[2] == "GetConfiguration"
        await ws.send(
            json.dumps(
                [
                    3,
                    request[1],
                    {
                        "configurationKey": [
                            {"key": "HeartbeatInterval", "readonly": "no", "value": "300"}
                        ]
                    },
                ]
            )
        )
        answer = await answer_task
        assert answer["ev"] == "error"
        # 3. Not an OCPP-J message at all.
        await ws.send("this is not json")
        assert json.loads(await ws.recv())[0] == 4
    failures = node_csms.validation_failures()
    kinds = [(f["ev"], f.get("method"), f.get("isCall")) for f in failures]
    assert kinds == [
        ("strictValidationFailure", "StatusNotification", True),
        ("strictValidationFailure", "GetConfiguration", False),
        ("badMessage", None, None),
    ], kinds
    ajv = failures[0]["error"]["details"]["errors"][0]
    assert ajv["instancePath"] == "/status" and ajv["keyword"] == "enum"
    assert (
        failures[1]["error"]["details"]["errors"][0]["instancePath"]
        == "/configurationKey/0/readonly"
    )
    assert "Charged" in node_csms.failure_report()
    framing = framing_problems(node_csms.events, "BAD-CP-1")
    assert len(framing) == 1 and "not an OCPP-J" in framing[0], framing
