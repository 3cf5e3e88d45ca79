"""Real release bundles of this product for the tests (issue 14).

``base()`` is ``chargepoint release build --target host`` of this tree, made offline from
``.cache/wheels`` (``scripts/setup-venv test`` fills it once, online) and cached in
``.cache/release/<fingerprint of the sources>/``: built once, then reused until the product's
sources change.  The variants are made from it by rewriting the product's wheel only (its
version, and for the broken ones one file of its code), so they cost a second each and are
the same release in every other byte:

* ``newer``: the same code, a higher version;
* ``crashing``: raises at start (``python -m firmware`` fails before anything runs);
* ``silent``: starts and connects, but takes every BootNotification answer for Pending, so it
  never reaches Accepted.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from firmware.release.build import build, write_bundle
from firmware.release.manifest import MANIFEST, WHEELS, parse, wheel_project
from tests.conftest import REPO

WHEEL_CACHE = REPO / ".cache" / "wheels"
CACHE = REPO / ".cache" / "release"
SOURCES = ("pyproject.toml", "firmware", "hal", "centralsystem")

Patch = dict[str, Callable[[str], str]]  # file in the wheel -> new text from old


def _crash(text: str) -> str:
    return 'raise RuntimeError("this release crashes at start (test variant)")\n' + text


def _never_accepted(text: str) -> str:
    old = "self.registration = RegistrationStatus(result.status)"
    assert old in text, "firmware/ocpp/session.py changed: update tests/release_bundles.py"
    return text.replace(old, "self.registration = RegistrationStatus.PENDING")


VARIANTS: dict[str, tuple[int, Patch]] = {
    # name: (how much the last version number goes up, what changes in the code)
    "newer": (1, {}),
    "crashing": (2, {"firmware/__main__.py": _crash}),
    "silent": (3, {"firmware/ocpp/session.py": _never_accepted}),
}


@dataclass(frozen=True)
class Bundles:
    base: Path
    newer: Path
    crashing: Path
    silent: Path

    def version(self, bundle: Path) -> str:
        return bundle.name.split("-")[2]


def fingerprint() -> str:
    digest = hashlib.sha256()
    for part in SOURCES:
        path = REPO / part
        files = (
            [path] if path.is_file() else sorted(path.rglob("*.py")) + sorted(path.rglob("*.toml"))
        )
        for f in files:
            if "__pycache__" not in f.parts:
                digest.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()[:16]


def bundles() -> Bundles:
    """The base bundle and its variants, built when missing (offline)."""
    if not (WHEEL_CACHE / ".complete").exists():
        raise RuntimeError(
            f"{WHEEL_CACHE} is not prepared: run scripts/setup-venv test (online) once"
        )
    where = CACHE / fingerprint()
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    # pytest-xdist workers each ask: one builds, the others wait for it.
    with open(CACHE.parent / "release.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (where / ".complete").exists():
            shutil.rmtree(CACHE, ignore_errors=True)
            where.mkdir(parents=True)
            base = build(
                REPO,
                where,
                "host",
                pip_args=["--no-index", "--find-links", str(WHEEL_CACHE)],
            )
            for name, (step, patch) in VARIANTS.items():
                make_variant(base, where / name, bump(_version(base), step), patch)
            (where / ".complete").touch()
    base = next(where.glob("*.tar"))
    found = {name: next((where / name).glob("*.tar")) for name in VARIANTS}
    return Bundles(base=base, **found)


def bump(version: str, step: int) -> str:
    parts = version.split(".")
    parts[-1] = str(int(parts[-1]) + step)
    return ".".join(parts)


def _version(bundle: Path) -> str:
    with tarfile.open(bundle) as tar:
        f = tar.extractfile(MANIFEST)
        assert f is not None
        return str(json.load(f)["version"])


def make_variant(base: Path, out_dir: Path, version: str, patch: Patch) -> Path:
    """``base`` with its product wheel at ``version`` and ``patch`` applied to its code."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with tarfile.open(base) as tar:
            tar.extractall(tmp, filter="data")
        manifest = parse(json.loads((tmp / MANIFEST).read_text()))
        wheels = tmp / WHEELS
        old = wheels / manifest.product_wheel
        project = wheel_project(manifest.product)
        new = wheels / old.name.replace(f"{project}-{manifest.version}-", f"{project}-{version}-")
        old_info, new_info = (f"{project}-{v}.dist-info/" for v in (manifest.version, version))
        with zipfile.ZipFile(old) as src, zipfile.ZipFile(new, "w", zipfile.ZIP_DEFLATED) as dst:
            for item in src.infolist():
                data = src.read(item)
                name = item.filename.replace(old_info, new_info)
                if item.filename in patch:
                    data = patch[item.filename](data.decode()).encode()
                elif name == f"{new_info}METADATA":
                    data = data.replace(
                        f"\nVersion: {manifest.version}\n".encode(),
                        f"\nVersion: {version}\n".encode(),
                    )
                elif name == f"{new_info}RECORD":
                    # pip does not check RECORD's hashes; the paths must be right.
                    data = data.decode().replace(old_info, new_info).encode()
                dst.writestr(name, data)
        old.unlink()
        wheels_map = {n: d for n, d in manifest.wheels.items() if n != old.name}
        wheels_map[new.name] = hashlib.sha256(new.read_bytes()).hexdigest()
        variant = type(manifest)(
            manifest.product, version, manifest.requires_python, manifest.platforms, wheels_map
        )
        name = base.name.replace(f"-{manifest.version}-", f"-{version}-")
        return write_bundle(variant, wheels, out_dir / name)
