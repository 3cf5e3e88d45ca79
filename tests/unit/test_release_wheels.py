"""``chargepoint release build --wheels DIR`` (issue 14, item 1: armv7l, where PyPI has no cffi
wheel): wheels built for the target fill the gaps the index leaves, each in the manifest with
its sha256; a missing wheel is one line naming the project and the option; a bad directory or
wheel is one line naming it, before anything is downloaded.  The wheels are real zip files
built here, and pip really chooses among them (offline: ``--no-index``); the real armv7l bundle
is tests/system/test_release_armv7l.py's."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from firmware.cli import main
from firmware.release.build import (
    BuildFailed,
    Target,
    gather,
    local_wheels,
    missing_wheel_hint,
    wheel_hashes,
)

ARMV7L = Target((3, 11), "armv7l")


def make_wheel(
    directory: Path,
    project: str,
    version: str,
    tag: str,
    requires: tuple[str, ...] = (),
    meta_name: str | None = None,
) -> Path:
    """A real, installable wheel (PEP 427) of one module."""
    directory.mkdir(parents=True, exist_ok=True)
    info = f"{project}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {meta_name or project}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    pure = tag == "py3-none-any"
    files = {
        f"{project}/__init__.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": metadata,
        f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: "
        f"{str(pure).lower()}\nTag: {tag}\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{n},,\n" for n in files) + f"{info}/RECORD,,\n"
    path = directory / f"{project}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():
            z.writestr(name, text)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_wheels_fill_the_gaps_for_the_target_and_the_manifest_has_each_sha256(
    tmp_path: Path,
) -> None:
    """Two --wheels directories: the armv7l wheel of the project asked for and, from the
    other directory, the pure wheel it requires are gathered; the aarch64 build of the same
    project and a wheel nothing requires are not."""
    built = tmp_path / "armv7l-wheels"
    compiled = make_wheel(built, "gapfill", "2.1.1", "cp311-cp311-linux_armv7l", ("puredep",))
    make_wheel(built, "gapfill", "2.1.1", "cp311-cp311-linux_aarch64")
    make_wheel(built, "unrelated", "1.0", "py3-none-any")
    pure = make_wheel(tmp_path / "more", "puredep", "0.3", "py3-none-any")
    dest = tmp_path / "gathered"
    dest.mkdir()

    gather(ARMV7L, ["gapfill"], dest, pip_args=["--no-index"], wheels=[built, tmp_path / "more"])

    assert wheel_hashes(dest) == {compiled.name: sha256(compiled), pure.name: sha256(pure)}


def test_a_missing_wheel_is_one_line_naming_the_project_and_the_option(tmp_path: Path) -> None:
    """Without the directory holding it, the armv7l gap is the line of issue 14's build."""
    built = tmp_path / "armv7l-wheels"
    make_wheel(built, "puredep", "0.3", "py3-none-any")  # a directory, but not the gap
    dest = tmp_path / "gathered"
    dest.mkdir()
    with pytest.raises(BuildFailed) as failed:
        gather(ARMV7L, ["gapfill"], dest, pip_args=["--no-index"], wheels=[built])
    assert str(failed.value) == (
        "pip download for cp311-linux_armv7l failed: no matching distribution (wheel) of "
        "gapfill (PyPI has no armv7l wheel of it: build it with scripts/build-armv7l-wheels "
        "and add --wheels .cache/armv7l-wheels, or add "
        "--pip=--extra-index-url=https://www.piwheels.org/simple)"
    )
    assert "--wheels DIR" in missing_wheel_hint(Target((3, 11), "aarch64"))
    assert list(dest.iterdir()) == []


def _not_a_zip(d: Path) -> Path:
    (d / "gapfill-1.0-cp311-cp311-linux_armv7l.whl").write_bytes(b"not a zip")
    return d


def _no_metadata(d: Path) -> Path:
    with zipfile.ZipFile(d / "gapfill-1.0-cp311-cp311-linux_armv7l.whl", "w") as z:
        z.writestr("gapfill/__init__.py", "")
    return d


def _other_project(d: Path) -> Path:
    make_wheel(d, "gapfill", "1.0", "cp311-cp311-linux_armv7l", meta_name="cffi")
    return d


def _bad_name(d: Path) -> Path:
    (d / "gapfill.whl").write_bytes(b"")
    return d


def _empty(d: Path) -> Path:
    (d / "gapfill-1.0.tar.gz").write_bytes(b"")
    return d


WHL = "{d}/gapfill-1.0-cp311-cp311-linux_armv7l.whl"


@pytest.mark.parametrize(
    ("damage", "line"),
    [
        (_not_a_zip, f"{WHL}: not a wheel (File is not a zip file)"),
        (_no_metadata, f"{WHL}: not a wheel (no .dist-info/METADATA)"),
        (_other_project, f"{WHL}: its METADATA says cffi 1.0, its name gapfill 1.0"),
        (
            _bad_name,
            "{d}/gapfill.whl: not a wheel's file name (NAME-VERSION-PYTHON-ABI-PLATFORM.whl)",
        ),
        (_empty, "{d}: no wheel (*.whl) in it"),
        (lambda d: d / "absent", "{d}/absent: not a directory"),
    ],
    ids=["not-a-zip", "no-metadata", "other-project", "bad-name", "no-wheel", "absent"],
)
def test_a_bad_wheels_directory_is_one_line_naming_it(
    tmp_path: Path, damage: object, line: str
) -> None:
    d = tmp_path / "w"
    d.mkdir()
    assert callable(damage)
    given = damage(d)
    with pytest.raises(BuildFailed) as failed:
        local_wheels([given])
    assert str(failed.value) == "--wheels " + line.format(d=d)


def test_the_command_checks_wheels_before_building(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``chargepoint release build --wheels DIR`` refuses a bad directory at once with its one
    line (nothing built, nothing downloaded), and takes a good one (``local_wheels``)."""
    good = tmp_path / "good"
    wheel = make_wheel(good, "gapfill", "2.1.1", "cp311-cp311-linux_armv7l")
    assert local_wheels([good, good]) == {wheel.name: wheel}
    out = tmp_path / "out"
    code = main(["release", "build", "--target", "pi32", "--wheels", str(good),
                 "--wheels", str(tmp_path / "absent"), "--out", str(out)])  # fmt: skip
    assert code == 1
    assert capsys.readouterr().err == (
        f"chargepoint release build: --wheels {tmp_path / 'absent'}: not a directory\n"
    )
    assert not out.exists()
