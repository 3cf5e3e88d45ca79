"""OCTT 1.6 charge point test cases for a charger shipped without a feature profile
(``[ocpp] profiles``, issue 13 item 4): a daemon on the bench configured with Core alone.

- TC_042_1_CS Get Local List Version (not supported): SupportedFeatureProfiles lacks
  LocalAuthListManagement; GetLocalListVersion ⇒ listVersion -1.
- TC_043_1_CS Send Local Authorization List - NotSupported: SendLocalList ⇒ NotSupported.
- TC_048_4_CS Reservation of a Connector - Rejected: ReserveNow ⇒ Rejected (OCPP 1.6 §7.39:
  "Charge Point is not configured to accept reservations"); the connector stays Available.
- Smart Charging, Remote Trigger and Firmware Management off: their requests ⇒ CALLERROR
  NotSupported, their keys withheld.

The answers come from the connection (firmware.profiles.DISABLED_ANSWERS), never from the
profile's block: they hold whether or not the block exists and whatever it would answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from ocpp.exceptions import NotSupportedError
from ocpp.v16 import call

from centralsystem import CentralSystem
from firmware import app, clock
from firmware.settings import OcppSettings
from tests.conftest import Rig, bench_settings, start_fast

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def core_only(csms: CentralSystem, tmp_path: Path) -> AsyncIterator[Rig]:
    """The bench charger with ``[ocpp] profiles = ["Core"]``."""
    settings = replace(bench_settings(csms.url, tmp_path), ocpp=OcppSettings(profiles=("Core",)))
    running = await start_fast(settings)
    rig = Rig(csms, running, tmp_path)
    try:
        await rig.wait_status("Available")
        yield rig
    finally:
        await app.shutdown(running)


async def _configuration(rig: Rig) -> dict[str, str]:
    answer = await rig.cs.call(rig.cp_id, call.GetConfiguration())
    return {k["key"]: k.get("value", "") for k in answer.configuration_key}


async def test_tc_042_1_get_local_list_version_not_supported(core_only: Rig) -> None:
    rig = core_only
    profiles = await rig.cs.call(rig.cp_id, call.GetConfiguration(key=["SupportedFeatureProfiles"]))
    assert profiles.configuration_key == [
        {"key": "SupportedFeatureProfiles", "readonly": True, "value": "Core"}
    ]
    answer = await rig.cs.call(rig.cp_id, call.GetLocalListVersion())
    assert answer.list_version == -1
    # The profile's keys are not the central system's to see or change.
    assert "LocalAuthListEnabled" not in await _configuration(rig)
    change = await rig.cs.call(
        rig.cp_id, call.ChangeConfiguration(key="LocalAuthListEnabled", value="true")
    )
    assert change.status == "NotSupported"


async def test_tc_043_1_send_local_list_not_supported(core_only: Rig) -> None:
    rig = core_only
    answer = await rig.cs.call(
        rig.cp_id,
        call.SendLocalList(
            list_version=1,
            update_type="Full",
            local_authorization_list=[
                {"idTag": "LIST-1", "idTagInfo": {"status": "Accepted"}},
            ],
        ),
    )
    assert answer.status == "NotSupported"
    version = await rig.cs.call(rig.cp_id, call.GetLocalListVersion())
    assert version.list_version == -1, "nothing was installed"


async def test_tc_048_4_reserve_now_rejected(core_only: Rig) -> None:
    rig = core_only
    mark = rig.cs.mark()
    expiry = clock.to_ocpp(clock.utcnow() + timedelta(minutes=10))
    answer = await rig.cs.call(
        rig.cp_id,
        call.ReserveNow(connector_id=1, expiry_date=expiry, id_tag="RES-1", reservation_id=7),
    )
    assert answer.status == "Rejected"
    cancel = await rig.cs.call(rig.cp_id, call.CancelReservation(reservation_id=7))
    assert cancel.status == "Rejected", "no reservation was made"
    # Nothing was reserved: another card charges on connector 1.
    await rig.start_session("OTHER-1")
    assert not any(r.payload["status"] == "Reserved" for r in rig.calls("StatusNotification"))
    start = next(r for r in rig.calls("StartTransaction") if r.seq >= mark)
    assert start.payload["idTag"] == "OTHER-1" and "reservationId" not in start.payload


async def test_smart_charging_and_remote_trigger_off_are_not_supported(core_only: Rig) -> None:
    rig = core_only
    profile = {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}],
        },
    }
    for request in (
        call.SetChargingProfile(connector_id=1, cs_charging_profiles=profile),
        call.ClearChargingProfile(),
        call.GetCompositeSchedule(connector_id=1, duration=60),
        call.TriggerMessage(requested_message="Heartbeat"),
    ):
        with pytest.raises(NotSupportedError):
            await rig.cs.call(rig.cp_id, request)
    keys = await _configuration(rig)
    assert "ChargeProfileMaxStackLevel" not in keys and keys["SupportedFeatureProfiles"] == "Core"
    change = await rig.cs.call(
        rig.cp_id, call.ChangeConfiguration(key="ChargeProfileMaxStackLevel", value="3")
    )
    assert change.status == "NotSupported"
    # The Security Whitepaper has no profile to announce: its trigger still works.
    mark = rig.cs.mark()
    extended = await rig.cs.call(
        rig.cp_id, call.ExtendedTriggerMessage(requested_message="Heartbeat")
    )
    assert extended.status == "Accepted"
    await rig.wait_call("Heartbeat", since=mark)
    # A remote start's charging profile cannot be held: the transaction starts without it.
    await rig.command("plug")
    start = await rig.cs.call(
        rig.cp_id,
        call.RemoteStartTransaction(
            id_tag="REMOTE-1",
            connector_id=1,
            charging_profile={**profile, "chargingProfilePurpose": "TxProfile"},
        ),
    )
    assert start.status == "Accepted"
    await rig.wait_call("StartTransaction", since=mark)


async def test_firmware_management_off_is_not_supported(core_only: Rig) -> None:
    rig = core_only
    now = clock.to_ocpp(clock.utcnow())
    for request in (
        call.UpdateFirmware(location="http://127.0.0.1:9/fw.bundle", retrieve_date=now),
        call.SignedUpdateFirmware(
            request_id=1,
            firmware={
                "location": "http://127.0.0.1:9/fw.bundle",
                "retrieveDateTime": now,
                "signingCertificate": "-----BEGIN CERTIFICATE-----",
                "signature": "AAAA",
            },
        ),
    ):
        with pytest.raises(NotSupportedError):
            await rig.cs.call(rig.cp_id, request)
    keys = await _configuration(rig)
    assert "SupportedFileTransferProtocols" not in keys
