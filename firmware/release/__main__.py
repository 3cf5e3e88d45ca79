"""``python -m firmware.release install --releases DIR BUNDLE``: install a release bundle and
make it current at once, with no trial (install/install.sh: an operator is there; the release
that was current is kept as ``previous``).  It runs from the bundle's own wheels (the product's
and ``packaging``, put on ``sys.path`` by install.sh), so that the first install of a Pi uses
the same installer as every update after it.  Prints the version; exit 1 with one line when
the bundle cannot be installed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from firmware.ports import FirmwareInstallFailed
from firmware.release.installer import ReleaseInstaller


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m firmware.release")
    sub = parser.add_subparsers(dest="command", required=True)
    install = sub.add_parser("install", help="install BUNDLE and make it current (no trial)")
    install.add_argument("--releases", required=True, help="the releases directory")
    install.add_argument(
        "--no-compile", action="store_true", help="do not compile bytecode at install"
    )
    install.add_argument("bundle")
    args = parser.parse_args(argv)
    installer = ReleaseInstaller(
        Path(args.releases), running_version="", compile_bytecode=not args.no_compile
    )
    try:
        version = installer.install(Path(args.bundle))
        installer.adopt(version)
    except FirmwareInstallFailed as exc:
        print(f"chargepoint: cannot install {args.bundle}: {exc}", file=sys.stderr)
        return 1
    print(version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
