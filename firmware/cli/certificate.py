"""``chargepoint certificate list|install``: the certificate store on the device.

An installer puts the CPO's CentralSystemRootCertificate here before raising SecurityProfile to 2
(the central system can also send it with InstallCertificate).  Run it as the service user so
that the daemon can read what it writes: ``sudo -u chargepoint chargepoint certificate ...``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from firmware.certificate_checks import describe
from firmware.certificates import CertificateStore, InstallStatus, RootKind
from firmware.settings_load import load
from firmware.storage import StoreUnusable
from firmware.tomlcheck import SettingsError

KINDS = {"central-system": RootKind.CENTRAL_SYSTEM, "manufacturer": RootKind.MANUFACTURER}


def run(
    action: str,
    config: Path,
    state_dir: Path | None,
    kind: str | None = None,
    pem_file: Path | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    # The streams are looked up at call time, not bound at import (a test capturing sys.stdout
    # after this module was imported would see nothing otherwise).
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        settings = load(config).with_overrides(state_dir=state_dir)
    except SettingsError as exc:
        print(exc.lines("chargepoint certificate: "), file=err)
        return 2
    try:
        store = CertificateStore.open(settings.state_dir)
    except StoreUnusable as exc:  # the same line as `chargepoint run`'s
        print(f"chargepoint certificate: cannot use {exc.path}: {exc.reason}", file=err)
        return 2
    if action == "list":
        roots = store.all_roots()
        for root_kind, cert in roots:
            print(f"{root_kind.value}: {describe(cert)}", file=out)
        chain = store.client_chain()
        if chain:
            print(f"ChargePointCertificate: {describe(chain[0])}", file=out)
        if not roots and not chain:
            print(f"no certificates installed in {settings.state_dir / 'certs'}", file=out)
        return 0
    assert action == "install" and kind is not None and pem_file is not None
    try:
        text = pem_file.read_text()
    except OSError as exc:
        print(f"chargepoint certificate: {pem_file}: {exc.strerror}", file=err)
        return 2
    status, reason = store.install_root(KINDS[kind], text)
    print(
        f"{KINDS[kind].value}: {status.value}{f' ({reason})' if reason else ''}",
        file=out if status is InstallStatus.ACCEPTED else err,
    )
    return 0 if status is InstallStatus.ACCEPTED else 1
