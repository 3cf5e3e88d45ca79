"""Helpers of the GetDiagnostics system tests (tests/system/test_diagnostics.py and the OCTT
chapter tests/system/octt/test_12_diagnostics.py): the bench charger with the Firmware
Management profile on, the statuses it reported, the bundle it uploaded."""

from __future__ import annotations

import io
import tarfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from centralsystem import CentralSystem
from firmware import app
from firmware.profiles import FIRMWARE_MANAGEMENT, IMPLEMENTED
from firmware.settings import OcppSettings, Settings
from tests.conftest import Rig, bench_settings, start_fast

WITH_FIRMWARE_MANAGEMENT = tuple(dict.fromkeys((*IMPLEMENTED, FIRMWARE_MANAGEMENT)))


def with_firmware_management(settings: Settings) -> Settings:
    """``settings`` with ``[ocpp] profiles`` naming FirmwareManagement, GetDiagnostics'
    profile (OCPP 1.6 §3.3)."""
    return replace(settings, ocpp=OcppSettings(profiles=WITH_FIRMWARE_MANAGEMENT))


@asynccontextmanager
async def diagnostics_rig(
    csms: CentralSystem, state_dir: Path, settings: Settings | None = None, **keys: object
) -> AsyncIterator[Rig]:
    """The bench charger (``settings``, else the bench's with ``keys``) with FirmwareManagement
    on, connected and Available."""
    settings = settings or bench_settings(csms.url, state_dir, **keys)
    running = await start_fast(with_firmware_management(settings))
    rig = Rig(csms, running, state_dir)
    try:
        await rig.wait_status("Available")
        yield rig
    finally:
        await app.shutdown(running)


async def diagnostics_statuses(rig: Rig, last: str, since: int = 0, count: int = 1) -> list[str]:
    """The DiagnosticsStatusNotification statuses sent since ``since`` (a ``cs.mark()``), once
    the ``count``-th ``last`` arrived."""

    def statuses() -> list[str]:
        return [
            r.payload["status"]
            for r in rig.cs.messages
            if r.seq >= since
            and r.direction == "rx"
            and r.action == "DiagnosticsStatusNotification"
            and r.message_type == "CALL"
        ]

    await rig.cs.wait_for(
        lambda _r: statuses().count(last) >= count,
        timeout=30,
        since=since,
    )
    return statuses()


def bundle_members(data: bytes, file_name: str | None = None) -> dict[str, str]:
    """The uploaded tar.gz's members: path (without the top directory, which is named like
    the file: checked when ``file_name`` is given) -> text."""
    out: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            assert handle is not None, member.name
            top, path = member.name.split("/", 1)
            if file_name is not None:
                assert f"{top}.tar.gz" == file_name, member.name
            out[path] = handle.read().decode()
    return out


def one_upload(received: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(received) == 1, [r["path"] for r in received]
    return received[0]
