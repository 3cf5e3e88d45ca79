"""``chargepoint release build``: the release bundle of a checkout (``firmware.release.manifest``
describes the file).

The product's wheel is built from a copy of the checkout (the tree is not written to); the
dependencies are fetched as wheels with ``pip download --only-binary=:all:`` for each target
machine, so no compiler runs on the charger: for the Raspberry Pi targets (bookworm, CPython
3.11, aarch64 and armv7l) pip is told the target's platform tags.  A dependency without a wheel
for a target fails the build with pip's line naming it and the way out: ``--wheels DIR``,
wheels built on (or for) the target that fill the gaps PyPI leaves (for armv7l, cffi:
scripts/build-armv7l-wheels builds it in an emulated armhf root), or piwheels.org
(``--extra-index-url https://www.piwheels.org/simple``).  pip evaluates
environment markers for the machine it runs on, so the product's own requirements are chosen
here for each target (``rpi-lgpio`` is only for the Pi).
"""

from __future__ import annotations

import email.message
import email.parser
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from firmware.release.installer import pip_error
from firmware.release.manifest import (
    INSTALLER_WHEEL,
    MANIFEST,
    PRODUCT,
    WHEELS,
    Manifest,
    platform_tag,
    wheel_project,
)

# Raspberry Pi OS bookworm: glibc 2.36, so manylinux wheels up to 2_36 run.
_MANYLINUX = [f"manylinux_2_{n}" for n in range(36, 16, -1)] + ["manylinux2014"]
SOURCE_PARTS = ("pyproject.toml", "README.md", "LICENSE", "firmware", "hal", "centralsystem")


class BuildFailed(Exception):
    """The bundle cannot be built; one line."""


@dataclass(frozen=True)
class Target:
    """A machine the bundle is for: ``machine`` None is the machine building it (tests,
    bench)."""

    python: tuple[int, int]
    machine: str | None

    @property
    def tag(self) -> str:
        return platform_tag(self.python, self.machine)

    def pip_options(self) -> list[str]:
        if self.machine is None:
            return []
        major, minor = self.python
        options = ["--python-version", f"{major}.{minor}", "--implementation", "cp"]
        options += ["--abi", f"cp{major}{minor}", "--abi", "abi3", "--abi", "none"]
        for platform in [*_MANYLINUX, "linux"]:
            options += ["--platform", f"{platform}_{self.machine}"]
        return options

    def marker_environment(self) -> dict[str, str]:
        major, minor = self.python
        env = {
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "os_name": "posix",
            "sys_platform": "linux",
            "platform_system": "Linux",
            "python_version": f"{major}.{minor}",
            "python_full_version": f"{major}.{minor}.0",
            "extra": "",
        }
        if self.machine is not None:
            env["platform_machine"] = self.machine
        return env


TARGETS: dict[str, list[Target]] = {
    # Raspberry Pi OS bookworm, 64 and 32 bit.
    "pi": [Target((3, 11), "aarch64"), Target((3, 11), "armv7l")],
    "pi64": [Target((3, 11), "aarch64")],
    "pi32": [Target((3, 11), "armv7l")],
    # The machine running the build (the bench, the tests).
    "host": [Target(sys.version_info[:2], None)],
}


def build(
    source: Path,
    out_dir: Path,
    target: str = "pi",
    *,
    pip_args: Sequence[str] = (),
    version: str | None = None,
    with_: Sequence[str] = (),
    wheels: Sequence[Path] = (),
) -> Path:
    """Build the bundle of the checkout ``source`` for ``target`` (a key of TARGETS) into
    ``out_dir``; returns its path (``pi-chargepoint-<version>-<target>.tar``).  ``pip_args``
    go to every pip command (``--no-index``, ``--find-links DIR``, ``--extra-index-url``).
    ``with_``: more projects to ship and install with the product (a manufacturer's plug-in:
    a requirement, or the path of its wheel).  ``wheels``: directories of wheels built for
    a target (``--wheels``, checked by ``local_wheels``), taken where no index has one; each
    is in the manifest with its sha256 like every other wheel.  Raises BuildFailed."""
    if target not in TARGETS:
        raise BuildFailed(f"unknown target {target!r} (one of {', '.join(TARGETS)})")
    local_wheels(wheels)
    missing = [p for p in SOURCE_PARTS[:1] if not (source / p).exists()]
    if missing:
        raise BuildFailed(f"{source} is not a checkout of {PRODUCT} (no {missing[0]})")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="release-build-") as tmp_name:
        tmp = Path(tmp_name)
        copy = tmp / "src"
        copy.mkdir()
        for part in SOURCE_PARTS:
            if (source / part).is_dir():
                shutil.copytree(
                    source / part, copy / part, ignore=shutil.ignore_patterns("__pycache__")
                )
            elif (source / part).exists():
                shutil.copy(source / part, copy / part)
        if version is not None:
            _set_version(copy / "pyproject.toml", version)
        product = tmp / "product"
        _pip(["wheel", "--no-deps", "--wheel-dir", str(product), str(copy)], pip_args)
        gathered = tmp / "wheels"
        gathered.mkdir()
        product_wheel = next(product.glob("*.whl"))
        shutil.copy(product_wheel, gathered)
        meta = _metadata(product_wheel)
        extra = [str(Path(w).resolve()) if w.endswith(".whl") else w for w in with_]
        try:
            names = [
                str(_metadata(Path(w))["Name"]) if w.endswith(".whl") else Requirement(w).name
                for w in extra
            ]
        except (OSError, ValueError, KeyError, StopIteration, zipfile.BadZipFile) as exc:
            raise BuildFailed(f"--with: cannot use {exc}") from None
        for t in TARGETS[target]:
            env = t.marker_environment()
            requirements = [
                str(r)
                for r in (Requirement(line) for line in meta.get_all("Requires-Dist") or [])
                if r.marker is None or Marker(str(r.marker)).evaluate(env)
            ]
            # Requirement.str keeps markers: drop them, they were evaluated for the target.
            requirements = [r.split(";")[0].strip() for r in requirements]
            gather(
                t,
                [*requirements, *extra, INSTALLER_WHEEL],
                gathered,
                # A plug-in requires the product: this one, not one from an index.
                pip_args=["--find-links", str(product), *pip_args],
                wheels=wheels,
            )
        manifest = Manifest(
            product=PRODUCT,
            version=str(meta["Version"]),
            requires_python=str(meta.get("Requires-Python") or ""),
            platforms=tuple(t.tag for t in TARGETS[target]),
            wheels=wheel_hashes(gathered),
            requires=tuple(names),
        )
        return write_bundle(
            manifest, gathered, out_dir / f"{PRODUCT}-{manifest.version}-{target}.tar"
        )


def gather(
    target: Target,
    requirements: Sequence[str],
    dest: Path,
    *,
    pip_args: Sequence[str] = (),
    wheels: Sequence[Path] = (),
) -> None:
    """Download the wheels of ``requirements`` (and of everything they require) for
    ``target`` into ``dest``: wheels only, from the index (or ``pip_args``'s sources) and
    from the ``wheels`` directories, which pip weighs like an index (the newest version that
    has a wheel for the target wins).  Raises BuildFailed naming the project without a wheel
    and ``--wheels``."""
    find_links = [arg for d in wheels for arg in ("--find-links", str(d))]
    _pip(
        [
            "download",
            "--only-binary=:all:",
            "--dest",
            str(dest),
            *target.pip_options(),
            *find_links,
            *requirements,
        ],
        pip_args,
        f"for {target.tag}",
        missing_wheel_hint(target),
    )


def wheel_hashes(directory: Path) -> dict[str, str]:
    """The manifest's ``wheels``: each ``*.whl`` file name in ``directory`` -> its sha256."""
    return {p.name: _sha256(p) for p in sorted(directory.glob("*.whl"))}


def local_wheels(directories: Sequence[Path]) -> dict[str, Path]:
    """The wheels of the ``--wheels`` directories, file name -> path, after checking each
    one: a directory holding at least one ``*.whl`` (subdirectories are not read, as pip's
    ``--find-links``), each a zip whose ``.dist-info/METADATA`` has the name and version of
    its file name (PEP 427).  Raises BuildFailed, one line naming the directory or file."""
    found: dict[str, Path] = {}
    for directory in directories:
        if not directory.is_dir():
            raise BuildFailed(f"--wheels {directory}: not a directory")
        files = sorted(directory.glob("*.whl"))
        if not files:
            raise BuildFailed(f"--wheels {directory}: no wheel (*.whl) in it")
        for path in files:
            _check_wheel(path)
            found.setdefault(path.name, path)
    return found


def _check_wheel(path: Path) -> None:
    try:
        name, version, _, _ = parse_wheel_filename(path.name)
        meta = _metadata(path)
    except InvalidWheelFilename:
        raise BuildFailed(
            f"--wheels {path}: not a wheel's file name (NAME-VERSION-PYTHON-ABI-PLATFORM.whl)"
        ) from None
    except (OSError, zipfile.BadZipFile, StopIteration, UnicodeDecodeError) as exc:
        why = str(exc) or "no .dist-info/METADATA"
        raise BuildFailed(f"--wheels {path}: not a wheel ({why})") from None
    said = (canonicalize_name(str(meta["Name"] or "")), str(meta["Version"] or ""))
    if said != (name, str(version)):
        raise BuildFailed(
            f"--wheels {path}: its METADATA says {said[0]} {said[1]}, its name {name} {version}"
        )


def missing_wheel_hint(target: Target) -> str:
    """What a failed download for ``target`` adds: where a missing wheel can come from."""
    if target.machine == "armv7l":
        return (
            " (PyPI has no armv7l wheel of it: build it with scripts/build-armv7l-wheels and "
            "add --wheels .cache/armv7l-wheels, or add "
            "--pip=--extra-index-url=https://www.piwheels.org/simple)"
        )
    return " (build its wheel for the target and add --wheels DIR)"


def write_bundle(manifest: Manifest, wheels: Path, path: Path) -> Path:
    """The bundle file of ``manifest`` and the wheels in ``wheels`` (each named in the
    manifest), written to a temporary name and renamed into place."""
    import io
    import json

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    data = json.dumps(manifest.as_json(), indent=2).encode() + b"\n"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
        for name in sorted(manifest.wheels):
            tar.add(wheels / name, arcname=f"{WHEELS}{name}", recursive=False)
    os.replace(tmp, path)
    return path


def _pip(args: list[str], extra: Sequence[str], what: str = "", hint: str = "") -> None:
    command = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check", *extra]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        error = pip_error(result)
        # The hint is for a missing wheel only, not for a network or resolution failure.
        hint = hint if error.startswith("no matching distribution") else ""
        raise BuildFailed(f"pip {args[0]} {what} failed: {error}{hint}".replace("  ", " "))


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(z.read(name).decode("utf-8"))


def _set_version(pyproject: Path, version: str) -> None:
    lines = pyproject.read_text(encoding="utf-8").splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("version = "):
            lines[i] = f'version = "{version}"\n'
            break
    pyproject.write_text("".join(lines), encoding="utf-8")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 16):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = [
    "TARGETS",
    "BuildFailed",
    "Target",
    "build",
    "gather",
    "local_wheels",
    "missing_wheel_hint",
    "wheel_hashes",
    "wheel_project",
    "write_bundle",
]
