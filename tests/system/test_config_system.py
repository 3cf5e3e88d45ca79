"""Configuration keys end to end: a central system on 127.0.0.1 reads and sets them, and the
charger on the simulated bench behaves by them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from ocpp.exceptions import OccurenceConstraintViolationError
from ocpp.v16 import call

from centralsystem import CentralSystem
from firmware import app
from firmware.config_keys import K
from tests.conftest import REPO, Rig, bench_settings, start_fast
from tests.unit.test_config_keys import SEED

pytestmark = pytest.mark.asyncio


async def test_too_many_keys_in_one_get_configuration_is_an_error(rig: Rig) -> None:
    with pytest.raises(OccurenceConstraintViolationError):
        await rig.cs.call(rig.cp_id, call.GetConfiguration(key=[f"K{n}" for n in range(101)]))


async def test_the_seed_sent_at_boot_is_accepted_and_obeyed(
    csms: CentralSystem, tmp_path: Path
) -> None:
    """Monta sends its 15 values right after every boot; then the charger behaves by them."""
    answers: dict[str, str] = {}

    async def push_seed(cp_id: str) -> None:
        for key, value in SEED.items():
            answers[key] = (
                await csms.call(cp_id, call.ChangeConfiguration(key=key, value=value))
            ).status

    # Start from a charger configured differently from the seed.
    running = await start_fast(
        bench_settings(
            csms.url,
            tmp_path,
            StopTxnSampledData="Energy.Active.Import.Register",
            MeterValuesSampledData="Energy.Active.Import.Register,Power.Active.Import",
            UnlockConnectorOnEVSideDisconnect=False,
            MeterValueSampleInterval=1,
        )
    )
    rig = Rig(csms, running, tmp_path)
    try:
        await rig.wait_status("Available")
        await push_seed(rig.cp_id)
        assert answers == {key: "Accepted" for key in SEED}
        assert running.keys[K.MeterValueSampleInterval] == 180
        # A sampled value every second for this test, the seed's measurands otherwise.
        await csms.call(
            rig.cp_id, call.ChangeConfiguration(key="MeterValueSampleInterval", value="1")
        )
        mark = csms.mark()
        await rig.start_session()
        meter = await rig.wait_call("MeterValues", since=mark, timeout=5)
        measurands = {
            sv.get("measurand", "Energy.Active.Import.Register")
            for mv in meter.payload["meterValue"]
            for sv in mv["sampledValue"]
        }
        assert measurands == {"Energy.Active.Import.Register"}
        mark = csms.mark()
        await rig.command("unplug")
        stop = await rig.wait_call("StopTransaction", since=mark)
        assert stop.payload["reason"] == "EVDisconnected"  # StopTransactionOnEVSideDisconnect
        assert "transactionData" not in stop.payload  # StopTxnSampledData ""
        await rig.wait_status("Available", since=mark)
        assert rig.bench.status()["1"]["lock"] == "unlocked"  # UnlockConnectorOnEVSideDisconnect
        # Re-applying the same values (as Monta does at every boot) writes nothing.
        await push_seed(rig.cp_id)  # puts back the seed's MeterValueSampleInterval
        store = running.keys.store
        assert store is not None
        writes = store.writes
        await push_seed(rig.cp_id)
        assert answers == {key: "Accepted" for key in SEED}
        assert store.writes == writes, "re-applied values must cost no storage write"
    finally:
        await app.shutdown(running)


async def test_keep_connector_locked_after_ev_disconnects(rig: Rig) -> None:
    await rig.cs.call(
        rig.cp_id, call.ChangeConfiguration(key="UnlockConnectorOnEVSideDisconnect", value="false")
    )
    await rig.start_session()
    mark = rig.cs.mark()
    await rig.command("unplug")
    await rig.wait_call("StopTransaction", since=mark)
    await asyncio.sleep(1.0)
    assert rig.bench.status()["1"]["lock"] == "locked"
    assert rig.running.charger.status()["1"]["status"] == "Finishing"
    await rig.command("swipe", tag="ANY-CARD")  # a person releases the cable
    await rig.wait_status("Available", since=mark, timeout=5)
    assert rig.bench.status()["1"]["lock"] == "unlocked"


async def test_hardware_keys_change_the_devices_at_once(rig: Rig) -> None:
    async def change(key: str, value: str) -> None:
        result = await rig.cs.call(rig.cp_id, call.ChangeConfiguration(key=key, value=value))
        assert result.status == "Accepted", (key, value)

    factory = rig.bench.factory
    hw = rig.running.settings.hardware
    await change("LightIntensity", "40")
    assert rig.bench.status()["indicator"]["brightness"] == pytest.approx(0.4)
    green = factory.pin(hw.indicator.green_pin)  # Available: steady green
    assert green.state == pytest.approx(0.4)
    await change("PiCP.DisplayBrightness", "25")
    assert factory.pin(hw.display.backlight_pin).state == pytest.approx(0.25)
    await change("PiCP.BuzzerVolume", "30")
    await change("PiCP.BuzzerEnabled", "false")
    assert rig.bench.status()["buzzer"] == {"enabled": False, "volume": pytest.approx(0.3)}
    await rig.start_session()
    assert rig.bench.status()["1"]["outputs"]["pwm_offered_a"] == 16.0
    await change("PiCP.MaxInstallationCurrent", "10")
    await rig.wait_bench(lambda s: s["1"]["outputs"]["pwm_offered_a"] == 10.0)
    too_high = await rig.cs.call(
        rig.cp_id, call.ChangeConfiguration(key="PiCP.MaxInstallationCurrent", value="40")
    )
    assert too_high.status == "Rejected"


async def test_permanent_cable_lock(rig: Rig) -> None:
    await rig.cs.call(
        rig.cp_id, call.ChangeConfiguration(key="PiCP.PermanentCableLock", value="true")
    )
    await rig.wait_bench(lambda s: s["1"]["lock"] == "locked")
    await rig.start_session()
    mark = rig.cs.mark()
    await rig.command("unplug")
    await rig.wait_status("Available", since=mark)
    assert rig.bench.status()["1"]["lock"] == "locked", "the cable lives in the socket"
    await rig.cs.call(
        rig.cp_id, call.ChangeConfiguration(key="PiCP.PermanentCableLock", value="false")
    )
    await rig.wait_bench(lambda s: s["1"]["lock"] == "unlocked")


async def test_vendor_plugin_key_over_ocpp(rig: Rig) -> None:
    conf = await rig.cs.call(rig.cp_id, call.GetConfiguration(key=["Acme.RingBrightness"]))
    assert conf.configuration_key[0]["value"] == "70"
    result = await rig.cs.call(
        rig.cp_id, call.ChangeConfiguration(key="acme.ringbrightness", value="35")
    )
    assert result.status == "Accepted"
    assert rig.bench.status()["indicator"]["brightness"] == pytest.approx(0.35)
    label = await rig.cs.call(
        rig.cp_id, call.ChangeConfiguration(key="Acme.SiteLabel", value="Depot 7")
    )
    assert label.status == "RebootRequired"


async def test_config_set_on_the_device_reaches_the_running_daemon(rig: Rig) -> None:
    result = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "firmware",
            "config",
            "--config",
            str(REPO / "config" / "bench.toml"),
            "--state-dir",
            str(rig.state_dir),
            "set",
            "LightIntensity",
            "15",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "LightIntensity: Accepted" in result.stdout
    for _ in range(60):
        if rig.bench.status()["indicator"]["brightness"] == pytest.approx(0.15):
            break
        await asyncio.sleep(0.05)
    assert rig.bench.status()["indicator"]["brightness"] == pytest.approx(0.15)
    conf = await rig.cs.call(rig.cp_id, call.GetConfiguration(key=["LightIntensity"]))
    assert conf.configuration_key[0]["value"] == "15"
    bad = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "firmware",
            "config",
            "--config",
            str(REPO / "config" / "bench.toml"),
            "--state-dir",
            str(rig.state_dir),
            "set",
            "LightIntensity",
            "150",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 1 and "above the maximum 100" in bad.stderr
