"""GetDiagnostics beyond the OCTT cases (tests/system/octt/test_12_diagnostics.py), against real
upload servers on 127.0.0.1: the multipart POST, retries counted on the server, the log
window, the trigger while an upload runs, a new request replacing the running one, the
profile switched off, and a bundle searched for every secret the test configured."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from ocpp.exceptions import NotSupportedError
from ocpp.v16 import call

from centralsystem import CentralSystem
from firmware import app, logs
from firmware.settings import LoggingSettings, OcppSettings
from firmware.settings_load import load
from tests.conftest import BENCH_TOML, Rig, bench_settings, start_fast
from tests.system.diagnostics_helpers import (
    WITH_FIRMWARE_MANAGEMENT,
    bundle_members,
    diagnostics_rig,
    diagnostics_statuses,
    one_upload,
)
from tests.system.upload_servers import HttpUploads, upload_server

pytestmark = pytest.mark.asyncio


async def _get_diagnostics(rig: Rig, location: str, **fields: object) -> str:
    answer = await rig.cs.call(rig.cp_id, call.GetDiagnostics(location=location, **fields))
    assert answer.file_name, "a file name is promised"
    return str(answer.file_name)


async def test_a_server_that_takes_no_put_gets_a_multipart_post(
    csms: CentralSystem, tmp_path: Path
) -> None:
    async with diagnostics_rig(csms, tmp_path) as rig:
        with upload_server(methods=("POST",)) as server:
            mark = rig.cs.mark()
            name = await _get_diagnostics(rig, f"http://127.0.0.1:{server.port}/upload")
            assert await diagnostics_statuses(rig, "Uploaded", mark) == ["Uploading", "Uploaded"]
            assert [a["method"] for a in server.attempts] == ["PUT", "POST"]
            upload = one_upload(server.received)
            assert upload["path"] == f"/upload/{name}" and upload["filename"] == name
            assert upload["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")
            assert "config/keys.txt" in bundle_members(upload["data"])


async def test_retries_follow_retry_interval_and_are_counted_on_the_server(
    csms: CentralSystem, tmp_path: Path
) -> None:
    async with diagnostics_rig(csms, tmp_path) as rig:
        # Every attempt fails: 1 + retries attempts, then UploadFailed.
        with upload_server(failures=100) as server:
            mark = rig.cs.mark()
            await _get_diagnostics(
                rig, f"http://127.0.0.1:{server.port}/d", retries=2, retry_interval=1
            )
            assert await diagnostics_statuses(rig, "UploadFailed", mark) == [
                "Uploading",
                "UploadFailed",
            ]
            assert len(server.attempts) == 3 and server.received == []
        # The first attempt fails, the retry succeeds: Uploaded after two attempts.
        with upload_server(failures=1) as server:
            mark = rig.cs.mark()
            await _get_diagnostics(
                rig, f"http://127.0.0.1:{server.port}/d", retries=3, retry_interval=0
            )
            assert await diagnostics_statuses(rig, "Uploaded", mark) == ["Uploading", "Uploaded"]
            assert len(server.attempts) == 2 and len(server.received) == 1


async def test_the_window_selects_the_log_lines(csms: CentralSystem, tmp_path: Path) -> None:
    test_log = logging.getLogger("firmware.test")
    async with diagnostics_rig(csms, tmp_path) as rig:
        test_log.warning("line before the window")
        await asyncio.sleep(0.05)  # ordering only: the window starts after that line
        start = datetime.now(UTC)
        test_log.warning("line inside the window")
        await asyncio.sleep(0.05)
        stop = datetime.now(UTC)
        await asyncio.sleep(0.05)
        test_log.warning("line after the window")
        with upload_server() as server:
            mark = rig.cs.mark()
            await _get_diagnostics(
                rig,
                f"http://127.0.0.1:{server.port}/",
                start_time=start.isoformat(),
                stop_time=stop.isoformat(),
            )
            await diagnostics_statuses(rig, "Uploaded", mark)
            members = bundle_members(one_upload(server.received)["data"])
    lines = members["logs/chargepoint.log"]
    assert "line inside the window" in lines
    assert "line before the window" not in lines and "line after the window" not in lines
    assert start.isoformat() in members["README.txt"]


async def test_a_trigger_reports_uploading_then_idle(csms: CentralSystem, tmp_path: Path) -> None:
    async with diagnostics_rig(csms, tmp_path) as rig:

        async def triggered() -> str:
            mark = rig.cs.mark()
            answer = await rig.cs.call(
                rig.cp_id, call.TriggerMessage(requested_message="DiagnosticsStatusNotification")
            )
            assert answer.status == "Accepted"
            record = await rig.cs.wait_for(
                lambda r: r.action == "DiagnosticsStatusNotification" and r.direction == "rx",
                since=mark,
            )
            return str(record.payload["status"])

        assert await triggered() == "Idle"
        with upload_server(held=True) as server:
            mark = rig.cs.mark()
            await _get_diagnostics(rig, f"http://127.0.0.1:{server.port}/")
            await asyncio.to_thread(server.arrived.wait, 10)  # the upload is under way
            assert await triggered() == "Uploading"
            server.hold.set()
            await diagnostics_statuses(rig, "Uploaded", mark)
        assert await triggered() == "Idle"


async def test_a_new_request_replaces_the_running_upload(
    csms: CentralSystem, tmp_path: Path
) -> None:
    async with diagnostics_rig(csms, tmp_path) as rig:
        with upload_server(held=True) as first, upload_server() as second:
            mark = rig.cs.mark()
            await _get_diagnostics(rig, f"http://127.0.0.1:{first.port}/first")
            await asyncio.to_thread(first.arrived.wait, 10)
            name = await _get_diagnostics(rig, f"http://127.0.0.1:{second.port}/second")
            statuses = await diagnostics_statuses(rig, "Uploaded", mark)
            assert statuses == ["Uploading", "Uploading", "Uploaded"]
            assert one_upload(second.received)["path"] == f"/second/{name}"


async def test_the_outcome_of_an_upload_that_ends_offline_is_sent_on_reconnection(
    csms: CentralSystem, tmp_path: Path
) -> None:
    async with diagnostics_rig(csms, tmp_path) as rig:
        with upload_server(held=True) as server:
            mark = rig.cs.mark()
            await _get_diagnostics(rig, f"http://127.0.0.1:{server.port}/")
            await asyncio.to_thread(server.arrived.wait, 10)
            rig.cs.refuse_connections()
            await rig.cs.disconnect(rig.cp_id, abrupt=True)
            server.hold.set()
            await asyncio.to_thread(_wait_received, server, 1)  # done while offline
            rig.cs.refuse_connections(False)
            assert await diagnostics_statuses(rig, "Uploaded", mark) == ["Uploading", "Uploaded"]


def _wait_received(server: HttpUploads, count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while len(server.received) < count:
        assert time.monotonic() < deadline, "the upload did not arrive"
        time.sleep(0.02)


async def test_an_unusable_location_gets_no_file_name(csms: CentralSystem, tmp_path: Path) -> None:
    async with diagnostics_rig(csms, tmp_path) as rig:
        mark = rig.cs.mark()
        for location in ("sftp://127.0.0.1/x", "http:///no-host", "not a url"):
            answer = await rig.cs.call(rig.cp_id, call.GetDiagnostics(location=location))
            assert answer.file_name is None, location
        assert not [r for r in rig.calls("DiagnosticsStatusNotification") if r.seq >= mark]


async def test_with_firmware_management_off_get_diagnostics_is_not_supported(
    csms: CentralSystem, tmp_path: Path
) -> None:
    """A charger shipped without the profile answers what every request of a disabled profile
    gets (firmware.profiles), and a TriggerMessage for one of its notifications is
    NotImplemented with nothing sent (OCPP 1.6 §5.17: a message the charger does not
    implement)."""
    without = tuple(p for p in WITH_FIRMWARE_MANAGEMENT if p != "FirmwareManagement")
    settings = replace(bench_settings(csms.url, tmp_path), ocpp=OcppSettings(profiles=without))
    running = await start_fast(settings)
    rig = Rig(csms, running, tmp_path)
    try:
        await rig.wait_status("Available")
        with pytest.raises(NotSupportedError):
            await rig.cs.call(rig.cp_id, call.GetDiagnostics(location="http://127.0.0.1:9/"))
        mark = rig.cs.mark()
        for message in ("DiagnosticsStatusNotification", "FirmwareStatusNotification"):
            answer = await rig.cs.call(rig.cp_id, call.TriggerMessage(requested_message=message))
            assert answer.status == "NotImplemented", message
        answer = await rig.cs.call(
            rig.cp_id, call.ExtendedTriggerMessage(requested_message="FirmwareStatusNotification")
        )
        assert answer.status == "NotImplemented"
        # A message the profile has is still triggered, and follows every answer above.
        answer = await rig.cs.call(rig.cp_id, call.TriggerMessage(requested_message="Heartbeat"))
        assert answer.status == "Accepted"
        await rig.wait_call("Heartbeat", since=mark)
        sent = {r.action for r in rig.cs.messages if r.seq >= mark and r.direction == "rx"}
        assert not sent & {
            "DiagnosticsStatusNotification",
            "FirmwareStatusNotification",
            "SignedFirmwareStatusNotification",
        }, sent
    finally:
        await app.shutdown(running)


# ------------------------------------------------------------------ secrets


FILE_KEY = b"file-Secret-pw!!".hex()  # the AuthorizationKey of the configuration file
NEW_KEY = b"Central-Secret-pw#".hex()  # the one the central system sets later
CSMS_PASSWORD = "csms-url-Pa55"
UPLOAD_PASSWORD = "upload-Pa55word"


@pytest.fixture
def message_log(tmp_path: Path) -> Iterator[Path]:
    """The OCPP message log on, as ``[logging] ocpp_messages = true`` has it."""
    path = tmp_path / "ocpp.log"
    messages = logging.getLogger(logs.MESSAGE_LOGGER)
    saved = messages.propagate
    assert logs.attach_message_log(True, path) == path
    yield path
    logs.attach_message_log(False)
    messages.propagate = saved


async def test_the_bundle_holds_no_secret_the_charger_was_given(
    csms: CentralSystem, tmp_path: Path, message_log: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A configuration file with an AuthorizationKey and a central system URL with a password,
    a key the central system changes, a private key and a password in log lines, an upload
    location with credentials: none of them, in any form, is in any member of the bundle,
    while the values that are no secret are; the location's password is in no log line."""
    caplog.set_level(logging.DEBUG)
    state = tmp_path / "state"
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    url = csms.url.replace("ws://", f"ws://{CSMS_USER}:{CSMS_PASSWORD}@")
    config = tmp_path / "chargepoint.toml"
    config.write_text(
        BENCH_TOML.read_text()
        .replace('csms_url = "', f'csms_url = "{url}" # was "', 1)
        .replace("[ocpp_keys]", f'[ocpp_keys]\nAuthorizationKey = "{FILE_KEY}"', 1)
    )
    settings = replace(
        bench_settings(csms.url, state, AuthorizationKey=FILE_KEY),
        source=config,
        logging=LoggingSettings(ocpp_messages=True, ocpp_log=str(message_log)),
    )
    assert load(config).ocpp_keys["AuthorizationKey"] == FILE_KEY
    async with diagnostics_rig(csms, state, settings) as rig:
        changed = await rig.cs.call(
            rig.cp_id, call.ChangeConfiguration(key="AuthorizationKey", value=NEW_KEY)
        )
        assert changed.status == "Accepted"
        await rig.start_session(CARD)  # the charger's own lines name the card
        careless = logging.getLogger("firmware.test")
        careless.warning("a careless line with %s", key_pem)
        careless.warning("card %s presented", CARD.lower())  # idTags compare in any case
        careless.warning("another with ftp://diag:%s@10.0.0.9/x and %s", UPLOAD_PASSWORD, NEW_KEY)
        with upload_server() as server:
            mark = rig.cs.mark()
            location = f"http://diag:{UPLOAD_PASSWORD}@127.0.0.1:{server.port}/in"
            await _get_diagnostics(rig, location)
            await diagnostics_statuses(rig, "Uploaded", mark)
            upload = one_upload(server.received)
    assert (
        upload["headers"]["Authorization"]
        == "Basic " + base64.b64encode(f"diag:{UPLOAD_PASSWORD}".encode()).decode()
    ), "the location's credentials are used"
    charger_side = [
        r
        for r in caplog.records
        if not r.name.startswith(("centralsystem", "websockets.server", "firmware.test"))
    ]
    assert any("GetDiagnostics" in r.getMessage() for r in charger_side), "frames are logged"
    for record in charger_side:
        assert UPLOAD_PASSWORD not in record.getMessage(), record.getMessage()
    assert UPLOAD_PASSWORD not in message_log.read_text()
    members = bundle_members(upload["data"])
    body = [line for line in key_pem.splitlines() if "-----" not in line]
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    secrets = {
        "file key": FILE_KEY,
        "file key upper": FILE_KEY.upper(),
        "file password": "file-Secret-pw!!",
        "new key": NEW_KEY,
        "new password": "Central-Secret-pw#",
        "csms url password": CSMS_PASSWORD,
        "upload password": UPLOAD_PASSWORD,
        "private key line": body[0],
        "private key scalar": scalar.hex(),
        "private key scalar b64": base64.b64encode(scalar).decode(),
        "idTag": CARD,
    }
    for path, text in members.items():
        leaked = [what for what, secret in secrets.items() if secret in text]
        assert not leaked, f"{path} holds {leaked}"
    # What is no secret stays: the key values, the file, the logs, the frames.
    keys_text = members["config/keys.txt"]
    assert 'AuthorizationKey = "***"' in keys_text
    assert "MinimumStatusDuration = 0" in keys_text and "HeartbeatInterval = " in keys_text
    assert 'AuthorizationKey = "***"' in members["config/chargepoint.toml"]
    assert f"{CSMS_USER}" not in members["config/chargepoint.toml"]
    assert "[chargepoint]" in members["config/chargepoint.toml"]
    assert "[private key removed]" in members["logs/chargepoint.log"]
    assert "*" * (len(CARD) - 4) + CARD[-4:].lower() in members["logs/chargepoint.log"]
    assert "ftp://10.0.0.9/x" in members["logs/chargepoint.log"]
    assert '"ChangeConfiguration"' in members["logs/ocpp-messages.log"]
    assert "GetDiagnostics" in members["logs/ocpp-messages.log"]
    versions = members["versions.txt"]
    assert versions.startswith("pi-chargepoint ") and "\nocpp==" in versions
    summary = json.loads(members["state/transactions.json"])
    assert [t["connector_id"] for t in summary["open_transactions"]] == [1]
    connectors = json.loads(members["state/connectors.json"])
    assert connectors["1"]["status"] == "Charging" and "id_tag" not in connectors["1"]


CSMS_USER = "cpuser"
CARD = "04A1B2C3D4E5F6"


# ------------------------------------------------------------------ pre-signed locations

TOKEN = "9b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"


def _signed(path: str) -> str:
    """A path with the query an object store signs (S3 style): the signature is the token."""
    return (
        f"{path}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20261129"
        f"&X-Amz-Signature={TOKEN}"
    )


async def test_a_pre_signed_location_is_the_file_url_and_its_token_is_never_shown(
    csms: CentralSystem, tmp_path: Path, message_log: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """GetDiagnostics and GetLog to pre-signed URLs (an object store that takes the exact
    signed URL only, 403 for any other): the file goes to the URL as given (no file name
    appended), and the token is in no log line, no logged frame and no bundle member."""
    caplog.set_level(logging.DEBUG)
    diagnostics, log_file = _signed("/bucket/cp/diag.tar.gz"), _signed("/bucket/cp/log.txt")
    state = tmp_path / "state"
    settings = replace(
        bench_settings(csms.url, state),
        logging=LoggingSettings(ocpp_messages=True, ocpp_log=str(message_log)),
    )
    async with diagnostics_rig(csms, state, settings) as rig:
        with upload_server(only=(diagnostics, log_file)) as server:
            base = f"http://127.0.0.1:{server.port}"
            for n in (1, 2):  # the second bundle holds the first one's log lines and frames
                mark = rig.cs.mark()
                await _get_diagnostics(rig, base + diagnostics)
                await diagnostics_statuses(rig, "Uploaded", mark)
                if n == 1:
                    mark = rig.cs.mark()
                    answer = await rig.cs.call(
                        rig.cp_id,
                        call.GetLog(
                            log_type="DiagnosticsLog",
                            request_id=41,
                            log={"remoteLocation": base + log_file},
                        ),
                    )
                    assert answer.status == "Accepted"
                    await rig.cs.wait_for(
                        lambda r: (
                            r.action == "LogStatusNotification"
                            and r.payload.get("status") == "Uploaded"
                        ),
                        since=mark,
                    )
    assert [r["path"] for r in server.received] == [diagnostics, log_file, diagnostics]
    charger_side = [
        r for r in caplog.records if not r.name.startswith(("centralsystem", "websockets.server"))
    ]
    assert any("GetDiagnostics" in r.getMessage() for r in charger_side), "frames are logged"
    for record in charger_side:
        assert TOKEN not in record.getMessage() + (record.exc_text or ""), record.getMessage()
    frames = message_log.read_text()
    assert "diag.tar.gz?***" in frames and TOKEN not in frames
    assert TOKEN not in server.received[1]["body"], "the uploaded log"
    members = bundle_members(server.received[2]["data"])
    assert "diag.tar.gz?***" in members["logs/ocpp-messages.log"]
    for path, text in members.items():
        assert TOKEN not in text, path
