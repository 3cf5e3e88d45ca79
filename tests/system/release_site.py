"""A charger with a release installed, for system tests that run it (issue 14): its own
configuration file, state directory and releases directory (``<state>/releases``, as on the
bench), the base release of ``tests/release_bundles.py`` installed and ``current``, and the
controller started from ``current`` as a real process, the way a person starts it by hand
(through the launcher).  Used by tests/system/test_release.py; the Firmware Management tests
can start their charger the same way."""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from centralsystem import CentralSystem, MessageRecord
from firmware.release import ReleaseInstaller
from tests.conftest import BENCH_TOML
from tests.release_bundles import Bundles

CP_ID = "RELEASE-1"


@dataclass
class Site:
    """A charger's directories: its configuration file, its state and its releases."""

    config: Path
    state: Path
    installer: ReleaseInstaller
    log: Path
    cp_id: str = CP_ID
    proc: asyncio.subprocess.Process | None = None

    @property
    def releases(self) -> Path:
        return self.installer.releases

    def current(self) -> str:
        return os.readlink(self.releases / "current")

    async def start(self, cs: CentralSystem) -> None:
        """``<releases>/current/bin/chargepoint run`` by hand, from a directory that is not
        the source tree."""
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("INVOCATION_ID", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
        }
        with self.log.open("a") as out:
            self.proc = await asyncio.create_subprocess_exec(
                str(self.releases / "current" / "bin" / "chargepoint"),
                "run",
                "--config",
                str(self.config),
                "--csms-url",
                cs.url,
                "--state-dir",
                str(self.state),
                "--id",
                self.cp_id,
                stdout=out,
                stderr=out,
                cwd=self.config.parent,
                env={**env, "PYTHONUNBUFFERED": "1"},
            )

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def make_site(tmp_path: Path, bundles: Bundles, boot_timeout_s: int = 60) -> Site:
    """The base release installed and current, as install/install.sh leaves a Pi; the
    bench configuration in ``tmp_path/etc``."""
    (tmp_path / "etc").mkdir()
    config = tmp_path / "etc" / "chargepoint.toml"
    config.write_text(BENCH_TOML.read_text())
    state = tmp_path / "state"
    installer = ReleaseInstaller(
        state / "releases",
        running_version="",
        boot_timeout_s=boot_timeout_s,
        compile_bytecode=False,
    )
    installer.adopt(installer.install(bundles.base))
    return Site(config, state, installer, tmp_path / "controller.log")


def boots(cs: CentralSystem) -> list[MessageRecord]:
    return [
        r
        for r in cs.messages
        if r.direction == "rx" and r.message_type == "CALL" and r.action == "BootNotification"
    ]


async def wait_boot(cs: CentralSystem, version: str, timeout: float = 60) -> MessageRecord:
    return await cs.wait_for(
        lambda r: (
            r.direction == "rx"
            and r.message_type == "CALL"
            and r.action == "BootNotification"
            and r.payload.get("firmwareVersion") == version
        ),
        timeout=timeout,
    )
