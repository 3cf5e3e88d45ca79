"""``ReleaseInstaller``: the releases directory as the Firmware Management block needs it
(``firmware.ports.FirmwareInstaller``, issue 14).

Each version is a venv of its own under the releases directory; an install is made in a
staging directory and renamed into place at the end, so a release directory is whole or
absent.  ``current`` is switched by renaming a new symlink over it; the release that was
current is kept as ``previous`` and older ones are pruned.  The watch of a release on trial is
the launcher's (``firmware.release.launcher``, outside every release); this class writes the
trial, ends it (``confirm``) and reads its outcome.  The layout is described in the
launcher's docstring and docs/firmware.md, "Install layout and rollback".
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.resources import files
from pathlib import Path

from firmware.ports import FirmwareInstallFailed, TrialOutcome
from firmware.release import launcher
from firmware.release.launcher import CURRENT, OUTCOME, PREVIOUS, RELEASE_MARK, TRIAL

log = logging.getLogger(__name__)

PIP_TIMEOUT_S = 600.0
LAUNCHER_FILE = "launcher.py"
_STAGING = ".staging-"
_TRASH = ".trash-"


def running_release() -> Path | None:
    """The release directory this interpreter runs from (a venv the installer made), or None
    (a source tree, a developer's venv)."""
    prefix = Path(sys.prefix)
    return prefix if (prefix / RELEASE_MARK).is_file() else None


def base_python() -> str:
    """The interpreter under the venv: new releases' venvs and the launcher use it."""
    return os.path.realpath(sys.executable)


class ReleaseInstaller:
    """The releases directory ``releases`` (created on first use).

    ``running_version``: the version of this process (``settings.package_version()``): only
    that version can end its own trial.  ``boot_timeout_s``: how long a new release has, from
    each start, to reach BootNotification Accepted.  ``compile_bytecode``: compile the new
    release's modules at install (a Pi: the service cannot write them later under
    ProtectSystem=strict, and starts faster); tests leave it off."""

    def __init__(
        self,
        releases: Path,
        *,
        running_version: str,
        boot_timeout_s: int = launcher.DEFAULT_BOOT_TIMEOUT_S,
        compile_bytecode: bool = True,
    ) -> None:
        self.releases = releases
        self.running_version = running_version
        self.boot_timeout_s = boot_timeout_s
        self.compile_bytecode = compile_bytecode

    # ------------------------------------------------------------ FirmwareInstaller

    def check(self, bundle_path: Path) -> str:
        # The bundle reader (tarfile, packaging) only when an update comes, not at every start
        # (the trial's confirmation needs none of it; issue 15).
        from firmware.release import bundle

        version = bundle.check(bundle_path).version
        # Installing it would replace the running release's directory in place, with no trial
        # and nothing to go back to (``activate`` refuses it, but only afterwards).
        if version == self._current():
            raise FirmwareInstallFailed(f"{version} is the current release already")
        return version

    def install(self, bundle_path: Path) -> str:
        from firmware.release import bundle

        self._ensure_dir()
        self._clean_leftovers()
        staging = Path(tempfile.mkdtemp(prefix=_STAGING, dir=self.releases))
        try:
            wheels = staging / "wheels"
            wheels.mkdir()
            manifest = bundle.check(bundle_path, into=wheels)
            version = manifest.version
            venv = staging / "venv"
            self._run(
                [base_python(), "-m", "venv", "--without-pip", str(venv)], "creating the venv"
            )
            pip = [str(venv / "bin" / "python"), str(wheels / manifest.installer_wheel / "pip")]
            self._run(
                [
                    *pip,
                    "install",
                    "--no-index",
                    "--find-links",
                    str(wheels),
                    "--no-cache-dir",
                    "--disable-pip-version-check",
                    "--no-warn-script-location",
                    "--quiet",
                    *([] if self.compile_bytecode else ["--no-compile"]),
                    str(wheels / manifest.product_wheel),
                    *manifest.requires,
                ],
                f"installing {manifest.product} {version}",
            )
            # The release's directory name, the trial and the BootNotification must agree: a
            # manifest that names another version than the product's own would be on trial
            # as a version that never runs (and rolled back for "no BootNotification").
            own = _installed_version(venv, manifest.product)
            if own != version:
                raise FirmwareInstallFailed(
                    f"the bundle says version {version}, its {manifest.product} wheel is {own}"
                )
            final = self.releases / version
            _retarget_scripts(venv / "bin", str(venv), str(final))
            launcher.write_json(venv / RELEASE_MARK, manifest.as_json())
            if final.exists():  # installed again from scratch
                os.replace(final, self.releases / f"{_TRASH}{version}-{os.getpid()}")
            os.replace(venv, final)
            launcher.sync_dir(self.releases)
        except OSError as exc:
            raise FirmwareInstallFailed(f"cannot install into {self.releases}: {exc}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            self._clean_leftovers()
        log.info("release %s installed in %s", version, final)
        return version

    def activate(self, version: str) -> None:
        current = self._current()
        if not (self.releases / version / RELEASE_MARK).is_file():
            raise FirmwareInstallFailed(f"release {version} is not installed")
        if current is None:
            raise FirmwareInstallFailed(
                f"no current release in {self.releases} to go back to: start the controller "
                "from an installed release (docs/install.md)"
            )
        if current == version:
            raise FirmwareInstallFailed(f"{version} is the current release already")
        try:
            self.install_launcher()
            with launcher.locked(self.releases):
                # An update during a trial goes back to the last release that proved itself.
                trial = launcher.read_trial(self.releases)
                back_to = str(trial["previous"]) if trial and trial.get("previous") else current
                launcher.write_json(
                    self.releases / TRIAL,
                    {
                        "version": version,
                        "previous": back_to,
                        "crashes": 0,
                        "boot_timeout_s": self.boot_timeout_s,
                    },
                )
                launcher.point(self.releases, PREVIOUS, back_to)
                launcher.point(self.releases, CURRENT, version)
            self._prune(keep={version, back_to})
        except OSError as exc:
            raise FirmwareInstallFailed(f"cannot activate {version}: {exc}") from None
        log.info("release %s on trial (back to %s if it fails)", version, current)

    def restart_argv(self) -> list[str]:
        """The launcher (which starts ``current``) when this process runs from a release or an
        update waits to start, else this process's own command line."""
        script = self.releases / LAUNCHER_FILE
        if script.is_file() and (
            running_release() is not None or (self.releases / TRIAL).is_file()
        ):
            return self.launcher_argv(sys.argv[1:])
        return [sys.executable, *sys.orig_argv[1:]]

    def confirm(self) -> None:
        if not (self.releases / TRIAL).is_file():
            return
        with launcher.locked(self.releases):
            trial = launcher.on_trial(self.releases, self.running_version)
            if trial is None:
                return
            launcher.write_json(
                self.releases / OUTCOME,
                {"version": self.running_version, "installed": True, "reason": ""},
            )
            (self.releases / TRIAL).unlink()
            launcher.sync_dir(self.releases)
        log.info("release %s proved itself (BootNotification Accepted)", self.running_version)

    def outcome(self) -> TrialOutcome | None:
        data = launcher.read_json(self.releases / OUTCOME)
        if data is None:
            return None
        return TrialOutcome(
            version=str(data.get("version", "")),
            installed=bool(data.get("installed")),
            reason=str(data.get("reason", "")),
        )

    def reported(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.releases / OUTCOME).unlink()

    # ------------------------------------------------------------ the layout

    def launcher_argv(self, args: list[str]) -> list[str]:
        """The command line of the launcher for the controller arguments ``args``."""
        return [
            base_python(),
            "-I",
            str(self.releases / LAUNCHER_FILE),
            "--releases",
            str(self.releases),
            "--",
            *args,
        ]

    def install_launcher(self) -> None:
        """Write ``<releases>/launcher.py`` from this (trusted, running) release's copy."""
        self._ensure_dir()
        text = files("firmware.release").joinpath("launcher.py").read_text(encoding="utf-8")
        target = self.releases / LAUNCHER_FILE
        if target.is_file() and target.read_text(encoding="utf-8") == text:
            return
        tmp = target.with_name(f".{LAUNCHER_FILE}.tmp-{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)

    def adopt(self, version: str) -> None:
        """Make the installed ``version`` current without a trial (install/install.sh: an
        operator is there; a first install has nothing to go back to).  The release that was
        current is kept as ``previous``."""
        if not (self.releases / version / RELEASE_MARK).is_file():
            raise FirmwareInstallFailed(f"release {version} is not installed")
        try:
            self.install_launcher()
            with launcher.locked(self.releases):
                current = self._current()
                if current is not None and current != version:
                    launcher.point(self.releases, PREVIOUS, current)
                launcher.point(self.releases, CURRENT, version)
                # A trial of another version is over: the operator chose this one.
                with contextlib.suppress(FileNotFoundError):
                    (self.releases / TRIAL).unlink()
            self._prune(keep={version, current or version})
        except OSError as exc:
            raise FirmwareInstallFailed(f"cannot make {version} current: {exc}") from None

    def versions(self) -> list[str]:
        """Installed releases, oldest first."""
        if not self.releases.is_dir():
            return []
        found = [
            p
            for p in self.releases.iterdir()
            if not p.is_symlink() and (p / RELEASE_MARK).is_file()
        ]
        return [p.name for p in sorted(found, key=lambda p: p.stat().st_mtime)]

    def _current(self) -> str | None:
        return launcher.linked(self.releases, CURRENT)

    def _ensure_dir(self) -> None:
        try:
            self.releases.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FirmwareInstallFailed(f"cannot create {self.releases}: {exc}") from None

    def _prune(self, keep: set[str]) -> None:
        """Remove releases other than ``keep`` (current and the one to go back to)."""
        for version in self.versions():
            if version not in keep:
                log.info("removing the old release %s", version)
                shutil.rmtree(self.releases / version, ignore_errors=True)

    def _clean_leftovers(self) -> None:
        """Staging and replaced directories of an install that was cut short (power loss)."""
        for path in self.releases.iterdir():
            if path.name.startswith((_STAGING, _TRASH)) and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)

    def _run(self, argv: list[str], what: str) -> None:
        # The machine's pip configuration (an index, constraints) must not change an offline
        # install from the bundle.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
        env["PIP_CONFIG_FILE"] = os.devnull
        started = time.monotonic()
        try:
            result = subprocess.run(
                argv, capture_output=True, text=True, env=env, timeout=PIP_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FirmwareInstallFailed(f"{what} failed: {exc}") from None
        if result.returncode != 0:
            raise FirmwareInstallFailed(f"{what} failed: {pip_error(result)}")
        log.debug("%s took %.1f s", what, time.monotonic() - started)


def pip_error(result: subprocess.CompletedProcess[str]) -> str:
    """The line of a failed pip (or venv) run worth showing: the projects that have no
    distribution for the target when pip says so (a resolution conflict buries them under
    every version it tried), else pip's first ERROR, which names the package (its last line
    is often only a link to its docs)."""
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    missing = _without_distribution(f"{result.stdout or ''}\n{result.stderr}")
    if missing:
        return f"no matching distribution (wheel) of {', '.join(missing)}"
    errors = [line for line in lines if line.startswith("ERROR:")] or lines[-1:]
    return errors[0][:300] if errors else f"exit status {result.returncode}"


def _without_distribution(stderr: str) -> list[str]:
    """The projects pip names as having no matching distribution for the environment."""
    names: list[str] = []
    listing = False
    for raw in stderr.splitlines():
        line = raw.strip()
        if "No matching distribution found for " in line:
            names.append(line.rsplit("No matching distribution found for ", 1)[1].split()[0])
        elif "have no matching distributions available for your environment" in line:
            listing = True
        elif listing and raw.startswith((" ", "\t")) and line:
            names.append(line)
        else:
            listing = False
    return list(dict.fromkeys(names))


def _installed_version(venv: Path, product: str) -> str | None:
    """The version (normalised) of ``product`` as installed in ``venv`` (its METADATA)."""
    from email.parser import HeaderParser

    from packaging.version import InvalidVersion, Version

    from firmware.release.manifest import wheel_project

    for metadata in venv.glob(
        f"lib/python*/site-packages/{wheel_project(product)}-*.dist-info/METADATA"
    ):
        raw = HeaderParser().parsestr(metadata.read_text(encoding="utf-8")).get("Version", "")
        try:
            return str(Version(raw))
        except InvalidVersion:
            return raw or None
    return None


def _retarget_scripts(bin_dir: Path, old: str, new: str) -> None:
    """A venv names its own path in its scripts (``#!`` lines, activate): they were written in
    the staging directory and must name the final one."""
    for path in bin_dir.iterdir():
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if old.encode() in data[:4096] or (
            path.name.startswith("activate") and old.encode() in data
        ):
            mode = path.stat().st_mode
            path.write_bytes(data.replace(old.encode(), new.encode()))
            path.chmod(mode)
