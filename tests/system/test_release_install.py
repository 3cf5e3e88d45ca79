"""install/install.sh with a real release bundle of this product, staged into a temporary root
(``--root``: system commands are recorded, not run; trap programs of those names guard the
machine as in tests/unit/test_install.py): a first install into the releases layout, an
upgrade to a newer release, and an upgrade of an install of the layout before releases
(/opt/chargepoint/venv).  Configuration and state are kept; the installed release runs."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.release_bundles import Bundles
from tests.unit.test_install import TRAPPED, not_run

INSTALL = REPO / "install" / "install.sh"
OPT = "opt/chargepoint"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    trap_dir = tmp_path / "trap-bin"
    trap_dir.mkdir()
    for name in TRAPPED:
        trap = trap_dir / name
        trap.write_text(f'#!/bin/sh\necho "{name} $*" >> "{tmp_path / "REAL-CALLS"}"\nexit 97\n')
        trap.chmod(0o755)
    environ = {k: v for k, v in os.environ.items() if k != "DESTDIR"}
    return {**environ, "PATH": f"{trap_dir}{os.pathsep}{environ.get('PATH', '')}"}


def install(root: Path, env: dict[str, str], bundle: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["bash", str(INSTALL), "--root", str(root), "--bundle", str(bundle), "--no-compile"]
        + ["--python", os.path.realpath(sys.executable)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (root.parent / "REAL-CALLS").exists()
    return result


def version_of(root: Path) -> str:
    result = subprocess.run(
        [str(root / OPT / "releases/current/bin/chargepoint"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip().removeprefix("chargepoint ")


def test_first_install_then_an_upgrade_to_a_newer_release(
    tmp_path: Path, env: dict[str, str], release_bundles: Bundles
) -> None:
    root = tmp_path / "root"
    base, newer = (
        release_bundles.version(b) for b in (release_bundles.base, release_bundles.newer)
    )
    result = install(root, env, release_bundles.base)
    releases = root / OPT / "releases"
    assert os.readlink(releases / "current") == base
    assert version_of(root) == base
    assert (releases / "launcher.py").read_text() == (
        REPO / "firmware/release/launcher.py"
    ).read_text()
    assert (root / OPT / "VERSION").read_text() == f"{base}\n"
    assert "chown -R chargepoint:chargepoint /opt/chargepoint/releases" in not_run(root)
    assert f"release {base} installed" in result.stdout
    config = root / "etc/chargepoint/chargepoint.toml"
    config.write_text('[chargepoint]\nid = "SITE-7"\n')
    state = root / "var/lib/chargepoint/transactions.db"
    state.write_bytes(b"precious")

    result = install(root, env, release_bundles.newer)
    assert "upgrading" in result.stdout
    assert os.readlink(releases / "current") == newer
    assert os.readlink(releases / "previous") == base
    assert version_of(root) == newer
    assert (root / OPT / "VERSION").read_text() == f"{newer}\n"
    assert config.read_text() == '[chargepoint]\nid = "SITE-7"\n'
    assert state.read_bytes() == b"precious"
    assert not_run(root)[-1] == "systemctl try-restart chargepoint.service"


def test_an_install_of_the_layout_before_releases_is_upgraded(
    tmp_path: Path, env: dict[str, str], release_bundles: Bundles
) -> None:
    """What install.sh of the venv layout left: /opt/chargepoint/venv, its unit, a config and
    state."""
    root = tmp_path / "root"
    old_venv = root / OPT / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(old_venv)], check=True)
    (root / OPT / "VERSION").write_text("0.0.9\n")
    unit = root / "etc/systemd/system/chargepoint.service"
    unit.parent.mkdir(parents=True)
    old_unit = (REPO / "systemd/chargepoint.service").read_text()
    unit.write_text(
        old_unit.replace(
            "/usr/bin/python3 -I /opt/chargepoint/releases/launcher.py --service -- run",
            "/opt/chargepoint/venv/bin/chargepoint run",
        )
    )
    config = root / "etc/chargepoint/chargepoint.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[chargepoint]\nid = "OLD-1"\n')
    state = root / "var/lib/chargepoint/keys.db"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"keys")

    result = install(root, env, release_bundles.base)
    base = release_bundles.version(release_bundles.base)
    assert "upgrading" in result.stdout
    assert "removed /opt/chargepoint/venv (the layout before releases)" in result.stdout
    assert not old_venv.exists()
    assert version_of(root) == base
    assert unit.read_text() == old_unit  # the new unit: the launcher and the releases
    assert config.read_text() == '[chargepoint]\nid = "OLD-1"\n'
    assert state.read_bytes() == b"keys"
    assert not_run(root)[-1] == "systemctl try-restart chargepoint.service"
    # The old daemon runs from the old venv (and imports from it) until the try-restart
    # stops it: the venv goes after that, not while it runs.
    out = result.stdout
    assert out.index("try-restart chargepoint.service") < out.index("removed /opt/chargepoint/venv")


@pytest.mark.parametrize(
    "damage, reason",
    [
        ("truncated", "is not a whole release bundle (tar: Unexpected EOF"),
        # A byte of the last wheel: tar reads on, the installer's check finds it.
        ("a byte changed", "cannot install"),
    ],
)
def test_a_damaged_bundle_installs_nothing(
    tmp_path: Path, env: dict[str, str], release_bundles: Bundles, damage: str, reason: str
) -> None:
    root = tmp_path / "root"
    install(root, env, release_bundles.base)
    damaged = tmp_path / release_bundles.newer.name
    data = bytearray(release_bundles.newer.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        with tarfile.open(release_bundles.newer) as tar:
            last = tar.getmembers()[-1]
        data[last.offset_data + last.size // 2] ^= 1  # inside the last wheel
    damaged.write_bytes(bytes(data))
    result = subprocess.run(
        ["bash", str(INSTALL), "--root", str(root), "--bundle", str(damaged)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    assert reason in result.stderr, result.stderr
    assert "sha256 of" in result.stderr or damage == "truncated"
    releases = root / OPT / "releases"
    base = release_bundles.version(release_bundles.base)
    assert os.readlink(releases / "current") == base
    assert sorted(p.name for p in releases.iterdir() if not p.name.startswith(".")) == [
        base,
        "current",
        "launcher.py",
    ]
    assert not [p for p in releases.iterdir() if p.name.startswith((".staging", ".trash"))]


def test_install_from_the_checkout_builds_a_bundle_first(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """No --bundle: install.sh builds the bundle of this checkout (here offline, pip pointed
    at .cache/wheels through its environment) and installs it the same way."""
    from tests.release_bundles import WHEEL_CACHE

    root = tmp_path / "root"
    offline = {**env, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEEL_CACHE)}
    result = subprocess.run(
        ["bash", str(INSTALL), "--root", str(root), "--no-compile"]
        + ["--python", os.path.realpath(sys.executable)],
        capture_output=True,
        text=True,
        env=offline,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "building the release bundle of" in result.stdout
    from importlib.metadata import version

    assert version_of(root) == version("pi-chargepoint")
    assert not (tmp_path / "REAL-CALLS").exists()
