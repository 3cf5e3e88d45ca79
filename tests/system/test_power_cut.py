"""A power cut on a charger with backup power ([power_fail], a UPS HAT's mains-lost line on the
bench), beyond the OCTT case itself (TC_032_1 is in octt/test_09_non_happy.py): a dip shorter
than the hold-off ends nothing; two connectors are both stopped; a central system that is
offline during the cut gets the StopTransactions after the restart, from the durable outbox;
a charger without [power_fail] has no such input (the bench refuses a cut)."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
import socket
import subprocess
import sys
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from centralsystem import CentralSystem
from firmware import app, app_devices
from firmware.settings import Settings
from firmware.settings_load import parse
from tests.conftest import BENCH_TOML, REPO, Rig, start_fast
from tests.system.helpers import Controller, _charging, backup_power_toml
from tests.system.test_systemd import listener

HOLD_OFF_S = 0.5


def backup_power_settings(
    url: str,
    state: Path,
    *,
    hold_off_s: float = HOLD_OFF_S,
    deliver_s: float = 5.0,
    connectors: int = 1,
    **keys: object,
) -> Settings:
    """config/bench.toml with a UPS HAT's line (and a second connector when asked)."""
    data: dict[str, Any] = tomllib.loads(
        BENCH_TOML.read_text() + backup_power_toml(hold_off_s, deliver_s)
    )
    if connectors == 2:
        second = copy.deepcopy(data["connectors"][0])
        second["contactor"] = {"pin": 24, "mirror_pin": 25}
        second["lock"].update(lock_pin=7, unlock_pin=8, feedback_pin=9)
        second["pilot"]["unit_id"] = 3
        second["meter"]["unit_id"] = 4
        data["connectors"].append(second)
    data["ocpp_keys"] = {**data.get("ocpp_keys", {}), "MinimumStatusDuration": 0, **keys}
    settings = parse(data).with_overrides(csms_url=url, state_dir=state)
    return replace(
        settings, meter_poll_interval_s=0.2, bench=replace(settings.bench, time_scale=60.0)
    )


async def cut_and_park(rig: Rig) -> tuple[asyncio.Task[None], int]:
    """Mains off; once the controller has stopped itself (its stop event), its shutdown runs
    and parks, waiting for mains: returned as a task the caller ends with power-restore, with
    the number of messages left in the outbox when the controller stopped."""
    await rig.command("power-cut")
    await asyncio.wait_for(rig.running.stop.wait(), 20)
    assert rig.running.power_cut
    pending = rig.running.ocpp.transactions.pending
    parked = asyncio.create_task(app.shutdown(rig.running))
    for _ in range(200):  # the park clears the stop event: it waits for mains now
        if not rig.running.stop.is_set():
            break
        await asyncio.sleep(0.05)
    assert not parked.done(), "parked until mains is back"
    return parked, pending


async def restore(rig: Rig, parked: asyncio.Task[None]) -> None:
    await rig.command("power-restore")
    await asyncio.wait_for(parked, 20)
    assert rig.running.mains_back


def stops(cs: CentralSystem, since: int = 0) -> list[dict[str, Any]]:
    return [
        r.payload
        for r in cs.messages
        if r.seq >= since
        and r.direction == "rx"
        and r.message_type == "CALL"
        and r.action == "StopTransaction"
    ]


@pytest.mark.asyncio
async def test_a_dip_shorter_than_the_hold_off_ends_nothing(
    csms: CentralSystem, tmp_path: Path
) -> None:
    hold_off = 2.0
    running = await start_fast(backup_power_settings(csms.url, tmp_path, hold_off_s=hold_off))
    rig = Rig(csms, running, tmp_path)
    try:
        await rig.wait_status("Available")
        await rig.start_session("DIP")
        mark = csms.mark()
        await rig.command("power-cut")
        await rig.command("power-restore")
        mains = running.mains
        assert mains is not None
        for _ in range(100):  # the watch heard both edges
            if not mains.lost and mains._timer is None:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(hold_off + 0.5)  # past the moment a cut would have been decided
        assert not mains.cut and not running.power_cut and not running.stop.is_set()
        assert running.charger.status()["1"]["status"] == "Charging"
        assert stops(csms, mark) == []
        assert rig.bench.contactor_closed(1)
    finally:
        await app.shutdown(running)


@pytest.mark.asyncio
async def test_both_connectors_are_stopped_with_power_loss(
    csms: CentralSystem, tmp_path: Path
) -> None:
    running = await start_fast(backup_power_settings(csms.url, tmp_path, connectors=2))
    rig = Rig(csms, running, tmp_path)
    parked = None
    try:
        for connector in (1, 2):
            await rig.wait_status("Available", connector=connector)
        for connector, tag in ((1, "FIRST"), (2, "SECOND")):
            mark = csms.mark()
            await rig.command("plug", connector=connector)
            await rig.wait_status("Preparing", connector=connector, since=mark)
            await rig.command("swipe", tag=tag)
            await rig.wait_call("StartTransaction", since=mark)
            await rig.command("ev-charge", connector=connector)
            await rig.wait_status("Charging", connector=connector, since=mark)
        mark = csms.mark()
        parked, pending = await cut_and_park(rig)
        assert pending == 0, "delivered before going down"
        got = stops(csms, mark)
        assert sorted(s["idTag"] for s in got) == ["FIRST", "SECOND"]
        assert {s["reason"] for s in got} == {"PowerLoss"}
        for connector in (1, 2):
            await rig.wait_status("Finishing", connector=connector, since=mark)
            assert not rig.bench.contactor_closed(connector)
        await restore(rig, parked)
    finally:
        if parked is None:
            await app.shutdown(running)
        elif not parked.done():
            parked.cancel()


@pytest.mark.asyncio
async def test_stops_not_delivered_before_going_down_go_out_after_the_restart(
    csms: CentralSystem, tmp_path: Path
) -> None:
    settings = backup_power_settings(csms.url, tmp_path, deliver_s=0.5)
    running = await start_fast(settings)
    rig = Rig(csms, running, tmp_path)
    parked = None
    try:
        await rig.wait_status("Available")
        await rig.start_session("OFFLINE-CUT")
        csms.refuse_connections(True)
        await csms.disconnect(rig.cp_id, abrupt=True)
        for _ in range(400):
            if not running.ocpp.online:
                break
            await asyncio.sleep(0.05)
        assert not running.ocpp.online
        mark = csms.mark()
        parked, pending = await cut_and_park(rig)
        assert stops(csms, mark) == []
        assert pending >= 1, "the StopTransaction is in the outbox"
        await restore(rig, parked)
    finally:
        if parked is None:
            await app.shutdown(running)
        elif not parked.done():
            parked.cancel()
    csms.refuse_connections(False)
    mark = csms.mark()
    running = await start_fast(settings)  # mains is back: the next start
    rig = Rig(csms, running, tmp_path)
    try:
        stop = await rig.wait_call("StopTransaction", since=mark, timeout=20)
        boot = await rig.wait_call("BootNotification", since=mark)
        assert boot.seq < stop.seq, "queued messages wait for BootNotification Accepted"
        assert stop.payload["reason"] == "PowerLoss" and stop.payload["idTag"] == "OFFLINE-CUT"
        await rig.wait_result("StopTransaction", since=mark)
        (tx,) = csms.state(rig.cp_id).transactions.values()
        assert tx.reason == "PowerLoss" and tx.stops == 1
        assert len(stops(csms)) == 1, "stopped once, not again by the next start"
    finally:
        await app.shutdown(running)


@pytest.mark.asyncio
async def test_without_power_fail_the_bench_has_no_mains_line(rig: Rig) -> None:
    answer = await app_devices.bench_command(rig.state_dir, {"cmd": "power-cut", "settle": False})
    assert not answer["ok"] and "no backup power" in answer["error"]
    assert rig.running.mains is None


# ------------------------------------------------------------------ the daemon (real processes)


def backup_power_config(tmp_path: Path, hold_off_s: float) -> Path:
    config = tmp_path / "backup-power.toml"
    config.write_text(BENCH_TOML.read_text() + backup_power_toml(hold_off_s, deliver_s=2))
    return config


@pytest.mark.asyncio
async def test_sigterm_while_mains_is_lost_stops_with_power_loss(
    csms: CentralSystem, tmp_path: Path
) -> None:
    """A UPS HAT's own script shuts the Pi down before the hold-off ran out: SIGTERM's clean
    stop then says PowerLoss (not Reboot), and the daemon exits 0 (no restart)."""
    config = backup_power_config(tmp_path, hold_off_s=60)
    ctl = Controller(csms.url, tmp_path / "state", tmp_path / "cp.log", config)
    ctl.start()
    try:
        await _charging(csms, ctl, "SIGTERM-CUT")
        mark = csms.mark()
        await ctl.bench("power-cut", settle=False)
        for _ in range(200):
            if "mains lost: every transaction stops in 60 s" in (tmp_path / "cp.log").read_text():
                break
            await asyncio.sleep(0.05)
        assert ctl.proc is not None
        ctl.proc.send_signal(signal.SIGTERM)
        # Waited for off the loop: the central system must answer the clean stop meanwhile.
        assert await asyncio.to_thread(ctl.proc.wait, 20) == 0
        (stop,) = stops(csms, mark)
        assert stop["reason"] == "PowerLoss"
    finally:
        ctl.stop_quietly()


def test_a_parked_daemon_feeds_the_watchdog_until_sigterm(tmp_path: Path) -> None:
    """Parked after a power cut, the daemon keeps systemd's watchdog fed (else systemd would
    kill and restart it, over and over while mains is off) and says why in STATUS=; SIGTERM
    ends the park: STOPPING=1, exit 0."""
    sock, path = listener(tmp_path)
    state = tmp_path / "state"
    with sock:
        env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000"}
        env.pop("INVOCATION_ID", None)
        with socket.socket() as probe:  # a port nothing listens on: offline is fine here
            probe.bind(("127.0.0.1", 0))
            dead_url = f"ws://127.0.0.1:{probe.getsockname()[1]}/ocpp"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "firmware",
                "run",
                "--config",
                str(backup_power_config(tmp_path, hold_off_s=0.2)),
                "--csms-url",
                dead_url,
                "--state-dir",
                str(state),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "cp.log").open("w"),
        )
        try:
            assert sock.recv(4096).decode().startswith("READY=1\n")
            answer = asyncio.run(
                app_devices.bench_command(state, {"cmd": "power-cut", "settle": False})
            )
            assert answer["ok"], answer
            messages: list[str] = []
            while not any("STATUS=power cut" in m for m in messages):
                messages.append(sock.recv(4096).decode())
            pings = 0
            while pings < 3:
                message = sock.recv(4096).decode()
                assert not message.startswith("STOPPING=1"), message
                pings += message.split("\n")[0] == "WATCHDOG=1"
            assert proc.poll() is None, "parked, alive"
            proc.send_signal(signal.SIGTERM)
            while not messages[-1].startswith("STOPPING=1"):
                messages.append(sock.recv(4096).decode())
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.asyncio
async def test_hw_test_reads_the_power_fail_line(tmp_path: Path) -> None:
    """An installer's check: with mains on the line must read "present" (a wrong active_high
    would stop every session after the hold-off)."""
    from firmware.cli import hwtest

    settings = backup_power_settings("ws://127.0.0.1:9/ocpp", tmp_path)
    devices, sim = await app_devices.open_devices(settings)
    try:
        test = hwtest.HardwareTest(devices)
        test.read_mains()
        sim.set_mains(False)
        test.read_mains()
        got = [(c.name, c.verdict) for c in test.results]
        assert got == [("power fail line", "OK"), ("power fail line", "FAIL")]
        assert "active_high" in test.results[-1].detail
    finally:
        await app_devices.close_devices(devices, sim)


@pytest.mark.asyncio
async def test_the_bench_cli_cuts_and_restores_mains(csms: CentralSystem, tmp_path: Path) -> None:
    running = await start_fast(backup_power_settings(csms.url, tmp_path, hold_off_s=60))
    try:

        def cli(*args: str) -> dict[str, Any]:
            done = subprocess.run(
                [sys.executable, "-m", "firmware", "bench", "--state-dir", str(tmp_path), *args],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
            answer: dict[str, Any] = json.loads(done.stdout)
            return answer

        assert (await asyncio.to_thread(cli, "power-cut"))["bench"]["power"] == {"mains": False}
        assert running.mains is not None and running.mains.lost
        assert (await asyncio.to_thread(cli, "power-restore"))["bench"]["power"] == {"mains": True}
        assert not running.mains.lost and not running.mains.cut
    finally:
        await app.shutdown(running)
