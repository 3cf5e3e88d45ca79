"""The faults a fresh try-out of issue 13 found in the Local Authorization List and the
reservations (/work/wt/tryout13-findings.md F1-F8), on the wire: the bench daemon against the
bundled central system.  The rules themselves are tested fast in tests/unit/test_local_list.py
and tests/unit/test_reservations.py; here what the central system sees."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from ocpp.v16 import call
from ocpp.v16.datatypes import IdTagInfo

from centralsystem import CentralSystem
from firmware import app
from firmware.settings import OcppSettings
from tests.conftest import Rig, bench_settings, start_fast
from tests.system.octt.test_13_reservation import cancel, card_refused, reserve
from tests.system.test_two_connectors import two_connector_settings

pytestmark = pytest.mark.asyncio


def entry(id_tag: str, status: str = "Accepted", **info: str) -> dict[str, Any]:
    return {"idTag": id_tag, "idTagInfo": {"status": status, **info}}


async def send(rig: Rig, version: int, update_type: str, entries: list[dict[str, Any]]) -> str:
    answer = await rig.cs.call(
        rig.cp_id,
        call.SendLocalList(
            list_version=version, update_type=update_type, local_authorization_list=entries
        ),
    )
    return str(answer.status)


async def version(rig: Rig) -> int:
    return int((await rig.cs.call(rig.cp_id, call.GetLocalListVersion())).list_version)


async def test_f1_a_differential_is_compared_with_the_version_reported(rig: Rig) -> None:
    """TC_042_2's empty list reads 0; a central system that trusts it (§5.10) sends a
    Differential above 0 and is not refused (§7.48).  An empty Differential has no effect."""
    assert await send(rig, 7, "Full", []) == "Accepted"
    assert await version(rig) == 0
    assert await send(rig, 9, "Differential", []) == "Accepted"
    assert await version(rig) == 0
    assert await send(rig, 1, "Differential", [entry("A")]) == "Accepted"
    assert await version(rig) == 1
    assert await send(rig, 1, "Differential", [entry("B")]) == "VersionMismatch"


async def test_f4_an_expired_entry_the_central_system_accepts_is_no_local_list_conflict(
    rig: Rig,
) -> None:
    past = "2020-01-01T00:00:00.000Z"
    assert await send(rig, 20, "Full", [entry("EXP", expiryDate=past)]) == "Accepted"
    mark = rig.cs.mark()
    await rig.command("swipe", tag="EXP")
    await rig.wait_result("Authorize", since=mark)
    await rig.wait_status("Preparing", since=mark)
    shown = rig.cs.mark()
    answer = await rig.cs.call(
        rig.cp_id, call.TriggerMessage(requested_message="StatusNotification", connector_id=0)
    )
    assert answer.status == "Accepted"
    status = await rig.wait_status("Available", connector=0, since=shown)
    assert status.payload["errorCode"] == "NoError"
    assert not [
        r for r in rig.calls("StatusNotification") if r.payload["errorCode"] == "LocalListConflict"
    ]


async def test_f7_switching_the_list_off_clears_its_local_list_conflict(rig: Rig) -> None:
    assert await send(rig, 2, "Full", [entry("OK1")]) == "Accepted"
    rig.cs.id_tags["OK1"] = "Blocked"
    mark = rig.cs.mark()
    await rig.command("swipe", tag="OK1")
    await rig.wait_status("Available", connector=0, since=mark, error_code="LocalListConflict")
    off = rig.cs.mark()
    answer = await rig.cs.call(
        rig.cp_id, call.ChangeConfiguration(key="LocalAuthListEnabled", value="false")
    )
    assert answer.status == "Accepted"
    await rig.wait_status("Available", connector=0, since=off, error_code="NoError")
    shown = rig.cs.mark()
    await rig.cs.call(
        rig.cp_id, call.TriggerMessage(requested_message="StatusNotification", connector_id=0)
    )
    triggered = await rig.wait_status("Available", connector=0, since=shown)
    assert triggered.payload["errorCode"] == "NoError"


async def test_f3_a_card_of_the_group_by_the_local_list_uses_the_reservation_online(
    rig: Rig,
) -> None:
    """TC_053 with the group known from the list only: the central system's Authorize.conf has
    no parentIdTag (the bundled one never sends one unless told)."""
    group = [entry("KID", parentIdTag="GRP"), entry("MOM", parentIdTag="GRP")]
    assert await send(rig, 3, "Full", group) == "Accepted"
    mark = rig.cs.mark()
    assert await reserve(rig, 1, "MOM", 5) == "Accepted"  # the group from the list too
    await rig.wait_status("Reserved", since=mark)
    await rig.command("plug")
    await rig.command("swipe", tag="STRANGER")  # not of the group: refused
    await rig.wait_result("Authorize", since=mark)
    await card_refused(rig)
    kid = rig.cs.mark()
    await rig.command("swipe", tag="KID")
    authorize = await rig.wait_result("Authorize", since=kid)
    assert "parentIdTag" not in authorize.payload["idTagInfo"]
    start = await rig.wait_call("StartTransaction", since=mark)
    assert start.payload["idTag"] == "KID" and start.payload["reservationId"] == 5


@pytest.mark.parametrize("authorize_remote", ["true", "false"])
async def test_f3_a_remote_start_for_a_card_of_the_group_uses_the_reservation(
    csms: CentralSystem, tmp_path: Path, authorize_remote: str
) -> None:
    """§5.13: a reservation with a parentIdTag is for every idTag of the group; the charger
    knows KID's group from its list whether or not it authorizes the remote start (§5.11)."""
    settings = bench_settings(csms.url, tmp_path, AuthorizeRemoteTxRequests=authorize_remote)
    running = await start_fast(settings)
    rig = Rig(csms, running, tmp_path)
    try:
        await rig.wait_status("Available")
        assert await send(rig, 1, "Full", [entry("KID", parentIdTag="GRP")]) == "Accepted"
        mark = rig.cs.mark()
        assert await reserve(rig, 1, "MOM", 32, parent_id_tag="GRP") == "Accepted"
        await rig.wait_status("Reserved", since=mark)
        stranger = call.RemoteStartTransaction(id_tag="STRANGER", connector_id=1)
        assert (await rig.cs.call(rig.cp_id, stranger)).status == "Rejected"
        kid = call.RemoteStartTransaction(id_tag="KID", connector_id=1)
        assert (await rig.cs.call(rig.cp_id, kid)).status == "Accepted"
        await rig.wait_status("Preparing", since=mark)
        await rig.command("plug")
        start = await rig.wait_call("StartTransaction", since=mark)
        assert start.payload["idTag"] == "KID" and start.payload["reservationId"] == 32
    finally:
        await app.shutdown(running)


async def test_f8_a_replacement_the_admitted_card_could_not_use_is_occupied(rig: Rig) -> None:
    """§5.13 + docs/charging.md: a connector in use (Preparing: the old card waits for its
    cable) answers Occupied to a replacement that would not admit that card; the central
    system's view and the charger's stay the same (the old terms, used by the old card)."""
    mark = rig.cs.mark()
    assert await reserve(rig, 1, "OLD", 8) == "Accepted"
    await rig.wait_status("Reserved", since=mark)
    await rig.command("swipe", tag="OLD")
    await rig.wait_status("Preparing", since=mark)
    assert await reserve(rig, 1, "NEW", 8) == "Occupied"
    assert await reserve(rig, 1, "old", 8, seconds=7200) == "Accepted"  # same card: fine
    await rig.command("plug")
    start = await rig.wait_call("StartTransaction", since=mark)
    assert start.payload["idTag"] == "OLD" and start.payload["reservationId"] == 8


async def test_f2_the_same_id_moves_from_connector_1_to_connector_0(rig: Rig) -> None:
    mark = rig.cs.mark()
    assert await reserve(rig, 1, "R", 7) == "Accepted"
    await rig.wait_status("Reserved", since=mark)
    assert await reserve(rig, 0, "R", 7) == "Accepted"
    assert await reserve(rig, 0, "OTHER", 70) == "Occupied", "its one connector is held"
    assert rig.running.charger.status()["1"]["reservation"] == 7
    freed = rig.cs.mark()
    assert await cancel(rig, 7) == "Accepted"
    await rig.wait_status("Available", since=freed)


async def test_f5_a_reservation_stored_before_the_profile_was_switched_off_is_not_held(
    csms: CentralSystem, tmp_path: Path
) -> None:
    settings = bench_settings(csms.url, tmp_path)
    running = await start_fast(settings)
    rig = Rig(csms, running, tmp_path)
    try:
        await rig.wait_status("Available")
        mark = rig.cs.mark()
        assert await reserve(rig, 1, "RR", 9) == "Accepted"
        await rig.wait_status("Reserved", since=mark)
    finally:
        await app.shutdown(running)
    core_only = replace(settings, ocpp=OcppSettings(profiles=("Core",)))
    booted = csms.mark()
    running = await start_fast(core_only)
    rig = Rig(csms, running, tmp_path)
    try:
        await rig.wait_status("Available", since=booted)
        assert running.charger.status()["1"]["reservation"] is None
        await rig.command("plug")
        await rig.command("swipe", tag="DRIVER")
        start = await rig.wait_call("StartTransaction", since=booted)
        assert start.payload["idTag"] == "DRIVER" and "reservationId" not in start.payload
        assert not [
            r
            for r in rig.calls("StatusNotification")
            if r.seq >= booted and r.payload["status"] == "Reserved"
        ]
    finally:
        await app.shutdown(running)


async def test_f6_a_remote_start_on_the_connector_held_for_another_connector_0_reservation(
    csms: CentralSystem, tmp_path: Path
) -> None:
    """Two connectors, two connector-0 reservations (each holds one): the reserving idTag of
    one is Accepted on the connector held for the other, the holds swap (§5.13: a reservation
    of the charge point), and its StartTransaction carries its reservationId."""
    running = await start_fast(two_connector_settings(csms.url, tmp_path))
    rig = Rig(csms, running, tmp_path)
    try:
        for connector in (0, 1, 2):
            await rig.wait_status("Available", connector=connector)
        mark = rig.cs.mark()
        assert await reserve(rig, 0, "Z1", 1, parent_id_tag="GRP") == "Accepted"
        assert await reserve(rig, 0, "Z2", 2) == "Accepted"
        for connector in (1, 2):
            await rig.wait_status("Reserved", connector=connector, since=mark)
        status = rig.running.charger.status()
        z1_at = next(c for c in ("1", "2") if status[c]["reservation"] == 1)
        other = 2 if z1_at == "1" else 1
        stranger = call.RemoteStartTransaction(id_tag="STRANGER", connector_id=other)
        assert (await rig.cs.call(rig.cp_id, stranger)).status == "Rejected"
        z1 = call.RemoteStartTransaction(id_tag="Z1", connector_id=other)
        assert (await rig.cs.call(rig.cp_id, z1)).status == "Accepted"
        await rig.wait_status("Preparing", connector=other, since=mark)
        await rig.command("plug", connector=other)
        start = await rig.wait_call("StartTransaction", since=mark)
        assert start.payload["connectorId"] == other and start.payload["reservationId"] == 1
        assert rig.running.charger.status()[z1_at]["reservation"] == 2
    finally:
        await app.shutdown(running)


# ------------------------------------------------------------------ the questionable points


async def test_a_reservation_id_beyond_32_bits_is_rejected(rig: Rig) -> None:
    """OCPP integers are 32-bit (StartTransaction must carry the id back); the schema's integer
    is unbounded: Rejected, as SendLocalList's listVersion is Failed, and nothing is held."""
    mark = rig.cs.mark()
    assert await reserve(rig, 1, "R", 2**31 - 1) == "Accepted"
    await rig.wait_status("Reserved", since=mark)
    assert await reserve(rig, 1, "R", 2**31) == "Rejected"
    assert await reserve(rig, 0, "R", -(2**31) - 1) == "Rejected"
    assert rig.running.charger.status()["1"]["reservation"] == 2**31 - 1


async def test_while_pending_reserve_now_is_rejected_and_send_local_list_accepted(
    csms: CentralSystem, tmp_path: Path
) -> None:
    """§4.2.1: while Pending the central system may configure the charger (the list is such
    provisioning) but not commit it to a driver: ReserveNow is Rejected like
    RemoteStartTransaction; CancelReservation has nothing to end."""
    csms.queue_boot_response("Pending", 30)
    running = await start_fast(bench_settings(csms.url, tmp_path))
    rig = Rig(csms, running, tmp_path)
    try:
        await csms.wait_for(
            lambda r: r.action == "BootNotification" and r.message_type == "CALLRESULT"
        )
        assert await reserve(rig, 1, "R", 1) == "Rejected"
        assert await cancel(rig, 1) == "Rejected"
        assert await send(rig, 1, "Full", [entry("A")]) == "Accepted"
        assert running.charger.status()["1"]["reservation"] is None
        assert await version(rig) == 1
    finally:
        await app.shutdown(running)


async def test_a_triggered_boot_notification_is_refused_until_the_next_reconnect(
    rig: Rig,
) -> None:
    """ERRATA 3.35: after BootNotification.conf(Accepted) TriggerMessage(BootNotification) is
    refused until the next reset, reboot or reconnect.  A reconnect sends no BootNotification
    (OCPP-J §5.4): the first one triggered on it is Accepted and sent, then refused again."""
    trigger = call.TriggerMessage(requested_message="BootNotification")
    assert (await rig.cs.call(rig.cp_id, trigger)).status == "Rejected"
    boots = len(rig.calls("BootNotification"))
    await rig.cs.disconnect(rig.cp_id, abrupt=True)
    await rig.cs.wait_connected(rig.cp_id, timeout=10)
    mark = rig.cs.mark()
    assert (await rig.cs.call(rig.cp_id, trigger)).status == "Accepted"
    await rig.wait_result("BootNotification", since=mark)
    assert len(rig.calls("BootNotification")) == boots + 1
    assert (await rig.cs.call(rig.cp_id, trigger)).status == "Rejected"
    assert rig.running.ocpp.online


@pytest.mark.keys(ConnectionTimeOut=1)
async def test_a_cable_left_on_a_reservation_that_expires_is_finishing_like_a_plug_in(
    rig: Rig,
) -> None:
    """The Reserved+plugged connector whose reservation expires, with no card within
    ConnectionTimeOut: Preparing, then Finishing (§4.9 B6, ERRATA 3.20), as a plug-in first on
    an Available connector; unplugged: Available."""
    mark = rig.cs.mark()
    assert await reserve(rig, 1, "R", 1, seconds=5) == "Accepted"
    await rig.wait_status("Reserved", since=mark)
    await rig.command("plug")
    c = rig.running.charger.connectors[1]
    assert await c.wait_until(lambda: c.state.plugged, timeout=10)
    assert c.state.reservation is not None, "the cable came while the connector was Reserved"
    expired = await rig.wait_status("Preparing", since=mark)
    finishing = await rig.wait_status("Finishing", since=expired.seq)
    assert not rig.calls("StartTransaction")
    await rig.command("unplug")
    await rig.wait_status("Available", since=finishing.seq)
    plugged = rig.cs.mark()
    await rig.command("plug")  # the Core path, for comparison
    await rig.wait_status("Preparing", since=plugged)
    await rig.wait_status("Finishing", since=plugged)


# A valid RFC 3339 "never expires" whose UTC instant is in the year 10000 (second try-out, G2).
BEYOND_9999 = "9999-12-31T23:59:59-01:00"


@pytest.mark.keys(AuthorizationCacheEnabled=True)
async def test_g2_an_expiry_date_beyond_9999_in_utc_is_taken_not_an_internal_error(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ReserveNow and SendLocalList answered CALLERROR InternalError, and an Authorize.conf
    carrying it left the driver's accepted card without effect (OverflowError in the cache)."""
    reserved = await rig.cs.call(
        rig.cp_id,
        call.ReserveNow(connector_id=1, expiry_date=BEYOND_9999, id_tag="FAR", reservation_id=3),
    )
    assert reserved.status == "Accepted"
    assert await send(rig, 4, "Full", [entry("LISTED", expiryDate=BEYOND_9999)]) == "Accepted"
    assert await cancel(rig, 3) == "Accepted"
    await rig.wait_status("Available")
    far = IdTagInfo(status="Accepted", expiry_date=BEYOND_9999)
    monkeypatch.setattr(rig.cs, "id_tag_info", lambda _tag: far)
    mark = rig.cs.mark()
    await rig.command("swipe", tag="FAR-CARD")
    await rig.wait_result("Authorize", since=mark)
    await rig.wait_status("Preparing", since=mark)
    await rig.command("plug")
    start = await rig.wait_call("StartTransaction", since=mark)
    assert start.payload["idTag"] == "FAR-CARD"


async def test_g5_a_listed_card_the_central_system_answers_concurrent_tx_is_no_conflict(
    rig: Rig,
) -> None:
    """ConcurrentTx speaks of the card's other transaction, not of its validity: the list's
    Accepted does not disagree with it (§3.5.3 as F4's expired entry).  The driver's second
    session raised LocalListConflict on connector 0 (second issue-13 try-out, G5)."""
    assert await send(rig, 2, "Full", [entry("BUSY")]) == "Accepted"
    rig.cs.id_tags["BUSY"] = "ConcurrentTx"
    mark = rig.cs.mark()
    await rig.command("swipe", tag="BUSY")
    await rig.wait_result("Authorize", since=mark)
    c = rig.running.charger.connectors[1]
    assert await c.wait_until(lambda: c.state.pending_id_tag is None, timeout=10)
    assert c.state.status.value == "Available"  # refused
    shown = rig.cs.mark()
    answer = await rig.cs.call(
        rig.cp_id, call.TriggerMessage(requested_message="StatusNotification", connector_id=0)
    )
    assert answer.status == "Accepted"
    status = await rig.wait_status("Available", connector=0, since=shown)
    assert status.payload["errorCode"] == "NoError"
