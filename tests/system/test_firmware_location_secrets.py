"""A pre-signed firmware location (S3 ``X-Amz-Signature``, an Azure SAS ``sig``: the query is
the credential) never reaches the charger's log, its OCPP message log nor, once the update
ended, any SQLite file of its state directory: a real ``chargepoint run`` process, a real HTTP
server on 127.0.0.1 that serves the file, the bundled central system."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from ocpp.v16 import call

from centralsystem import CentralSystem
from firmware import clock
from tests.conftest import REPO
from tests.firmware_helpers import http_server
from tests.system.helpers import Controller

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(180)]

TOKENS = ("AKIAFWTEST", "fw-session-token-77", "9c8b7a6f5e4d3c2b1a09", "azure-sas-fw-sig")
QUERY = (
    "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAFWTEST%2F20261129%2Fs3"
    "&X-Amz-Security-Token=fw-session-token-77&X-Amz-Signature=9c8b7a6f5e4d3c2b1a09"
    "&sig=azure-sas-fw-sig"
)


def _holding(where: Path) -> list[str]:
    """The files at or under ``where`` whose bytes hold one of the tokens."""
    files = [where] if where.is_file() else sorted(p for p in where.rglob("*") if p.is_file())
    return [
        f"{path.name}: {token}"
        for path in files
        for token in TOKENS
        if token.encode() in path.read_bytes()
    ]


async def test_a_pre_signed_location_is_never_logged_nor_kept(
    csms: CentralSystem, tmp_path: Path
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / "fw.bundle").write_bytes(b"not a release bundle\n" * 100)
    message_log = tmp_path / "run" / "ocpp.log"
    config = tmp_path / "bench.toml"
    config.write_text(
        (REPO / "config" / "bench.toml")
        .read_text()
        .replace("[web]\nenabled = true", "[web]\nenabled = false", 1)
        + f'\n[logging]\nocpp_messages = true\nocpp_log = "{message_log}"\n'
    )
    state = tmp_path / "state"
    ctl = Controller(csms.url, state, tmp_path / "cp.log", config)
    ctl.start()
    try:
        await csms.wait_for(lambda r: r.action == "BootNotification", timeout=60)
        cp_id = "DURABLE-1"
        with http_server(served) as url:
            # First one waiting for its retrieveDate, then one replacing it at once: both
            # logged, the second downloaded, found no bundle, and forgotten.
            await csms.call(
                cp_id,
                call.UpdateFirmware(
                    location=f"{url}/later.bundle{QUERY}", retrieve_date="2099-01-01T00:00:00Z"
                ),
            )
            await csms.call(
                cp_id,
                call.UpdateFirmware(
                    location=f"{url}/fw.bundle{QUERY}",
                    retrieve_date=clock.to_ocpp(datetime.now(UTC)),
                    retries=0,
                ),
            )
            await csms.wait_for(
                lambda r: (
                    r.action == "FirmwareStatusNotification"
                    and r.payload.get("status") == "InstallationFailed"
                ),
                timeout=60,
            )
        ctl.kill()  # a power cut: what the files hold as they are
    finally:
        ctl.stop_quietly()
    log = (tmp_path / "cp.log").read_text()
    assert "fw.bundle?***" in log, log[-3000:]
    assert "UpdateFirmware" in message_log.read_text()
    assert not _holding(tmp_path / "cp.log"), log[-3000:]
    assert not _holding(message_log.parent)
    assert list(state.glob("*.db")), "the stores are in the state directory"
    assert not _holding(state), _holding(state)
