"""Releases (issue 14, items 1 and 2) with real parts: real bundles of this product
(tests/release_bundles.py), installed into a temporary releases directory by
``ReleaseInstaller``, the controller started from ``current`` as a real process (through the
launcher, as ``chargepoint run`` by hand does) against the bundled central system on
127.0.0.1.  An update is activated, a Reset restarts the controller, and the new release's
BootNotification carries its version; a release that crashes at start or never reaches
BootNotification Accepted is rolled back by the launcher, and the previous release reports
how the trial ended.  The configuration file and the state directory are left as they were.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from ocpp.v16 import call

from centralsystem import CentralSystem, MessageRecord
from firmware.ports import TrialOutcome
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
                CP_ID,
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


@pytest_asyncio.fixture
async def site(tmp_path: Path, release_bundles: Bundles) -> AsyncIterator[Site]:
    """The base release installed and current, as install/install.sh leaves a Pi."""
    (tmp_path / "etc").mkdir()
    config = tmp_path / "etc" / "chargepoint.toml"
    config.write_text(BENCH_TOML.read_text())
    state = tmp_path / "state"
    installer = ReleaseInstaller(
        state / "releases", running_version="", boot_timeout_s=60, compile_bytecode=False
    )
    installer.adopt(installer.install(release_bundles.base))
    s = Site(config, state, installer, tmp_path / "controller.log")
    try:
        yield s
    finally:
        await s.stop()


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


async def wait_until(predicate: object, what: str, timeout: float = 60) -> None:
    assert callable(predicate)
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(what)


def snapshot(site: Site) -> dict[str, str]:
    """Every file of the configuration and of the state (the releases aside), hashed."""
    out = {"config": hashlib.sha256(site.config.read_bytes()).hexdigest()}
    for path in sorted(site.state.rglob("*")):
        if path.is_file() and "releases" not in path.relative_to(site.state).parts:
            out[str(path.relative_to(site.state))] = path.stat().st_size and "file" or "empty"
    return out


def key_value(state: Path, key: str) -> object:
    with sqlite3.connect(state / "keys.db") as db:
        row = db.execute("SELECT value FROM keys WHERE name = ?", (key,)).fetchone()
    return row[0] if row else None


async def update_and_reset(cs: CentralSystem, site: Site, bundle: Path) -> str:
    """What the Firmware Management block does: check, install, activate, then a restart
    (here a Reset from the central system: the same exit and restart)."""
    installer = site.installer
    version = await asyncio.to_thread(installer.check, bundle)
    assert await asyncio.to_thread(installer.install, bundle) == version
    await asyncio.to_thread(installer.activate, version)
    assert site.current() == version
    answer = await cs.call(CP_ID, call.Reset(type="Soft"))
    assert answer.status == "Accepted"
    return version


@pytest.mark.asyncio
async def test_an_update_restarts_into_the_new_release(
    csms: CentralSystem, site: Site, release_bundles: Bundles
) -> None:
    base = site.current()
    await site.start(csms)
    await wait_boot(csms, base)
    before = snapshot(site)

    version = await update_and_reset(csms, site, release_bundles.newer)
    await wait_boot(csms, version)
    # Accepted: the new release ended its own trial, and says so once.
    await wait_until(lambda: not (site.releases / "trial.json").exists(), "confirm")
    assert site.installer.outcome() == TrialOutcome(version=version, installed=True, reason="")
    site.installer.reported()
    assert site.installer.outcome() is None
    assert site.current() == version
    assert os.readlink(site.releases / "previous") == base
    assert site.installer.versions() == [base, version]
    assert snapshot(site).keys() >= before.keys()
    assert snapshot(site)["config"] == before["config"]
    log = site.log.read_text()
    assert "Traceback" not in log, log[-3000:]
    # The same launcher process all along: it is what was started by hand.
    assert site.proc is not None and site.proc.returncode is None


@pytest.mark.asyncio
async def test_a_release_that_crashes_at_start_is_rolled_back_after_3_crashes(
    csms: CentralSystem, site: Site, release_bundles: Bundles
) -> None:
    base = site.current()
    await site.start(csms)
    await wait_boot(csms, base)
    config = site.config.read_bytes()

    version = await update_and_reset(csms, site, release_bundles.crashing)
    # Back on the previous release, which comes up again and hears how the trial ended.
    await wait_until(lambda: len(boots(csms)) >= 2, "the previous release boots again")
    assert [b.payload["firmwareVersion"] for b in boots(csms)] == [base, base]
    assert site.current() == base
    outcome = site.installer.outcome()
    assert outcome == TrialOutcome(version=version, installed=False, reason="3 crashes in a row")
    log = site.log.read_text()
    assert log.count("RuntimeError: this release crashes at start") == 3, log[-3000:]
    assert f"release {version} failed its trial (3 crashes in a row): back to {base}" in log
    assert site.config.read_bytes() == config
    assert not (site.releases / "trial.json").exists()


@pytest.mark.asyncio
async def test_a_release_that_never_reaches_accepted_is_rolled_back_in_time(
    csms: CentralSystem, site: Site, release_bundles: Bundles
) -> None:
    site.installer.boot_timeout_s = 6
    base = site.current()
    await site.start(csms)
    await wait_boot(csms, base)

    version = await update_and_reset(csms, site, release_bundles.silent)
    await wait_boot(csms, version)  # it runs, and asks
    await wait_until(lambda: site.current() == base, "rollback", timeout=60)
    await wait_until(
        lambda: [b.payload["firmwareVersion"] for b in boots(csms)][-1:] == [base],
        "the previous release boots again",
    )
    assert site.installer.outcome() == TrialOutcome(
        version=version, installed=False, reason="no BootNotification Accepted within 6 s"
    )
