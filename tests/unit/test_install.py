"""install/install.sh and install/uninstall.sh, staged into a temporary root (``--root``).

The scripts run for real (bash, install, python -m venv) but never touch this machine: in
prefix mode they write the system-changing commands (useradd, chown, systemctl, userdel) to
``<root>/commands-not-run.log``.  As a second guard, PATH starts with trap programs of those
names that record any real call; the tests require that none happened.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO

INSTALL = REPO / "install" / "install.sh"
UNINSTALL = REPO / "install" / "uninstall.sh"
TRAPPED = ("useradd", "usermod", "userdel", "groupadd", "chown", "systemctl")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    trap_dir = tmp_path / "trap-bin"
    trap_dir.mkdir()
    calls = tmp_path / "REAL-CALLS"
    for name in TRAPPED:
        trap = trap_dir / name
        trap.write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\nexit 97\n')
        trap.chmod(0o755)
    environ = {k: v for k, v in os.environ.items() if k != "DESTDIR"}
    return {**environ, "PATH": f"{trap_dir}{os.pathsep}{environ.get('PATH', '')}"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture(autouse=True)
def no_real_system_calls(tmp_path: Path) -> Iterator[None]:
    yield
    calls = tmp_path / "REAL-CALLS"
    assert not calls.exists(), f"a script changed the real system: {calls.read_text()}"


def sh(script: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def install(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = sh(INSTALL, "--root", str(root), "--skip-pip", "--python", sys.executable, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def not_run(root: Path) -> list[str]:
    return (root / "commands-not-run.log").read_text().splitlines()


def test_install_puts_every_file_in_place_with_its_mode(root: Path, env: dict[str, str]) -> None:
    result = install(root, env)
    config = root / "etc/chargepoint/chargepoint.toml"
    assert config.read_text() == (REPO / "config/pi.toml").read_text()
    assert mode(config) == 0o640  # may hold a password: service group only
    assert mode(root / "etc/chargepoint") == 0o750
    assert mode(root / "var/lib/chargepoint") == 0o750
    unit = root / "etc/systemd/system/chargepoint.service"
    assert unit.read_text() == (REPO / "systemd/chargepoint.service").read_text()
    assert mode(unit) == 0o644
    # --skip-pip: the releases directory and its launcher, no release yet
    launcher = root / "opt/chargepoint/releases/launcher.py"
    assert launcher.read_text() == (REPO / "firmware/release/launcher.py").read_text()
    assert not (root / "opt/chargepoint/releases/current").exists()
    assert not (root / "opt/chargepoint/venv").exists()
    assert (root / "opt/chargepoint/share/chargepoint.toml.example").is_file()
    assert (root / "opt/chargepoint/docs/install.md").is_file()
    assert "wrote /etc/chargepoint/chargepoint.toml" in result.stdout
    commands = not_run(root)
    assert (
        "useradd --system --user-group --home-dir /var/lib/chargepoint --no-create-home "
        "--shell /usr/sbin/nologin --groups gpio,dialout chargepoint"
    ) in commands
    assert "chown root:chargepoint /etc/chargepoint/chargepoint.toml" in commands
    assert "chown -R chargepoint:chargepoint /var/lib/chargepoint" in commands
    # The service installs updates there.
    assert "chown -R chargepoint:chargepoint /opt/chargepoint/releases" in commands
    assert commands[-2:] == ["systemctl daemon-reload", "systemctl enable chargepoint.service"]


def test_rerun_upgrades_and_keeps_config_and_state(root: Path, env: dict[str, str]) -> None:
    install(root, env)
    config = root / "etc/chargepoint/chargepoint.toml"
    config.write_text('[chargepoint]\nid = "SITE-7"\n')
    state = root / "var/lib/chargepoint/transactions.db"
    state.write_bytes(b"precious")
    (root / "commands-not-run.log").unlink()

    result = install(root, env)
    assert (
        "upgrading" in result.stdout
        and "keeping /etc/chargepoint/chargepoint.toml" in result.stdout
    )
    assert config.read_text() == '[chargepoint]\nid = "SITE-7"\n'
    assert mode(config) == 0o640
    assert state.read_bytes() == b"precious"
    # Only a running service is restarted; the config file is not chowned again.
    assert not_run(root)[-1] == "systemctl try-restart chargepoint.service"
    assert "chown root:chargepoint /etc/chargepoint/chargepoint.toml" not in not_run(root)


def test_uninstall_keeps_config_and_state(root: Path, env: dict[str, str]) -> None:
    install(root, env)
    state = root / "var/lib/chargepoint/transactions.db"
    state.write_bytes(b"precious")
    result = sh(UNINSTALL, "--root", str(root), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (root / "opt/chargepoint").exists()
    assert not (root / "etc/systemd/system/chargepoint.service").exists()
    assert (root / "etc/chargepoint/chargepoint.toml").is_file()
    assert state.read_bytes() == b"precious"
    assert "systemctl disable --now chargepoint.service" in not_run(root)
    assert not any(c.startswith("userdel") for c in not_run(root))


def test_purge_removes_config_state_and_the_user(root: Path, env: dict[str, str]) -> None:
    install(root, env)
    result = sh(UNINSTALL, "--root", str(root), "--purge", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    for gone in (
        "opt/chargepoint",
        "etc/chargepoint",
        "var/lib/chargepoint",
        "etc/systemd/system/chargepoint.service",
    ):
        assert not (root / gone).exists(), gone
    assert not_run(root)[-1] == "userdel chargepoint"


def test_destdir_is_the_same_as_root(root: Path, env: dict[str, str]) -> None:
    result = sh(
        INSTALL, "--skip-pip", "--python", sys.executable, env={**env, "DESTDIR": str(root)}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (root / "etc/chargepoint/chargepoint.toml").is_file()
    assert "systemctl enable chargepoint.service" in not_run(root)


def test_scripts_parse_and_reject_unknown_arguments(root: Path, env: dict[str, str]) -> None:
    for script in (INSTALL, UNINSTALL):
        assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
        assert os.access(script, os.X_OK)
        bad = sh(script, "--root", str(root), "--frobnicate", env=env)
        assert bad.returncode == 2 and "unknown argument --frobnicate" in bad.stderr
    assert not root.exists()
