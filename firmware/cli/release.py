"""``chargepoint release``: build a release bundle from a checkout, sign it for
SignedUpdateFirmware, and show the releases directory of a charger (docs/firmware.md,
"Building, signing and publishing a release" and "Install layout and rollback")."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# Where `release sign` reads an encrypted key's passphrase (never an argument: it would show in
# the shell history and the process list).
PASSPHRASE_ENV = "CHARGEPOINT_SIGNING_PASSPHRASE"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    release = sub.add_parser("release", help="build and sign release bundles; list releases")
    rsub = release.add_subparsers(dest="release_cmd", required=True)
    build = rsub.add_parser(
        "build", help="build the release bundle of a checkout (one file, installs offline)"
    )
    build.add_argument(
        "--target",
        choices=["pi", "pi64", "pi32", "host"],
        default="pi",
        help="pi: Raspberry Pi OS bookworm, Python 3.11, aarch64 and armv7l (default); pi64 / "
        "pi32: one of them; host: this machine (bench, tests)",
    )
    build.add_argument("--source", default=".", help="the checkout (default: .)")
    build.add_argument("--out", default="dist", help="directory for the bundle (default: dist)")
    build.add_argument(
        "--pip",
        action="append",
        default=[],
        metavar="ARG",
        help="an argument for pip (repeatable), e.g. --pip=--extra-index-url="
        "https://www.piwheels.org/simple or --pip=--no-index --pip=--find-links=DIR",
    )
    build.add_argument(
        "--with",
        dest="with_",
        action="append",
        default=[],
        metavar="REQ",
        help="ship and install this project with the product (repeatable): a manufacturer's "
        "plug-in, as a requirement or the path of its wheel",
    )
    check = rsub.add_parser("check", help="check a bundle for this machine (manifest, sha256)")
    check.add_argument("bundle")
    sign = rsub.add_parser(
        "sign",
        help="sign a bundle: RSA or ECDSA over SHA-256 of the file, base64, with the signing "
        "certificate (SignedUpdateFirmware's signature and signingCertificate)",
    )
    sign.add_argument("bundle")
    sign.add_argument("--key", required=True, help="the signing private key (PEM)")
    sign.add_argument("--cert", required=True, help="its certificate (PEM)")
    sign.add_argument("--out", help="where to write the JSON (default: BUNDLE.sig.json)")
    sign.add_argument(
        "--passphrase-env",
        default=PASSPHRASE_ENV,
        metavar="NAME",
        help="the environment variable holding the key's passphrase, when it is encrypted "
        f"(default: {PASSPHRASE_ENV}; unset: asked for on a terminal)",
    )
    for name, text in (
        ("status", "the releases on this charger: current, previous, a trial, its outcome"),
        ("use", "make an installed release current now, without a trial (going back by hand)"),
    ):
        cmd = rsub.add_parser(name, help=text)
        cmd.add_argument(
            "--releases",
            help="the releases directory (default: the one this release is installed in)",
        )
        if name == "use":
            cmd.add_argument("version")
    release.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.release_cmd == "build":
        return _build(args)
    if args.release_cmd == "check":
        return _check(Path(args.bundle))
    if args.release_cmd in ("status", "use"):
        return _status(args)
    return _sign(args)


def _status(args: argparse.Namespace) -> int:
    from firmware.ports import FirmwareInstallFailed
    from firmware.release import ReleaseInstaller, running_release
    from firmware.release.launcher import linked, read_trial

    release = running_release()
    if args.releases:
        releases = Path(args.releases)
    elif release is not None:
        releases = release.parent
    else:
        print(
            f"chargepoint release {args.release_cmd}: not run from an installed release: give "
            "--releases DIR (on the bench: <state directory>/releases)",
            file=sys.stderr,
        )
        return 2
    installer = ReleaseInstaller(releases, running_version="")
    if args.release_cmd == "use":
        try:
            installer.adopt(args.version)
        except FirmwareInstallFailed as exc:
            print(f"chargepoint release use: {exc}", file=sys.stderr)
            return 1
        print(f"current: {args.version} (restart the controller: systemctl restart chargepoint)")
        return 0
    trial = read_trial(releases)
    outcome = installer.outcome()
    print(f"releases:  {releases}")
    print(f"installed: {', '.join(installer.versions()) or '(none)'}")
    print(f"current:   {linked(releases, 'current') or '(none)'}")
    print(f"previous:  {linked(releases, 'previous') or '(none)'}")
    if trial is not None:
        print(
            f"on trial:  {trial.get('version')} (back to {trial.get('previous')}; "
            f"{trial.get('crashes', 0)} crash(es); {trial.get('boot_timeout_s')} s to be "
            "accepted at each start)"
        )
    if outcome is not None:
        end = "installed" if outcome.installed else f"rolled back: {outcome.reason}"
        print(f"last trial: {outcome.version} {end} (not yet reported to the central system)")
    return 0


def _build(args: argparse.Namespace) -> int:
    from firmware.release.build import BuildFailed, build

    started = time.monotonic()
    try:
        path = build(
            Path(args.source), Path(args.out), args.target, pip_args=args.pip, with_=args.with_
        )
    except BuildFailed as exc:
        print(f"chargepoint release build: {exc}", file=sys.stderr)
        return 1
    print(f"{path} ({path.stat().st_size // 1024} KiB, {time.monotonic() - started:.0f} s)")
    return 0


def _check(bundle: Path) -> int:
    from firmware.ports import FirmwareInstallFailed
    from firmware.release.bundle import check

    try:
        manifest = check(bundle)
    except FirmwareInstallFailed as exc:
        print(f"chargepoint release check: {exc}", file=sys.stderr)
        return 1
    print(f"{bundle}: {manifest.product} {manifest.version}, {len(manifest.wheels)} wheels, OK")
    return 0


def _passphrase(key: Path, env: str) -> bytes | None:
    """The passphrase of an encrypted PEM key: ``$env``, else asked for on a terminal, else
    None (sign_file then says the key is encrypted)."""
    import getpass
    import os

    if env in os.environ:
        return os.environ[env].encode()
    try:
        encrypted = b"ENCRYPTED" in key.read_bytes()  # PKCS #8 or traditional PEM
    except OSError:
        return None  # sign_file names the problem
    if encrypted and sys.stdin.isatty():
        return getpass.getpass(f"passphrase of {key}: ").encode()
    return None


def _sign(args: argparse.Namespace) -> int:
    from firmware.release.signing import SigningFailed, sign_file

    bundle = Path(args.bundle)
    key = Path(args.key)
    try:
        signed = sign_file(bundle, key, Path(args.cert), _passphrase(key, args.passphrase_env))
    except SigningFailed as exc:
        print(f"chargepoint release sign: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else bundle.with_name(bundle.name + ".sig.json")
    out.write_text(json.dumps(signed, indent=2) + "\n", encoding="utf-8")
    print(f"{out}: signature {signed['signature'][:16]}... ({signed['algorithm']})")
    return 0
