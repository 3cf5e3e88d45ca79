"""A remote update end to end (issue 14, "Done when"): a controller started from a real release
installed in a temporary releases directory (tests/system/release_site.py, a real process
through the launcher) is sent UpdateFirmware by the bundled central system; it
downloads the higher-version bundle of this product from a real HTTP server on 127.0.0.1,
installs it, restarts into it, and the new release's BootNotification carries the new version,
with Downloading, Downloaded, Installing, Installed on the wire.  A release that crashes at
start is rolled back and the previous release reports InstallationFailed.  The signed flow
(TC_080) with a real bundle signed as ``chargepoint release sign`` signs it."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio
from ocpp.v16 import call

from centralsystem import CentralSystem, MessageRecord
from firmware import clock
from tests.firmware_helpers import http_server, signer
from tests.pki import Authority
from tests.release_bundles import Bundles
from tests.system.release_site import CP_ID, Site, boots, make_site, wait_boot


@pytest_asyncio.fixture
async def site(tmp_path: Path, release_bundles: Bundles) -> AsyncIterator[Site]:
    """The base release installed and current (tests/system/release_site.py)."""
    s = make_site(tmp_path, release_bundles)
    try:
        yield s
    finally:
        await s.stop()


pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(600)]


def statuses(cs: CentralSystem, action: str = "FirmwareStatusNotification") -> list[str]:
    return [
        r.payload["status"]
        for r in cs.messages
        if r.direction == "rx" and r.message_type == "CALL" and r.action == action
    ]


async def wait_status(
    cs: CentralSystem, status: str, action: str = "FirmwareStatusNotification", timeout: float = 180
) -> MessageRecord:
    return await cs.wait_for(
        lambda r: (
            r.direction == "rx"
            and r.message_type == "CALL"
            and r.action == action
            and r.payload.get("status") == status
        ),
        timeout=timeout,
    )


def serve(bundle: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "served"
    folder.mkdir(exist_ok=True)
    shutil.copy(bundle, folder / bundle.name)
    return folder


async def test_update_firmware_installs_the_new_release_and_boots_it(
    csms: CentralSystem, site: Site, release_bundles: Bundles, tmp_path: Path
) -> None:
    base = site.current()
    await site.start(csms)
    await wait_boot(csms, base)
    newer = release_bundles.newer
    version = release_bundles.version(newer)
    with http_server(serve(newer, tmp_path)) as url:
        await csms.call(
            CP_ID,
            call.UpdateFirmware(
                location=f"{url}/{newer.name}", retrieve_date=clock.to_ocpp(datetime.now(UTC))
            ),
        )
        boot = await wait_boot(csms, version, timeout=240)
    installed = await wait_status(csms, "Installed")
    assert installed.seq > boot.seq
    assert statuses(csms) == ["Downloading", "Downloaded", "Installing", "Installed"]
    assert site.current() == version
    assert site.installer.outcome() is None  # reported, and forgotten
    log = site.log.read_text()
    assert "Traceback" not in log, log[-3000:]


async def test_a_release_that_crashes_is_rolled_back_and_reported_installation_failed(
    csms: CentralSystem, site: Site, release_bundles: Bundles, tmp_path: Path
) -> None:
    base = site.current()
    await site.start(csms)
    await wait_boot(csms, base)
    crashing = release_bundles.crashing
    with http_server(serve(crashing, tmp_path)) as url:
        await csms.call(
            CP_ID,
            call.UpdateFirmware(
                location=f"{url}/{crashing.name}", retrieve_date=clock.to_ocpp(datetime.now(UTC))
            ),
        )
        await wait_status(csms, "Installing")
    await wait_status(csms, "InstallationFailed", timeout=240)
    assert statuses(csms) == ["Downloading", "Downloaded", "Installing", "InstallationFailed"]
    assert [b.payload["firmwareVersion"] for b in boots(csms)] == [base, base]
    assert site.current() == base


async def test_tc_080_a_signed_release_installs_and_firmware_updated_is_reported(
    csms: CentralSystem, site: Site, release_bundles: Bundles, tmp_path: Path
) -> None:
    base = site.current()
    await site.start(csms)
    await wait_boot(csms, base)
    root = Authority.root("Test Manufacturer Root")
    answer = await csms.call(
        CP_ID,
        call.InstallCertificate(
            certificate_type="ManufacturerRootCertificate", certificate=root.pem
        ),
    )
    assert answer.status == "Accepted"
    newer = release_bundles.newer
    version = release_bundles.version(newer)
    sig = signer(root, use_rsa=True)
    with http_server(serve(newer, tmp_path)) as url:
        result = await csms.call(
            CP_ID,
            call.SignedUpdateFirmware(
                request_id=7,
                firmware={
                    "location": f"{url}/{newer.name}",
                    "retrieveDateTime": clock.to_ocpp(datetime.now(UTC)),
                    "signingCertificate": sig.certificate,
                    "signature": sig.sign(newer.read_bytes()),
                },
            ),
        )
        assert result.status == "Accepted"
        await wait_boot(csms, version, timeout=240)
    await wait_status(csms, "Installed", "SignedFirmwareStatusNotification")
    assert statuses(csms, "SignedFirmwareStatusNotification") == [
        "Downloading",
        "Downloaded",
        "SignatureVerified",
        "Installing",
        "InstallRebooting",
        "Installed",
    ]
    updated = await csms.wait_for(
        lambda r: (
            r.action == "SecurityEventNotification" and r.payload.get("type") == "FirmwareUpdated"
        ),
        timeout=60,
    )
    assert version in updated.payload.get("techInfo", "")
    assert site.current() == version
