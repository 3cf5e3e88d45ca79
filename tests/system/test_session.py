"""The OCPP session: registration, subprotocol, reconnects and the transaction outbox, against
real WebSocket servers on 127.0.0.1 (cold boot TC_001/TC_002: tests/system/octt/
test_01_cold_boot.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import websockets
from ocpp.v16 import call

from centralsystem import CentralSystem
from firmware import app
from firmware.config_keys import K
from tests.conftest import Rig, bench_settings, start_fast

pytestmark = pytest.mark.asyncio


async def test_refuses_a_server_that_does_not_agree_on_ocpp16(tmp_path: Path) -> None:
    frames: list[str] = []
    connections = 0

    async def handler(ws: websockets.ServerConnection) -> None:
        nonlocal connections
        connections += 1
        async for frame in ws:
            frames.append(str(frame))

    # A server with no subprotocol support completes the handshake without one.
    async with websockets.serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        running = await start_fast(bench_settings(f"ws://127.0.0.1:{port}/ocpp", tmp_path))
        try:
            for _ in range(100):
                if connections >= 2:
                    break
                await asyncio.sleep(0.05)
        finally:
            await app.shutdown(running)
    assert connections >= 2, "it should keep retrying with backoff"
    assert frames == [], "no OCPP message may go to a server that did not agree on ocpp1.6"


async def test_no_answer_to_the_central_system_while_rejected(
    csms: CentralSystem, tmp_path: Path
) -> None:
    csms.queue_boot_response("Rejected", 3)
    running = await start_fast(bench_settings(csms.url, tmp_path))
    try:
        await csms.wait_for(
            lambda r: r.action == "BootNotification" and r.message_type == "CALLRESULT"
        )
        with pytest.raises(TimeoutError):
            await csms.call(
                running.settings.charge_point_id,
                call.GetConfiguration(key=["HeartbeatInterval"]),
                timeout=1.0,
            )
        await Rig(csms, running, tmp_path).wait_status("Available", timeout=10)
        conf = await csms.call(
            running.settings.charge_point_id, call.GetConfiguration(key=["HeartbeatInterval"])
        )
        assert conf.configuration_key, "answered again once Accepted"
    finally:
        await app.shutdown(running)


async def test_heartbeat_follows_the_boot_interval(csms: CentralSystem, tmp_path: Path) -> None:
    csms.set_boot_policy("Accepted", 1)
    running = await start_fast(bench_settings(csms.url, tmp_path))
    try:
        await csms.wait_for(
            lambda r: r.action == "Heartbeat" and r.message_type == "CALL", timeout=5
        )
        assert running.keys[K.HeartbeatInterval] == 1
    finally:
        await app.shutdown(running)


async def test_reconnect_resends_status_without_a_new_boot(rig: Rig) -> None:
    await rig.cs.disconnect(rig.cp_id, abrupt=True)
    mark = rig.cs.mark()
    await rig.cs.wait_connected(rig.cp_id, timeout=5)
    await rig.wait_status("Available", since=mark, timeout=5)
    assert len(rig.calls("BootNotification")) == 1


async def test_offline_transaction_messages_are_queued_and_sent_in_order(rig: Rig) -> None:
    await rig.start_session("TAG-OFF")
    rig.cs.refuse_connections(True)
    await rig.cs.disconnect(rig.cp_id, abrupt=True)
    await rig.command("unplug")  # StopTransaction while offline
    await asyncio.sleep(0.5)
    assert not rig.calls("StopTransaction")
    assert rig.running.ocpp.transactions.pending, "the stop must wait in the outbox"
    rig.cs.refuse_connections(False)
    stop = await rig.wait_call("StopTransaction", timeout=10)
    start = rig.calls("StartTransaction")[0]
    tx_id = next(iter(rig.cs.state(rig.cp_id).transactions))
    assert stop.payload["transactionId"] == tx_id
    assert stop.payload["reason"] == "EVDisconnected"
    assert stop.seq > start.seq


async def test_transaction_started_offline_gets_its_id_when_online(
    csms: CentralSystem, tmp_path: Path
) -> None:
    running = await start_fast(bench_settings(csms.url, tmp_path, AllowOfflineTxForUnknownId=True))
    rig = Rig(csms, running, tmp_path)
    try:
        await rig.wait_status("Available")
        csms.refuse_connections(True)
        await csms.disconnect(rig.cp_id, abrupt=True)
        await rig.command("plug")
        await rig.command("swipe", tag="OFFLINE-1")
        await rig.command("ev-charge")
        await rig.wait_local_status("Charging")
        await asyncio.sleep(1.0)
        await rig.command("unplug")
        await rig.wait_local_status("Available")
        assert not rig.calls("StartTransaction")
        csms.refuse_connections(False)
        await rig.wait_result("StopTransaction", timeout=10)
        stop = rig.calls("StopTransaction")[0]
        start = rig.calls("StartTransaction")[0]
        assert start.payload["idTag"] == "OFFLINE-1"
        tx = csms.state(rig.cp_id).transactions[stop.payload["transactionId"]]
        assert tx.id_tag == "OFFLINE-1" and tx.meter_stop is not None
        assert tx.meter_stop > tx.meter_start
    finally:
        await app.shutdown(running)


async def test_get_configuration_returns_canonical_names_and_unknown_keys(rig: Rig) -> None:
    conf = await rig.cs.call(
        rig.cp_id,
        call.GetConfiguration(key=["heartbeatinterval", "NoSuchKey", "SupportedFeatureProfiles"]),
    )
    names = {k["key"]: k for k in conf.configuration_key}
    assert set(names) == {"HeartbeatInterval", "SupportedFeatureProfiles"}
    assert names["SupportedFeatureProfiles"]["readonly"] is True
    assert conf.unknown_key == ["NoSuchKey"]
    every = await rig.cs.call(rig.cp_id, call.GetConfiguration())
    assert {"ConnectionTimeOut", "MeterValueSampleInterval", "NumberOfConnectors"} <= {
        k["key"] for k in every.configuration_key
    }
    assert all(isinstance(k["value"], str) for k in every.configuration_key)


async def test_data_transfer_unknown_vendor(rig: Rig) -> None:
    result = await rig.cs.call(rig.cp_id, call.DataTransfer(vendor_id="com.example"))
    assert result.status == "UnknownVendorId"
