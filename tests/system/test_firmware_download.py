"""The firmware download (firmware.download) against real servers on 127.0.0.1: HTTP, HTTPS
with a certificate of a test CA installed as CentralSystemRootCertificate (tests/pki.py), and
FTP (pyftpdlib); the size limit, the free-space check and cancellation, each leaving no
partial file, and no credential in any error."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from firmware.certificates import CertificateStore, RootKind
from firmware.download import Cancelled, DownloadError, Limits, fetch
from tests.firmware_helpers import bundle_bytes, ftp_server, http_server
from tests.pki import Authority

LIMITS = Limits(max_bytes=1_000_000, keep_free_bytes=0)
DATA = bundle_bytes("2.0.0", 300_000)


@pytest.fixture
def served(tmp_path: Path) -> Path:
    root = tmp_path / "served"
    root.mkdir()
    (root / "fw.bundle").write_bytes(DATA)
    return root


def get(
    url: str,
    dest: Path,
    *,
    limits: Limits = LIMITS,
    tls: ssl.SSLContext | None = None,
    cancelled: threading.Event | None = None,
    free_bytes: Callable[[Path], int] | None = None,
) -> int:
    return fetch(
        url,
        dest,
        limits=limits,
        tls=tls,
        cancelled=cancelled or threading.Event(),
        timeout=10,
        free_bytes=free_bytes,
    )


def nothing_left(dest: Path) -> bool:
    return not dest.exists() and not list(dest.parent.glob("*.part"))


def test_http_download_into_the_state_directory(served: Path, tmp_path: Path) -> None:
    dest = tmp_path / "state" / "firmware" / "update.bundle"
    with http_server(served) as base:
        assert get(f"{base}/fw.bundle", dest) == len(DATA)
        assert dest.read_bytes() == DATA
        with pytest.raises(DownloadError, match="HTTP 404"):
            get(f"{base}/missing.bundle", tmp_path / "other.bundle")
        assert nothing_left(tmp_path / "other.bundle")


def test_https_is_verified_against_the_installed_central_system_roots(
    served: Path, tmp_path: Path, ca: Authority
) -> None:
    certs = CertificateStore.open(tmp_path / "state")
    tls_files = ca.server_files(tmp_path, "files", host="localhost")
    dest = tmp_path / "fw.bundle"
    with http_server(served, tls=tls_files) as base:
        assert base.startswith("https://")
        with pytest.raises(DownloadError, match="CERTIFICATE_VERIFY_FAILED|certificate verify"):
            get(f"{base}/fw.bundle", dest, tls=certs.upload_context())
        assert nothing_left(dest)
        certs.install_root(RootKind.CENTRAL_SYSTEM, ca.pem)
        assert get(f"{base}/fw.bundle", dest, tls=certs.upload_context()) == len(DATA)


def test_ftp_download_with_credentials_never_shows_the_password(
    served: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "fw.bundle"
    with ftp_server(served, password="s3cret-pw") as base:
        assert get(f"{base}/fw.bundle", dest) == len(DATA)
        assert dest.read_bytes() == DATA
        wrong = base.replace("s3cret-pw", "wrong-pw-42")
        with pytest.raises(DownloadError) as err:
            get(f"{wrong}/fw.bundle", tmp_path / "x.bundle")
        assert "wrong-pw-42" not in str(err.value) and "fw@" not in str(err.value)
        assert nothing_left(tmp_path / "x.bundle")
        with pytest.raises(DownloadError, match="limit"):
            get(f"{base}/fw.bundle", tmp_path / "y.bundle", limits=Limits(1000, 0))
        assert nothing_left(tmp_path / "y.bundle")


def test_size_limit_and_free_space_refuse_before_and_during(served: Path, tmp_path: Path) -> None:
    dest = tmp_path / "fw.bundle"
    with http_server(served) as base:
        url = f"{base}/fw.bundle"
        with pytest.raises(DownloadError, match="over the limit of 1000"):
            get(url, dest, limits=Limits(1000, 0))
        assert nothing_left(dest)
        # Free space: short before the transfer, or running out during it.
        with pytest.raises(DownloadError, match="not enough free space"):
            get(url, dest, limits=Limits(10**7, 10**6), free_bytes=lambda _p: 10**6 + 1000)
        assert nothing_left(dest)
        shrinking = iter([10**9, 10**9] + [0] * 100)
        with pytest.raises(DownloadError, match="not enough free space"):
            get(url, dest, limits=Limits(10**7, 10), free_bytes=lambda _p: next(shrinking))
        assert nothing_left(dest)
        cancelled = threading.Event()
        cancelled.set()
        with pytest.raises(Cancelled):
            get(url, dest, cancelled=cancelled)
        assert nothing_left(dest)


def test_an_unusable_location_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="unsupported scheme file"):
        get("file:///etc/passwd", tmp_path / "x")
    with pytest.raises(DownloadError) as err:
        get("http://user:hunter22@127.0.0.1:9/x", tmp_path / "x")  # nothing listens on 9
    assert "hunter22" not in str(err.value)
