"""OCTT 1.6 charge point test cases, chapter "Reservation" (OCPP 1.6 §3.11, §5.3, §5.13), on the
simulated bench against the bundled central system.

- TC_046_1_CS Reservation of a Connector - Local start transaction.
- TC_046_2_CS Reservation of a Connector - Remote start transaction.
- TC_047_CS Reservation of a Connector - Expire.
- TC_048_1_CS / TC_048_2_CS / TC_048_3_CS Reservation of a Connector - Faulted / Occupied /
  Unavailable (TC_048_4_CS, the charger without the profile, is with the profiles switch).
- TC_049_CS Reservation of a Charge Point - Transaction (connector 0, two connectors).
- TC_050_1_CS .. TC_050_4_CS Reservation of a Charge Point - Faulted / Occupied / Unavailable /
  Rejected.
- TC_051_CS Cancel Reservation, TC_052_CS Cancel Reservation - Rejected.
- TC_053_CS Use a reserved Connector with parentIdTag.
- Also: a plug-in and another card on a reserved connector start nothing; the same
  reservationId replaces; a reservation survives a power cut (a real daemon, SIGKILL) and
  expires after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from ocpp.v16 import call

from centralsystem import CentralSystem, MessageRecord
from firmware import app, clock
from tests.conftest import Rig, start_fast
from tests.system.helpers import Controller
from tests.system.test_two_connectors import two_connector_settings

pytestmark = pytest.mark.asyncio


def expiry(seconds: float = 3600) -> str:
    return clock.to_ocpp(datetime.now(UTC) + timedelta(seconds=seconds))


async def reserve(
    rig: Rig,
    connector_id: int,
    id_tag: str,
    reservation_id: int,
    *,
    seconds: float = 3600,
    parent_id_tag: str | None = None,
) -> str:
    result = await rig.cs.call(
        rig.cp_id,
        call.ReserveNow(
            connector_id=connector_id,
            expiry_date=expiry(seconds),
            id_tag=id_tag,
            reservation_id=reservation_id,
            parent_id_tag=parent_id_tag,
        ),
    )
    return str(result.status)


async def cancel(rig: Rig, reservation_id: int) -> str:
    result = await rig.cs.call(rig.cp_id, call.CancelReservation(reservation_id=reservation_id))
    return str(result.status)


async def card_refused(rig: Rig, connector: int = 1) -> None:
    """The card just presented was answered and refused: the connector waits for no
    authorization any more (a card presented meanwhile would be ignored) and is Reserved."""
    c = rig.running.charger.connectors[connector]
    assert await c.wait_until(lambda: c.state.pending_id_tag is None, timeout=10)
    await rig.wait_local_status("Reserved", connector=connector)


@pytest_asyncio.fixture
async def rig2(csms: CentralSystem, tmp_path: Path) -> AsyncIterator[Rig]:
    """The bench with two connectors (connector-0 cases)."""
    running = await start_fast(two_connector_settings(csms.url, tmp_path))
    rig = Rig(csms, running, tmp_path)
    try:
        for connector in (0, 1, 2):
            await rig.wait_status("Available", connector=connector)
        yield rig
    finally:
        await app.shutdown(running)


# ------------------------------------------------------------------ a connector


async def test_tc_046_1_reserved_connector_local_start(rig: Rig) -> None:
    mark = rig.cs.mark()
    assert await reserve(rig, 1, "RES-1", 11) == "Accepted"
    await rig.wait_status("Reserved", since=mark)
    await rig.command("swipe", tag="RES-1")
    await rig.wait_result("Authorize", since=mark)
    await rig.wait_status("Preparing", since=mark)
    await rig.command("plug")
    start = await rig.wait_call("StartTransaction", since=mark)
    assert start.payload["idTag"] == "RES-1"
    assert start.payload["reservationId"] == 11
    await rig.command("ev-charge")
    await rig.wait_status("Charging", since=mark)
    # The transaction ended the reservation: nothing left to cancel.
    assert await cancel(rig, 11) == "Rejected"


async def test_tc_046_2_reserved_connector_remote_start(rig: Rig) -> None:
    mark = rig.cs.mark()
    assert await reserve(rig, 1, "RES-2", 12) == "Accepted"
    await rig.wait_status("Reserved", since=mark)
    result = await rig.cs.call(
        rig.cp_id, call.RemoteStartTransaction(id_tag="RES-2", connector_id=1)
    )
    assert result.status == "Accepted"
    await rig.wait_status("Preparing", since=mark)
    await rig.command("plug")
    start = await rig.wait_call("StartTransaction", since=mark)
    assert start.payload["reservationId"] == 12


async def test_a_remote_start_for_another_id_tag_on_a_reserved_connector_is_rejected(
    rig: Rig,
) -> None:
    assert await reserve(rig, 1, "RES-3", 13) == "Accepted"
    await rig.wait_status("Reserved")
    result = await rig.cs.call(
        rig.cp_id, call.RemoteStartTransaction(id_tag="SOMEONE", connector_id=1)
    )
    assert result.status == "Rejected"


async def test_tc_047_reservation_expires(rig: Rig) -> None:
    mark = rig.cs.mark()
    assert await reserve(rig, 1, "RES-4", 14, seconds=2) == "Accepted"
    await rig.wait_status("Reserved", since=mark)
    reserved = rig.cs.mark()
    await rig.wait_status("Available", since=reserved, timeout=10)
    assert await cancel(rig, 14) == "Rejected"


async def test_tc_048_1_faulted_connector(rig: Rig) -> None:
    mark = rig.cs.mark()
    await rig.command("fault", name="rcd", state="on")
    await rig.wait_status("Faulted", since=mark)
    assert await reserve(rig, 1, "RES-5", 15) == "Faulted"
    await rig.command("fault", name="rcd", state="off")


async def test_tc_048_2_occupied_connector(rig: Rig) -> None:
    assert await reserve(rig, 1, "RES-6", 16) == "Accepted"
    await rig.wait_status("Reserved")
    # Reserved under another reservationId: Occupied; the same id replaces (below).
    assert await reserve(rig, 1, "RES-7", 17) == "Occupied"
    assert await cancel(rig, 16) == "Accepted"
    await rig.start_session("TAG-OCC")
    assert await reserve(rig, 1, "RES-6", 18) == "Occupied"


async def test_tc_048_3_unavailable_connector(rig: Rig) -> None:
    mark = rig.cs.mark()
    result = await rig.cs.call(
        rig.cp_id, call.ChangeAvailability(connector_id=1, type="Inoperative")
    )
    assert result.status == "Accepted"
    await rig.wait_status("Unavailable", since=mark)
    assert await reserve(rig, 1, "RES-8", 19) == "Unavailable"


async def test_a_reservation_of_a_connector_that_does_not_exist_is_rejected(rig: Rig) -> None:
    assert await reserve(rig, 7, "RES-9", 20) == "Rejected"


async def test_the_same_reservation_id_replaces_the_reservation(rig: Rig) -> None:
    assert await reserve(rig, 1, "OLD-TAG", 21) == "Accepted"
    await rig.wait_status("Reserved")
    assert await reserve(rig, 1, "NEW-TAG", 21) == "Accepted"
    mark = rig.cs.mark()
    await rig.command("plug")
    await rig.command("swipe", tag="OLD-TAG")
    await rig.wait_result("Authorize", since=mark)
    await rig.command("swipe", tag="NEW-TAG")
    start = await rig.wait_call("StartTransaction", since=mark)
    assert start.payload["idTag"] == "NEW-TAG" and start.payload["reservationId"] == 21


async def test_a_plug_in_and_another_card_on_a_reserved_connector_start_nothing(
    rig: Rig,
) -> None:
    mark = rig.cs.mark()
    assert await reserve(rig, 1, "RES-10", 22) == "Accepted"
    await rig.wait_status("Reserved", since=mark)
    assert rig.running.charger.status()["1"]["reservation"] == 22
    await rig.command("plug")
    await rig.command("swipe", tag="STRANGER")
    await rig.wait_result("Authorize", since=mark)
    await card_refused(rig)
    assert not rig.calls("StartTransaction")
    assert not [
        r
        for r in rig.calls("StatusNotification")
        if r.seq >= mark and r.payload.get("status") == "Preparing"
    ]
    await rig.command("swipe", tag="RES-10")  # the reserving card starts at once: plugged
    start = await rig.wait_call("StartTransaction", since=mark)
    assert start.payload["reservationId"] == 22


# ------------------------------------------------------------------ cancel


async def test_tc_051_cancel_reservation(rig: Rig) -> None:
    mark = rig.cs.mark()
    assert await reserve(rig, 1, "RES-11", 23) == "Accepted"
    await rig.wait_status("Reserved", since=mark)
    reserved = rig.cs.mark()
    assert await cancel(rig, 23) == "Accepted"
    await rig.wait_status("Available", since=reserved)


async def test_tc_052_cancel_an_unknown_reservation_is_rejected(rig: Rig) -> None:
    assert await cancel(rig, 999) == "Rejected"


# ------------------------------------------------------------------ groups


async def test_tc_053_a_card_of_the_reserving_group_uses_the_reservation(rig: Rig) -> None:
    rig.cs.parent_id_tags.update({"FLEET-B1": "FLEET-B", "FLEET-B2": "FLEET-B", "OUT-1": "OUT"})
    mark = rig.cs.mark()
    assert await reserve(rig, 1, "FLEET-B1", 24, parent_id_tag="FLEET-B") == "Accepted"
    await rig.wait_status("Reserved", since=mark)
    await rig.command("swipe", tag="OUT-1")  # another group: refused
    await rig.wait_result("Authorize", since=mark)
    await card_refused(rig)
    await rig.command("swipe", tag="FLEET-B2")
    await rig.wait_status("Preparing", since=mark)
    await rig.command("plug")
    start = await rig.wait_call("StartTransaction", since=mark)
    assert start.payload["idTag"] == "FLEET-B2" and start.payload["reservationId"] == 24


# ------------------------------------------------------------------ connector 0


async def test_tc_049_reservation_of_the_charge_point(rig2: Rig) -> None:
    rig = rig2
    mark = rig.cs.mark()
    assert await reserve(rig, 0, "RES-CP", 31) == "Accepted"
    await rig.command("swipe", tag="RES-CP")
    await rig.wait_status("Preparing", connector=1, since=mark)
    # Connector 1 in use: the only free connector is held back for the reservation.
    await rig.wait_status("Reserved", connector=2, since=mark)
    await rig.command("plug", connector=1)
    start = await rig.wait_call("StartTransaction", since=mark)
    assert start.payload["connectorId"] == 1 and start.payload["reservationId"] == 31
    await rig.wait_status("Available", connector=2, since=start.seq)


async def test_connector_0_holds_back_the_last_free_connector(rig2: Rig) -> None:
    rig = rig2
    mark = rig.cs.mark()
    assert await reserve(rig, 0, "RES-CP2", 32) == "Accepted"
    await rig.command("plug", connector=1)
    await rig.command("swipe", tag="OTHER-DRIVER")  # may charge: connector 2 stays free
    first = await rig.wait_call("StartTransaction", since=mark)
    await rig.wait_status("Reserved", connector=2, since=mark)
    # Connector 2 is now held: another driver's plug-in and card start nothing there.
    await rig.command("plug", connector=2)
    before = len(rig.calls("StartTransaction"))
    await rig.command("swipe", tag="THIRD-DRIVER")
    await rig.wait_result("Authorize", since=first.seq)
    await card_refused(rig, connector=2)
    assert len(rig.calls("StartTransaction")) == before
    await rig.command("swipe", tag="RES-CP2")
    start = await rig.wait_call("StartTransaction", since=first.seq + 1)
    assert start.payload["connectorId"] == 2 and start.payload["reservationId"] == 32


async def test_the_reserving_card_goes_to_the_connector_its_cable_is_plugged_into(
    rig2: Rig,
) -> None:
    """§5.13: a connector-0 reservation may use any free connector.  Its driver plugs in on
    connector 2 (free), so the charger holds back connector 1 for the reservation; the card
    at the reader then went to connector 1 (no cable) and the driver could not charge (second
    issue-13 try-out, G3).  Two connector-0 reservations: its cable on the connector held for
    the other, the two swap."""
    rig = rig2
    mark = rig.cs.mark()
    assert await reserve(rig, 0, "RES-Z1", 61) == "Accepted"
    await rig.command("plug", connector=2)
    await rig.wait_status("Reserved", connector=1, since=mark)  # the last free one held back
    await rig.command("swipe", tag="RES-Z1")
    start = await rig.wait_call("StartTransaction", since=mark)
    assert start.payload["connectorId"] == 2 and start.payload["reservationId"] == 61
    await rig.wait_status("Available", connector=1, since=mark)  # let go: the reservation used
    await rig.command("swipe", tag="RES-Z1")  # stops it
    await rig.wait_call("StopTransaction", since=start.seq)
    await rig.command("unplug", connector=2)
    await rig.wait_status("Available", connector=2, since=start.seq)
    mark = rig.cs.mark()
    assert await reserve(rig, 0, "RES-Z2", 62) == "Accepted"
    assert await reserve(rig, 0, "RES-Z3", 63) == "Accepted"
    await rig.wait_status("Reserved", connector=1, since=mark)
    await rig.wait_status("Reserved", connector=2, since=mark)
    held_for_z3 = next(c for c, s in rig.running.charger.status().items() if s["reservation"] == 63)
    await rig.command("plug", connector=int(held_for_z3))
    for _ in range(200):  # until the controller noted the cable (Reserved does not change)
        if rig.running.charger.status()[held_for_z3]["plugged"]:
            break
        await asyncio.sleep(0.05)
    await rig.command("swipe", tag="RES-Z2")
    start = await rig.wait_call("StartTransaction", since=mark)
    assert start.payload["connectorId"] == int(held_for_z3)
    assert start.payload["reservationId"] == 62


@pytest.mark.parametrize("reserved", [False, True], ids=["no reservation", "connector 0"])
async def test_a_remote_start_without_connector_id_goes_where_the_cable_waits(
    rig2: Rig, reserved: bool
) -> None:
    """The app start: the driver plugs in on connector 2, then starts from the app (no
    connectorId).  The start went to connector 1 (the first, or the one held back for the
    driver's connector-0 reservation), where no cable is: nothing started (second issue-13
    try-out, G4; the same kind as G3 at the reader)."""
    rig = rig2
    mark = rig.cs.mark()
    if reserved:
        assert await reserve(rig, 0, "RES-APP", 71) == "Accepted"
    await rig.command("plug", connector=2)
    await rig.wait_status("Preparing", connector=2, since=mark)
    result = await rig.cs.call(rig.cp_id, call.RemoteStartTransaction(id_tag="RES-APP"))
    assert result.status == "Accepted"
    start = await rig.wait_call("StartTransaction", since=mark)
    assert start.payload["connectorId"] == 2
    assert start.payload.get("reservationId") == (71 if reserved else None)


async def test_a_remote_start_without_connector_id_goes_to_the_reserved_connector(
    rig2: Rig,
) -> None:
    rig = rig2
    mark = rig.cs.mark()
    assert await reserve(rig, 2, "RES-RS", 51) == "Accepted"
    await rig.wait_status("Reserved", connector=2, since=mark)
    result = await rig.cs.call(rig.cp_id, call.RemoteStartTransaction(id_tag="RES-RS"))
    assert result.status == "Accepted"
    await rig.wait_status("Preparing", connector=2, since=mark)
    await rig.command("plug", connector=2)
    start = await rig.wait_call("StartTransaction", since=mark)
    assert start.payload["connectorId"] == 2 and start.payload["reservationId"] == 51


async def test_tc_050_1_charge_point_faulted(rig: Rig) -> None:
    mark = rig.cs.mark()
    await rig.command("fault", name="rcd", state="on")
    await rig.wait_status("Faulted", since=mark)
    assert await reserve(rig, 0, "RES-CP3", 33) == "Faulted"
    await rig.command("fault", name="rcd", state="off")


async def test_tc_050_2_charge_point_occupied(rig: Rig) -> None:
    await rig.start_session("TAG-CP-OCC")
    assert await reserve(rig, 0, "RES-CP4", 34) == "Occupied"


async def test_tc_050_3_charge_point_unavailable(rig: Rig) -> None:
    mark = rig.cs.mark()
    result = await rig.cs.call(
        rig.cp_id, call.ChangeAvailability(connector_id=0, type="Inoperative")
    )
    assert result.status == "Accepted"
    await rig.wait_status("Unavailable", connector=0, since=mark)
    assert await reserve(rig, 0, "RES-CP5", 35) == "Unavailable"


@pytest.mark.keys(ReserveConnectorZeroSupported=False)
async def test_tc_050_4_charge_point_reservation_rejected(rig: Rig) -> None:
    conf = await rig.cs.call(
        rig.cp_id, call.GetConfiguration(key=["ReserveConnectorZeroSupported"])
    )
    assert conf.configuration_key[0]["value"] == "false"
    assert await reserve(rig, 0, "RES-CP6", 36) == "Rejected"
    assert await reserve(rig, 1, "RES-CP6", 36) == "Accepted"  # a connector still can


# ------------------------------------------------------------------ restart


async def test_a_reservation_survives_a_power_cut_and_expires_after_it(
    csms: CentralSystem, tmp_path: Path
) -> None:
    """A real daemon process, SIGKILLed right after the reservation was accepted."""

    def status_of_connector_1(r: MessageRecord) -> bool:
        return (
            r.direction == "rx"
            and r.action == "StatusNotification"
            and r.message_type == "CALL"
            and r.payload.get("connectorId") == 1
        )

    ctl = Controller(csms.url, tmp_path / "state", tmp_path / "cp.log")
    ctl.start()
    try:
        await csms.wait_for(
            lambda r: status_of_connector_1(r) and r.payload["status"] == "Available", timeout=30
        )
        result = await csms.call(
            "DURABLE-1",
            call.ReserveNow(
                connector_id=1, expiry_date=expiry(20), id_tag="RES-P", reservation_id=41
            ),
        )
        assert result.status == "Accepted"
        await csms.wait_for(
            lambda r: status_of_connector_1(r) and r.payload["status"] == "Reserved", timeout=10
        )
        ctl.kill()  # power cut: the reservation was stored before the answer went out
        mark = csms.mark()
        ctl.start()
        # The first status after the restart is Reserved, not Available ...
        first = await csms.wait_for(status_of_connector_1, since=mark, timeout=30)
        assert first.payload["status"] == "Reserved"
        # ... until the reservation expires.
        await csms.wait_for(
            lambda r: status_of_connector_1(r) and r.payload["status"] == "Available",
            since=first.seq,
            timeout=40,
        )
        cancelled = await csms.call("DURABLE-1", call.CancelReservation(reservation_id=41))
        assert cancelled.status == "Rejected"
    finally:
        ctl.stop_quietly()
