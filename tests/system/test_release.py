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
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from ocpp.v16 import call

from centralsystem import CentralSystem
from firmware.ports import TrialOutcome
from firmware.release import ReleaseInstaller
from tests.release_bundles import Bundles
from tests.system.release_site import CP_ID, Site, boots, make_site, wait_boot


@pytest_asyncio.fixture
async def site(tmp_path: Path, release_bundles: Bundles) -> AsyncIterator[Site]:
    s = make_site(tmp_path, release_bundles)
    try:
        yield s
    finally:
        await s.stop()


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
    # The release that never registered never counts as an update (Security Whitepaper §8
    # FirmwareUpdated, critical): neither its start nor the way back is FirmwareUpdated.
    with sqlite3.connect(site.state / "security.db") as db:
        events = [r[0] for r in db.execute("SELECT type FROM event ORDER BY seq")]
    assert events.count("StartupOfTheDevice") == 3 and "FirmwareUpdated" not in events, events


def _env() -> dict[str, str]:
    drop = ("INVOCATION_ID", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
    return {**{k: v for k, v in os.environ.items() if k not in drop}, "PYTHONUNBUFFERED": "1"}


def _run_args(cs: CentralSystem, site: Site) -> list[str]:
    return [
        "run",
        "--config",
        str(site.config),
        "--csms-url",
        cs.url,
        "--state-dir",
        str(site.state),
        "--id",
        CP_ID,
    ]


@pytest.mark.asyncio
async def test_a_controller_started_from_a_source_tree_restarts_into_the_update(
    csms: CentralSystem, site: Site, release_bundles: Bundles
) -> None:
    """A bench controller from this checkout (not a release) with a releases directory in its
    state: after an update it executes the launcher in place (same PID), which starts the
    new release."""
    import sys

    from tests.conftest import REPO

    with site.log.open("a") as out:
        site.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "firmware",
            *_run_args(csms, site),
            stdout=out,
            stderr=out,
            cwd=REPO,
            env=_env(),
        )
    from firmware.settings import package_version

    await wait_boot(csms, package_version())
    version = await update_and_reset(csms, site, release_bundles.newer)
    await wait_boot(csms, version)
    await wait_until(lambda: not (site.releases / "trial.json").exists(), "confirm")
    assert site.installer.outcome() == TrialOutcome(version, True, "")
    cmdline = Path(f"/proc/{site.proc.pid}/cmdline").read_bytes().split(b"\0")
    assert str(site.releases / "launcher.py").encode() in cmdline  # the same PID, the launcher


@pytest.mark.asyncio
async def test_under_a_service_manager_the_launcher_exits_for_each_restart(
    csms: CentralSystem, site: Site, release_bundles: Bundles, tmp_path: Path
) -> None:
    """``--service`` (the unit's ExecStart): exit 3 for the restart into the update, exit 1
    for each crash on trial (never 2: RestartPreventExitStatus=2 would stop the restarts),
    and the rollback at the start after the third.  The controller under it pings the
    watchdog although $WATCHDOG_PID names the launcher (NotifyAccess=all)."""
    import socket

    base = site.current()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.setblocking(False)

    async def launcher() -> asyncio.subprocess.Process:
        env = {
            **_env(),
            "NOTIFY_SOCKET": str(tmp_path / "notify"),
            "WATCHDOG_USEC": "2000000",
            "WATCHDOG_PID": str(os.getpid()),  # systemd names the main process: the launcher
        }
        with site.log.open("a") as out:
            argv = site.installer.launcher_argv(_run_args(csms, site))
            argv.insert(argv.index("--"), "--service")
            return await asyncio.create_subprocess_exec(
                *argv,
                stdout=out,
                stderr=out,
                env=env,
            )

    site.proc = await launcher()
    await wait_boot(csms, base)
    loop = asyncio.get_running_loop()
    pings = 0
    while pings < 2:
        message = await asyncio.wait_for(loop.sock_recv(notify, 4096), 20)
        pings += message.startswith(b"WATCHDOG=1")
    notify.close()

    version = await update_and_reset(csms, site, release_bundles.crashing)
    assert await asyncio.wait_for(site.proc.wait(), 60) == 3
    for crash in (1, 2, 3):
        site.proc = await launcher()
        assert await asyncio.wait_for(site.proc.wait(), 60) == 1, crash
        assert site.current() == version
    site.proc = await launcher()  # what systemd does after RestartSec
    await wait_until(lambda: len(boots(csms)) >= 2, "the previous release boots again")
    assert site.current() == base
    assert site.installer.outcome() == TrialOutcome(version, False, "3 crashes in a row")


def test_a_manufacturers_plugin_ships_in_the_bundle(tmp_path: Path) -> None:
    """``release build --with WHEEL``: the plug-in's wheel is in the bundle, named in the
    manifest's ``requires``, and installed with the product (docs/plugins.md)."""
    import shutil
    import subprocess
    import sys

    from firmware.release.build import build
    from firmware.release.bundle import read_manifest
    from tests.conftest import REPO
    from tests.release_bundles import WHEEL_CACHE

    source = tmp_path / "acme"
    shutil.copytree(
        REPO / "examples/acme-keys", source, ignore=shutil.ignore_patterns("*.egg-info")
    )
    offline = ["--no-index", "--find-links", str(WHEEL_CACHE)]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), *offline]
        + [str(source)],
        check=True,
        timeout=120,
    )
    plugin = next(tmp_path.glob("acme_chargepoint_keys-*.whl"))
    bundle = build(REPO, tmp_path / "out", "host", pip_args=offline, with_=[str(plugin)])
    assert read_manifest(bundle).requires == ("acme-chargepoint-keys",)
    installer = ReleaseInstaller(tmp_path / "releases", running_version="", compile_bytecode=False)
    version = installer.install(bundle)
    assert installer.check(bundle) == version
    python = tmp_path / "releases" / version / "bin" / "python"
    found = subprocess.run(
        [
            str(python),
            "-c",
            "from importlib.metadata import entry_points as e; "
            "print([p.name for p in e(group='chargepoint.config_keys')])",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert found.stdout.strip() == "['Acme']"


def test_a_bundle_whose_manifest_lies_about_the_version_installs_nothing(
    tmp_path: Path, release_bundles: Bundles
) -> None:
    """The manifest (and the wheel's file name) say 9.9.9, the product's wheel is the base
    version: installed, it would be put on trial as 9.9.9 while running as the base version,
    never confirmed, and rolled back after trial_boot_timeout_s with a wrong reason.  The
    install refuses it with one line and leaves nothing."""
    import io
    import json
    import tarfile

    from firmware.ports import FirmwareInstallFailed

    base = release_bundles.version(release_bundles.base)
    members: dict[str, bytes] = {}
    with tarfile.open(release_bundles.base) as tar:
        for member in tar:
            f = tar.extractfile(member)
            assert f is not None
            members[member.name] = f.read()
    manifest = json.loads(members.pop("manifest.json"))
    product = next(n for n in members if n.startswith("wheels/pi_chargepoint-"))
    members[product.replace(f"-{base}-", "-9.9.9-")] = members.pop(product)
    manifest["version"] = "9.9.9"
    manifest["wheels"] = {
        n.removeprefix("wheels/"): hashlib.sha256(d).hexdigest() for n, d in members.items()
    }
    lying = tmp_path / "pi-chargepoint-9.9.9-host.tar"
    with tarfile.open(lying, "w") as tar:
        for name, data in [("manifest.json", json.dumps(manifest).encode()), *members.items()]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    releases = tmp_path / "releases"
    installer = ReleaseInstaller(releases, running_version="", compile_bytecode=False)
    assert installer.check(lying) == "9.9.9"  # every hash matches
    with pytest.raises(FirmwareInstallFailed) as caught:
        installer.install(lying)
    assert str(caught.value) == f"the bundle says version 9.9.9, its pi-chargepoint wheel is {base}"
    assert [p.name for p in releases.iterdir()] == []
