"""The release bundle's manifest: what it holds and for which machines (issue 14).

A bundle is one uncompressed tar file (the wheels are compressed already)::

    manifest.json
    wheels/<name>.whl ...     the product's wheel, every dependency's, and pip's (the installer)

``manifest.json``::

    {"format": 1, "product": "pi-chargepoint", "version": "0.2.0",
     "requires_python": ">=3.11", "platforms": ["cp311-linux_aarch64", "cp311-linux_armv7l"],
     "requires": ["acme-chargepoint-keys"],
     "wheels": {"<file name>": "<sha256, 64 hex digits>", ...}}

``requires`` (optional): projects installed with the product, e.g. a manufacturer's plug-in
(``chargepoint release build --with``); their wheels are in the bundle too.

``platforms`` names the interpreters and machines the wheels were gathered for, as
``cp<major><minor>-<sysconfig platform with _>``.  Every check failure is one line
(``ManifestError``), said as it is to the log and the central system's operator.
"""

from __future__ import annotations

import re
import sys
import sysconfig
from dataclasses import dataclass
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

FORMAT = 1
PRODUCT = "pi-chargepoint"
MANIFEST = "manifest.json"
WHEELS = "wheels/"
INSTALLER_WHEEL = "pip"  # the bundle brings the pip that installs it
_SHA256 = re.compile(r"[0-9a-f]{64}")
_WHEEL_NAME = re.compile(r"[A-Za-z0-9_.+!-]+\.whl")
_PROJECT = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")


class ManifestError(ValueError):
    """The manifest is malformed or not for this machine; the message is one line."""


@dataclass(frozen=True)
class Manifest:
    product: str
    version: str  # normalised PEP 440: also the release's directory name
    requires_python: str
    platforms: tuple[str, ...]
    wheels: dict[str, str]  # file name -> sha256 hex
    requires: tuple[str, ...] = ()  # projects installed with the product (plug-ins)

    @property
    def product_wheel(self) -> str:
        prefix = f"{wheel_project(PRODUCT)}-{self.version}-"
        return next(n for n in self.wheels if n.startswith(prefix))

    @property
    def installer_wheel(self) -> str:
        return next(n for n in self.wheels if n.startswith(f"{INSTALLER_WHEEL}-"))

    def as_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "product": self.product,
            "version": self.version,
            "requires_python": self.requires_python,
            "platforms": list(self.platforms),
            "requires": list(self.requires),
            "wheels": dict(sorted(self.wheels.items())),
        }


def wheel_project(name: str) -> str:
    """A project name as wheel file names spell it (PEP 427: ``-`` and ``.`` become ``_``)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def platform_tag(python: tuple[int, int] | None = None, machine: str | None = None) -> str:
    """This interpreter and machine as manifests name them, e.g. ``cp311-linux_aarch64``
    (``sysconfig``: a 32-bit Raspberry Pi OS on a 64-bit kernel is ``linux_armv7l``)."""
    major, minor = python or sys.version_info[:2]
    where = machine and f"linux_{machine}" or sysconfig.get_platform().replace("-", "_")
    return f"cp{major}{minor}-{where.replace('.', '_')}"


def parse(data: object) -> Manifest:
    """A manifest from its JSON value; ManifestError names the first problem."""
    if not isinstance(data, dict):
        raise ManifestError("manifest.json is not a JSON object")
    if data.get("format") != FORMAT:
        raise ManifestError(f"manifest format {data.get('format')!r} is not {FORMAT}")
    product = data.get("product")
    if product != PRODUCT:
        raise ManifestError(f"the bundle is for {product!r}, not {PRODUCT}")
    raw = data.get("version")
    try:
        version = str(Version(raw)) if isinstance(raw, str) else None
    except InvalidVersion:
        version = None
    if version is None:
        raise ManifestError(f"manifest version {raw!r} is not a version (PEP 440)")
    requires = data.get("requires_python")
    try:
        SpecifierSet(requires) if isinstance(requires, str) else None
    except InvalidSpecifier:
        requires = None
    if not isinstance(requires, str):
        raise ManifestError(
            f"manifest requires_python {data.get('requires_python')!r} is not valid"
        )
    platforms = data.get("platforms")
    if (
        not isinstance(platforms, list)
        or not platforms
        or not all(isinstance(p, str) for p in platforms)
    ):
        raise ManifestError("manifest platforms is not a list of platform names")
    wheels = data.get("wheels")
    if not isinstance(wheels, dict) or not wheels:
        raise ManifestError("manifest wheels is not an object of file name: sha256")
    for name, digest in wheels.items():
        if not _WHEEL_NAME.fullmatch(name):
            raise ManifestError(f"manifest names a wheel {name!r} that is not a wheel file name")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise ManifestError(f"manifest sha256 of {name} is not 64 hex digits")
    extra = data.get("requires", [])
    if not isinstance(extra, list) or not all(
        isinstance(r, str) and _PROJECT.fullmatch(r) for r in extra
    ):
        raise ManifestError("manifest requires is not a list of project names")
    manifest = Manifest(product, version, requires, tuple(platforms), dict(wheels), tuple(extra))
    for what, prefix in (
        (f"{PRODUCT} {version}", f"{wheel_project(PRODUCT)}-{version}-"),
        ("pip (the installer)", f"{INSTALLER_WHEEL}-"),
    ):
        if not any(n.startswith(prefix) for n in wheels):
            raise ManifestError(f"the bundle holds no wheel of {what}")
    return manifest


def check_machine(
    manifest: Manifest, python: tuple[int, int, int] | None = None, tag: str | None = None
) -> None:
    """ManifestError unless the bundle is for this interpreter and machine."""
    major, minor, micro = python or sys.version_info[:3]
    if f"{major}.{minor}.{micro}" not in SpecifierSet(manifest.requires_python):
        raise ManifestError(
            f"the release needs Python {manifest.requires_python}, this is {major}.{minor}.{micro}"
        )
    here = tag or platform_tag((major, minor))
    if here not in manifest.platforms:
        raise ManifestError(
            f"the bundle is for {', '.join(manifest.platforms)}, not for this {here}"
        )
