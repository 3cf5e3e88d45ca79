"""OCTT 1.6 charge point test cases, chapter "Core non-happy": basic, remote, unlock, power
failure, offline, configuration keys, fault.

- TC_023_CS Start Charging Session - Authorize invalid.
- TC_024_CS Start Charging Session - Lock Failure.
- TC_026_CS Remote Start Charging Session - Rejected (a transaction runs); TC_027_CS Remote
  start transaction - connector id shall not be 0; a remote start of a blocked idTag.
- TC_028_CS Remote Stop Transaction - Rejected.
- TC_030_CS Unlock Connector - Unlock Failure; TC_031_CS Unlock Connector - Unknown Connector.
- TC_032_1_CS Power failure boot charging point - configured to stop transaction(s) before
  going down (backup power: a UPS HAT's mains-lost line, [power_fail]); more of it in
  tests/system/test_power_cut.py.
- TC_032_2_CS Power failure boot charging point - configured to stop transaction(s).
- TC_034_CS Power Failure with Unavailable Status: ChangeAvailability (also scheduled during a
  transaction) and Unavailable across a restart.
- TC_036_CS Connection Loss During Transaction.
- TC_037_1_CS Offline Start Transaction - Valid IdTag; TC_037_2_CS / TC_037_3_CS Offline Start
  Transaction - Invalid IdTag with StopTransactionOnInvalidId false / true; an idTag found
  Invalid in StartTransaction.conf with StopTransactionOnInvalidId true, or false with
  MaxEnergyOnInvalidId.
- TC_038_CS Offline Stop Transaction; TC_039_CS Offline Transaction.
- TC_040_1_CS Configuration key - NotSupported, TC_040_2_CS Configuration key - Invalid value.
- TC_041_CS Fault Behavior.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from ocpp.v16 import call

from centralsystem import CentralSystem
from firmware import app
from firmware.connector_senses import METER_IDLE_POLL_S
from tests.conftest import BENCH_TOML, Rig, bench_settings, start_fast
from tests.system.helpers import Controller, _charging, backup_power_toml
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


async def test_tc_027_remote_start_on_connector_0_is_rejected(rig: Rig) -> None:
    zero = await rig.cs.call(rig.cp_id, call.RemoteStartTransaction(id_tag="X", connector_id=0))
    assert zero.status == "Rejected"
    assert not rig.calls("StartTransaction") and not rig.calls("Authorize")


async def test_tc_026_remote_start_is_rejected_while_a_transaction_runs(rig: Rig) -> None:
    await _remote_session(rig, "REMOTE-26")
    busy = await rig.cs.call(rig.cp_id, call.RemoteStartTransaction(id_tag="Y", connector_id=1))
    assert busy.status == "Rejected"
    anywhere = await rig.cs.call(rig.cp_id, call.RemoteStartTransaction(id_tag="Y"))
    assert anywhere.status == "Rejected", "the only connector is busy"
    assert len(rig.calls("StartTransaction")) == 1


async def test_tc_028_remote_stop_of_an_unknown_transaction_is_rejected(rig: Rig) -> None:
    await _remote_session(rig, "REMOTE-28")
    mark = rig.cs.mark()
    result = await rig.cs.call(rig.cp_id, call.RemoteStopTransaction(transaction_id=487249487))
    assert result.status == "Rejected"
    await _handled(rig, mark)
    assert not any(r.seq >= mark for r in rig.calls("StopTransaction"))
    assert rig.running.charger.status()["1"]["status"] == "Charging"


async def test_tc_031_unlock_of_an_unknown_connector_is_not_supported(rig: Rig) -> None:
    # ERRATA 3.85: NotSupported (UnlockStatus has no "unknown connector").
    result = await rig.cs.call(rig.cp_id, call.UnlockConnector(connector_id=9765))
    assert result.status == "NotSupported"


async def test_tc_030_unlock_failure_is_reported(rig: Rig) -> None:
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


@pytest.mark.asyncio
async def test_tc_032_1_power_cut_on_backup_power_stops_with_power_loss_before_going_down(
    csms: CentralSystem, tmp_path: Path
) -> None:
    """OCTT TC_032_1 on a real daemon: mains is cut during a transaction; the charger, still
    running on its backup, sends StopTransaction reason PowerLoss and StatusNotification
    Finishing, then goes down; when mains is back it boots: BootNotification and a
    StatusNotification per connector and for connector 0 (the former transaction's connector
    Finishing or Preparing)."""
    config = tmp_path / "backup-power.toml"
    config.write_text(BENCH_TOML.read_text() + backup_power_toml(hold_off_s=0.5, deliver_s=5))
    ctl = Controller(csms.url, tmp_path / "state", tmp_path / "cp.log", config)
    ctl.start()
    try:
        await _charging(csms, ctl, "TC032-1")
        mark = csms.mark()
        await ctl.bench("power-cut")
        stop = await csms.wait_for(
            lambda r: r.action == "StopTransaction" and r.message_type == "CALL",
            since=mark,
            timeout=20,
        )
        assert stop.payload["reason"] == "PowerLoss" and stop.payload["idTag"] == "TC032-1"
        await csms.wait_for(
            lambda r: (
                r.action == "StatusNotification"
                and r.message_type == "CALL"
                and r.payload.get("connectorId") == 1
                and r.payload.get("status") == "Finishing"
            ),
            since=mark,
        )
        await csms.wait_for(
            lambda r: r.action == "StopTransaction" and r.message_type == "CALLRESULT",
            since=mark,
        )
        log = tmp_path / "cp.log"
        for _ in range(200):  # gone down: transactions stopped, waiting for mains
            if "waiting for mains" in log.read_text():
                break
            await asyncio.sleep(0.05)
        assert "waiting for mains" in log.read_text()
        assert ctl.proc is not None and ctl.proc.poll() is None, "parked, not exited"
        restored = csms.mark()
        await ctl.bench("power-restore", settle=False)
        boot = await csms.wait_for(
            lambda r: r.action == "BootNotification" and r.message_type == "CALL",
            since=restored,
            timeout=30,
        )

        def status_of(connector: int, statuses: tuple[str, ...]) -> Any:
            return lambda r: (
                r.action == "StatusNotification"
                and r.message_type == "CALL"
                and r.seq > boot.seq
                and r.payload.get("connectorId") == connector
                and r.payload.get("status") in statuses
            )

        await csms.wait_for(status_of(0, ("Available",)), since=restored, timeout=20)
        await csms.wait_for(status_of(1, ("Finishing", "Preparing")), since=restored, timeout=20)
        (tx,) = csms.state("DURABLE-1").transactions.values()
        assert tx.reason == "PowerLoss" and tx.stops == 1, "stopped once, before going down"
        assert await asyncio.to_thread(ctl.terminate) == 0  # the loop serves the CS meanwhile
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
async def test_tc_037_1_offline_start_with_a_valid_id_tag(rig: Rig) -> None:
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


# ---------------------------------------------------------------- helpers of the cases below


async def _remote_session(rig: Rig, tag: str) -> None:
    """OCTT's remote start on a plugged connector: Preparing, RemoteStartTransaction Accepted,
    StartTransaction with the same idTag, Charging."""
    mark = rig.cs.mark()
    await rig.command("plug")
    await rig.wait_status("Preparing", since=mark)
    started = await rig.cs.call(rig.cp_id, call.RemoteStartTransaction(id_tag=tag))
    assert started.status == "Accepted"
    start = await rig.wait_call("StartTransaction", since=mark)
    assert start.payload["idTag"] == tag
    await rig.command("ev-charge")
    await rig.wait_status("Charging", since=mark)


async def _handled(rig: Rig, mark: int) -> None:
    """Wait until the charger has handled everything asked before: a triggered Heartbeat is
    sent after the requests before it were answered (their consequences went first)."""
    beat = await rig.cs.call(rig.cp_id, call.TriggerMessage(requested_message="Heartbeat"))
    assert beat.status == "Accepted"
    await rig.wait_call("Heartbeat", since=mark)


async def _offline(rig: Rig) -> None:
    rig.cs.refuse_connections(True)
    await rig.cs.disconnect(rig.cp_id, abrupt=True)
    for _ in range(400):
        if not rig.running.ocpp.online:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the charger never noticed the lost connection")


async def _queued(rig: Rig, count: int) -> None:
    """Until the transaction outbox holds ``count`` messages (sampled while offline)."""
    store = rig.running.ocpp.transactions.store
    for _ in range(400):
        if len(store) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the outbox holds {len(store)} messages, never {count}")


def _tx_messages(rig: Rig, since: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        (r.action, r.payload)
        for r in rig.cs.messages
        if r.seq >= since
        and r.direction == "rx"
        and r.message_type == "CALL"
        and r.action in ("StartTransaction", "MeterValues", "StopTransaction")
    ]


# ---------------------------------------------------------------- basic, fault


async def test_tc_023_an_invalid_id_tag_starts_nothing(rig: Rig) -> None:
    rig.cs.id_tags["INVALID-23"] = "Invalid"
    for key, value in (("MinimumStatusDuration", "10"), ("LocalPreAuthorize", "true")):
        answer = await rig.cs.call(rig.cp_id, call.ChangeConfiguration(key=key, value=value))
        assert answer.status == "Accepted"
    mark = rig.cs.mark()
    await rig.command("swipe", tag="INVALID-23")
    authorize = await rig.wait_result("Authorize", since=mark)
    assert authorize.payload["idTagInfo"]["status"] == "Invalid"
    await _handled(rig, mark)
    assert not rig.calls("StartTransaction")
    assert rig.running.charger.status()["1"]["status"] == "Available"
    assert not rig.bench.contactor_closed(1)


async def test_tc_041_a_fault_is_reported_refuses_a_start_and_clears(rig: Rig) -> None:
    mark = rig.cs.mark()
    await rig.command("fault", name="meter", state="on")
    # Idle, the meter is read every METER_IDLE_POLL_S (issue 15).
    faulted = await rig.wait_status(
        "Faulted", since=mark, error_code="PowerMeterFailure", timeout=10 + METER_IDLE_POLL_S
    )
    assert faulted.payload["errorCode"] != "NoError"
    refused = await rig.cs.call(
        rig.cp_id, call.RemoteStartTransaction(id_tag="FAULT-41", connector_id=1)
    )
    assert refused.status == "Rejected"
    mark = rig.cs.mark()
    await rig.command("fault", name="meter", state="off")
    available = await rig.wait_status("Available", since=mark)
    assert available.payload["errorCode"] == "NoError"
    assert not rig.calls("StartTransaction")


# ---------------------------------------------------------------- offline


@pytest.mark.keys(MeterValueSampleInterval=1, ClockAlignedDataInterval=0)
async def test_tc_036_connection_loss_during_a_transaction(rig: Rig) -> None:
    await _remote_session(rig, "LOSS-36")
    first = rig.cs.mark()
    await rig.wait_call("MeterValues", since=first)
    await rig.wait_call("MeterValues", since=rig.cs.mark())
    await _offline(rig)
    await _queued(rig, 2)  # sampled while the link is down
    back = rig.cs.mark()
    rig.cs.refuse_connections(False)
    # The queued values arrive first, in order, then sampling goes on one by one.
    await rig.wait_for(
        lambda r: r.action == "MeterValues" and r.message_type == "CALL" and r.seq >= back,
        timeout=15,
    )
    await _queued_delivered(rig)
    after = rig.cs.mark()
    later = await rig.wait_call("MeterValues", since=after)
    contexts = {sv.get("context") for m in later.payload["meterValue"] for sv in m["sampledValue"]}
    assert contexts == {"Sample.Periodic"}
    stamps = [
        m["timestamp"]
        for action, payload in _tx_messages(rig, first)
        if action == "MeterValues"
        for m in payload["meterValue"]
    ]
    assert stamps == sorted(stamps), "every value, queued or not, in chronological order"
    tx_id = next(iter(rig.cs.state(rig.cp_id).transactions))
    mark = rig.cs.mark()
    stopped = await rig.cs.call(rig.cp_id, call.RemoteStopTransaction(transaction_id=tx_id))
    assert stopped.status == "Accepted"
    stop = await rig.wait_call("StopTransaction", since=mark)
    assert stop.payload["reason"] == "Remote" and stop.payload["idTag"] == "LOSS-36"
    await rig.wait_status("Finishing", since=mark)


async def _queued_delivered(rig: Rig) -> None:
    store = rig.running.ocpp.transactions.store
    for _ in range(400):
        if len(store) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(store)} messages still queued")


async def _offline_start(rig: Rig, tag: str) -> None:
    """Offline: plug, present ``tag``, the EV charges (the charger decides alone)."""
    await _offline(rig)
    await rig.command("plug")
    await rig.command("swipe", tag=tag)
    await rig.command("ev-charge")
    await rig.wait_local_status("Charging")


@pytest.mark.keys(
    LocalAuthorizeOffline=True, AllowOfflineTxForUnknownId=True, StopTransactionOnInvalidId=False
)
async def test_tc_037_2_offline_start_of_an_invalid_id_goes_on_suspended(rig: Rig) -> None:
    rig.cs.id_tags["OFFLINE-INVALID"] = "Invalid"
    await _offline_start(rig, "OFFLINE-INVALID")  # unknown offline: allowed
    mark = rig.cs.mark()
    rig.cs.refuse_connections(False)
    start = await rig.wait_result("StartTransaction", since=mark)
    assert start.payload["idTagInfo"]["status"] == "Invalid"
    # StopTransactionOnInvalidId false: the transaction is not stopped; with
    # MaxEnergyOnInvalidId 0 no more energy flows (SuspendedEVSE).
    await rig.wait_status("SuspendedEVSE", since=mark)
    assert not rig.calls("StopTransaction")
    assert not rig.bench.contactor_closed(1)


@pytest.mark.keys(
    LocalAuthorizeOffline=True, AllowOfflineTxForUnknownId=True, StopTransactionOnInvalidId=True
)
async def test_tc_037_3_offline_start_of_an_invalid_id_is_stopped_deauthorized(rig: Rig) -> None:
    rig.cs.id_tags["OFFLINE-INVALID"] = "Invalid"
    await _offline_start(rig, "OFFLINE-INVALID")
    mark = rig.cs.mark()
    rig.cs.refuse_connections(False)
    stop = await rig.wait_call("StopTransaction", since=mark)
    assert stop.payload["reason"] == "DeAuthorized"
    await rig.wait_status("Finishing", since=mark)
    assert not rig.bench.contactor_closed(1)


async def test_tc_038_offline_stop_is_delivered_after_the_reconnect(rig: Rig) -> None:
    await _remote_session(rig, "OFFLINE-STOP")
    await _offline(rig)
    await rig.command("swipe", tag="OFFLINE-STOP")  # the same card stops it, offline
    await rig.wait_local_status("Finishing")
    mark = rig.cs.mark()
    rig.cs.refuse_connections(False)
    stop = await rig.wait_call("StopTransaction", since=mark)
    assert stop.payload["reason"] == "Local" and stop.payload["idTag"] == "OFFLINE-STOP"
    await rig.wait_result("StopTransaction", since=mark)
    (tx,) = rig.cs.state(rig.cp_id).transactions.values()
    assert tx.reason == "Local" and tx.stops == 1


@pytest.mark.keys(AuthorizationCacheEnabled=True)
async def test_tc_039_a_whole_transaction_offline_is_delivered_in_order(rig: Rig) -> None:
    await rig.start_session("OFFLINE-39")  # online first: the card goes into the cache
    await _stop_by_card(rig, "OFFLINE-39")
    await _offline_start(rig, "OFFLINE-39")  # LocalAuthorizeOffline (seed: true)
    await rig.command("swipe", tag="OFFLINE-39")
    await rig.wait_local_status("Finishing")
    await rig.command("unplug")
    await rig.wait_local_status("Available")
    mark = rig.cs.mark()
    rig.cs.refuse_connections(False)
    await rig.wait_result("StopTransaction", since=mark)
    messages = _tx_messages(rig, mark)
    actions = [action for action, _ in messages]
    assert actions[0] == "StartTransaction" and actions[-1] == "StopTransaction"
    assert actions.count("StartTransaction") == 1 and actions.count("StopTransaction") == 1
    start, stop = messages[0][1], messages[-1][1]
    assert start["idTag"] == "OFFLINE-39" and stop["reason"] == "Local"
    assert start["timestamp"] <= stop["timestamp"]
    assert stop["meterStop"] >= start["meterStart"]
    transactions = rig.cs.state(rig.cp_id).transactions
    assert stop["transactionId"] in transactions, "the central system's id, learnt on delivery"
