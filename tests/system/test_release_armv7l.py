"""The armv7l release bundle, installed and started on an emulated Raspberry Pi OS 32 bit (issue
14, item 1): ``chargepoint release build --target pi32 --wheels .cache/armv7l-wheels`` of this
tree, copied into the Debian bookworm armhf root scripts/build-armv7l-wheels made
(.cache/armhf-root, run by qemu-arm through binfmt_misc), installed there by install/install.sh
(staged with ``--root``: the release installer's own path, a venv from the bundle's wheels) with
no network at all (a new network namespace), then ``chargepoint --version`` and ``chargepoint
run`` on the bench configuration against this test's central system on 127.0.0.1 until its
BootNotification is Accepted.

It runs where scripts/build-armv7l-wheels has made the root and the wheels (once, online, as
root) and the tests run as root (chroot); elsewhere it is skipped with the reason.  About 35 s
on this project's 2-core x86_64 machine (the install without compiling bytecode, as the other
release tests).  By itself::

    sudo scripts/build-armv7l-wheels
    .venv/bin/python -m pytest tests/system/test_release_armv7l.py -p no:cacheprovider -rs

The bundle is built offline: PyPI's wheels from .cache/wheels and .cache/armv7l-wheels/pypi
(both filled online by the scripts), the compiled ones (cffi) from .cache/armv7l-wheels.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from centralsystem import CentralSystem
from firmware.release.build import build, local_wheels
from firmware.release.bundle import read_manifest
from tests.conftest import BENCH_TOML, REPO
from tests.release_bundles import WHEEL_CACHE
from tests.system.release_site import wait_boot

ROOT = REPO / ".cache" / "armhf-root"
ARMV7L_WHEELS = REPO / ".cache" / "armv7l-wheels"
# What install.sh reads from its checkout besides the bundle.
INSTALL_PARTS = ["install", "firmware/release/launcher.py", "docs", "config", "systemd"]
INSTALL_PARTS += ["pyproject.toml"]
ENV = ["/usr/bin/env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root", "LANG=C.UTF-8"]


def _not_here() -> str | None:
    if os.geteuid() != 0:
        return "needs root: chroot into the armhf root"
    if not (WHEEL_CACHE / ".complete").exists():
        return f"no {WHEEL_CACHE}: run scripts/setup-venv test (online)"
    for done in (ROOT / ".complete", ARMV7L_WHEELS / ".complete"):
        if not done.exists():
            return f"no {done.parent}: run sudo scripts/build-armv7l-wheels (docs/firmware.md)"
    return None


pytestmark = [
    pytest.mark.skipif(_not_here() is not None, reason=_not_here() or ""),
    pytest.mark.timeout(1800),
    pytest.mark.asyncio,
]


def in_root(*argv: str, network: bool = False, timeout: float = 900) -> str:
    """Run ``argv`` in the armhf root (emulated); its stdout.  ``network`` False: in a new
    network namespace, where nothing but its own loopback exists."""
    command = ["chroot", str(ROOT), *ENV, *argv]
    if not network:
        command = ["unshare", "--net", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
    return result.stdout


@pytest.fixture
def work() -> Iterator[Path]:
    """A directory in the root (``/tmp/armv7l-test``), with /proc mounted for the daemon."""
    path = ROOT / "tmp" / f"armv7l-test-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    proc = ROOT / "proc"
    mounted = not os.path.ismount(proc)
    if mounted:
        subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)
    yield path
    if mounted:
        subprocess.run(["umount", str(proc)], check=False)
    shutil.rmtree(path, ignore_errors=True)


async def test_the_armv7l_bundle_installs_offline_and_runs_on_emulated_pi_os(
    work: Path, csms: CentralSystem
) -> None:
    inside = "/" + str(work.relative_to(ROOT))
    bundle = await asyncio.to_thread(
        build,
        REPO,
        work,
        "pi32",
        pip_args=["--no-index", "--find-links", str(WHEEL_CACHE)]
        + ["--find-links", str(ARMV7L_WHEELS / "pypi")],
        wheels=[ARMV7L_WHEELS],
    )
    manifest = read_manifest(bundle)
    assert manifest.platforms == ("cp311-linux_armv7l",)
    compiled = local_wheels([ARMV7L_WHEELS])
    cffi = next(name for name in compiled if name.startswith("cffi-"))
    assert manifest.wheels[cffi] == hashlib.sha256(compiled[cffi].read_bytes()).hexdigest()

    src = work / "src"
    for part in INSTALL_PARTS:
        (src / part).parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (REPO / part).is_dir() else shutil.copy
        copy(REPO / part, src / part)
    out = await asyncio.to_thread(
        in_root,
        "bash",
        f"{inside}/src/install/install.sh",
        "--root",
        f"{inside}/stage",
        "--bundle",
        f"{inside}/{bundle.name}",
        "--python",
        "/usr/bin/python3",
        "--no-compile",
    )
    assert f"release {manifest.version} installed" in out
    chargepoint = f"{inside}/stage/opt/chargepoint/releases/current/bin/chargepoint"
    version = await asyncio.to_thread(in_root, chargepoint, "--version")
    assert version.strip() == f"chargepoint {manifest.version}"
    machine = await asyncio.to_thread(
        in_root,
        f"{inside}/stage/opt/chargepoint/releases/current/bin/python",
        "-c",
        "import sysconfig, cffi, cryptography; print(sysconfig.get_platform(), cffi.__version__)",
    )
    assert machine.split()[0] == "linux-armv7l"
    assert cffi.startswith(f"cffi-{machine.split()[1]}-")

    # The bench configuration, the web page off (its port is the host's: shared network).
    config = work / "chargepoint.toml"
    text = BENCH_TOML.read_text()
    config.write_text(text.replace("[web]\nenabled = true", "[web]\nenabled = false"))
    assert "enabled = false" in config.read_text()
    log = work / "controller.log"
    with log.open("w") as output:
        proc = await asyncio.create_subprocess_exec(
            "chroot",
            str(ROOT),
            *ENV,
            "PYTHONUNBUFFERED=1",
            chargepoint,
            "run",
            "--config",
            f"{inside}/chargepoint.toml",
            "--csms-url",
            csms.url,
            "--state-dir",
            f"{inside}/state",
            "--id",
            "ARMV7L-1",
            stdout=output,
            stderr=output,
        )
    try:
        await wait_boot(csms, manifest.version, timeout=900)
        answer = await csms.wait_for(
            lambda r: (
                r.direction == "tx"
                and r.message_type == "CALLRESULT"
                and r.action == "BootNotification"
            ),
            timeout=60,
        )
        assert answer.payload["status"] == "Accepted", log.read_text()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 120)
            except TimeoutError:
                proc.kill()
                await proc.wait()
