"""Helpers shared by system test modules: the controller as a separate ``chargepoint run``
process on the bench (killed like a power cut) and driving it into a charging session."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from centralsystem import CentralSystem
from firmware import app_devices
from tests.conftest import REPO


def backup_power_toml(hold_off_s: float = 0.5, deliver_s: float = 5.0, pin: int = 26) -> str:
    """A ``[power_fail]`` table (a UPS HAT's mains-lost line on ``pin``) to append to a
    configuration file's text or to parse into its data."""
    return f"\n[power_fail]\npin = {pin}\nhold_off_s = {hold_off_s}\ndeliver_s = {deliver_s}\n"


class Controller:
    """`chargepoint run` on the bench as a separate process, killed like a power cut."""

    def __init__(self, url: str, state: Path, log: Path, config: Path | None = None) -> None:
        self.args = [
            sys.executable,
            "-m",
            "firmware",
            "run",
            "--config",
            str(config or REPO / "config" / "bench.toml"),
            "--csms-url",
            url,
            "--state-dir",
            str(state),
            "--id",
            "DURABLE-1",
        ]
        self.state, self.log = state, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.args, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, cwd=REPO
        )

    async def bench(self, cmd: str, **extra: object) -> None:
        for _ in range(100):
            if (self.state / app_devices.BENCH_SOCKET).exists():
                break
            await asyncio.sleep(0.05)
        answer = await app_devices.bench_command(self.state, {"cmd": cmd, **extra})
        assert answer["ok"], answer

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)

    def stop_quietly(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


async def _charging(cs: CentralSystem, ctl: Controller, tag: str) -> None:
    await cs.wait_for(
        lambda r: (
            r.action == "StatusNotification"
            and r.message_type == "CALL"
            and r.payload.get("connectorId") == 1
            and r.payload.get("status") == "Available"
        ),
        timeout=20,
        since=cs.mark() - 50 if cs.mark() > 50 else 0,
    )
    await ctl.bench("plug")
    await ctl.bench("swipe", tag=tag)
    await ctl.bench("ev-charge")
    await cs.wait_for(
        lambda r: (
            r.action == "StatusNotification"
            and r.message_type == "CALL"
            and r.payload.get("status") == "Charging"
        ),
        timeout=20,
    )
