"""The bundled bench central system, driven by real WebSocket clients on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
import pytest_asyncio

# The client side of these tests is a charge point; the test plays it with the same libraries
# the firmware uses (see firmware/ocpp/).
import websockets
from ocpp.exceptions import NotImplementedError as OcppNotImplementedError
from ocpp.exceptions import SecurityError
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action, ConfigurationStatus
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from centralsystem import (
    BootDecision,
    CentralSystem,
    ChargePointState,
    MessageRecord,
    NotConnectedError,
    match,
)
from centralsystem.console import run_csms

OCPP16 = Subprotocol("ocpp1.6")
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")


class ClientCP(ChargePoint):
    """Minimal charge point: answers ChangeConfiguration, nothing else."""

    def __init__(self, cp_id: str, ws: ClientConnection) -> None:
        super().__init__(cp_id, ws, response_timeout=3)
        self.ws = ws
        self.config: dict[str, str] = {}

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str) -> call_result.ChangeConfiguration:
        self.config[key] = value
        return call_result.ChangeConfiguration(status=ConfigurationStatus.accepted)

    async def boot(self) -> Any:
        return await self.call(
            call.BootNotification(charge_point_model="PiCharger", charge_point_vendor="Example"),
            suppress=False,
        )


@asynccontextmanager
async def connect_cp(cs: CentralSystem, cp_id: str) -> AsyncIterator[ClientCP]:
    async with websockets.connect(f"{cs.url}/{quote(cp_id)}", subprotocols=[OCPP16]) as ws:
        assert ws.subprotocol == OCPP16
        cp = ClientCP(cp_id, ws)
        task = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError, ConnectionClosed):
                await task


async def recv_json(ws: ClientConnection, timeout: float = 2.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


@pytest_asyncio.fixture
async def cs() -> AsyncIterator[CentralSystem]:
    async with CentralSystem(response_timeout=2) as central:
        yield central


# ---------------------------------------------------------------------------------------------
# Boot and heartbeat


@pytest.mark.asyncio
async def test_boot_accepted_by_default_and_heartbeat_time_is_utc_iso(cs: CentralSystem) -> None:
    assert cs.port > 0
    assert cs.url == f"ws://127.0.0.1:{cs.port}/ocpp"
    async with connect_cp(cs, "CP001") as cp:
        state = await cs.wait_connected("CP001")
        boot = await cp.boot()
        assert (boot.status, boot.interval) == ("Accepted", 300)
        assert ISO_UTC.match(boot.current_time)

        heartbeat = await cp.call(call.Heartbeat(), suppress=False)
        assert ISO_UTC.match(heartbeat.current_time), heartbeat.current_time
        sent = datetime.fromisoformat(heartbeat.current_time)
        assert abs(sent - datetime.now(UTC)) < timedelta(seconds=5)

        assert state.boot_count == 1
        assert state.registration_status == "Accepted"
        assert state.boot == {"chargePointModel": "PiCharger", "chargePointVendor": "Example"}
        assert state.last_heartbeat is not None


@pytest.mark.asyncio
async def test_boot_reject_first_then_accept_then_pending(cs: CentralSystem) -> None:
    cs.queue_boot_response("Rejected", 2)
    async with connect_cp(cs, "CP001") as cp:
        first = await cp.boot()
        assert (first.status, first.interval) == ("Rejected", 2)
        assert cs.state("CP001").registration_status == "Rejected"
        second = await cp.boot()
        assert second.status == "Accepted"

        cs.set_boot_policy("Pending", 7)
        third = await cp.boot()
        assert (third.status, third.interval) == ("Pending", 7)
        assert cs.state("CP001").boot_count == 3


@pytest.mark.asyncio
async def test_boot_policy_callable_and_queue_per_charge_point(cs: CentralSystem) -> None:
    cs.queue_boot_response("Rejected", 5, cp_id="OTHER")
    async with connect_cp(cs, "CP001") as cp:
        assert (await cp.boot()).status == "Accepted"  # the queued answer is for OTHER only

        def policy(state: ChargePointState, payload: Any) -> BootDecision:
            return BootDecision("Pending" if state.boot_count < 1 else "Accepted", 3)

        cs.boot_policy = policy
        assert (await cp.boot()).status == "Accepted"  # boot_count is already 1


@pytest.mark.asyncio
async def test_require_accepted_boot_answers_security_error(cs: CentralSystem) -> None:
    cs.require_accepted_boot = True
    cs.queue_boot_response("Rejected", 1)
    async with connect_cp(cs, "CP001") as cp:
        with pytest.raises(SecurityError):
            await cp.call(call.Heartbeat(), suppress=False)
        assert (await cp.boot()).status == "Rejected"
        with pytest.raises(SecurityError):
            await cp.call(call.Heartbeat(), suppress=False)
        assert (await cp.boot()).status == "Accepted"
        await cp.call(call.Heartbeat(), suppress=False)


# ---------------------------------------------------------------------------------------------
# Authorization and transactions


@pytest.mark.asyncio
async def test_authorize_policy(cs: CentralSystem) -> None:
    cs.id_tags.update({"BLOCKED1": "Blocked", "GOOD": "Accepted", "OLD": "Expired"})
    async with connect_cp(cs, "CP001") as cp:
        await cp.boot()

        async def status(tag: str) -> str:
            result = await cp.call(call.Authorize(id_tag=tag), suppress=False)
            return str(result.id_tag_info["status"])

        assert await status("ANYTHING") == "Accepted"
        assert await status("BLOCKED1") == "Blocked"
        assert await status("OLD") == "Expired"
        cs.accept_unknown = False
        assert await status("ANYTHING") == "Invalid"
        assert await status("GOOD") == "Accepted"


@pytest.mark.asyncio
async def test_transactions_ids_and_state(cs: CentralSystem) -> None:
    cs.id_tags["BAD"] = "Blocked"
    t0 = "2025-01-01T12:00:00Z"
    sample = {"timestamp": "2025-01-01T12:00:10Z", "sampledValue": [{"value": "1100"}]}
    async with connect_cp(cs, "CP001") as cp1, connect_cp(cs, "CP002") as cp2:
        await cp1.boot()
        await cp2.boot()
        await cp1.call(
            call.StatusNotification(connector_id=1, error_code="NoError", status="Preparing"),
            suppress=False,
        )
        start1 = await cp1.call(
            call.StartTransaction(connector_id=1, id_tag="TAG1", meter_start=1000, timestamp=t0),
            suppress=False,
        )
        start2 = await cp2.call(
            call.StartTransaction(connector_id=2, id_tag="BAD", meter_start=5, timestamp=t0),
            suppress=False,
        )
        assert (start1.transaction_id, start2.transaction_id) == (1, 2)
        assert start1.id_tag_info["status"] == "Accepted"
        assert start2.id_tag_info["status"] == "Blocked"  # still gets an id to stop with

        await cp1.call(
            call.MeterValues(connector_id=1, transaction_id=1, meter_value=[sample]),
            suppress=False,
        )
        await cp1.call(
            call.StatusNotification(connector_id=1, error_code="NoError", status="Charging"),
            suppress=False,
        )
        stop = await cp1.call(
            call.StopTransaction(
                meter_stop=2500,
                timestamp="2025-01-01T12:30:00Z",
                transaction_id=1,
                reason="Local",
                id_tag="TAG1",
                transaction_data=[
                    {"timestamp": "2025-01-01T12:30:00Z", "sampledValue": [{"value": "2500"}]}
                ],
            ),
            suppress=False,
        )
        assert stop.id_tag_info["status"] == "Accepted"
        # Errata 3.18: a stop for a transaction the CSMS never saw is still answered.
        orphan = await cp2.call(
            call.StopTransaction(meter_stop=9, timestamp=t0, transaction_id=-1), suppress=False
        )
        assert orphan.id_tag_info is None

    state1 = cs.state("CP001")
    assert state1.connector_status == {1: "Charging"}
    assert state1.status_details[1]["errorCode"] == "NoError"
    tx = state1.transactions[1]
    assert (tx.connector_id, tx.id_tag, tx.meter_start, tx.start_timestamp) == (1, "TAG1", 1000, t0)
    assert (tx.meter_stop, tx.reason, tx.stop_timestamp) == (2500, "Local", "2025-01-01T12:30:00Z")
    assert not tx.active and tx.energy_wh == 1500
    assert [mv["sampledValue"][0]["value"] for mv in tx.meter_values] == ["1100", "2500"]
    assert state1.meter_values == [{"connectorId": 1, "transactionId": 1, "meterValue": [sample]}]

    state2 = cs.state("CP002")
    assert state2.transactions[2].active and state2.transactions[2].id_tag_status == "Blocked"
    assert state2.transactions[-1].meter_stop == 9 and state2.transactions[-1].id_tag is None
    assert set(cs.transactions) == {1, 2, -1}


@pytest.mark.asyncio
async def test_data_transfer_unknown_vendor(cs: CentralSystem) -> None:
    async with connect_cp(cs, "CP001") as cp:
        result = await cp.call(call.DataTransfer(vendor_id="acme", data="x"), suppress=False)
        assert result.status == "UnknownVendorId"
        assert cs.state("CP001").data_transfers == [{"vendorId": "acme", "data": "x"}]


# ---------------------------------------------------------------------------------------------
# Message log


@pytest.mark.asyncio
async def test_message_log_records_both_directions(cs: CentralSystem) -> None:
    seen: list[MessageRecord] = []
    cs.on_message = seen.append
    async with connect_cp(cs, "CP001") as cp:
        await cp.boot()
        req = await cs.wait_for(match(direction="rx", action="BootNotification"))
        res = await cs.wait_for(match(direction="tx", action="BootNotification"))
    assert (req.cp_id, req.message_type) == ("CP001", "CALL")
    assert req.payload == {"chargePointModel": "PiCharger", "chargePointVendor": "Example"}
    assert res.message_type == "CALLRESULT" and res.unique_id == req.unique_id
    assert res.payload["status"] == "Accepted" and res.seq > req.seq
    assert json.loads(res.raw)[2] == res.payload
    assert req.time.tzinfo is not None and res.error is None
    assert seen == cs.messages == [req, res]


@pytest.mark.asyncio
async def test_wait_for_future_record_since_mark_and_timeout_message(cs: CentralSystem) -> None:
    async with connect_cp(cs, "CP001") as cp:
        await cp.boot()
        mark = cs.mark()
        waiter = asyncio.create_task(cs.wait_for(match(action="BootNotification"), since=mark))
        await asyncio.sleep(0)
        assert not waiter.done()  # the earlier boot is before the mark
        await cp.boot()
        assert (await waiter).seq >= mark

        with pytest.raises(TimeoutError) as excinfo:
            await cs.wait_for(match(action="Nope"), timeout=0.05)
        text = str(excinfo.value)
        assert "match(action='Nope')" in text and "CALL BootNotification" in text


@pytest.mark.asyncio
async def test_malformed_frames_are_logged_answered_and_survived(cs: CentralSystem) -> None:
    url = f"{cs.url}/RAW1"
    async with websockets.connect(url, subprotocols=[OCPP16]) as ws:
        await ws.send('[2,"x"')  # not JSON: nothing to answer to, only logged
        junk = await cs.wait_for(match(direction="rx", message_type="MALFORMED"))
        assert junk.raw == '[2,"x"' and junk.error and "JSON" in junk.error

        await ws.send('[2,"short","Heartbeat"]')
        short = await recv_json(ws)
        assert short[:3] == [4, "short", "ProtocolError"] and isinstance(short[4], dict)

        await ws.send(json.dumps([2, "bad1", "BootNotification", {"chargePointVendor": 5}]))
        reply = await recv_json(ws)
        assert reply[:3] == [4, "bad1", "TypeConstraintViolation"]

        await ws.send(json.dumps([2, "bad2", "Authorize", {}]))
        assert (await recv_json(ws))[:3] == [4, "bad2", "ProtocolError"]

        await ws.send(json.dumps([2, "bad3", ["Heartbeat"], {}]))
        assert (await recv_json(ws))[:3] == [4, "bad3", "ProtocolError"]

        await ws.send(json.dumps([2, "bad4", "FooBar", {}]))
        assert (await recv_json(ws))[:3] == [4, "bad4", "NotSupported"]

        # A 1.6 action the CSMS has no handler for (a central system's own request, sent to
        # it) gets the library's NotImplemented.
        await ws.send(json.dumps([2, "ni", "Reset", {"type": "Soft"}]))
        assert (await recv_json(ws))[:3] == [4, "ni", "NotImplemented"]

        # A response to nothing is logged, never answered.
        await ws.send(json.dumps([3, "nobody-asked", {}]))
        await ws.send(json.dumps([2, "ok", "Heartbeat", {}]))
        ok = await recv_json(ws)
        assert ok[:2] == [3, "ok"] and ISO_UTC.match(ok[2]["currentTime"])

    log = [r for r in cs.messages if r.cp_id == "RAW1"]
    bad1_in = next(r for r in log if r.unique_id == "bad1" and r.direction == "rx")
    assert bad1_in.message_type == "CALL" and bad1_in.payload == {"chargePointVendor": 5}
    bad1_out = next(r for r in log if r.unique_id == "bad1" and r.direction == "tx")
    assert bad1_out.message_type == "CALLERROR" and bad1_out.action == "BootNotification"
    assert bad1_out.error_code == "TypeConstraintViolation"
    short_in = next(r for r in log if r.unique_id == "short" and r.direction == "rx")
    assert short_in.message_type == "MALFORMED" and short_in.action == "Heartbeat"
    stray = next(r for r in log if r.unique_id == "nobody-asked")
    assert stray.message_type == "CALLRESULT" and stray.action is None
    assert sum(r.direction == "rx" for r in log) == 9

    # Still serving the next charge point.
    async with connect_cp(cs, "CP002") as cp:
        assert (await cp.boot()).status == "Accepted"


# ---------------------------------------------------------------------------------------------
# Handshake, CSMS-initiated calls, connection control


@pytest.mark.asyncio
async def test_handshake_requires_ocpp16_subprotocol(cs: CentralSystem) -> None:
    for offered in (None, [Subprotocol("ocpp2.0.1")]):
        with pytest.raises(InvalidStatus) as excinfo:
            async with websockets.connect(f"{cs.url}/CP001", subprotocols=offered):
                pass
        assert excinfo.value.response.status_code == 400
    # Offering several is fine as long as ocpp1.6 is among them.
    both = [Subprotocol("ocpp2.0.1"), OCPP16]
    async with websockets.connect(f"{cs.url}/CP001", subprotocols=both) as ws:
        assert ws.subprotocol == OCPP16
        await cs.wait_connected("CP001")
    with pytest.raises(InvalidStatus) as excinfo:
        async with websockets.connect(f"{cs.url}/", subprotocols=[OCPP16]):
            pass
    assert excinfo.value.response.status_code == 404
    assert cs.messages == []


@pytest.mark.asyncio
async def test_identity_is_last_path_segment_percent_decoded(cs: CentralSystem) -> None:
    async with websockets.connect(
        f"ws://127.0.0.1:{cs.port}/any/prefix/RDAM%20123", subprotocols=[OCPP16]
    ):
        await cs.wait_connected("RDAM 123")
        assert cs.connected_ids == ["RDAM 123"]


@pytest.mark.asyncio
async def test_call_change_configuration_and_errors(cs: CentralSystem) -> None:
    async with connect_cp(cs, "CP001") as cp:
        await cp.boot()
        mark = cs.mark()
        result = await cs.call(
            "CP001", call.ChangeConfiguration(key="HeartbeatInterval", value="60")
        )
        assert result == call_result.ChangeConfiguration(status="Accepted")
        assert cp.config == {"HeartbeatInterval": "60"}
        out = await cs.wait_for(match(direction="tx", message_type="CALL"), since=mark)
        back = await cs.wait_for(match(direction="rx", message_type="CALLRESULT"), since=mark)
        assert out.action == back.action == "ChangeConfiguration"
        assert out.payload == {"key": "HeartbeatInterval", "value": "60"}
        assert back.payload == {"status": "Accepted"} and back.unique_id == out.unique_id

        with pytest.raises(OcppNotImplementedError):
            await cs.call("CP001", call.Reset(type="Soft"))
    with pytest.raises(NotConnectedError):
        await cs.call("CP001", call.Reset(type="Soft"))


@pytest.mark.asyncio
async def test_call_fails_fast_when_charge_point_drops(cs: CentralSystem) -> None:
    async with websockets.connect(f"{cs.url}/SILENT", subprotocols=[OCPP16]):
        await cs.wait_connected("SILENT")
        pending = asyncio.create_task(cs.call("SILENT", call.Reset(type="Hard")))
        await cs.wait_for(match(direction="tx", action="Reset"))
        await cs.disconnect("SILENT", abrupt=True)
        with pytest.raises(NotConnectedError):
            await asyncio.wait_for(pending, 1)


@pytest.mark.asyncio
async def test_disconnect_and_refuse_connections(cs: CentralSystem) -> None:
    async with connect_cp(cs, "CP001") as cp:
        await cp.boot()
        cs.refuse_connections(True)
        await cs.disconnect("CP001", code=1001, reason="bench")
        assert not cs.connected("CP001")
        await asyncio.wait_for(cp.ws.wait_closed(), 2)
        assert (cp.ws.close_code, cp.ws.close_reason) == (1001, "bench")
    assert cs.state("CP001").connected is False

    with pytest.raises(InvalidStatus) as excinfo:
        async with connect_cp(cs, "CP001"):
            pass
    assert excinfo.value.response.status_code == 503
    assert excinfo.value.response.headers["Retry-After"] == "1"

    cs.refuse_connections(False)
    async with connect_cp(cs, "CP001") as cp:
        state = await cs.wait_connected("CP001")
        await cp.call(call.Heartbeat(), suppress=False)
        assert state.connect_count == 2 and state.boot_count == 1  # state kept across reconnects
    await cs.wait_disconnected("CP001")
    with pytest.raises(NotConnectedError):
        await cs.disconnect("CP001")


@pytest.mark.asyncio
async def test_new_connection_replaces_old_one(cs: CentralSystem) -> None:
    async with connect_cp(cs, "CP001") as old:
        await cs.wait_connected("CP001")
        async with connect_cp(cs, "CP001") as new:
            await asyncio.wait_for(old.ws.wait_closed(), 2)
            assert old.ws.close_reason == "replaced by a new connection"
            assert (await new.boot()).status == "Accepted"
            assert cs.connected("CP001") and cs.state("CP001").connect_count == 2


@pytest.mark.asyncio
async def test_known_ids_refuses_unknown_identity_with_404() -> None:
    async with CentralSystem(known_ids={"CP001"}) as cs:
        with pytest.raises(InvalidStatus) as excinfo:
            async with connect_cp(cs, "INTRUDER"):
                pass
        assert excinfo.value.response.status_code == 404
        async with connect_cp(cs, "CP001") as cp:
            await cp.boot()


@pytest.mark.asyncio
async def test_stop_closes_connected_clients() -> None:
    cs = CentralSystem()
    await cs.start()
    async with connect_cp(cs, "CP001") as cp:
        await cp.boot()
        await asyncio.wait_for(cs.stop(), 3)
        await asyncio.wait_for(cp.ws.wait_closed(), 2)
        assert cp.ws.close_code == 1001  # going away
    await cs.stop()  # idempotent


# ---------------------------------------------------------------------------------------------
# run_csms


@pytest.mark.asyncio
async def test_run_csms_prints_the_exchange() -> None:
    lines: list[str] = []
    printed = asyncio.Event()

    def collect(line: str) -> None:
        lines.append(line)
        printed.set()

    task = asyncio.create_task(run_csms("127.0.0.1", 0, print_fn=collect))
    try:
        await asyncio.wait_for(printed.wait(), 2)
        found = re.search(r"ws://127\.0\.0\.1:(\d+)/ocpp", lines[0])
        assert found, lines
        async with websockets.connect(
            f"ws://127.0.0.1:{found.group(1)}/ocpp/CP001", subprotocols=[OCPP16]
        ) as ws:
            cp = ClientCP("CP001", ws)
            runner = asyncio.create_task(cp.start())
            await cp.boot()
            runner.cancel()
            with suppress(asyncio.CancelledError):
                await runner
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
    text = "\n".join(lines)
    assert re.search(r"\d\d:\d\d:\d\d\.\d{3}  CP001 connected", text), text
    assert re.search(r"CP001 → CALL BootNotification \{\"chargePointModel\": \"PiCharger\"", text)
    assert re.search(r"CP001 ← CALLRESULT BootNotification \{.*\"status\": \"Accepted\"", text)
    assert "CP001 disconnected" in text
