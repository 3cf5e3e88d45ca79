"""A charger with two connectors (NumberOfConnectors from the config): independent sessions,
one reader, one status per connector plus connector 0."""

from __future__ import annotations

import copy
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest
from ocpp.v16 import call

from centralsystem import CentralSystem
from firmware import app
from firmware.settings import Settings
from firmware.settings_load import parse
from tests.conftest import BENCH_TOML, Rig, start_fast

pytestmark = pytest.mark.asyncio


def two_connector_settings(url: str, state: Path) -> Settings:
    data = tomllib.loads(BENCH_TOML.read_text())
    second = copy.deepcopy(data["connectors"][0])
    second["contactor"] = {"pin": 24, "mirror_pin": 25}
    second["lock"].update(lock_pin=7, unlock_pin=8, feedback_pin=9)
    second["pilot"]["unit_id"] = 3
    second["meter"]["unit_id"] = 4
    data["connectors"].append(second)
    settings = parse(data).with_overrides(csms_url=url, state_dir=state)
    return replace(
        settings, meter_poll_interval_s=0.2, bench=replace(settings.bench, time_scale=60.0)
    )


async def test_two_independent_sessions(csms: CentralSystem, tmp_path: Path) -> None:
    running = await start_fast(two_connector_settings(csms.url, tmp_path))
    rig = Rig(csms, running, tmp_path)
    try:
        for connector in (0, 1, 2):
            await rig.wait_status("Available", connector=connector)
        conf = await csms.call(rig.cp_id, call.GetConfiguration(key=["NumberOfConnectors"]))
        assert conf.configuration_key[0]["value"] == "2"
        await rig.command("plug", connector=2)
        await rig.wait_status("Preparing", connector=2)
        await rig.command("swipe", tag="SECOND")  # the reader serves the waiting connector
        start2 = await rig.wait_call("StartTransaction")
        assert start2.payload["connectorId"] == 2
        await rig.command("ev-charge", connector=2)
        await rig.wait_status("Charging", connector=2)
        mark = csms.mark()
        await rig.command("plug", connector=1)
        await rig.command("swipe", tag="FIRST")
        start1 = await rig.wait_call("StartTransaction", since=mark)
        assert start1.payload["connectorId"] == 1
        await rig.command("ev-charge", connector=1)
        await rig.wait_status("Charging", connector=1, since=mark)
        assert rig.bench.contactor_closed(1) and rig.bench.contactor_closed(2)
        mark = csms.mark()
        await rig.command("swipe", tag="SECOND")  # stops its own transaction only
        stop = await rig.wait_call("StopTransaction", since=mark)
        assert stop.payload["idTag"] == "SECOND"
        assert not rig.bench.contactor_closed(2) and rig.bench.contactor_closed(1)
    finally:
        await app.shutdown(running)
