"""Releases of this product (issue 14, items 1 and 2): the bundle (``manifest``, ``bundle``,
``build``, ``signing``), the releases directory and the trial of a new release
(``installer``, ``launcher``).  docs/firmware.md tells manufacturers and operators how to use
them; the Firmware Management block reaches them through ``firmware.ports.FirmwareInstaller``.
"""

from __future__ import annotations

import os
from pathlib import Path

from firmware.release.installer import ReleaseInstaller, running_release
from firmware.release.launcher import LAUNCHER_ENV


def releases_dir(state_dir: Path) -> Path:
    """Where releases live: the directory holding the release this process runs from
    (``/opt/chargepoint/releases`` on a Pi), else ``<state_dir>/releases`` (the bench, a
    source tree)."""
    release = running_release()
    return release.parent if release is not None else state_dir / "releases"


def installer_for(
    state_dir: Path, running_version: str, boot_timeout_s: int, compile_bytecode: bool = True
) -> ReleaseInstaller:
    """The controller's installer (the composition root wires it)."""
    return ReleaseInstaller(
        releases_dir(state_dir),
        running_version=running_version,
        boot_timeout_s=boot_timeout_s,
        compile_bytecode=compile_bytecode,
    )


def launched() -> bool:
    """True when the launcher started this process: it restarts it, and watches a trial."""
    return bool(os.environ.get(LAUNCHER_ENV))


def launcher_command(args: list[str]) -> list[str] | None:
    """``chargepoint run`` by hand from an installed release takes the same path as the
    service: the launcher's command line to execute instead, or None (already launched, or
    not a release: a source tree runs as it is)."""
    release = running_release()
    if launched() or release is None:
        return None
    installer = ReleaseInstaller(release.parent, running_version="")
    if not (release.parent / "launcher.py").is_file():
        return None
    return installer.launcher_argv(args)


__all__ = [
    "ReleaseInstaller",
    "installer_for",
    "launched",
    "launcher_command",
    "releases_dir",
    "running_release",
]
