"""OCTT 1.6 charge point test cases, chapter "Core non-happy": basic, remote, unlock, power
failure, offline, configuration keys.

- TC_024_CS Start Charging Session - Lock Failure.
- Remote start of a blocked idTag; on connector 0 or a busy connector (TC_026_CS Remote Start
  Charging Session - Rejected, TC_027_CS connector id shall not be 0).
- Unlock failure (TC_030_CS Unlock Connector - Unlock Failure).
- TC_032_2_CS Power failure boot charging point - configured to stop transaction(s).
- TC_034_CS Power Failure with Unavailable Status: ChangeAvailability (also scheduled during a
  transaction) and Unavailable across a restart.
- TC_037_1_CS Offline Start Transaction - Valid IdTag; an idTag found Invalid in
  StartTransaction.conf with StopTransactionOnInvalidId true, or false with MaxEnergyOnInvalidId.
- TC_040_1_CS Configuration key - NotSupported, TC_040_2_CS Configuration key - Invalid value.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from ocpp.v16 import call

from centralsystem import CentralSystem
from firmware import app
from tests.conftest import Rig, bench_settings, start_fast
from tests.system.helpers import Controller, _charging
from tests.system.octt.helpers import _stop_by_card

pytestmark = pytest.mark.asyncio


async def test_tc_024_lock_failure_is_faulted_and_no_transaction(rig: Rig) -> None:
    await rig.command("fault", name="lock", state="on")
    mark = rig.cs.mark()
    await rig.command("plug")
    await rig.command("swipe", tag="TAG-L")
    await rig.wait_status("Faulted", since=mark, error_code="ConnectorLockFailure", timeout=10)
    assert not rig.calls("StartTransaction")
    assert not rig.bench.contactor_closed(1)
    await rig.command("fault", name="lock", state="off")
    mark = rig.cs.mark()
    await rig.command("unplug")  # the cable leaves: the next plug-in tries again
    await rig.wait_status("Available", since=mark)
    await rig.start_session("TAG-L2")


async def test_remote_start_of_a_blocked_id_starts_nothing(rig: Rig) -> None:
    rig.cs.id_tags["BLOCKED-R"] = "Blocked"
    await rig.command("plug")
    result = await rig.cs.call(rig.cp_id, call.RemoteStartTransaction(id_tag="BLOCKED-R"))
    assert result.status == "Accepted"  # the connector could take it; the Authorize decides
    await rig.wait_result("Authorize")
    await asyncio.sleep(0.5)
    assert not rig.calls("StartTransaction")


async def test_remote_start_on_connector_0_or_a_busy_connector_is_rejected(rig: Rig) -> None:
    zero = await rig.cs.call(rig.cp_id, call.RemoteStartTransaction(id_tag="X", connector_id=0))
    assert zero.status == "Rejected"
    await rig.start_session()
    busy = await rig.cs.call(rig.cp_id, call.RemoteStartTransaction(id_tag="Y", connector_id=1))
    assert busy.status == "Rejected"


async def test_unlock_failure_is_reported(rig: Rig) -> None:
    await rig.cs.call(
        rig.cp_id, call.ChangeConfiguration(key="PiCP.PermanentCableLock", value="true")
    )
    await rig.wait_bench(lambda s: s["1"]["lock"] == "locked")
    await rig.command("fault", name="lock", state="on")  # jammed in the locked position
    result = await rig.cs.call(rig.cp_id, call.UnlockConnector(connector_id=1), timeout=15)
    assert result.status == "UnlockFailed"


@pytest.mark.asyncio
async def test_tc_032_2_power_loss_stops_with_the_last_persisted_meter_value(
    csms: CentralSystem, tmp_path: Path
) -> None:
    ctl = Controller(csms.url, tmp_path / "state", tmp_path / "cp.log")
    ctl.start()
    try:
        await _charging(csms, ctl, "POWERCUT")
        # A sampled meter value is journaled: wait for one (bench config: every 10 s).
        await csms.wait_for(
            lambda r: r.action == "MeterValues" and r.message_type == "CALL", timeout=20
        )
        last_meter = max(
            int(float(sv["value"]))
            for r in csms.messages
            if r.action == "MeterValues" and r.message_type == "CALL"
            for mv in r.payload["meterValue"]
            for sv in mv["sampledValue"]
        )
        ctl.kill()  # power cut: no chance to say anything
        mark = csms.mark()
        ctl.start()
        stop = await csms.wait_for(
            lambda r: r.action == "StopTransaction" and r.message_type == "CALLRESULT",
            since=mark,
            timeout=20,
        )
        boot = next(r for r in csms.messages if r.seq >= mark and r.action == "BootNotification")
        assert boot.seq < stop.seq, "queued messages wait for BootNotification Accepted"
        (tx,) = csms.state("DURABLE-1").transactions.values()
        assert tx.reason == "PowerLoss" and tx.stops == 1
        assert tx.id_tag == "POWERCUT" and tx.stop_id_tag == "POWERCUT"
        assert tx.meter_stop is not None and tx.meter_stop >= last_meter >= (tx.meter_start or 0)
        starts = [
            r for r in csms.messages if r.action == "StartTransaction" and r.message_type == "CALL"
        ]
        assert len({s.unique_id for s in starts}) == 1, "no second StartTransaction"
        await csms.wait_for(
            lambda r: (
                r.action == "StatusNotification"
                and r.seq > mark
                and r.payload.get("connectorId") == 1
                and r.payload.get("status") in ("Preparing", "Finishing")
            )
        )
    finally:
        ctl.stop_quietly()


async def test_tc_034_change_availability(rig: Rig) -> None:
    result = await rig.cs.call(
        rig.cp_id, call.ChangeAvailability(connector_id=1, type="Inoperative")
    )
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
    result = await rig.cs.call(
        rig.cp_id, call.ChangeAvailability(connector_id=0, type="Inoperative")
    )
    assert result.status == "Scheduled"
    await rig.wait_status("Unavailable", connector=0)
    assert rig.running.charger.status()["1"]["status"] == "Charging"
    mark = rig.cs.mark()
    await rig.command("unplug")
    await rig.wait_status("Unavailable", since=mark)


@pytest.mark.asyncio
async def test_tc_034_unavailable_persists_across_a_restart(
    csms: CentralSystem, tmp_path: Path
) -> None:
    settings = bench_settings(csms.url, tmp_path)
    running = await start_fast(settings)
    rig = Rig(csms, running, tmp_path)
    try:
        await rig.wait_status("Available")
        result = await csms.call(
            rig.cp_id, call.ChangeAvailability(connector_id=0, type="Inoperative")
        )
        assert result.status == "Accepted"
        await rig.wait_status("Unavailable")
    finally:
        await app.shutdown(running)
    mark = csms.mark()
    running = await start_fast(settings)
    rig = Rig(csms, running, tmp_path)
    try:
        await rig.wait_status("Unavailable", since=mark)
        await rig.wait_status("Unavailable", connector=0, since=mark)
    finally:
        await app.shutdown(running)


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


@pytest.mark.keys(StopTransactionOnInvalidId=True, AuthorizeRemoteTxRequests=False)
async def test_invalid_id_in_start_transaction_conf_stops_deauthorized(rig: Rig) -> None:
    rig.cs.id_tags["INVALIDATED"] = "Invalid"
    await rig.command("plug")
    await rig.cs.call(rig.cp_id, call.RemoteStartTransaction(id_tag="INVALIDATED"))
    await rig.command("ev-charge")
    stop = await rig.wait_call("StopTransaction", timeout=10)
    assert stop.payload["reason"] == "DeAuthorized"


@pytest.mark.keys(
    StopTransactionOnInvalidId=False, MaxEnergyOnInvalidId=200, AuthorizeRemoteTxRequests=False
)
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


async def test_tc_040_unknown_key_and_invalid_value(rig: Rig) -> None:
    unknown = await rig.cs.call(rig.cp_id, call.ChangeConfiguration(key="Testing", value="true"))
    assert unknown.status == "NotSupported"
    invalid = await rig.cs.call(
        rig.cp_id, call.ChangeConfiguration(key="MeterValueSampleInterval", value="-1")
    )
    assert invalid.status == "Rejected"
    readonly = await rig.cs.call(
        rig.cp_id, call.ChangeConfiguration(key="NumberOfConnectors", value="3")
    )
    assert readonly.status == "Rejected"
    meter = await rig.cs.call(
        rig.cp_id,
        call.ChangeConfiguration(
            key="MeterValuesSampledData", value="Energy.Active.Import.Register,SoC"
        ),
    )
    assert meter.status == "Rejected", "the SDM630 has no state of charge"
