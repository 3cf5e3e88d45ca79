"""OCTT 1.6 charge point test cases, chapter "Diagnostics" (OCPP 1.6 §5.9, §4.4; Firmware
Management profile), against real upload servers on 127.0.0.1:

- TC_045_1_CS Get Diagnostics, for each protocol of SupportedFileTransferProtocols this
  charger supports (HTTP, HTTPS with the CPO's root installed, FTP):
  1. the Test System sends GetDiagnostics.req(location);
  2. the charger answers GetDiagnostics.conf with a fileName;
  3. the charger sends DiagnosticsStatusNotification.req(Uploading), the Test System answers;
  4. the charger sends DiagnosticsStatusNotification.req(Uploaded), the Test System answers;
  and the file named in step 2 is at the location.
- TC_045_2_CS Get Diagnostics - Upload Failed: the same with a location where nothing can be
  uploaded (nobody listens): step 4 is DiagnosticsStatusNotification.req(UploadFailed).

(The reference notes list these cases without their steps; the steps above are the flow of
OCPP 1.6 §5.9 and §4.4 they test.)
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
from ocpp.v16 import call

from centralsystem import CentralSystem
from tests.pki import Authority
from tests.system.diagnostics_helpers import (
    bundle_members,
    diagnostics_rig,
    diagnostics_statuses,
    one_upload,
)
from tests.system.upload_servers import ftp_server, upload_server

pytestmark = pytest.mark.asyncio


async def test_tc_045_1_get_diagnostics_over_http(csms: CentralSystem, tmp_path: Path) -> None:
    async with diagnostics_rig(csms, tmp_path) as rig:
        with upload_server() as server:
            mark = rig.cs.mark()
            answer = await rig.cs.call(
                rig.cp_id, call.GetDiagnostics(location=f"http://127.0.0.1:{server.port}/diag/")
            )
            assert answer.file_name.endswith(".tar.gz")
            assert await diagnostics_statuses(rig, "Uploaded", mark) == ["Uploading", "Uploaded"]
            upload = one_upload(server.received)
            assert (upload["method"], upload["path"]) == ("PUT", f"/diag/{answer.file_name}")
            members = bundle_members(upload["data"], answer.file_name)
            assert {"README.txt", "logs/chargepoint.log", "config/keys.txt"} <= set(members)


async def test_tc_045_1_get_diagnostics_over_https(csms: CentralSystem, tmp_path: Path) -> None:
    ca = Authority.root()
    https = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    https.load_cert_chain(*ca.server_files(tmp_path, "diag"))
    async with diagnostics_rig(csms, tmp_path / "state") as rig:
        installed = await rig.cs.call(
            rig.cp_id,
            call.InstallCertificate(
                certificate_type="CentralSystemRootCertificate", certificate=ca.pem
            ),
        )
        assert installed.status == "Accepted"
        with upload_server(https) as server:
            mark = rig.cs.mark()
            answer = await rig.cs.call(
                rig.cp_id, call.GetDiagnostics(location=f"https://localhost:{server.port}/up")
            )
            assert await diagnostics_statuses(rig, "Uploaded", mark) == ["Uploading", "Uploaded"]
            upload = one_upload(server.received)
            assert upload["path"] == f"/up/{answer.file_name}"
            assert "versions.txt" in bundle_members(upload["data"])


async def test_tc_045_1_get_diagnostics_over_ftp(csms: CentralSystem, tmp_path: Path) -> None:
    root = tmp_path / "ftp"
    (root / "diag").mkdir(parents=True)
    async with diagnostics_rig(csms, tmp_path / "state") as rig:
        with ftp_server(root) as port:
            mark = rig.cs.mark()
            answer = await rig.cs.call(
                rig.cp_id,
                call.GetDiagnostics(location=f"ftp://cpo:s3cret@127.0.0.1:{port}/diag"),
            )
            assert await diagnostics_statuses(rig, "Uploaded", mark) == ["Uploading", "Uploaded"]
        stored = root / "diag" / answer.file_name
        assert "state/transactions.json" in bundle_members(stored.read_bytes())
    frames = " ".join(r.raw for r in rig.cs.messages if r.direction == "rx")
    assert "s3cret" not in frames


async def test_tc_045_2_get_diagnostics_upload_failed(csms: CentralSystem, tmp_path: Path) -> None:
    with socket.socket() as nobody:  # a port that is bound, so nobody else takes it, and closed
        nobody.bind(("127.0.0.1", 0))
        port = nobody.getsockname()[1]
        async with diagnostics_rig(csms, tmp_path) as rig:
            mark = rig.cs.mark()
            answer = await rig.cs.call(
                rig.cp_id,
                call.GetDiagnostics(
                    location=f"http://127.0.0.1:{port}/diag/", retries=0, retry_interval=0
                ),
            )
            assert answer.file_name.endswith(".tar.gz")
            assert await diagnostics_statuses(rig, "UploadFailed", mark) == [
                "Uploading",
                "UploadFailed",
            ]
