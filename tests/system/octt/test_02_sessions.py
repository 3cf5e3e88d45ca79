"""OCTT 1.6 charge point test cases, chapter "Start/Stop session".

- TC_003_CS Regular Charging Session - Plugin First.
- TC_004_1_CS Regular Charging Session - Identification First.
- TC_004_2_CS Regular Charging Session - Identification First - ConnectionTimeOut.
- TC_068_CS Stop transaction - IdTag in StopTransaction matches IdTag in StartTransaction.
- TC_069_CS Stop transaction - ParentIdTag in StopTransaction matches ParentIdTag in
  StartTransaction.
- TC_005_1_CS, TC_005_2_CS, TC_005_3_CS EV Side Disconnected, with
  StopTransactionOnEVSideDisconnect and UnlockConnectorOnEVSideDisconnect true/true,
  true/false and false/false (each case sets the keys over OCPP, as OCTT does).
"""

from __future__ import annotations

import asyncio

import pytest
from ocpp.v16 import call

from tests.conftest import Rig

pytestmark = pytest.mark.asyncio


def contactor_history(rig: Rig) -> list[float]:
    pin = rig.bench.factory.pin(rig.running.settings.hardware.connectors[0].contactor.pin)
    return [s.state for s in pin.states]


async def test_tc_003_plug_in_first_session_delivers_energy(rig: Rig) -> None:
    await rig.start_session("TAG-3")
    # Contactor closed only now, after the lock was confirmed and the EV asked for power.
    assert rig.bench.contactor_closed(1)
    assert rig.bench.status()["1"]["lock"] == "locked"
    await rig.wait_call("MeterValues", timeout=15)
    mark = rig.cs.mark()
    await rig.command("unplug")
    stop = await rig.wait_call("StopTransaction", since=mark)
    await rig.wait_status("Available", since=mark)
    assert stop.payload["reason"] == "EVDisconnected"
    assert stop.payload["idTag"] == "TAG-3"
    tx = rig.cs.state(rig.cp_id).transactions[stop.payload["transactionId"]]
    assert tx.meter_stop is not None and tx.meter_start is not None
    assert tx.meter_stop > tx.meter_start
    # The contactor opened at once on unplug and stayed open.
    assert not rig.bench.contactor_closed(1)
    assert contactor_history(rig)[-1] == 0.0
    assert rig.bench.status()["1"]["lock"] == "unlocked"
    values = [int(sv["value"]) for mv in tx.meter_values for sv in mv["sampledValue"]]
    assert values == sorted(values), "energy register must never go backwards"


async def test_tc_004_1_identification_first(rig: Rig) -> None:
    mark = rig.cs.mark()
    await rig.command("swipe", tag="TAG-4")
    await rig.wait_call("Authorize", since=mark)
    await rig.wait_status("Preparing", since=mark)
    await rig.command("plug")
    await rig.wait_call("StartTransaction", since=mark)
    await rig.command("ev-charge")
    await rig.wait_status("Charging", since=mark)


@pytest.mark.keys(ConnectionTimeOut=1)
async def test_tc_004_2_connection_timeout_returns_to_available(rig: Rig) -> None:
    mark = rig.cs.mark()
    await rig.command("swipe", tag="TAG-5")
    await rig.wait_status("Preparing", since=mark)
    await rig.wait_status("Available", since=mark, timeout=5)
    assert not rig.calls("StartTransaction")


async def test_tc_068_same_card_stops_locally(rig: Rig) -> None:
    await rig.start_session("TAG-6")
    mark = rig.cs.mark()
    await rig.command("swipe", tag="TAG-6")
    stop = await rig.wait_call("StopTransaction", since=mark)
    assert stop.payload["reason"] == "Local"
    await rig.wait_status("Finishing", since=mark)
    assert not rig.bench.contactor_closed(1)


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


async def _configure(rig: Rig, **keys: str) -> None:
    for key, value in keys.items():
        answer = await rig.cs.call(rig.cp_id, call.ChangeConfiguration(key=key, value=value))
        assert answer.status == "Accepted", key


async def _remote_session(rig: Rig, tag: str) -> dict[str, object]:
    """OCTT's remote start (steps 9-13): RemoteStartTransaction on a plugged connector,
    Authorize (AuthorizeRemoteTxRequests is true on the bench), Preparing, StartTransaction
    with the same idTag, Charging."""
    mark = rig.cs.mark()
    await rig.command("plug")
    await rig.wait_status("Preparing", since=mark)
    started = await rig.cs.call(rig.cp_id, call.RemoteStartTransaction(id_tag=tag))
    assert started.status == "Accepted"
    authorize = await rig.wait_call("Authorize", since=mark)
    assert authorize.payload["idTag"] == tag
    start = await rig.wait_call("StartTransaction", since=mark)
    assert start.payload["idTag"] == tag
    await rig.command("ev-charge")
    await rig.wait_status("Charging", since=mark)
    return start.payload


def _statuses_since(rig: Rig, mark: int) -> list[str]:
    return [
        r.payload["status"]
        for r in rig.calls("StatusNotification")
        if r.seq >= mark and r.payload["connectorId"] == 1
    ]


async def test_tc_005_1_ev_side_disconnected_stops_and_unlocks(rig: Rig) -> None:
    await _configure(
        rig,
        MinimumStatusDuration="0",
        StopTransactionOnEVSideDisconnect="true",
        UnlockConnectorOnEVSideDisconnect="true",
    )
    await _remote_session(rig, "TAG-5-1")
    mark = rig.cs.mark()
    await rig.command("unplug")
    stop = await rig.wait_call("StopTransaction", since=mark)
    assert stop.payload["reason"] == "EVDisconnected" and stop.payload["idTag"] == "TAG-5-1"
    await rig.wait_status("Available", since=mark)
    assert rig.bench.status()["1"]["lock"] == "unlocked"
    assert _statuses_since(rig, mark) in (["Finishing", "Available"], ["Available"])


async def test_tc_005_2_ev_side_disconnected_stops_and_keeps_the_cable_locked(rig: Rig) -> None:
    await _configure(
        rig,
        MinimumStatusDuration="0",
        StopTransactionOnEVSideDisconnect="true",
        UnlockConnectorOnEVSideDisconnect="false",
    )
    await _remote_session(rig, "TAG-5-2")
    mark = rig.cs.mark()
    await rig.command("unplug")
    stop = await rig.wait_call("StopTransaction", since=mark)
    assert stop.payload["reason"] == "EVDisconnected" and stop.payload["idTag"] == "TAG-5-2"
    await rig.wait_status("Finishing", since=mark)  # OCTT: Finishing or Available
    assert rig.bench.status()["1"]["lock"] == "locked"
    # Step 17: the central system releases the cable.
    unlocked = await rig.cs.call(rig.cp_id, call.UnlockConnector(connector_id=1))
    assert unlocked.status == "Unlocked"
    await rig.wait_status("Available", since=mark)
    assert rig.bench.status()["1"]["lock"] == "unlocked"


async def test_tc_005_3_ev_side_disconnected_suspends_until_a_remote_stop(rig: Rig) -> None:
    await _configure(
        rig,
        MinimumStatusDuration="0",
        StopTransactionOnEVSideDisconnect="false",
        UnlockConnectorOnEVSideDisconnect="false",
    )
    start = await _remote_session(rig, "TAG-5-3")
    mark = rig.cs.mark()
    await rig.command("unplug")
    suspended = await rig.wait_for(
        lambda r: (
            r.action == "StatusNotification"
            and r.message_type == "CALL"
            and r.payload.get("connectorId") == 1
            and r.payload.get("status") in ("SuspendedEV", "SuspendedEVSE")
        ),
        since=mark,
    )
    assert not any(r.seq >= mark for r in rig.calls("StopTransaction")), "the transaction stays"
    assert not rig.bench.contactor_closed(1)
    (tx_id,) = [t for t in rig.cs.state(rig.cp_id).transactions]
    mark = rig.cs.mark()
    stopped = await rig.cs.call(rig.cp_id, call.RemoteStopTransaction(transaction_id=tx_id))
    assert stopped.status == "Accepted"
    stop = await rig.wait_call("StopTransaction", since=mark)
    assert stop.payload["reason"] == "Remote" and stop.payload["idTag"] == start["idTag"]
    await rig.wait_status("Finishing", since=mark)  # the cable is still locked in the socket
    await rig.wait_status("Available", since=mark)  # released: the next user may come
    assert rig.bench.status()["1"]["lock"] == "unlocked"
    assert suspended.seq < stop.seq
