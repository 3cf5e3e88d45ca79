"""The certificate store's TLS contexts take the installed CentralSystemRootCertificates that are
valid now, read with the ssl module alone (issue 15: a security profile 2 charger connects
without loading cryptography); the same roots ``valid_roots`` gives."""

from __future__ import annotations

import logging
import ssl
from datetime import timedelta
from pathlib import Path

import pytest

from firmware.certificate_checks import common_name
from firmware.certificates import CertificateStore, NoValidRoot, RootKind
from tests.pki import NOW, Authority


def _common_names(context: ssl.SSLContext) -> list[str]:
    return sorted(
        str(attribute[1])
        for cert in context.get_ca_certs()
        for rdn in cert["subject"]
        for attribute in rdn
        if attribute[0] == "commonName"
    )


def _aged_root(store: CertificateStore, authority: Authority, name: str) -> None:
    """A root file as a store holds it after it was installed: install_root refuses one that
    is outside its validity now."""
    folder = store.directory / "roots" / RootKind.CENTRAL_SYSTEM.value
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.pem").write_text(authority.pem)


def test_tls_roots_are_the_valid_ones(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = CertificateStore.open(tmp_path)
    status, reason = store.install_root(RootKind.CENTRAL_SYSTEM, Authority.root("Valid").pem)
    assert status.value == "Accepted", reason
    _aged_root(store, Authority.root("Expired", not_before=NOW - timedelta(days=400)), "old")
    _aged_root(store, Authority.root("Future", not_before=NOW + timedelta(days=10)), "new")
    folder = store.directory / "roots" / RootKind.CENTRAL_SYSTEM.value
    (folder / "broken.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n")
    with caplog.at_level(logging.WARNING, logger="firmware.certificates"):
        tls = store.tls_context(require_installed_root=True, client_certificate=False)
    assert _common_names(tls) == ["Valid"]
    uploads = _common_names(store.upload_context())  # with the system's, if any are listed
    assert "Valid" in uploads and not {"Expired", "Future"} & set(uploads)
    assert [common_name(c.subject) for c in store.valid_roots(RootKind.CENTRAL_SYSTEM)] == ["Valid"]
    assert any("broken.pem unusable" in r.getMessage() for r in caplog.records)


def test_no_valid_root_is_refused_for_profile_2(tmp_path: Path) -> None:
    store = CertificateStore.open(tmp_path)
    _aged_root(store, Authority.root("Expired", not_before=NOW - timedelta(days=400)), "old")
    with pytest.raises(NoValidRoot):
        store.tls_context(require_installed_root=True, client_certificate=False)
