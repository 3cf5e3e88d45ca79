"""GetLog to an FTP location, against a real FTP server (pyftpdlib) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from ocpp.v16 import call

from firmware.logupload import UploadError, upload, upload_with_retries
from tests.conftest import Rig
from tests.firmware_helpers import ftps_server
from tests.pki import Authority
from tests.system.upload_servers import ftp_server, silent_server


@pytest.fixture
def ftp_root(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    root = tmp_path / "ftp"
    (root / "logs").mkdir(parents=True)
    with ftp_server(root) as port:
        yield port, root


def test_upload_stores_the_file_and_reports_failures_without_credentials(
    ftp_root: tuple[int, Path],
) -> None:
    port, root = ftp_root
    upload(f"ftp://cpo:s3cret@127.0.0.1:{port}/logs/a.log", b"line one\n", tls=None, timeout=5)
    assert (root / "logs" / "a.log").read_bytes() == b"line one\n"
    with pytest.raises(UploadError) as wrong:
        upload(f"ftp://cpo:wrong@127.0.0.1:{port}/logs/b.log", b"x", tls=None, timeout=5)
    assert "wrong" not in str(wrong.value) and "cpo" not in str(wrong.value)


@pytest.mark.asyncio
async def test_get_log_over_ftp(rig: Rig, ftp_root: tuple[int, Path]) -> None:
    port, root = ftp_root
    answer = await rig.cs.call(
        rig.cp_id,
        call.GetLog(
            log_type="DiagnosticsLog",
            request_id=21,
            log={"remoteLocation": f"ftp://cpo:s3cret@127.0.0.1:{port}/logs/"},
        ),
    )
    assert answer.status == "Accepted"
    done = await rig.cs.wait_for(
        lambda r: (
            r.action == "LogStatusNotification"
            and r.message_type == "CALL"
            and r.payload.get("status") in ("Uploaded", "UploadFailure")
        ),
        timeout=15,
    )
    assert done.payload["status"] == "Uploaded" and done.payload["requestId"] == 21
    stored = root / "logs" / answer.filename
    assert stored.exists() and stored.stat().st_size > 0
    frames = " ".join(r.raw for r in rig.cs.messages if r.direction == "rx")
    assert "s3cret" not in frames


def test_upload_over_ftps_resumes_the_tls_session_on_the_data_channel(
    tmp_path: Path, ca: Authority
) -> None:
    """FTPS uploads (GetLog, GetDiagnostics) go to servers that require the data connection to
    resume the control connection's TLS session (vsftpd's default) too; the server is verified
    against the roots given."""
    root = tmp_path / "ftps"
    root.mkdir()
    tls = ssl.create_default_context(cadata=ca.pem)
    with ftps_server(root, ca.server_files(tmp_path, "ftps", host="localhost")) as base:
        upload(f"{base}/diag.tar.gz", b"bundle bytes", tls=tls, timeout=5)
        with pytest.raises(UploadError, match="CERTIFICATE_VERIFY_FAILED|certificate verify"):
            upload(f"{base}/other.tar.gz", b"x", tls=ssl.create_default_context(), timeout=5)
    assert (root / "diag.tar.gz").read_bytes() == b"bundle bytes"
    assert not (root / "other.tar.gz").exists()


@pytest.mark.asyncio
@pytest.mark.parametrize("scheme", ["http", "ftp"])
async def test_a_cancelled_upload_to_a_silent_server_lets_its_thread_go_at_once(
    scheme: str,
) -> None:
    """A GetDiagnostics/GetLog upload replaced or stopped while the server says nothing: the
    worker thread's connection is closed at once (the controller's stop waits for that thread;
    the unit's TimeoutStopSec is 20 s, the transfer's timeout 60 s)."""
    with silent_server() as (port, arrived, closed):
        task = asyncio.create_task(
            upload_with_retries(
                f"{scheme}://127.0.0.1:{port}/in/diag.tar.gz",
                b"bundle",
                tls=None,
                retries=0,
                retry_interval=0,
                what="diagnostics",
                timeout=60,
            )
        )
        assert await asyncio.to_thread(arrived.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(closed.wait, 20), "the upload still holds the connection"
