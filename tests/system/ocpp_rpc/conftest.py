"""Fixtures for the schema-conformance tests: the strict node central system (csms.js on
ocpp-rpc) and a controller on the simulated bench connected to it.

A conftest in this folder applies only to the tests in this folder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from firmware import app, app_devices
from tests.conftest import bench_settings, start_fast
from tests.system.ocpp_rpc.harness import Event, NodeCsms, NodeCsmsError, ensure_node_modules

# Every measurand the bench's SDM630 and pilot serve, in MeterValues and in StopTransaction,
# so that every kind of sampled value the charger can produce goes through the schema.
ALL_MEASURANDS = (
    "Energy.Active.Import.Register,Energy.Active.Export.Register,"
    "Power.Active.Import,Current.Import,Voltage,Frequency,Current.Offered"
)
CONFORMANCE_KEYS: dict[str, object] = {
    "MeterValueSampleInterval": 1,
    "MeterValuesSampledData": ALL_MEASURANDS,
    "StopTxnSampledData": ALL_MEASURANDS,
}


@pytest.fixture(scope="session")
def node_executable() -> str:
    """``node``, with this folder's node_modules installed (``npm ci`` once on a fresh clone)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip(
            "node is not installed: the independent OCPP schema check (npm ocpp-rpc) "
            "needs node >= 17 and npm (scripts/test installs Debian's nodejs and npm)"
        )
    try:
        ensure_node_modules()
    except NodeCsmsError as exc:
        pytest.fail(str(exc), pytrace=False)
    return node


@pytest.fixture
def node_csms(node_executable: str, tmp_path: Path) -> Iterator[NodeCsms]:
    """A running strict central system; its event log is left in ``tmp_path/csms-events.jsonl``."""
    csms = NodeCsms(node_executable)
    try:
        csms.start()
    except NodeCsmsError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield csms
    finally:
        code = csms.terminate()
        (tmp_path / "csms-events.jsonl").write_text(
            "".join(json.dumps(e) + "\n" for e in csms.events)
        )
        assert code == 0, f"csms.js exited with {code}; stderr:\n{csms.stderr}"


@dataclass
class NodeRig:
    """The strict node central system and a controller on the bench connected to it."""

    node: NodeCsms
    running: app.Running
    state_dir: Path

    @property
    def cp_id(self) -> str:
        return str(self.running.settings.charge_point_id)

    async def command(self, cmd: str, **extra: object) -> dict[str, Any]:
        """Drive the bench through its control socket, as `chargepoint bench` does."""
        answer = await app_devices.bench_command(self.state_dir, {"cmd": cmd, **extra})
        assert answer["ok"], answer
        return answer

    async def wait_call(self, action: str, since: int = 0, timeout: float = 10) -> Event:
        """The next CALL ``action`` the charger sent (its ``payload`` as it crossed the wire)."""
        return await self.node.awaited_for(
            lambda e: (
                e.get("ev") == "rx"
                and e.get("type") == "CALL"
                and e.get("action") == action
                and e.get("id") == self.cp_id
            ),
            timeout=timeout,
            since=since,
        )

    async def wait_answered(self, action: str, since: int = 0, timeout: float = 10) -> Event:
        """csms.js's answer to the charger's ``action`` (CALLRESULT or CALLERROR)."""
        return await self.node.awaited_for(
            lambda e: (
                e.get("ev") == "tx"
                and e.get("type") in ("CALLRESULT", "CALLERROR")
                and e.get("action") == action
                and e.get("id") == self.cp_id
            ),
            timeout=timeout,
            since=since,
        )

    async def wait_status(
        self,
        status: str,
        connector: int = 1,
        since: int = 0,
        timeout: float = 10,
        error_code: str | None = None,
    ) -> Event:
        def pred(e: Event) -> bool:
            p = e.get("payload") or {}
            return (
                e.get("ev") == "rx"
                and e.get("type") == "CALL"
                and e.get("action") == "StatusNotification"
                and p.get("connectorId") == connector
                and p.get("status") == status
                and (error_code is None or p.get("errorCode") == error_code)
            )

        return await self.node.awaited_for(pred, timeout=timeout, since=since)

    async def call(self, method: str, params: dict[str, Any], timeout: float = 15) -> Event:
        """csms.js calls the charger; ``{"ev": "result"|"error", ...}``."""
        return await self.node.acall(self.cp_id, method, params, timeout=timeout)

    async def start_session(self, tag: str) -> int:
        """Plug, present a card, let the EV ask for power; returns the transactionId."""
        mark = self.node.mark()
        await self.command("plug")
        await self.wait_status("Preparing", since=mark)
        await self.command("swipe", tag=tag)
        await self.wait_call("Authorize", since=mark)
        await self.wait_call("StartTransaction", since=mark)
        answer = await self.wait_answered("StartTransaction", since=mark)
        await self.command("ev-charge")
        await self.wait_status("Charging", since=mark)
        return int(answer["payload"]["transactionId"])


@pytest_asyncio.fixture
async def node_rig(
    node_csms: NodeCsms, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[NodeRig]:
    """The controller on the bench, registered at the strict central system.  Marker
    ``@pytest.mark.keys(Name=value, ...)`` adds OCPP keys to ``CONFORMANCE_KEYS``."""
    marker = request.node.get_closest_marker("keys")
    keys = {**CONFORMANCE_KEYS, **(marker.kwargs if marker else {})}
    running = await start_fast(bench_settings(node_csms.url, tmp_path, **keys))
    rig = NodeRig(node_csms, running, tmp_path)
    try:
        await rig.wait_call("BootNotification")
        await rig.wait_status("Available", connector=0)
        await rig.wait_status("Available", connector=1)
        yield rig
    finally:
        await app.shutdown(running)
