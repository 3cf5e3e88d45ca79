"""Reading a release bundle (the tar file of ``firmware.release.manifest``): check it whole,
and unpack its wheels.  Every failure is ``FirmwareInstallFailed`` with one line."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

from firmware.ports import FirmwareInstallFailed
from firmware.release.manifest import MANIFEST, WHEELS, Manifest, ManifestError, check_machine
from firmware.release.manifest import parse as parse_manifest

MAX_MANIFEST_BYTES = 1 << 20
_CHUNK = 1 << 16


def read_manifest(bundle: Path) -> Manifest:
    """The bundle's manifest, format-checked (not the wheels, not the machine)."""
    try:
        with tarfile.open(bundle, "r:") as tar:
            member = tar.next()
            if member is None or member.name != MANIFEST or not member.isfile():
                raise FirmwareInstallFailed(f"{bundle.name}: the first member is not {MANIFEST}")
            if member.size > MAX_MANIFEST_BYTES:
                raise FirmwareInstallFailed(f"{bundle.name}: {MANIFEST} is too large")
            f = tar.extractfile(member)
            assert f is not None  # a regular file
            data = json.loads(f.read())
    except FileNotFoundError:
        raise FirmwareInstallFailed(f"{bundle.name}: no such file ({bundle})") from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise FirmwareInstallFailed(f"{bundle.name} is not a release bundle ({exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise FirmwareInstallFailed(f"{bundle.name}: {MANIFEST} is not JSON ({exc})") from None
    try:
        return parse_manifest(data)
    except ManifestError as exc:
        raise FirmwareInstallFailed(f"{bundle.name}: {exc}") from None


def check(bundle: Path, into: Path | None = None) -> Manifest:
    """The manifest, after checking the format, this machine (Python requirement, platform)
    and every wheel's sha256 against the manifest (none missing, none extra, nothing else in
    the file).  With ``into``, the wheels are also written there (a directory that exists)."""
    manifest = read_manifest(bundle)
    try:
        check_machine(manifest)
    except ManifestError as exc:
        raise FirmwareInstallFailed(f"{bundle.name}: {exc}") from None
    seen: set[str] = set()
    try:
        with tarfile.open(bundle, "r:") as tar:
            for index, member in enumerate(tar):
                if index == 0:
                    continue  # the manifest, read above
                name = member.name.removeprefix(WHEELS)
                if not member.name.startswith(WHEELS) or "/" in name or not member.isfile():
                    raise FirmwareInstallFailed(f"{bundle.name}: unexpected member {member.name}")
                expected = manifest.wheels.get(name)
                if expected is None:
                    raise FirmwareInstallFailed(f"{bundle.name}: {name} is not in the manifest")
                if name in seen:
                    raise FirmwareInstallFailed(f"{bundle.name}: {name} is in the bundle twice")
                seen.add(name)
                f = tar.extractfile(member)
                assert f is not None
                digest = hashlib.sha256()
                out = (into / name).open("wb") if into is not None else None
                try:
                    while chunk := f.read(_CHUNK):
                        digest.update(chunk)
                        if out is not None:
                            out.write(chunk)
                finally:
                    if out is not None:
                        out.close()
                if digest.hexdigest() != expected:
                    raise FirmwareInstallFailed(f"{bundle.name}: sha256 of {name} does not match")
    except (tarfile.TarError, EOFError) as exc:
        raise FirmwareInstallFailed(f"{bundle.name} is truncated or damaged ({exc})") from None
    except OSError as exc:
        raise FirmwareInstallFailed(f"{bundle.name}: cannot read or unpack it ({exc})") from None
    missing = sorted(set(manifest.wheels) - seen)
    if missing:
        raise FirmwareInstallFailed(
            f"{bundle.name} is truncated: {len(missing)} wheel(s) missing, first {missing[0]}"
        )
    return manifest
