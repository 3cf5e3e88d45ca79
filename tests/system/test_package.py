"""Item: `pip install` of the package works on its own.

The wheel built from this tree goes into a fresh virtual environment, offline (``--no-index``,
the dependencies from ``.cache/wheels``, which ``scripts/setup-venv test`` fills while online),
and the installed ``chargepoint`` runs from a directory that is not the source tree: the example
configurations must come from the package, not from ``config/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

WHEELS = REPO / ".cache" / "wheels"

pytestmark = pytest.mark.slow


def _run(
    args: list[str | Path], cwd: Path, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PIP_FIND_LINKS", "PIP_INDEX_URL")
    }
    env["PIP_NO_INDEX"] = "1"  # offline, whatever the caller's pip configuration says
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel of this tree installed; returns its bin directory."""
    if not (WHEELS / ".complete").exists():
        pytest.fail(f"{WHEELS} is not prepared: run scripts/setup-venv test (online) once")
    tmp = tmp_path_factory.mktemp("package")
    # Build from a copy of what the package is made of, so the tree is not written to.
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    for package in ("firmware", "hal", "centralsystem"):
        shutil.copytree(REPO / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp / "dist"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-index",
            "--find-links",
            WHEELS,
            "--wheel-dir",
            dist,
            "--disable-pip-version-check",
            src,
        ],
        cwd=tmp,
    )
    wheel = next(dist.glob("pi_chargepoint-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "firmware/examples/bench.toml" in names and "firmware/examples/pi.toml" in names
    # The bench central system ships too (chargepoint csms, the demo), in its own package.
    assert "centralsystem/server.py" in names and "firmware/cli/__init__.py" in names
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            venv / "bin" / "python",
            "install",
            "--no-index",
            "--find-links",
            WHEELS,
            "--disable-pip-version-check",
            wheel,
        ],
        cwd=tmp,
    )
    return venv / "bin"


def test_version(installed: Path, tmp_path: Path) -> None:
    from importlib.metadata import version

    result = _run([installed / "chargepoint", "--version"], cwd=tmp_path)
    assert result.stdout.strip() == f"chargepoint {version('pi-chargepoint')}"


@pytest.mark.parametrize("name", ["bench", "pi"])
def test_config_example_prints_the_shipped_file(installed: Path, tmp_path: Path, name: str) -> None:
    result = _run([installed / "chargepoint", "config", "example", name], cwd=tmp_path)
    assert result.stdout == (REPO / "firmware" / "examples" / f"{name}.toml").read_text()
    # and it is a configuration the installed controller accepts as it is
    (tmp_path / "c.toml").write_text(result.stdout)
    check = _run(
        [
            installed / "python",
            "-c",
            (
                "from pathlib import Path; from firmware.settings_load import load; "
                "load(Path('c.toml'))"
            ),
        ],
        cwd=tmp_path,
    )
    assert check.stderr == ""


def test_demo_runs_from_another_directory(installed: Path, tmp_path: Path) -> None:
    result = _run([installed / "chargepoint", "demo", "--minutes", "1"], cwd=tmp_path)
    assert "done: transaction" in result.stdout and "Traceback" not in result.stderr
    # The demo left nothing in the directory it ran from.
    assert list(tmp_path.iterdir()) == []
