"""OCTT 1.6 Core charge-point cases on the simulated bench (those not in test_bench_system.py,
test_session.py and test_config_system.py): authorization, cache, remote start, parentIdTag."""

from __future__ import annotations

import asyncio

import pytest
from ocpp.v16 import call

from tests.conftest import Rig

pytestmark = pytest.mark.asyncio


async def _stop_by_card(rig: Rig, tag: str) -> None:
    mark = rig.cs.mark()
    await rig.command("swipe", tag=tag)
    await rig.wait_result("StopTransaction", since=mark)
    await rig.command("unplug")
    await rig.wait_status("Available", since=mark)


@pytest.mark.keys(AuthorizationCacheEnabled=True, LocalPreAuthorize=True)
async def test_tc_007_start_with_a_cached_id_without_authorize(rig: Rig) -> None:
    await rig.start_session("CACHED-1")
    assert len(rig.calls("Authorize")) == 1
    await _stop_by_card(rig, "CACHED-1")
    mark = rig.cs.mark()
    await rig.start_session("CACHED-1")
    assert [r for r in rig.calls("Authorize") if r.seq >= mark] == []


@pytest.mark.keys(AuthorizationCacheEnabled=True, LocalPreAuthorize=True)
async def test_tc_061_clear_cache(rig: Rig) -> None:
    await rig.start_session("CLEAR-1")
    await _stop_by_card(rig, "CLEAR-1")
    result = await rig.cs.call(rig.cp_id, call.ClearCache())
    assert result.status == "Accepted"
    mark = rig.cs.mark()
    await rig.start_session("CLEAR-1")
    assert [r for r in rig.calls("Authorize") if r.seq >= mark], "cache cleared: ask again"


@pytest.mark.keys(AuthorizationCacheEnabled=True)
async def test_tc_037_offline_start_with_a_cached_id(rig: Rig) -> None:
    await rig.start_session("OFFLINE-CACHED")
    await _stop_by_card(rig, "OFFLINE-CACHED")
    rig.cs.refuse_connections(True)
    await rig.cs.disconnect(rig.cp_id, abrupt=True)
    await rig.command("plug")
    await rig.command("swipe", tag="OFFLINE-CACHED")  # LocalAuthorizeOffline (seed: true)
    await rig.command("ev-charge")
    await rig.wait_local_status("Charging")
    await rig.command("swipe", tag="NEVER-SEEN")  # unknown while offline: refused
    await asyncio.sleep(0.3)
    assert rig.running.charger.status()["1"]["id_tag"] == "OFFLINE-CACHED"
    mark = rig.cs.mark()
    rig.cs.refuse_connections(False)
    start = await rig.wait_call("StartTransaction", since=mark)
    assert start.payload["idTag"] == "OFFLINE-CACHED"


async def test_tc_069_card_of_the_same_group_stops_the_transaction(rig: Rig) -> None:
    rig.cs.parent_id_tags.update({"FLEET-A1": "FLEET", "FLEET-A2": "FLEET", "OTHER-1": "OTHER"})
    await rig.start_session("FLEET-A1")
    await rig.command("swipe", tag="OTHER-1")
    await asyncio.sleep(0.5)
    assert rig.running.charger.status()["1"]["status"] == "Charging"
    mark = rig.cs.mark()
    await rig.command("swipe", tag="FLEET-A2")
    stop = await rig.wait_call("StopTransaction", since=mark)
    assert stop.payload["reason"] == "Local" and stop.payload["idTag"] == "FLEET-A2"


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


async def test_remote_start_of_a_blocked_id_starts_nothing(rig: Rig) -> None:
    rig.cs.id_tags["BLOCKED-R"] = "Blocked"
    await rig.command("plug")
    result = await rig.cs.call(rig.cp_id, call.RemoteStartTransaction(id_tag="BLOCKED-R"))
    assert result.status == "Accepted"  # the connector could take it; the Authorize decides
    await rig.wait_result("Authorize")
    await asyncio.sleep(0.5)
    assert not rig.calls("StartTransaction")


@pytest.mark.keys(AuthorizeRemoteTxRequests=False)
async def test_remote_start_without_authorize_when_the_key_is_false(rig: Rig) -> None:
    await rig.command("plug")
    await rig.cs.call(rig.cp_id, call.RemoteStartTransaction(id_tag="TRUSTED"))
    await rig.wait_call("StartTransaction")
    assert not rig.calls("Authorize")


async def test_remote_start_on_connector_0_or_a_busy_connector_is_rejected(rig: Rig) -> None:
    zero = await rig.cs.call(rig.cp_id, call.RemoteStartTransaction(id_tag="X", connector_id=0))
    assert zero.status == "Rejected"
    await rig.start_session()
    busy = await rig.cs.call(rig.cp_id, call.RemoteStartTransaction(id_tag="Y", connector_id=1))
    assert busy.status == "Rejected"


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


async def test_unlock_failure_is_reported(rig: Rig) -> None:
    await rig.cs.call(rig.cp_id, call.ChangeConfiguration(key="PiCP.PermanentCableLock",
                                                          value="true"))
    await rig.wait_bench(lambda s: s["1"]["lock"] == "locked")
    await rig.command("fault", name="lock", state="on")  # jammed in the locked position
    result = await rig.cs.call(rig.cp_id, call.UnlockConnector(connector_id=1), timeout=15)
    assert result.status == "UnlockFailed"


async def test_tc_034_change_availability(rig: Rig) -> None:
    result = await rig.cs.call(rig.cp_id, call.ChangeAvailability(connector_id=1,
                                                                  type="Inoperative"))
    assert result.status == "Accepted"
    await rig.wait_status("Unavailable")
    await rig.command("plug")
    await rig.command("swipe", tag="NOPE")
    await asyncio.sleep(0.5)
    assert not rig.calls("StartTransaction"), "Unavailable: nothing starts"
    mark = rig.cs.mark()
    back = await rig.cs.call(rig.cp_id, call.ChangeAvailability(connector_id=1, type="Operative"))
    assert back.status == "Accepted"
    await rig.wait_status("Preparing", since=mark)


async def test_change_availability_during_a_transaction_is_scheduled(rig: Rig) -> None:
    await rig.start_session()
    result = await rig.cs.call(rig.cp_id, call.ChangeAvailability(connector_id=0,
                                                                  type="Inoperative"))
    assert result.status == "Scheduled"
    await rig.wait_status("Unavailable", connector=0)
    assert rig.running.charger.status()["1"]["status"] == "Charging"
    mark = rig.cs.mark()
    await rig.command("unplug")
    await rig.wait_status("Unavailable", since=mark)


async def test_tc_062_data_transfer_unknown_vendor(rig: Rig) -> None:
    result = await rig.cs.call(rig.cp_id, call.DataTransfer(vendor_id="com.unknown",
                                                            message_id="x", data="{}"))
    assert result.status == "UnknownVendorId"


async def test_trigger_message(rig: Rig) -> None:
    mark = rig.cs.mark()
    hb = await rig.cs.call(rig.cp_id, call.TriggerMessage(requested_message="Heartbeat"))
    assert hb.status == "Accepted"
    answer = await rig.cs.wait_for(lambda r: r.action == "TriggerMessage"
                                   and r.message_type == "CALLRESULT", since=mark)
    beat = await rig.wait_call("Heartbeat", since=mark)
    assert beat.seq > answer.seq, "the triggered message follows the answer"
    await rig.start_session()
    mark = rig.cs.mark()
    mv = await rig.cs.call(rig.cp_id, call.TriggerMessage(requested_message="MeterValues",
                                                          connector_id=1))
    assert mv.status == "Accepted"
    values = await rig.wait_call("MeterValues", since=mark)
    contexts = {sv["context"] for m in values.payload["meterValue"] for sv in m["sampledValue"]}
    assert contexts == {"Trigger"}
    boot = await rig.cs.call(rig.cp_id, call.TriggerMessage(
        requested_message="BootNotification"))
    assert boot.status == "Rejected"
    firmware = await rig.cs.call(rig.cp_id, call.TriggerMessage(
        requested_message="FirmwareStatusNotification"))
    assert firmware.status == "NotImplemented"


@pytest.mark.parametrize("kind, reason", [("Soft", "SoftReset"), ("Hard", "HardReset")])
async def test_tc_015_016_reset_with_a_transaction(rig: Rig, kind: str, reason: str) -> None:
    await rig.start_session()
    mark = rig.cs.mark()
    result = await rig.cs.call(rig.cp_id, call.Reset(type=kind))
    assert result.status == "Accepted"
    stop = await rig.wait_call("StopTransaction", since=mark)
    assert stop.payload["reason"] == reason
    await rig.wait_result("StopTransaction", since=mark)
    await asyncio.wait_for(rig.running.stop.wait(), timeout=15)
    assert rig.running.reset_requested is (kind == "Hard")
    assert not rig.bench.contactor_closed(1)


@pytest.mark.parametrize("kind", ["Soft", "Hard"])
async def test_tc_013_014_reset_without_a_transaction(rig: Rig, kind: str) -> None:
    result = await rig.cs.call(rig.cp_id, call.Reset(type=kind))
    assert result.status == "Accepted"
    await asyncio.wait_for(rig.running.stop.wait(), timeout=15)
    assert not rig.calls("StopTransaction")


@pytest.mark.keys(StopTransactionOnInvalidId=True, AuthorizeRemoteTxRequests=False)
async def test_invalid_id_in_start_transaction_conf_stops_deauthorized(rig: Rig) -> None:
    rig.cs.id_tags["INVALIDATED"] = "Invalid"
    await rig.command("plug")
    await rig.cs.call(rig.cp_id, call.RemoteStartTransaction(id_tag="INVALIDATED"))
    await rig.command("ev-charge")
    stop = await rig.wait_call("StopTransaction", timeout=10)
    assert stop.payload["reason"] == "DeAuthorized"


@pytest.mark.keys(StopTransactionOnInvalidId=False, MaxEnergyOnInvalidId=200,
                  AuthorizeRemoteTxRequests=False)
async def test_max_energy_on_invalid_id_then_suspended_evse(rig: Rig) -> None:
    rig.cs.id_tags["INVALIDATED"] = "Invalid"
    await rig.command("plug")
    await rig.cs.call(rig.cp_id, call.RemoteStartTransaction(id_tag="INVALIDATED"))
    await rig.command("ev-charge")
    await rig.wait_status("Charging")
    await rig.wait_status("SuspendedEVSE", timeout=15)
    assert not rig.bench.contactor_closed(1)
    assert not rig.calls("StopTransaction"), "the transaction stays open"
    tx = next(iter(rig.cs.state(rig.cp_id).transactions.values()))
    energy = rig.running.charger.status()["1"]["energy_wh"]
    assert energy - tx.meter_start >= 200
