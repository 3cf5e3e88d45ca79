"""OCTT 1.6 charge point test cases, chapter "Cold boot".

- TC_001_CS Cold Boot Charge Point: StatusNotification of connector 0 and each connector after
  boot; a Rejected boot waits its interval, then retries.
- TC_002_CS Cold Boot Charge Point - Pending: Get/ChangeConfiguration while Pending.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ocpp.v16 import call

from centralsystem import CentralSystem
from firmware import app
from firmware.config_keys import K
from tests.conftest import Rig, bench_settings, start_fast

pytestmark = pytest.mark.asyncio


async def test_tc_001_boot_then_status_of_connector_0_and_each_connector(rig: Rig) -> None:
    boot = rig.calls("BootNotification")
    assert len(boot) == 1
    assert boot[0].payload["chargePointVendor"] == "PiChargepoint"
    statuses = {
        r.payload["connectorId"]: r.payload["status"] for r in rig.calls("StatusNotification")
    }
    assert statuses == {0: "Available", 1: "Available"}


async def test_tc_001_rejected_boot_waits_the_interval_then_retries(
    csms: CentralSystem, tmp_path: Path
) -> None:
    csms.queue_boot_response("Rejected", 1)
    running = await start_fast(bench_settings(csms.url, tmp_path))
    rig = Rig(csms, running, tmp_path)
    try:
        await rig.wait_status("Available", timeout=10)
        boots = [
            r for r in csms.messages if r.action == "BootNotification" and r.message_type == "CALL"
        ]
        assert len(boots) == 2
        assert (boots[1].time - boots[0].time).total_seconds() >= 0.9
        # Nothing but BootNotification before the Accepted.
        first_other = next(
            r
            for r in csms.messages
            if r.direction == "rx" and r.message_type == "CALL" and r.action != "BootNotification"
        )
        assert first_other.seq > boots[1].seq
    finally:
        await app.shutdown(running)


async def test_tc_002_configuration_works_while_pending(
    csms: CentralSystem, tmp_path: Path
) -> None:
    csms.queue_boot_response("Pending", 2)
    running = await start_fast(bench_settings(csms.url, tmp_path))
    try:
        await csms.wait_for(
            lambda r: r.action == "BootNotification" and r.message_type == "CALLRESULT"
        )
        cp = running.settings.charge_point_id
        conf = await csms.call(cp, call.GetConfiguration(key=["MeterValueSampleInterval"]))
        assert conf.configuration_key[0]["value"] == "10"
        changed = await csms.call(
            cp, call.ChangeConfiguration(key="MeterValueSampleInterval", value="30")
        )
        assert changed.status == "Accepted"
        assert running.keys[K.MeterValueSampleInterval] == 30
        assert not [r for r in csms.messages if r.action == "StatusNotification"]
        await Rig(csms, running, tmp_path).wait_status("Available", timeout=10)
    finally:
        await app.shutdown(running)
